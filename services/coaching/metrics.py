"""coaching's business metrics: what a sales floor watches (check-ins by rule, and how many are open)."""

from prometheus_client import Counter, Gauge

TASK_EVENTS = Counter("attain_coaching_task_events_total",
                      "Check-in events enqueued, by event (created, closed, escalated) and rule.", ["event", "rule"])
OPEN_TASKS = Gauge("attain_coaching_open_tasks", "Check-ins open or acknowledged, all tenants, by rule (last tick).",
                   ["rule"])
OWED_EVALUATIONS = Gauge("attain_coaching_owed_evaluations",
                         "Reps touched by new events and not evaluated yet, all tenants (after each evaluator pass).")
EVALUATIONS = Counter("attain_coaching_evaluations_total",
                      "Reps evaluated by the evaluator, by outcome (evaluated, failed: dropped after failing alone).",
                      ["outcome"])
