"""A reference webhook subscriber: one organisation's celebrations and check-in tasks, POSTed to a webhook.

The reference for a custom receiver of Attain's topics in your own integration; people are notified by
Attain's notify service (e-mail, Slack, Teams, or its signed per-tenant webhook), not by this. It reads
``recognition.celebrations.v1`` and ``coaching.tasks.v1`` (CloudEvents in Kafka binary mode, written in
transactions), keeps the events of the tenants it is given (``--tenants``, required: the topics carry every
tenant's), skips event ids it has already delivered (a SQLite file), and POSTs each event as a
Slack-compatible JSON body signed the Standard Webhooks way, retrying with backoff until the receiver takes
it. Run it with ``python -m examples.webhook_subscriber --url URL --tenants SLUG``; README.md beside this
file says how to run and adapt it.

It needs aiokafka, httpx, pydantic-settings, standardwebhooks, tenacity, the standard library and, of
Attain's own code, only `shared/webhooks.py` (signing, shared with the notify service): a team copies
the folder and that file.
"""
