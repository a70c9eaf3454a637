"""Reading a tenant's CRM through its REST API, page by page: its users, and the deals and activities changed since a
time (issue 21: the owner directory, the fiscal-year backfill, the reconcile pass).

`model.py` holds the CRM-neutral protocol (`CrmReader`, `Page`, `CrmUser`) and `cursor.py` the resumable position a
page's cursor encodes; `limits.py` each vendor's rate-limit policy (pure); `transport.py` the guarded HTTP and the
calls that honour a policy; `hubspot.py`, `pipedrive.py` and `salesforce.py` one reader each, reusing `fetch.py`'s
converters; `readers.py` picks one by CRM.
"""
