"""notify's handler tier: the batch handler and one delivery attempt on an in-memory repository
(`fake.FakeRepository`, honouring `repository.Repository`) and a recording sender: no PostgreSQL, no broker,
no SMTP server, fixed instants."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import BaseModel

from services.notify.channels import PermanentFailure, TransientFailure
from services.notify.channels.smtp import IDEMPOTENCY_HEADER
from services.notify.handlers import handle_batch
from services.notify.model import Preferences, TeamChannels
from services.notify.repository import Claimed
from services.notify.settings import NotifySettings
from services.notify.worker import Channels, Context, Outcome, attempt, backoff
from shared.cloudevents import CloudEvent
from shared.consumer import Incoming
from shared.events import RepUpserted, TaskClosed, TenantUpserted
from shared.secret_box import SecretBox
from tests.unit.services.notify.factories import CHECK_IN, WIN
from tests.unit.services.notify.fake import FakeRepository

NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)  # a Monday, 10:30 in Berlin
T = "acme"
SETTINGS = NotifySettings(database_url="postgresql://x@localhost/x", dashboard_base_url="https://attain.example",
                          notify_from="notify@attain.example")


def incoming(type_: str, data: BaseModel, *, tenant: str = T, event_id: str | None = None,
             at: datetime = NOW) -> Incoming:
    event = CloudEvent(event_id or str(uuid.uuid4()), type_, "test", at, tenant, data.model_dump(mode="json"))
    return Incoming("topic", 0, 0, event, data)


def person(rep_id: str, manager: str | None = None, *, email: bool = True, team: str = "north",
           tz: str = "Europe/Berlin") -> Incoming:
    return incoming("rep.upserted", RepUpserted(
        rep_id=rep_id, name=rep_id.title(), team_id=team, manager_id=manager,
        email=f"{rep_id}@example.com" if email else None, timezone=tz), at=datetime(2026, 1, 1, tzinfo=UTC))


def registry(locale: str = "de_DE") -> Incoming:
    return incoming("tenant.upserted", TenantUpserted(tenant=T, timezone="Europe/Berlin", currency="EUR",
                                                      fiscal_start_month=1, token_sha256="00" * 32, active=True,
                                                      locale=locale))


ROSTER = [person("ana", "max"), person("max", "eva"), person("eva")]


def check_in(event_id: str = "e-1") -> Incoming:
    return incoming("coaching.task.created", CHECK_IN, event_id=event_id)


# --- the handler --------------------------------------------------------------------------------------------


async def test_a_check_in_goes_to_the_rep_and_their_manager_by_email_once_each() -> None:
    repo = FakeRepository()
    assert await handle_batch(repo, [registry(), *ROSTER], NOW) == 0
    assert await handle_batch(repo, [check_in()], NOW) == 2
    rows = sorted(repo.rows.values(), key=lambda r: r.delivery.recipient)
    assert [(r.delivery.recipient, r.delivery.channel, r.delivery.kind) for r in rows] == [
        ("ana", "email", "check_in"), ("max", "email", "check_in")]
    assert all(r.delivery.deliver_at == NOW and r.event_type == "coaching.task.created" for r in rows)
    assert rows[0].data["task_id"] == CHECK_IN.task_id  # the event's data kept for rendering
    assert repo.tenants[T].locale == "de_DE"


async def test_a_replayed_or_duplicated_check_in_adds_nothing() -> None:
    repo = FakeRepository()
    await handle_batch(repo, ROSTER, NOW)
    assert await handle_batch(repo, [check_in(), check_in()], NOW) == 2  # a duplicate inside one batch
    assert await handle_batch(repo, [check_in()], NOW) == 0  # the batch again (a replay after a crash)
    assert await handle_batch(repo, [check_in()], NOW + timedelta(days=1)) == 0
    assert len(repo.rows) == 2
    assert await handle_batch(repo, [check_in("e-2")], NOW) == 2  # another event: its own deliveries


async def test_the_roster_and_a_check_in_in_one_batch_find_each_other() -> None:
    repo = FakeRepository()
    assert await handle_batch(repo, [*ROSTER, check_in()], NOW) == 2


async def test_a_berlin_rep_at_23_00_gets_it_at_08_00() -> None:
    repo = FakeRepository()
    late = datetime(2026, 12, 7, 22, 0, tzinfo=UTC)  # Monday 23:00 in Berlin
    await handle_batch(repo, [*ROSTER, check_in()], late)
    assert {r.delivery.deliver_at for r in repo.rows.values()} == {datetime(2026, 12, 8, 7, 0, tzinfo=UTC)}


async def test_an_opted_out_reps_win_reaches_the_rep_but_not_the_team_channel() -> None:
    repo = FakeRepository(team_channels={T: {"north": TeamChannels("north", slack_webhook="https://hooks.example/x")}})
    win = WIN.model_copy(update={"scope_id": "ana"})
    await handle_batch(repo, [*ROSTER, incoming("recognition.milestone.reached", win, event_id="w-1")], NOW)
    assert {(r.delivery.recipient, r.delivery.channel) for r in repo.rows.values()} == {
        ("team:north", "slack"), ("ana", "email"), ("ana", "slack")}
    repo2 = FakeRepository(team_channels=repo.team_channels,
                           prefs={T: {"ana": Preferences(public_celebrations=False)}})
    await handle_batch(repo2, [*ROSTER, incoming("recognition.milestone.reached", win, event_id="w-1")], NOW)
    assert {(r.delivery.recipient, r.delivery.channel) for r in repo2.rows.values()} == {
        ("ana", "email"), ("ana", "slack")}


async def test_people_off_the_roster_and_events_not_routed_reach_nobody() -> None:
    repo = FakeRepository()
    assert await handle_batch(repo, [check_in()], NOW) == 0  # nobody on the roster yet
    closed = TaskClosed(task_id="t-1", rep_id="ana", manager_id="max", rule="behind_pace", reason="completed",
                        closed_at=NOW)
    assert await handle_batch(repo, [*ROSTER, incoming("coaching.task.closed", closed)], NOW) == 0
    assert repo.rows == {}


async def test_tenants_are_kept_apart() -> None:
    repo = FakeRepository()
    await handle_batch(repo, ROSTER, NOW)
    assert await handle_batch(repo, [incoming("coaching.task.created", CHECK_IN, tenant="other")], NOW) == 0


# --- one attempt --------------------------------------------------------------------------------------------


class Recorder:
    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.mail: list[EmailMessage] = []
        self.posts: list[tuple[str, str, dict[str, Any], str]] = []

    async def email(self, message: EmailMessage) -> None:
        if self.fail:
            raise self.fail
        self.mail.append(message)

    async def slack(self, url: str, body: dict[str, Any], key: str) -> None:
        if self.fail:
            raise self.fail
        self.posts.append(("slack", url, body, key))

    async def teams(self, url: str, body: dict[str, Any], key: str) -> None:
        self.posts.append(("teams", url, body, key))

    async def slack_post(self, token: str, channel: str, body: dict[str, Any]) -> None:
        self.posts.append(("slack_post", f"{token}>{channel}", body, ""))

    async def slack_dm(self, token: str, email: str, body: dict[str, Any]) -> None:
        self.posts.append(("slack_dm", f"{token}>{email}", body, ""))

    async def webhook(self, url: str, payload: dict[str, Any], key: str, secret: str | None) -> None:
        self.posts.append(("webhook", f"{url}>{secret}", payload, key))


BOX = SecretBox([Fernet.generate_key().decode()], "NOTIFY_SECRET_KEYS")


async def claimed(repo: FakeRepository, now: datetime = NOW) -> list[Claimed]:
    return await repo.claim(T, now, now + timedelta(seconds=SETTINGS.notify_lease_s), 50)


async def test_an_attempt_sends_the_rendered_email_with_its_idempotency_key() -> None:
    repo, sender = FakeRepository(), Recorder()
    await handle_batch(repo, [registry(), *ROSTER, check_in()], NOW)
    facts, people = await repo.tenant_facts(T), await repo.people(T)
    for c in await claimed(repo):
        assert await attempt(c, Context(facts, people, {}, SETTINGS), sender, NOW) == Outcome("sent")
    assert sorted(m["To"] for m in sender.mail) == ["ana@example.com", "max@example.com"]
    message = sender.mail[0]
    assert message[IDEMPOTENCY_HEADER] in repo.rows
    assert message["From"].addresses[0].addr_spec == "notify@attain.example"
    plain = message.get_body(("plain",))
    assert plain is not None
    text = plain.get_content()
    assert "https://attain.example/reps/ana" in text
    assert message["List-Unsubscribe"] == "<https://attain.example/me/notifications>"


async def test_a_transient_failure_retries_with_backoff_honouring_retry_after() -> None:
    repo = FakeRepository()
    await handle_batch(repo, [*ROSTER, check_in()], NOW)
    facts, people = await repo.tenant_facts(T), await repo.people(T)
    c = (await claimed(repo))[0]
    out = await attempt(c, Context(facts, people, {}, SETTINGS), Recorder(TransientFailure("421 busy")), NOW)
    assert out == Outcome("retry", "421 busy", NOW + timedelta(seconds=SETTINGS.notify_backoff_s))
    ctx = Context(facts, people, {}, SETTINGS)
    out = await attempt(c, ctx, Recorder(TransientFailure("429", retry_after=900)), NOW)
    assert out.retry_at == NOW + timedelta(seconds=900)
    assert backoff(3, SETTINGS, None) == SETTINGS.notify_backoff_s * 4
    assert backoff(30, SETTINGS, None) == SETTINGS.notify_backoff_max_s
    last = replace(c, attempts=SETTINGS.notify_max_attempts)
    out = await attempt(last, Context(facts, people, {}, SETTINGS), Recorder(TransientFailure("421 busy")), NOW)
    assert out.status == "dead" and "gave up after" in (out.error or "")


@pytest.mark.parametrize("case", ["permanent", "no_address", "person_slack", "team_without_webhook"])
async def test_what_cannot_be_delivered_is_dead_with_its_reason(case: str) -> None:
    repo = FakeRepository()
    roster = [person("ana", "max", email=case != "no_address"), person("max")]
    await handle_batch(repo, [*roster, check_in()], NOW)
    facts, people = await repo.tenant_facts(T), await repo.people(T)
    c = next(c for c in await claimed(repo) if c.recipient == "ana")
    teams: dict[str, TeamChannels] = {}
    if case == "person_slack":
        c = replace(c, channel="slack")
    if case == "team_without_webhook":
        c, teams = replace(c, recipient="team:north", channel="teams"), {"north": TeamChannels("north")}
    fail = PermanentFailure("550 no such mailbox") if case == "permanent" else None
    out = await attempt(c, Context(facts, people, teams, SETTINGS), Recorder(fail), NOW)
    assert out.status == "dead" and out.error
    await repo.mark_dead(T, c.idempotency_key, out.error)
    assert [r["status"] for r in await repo.deliveries(T, "dead", 10)] == ["dead"]


async def test_a_claimed_delivery_is_due_again_once_its_lease_ends() -> None:
    """A SIGKILL between claim and record: nothing is lost, and the repeat carries the same key."""
    repo = FakeRepository()
    await handle_batch(repo, [*ROSTER, check_in()], NOW)
    first = {c.idempotency_key for c in await claimed(repo)}
    assert await claimed(repo, NOW + timedelta(seconds=1)) == []  # leased
    again = await claimed(repo, NOW + timedelta(seconds=SETTINGS.notify_lease_s))
    assert {c.idempotency_key for c in again} == first and {c.attempts for c in again} == {2}


async def test_a_team_win_is_posted_to_slack_with_the_key() -> None:
    teams = {"north": TeamChannels("north", slack_webhook=BOX.seal("https://hooks.example/x"),
                                   teams_webhook=BOX.seal("https://teams.example/y"))}
    repo, sender = FakeRepository(team_channels={T: teams}), Recorder()
    await handle_batch(repo, [*ROSTER, incoming("recognition.milestone.reached",
                                                WIN.model_copy(update={"scope_id": "ana"}), event_id="w")], NOW)
    facts, people = await repo.tenant_facts(T), await repo.people(T)
    for c in await claimed(repo):
        if c.recipient.startswith("team:"):
            assert await attempt(c, Context(facts, people, teams, SETTINGS, box=BOX), sender, NOW) == Outcome("sent")
    assert {(p[0], p[1]) for p in sender.posts} == {("slack", "https://hooks.example/x"),
                                                   ("teams", "https://teams.example/y")}
    assert all(p[3] in repo.rows for p in sender.posts)
    assert all(isinstance(p[2], dict) for p in sender.posts)


async def test_a_released_delivery_is_due_at_once_its_attempt_not_counted() -> None:
    repo = FakeRepository()
    await handle_batch(repo, [*ROSTER, check_in()], NOW)
    keys = [c.idempotency_key for c in await claimed(repo)]
    await repo.release(T, keys, NOW)
    assert {c.attempts for c in await claimed(repo)} == {1}


async def test_webhook_posts_to_one_url_are_paced() -> None:
    seen: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(asyncio.get_running_loop().time())
        return httpx.Response(200, text="ok")

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        channels = Channels(None, client, min_interval_s=0.2)
        for _ in range(3):
            await channels.slack("https://hooks.example/x", {"text": "hi"}, "k")
    assert seen[2] - seen[0] >= 0.39
    with pytest.raises(TransientFailure, match="SMTP_URL"):
        await channels.email(EmailMessage())
