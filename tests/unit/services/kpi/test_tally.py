from decimal import Decimal

from services.kpi.figures import published
from services.kpi.tally import Tally, ratio4, values
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


def test_ratios_round_half_to_even_at_four_places_exactly() -> None:
    assert ratio4(1, 20_000) == Decimal("0.0000")  # 0.00005: a tie, to the even 0
    assert ratio4(3, 20_000) == Decimal("0.0002")  # 0.00015: a tie, to the even 2
    assert ratio4(Decimal("100.00005"), 1) == Decimal("100.0000")
    assert ratio4(Decimal("100.00015"), 1) == Decimal("100.0002")
    assert ratio4(Decimal("100.000150001"), 1) == Decimal("100.0002")  # past the tie: up
    assert ratio4(2, 3) == Decimal("0.6667") and ratio4(1, 3) == Decimal("0.3333")
    assert str(ratio4(1, 2)) == "0.5000" and str(ratio4(5, 0)) == "0"


def test_a_figure_is_published_when_it_has_a_target_or_the_operator_asks_for_all() -> None:
    assert published(Decimal("100"))
    assert published(Decimal("0"))
    assert not published(None)
    assert published(None, publish_all=True)
