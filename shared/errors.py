"""The small exception hierarchy shared code raises; each service derives its own from `AttainError`."""


class AttainError(Exception):
    """Base of every error Attain raises on purpose."""


class InvalidMessage(AttainError):
    """A Kafka message that can never be processed (bad encoding, schema): dead-letter it."""


class TransientError(AttainError):
    """A dependency is unavailable for now (database, broker): retry later, commit nothing."""
