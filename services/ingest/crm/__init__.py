"""Native CRM webhooks: each vendor module verifies its scheme and parses its payloads into
vendor-neutral changes (`model.py`); `pipeline.py` merges them into complete canonical events."""
