"""recognition's business metrics: celebrations announced, by kind of milestone; milestones recorded quietly."""

from prometheus_client import Counter

CELEBRATIONS = Counter("attain_recognition_celebrations_total",
                       "Celebrations announced (each once, ever), by kind of milestone and scope.", ["kind", "scope"])
QUIET = Counter("attain_recognition_milestones_quiet_total",
                "Milestones put in the ledger without an event of their own: 'history' (older than the tenant's"
                " horizon) or 'bundled' (carried by a higher milestone's celebration of the same record).", ["reason"])
