from datetime import timedelta
from decimal import Decimal

from pydantic import Field

from services.coaching.rules import Policy
from shared.settings import ServiceSettings


class CoachingSettings(ServiceSettings):
    http_port: int = 8003
    coaching_evaluation_interval_s: float = Field(default=60.0, gt=0)
    coaching_pace_threshold: Decimal = Field(default=Decimal("0.7"), gt=0)
    coaching_grace_s: int = Field(default=3 * 86400, ge=0)
    coaching_cooldown_s: int = Field(default=7 * 86400, gt=0)

    def policy(self) -> Policy:
        return Policy(threshold=self.coaching_pace_threshold, grace=timedelta(seconds=self.coaching_grace_s),
                      cooldown=timedelta(seconds=self.coaching_cooldown_s))
