from pydantic import Field

from shared.settings import ServiceSettings


class RecognitionSettings(ServiceSettings):
    http_port: int = 8004
    # how often closed periods are settled (leaderboard finishes, each team's largest deal)
    recognition_interval_s: float = Field(default=60.0, gt=0)
    # how often contest leads are checked (a lead is celebrated once it lasted the tenant's debounce)
    recognition_contest_interval_s: float = Field(default=5.0, gt=0)
