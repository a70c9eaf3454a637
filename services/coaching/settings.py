from decimal import Decimal
from typing import Any

from pydantic import Field

from services.coaching.model import Policy
from shared.settings import ServiceSettings


class CoachingSettings(ServiceSettings):
    """coaching's knobs; the thresholds set here are the defaults under each tenant's and team's own."""

    http_port: int = 8003
    coaching_evaluation_interval_s: float = Field(default=60.0, gt=0)
    # how soon the reps new events touched are evaluated (meanwhile, touches of one rep are coalesced)
    coaching_evaluation_delay_s: float = Field(default=1.0, gt=0)
    coaching_pace_threshold: Decimal = Field(default=Decimal("0.7"), gt=0)
    coaching_grace_s: int = Field(default=3 * 86400, ge=0)
    coaching_cooldown_days: int = Field(default=7, ge=1)
    # any other threshold of `Policy`, as JSON, e.g. {"no_activity_days": 5, "review_hour": 9}
    coaching_policy: dict[str, Any] = Field(default_factory=dict)

    def policy(self) -> Policy:
        return Policy().with_overrides({"pace_threshold": self.coaching_pace_threshold,
                                        "new_target_grace_s": self.coaching_grace_s,
                                        "cooldown_days": self.coaching_cooldown_days}, self.coaching_policy)
