"""The daily cap and the digests, people's Slack direct messages and the generic webhook, unsubscribe links:
the handler and one attempt on the in-memory repository, the channels recorded."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.fernet import Fernet

from services.notify.digests import CAP_DIGEST, OPEN_DIGEST, manager_digests
from services.notify.handlers import handle_batch
from services.notify.model import Person, Preferences
from services.notify.repository import OpenCheckIn, TenantConnection
from services.notify.worker import Context, Outcome, attempt, unsubscribe_link, unsubscribe_token
from shared.consumer import Incoming
from shared.events import TaskClosed
from shared.secret_box import SecretBox
from tests.unit.services.notify.factories import CHECK_IN
from tests.unit.services.notify.fake import FakeRepository
from tests.unit.services.notify.test_handlers import NOW, ROSTER, SETTINGS, Recorder, T, claimed, incoming, registry

BOX = SecretBox([Fernet.generate_key().decode()], "NOTIFY_SECRET_KEYS")
BERLIN_MORNING = datetime(2026, 12, 8, 7, 0, tzinfo=UTC)  # Tuesday 08:00 in Berlin


def check_ins(n: int, first: int = 0) -> list[Incoming]:
    return [incoming("coaching.task.created", CHECK_IN.model_copy(update={"task_id": f"t-{i}"}), event_id=f"e-{i}")
            for i in range(first, first + n)]


async def test_past_the_daily_cap_the_rest_of_the_day_folds_into_one_digest_the_next_morning() -> None:
    repo = FakeRepository(prefs={T: {"ana": Preferences(daily_cap=2)}})
    await handle_batch(repo, [*ROSTER, *check_ins(3)], NOW)
    await handle_batch(repo, check_ins(1, first=3), NOW + timedelta(hours=1))
    ana = {r.delivery.event_id: r for r in repo.rows.values() if r.delivery.recipient == "ana"}
    assert {e: r.status for e, r in ana.items() if r.delivery.kind != "digest"} == {
        "e-0": "pending", "e-1": "pending", "e-2": "folded", "e-3": "folded"}
    assert {r.digest_key for r in ana.values() if r.status == "folded"} == {"cap:ana:2026-12-07"}
    digest = ana["cap:ana:2026-12-07"]
    assert (digest.event_type, digest.delivery.channel, digest.delivery.deliver_at) == (
        CAP_DIGEST, "email", BERLIN_MORNING)
    # the manager's cap (the default 20) is far off: all four reach him
    assert sum(1 for r in repo.rows.values() if r.delivery.recipient == "max" and r.status == "pending") == 4


async def test_a_replayed_batch_folds_and_adds_nothing_new() -> None:
    repo = FakeRepository(prefs={T: {"ana": Preferences(daily_cap=2)}})
    batch = [*ROSTER, *check_ins(3)]
    await handle_batch(repo, batch, NOW)
    before = {k: (r.status, r.digest_key) for k, r in repo.rows.items()}
    assert await handle_batch(repo, batch, NOW + timedelta(minutes=5)) == 0
    assert {k: (r.status, r.digest_key) for k, r in repo.rows.items()} == before


async def test_the_cap_digest_lists_what_was_folded_by_the_messages_titles() -> None:
    repo, sender = FakeRepository(prefs={T: {"ana": Preferences(daily_cap=1)}}), Recorder()
    await handle_batch(repo, [registry("en"), *ROSTER, *check_ins(3)], NOW)
    folded = [{"event_id": r.delivery.event_id, "event_type": r.event_type, "data": r.data, "kind": r.delivery.kind,
               "at": r.delivery.deliver_at} for r in repo.rows.values() if r.status == "folded"]
    ctx = Context(await repo.tenant_facts(T), await repo.people(T), {}, SETTINGS,
                  folded={"cap:ana:2026-12-07": folded})
    digest = next(c for c in await claimed(repo, BERLIN_MORNING) if c.kind == "digest")
    assert await attempt(digest, ctx, sender, BERLIN_MORNING) == Outcome("sent")
    (message,) = sender.mail
    assert message["Subject"] == "2 more messages"
    plain = message.get_body(("plain",))
    assert plain is not None and plain.get_content().count("Check-in with Ana") == 2


def test_a_manager_hears_their_reps_open_check_ins_once_a_working_day() -> None:
    people = {"ana": Person("ana", "Ana", "ana@x.test", "Europe/Berlin", "max"),
              "max": Person("max", "Max", "max@x.test", "Europe/Berlin")}
    items = [OpenCheckIn("t-1", "ana", None, "Behind pace", "warning", NOW, NOW)]
    monday = manager_digests(T, NOW, items, people, {}, {})
    assert [(d.recipient, d.kind, t) for d, t, _ in monday] == [("max", "digest", OPEN_DIGEST)]
    assert monday[0][2]["items"][0] == {"rep_name": "Ana", "summary": "Behind pace", "due_at": NOW.isoformat()}
    later = manager_digests(T, NOW + timedelta(hours=3), items, people, {}, {})
    assert later[0][0].idempotency_key == monday[0][0].idempotency_key  # made once a day, however often asked
    assert manager_digests(T, NOW.replace(hour=20), items, people, {}, {}) == []  # 21:00 in Berlin: tomorrow's
    saturday = NOW + timedelta(days=5)
    assert manager_digests(T, saturday, items, people, {}, {}) == []
    assert manager_digests(T, NOW, [], people, {}, {}) == []


async def test_closed_check_ins_leave_the_managers_digest() -> None:
    repo = FakeRepository()
    closed = TaskClosed(task_id="t-0", rep_id="ana", manager_id="max", rule="behind_pace", reason="recovered",
                        closed_at=NOW)
    await handle_batch(repo, [*ROSTER, *check_ins(2), incoming("coaching.task.closed", closed)], NOW)
    assert [task for _, task in repo.open] == ["t-1"]


async def test_a_person_who_chose_slack_gets_a_direct_message_found_by_email() -> None:
    repo, sender = FakeRepository(prefs={T: {"ana": Preferences(channels={"check_in": ("slack",)})}}), Recorder()
    await handle_batch(repo, [*ROSTER, *check_ins(1)], NOW)
    c = next(c for c in await claimed(repo) if c.recipient == "ana")
    assert c.channel == "slack"
    ctx = Context(await repo.tenant_facts(T), await repo.people(T), {}, SETTINGS,
                  TenantConnection(slack_bot_token=BOX.seal("xoxb-1-abc")), BOX, tenant_id=T)
    assert await attempt(c, ctx, sender, NOW) == Outcome("sent")
    ((kind, target, body, _),) = sender.posts
    assert (kind, target) == ("slack_dm", "xoxb-1-abc>ana@example.com")
    assert body["blocks"][0]["type"] == "header"
    no_token = replace(ctx, connection=TenantConnection())
    out = await attempt(c, no_token, sender, NOW)
    assert out.status == "dead" and "Slack bot token" in (out.error or "")


async def test_the_generic_webhook_gets_a_signed_payload_naming_the_recipient() -> None:
    repo, sender = FakeRepository(prefs={T: {"ana": Preferences(channels={"check_in": ("webhook",)})}}), Recorder()
    await handle_batch(repo, [*ROSTER, *check_ins(1)], NOW)
    c = next(c for c in await claimed(repo) if c.recipient == "ana")
    connection = TenantConnection(webhook_url="https://hooks.acme.test/attain", webhook_secret=BOX.seal("whsec_MTIz"))
    ctx = Context(await repo.tenant_facts(T), await repo.people(T), {}, SETTINGS, connection, BOX, tenant_id=T)
    assert await attempt(c, ctx, sender, NOW) == Outcome("sent")
    ((kind, target, payload, key),) = sender.posts
    assert (kind, target, key) == ("webhook", "https://hooks.acme.test/attain>whsec_MTIz", c.idempotency_key)
    assert payload["recipient"] == {"person_id": "ana", "name": "Ana", "email": "ana@example.com"}
    assert payload["event"]["type"] == "coaching.task.created" and payload["kind"] == "check_in"


async def test_emails_carry_a_one_click_unsubscribe_link_when_notify_can_seal_it() -> None:
    repo = FakeRepository()
    await handle_batch(repo, [*ROSTER, *check_ins(1)], NOW)
    c = next(c for c in await claimed(repo) if c.recipient == "ana")
    people = await repo.people(T)
    for box, one_click in ((BOX, True), (None, False)):
        sender = Recorder()
        ctx = Context(await repo.tenant_facts(T), people, {}, SETTINGS, box=box, tenant_id=T)
        assert await attempt(c, ctx, sender, NOW) == Outcome("sent")
        (message,) = sender.mail
        link = message["List-Unsubscribe"].strip("<>")
        assert (message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click") is one_click
        if one_click:
            token = parse_qs(urlsplit(link).query)["t"][0]
            assert unsubscribe_token(BOX, token) == (T, "ana", "check_in")
        else:
            assert link == "https://attain.example/me/notifications"


def test_an_unsubscribe_token_cannot_be_forged_or_read_under_another_key() -> None:
    link = unsubscribe_link("https://attain.example", BOX, T, "ana", "review")
    token = parse_qs(urlsplit(link).query)["t"][0]
    assert unsubscribe_token(BOX, token) == (T, "ana", "review")
    other = SecretBox([Fernet.generate_key().decode()], "NOTIFY_SECRET_KEYS")
    for bad_box, bad in ((other, token), (BOX, token[:-4] + "AAAA"), (BOX, "not-a-token")):
        with pytest.raises(ValueError, match="not an unsubscribe token"):
            unsubscribe_token(bad_box, bad)


async def test_events_older_than_the_max_age_tell_nobody_but_the_roster_is_learned() -> None:
    repo = FakeRepository()
    old = incoming("coaching.task.created", CHECK_IN, event_id="old", at=NOW - timedelta(days=3))
    assert await handle_batch(repo, [*ROSTER, old], NOW, timedelta(hours=24)) == 0
    assert set(await repo.people(T)) == {"ana", "max", "eva"}
    assert await handle_batch(repo, check_ins(1), NOW, timedelta(hours=24)) == 2
