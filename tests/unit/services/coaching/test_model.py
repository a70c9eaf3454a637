"""The `Policy`: which metrics a tenant or a team may list for the rules (built-in ones, and for
behind_pace the ids of KPIs the tenant defined), and how a bad entry is refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.coaching.model import Policy
from shared.events import Metric

DEFAULTS = Policy()


def test_the_pace_metrics_take_kpi_ids_next_to_built_in_metrics() -> None:
    policy = DEFAULTS.with_overrides({"pace_metrics": ["won_revenue", "demos_held", "new_logo_revenue"]})
    assert policy.pace_metrics == ("won_revenue", "demos_held", "new_logo_revenue")
    assert policy.pace_metrics[0] == Metric.WON_REVENUE
    assert policy.model_dump(mode="json")["pace_metrics"] == ["won_revenue", "demos_held", "new_logo_revenue"]


def test_a_team_list_replaces_the_tenants() -> None:
    tenant = {"pace_metrics": ["won_revenue", "demos_held"]}
    assert DEFAULTS.with_overrides(tenant, {"pace_metrics": ["calls_booked"]}).pace_metrics == ("calls_booked",)
    assert DEFAULTS.with_overrides(tenant, {"pace_metrics": []}).pace_metrics == ()  # behind_pace off


def test_the_built_in_pace_metrics_stay_the_default() -> None:
    assert DEFAULTS.model_dump(mode="json")["pace_metrics"] == ["won_revenue", "deals_won", "pipeline_created"]


@pytest.mark.parametrize("bad", ["Demos Held", "demos-held", "1st_demos", "", "d" * 41, 7])
def test_an_entry_that_is_no_metric_name_is_refused_naming_it(bad: object) -> None:
    with pytest.raises(ValidationError) as caught:
        DEFAULTS.with_overrides({"pace_metrics": ["won_revenue", bad]})
    [error] = caught.value.errors()
    assert error["loc"] == ("pace_metrics", 1) and error["input"] == bad


def test_the_activity_metrics_stay_built_in() -> None:
    """activity_shortfall counts logged activities of a kind itself: a KPI the tenant defined has none."""
    assert DEFAULTS.with_overrides({"activity_metrics": ["emails"]}).activity_metrics == (Metric.EMAILS,)
    with pytest.raises(ValidationError) as caught:
        DEFAULTS.with_overrides({"activity_metrics": ["calls", "demos_held"]})
    assert caught.value.errors()[0]["loc"] == ("activity_metrics", 1)
