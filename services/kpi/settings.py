from shared.settings import ServiceSettings


class KpiSettings(ServiceSettings):
    http_port: int = 8002
    # The dashboard shows check-ins, action plans and celebrations from these read APIs (same token).
    dashboard_coaching_url: str = "http://127.0.0.1:8003"
    dashboard_recognition_url: str = "http://127.0.0.1:8004"
    # The control room (dashboard/control*.py) writes through ingest's API with the admin's own token, and the
    # OpenID Connect sign-in asks ingest for a session token: one path for every change.
    dashboard_ingest_url: str = "http://127.0.0.1:8001"
    # Publish every changed figure on kpi.attainment.v1, not only those with a target (CONTRACT.md section 3).
    kpi_publish_all_figures: bool = False
