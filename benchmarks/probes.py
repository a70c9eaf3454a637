"""Which records of the output topics are a probe's, and when each probe's were first seen (pure)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal

MILESTONE = "quota_100"  # a win worth exactly the target crosses 100 %


@dataclass
class Probes:
    """Probe reps: when each one's win was accepted, and when its figure and its celebration were first seen.

    A probe's figure is the first `kpi.attainment.updated` of the tenant for scope `rep`, that rep, metric
    `won_revenue`, the quarter of its target, with `actual` at or above the target (so not the zero a target
    set earlier may have published); its celebration is the first `recognition.milestone.reached` of that
    rep with milestone `quota_100`. Only reps in `accepted` (registered before their win is posted) count.
    """

    tenant: str
    period: str  # the quarter the probes' targets are set for
    target: Decimal
    accepted: dict[str, float] = field(default_factory=dict)  # rep -> when ingest accepted its win
    attainment: dict[str, float] = field(default_factory=dict)  # rep -> when its figure was first seen
    celebration: dict[str, float] = field(default_factory=dict)

    def seen(self, key: bytes | None, headers: list[tuple[str, bytes]], value: bytes | None, at: float) -> None:
        """One record of the attainment or celebration topic, read at `at` (most are not a probe's: the key,
        `<tenant>:...:<rep>:...`, is tested before anything is decoded)."""
        if key is None or value is None or b":probe-" not in key:
            return
        h = dict(headers)
        if h.get("ce_tenant", b"").decode() != self.tenant:
            return
        data = json.loads(value)
        rep = data.get("scope_id", "")
        if data.get("scope") != "rep" or rep not in self.accepted:
            return
        kind = h.get("ce_type", b"").decode()
        if kind == "kpi.attainment.updated":
            if data.get("metric") == "won_revenue" and data.get("period") == self.period \
                    and Decimal(data["actual"]) >= self.target:
                self.attainment.setdefault(rep, at)
        elif kind == "recognition.milestone.reached" and data.get("milestone") == MILESTONE:
            self.celebration.setdefault(rep, at)

    def latencies(self, reps: list[str]) -> tuple[list[float], list[float]]:
        """Seconds from acceptance to figure, and to celebration, of those of `reps` that were seen."""
        return ([self.attainment[r] - self.accepted[r] for r in reps if r in self.attainment],
                [self.celebration[r] - self.accepted[r] for r in reps if r in self.celebration])
