"""recognition's business metric: celebrations announced, by kind of milestone."""

from prometheus_client import Counter

CELEBRATIONS = Counter("attain_recognition_celebrations_total",
                       "Celebrations announced (each once, ever), by kind of milestone and scope.", ["kind", "scope"])
