"""When kpi turns moved tallies into figures (`kpi.attainment.updated`): pure timing rules.

While kpi keeps up (a batch smaller than the largest it may take), every batch's figures go out
in the batch's own transaction: the lowest latency. Under a backlog (full batches), the keys
whose tallies moved are parked (`pending_figures`, in the batch's transaction, so nothing is
lost) and flushed together, at most every `min_gap_s` and so that flushing takes at most `share`
of the time: a figure that moves in ten batches is then sent once, not ten times, and a backlog
drains at nearly the speed of applying it. Kafka Streams' record cache with its commit interval
does the same for a KTable's downstream updates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class FlushPacer:
    full_batch: int
    min_gap_s: float = 1.0
    share: float = 0.25  # at most this share of the time goes to flushing under backlog
    clock: Callable[[], float] = time.monotonic
    _last_end: float = field(default=float("-inf"))
    _last_cost: float = 0.0

    def due(self, batch_size: int | None = None) -> bool:
        """Flush now? `batch_size` of the batch at hand, or None when asked between batches."""
        if batch_size is not None and batch_size < self.full_batch:
            return True
        gap = max(self.min_gap_s, self._last_cost * (1 - self.share) / self.share)
        return self.clock() - self._last_end >= gap

    def start(self) -> float:
        return self.clock()

    def done(self, started: float) -> None:
        self._last_end = self.clock()
        self._last_cost = self._last_end - started
