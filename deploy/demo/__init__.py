"""The Attain demo: one simulated sales quarter streamed through the five services.

`python -m deploy.demo` starts the local stack and the services, plays a seeded quarter of CRM
events through ingest in `--duration` real seconds, and shows what Attain makes of it, live:
attainment, check-ins, celebrations. `simulator` and `book` are pure; the rest is I/O.
"""
