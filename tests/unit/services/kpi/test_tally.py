from decimal import Decimal

from services.kpi.metrics import Tally, values
from shared.events import Metric


def test_ratios_with_nothing_to_divide_by_are_zero() -> None:
    empty = values(Tally())
    assert empty[Metric.WIN_RATE] == 0 and empty[Metric.AVG_DEAL_SIZE] == 0
    assert empty[Metric.WON_REVENUE] == 0 and empty[Metric.CALLS] == 0


def test_win_rate_and_average_deal_size_are_exact() -> None:
    figures = values(Tally(won_revenue=Decimal("1000.01"), deals_won=3, deals_lost=4, calls=2))
    assert figures[Metric.WIN_RATE] == Decimal("0.4286")
    assert figures[Metric.AVG_DEAL_SIZE] == Decimal("333.3367")
    assert figures[Metric.DEALS_WON] == 3 and figures[Metric.CALLS] == 2
