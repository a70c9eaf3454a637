from shared.settings import ServiceSettings


class KpiSettings(ServiceSettings):
    http_port: int = 8002
    # The dashboard shows check-ins, action plans and celebrations from these read APIs (same token).
    dashboard_coaching_url: str = "http://127.0.0.1:8003"
    dashboard_recognition_url: str = "http://127.0.0.1:8004"
    # The control room (dashboard/control*.py) writes through ingest's API with the admin's own token, and the
    # OpenID Connect sign-in asks ingest for a session token: one path for every change.
    dashboard_ingest_url: str = "http://127.0.0.1:8001"
    # notify's API: the control room's notification channels and undelivered messages, each person's preferences
    # and the e-mails' one-click unsubscribe (dashboard/control_notify.py, dashboard/notify_pages.py)
    dashboard_notify_url: str = "http://127.0.0.1:8005"
    # Publish every changed figure on kpi.attainment.v1, not only those with a target (CONTRACT.md section 3).
    kpi_publish_all_figures: bool = False
