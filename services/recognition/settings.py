from pydantic import Field

from shared.settings import ServiceSettings


class RecognitionSettings(ServiceSettings):
    http_port: int = 8004
    # how often closed periods are settled (leaderboard finishes, each team's largest deal)
    recognition_interval_s: float = Field(default=60.0, gt=0)
