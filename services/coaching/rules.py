"""When a rep needs a check-in: six pure rules over a `RepView` and `now`.

Each rule is ``(view, now, policy) -> Finding | None``; `evaluate` runs them all in `model.RULES`
order. Every threshold comes from the `Policy`; time is the ``now`` parameter, never read here.
Period boundaries, pace and "today" for activity counts are in the tenant's zone; silence and due
dates are in the rep's own zone. ``view.days_off`` (holidays and time off) are not working days:
nothing is expected of a rep on them, and they are never counted as silent days.

A figure's metric is a built-in one or a KPI the tenant defined (``demos_held``, issue 22). Only
`behind_pace` reads the latter, for the KPI ids a tenant lists in ``pace_metrics``; every other rule
reads its own built-in metrics: `activity_shortfall` calls, emails, meetings and activities (those of
``activity_metrics``), `stalled_pipeline` and `forecast_short` won revenue, `falling_win_rate` the
rep's closed deals (win rate), `no_activity` the logged activities.

Summaries are one sentence with the numbers: money with thousands separators and 2 places, counts
as whole numbers, the figures of a KPI the tenant defined as plain numbers (thousands separators, at
most 2 places, no currency: coaching does not know what it counts), percentages rounded DOWN (69.5%
never reads 70%). A metric reads as its name with spaces for underscores ("demos held").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from services.coaching.model import (
    ACTIVITY_SHORTFALL,
    BEHIND_PACE,
    FALLING_WIN_RATE,
    FORECAST_SHORT,
    NO_ACTIVITY,
    RULES,
    SEVERITY_RANK,
    STALLED_PIPELINE,
    Figure,
    Finding,
    OpenDeal,
    Policy,
    RepView,
)
from shared.events import Evidence, Forecast, ForecastDeal, Metric
from shared.periods import PeriodKind, period_of
from shared.workdays import is_working_day, local_midnight, recent_working_days, working_days, working_share

__all__ = [
    "RULE_FUNCTIONS",
    "LiveTask",
    "Rule",
    "Verdict",
    "activity_shortfall",
    "behind_pace",
    "evaluate",
    "falling_win_rate",
    "forecast_short",
    "no_activity",
    "stalled_pipeline",
    "verdict",
]

Rule = Callable[[RepView, datetime, Policy], Finding | None]

_CENT = Decimal("0.01")
_BASIS_POINT = Decimal("0.0001")
_MONEY_METRICS = frozenset({Metric.WON_REVENUE, Metric.PIPELINE_CREATED, Metric.AVG_DEAL_SIZE})
_BUILT_IN = frozenset(Metric)
# the activity kind each activity metric counts; None counts every kind
_ACTIVITY_KINDS: Mapping[str, str | None] = {
    Metric.CALLS: "call",
    Metric.MEETINGS: "meeting",
    Metric.EMAILS: "email",
    Metric.ACTIVITIES: None,
}
_SINGULAR: Mapping[str, str] = {
    Metric.CALLS: "call",
    Metric.MEETINGS: "meeting",
    Metric.EMAILS: "email",
    Metric.ACTIVITIES: "activity",
}


def behind_pace(view: RepView, now: datetime, policy: Policy) -> Finding | None:
    """The worst of the rep's pace metrics whose actual is below ``pace_threshold`` of the pace.

    ``pace_metrics`` lists built-in metrics and ids of KPIs the tenant defined alike: a figure of
    ``demos_held`` with a target is checked like one of deals won once the tenant lists it there.
    For each active figure of a metric in ``pace_metrics`` with a target > 0, first seen at least
    ``new_target_grace_s`` ago (as for every rule on targets): ``share`` is the
    elapsed share of the period's working days (tenant zone, days off excluded); nothing is checked
    before ``pace_grace_share``; ``expected = target x share`` (to the cent) and ``pace = actual /
    expected``. Behind when ``pace < pace_threshold``; critical when ``pace < pace_critical_below``.

    Example (defaults 0.7 / 0.4 / 0.1): won revenue for 2026-11 (21 working days in Berlin), target
    90,000, on Monday 2026-11-16 00:00 local: share 10/21 = 0.476190, expected 42,857.10. An actual
    of 30,000 is 0.7000 of pace: no finding; 29,999 is 0.6999: a warning "Ann Lee is at 69% of pace
    on won revenue for 2026-11: 29,999.00 against 42,857.10 expected by now (target 90,000.00)."; 17,000
    (0.3966) is critical. With the whole week of the 9th off, the share is 5/16 = 0.3125, expected
    28,125.00, and 25,000 is on pace (0.8888) where without the leave it would be behind (0.5833).
    A KPI the tenant defined, ``demos_held`` listed in ``pace_metrics``, target 42 for the same month:
    expected 20.00, and 12.5 demos held read "Ann Lee is at 62% of pace on demos held for 2026-11:
    12.5 against 20.00 expected by now (target 42)."
    """
    _aware(now)
    candidates: list[tuple[Decimal, str, str, Figure, Decimal, Decimal]] = []
    for figure in _active(view.figures, now, policy.pace_metrics, policy):
        assert figure.target is not None  # _active keeps only figures with a target
        share = working_share(figure.period_start, figure.period_end, now, view.tenant_timezone, view.days_off)
        if share < policy.pace_grace_share:
            continue
        expected = (figure.target * share).quantize(_CENT)
        if expected <= 0:
            continue
        pace = figure.actual / expected
        if pace < policy.pace_threshold and expected - figure.actual >= policy.pace_min_gap_share * figure.target:
            candidates.append((pace, figure.metric, figure.period, figure, expected, share))
    if not candidates:
        return None
    pace, _, _, figure, expected, share = min(candidates, key=lambda c: c[:3])
    assert figure.target is not None
    summary = (
        f"{_who(view)} is at {_percent(pace)}% of pace on {_words(figure.metric)} for {figure.period}: "
        f"{_amount(figure.metric, figure.actual)} against {_money(expected)} expected by now "
        f"(target {_amount(figure.metric, figure.target)})."
    )
    return Finding(
        rule=BEHIND_PACE,
        severity="critical" if pace < policy.pace_critical_below else "warning",
        summary=summary,
        evidence=Evidence(metric=figure.metric, actual=figure.actual, expected=expected, period=figure.period),
        details={"pace": str(pace.quantize(_BASIS_POINT)), "target": str(figure.target), "working_share": str(share)},
    )


def activity_shortfall(view: RepView, now: datetime, policy: Policy) -> Finding | None:
    """The worst activity metric whose count over the last days is below ``activity_threshold`` of its pace.

    Built-in activity metrics only (calls, emails, meetings, activities: it counts the logged
    activities of a kind itself); a KPI the tenant defined is checked by `behind_pace` instead.

    The window is the ``activity_window_days`` full local days before today (tenant zone). For each
    active figure of a metric in ``activity_metrics`` with a target > 0: ``expected = target x
    (working days of the window inside the period) / (working days of the period)``, to the cent;
    nothing is checked when expected < 1, nor for a rep known for less than the window. ``actual`` is
    the number of activities of the metric's kind (calls: "call", meetings: "meeting", emails:
    "email", activities: any) in the window. Short when ``actual < activity_threshold x expected`` and at
    least ``activity_min_gap`` activities are missing (1 call against 2.27 expected is no finding);
    critical when ``actual / expected < activity_critical_below``.

    Example (defaults 7 days / 0.8 / 0.4): calls for 2026-11, target 84 over 21 working days, on
    Monday 2026-11-23: the window 16..22 November holds 5 working days, expected 20.00. 16 calls are
    exactly 0.8: no finding; 15 are short: "Ann Lee logged 15 calls in the last 7 days against 20.00
    expected for 2026-11 (target 84)."; 7 (0.35) are critical. With two of those days off, expected is
    13.26 (84 x 3 / 19) and 11 calls are enough.
    """
    _aware(now)
    zone = view.tenant_timezone
    today = now.astimezone(zone).date()
    window_first = today - timedelta(days=policy.activity_window_days)
    if view.known_since > local_midnight(window_first, zone):
        return None
    candidates: list[tuple[Decimal, str, str, Figure, int, Decimal, int]] = []
    for figure in _active(view.figures, now, policy.activity_metrics, policy):
        assert figure.target is not None
        if figure.metric not in _ACTIVITY_KINDS:
            continue
        first, after = _local_dates(figure, zone)
        period_days = working_days(first, after, view.days_off)
        if period_days == 0:
            continue
        window_days = working_days(max(window_first, first), min(today, after), view.days_off)
        expected = (figure.target * window_days / period_days).quantize(_CENT)
        if expected < 1:
            continue
        kind = _ACTIVITY_KINDS[figure.metric]
        # the window runs from window_first's local midnight to today's: its local days, counted per day
        actual = view.activities.count(window_first, today, kind)
        ratio = actual / expected
        if ratio < policy.activity_threshold and expected - actual >= policy.activity_min_gap:
            candidates.append((ratio, figure.metric, figure.period, figure, actual, expected, window_days))
    if not candidates:
        return None
    ratio, _, _, figure, actual, expected, window_days = min(candidates, key=lambda c: c[:3])
    assert figure.target is not None
    noun = _SINGULAR[figure.metric] if actual == 1 else _words(figure.metric)
    days = policy.activity_window_days
    summary = (
        f"{_who(view)} logged {actual} {noun} in the last {days} day{'' if days == 1 else 's'} against "
        f"{_money(expected)} expected for {figure.period} (target {_count(figure.target)})."
    )
    return Finding(
        rule=ACTIVITY_SHORTFALL,
        severity="critical" if ratio < policy.activity_critical_below else "warning",
        summary=summary,
        evidence=Evidence(metric=figure.metric, actual=Decimal(actual), expected=expected, period=figure.period),
        details={
            "ratio": str(ratio.quantize(_BASIS_POINT)),
            "target": str(figure.target),
            "window_start": window_first.isoformat(),
            "window_days": days,
            "working_days": window_days,
        },
    )


def stalled_pipeline(view: RepView, now: datetime, policy: Policy) -> Finding | None:
    """Open pipeline too thin for what is left to win, or open deals nobody has touched for too long.

    Built-in metrics only: the won-revenue figures and the rep's open deals (a KPI the tenant defined
    is never read here, even one that sums revenue).

    Stale: an open deal whose last touch is at least ``stale_deal_days`` days before ``now``.
    Coverage: of the active won-revenue figures with a target, still something to win (``remaining =
    target - actual > 0``) and past ``pace_grace_share``, the one with the most remaining; the open
    pipeline (deals in the tenant's base currency; all when it is unknown) is short below
    ``coverage_multiple x remaining`` by at least ``coverage_min_gap_share`` of the target: critical
    below ``remaining`` itself, else a warning. When coverage is fine, stale deals alone are a warning
    from ``stale_min_deals`` of them on, critical when every open deal (at least 3) is stale.

    Example (defaults 14 days, 3x): target 100,000, actual 60,000 for 2026-Q4, open deals of 50,000
    and 40,000: remaining 40,000, pipeline 90,000 < 120,000: a warning "Ann Lee has 90,000.00 of open
    pipeline against 40,000.00 still to win for 2026-Q4: 2.25x coverage, below the 3x needed
    (120,000.00)." With 120,000 open: no coverage finding; with ``stale_min_deals`` 1, if deal d-1 was
    last touched 14 days ago, "Ann Lee has 1 open deal untouched for 14 days or more: d-1." (a warning).
    """
    _aware(now)
    cutoff = now - timedelta(days=policy.stale_deal_days)
    stale = sorted((d for d in view.open_deals if d.last_touch <= cutoff), key=lambda d: (d.last_touch, d.deal_id))
    stale_ids = sorted(d.deal_id for d in stale)
    pipeline = sum((d.amount for d in view.open_deals if _counted(d, view)), Decimal(0))
    stale_amount = sum((d.amount for d in stale if _counted(d, view)), Decimal(0))
    who = _who(view)
    stale_clause = _stale_sentence(stale, policy.stale_deal_days) if stale else ""

    coverage = _coverage_figure(view, now, policy)
    if coverage is not None:
        figure, remaining = coverage
        needed = policy.coverage_multiple * remaining
        assert figure.target is not None
        if pipeline < needed and needed - pipeline >= policy.coverage_min_gap_share * figure.target:
            ratio = (pipeline / remaining).quantize(_CENT, rounding=ROUND_DOWN)
            summary = (
                f"{who} has {_money(pipeline)} of open pipeline against {_money(remaining)} still to win for "
                f"{figure.period}: {ratio}x coverage, below the {_count(policy.coverage_multiple)}x needed "
                f"({_money(needed)})"
            )
            if stale:
                summary += f", and {stale_clause}"
            details: dict[str, Any] = {"coverage": str(ratio), "remaining": str(remaining)}
            if stale:
                details |= {
                    "stale_deal_ids": stale_ids,
                    "stale_amount": str(stale_amount),
                    "days": policy.stale_deal_days,
                }
            return Finding(
                rule=STALLED_PIPELINE,
                severity="critical" if pipeline < remaining else "warning",
                summary=summary + ".",
                evidence=Evidence(
                    metric=Metric.WON_REVENUE, actual=pipeline, expected=needed.quantize(_CENT), period=figure.period
                ),
                details=details,
            )
    if len(stale) < policy.stale_min_deals:
        return None
    all_stale = len(stale) == len(view.open_deals) and len(stale) >= 3
    return Finding(
        rule=STALLED_PIPELINE,
        severity="critical" if all_stale else "warning",
        summary=f"{who} has {stale_clause}.",
        evidence=Evidence(
            metric=Metric.PIPELINE_CREATED,
            actual=Decimal(len(stale)),
            expected=Decimal(0),
            period=_month(now, view),
        ),
        details={"stale_deal_ids": stale_ids, "stale_amount": str(stale_amount), "days": policy.stale_deal_days},
    )


def falling_win_rate(view: RepView, now: datetime, policy: Policy) -> Finding | None:
    """The share of closed deals won recently fell well below the rep's own baseline.

    Built-in only: the win rate of the rep's own closed deals (no figure of kpi is read).

    Recent window ``[now - win_rate_recent_days, now)``; baseline the ``win_rate_baseline_days``
    before it. Both need enough closed deals (``win_rate_min_recent``, ``win_rate_min_baseline``).
    Falling when ``recent < baseline x (1 - win_rate_drop)``; critical when ``recent < baseline x (1 -
    win_rate_critical_drop)``.

    Example (defaults 30/90 days, 5/10 deals, 0.25/0.5): 6 of 10 won over the baseline (60%): the
    line is 45%. 9 of 20 recently (45%) is no finding; 2 of 5 (40%) is a warning "Ann Lee won 2 of 5
    deals (40%) in the last 30 days, against 60% over the 90 days before."; 1 of 5 (20%, below 30%)
    is critical.
    """
    _aware(now)
    recent_start = now - timedelta(days=policy.win_rate_recent_days)
    baseline_start = recent_start - timedelta(days=policy.win_rate_baseline_days)
    recent = [d.won for d in view.closed_deals if recent_start <= d.closed_at < now]
    baseline = [d.won for d in view.closed_deals if baseline_start <= d.closed_at < recent_start]
    if len(recent) < policy.win_rate_min_recent or len(baseline) < policy.win_rate_min_baseline:
        return None
    recent_rate = Decimal(sum(recent)) / len(recent)
    baseline_rate = Decimal(sum(baseline)) / len(baseline)
    if recent_rate >= baseline_rate * (1 - policy.win_rate_drop):
        return None
    critical = recent_rate < baseline_rate * (1 - policy.win_rate_critical_drop)
    summary = (
        f"{_who(view)} won {sum(recent)} of {len(recent)} deals ({_percent(recent_rate)}%) in the last "
        f"{policy.win_rate_recent_days} days, against {_percent(baseline_rate)}% over the "
        f"{policy.win_rate_baseline_days} days before."
    )
    return Finding(
        rule=FALLING_WIN_RATE,
        severity="critical" if critical else "warning",
        summary=summary,
        evidence=Evidence(
            metric=Metric.WIN_RATE,
            actual=recent_rate.quantize(_BASIS_POINT),
            expected=baseline_rate.quantize(_BASIS_POINT),
            period=_month(now, view),
        ),
        details={
            "recent_won": sum(recent),
            "recent_closed": len(recent),
            "baseline_won": sum(baseline),
            "baseline_closed": len(baseline),
        },
    )


def no_activity(view: RepView, now: datetime, policy: Policy) -> Finding | None:
    """No activity at all over the rep's last ``no_activity_days`` working days (their own zone).

    The silence window starts at the local midnight of the oldest of the N most recent working days
    before today (weekends and days off are skipped, so they never count as silent). A finding when
    nothing was logged since then and coaching knew the rep by then; critical when the silence also
    covers the 2N most recent working days.

    Example (default 3): on Monday 2026-11-16 the last 3 working days are Wed 11, Thu 12 and Fri 13;
    nothing logged since Wednesday 00:00 local gives "Ann Lee has logged no activity for 3 working
    days (since 2026-11-11)." A call on Tuesday the 10th makes it a warning; nothing since Thursday
    the 5th (6 working days) makes it critical. With Friday the 13th a holiday the window starts on
    Tuesday the 10th instead.
    """
    _aware(now)
    n = policy.no_activity_days
    today = now.astimezone(view.timezone).date()
    longer = recent_working_days(today, 2 * n, view.days_off)
    since = longer[n - 1]
    start = local_midnight(since, view.timezone)
    last = view.activities.last_at
    if view.known_since > start or (last is not None and last >= start):
        return None
    long_since = longer[-1]
    long_start = local_midnight(long_since, view.timezone)
    critical = view.known_since <= long_start and (last is None or last < long_start)
    days, first = (2 * n, long_since) if critical else (n, since)
    return Finding(
        rule=NO_ACTIVITY,
        severity="critical" if critical else "warning",
        summary=(
            f"{_who(view)} has logged no activity for {days} working day{'' if days == 1 else 's'} "
            f"(since {first.isoformat()})."
        ),
        evidence=Evidence(metric=Metric.ACTIVITIES, actual=Decimal(0), expected=Decimal(n), period=_month(now, view)),
        details={
            "working_days": days,
            "since": first.isoformat(),
            "last_activity_at": None if last is None else last.isoformat(),
        },
    )


def forecast_short(view: RepView, now: datetime, policy: Policy) -> Finding | None:
    """The won-revenue forecast falls short of the target, and the open deals expected to close in the
    period are too few to close the gap.

    Built-in only: the won-revenue figures, the only ones kpi forecasts.

    Of the active won-revenue figures with a target > 0 (first seen at least ``new_target_grace_s`` ago and
    past ``pace_grace_share`` of the period's working days, as for the coverage of `stalled_pipeline`) that
    carry kpi's forecast: short when ``weighted < target`` (won so far plus each open deal's amount x
    probability: the expected end of period) and ``open = commit + best_case + pipeline < gap x
    forecast_coverage`` (``gap = target - won so far``; omitted deals count nowhere). Of several, the one
    with the most still to win. A figure without a forecast (another metric, an ended period, an event from
    before forecasts) raises nothing.

    Severity as for coverage in `stalled_pipeline`: critical when ``open < gap`` (winning every open deal of
    the period still leaves a gap: only new or pulled-in deals can close it), a warning when the open deals
    cover the gap but not ``forecast_coverage`` times (a tenant's 3x rule). With the default 1x, every
    finding is critical.

    Example (default 1x): target 100,000 for 2026-Q4, 50,000 won, open deals expected in the quarter of
    20,000 (commit 12,000, best case 8,000), weighted 61,500, probability 0.2345: gap 50,000 > 20,000, a
    critical "Ann Lee is forecast at 61,500.00 of 100,000.00 won revenue for 2026-Q4 (a 23% chance of
    reaching it): 50,000.00 still to win, and the open deals expected to close in 2026-Q4 total 20,000.00."
    With ``forecast_coverage`` 3, 120,000 open and a weighted 95,000: a warning ending "... total
    120,000.00, below the 3x needed (150,000.00)." A weighted forecast of exactly 100,000 is no finding, nor
    are open deals of exactly gap x coverage.
    """
    _aware(now)
    candidates: list[tuple[Decimal, str, Figure, Forecast, Decimal]] = []
    for figure in _active(view.figures, now, (Metric.WON_REVENUE,), policy):
        forecast = figure.forecast
        assert figure.target is not None
        if forecast is None:
            continue
        share = working_share(figure.period_start, figure.period_end, now, view.tenant_timezone, view.days_off)
        if share < policy.pace_grace_share:
            continue
        open_ = forecast.commit + forecast.best_case + forecast.pipeline
        if forecast.weighted < figure.target and open_ < forecast.gap * policy.forecast_coverage:
            candidates.append((-forecast.gap, figure.period, figure, forecast, open_))
    if not candidates:
        return None
    # the most still to win; on a tie, the first period label, so the choice is deterministic
    _, _, figure, forecast, open_ = min(candidates, key=lambda c: c[:2])
    assert figure.target is not None
    needed = forecast.gap * policy.forecast_coverage
    chance = "" if forecast.probability is None else f" (a {_percent(forecast.probability)}% chance of reaching it)"
    summary = (
        f"{_who(view)} is forecast at {_money(forecast.weighted)} of {_money(figure.target)} won revenue for "
        f"{figure.period}{chance}: {_money(forecast.gap)} still to win, and the open deals expected to close in "
        f"{figure.period} total {_money(open_)}"
    )
    if open_ >= forecast.gap:  # covered once, but not as many times as the tenant asks
        summary += f", below the {_count(policy.forecast_coverage)}x needed ({_money(needed)})"
    return Finding(
        rule=FORECAST_SHORT,
        severity="critical" if open_ < forecast.gap else "warning",
        summary=summary + ".",
        evidence=Evidence(metric=Metric.WON_REVENUE, actual=forecast.weighted, expected=figure.target,
                          period=figure.period),
        details={
            "target": str(figure.target), "closed": str(forecast.closed), "weighted": str(forecast.weighted),
            "gap": str(forecast.gap), "open": str(open_), "commit": str(forecast.commit),
            "best_case": str(forecast.best_case), "pipeline": str(forecast.pipeline),
            "coverage": str(policy.forecast_coverage), "needed": str(needed.quantize(_CENT)),
            "probability": None if forecast.probability is None else str(forecast.probability),
            "method": forecast.method, "error": None if forecast.error is None else str(forecast.error),
            "open_deals": forecast.open_deals, "estimated": forecast.estimated, "undated": forecast.undated,
            "deals": [deal.model_dump(mode="json") for deal in forecast.deals],
            "closing_deals": [_deal_clause(deal, view.tenant_timezone) for deal in forecast.deals],
        },
    )


RULE_FUNCTIONS: Mapping[str, Rule] = {
    BEHIND_PACE: behind_pace,
    ACTIVITY_SHORTFALL: activity_shortfall,
    STALLED_PIPELINE: stalled_pipeline,
    FALLING_WIN_RATE: falling_win_rate,
    NO_ACTIVITY: no_activity,
    FORECAST_SHORT: forecast_short,
}


def evaluate(view: RepView, now: datetime, policy: Policy,
             live: Mapping[str, str] | None = None) -> list[Finding]:
    """Every rule's finding for the rep at ``now``, in `model.RULES` order.

    ``live`` maps each rule with a live check-in to its severity. Such a rule is judged with hysteresis:
    its finding holds (and the check-in stays live) until the rule's recovery level (`Policy.holding`),
    not merely once the numbers are back above the level it opened at. A finding that holds only by the
    recovery level is never worse than the live check-in (it keeps it, it does not supersede it).

    Example (defaults 0.7 to open, 0.8 to recover): at 0.75 of pace a rep with no live check-in has no
    finding; one with a live behind-pace check-in keeps it; at 0.8 it recovers.

    One thing is not asked twice: a new `forecast_short` finding is left out when `stalled_pipeline` already
    finds the open pipeline too thin for what is left to win (its coverage finding, at least as severe): a
    rep with no deals at all gets one pipeline check-in, not two. The forecast's check-in speaks where the
    coverage check is silent (enough pipeline overall, but too little of it expected to close in the period,
    or at too low odds). A live forecast check-in is never dropped this way (that would read as a recovery).
    """
    live = live or {}
    findings: list[Finding] = []
    for rule in RULES:
        finding = RULE_FUNCTIONS[rule](view, now, policy)
        if finding is None and rule in live:
            finding = RULE_FUNCTIONS[rule](view, now, policy.holding())
            if finding is not None and SEVERITY_RANK[finding.severity] > SEVERITY_RANK.get(live[rule], 0):
                finding = replace(finding, severity=live[rule])  # type: ignore[arg-type]
        if finding is not None:
            findings.append(finding)
    coverage = next((f for f in findings if f.rule == STALLED_PIPELINE and "coverage" in f.details), None)
    if coverage is not None and FORECAST_SHORT not in live:
        findings = [f for f in findings if f.rule != FORECAST_SHORT
                    or SEVERITY_RANK[f.severity] > SEVERITY_RANK[coverage.severity]]
    return findings


# --- helpers ---------------------------------------------------------------------------------------------


def _active(figures: Iterable[Figure], now: datetime, metrics: Iterable[str], policy: Policy) -> list[Figure]:
    """The figures of ``metrics`` with a target > 0 whose period holds ``now``, seen for at least
    ``new_target_grace_s`` (a target coaching has only just learnt of is not held against the rep yet)."""
    wanted = frozenset(metrics)
    seen_before = now - timedelta(seconds=policy.new_target_grace_s)
    return [
        f
        for f in figures
        if f.metric in wanted
        and f.target is not None
        and f.target > 0
        and f.period_start <= now < f.period_end
        and f.first_seen_at <= seen_before
    ]


def _coverage_figure(view: RepView, now: datetime, policy: Policy) -> tuple[Figure, Decimal] | None:
    """The active won-revenue figure past the grace share with the most still to win, and that amount."""
    candidates: list[tuple[Decimal, str, Figure]] = []
    for figure in _active(view.figures, now, (Metric.WON_REVENUE,), policy):
        assert figure.target is not None
        remaining = figure.target - figure.actual
        if remaining <= 0:
            continue
        share = working_share(figure.period_start, figure.period_end, now, view.tenant_timezone, view.days_off)
        if share >= policy.pace_grace_share:
            candidates.append((-remaining, figure.period, figure))
    if not candidates:
        return None
    # the most remaining wins; on a tie, the first period label, so the choice is deterministic
    negative, _, figure = min(candidates, key=lambda c: c[:2])
    return figure, -negative


def _stale_sentence(stale: list[OpenDeal], days: int) -> str:
    """The clause naming stale deals, oldest first and at most 3: '4 open deals untouched for 14 days or more:
    d-7, d-3, d-9 and 1 more'."""
    ids = [d.deal_id for d in stale[:3]]
    named = ids[0] if len(ids) == 1 else f"{', '.join(ids[:-1])} and {ids[-1]}"
    if len(stale) > 3:
        named = f"{', '.join(ids)} and {len(stale) - 3} more"
    noun = "deal" if len(stale) == 1 else "deals"
    return f"{len(stale)} open {noun} untouched for {days} days or more: {named}"


def _deal_clause(deal: ForecastDeal, zone: ZoneInfo) -> str:
    """An open deal of a forecast as a check-in names it: 'd-7 (12,000.00 at 60% by 2026-12-10)' (its expected
    close as a local date of the tenant's zone, where periods are counted)."""
    day = deal.expected_close_at.astimezone(zone).date().isoformat()
    return f"{deal.deal_id} ({_money(deal.amount)} at {_percent(deal.probability)}% by {day})"


def _counted(deal: OpenDeal, view: RepView) -> bool:
    """Only amounts in the tenant's base currency add up (all of them when it is unknown)."""
    return view.base_currency is None or deal.currency == view.base_currency


def _local_dates(figure: Figure, zone: ZoneInfo) -> tuple[date, date]:
    return figure.period_start.astimezone(zone).date(), figure.period_end.astimezone(zone).date()


def _month(now: datetime, view: RepView) -> str:
    return period_of(PeriodKind.MONTH, now, view.tenant_timezone).label


def _who(view: RepView) -> str:
    return view.name or view.rep_id


def _words(metric: str) -> str:
    """A metric as a sentence names it: 'won revenue', 'demos held' (a KPI's id, underscores as spaces)."""
    return str(metric).replace("_", " ")


def _percent(ratio: Decimal) -> Decimal:
    return (ratio * 100).quantize(Decimal(1), rounding=ROUND_DOWN)  # 69.5% must not read "70%"


def _money(value: Decimal) -> str:
    return f"{value.quantize(_CENT):,}"


def _count(value: Decimal) -> str:
    """A count or a multiple as written by hand: 50, 12.5, 1,200."""
    if value == value.to_integral_value():
        return f"{int(value):,}"
    return f"{value.normalize():,f}"


def _amount(metric: str, value: Decimal) -> str:
    """A figure of ``metric``: money, a built-in count, or a plain number of a KPI the tenant defined (what it
    counts is the tenant's: no currency, at most 2 places, 12.5 and 1,200 as written by hand)."""
    if metric in _MONEY_METRICS:
        return _money(value)
    return _count(value) if metric in _BUILT_IN else _count(value.quantize(_CENT))


def _aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")


# --- from findings to check-ins (pure) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveTask:
    """A check-in still waiting for someone (open or acknowledged)."""

    task_id: str
    rule: str
    severity: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one rep's findings do to their check-ins, before the cool-down gate has its say."""

    raise_: tuple[tuple[Finding, LiveTask | None], ...]  # a finding to raise, and the live task it would supersede
    recovered: tuple[LiveTask, ...]  # live check-ins whose rule found nothing: closed as recovered


def verdict(findings: Sequence[Finding], live: Sequence[LiveTask]) -> Verdict:
    """One live check-in per rule: a finding is raised when its rule has no live check-in, or a worse one
    than the live one (which the new check-in then supersedes, once it is created); a live check-in whose
    rule finds nothing any more is recovered. `live` oldest first: of two live check-ins of a rule (a race
    of old), the newest is the one compared and closed.

    Example: live warning `behind_pace` and live `no_activity`; findings: critical `behind_pace`, warning
    `stalled_pipeline` -> raise both (the first superseding the live `behind_pace`), `no_activity` recovered.
    """
    by_rule = {task.rule: task for task in live}
    raised: list[tuple[Finding, LiveTask | None]] = []
    for finding in findings:
        before = by_rule.get(finding.rule)
        if before is not None and SEVERITY_RANK[finding.severity] <= SEVERITY_RANK[before.severity]:
            continue  # still being handled (or escalated): one live check-in per rule, not one a week
        raised.append((finding, before))
    found = {f.rule for f in findings}
    return Verdict(tuple(raised), tuple(task for rule, task in by_rule.items() if rule not in found))


def resting(view: RepView, now: datetime) -> bool:
    """Is ``now`` a day off of the rep in their own zone: a weekend, one of the tenant's holidays or their time
    off? Nothing new is raised on such a day (no check-in, no escalation): it waits for their next working day,
    when the rules find it again if it still holds. A live check-in may still recover on it.

    Example: a Berlin rep behind pace on Friday 2026-12-25 (Christmas Day, a holiday of a tenant in DE) at
    10:00 is resting; the check-in is raised on Monday 2026-12-28 if they are still behind.
    """
    return not is_working_day(now.astimezone(view.timezone).date(), view.days_off)
