"""What every page of the dashboard shares: the session (sign-in stores the tenant's bearer token in an
HttpOnly cookie; a TV opened with a share link holds the link), the tenant's formats and periods, and
rendering (a whole page, or its <main> for the live refresh and the TV rotation)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

import jinja2
from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import Headers

from services.kpi import pace
from services.kpi.custom import KpiDefinition
from services.kpi.dashboard import live, queries, view
from shared import ratelimit, share_link, token_store
from shared.authz import EVERYONE, Principal, admit_with
from shared.db import tenant_tx
from shared.events import Metric, Role
from shared.periods import PeriodError, PeriodKind, parse_period, period_bounds, period_of
from shared.registry_signing import RegistryVerifier
from shared.service import Runtime, runtime_of
from shared.workdays import working_share

HERE = Path(__file__).resolve().parent
COOKIE = "attain_dashboard"
COOKIE_DAYS = 30
SHARED = "share:"  # the session cookie of a TV opened with a share link holds the link, not a token
METRIC_NAMES: dict[str, str] = {  # the built-in metrics' words (a tenant's own KPIs: `Metrics`)
    Metric.WON_REVENUE: "Won revenue", Metric.DEALS_WON: "Deals won", Metric.WIN_RATE: "Win rate",
    Metric.PIPELINE_CREATED: "Pipeline created", Metric.AVG_DEAL_SIZE: "Average deal size", Metric.CALLS: "Calls",
    Metric.EMAILS: "E-mails", Metric.MEETINGS: "Meetings", Metric.ACTIVITIES: "Activities"}
BAR_SCALE = Decimal("1.5")  # bars run to 150 % of target

Rt = Annotated[Runtime, Depends(runtime_of)]
TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                               trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)


@dataclass
class Dashboard:
    """kpi's per-process dashboard state (`ServiceSpec.context`)."""

    hub: live.Hub = field(default_factory=live.Hub)
    verifier: RegistryVerifier | None = None  # of share links, loaded on first use


def make_context(_rt: Runtime) -> Dashboard:
    return Dashboard()


async def session_principal(request: Request, rt: Rt) -> Principal:
    """The holder of the token the sign-in page stored (or of a TV's share link); to the sign-in page without
    a valid one."""
    credential = request.cookies.get(COOKIE, "").strip()
    if credential:
        who = await holder(rt, credential)
        if who is not None:
            if request.method == "GET" and not credential.startswith(SHARED):
                from services.kpi.dashboard import sso  # noqa: PLC0415 - sso.py imports this module

                cookies = await sso.renewed(request, rt, credential)  # a single sign-on session near its end
                if cookies is not None:  # the same page again, with the new session's cookies
                    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    raise HTTPException(303, "session renewed", headers=Headers(raw=[(b"location", here.encode()),
                                                                                    *cookies.raw]))
            request.state.role = who.role  # the page's menu offers the control room to an admin (`render`)
            request.state.person = who.rep_id or who.manager_id  # and their notification settings to a person
            return who
        ratelimit.note_failed_authentication(request.scope)  # a guessed token counts as a bad bearer token does
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    raise HTTPException(303, "sign in first", headers={"Location": f"/signin?next={quote(here)}"})


def session_for(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the session's holder, when its role is one of `roles` (403 otherwise)."""
    return admit_with(session_principal, *roles)


async def holder(rt: Runtime, credential: str) -> Principal | None:
    """Who the session cookie speaks for: a token's holder, or a TV's share link (`share:<link>`, a viewer)."""
    async with rt.pool.acquire() as conn:  # the tokens are readable before the tenant is known
        if credential.startswith(SHARED):
            found = share_link.read(_verifier(rt), credential.removeprefix(SHARED))
            return await token_store.viewer_by_id(conn, *found, rt.clock.now()) if found else None
        return await token_store.principal(conn, credential, rt.clock.now())


def _verifier(rt: Runtime) -> RegistryVerifier:
    """The registry's public keys (REGISTRY_VERIFY_KEYS): ingest signs share links with its registry key."""
    context = rt.context
    if not isinstance(context, Dashboard) or context.verifier is None:
        verifier = rt.settings.registry_verifier()
        if isinstance(context, Dashboard):
            context.verifier = verifier
        return verifier
    return context.verifier


Anyone = Annotated[Principal, Depends(session_for(*EVERYONE))]  # leaderboards, teams, TV, live stream: all roles
People = Annotated[Principal, Depends(session_for("admin", "integration", "manager", "rep"))]  # then `see_rep`
Actor = Annotated[Principal, Depends(session_for("admin", "manager", "rep"))]  # acts on check-ins
Planner = Annotated[Principal, Depends(session_for("admin", "manager"))]
Coach = Annotated[Principal, Depends(session_for("admin", "integration", "manager"))]  # coaching's effect


async def session_tenant(who: Anyone) -> str:
    return who.tenant


Tenant = Annotated[str, Depends(session_tenant)]


Unit = Literal["money", "percent", "number", "whole", "duration"]
RATIOS = frozenset({Metric.WIN_RATE.value, Metric.AVG_DEAL_SIZE.value})  # a projection of these says nothing


@dataclass(frozen=True)
class Metrics:
    """The metrics a tenant's pages show: the built-in ones, then the KPIs it defined (`kpi_id` -> definition),
    read once per request (`basics`). A KPI's figure reads by what it counts: money for the sum or average of
    deals (the tenant's currency), hours and minutes for that of activities (their durations, in seconds), a
    whole number for a count of records or of deals."""

    kpis: Mapping[str, KpiDefinition] = field(default_factory=dict)

    @property
    def names(self) -> dict[str, str]:
        """Every metric a page may show, with its words: the built-in ones, then the KPIs by name."""
        kpis = sorted(self.kpis.items(), key=lambda k: (k[1].name.casefold(), k[0]))
        return {str(m): words for m, words in METRIC_NAMES.items()} | {kpi_id: d.name for kpi_id, d in kpis}

    def name(self, metric: str) -> str:
        """A metric's words; one neither built in nor defined (any more) reads as its id in words."""
        kpi = self.kpis.get(metric)
        return kpi.name if kpi else METRIC_NAMES.get(metric) or metric.replace("_", " ")

    def unit(self, metric: str) -> Unit:
        kpi = self.kpis.get(metric)
        if kpi is None:
            if metric == Metric.WIN_RATE.value:
                return "percent"
            return "money" if metric in queries.MONEY else "number"
        if kpi.aggregation in ("sum", "average"):
            return "money" if kpi.source == "deals" else "duration"
        return "whole"

    def ratio(self, metric: str) -> bool:
        """A ratio does not grow with time: a win rate, an average deal size, a KPI's average."""
        kpi = self.kpis.get(metric)
        return metric in RATIOS if kpi is None else kpi.aggregation == "average"


@dataclass(frozen=True)
class Fmt:
    """Numbers, money and times as the tenant reads them: its locale, currency and time zone; its metrics by
    their words and units."""

    t: queries.Tenant
    metrics: Metrics = field(default_factory=Metrics)

    def money(self, value: Decimal | None) -> str:
        return "–" if value is None else view.money(value, self.t.currency, self.t.locale)

    def name(self, metric: str) -> str:
        return self.metrics.name(metric)

    def value(self, metric: str, value: Decimal | None) -> str:
        if value is None:
            return "–"
        unit = self.metrics.unit(metric)
        if unit == "percent":
            return view.percent(value, self.t.locale)
        if unit == "money":
            return self.money(value)
        if unit == "duration":
            return view.duration(value, self.t.locale)
        if unit == "whole":
            value = value.quantize(Decimal(1), ROUND_HALF_EVEN)
        return view.number(value, self.t.locale)

    def expected(self, metric: str, value: Decimal | None) -> str:
        """Where the pace says a figure should be by now: a count as a whole number (28.5129 calls reads as
        29, as a projection does), anything else as its value."""
        if value is not None and self.metrics.unit(metric) in ("number", "whole"):
            value = value.quantize(Decimal(1), ROUND_HALF_EVEN)
        return self.value(metric, value)

    def estimate(self, metric: str, value: Decimal | None) -> str:
        """A projection: counts as whole numbers (1.6054 calls reads as 2), money to the cent, durations to the
        minute; none for a ratio (a win rate or an average does not grow with time, so extrapolating it says
        nothing)."""
        return "–" if self.metrics.ratio(metric) else self.expected(metric, value)

    def money_in(self, amount: Decimal | None, currency: str | None) -> str:
        """An amount in its own currency (a deal as the CRM has it), in the tenant's locale."""
        return "–" if amount is None else view.money(amount, (currency or "").strip() or None, self.t.locale)

    def pct(self, ratio: Decimal | None) -> str:
        return view.percent(ratio, self.t.locale)

    def margin(self, ratio: Decimal) -> str:
        """A probability's error: ``±0.9%``."""
        return view.margin(ratio, self.t.locale)

    def count(self, n: int) -> str:
        return view.number(Decimal(n), self.t.locale)

    def when(self, moment: datetime | str | None) -> str:
        if moment is None:
            return "–"
        at = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
        return at.astimezone(self.t.timezone).strftime("%Y-%m-%d %H:%M")

    def day(self, moment: datetime | str | None) -> str:
        return self.when(moment)[:10]


@dataclass(frozen=True)
class Period:
    label: str
    start: datetime
    end: datetime
    share: Decimal  # of its working days elapsed now (weekdays minus `days_off`), as kpi's figures count it
    days_off: frozenset[date] = frozenset()  # the tenant's holidays in it (on a rep's page: and their time off)

    @property
    def last(self) -> datetime:
        """The period's last moment: `end` is exclusive (the next period's first midnight)."""
        return self.end - timedelta(microseconds=1)


def page_period(t: queries.Tenant, label: str | None, now: datetime) -> Period:
    """The period `label` with the tenant's pace (its holidays are days off). Default: the quarter `basics` chose
    (the current one once it has figures, else the latest that has)."""
    if label is None:
        label = t.shown or period_of(PeriodKind.QUARTER, now, t.timezone, t.fiscal_start_month).label
    try:
        label = parse_period(label).label
    except PeriodError as err:
        raise HTTPException(422, f"period: {err}") from err
    start, end = period_bounds(label, t.timezone, t.fiscal_start_month)
    off = pace.days_off_in(start, end, t.timezone, t.holidays)
    return Period(label, start, end, working_share(start, end, now, t.timezone, off), off)


def rep_period(p: Period, t: queries.Tenant, leave: pace.Leave, now: datetime) -> Period:
    """The period with a rep's pace: their time off are days off too (as in kpi's published rep figures)."""
    if not leave:
        return p
    off = pace.days_off_in(p.start, p.end, t.timezone, t.holidays, leave)
    return replace(p, share=working_share(p.start, p.end, now, t.timezone, off), days_off=off)


def period_choices(t: queries.Tenant, now: datetime) -> list[str]:
    """The periods running now, and the quarter and month before them (and the quarter shown by default, when
    it is none of those)."""
    out = [period_of(kind, now, t.timezone, t.fiscal_start_month).label
           for kind in (PeriodKind.MONTH, PeriodKind.QUARTER, PeriodKind.YEAR)]
    for kind in (PeriodKind.QUARTER, PeriodKind.MONTH):
        start, _ = period_bounds(period_of(kind, now, t.timezone, t.fiscal_start_month).label, t.timezone,
                                 t.fiscal_start_month)
        out.append(period_of(kind, start - timedelta(microseconds=1), t.timezone, t.fiscal_start_month).label)
    if t.shown and t.shown not in out:
        out.append(t.shown)
    return out


def metric_of(name: str | None, metrics: Metrics) -> str:
    """The metric a page asks for: a built-in one or a KPI of the tenant (default: won revenue)."""
    chosen = name or Metric.WON_REVENUE.value
    if chosen not in metrics.names:
        raise HTTPException(422, f"metric: unknown metric {name!r}")
    return chosen


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A whole page, or only its <main> for the live refresh and the TV rotation (`?partial=1`)."""
    partial = request.query_params.get("partial") == "1"
    context.setdefault("is_admin", getattr(request.state, "role", None) == "admin")
    context.setdefault("has_person", bool(getattr(request.state, "person", None)))
    body = TEMPLATES.get_template(template).render(partial=partial, path=request.url.path,
                                                    query=request.url.query, **context)
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store",
                                                           "Content-Security-Policy": CSP,
                                                           "X-Content-Type-Options": "nosniff",
                                                           "Referrer-Policy": "same-origin"})


CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


async def basics(rt: Runtime, tenant: str) -> tuple[queries.Tenant, Fmt, datetime]:
    """The tenant (with the quarter its pages show by default), its formats (with its KPIs: read here, once
    per page) and the time."""
    now = rt.clock.now()
    async with tenant_tx(rt.pool, tenant) as conn:
        t = await queries.tenant(conn, tenant)
        kpis = await queries.kpi_definitions(conn, tenant)
        current = period_of(PeriodKind.QUARTER, now, t.timezone, t.fiscal_start_month).label
        t = replace(t, shown=await queries.shown_quarter(conn, tenant, current))
    return t, Fmt(t, Metrics(kpis)), now


def bar(attainment: Decimal | None, share: Decimal) -> dict[str, Any]:
    """Widths (in % of the bar) of the attainment and of the pace marker (where the rep should be now)."""
    def width(x: Decimal) -> str:
        return format(min(max(x, Decimal(0)), BAR_SCALE) / BAR_SCALE * 100, ".1f")
    return {"fill": width(attainment) if attainment is not None else None, "marker": width(share),
            "state": None if attainment is None else ("ahead" if attainment >= share else "behind"), "share": share}



def csrf_token(session: str) -> str:
    """The form token of a session: derived from its cookie, which no other site can read (HttpOnly), so a
    form posted from elsewhere cannot carry it."""
    return hmac.new(session.encode(), b"attain-dashboard-form", hashlib.sha256).hexdigest()[:32]
