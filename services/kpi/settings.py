from shared.settings import ServiceSettings


class KpiSettings(ServiceSettings):
    http_port: int = 8002
