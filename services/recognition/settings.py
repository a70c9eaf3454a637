from shared.settings import ServiceSettings


class RecognitionSettings(ServiceSettings):
    http_port: int = 8004
