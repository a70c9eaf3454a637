"""Figures go out with every batch while flushing is cheap, and coalesced while it is not."""

from services.kpi.pacing import FlushPacer


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_first_flush_and_cheap_flushes_are_always_due() -> None:
    ticks = Ticks()
    pacer = FlushPacer(clock=ticks)
    assert pacer.due()
    pacer.done(pacer.start())  # cost 0: a quiet stream flushes every batch
    assert pacer.due()


def test_an_expensive_flush_spaces_the_next_so_flushing_takes_a_quarter_of_the_time() -> None:
    ticks = Ticks()
    pacer = FlushPacer(share=0.25, clock=ticks)
    started = pacer.start()
    ticks.now += 4.0  # a 4 s flush
    pacer.done(started)
    ticks.now += 11.9
    assert not pacer.due()
    ticks.now += 0.1  # 12 s of other work for 4 s of flushing
    assert pacer.due()


def test_a_minimum_gap_holds_even_after_cheap_flushes() -> None:
    ticks = Ticks()
    pacer = FlushPacer(min_gap_s=1.0, clock=ticks)
    pacer.done(pacer.start())
    ticks.now += 0.5
    assert not pacer.due()
    ticks.now += 0.5
    assert pacer.due()
