"""A reference webhook subscriber: Attain's celebrations and check-in tasks, POSTed to a webhook.

It reads ``recognition.celebrations.v1`` and ``coaching.tasks.v1`` (CloudEvents in Kafka binary mode,
written in transactions), skips event ids it has already delivered (a SQLite file), and POSTs each
event as a Slack-compatible JSON body signed the Standard Webhooks way, retrying with backoff until
the receiver takes it. Run it with ``python -m examples.webhook_subscriber --url URL``; README.md
beside this file says how to run and adapt it.

It needs aiokafka, httpx, pydantic-settings, standardwebhooks, tenacity, the standard library and, of
Attain's own code, only `shared/webhooks.py` (signing, shared with the notify service): a team copies
the folder and that file.
"""
