"""When kpi turns moved tallies into figures (`kpi.attainment.updated`): pure timing rules.

Flushing costs in proportion to the figures it sends, not to the records behind them. So kpi
flushes as often as it can afford: right away when the last flush was cheap (a quiet stream: every
batch's figures go out in the batch's own transaction, the lowest latency), and otherwise not
before flushing has taken at most `share` of the time since. The keys moved in between are parked
(`pending_figures`, in the batches' own transactions, so nothing is lost) and sent together: under
a backlog or a busy stream a figure that moves in ten batches goes out once, and kpi applies
records at nearly the speed it would without sending anything. Kafka Streams' record cache with
its commit interval does the same for a KTable's downstream updates, with a fixed interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class FlushPacer:
    share: float = 0.25  # flushing takes at most this share of the time while work keeps coming
    min_gap_s: float = 0.0
    clock: Callable[[], float] = time.monotonic
    _last_end: float = field(default=float("-inf"))
    _last_cost: float = 0.0

    def due(self) -> bool:
        """Flush now? Yes unless the last flush ended too recently for what it cost."""
        gap = max(self.min_gap_s, self._last_cost * (1 - self.share) / self.share)
        return self.clock() - self._last_end >= gap

    def start(self) -> float:
        return self.clock()

    def done(self, started: float) -> None:
        self._last_end = self.clock()
        self._last_cost = self._last_end - started
