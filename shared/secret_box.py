"""Secrets kept by a service, encrypted at rest: ingest's tenants' CRM secrets and API tokens (`tenant_secrets`,
`crm_api_tokens`, keys in CRM_SECRET_KEYS), notify's webhook URLs and Slack tokens (NOTIFY_SECRET_KEYS).

Why: HMAC verification needs the webhook secret itself, so it cannot be stored as a digest like the bearer
tokens; and a copy of the database (a backup, a replica, a dump for support) must not hand out what lets
anyone sign webhooks as a tenant's CRM or read that CRM through its API. So each value is encrypted with
Fernet (AES-128-CBC and HMAC-SHA256, from `cryptography`) under keys the database never sees: the setting
`CRM_SECRET_KEYS`, comma-separated. The first key encrypts, every key decrypts (`MultiFernet`): to rotate,
put a new key in front, run `tenants rotate-secrets`, then drop the old key.

What is stored is either sealed, `fernet:` followed by a Fernet token, or legacy plain text written before
ingest encrypted anything (sealed at start-up, `secret_store.seal_legacy`). The prefix alone tells them
apart: nothing is ever "tried" as a token. A legacy value that happened to begin with `fernet:` would read
as sealed and fail to decrypt, which is reported like any value no key opens (set the secret again).

Pure: no I/O, no logging, and no message here ever holds a key, a secret or a token; callers name the
tenant and CRM of a value that cannot be decrypted.

>>> box = SecretBox([Fernet.generate_key().decode()])
>>> sealed = box.seal("hubspot-client-secret")
>>> sealed.startswith(PREFIX), box.unseal(sealed), box.unseal("written-before-encryption")
(True, 'hubspot-client-secret', 'written-before-encryption')
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

PREFIX = "fernet:"
SETTING = "CRM_SECRET_KEYS"
MAKE_A_KEY = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'


class SecretBoxError(ValueError):
    """Base of what this module raises; no message holds a key or a secret."""


class BadKeys(SecretBoxError):
    """CRM_SECRET_KEYS is unset, empty, or holds something that is not a Fernet key."""


class Undecryptable(SecretBoxError):
    """A sealed value that no key of CRM_SECRET_KEYS decrypts: sealed under a key no longer listed, or damaged."""


def parse_keys(value: str, setting: str = SETTING) -> list[str]:
    """The keys of a CRM_SECRET_KEYS value (or another `setting`'s), in order (the first encrypts); BadKeys
    saying what is wrong and how to make a key, naming a bad key by its position only."""
    keys = [key.strip() for key in value.split(",") if key.strip()]
    what = ("ingest encrypts the tenants' CRM secrets and API tokens with it" if setting == SETTING
            else "the service encrypts the secrets it keeps with it")
    if not keys:
        raise BadKeys(f"{setting} is not set: {what}."
                      f" Make a key with `{MAKE_A_KEY}` and set {setting} to it (keep it: stored secrets cannot be"
                      " read without it). Several keys, comma-separated: the first encrypts, all decrypt")
    for position, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except (ValueError, TypeError):  # cryptography's own message holds no part of the key either
            raise BadKeys(f"{setting}: key {position} of {len(keys)} is not a Fernet key (32 url-safe base64-encoded"
                          f" bytes); make one with `{MAKE_A_KEY}`") from None
    return keys


def is_sealed(stored: str) -> bool:
    """Whether a stored value is encrypted (else it is legacy plain text, written before encryption)."""
    return stored.startswith(PREFIX)


@contextmanager
def _opening(setting: str) -> Iterator[None]:
    """Where a sealed value is decrypted: a value no key opens is Undecryptable, which names no key or value."""
    try:
        yield
    except (InvalidToken, UnicodeError) as err:
        raise Undecryptable(f"no key of {setting} decrypts the stored value (sealed under a key no longer"
                            " listed, or damaged)") from err


class SecretBox:
    """Seals and unseals stored CRM secrets and API tokens with CRM_SECRET_KEYS (see the module's docstring)."""

    def __init__(self, keys: Sequence[str], setting: str = SETTING) -> None:
        if not keys:
            raise BadKeys(f"{setting}: at least one key is needed")
        self._fernet = MultiFernet([Fernet(key) for key in keys])
        self._setting = setting

    @classmethod
    def from_setting(cls, value: str, setting: str = SETTING) -> SecretBox:
        """The box of a CRM_SECRET_KEYS value, or of another `setting`'s (`parse_keys`)."""
        return cls(parse_keys(value, setting), setting)

    def seal(self, plain: str) -> str:
        """`plain` encrypted under the first key, as stored: `fernet:<token>`."""
        if not plain:
            raise SecretBoxError("an empty value is not a secret: nothing to seal")
        return PREFIX + self._fernet.encrypt(plain.encode()).decode("ascii")

    def unseal(self, stored: str) -> str:
        """The plain value of a stored one: legacy plain text as it is, a sealed value decrypted with whichever
        key opens it; Undecryptable when none does."""
        if not is_sealed(stored):
            return stored
        with _opening(self._setting):
            return self._fernet.decrypt(self._token(stored)).decode()

    def reseal(self, stored: str) -> str:
        """A stored value as it should be stored now: sealed under the first key (legacy plain text sealed, a
        sealed value re-encrypted, whichever key sealed it); Undecryptable when no key opens it."""
        if not is_sealed(stored):
            return self.seal(stored)
        with _opening(self._setting):
            return PREFIX + self._fernet.rotate(self._token(stored)).decode("ascii")

    @staticmethod
    def _token(stored: str) -> bytes:
        return stored.removeprefix(PREFIX).encode("ascii")

    def __repr__(self) -> str:
        return "SecretBox(<keys hidden>)"
