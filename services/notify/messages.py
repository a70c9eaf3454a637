"""What one notification says: the event's facts in the recipient's words, for Slack, Teams and e-mail.

Pure: a `Notification` (kind, the event's data, the recipient's name, the tenant's locale, currency and
time zone, the dashboard link that explains the numbers) in, a `Rendered` out, which holds

- ``slack``: a Block Kit message (header, section with fields, context, actions with one button to the
  link), the body of an incoming webhook or of ``chat.postMessage``;
- ``teams``: an Adaptive Card 1.5 in the envelope a Teams Workflows webhook takes;
- ``email``: subject, plain text and HTML, from the Jinja2 templates beside this file (HTML autoescaped).

Channel-neutral wording is built once (`content`), then laid out per channel (`services.notify.layouts`).
Words come from the gettext catalogues (`services.notify.i18n`); amounts and dates are the tenant's
locale's, dates in the recipient's zone. Text that comes with an event (a check-in's summary, a
celebration's headline) is shown as written: coaching and recognition word it already.

>>> from datetime import UTC, datetime
>>> from shared.events import PlanStepSettled
>>> step = PlanStepSettled(plan_id="p", step_id="s", rep_id="ana", manager_id="max", title="Book 5 demos",
...     metric="meetings", target=5, progress=5, due_at=datetime(2026, 12, 4, tzinfo=UTC), status="completed",
...     settled_at=datetime(2026, 12, 3, tzinfo=UTC), plan_status="open")
>>> n = Notification("plan", step, recipient="Ana", locale="de_DE", currency="EUR", timezone="Europe/Berlin",
...     link="https://attain.example/reps/ana")
>>> render(n).email.subject
'Schritt geschafft: Book 5 demos'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from services.notify import layouts
from services.notify.i18n import Words
from services.notify.layouts import Content, Email
from services.notify.model import KINDS, Kind
from shared.events import MilestoneReached, PlanStepSettled, ReviewPublished, TaskCreated, TaskEscalated

__all__ = ["KINDS", "Content", "DigestItem", "Email", "EventData", "Kind", "Notification", "OpenCheckIns", "Rendered",
           "content", "dashboard_link", "render"]

MAX_FACTS = 8  # Slack allows 10 fields; a glance reads fewer
MAX_ITEMS = 10


def N_(message: str) -> str:
    """Marks a message for extraction; it is translated where it is shown."""
    return message


METRIC_NAMES = {
    "won_revenue": N_("Won revenue"), "deals_won": N_("Deals won"), "win_rate": N_("Win rate"),
    "pipeline_created": N_("Pipeline created"), "avg_deal_size": N_("Average deal"), "calls": N_("Calls"),
    "emails": N_("E-mails"), "meetings": N_("Meetings"), "activities": N_("Activities"),
}


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One open check-in of a manager's digest."""

    rep_name: str
    summary: str
    due_at: datetime


@dataclass(frozen=True, slots=True)
class OpenCheckIns:
    """A manager's digest: their reps' open check-ins; with `folded`, what a person's daily cap folded
    together (each item a message's title, `rep_name` empty, `due_at` when it was due to go out)."""

    items: tuple[DigestItem, ...]
    folded: bool = False


EventData = TaskCreated | TaskEscalated | MilestoneReached | ReviewPublished | PlanStepSettled | OpenCheckIns
_DATA: dict[Kind, type[Any]] = {
    "check_in": TaskCreated, "escalation": TaskEscalated, "celebration": MilestoneReached,
    "review": ReviewPublished, "plan": PlanStepSettled, "digest": OpenCheckIns,
}


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one person: `link` is the dashboard page that explains it (see `dashboard_link`);
    `unsubscribe_url` the page where they change what they get (e-mail's footer and List-Unsubscribe);
    `subject_name` the roster's name of the rep the event is about, where the event carries only an id
    (an escalation)."""

    kind: Kind
    data: EventData
    recipient: str
    locale: str | None
    currency: str
    timezone: str
    link: str
    unsubscribe_url: str | None = None
    subject_name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.data, _DATA[self.kind]):
            raise TypeError(f"a {self.kind} notification carries {_DATA[self.kind].__name__}, "
                            f"not {type(self.data).__name__}")
        if not self.link.startswith(("https://", "http://")):
            raise ValueError(f"link must be an http(s) URL, not {self.link!r}")


@dataclass(frozen=True, slots=True)
class Rendered:
    slack: dict[str, Any]
    teams: dict[str, Any]
    email: Email


def render(n: Notification) -> Rendered:
    """The notification for every channel: a Block Kit message, a Teams card envelope, an e-mail."""
    c = content(n)
    return Rendered(slack=layouts.slack(c), teams=layouts.teams(c), email=layouts.email(c))


def content(n: Notification) -> Content:
    """The channel-neutral words of `n` in its recipient's language."""
    words = Words(n.locale, n.currency, n.timezone)
    _ = words.gettext
    base = Content(
        language=words.locale.language, greeting=_("Hi {name},").format(name=n.recipient), title="", text="",
        button=_("See the numbers"), link=n.link, unsubscribe=_("Choose what you get"),
        unsubscribe_url=n.unsubscribe_url)
    fill: Callable[[Any, Words, Content, Notification], Content] = _BY_KIND[n.kind]
    return fill(n.data, words, base, n)


def _metric(words: Words, metric: str) -> str:
    return words.gettext(METRIC_NAMES[metric]) if metric in METRIC_NAMES else metric.replace("_", " ")


def _check_in(task: TaskCreated, words: Words, c: Content, n: Notification) -> Content:
    _ = words.gettext
    rep = task.rep_name or n.subject_name or task.rep_id
    ev = task.evidence
    facts = ((_metric(words, ev.metric), _("{actual} (expected {expected})").format(
        actual=words.metric_value(ev.metric, ev.actual), expected=words.metric_value(ev.metric, ev.expected))),
        (_("Due"), words.date(task.due_at)))
    return replace(c, title=_("Check-in with {rep}").format(rep=rep), text=task.summary, facts=facts,
                    items=tuple(task.suggested_actions[:3]),
                    note=_("Private: only {rep} and their manager get this.").format(rep=rep))


def _escalation(task: TaskEscalated, words: Words, c: Content, n: Notification) -> Content:
    _ = words.gettext
    return replace(c, title=_("Overdue check-in: {rep}").format(rep=n.subject_name or task.rep_id), text=task.summary,
                    facts=((_("Due"), words.date(task.due_at)), (_("Raised"), words.date(task.escalated_at))),
                    note=_("Nobody took it up by the due date, so it comes to you."))


def _celebration(win: MilestoneReached, words: Words, c: Content, n: Notification) -> Content:
    _ = words.gettext
    name = win.name or n.subject_name or n.recipient
    return replace(c, title=_("Well done, {name}!").format(name=name), text=win.headline,
                    facts=((_("Period"), win.period), (_("Date"), words.date(win.occurred_at))))


def _review(review: ReviewPublished, words: Words, c: Content, n: Notification) -> Content:
    _ = words.gettext
    facts = [(_metric(words, f.metric), _("{actual} of {target} ({share})").format(
        actual=words.metric_value(f.metric, f.actual), target=words.metric_value(f.metric, f.target),
        share=words.percent(f.attainment)) if f.target is not None and f.attainment is not None
        else words.metric_value(f.metric, f.actual)) for f in review.figures[:MAX_FACTS - 2]]
    facts.append((_("Activities"), _("{count} (week before: {before})").format(
        count=words.number(review.activities_week), before=words.number(review.activities_week_before))))
    facts.append((_("Open check-ins"), _("{open} ({overdue} overdue)").format(
        open=words.number(review.open_tasks), overdue=words.number(review.overdue_tasks))))
    title = (_("Your week {week}") if review.scope == "rep" else _("{team}: week {week}")).format(
        week=review.week, team=review.name or review.scope_id)
    return replace(c, title=title, text=review.headline, facts=tuple(facts))


def _plan(step: PlanStepSettled, words: Words, c: Content, n: Notification) -> Content:
    _ = words.gettext
    done = step.status == "completed"
    title = (_("Step done: {title}") if done else _("Step missed: {title}")).format(title=step.title)
    text = _("Well done.") if done else _("The due date passed before the target was reached.")
    if step.plan_status == "completed":
        text = _("The whole plan is done. Well done!")
    progress = _("{actual} of {target}").format(actual=words.metric_value(step.metric, step.progress),
                                                 target=words.metric_value(step.metric, step.target))
    return replace(c, title=title, text=text,
                    facts=((_metric(words, step.metric), progress), (_("Due"), words.date(step.due_at))))


def _digest(digest: OpenCheckIns, words: Words, c: Content, n: Notification) -> Content:
    _ = words.gettext
    count = len(digest.items)
    if digest.folded:
        items = tuple(_("{summary} ({date})").format(summary=i.summary, date=words.date(i.due_at))
                      for i in digest.items[:MAX_ITEMS])
    else:
        items = tuple(_("{rep}: {summary} (due {date})").format(rep=i.rep_name, summary=i.summary,
                                                                date=words.date(i.due_at))
                      for i in digest.items[:MAX_ITEMS])
    more = count - len(items)
    if more > 0:
        text = words.ngettext("{count} more is on the page.", "{count} more are on the page.", more).format(
            count=more)
    elif digest.folded:
        text = _("What reached you past your daily limit, in one message.")
    else:
        text = _("Your reps' check-ins that are still open.")
    if digest.folded:
        return replace(c, title=words.ngettext("{count} more message", "{count} more messages", count).format(
            count=words.number(count)), text=text, items=items, button=_("Open Attain"))
    return replace(c, title=words.ngettext("{count} open check-in", "{count} open check-ins", count).format(
        count=words.number(count)), text=text, items=items, button=_("Open the check-ins"))


_BY_KIND: dict[Kind, Callable[[Any, Words, Content, Notification], Content]] = {
    "check_in": _check_in, "escalation": _escalation, "celebration": _celebration, "review": _review,
    "plan": _plan, "digest": _digest,
}


def dashboard_link(base: str, data: EventData) -> str:
    """The dashboard page that explains `data`'s numbers, under `base` (``https://attain.example``).

    >>> from datetime import UTC, datetime
    >>> win = MilestoneReached(celebration_id="c", scope="rep", scope_id="ana b", milestone="quota", period="2026-Q4",
    ...     value=1, headline="h", occurred_at=datetime(2026, 12, 1, tzinfo=UTC))
    >>> dashboard_link("https://attain.example/", win)
    'https://attain.example/reps/ana%20b?period=2026-Q4'
    """
    root = base.rstrip("/")
    period: str | None = None
    match data:
        case TaskCreated():
            path, period = f"/reps/{quote(data.rep_id, safe='')}", data.evidence.period
        case TaskEscalated() | PlanStepSettled():
            path = f"/reps/{quote(data.rep_id, safe='')}"
        case MilestoneReached():
            section = {"rep": "reps", "team": "teams", "contest": "contests"}[data.scope]
            path, period = f"/{section}/{quote(data.scope_id, safe='')}", data.period
            period = None if data.scope == "contest" else period
        case ReviewPublished():
            path = f"/{'reps' if data.scope == 'rep' else 'teams'}/{quote(data.scope_id, safe='')}"
            period = data.figures[0].period if data.figures else None
        case OpenCheckIns():
            path = "/" if data.folded else "/check-ins"
    return root + path + (f"?{urlencode({'period': period})}" if period else "")
