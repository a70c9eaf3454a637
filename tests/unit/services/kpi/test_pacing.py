"""Figures go out with every batch while kpi keeps up, and coalesced under a backlog."""

from services.kpi.pacing import FlushPacer


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_batch_smaller_than_full_always_flushes() -> None:
    pacer = FlushPacer(full_batch=1000, clock=Ticks())
    pacer.done(pacer.start())
    assert pacer.due(999)


def test_under_backlog_flushes_wait_at_least_the_minimum_gap() -> None:
    ticks = Ticks()
    pacer = FlushPacer(full_batch=1000, min_gap_s=1.0, clock=ticks)
    assert pacer.due(1000)  # never flushed: due
    pacer.done(pacer.start())
    ticks.now += 0.5
    assert not pacer.due(1000) and not pacer.due(None)
    ticks.now += 0.5
    assert pacer.due(1000) and pacer.due(None)


def test_an_expensive_flush_spaces_the_next_so_flushing_takes_a_quarter_of_the_time() -> None:
    ticks = Ticks()
    pacer = FlushPacer(full_batch=1000, min_gap_s=1.0, share=0.25, clock=ticks)
    started = pacer.start()
    ticks.now += 4.0  # a 4 s flush
    pacer.done(started)
    ticks.now += 11.9
    assert not pacer.due(1000)
    ticks.now += 0.1  # 12 s of work for 4 s of flushing
    assert pacer.due(1000)
    assert pacer.due(10)  # and a small batch (kpi caught up) flushes at once regardless
