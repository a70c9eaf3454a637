"""coaching against the real broker and database: check-ins once per rule per cool-down whatever runs
them (repeated evaluations, a restart, two replicas), escalation, recovery, action plans, reviews."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from shared import topics
from tests.integration import inprocess
from tests.integration.coaching.conftest import Harness, Org

Q4_START = datetime(2026, 9, 30, 22, 0, tzinfo=UTC)  # 2026-10-01 00:00 in Berlin
Q4_END = datetime(2026, 12, 31, 23, 0, tzinfo=UTC)
LONG_AGO = datetime(2026, 9, 1, tzinfo=UTC)


async def roster(org: Org, rep: str, manager: str | None, team: str = "team-a", name: str | None = None) -> None:
    await org.send(
        topics.ROSTER.name,
        "rep.upserted",
        rep,
        {
            "rep_id": rep,
            "name": name or rep.title(),
            "team_id": team,
            "manager_id": manager,
            "timezone": "Europe/Berlin",
            "active": True,
        },
        LONG_AGO,
    )


async def figure(
    org: Org, rep: str, actual: str, target: str, at: datetime, metric: str = "won_revenue", scope: str = "rep",
    forecast: dict[str, Any] | None = None,
) -> None:
    await org.send(
        topics.ATTAINMENT.name,
        "kpi.attainment.updated",
        rep,
        ({"forecast": forecast} if forecast else {}) | {
            "scope": scope,
            "scope_id": rep,
            "period": "2026-Q4",
            "metric": metric,
            "actual": actual,
            "target": target,
            "as_of": at.isoformat(),
            "period_start": Q4_START.isoformat(),
            "period_end": Q4_END.isoformat(),
            "name": rep.title(),
            "manager_id": None,
        },
        at,
    )


async def activity(org: Org, rep: str, activity_id: str, kind: str, at: datetime) -> None:
    await org.send(
        topics.ACTIVITIES.name,
        "activity.logged",
        rep,
        {"activity_id": activity_id, "rep_id": rep, "kind": kind, "occurred_at": at.isoformat()},
        at,
    )


async def tasks_of(h: Harness, org: Org) -> list[Any]:
    return await h.query("SELECT * FROM coaching.tasks WHERE tenant = $1 ORDER BY created_at", org.slug)


async def slipping_rep(h: Harness, org: Org, rep: str = "ann", manager: str = "mgr-1") -> None:
    """A rep at 0 of 90,000 halfway through the quarter who has logged nothing since September."""
    await roster(org, rep, manager)
    await figure(org, rep, "0", "90000", h.clock.now())
    await h.until(
        lambda c: c.fetchval("SELECT 1 FROM coaching.attainment WHERE tenant = $1 AND scope_id = $2", org.slug, rep)
    )


async def test_a_slipping_rep_gets_one_check_in_per_rule_per_cool_down_whatever_evaluates_it(
    harness: Harness, out_watch: Any
) -> None:
    h = harness
    first, second = await h.replica("a"), await h.replica("b")
    org = await h.org()
    seen = await out_watch(org.slug)
    await slipping_rep(h, org)

    for _ in range(3):  # the timer, again and again
        await first.tick()
    await asyncio.gather(first.tick(), second.tick(), first.tick(), second.tick())  # two replicas at once
    await first.stop()  # a restart (same pod name: static membership, as on Kubernetes)
    restarted = await h.replica("a")
    await restarted.tick()
    h.clock.advance(timedelta(days=2))  # still inside the cool-down
    await asyncio.gather(restarted.tick(), second.tick())

    rows = await tasks_of(h, org)
    assert Counter(r["rule"] for r in rows) == {"behind_pace": 1, "no_activity": 1, "stalled_pipeline": 1}
    behind = next(r for r in rows if r["rule"] == "behind_pace")
    assert behind["severity"] == "critical" and behind["manager_id"] == "mgr-1"
    assert "Ann is at 0% of pace on won revenue for 2026-Q4" in behind["summary"]
    assert behind["due_at"].astimezone(UTC).weekday() < 5  # never due on a weekend
    created = await seen.wait_for(lambda m: m["type"] == "coaching.task.created" and m["data"]["rule"] == "no_activity")
    for rule in ("behind_pace", "stalled_pipeline"):
        await seen.wait_for(lambda m, rule=rule: m["type"] == "coaching.task.created" and m["data"]["rule"] == rule)
    await seen.poll(1.5)  # and nothing more arrives
    created = [m for m in seen.seen if m["type"] == "coaching.task.created"]
    assert sorted(m["data"]["rule"] for m in created) == ["behind_pace", "no_activity", "stalled_pipeline"]
    assert len({m["id"] for m in created}) == 3

    # handled inside the cool-down: the rep is still silent, but no second check-in yet
    silent = next(r for r in rows if r["rule"] == "no_activity")
    done = await second.http.post(
        f"/v1/tasks/{silent['task_id']}/complete",
        headers=org.auth,
        json={"outcome": "Ann was at a trade fair; back on the phone Monday"},
    )
    assert done.status_code == 200, done.text
    await asyncio.gather(restarted.tick(), second.tick())
    assert Counter(r["rule"] for r in await tasks_of(h, org)) == {
        "behind_pace": 1,
        "no_activity": 1,
        "stalled_pipeline": 1,
    }

    # past the 7-day cool-down: a new check-in for the rule that was handled and still applies; none for
    # the rules whose check-ins are still open (they escalate instead of piling up)
    h.clock.advance(timedelta(days=6))
    await asyncio.gather(restarted.tick(), second.tick())
    assert Counter(r["rule"] for r in await tasks_of(h, org)) == {
        "behind_pace": 1,
        "no_activity": 2,
        "stalled_pipeline": 1,
    }


async def test_an_ignored_check_in_escalates_to_the_managers_manager_once(harness: Harness, out_watch: Any) -> None:
    h = harness
    replica = await h.replica()
    org = await h.org()
    seen = await out_watch(org.slug)
    await roster(org, "mgr-1", "vp-1", team="leads")  # the manager is on the roster, under vp-1
    await slipping_rep(h, org, "bea", "mgr-1")
    await replica.tick()
    task = next(r for r in await tasks_of(h, org) if r["rep_id"] == "bea" and r["rule"] == "behind_pace")

    h.clock.set(task["due_at"] - timedelta(minutes=1))
    assert (await replica.tick()).escalated == 0  # not yet due
    h.clock.set(task["due_at"] + timedelta(hours=1))
    assert (await replica.tick()).escalated >= 1
    assert (await replica.tick()).escalated == 0  # once
    row = (await h.query("SELECT * FROM coaching.tasks WHERE task_id = $1", task["task_id"]))[0]
    assert row["escalated_to"] == "vp-1" and row["escalated_at"] == h.clock.now()
    event = await seen.wait_for(
        lambda m: m["type"] == "coaching.task.escalated" and m["data"]["task_id"] == str(task["task_id"])
    )
    assert event["data"]["escalated_to"] == "vp-1"

    # the no-activity check-in, unacknowledged and due at the same time, was escalated by the same tick
    # (acknowledged ones are not: see the next test)
    other = next(r for r in await tasks_of(h, org) if r["rep_id"] == "bea" and r["rule"] == "no_activity")
    assert other["escalated_at"] is not None  # it was due too: escalated with the first


async def test_acknowledging_stops_escalation_and_completing_closes_with_the_outcome(
    harness: Harness, out_watch: Any
) -> None:
    h = harness
    replica = await h.replica()
    org = await h.org()
    seen = await out_watch(org.slug)
    await slipping_rep(h, org, "cem")
    await replica.tick()
    task = next(r for r in await tasks_of(h, org) if r["rule"] == "behind_pace")
    tid = str(task["task_id"])

    ack = await replica.http.post(f"/v1/tasks/{tid}/ack", headers=org.auth)
    assert ack.status_code == 200 and ack.json()["status"] == "acknowledged"
    assert (await replica.http.post(f"/v1/tasks/{tid}/ack", headers=org.auth)).status_code == 409
    h.clock.set(task["due_at"] + timedelta(days=1))
    await replica.tick()
    assert (await h.query("SELECT escalated_at FROM coaching.tasks WHERE task_id = $1", task["task_id"]))[0][0] is None

    done = await replica.http.post(
        f"/v1/tasks/{tid}/complete", headers=org.auth, json={"outcome": "Agreed three closing calls this week"}
    )
    assert done.status_code == 200 and done.json()["status"] == "completed"
    again = await replica.http.post(f"/v1/tasks/{tid}/complete", headers=org.auth, json={"outcome": "again"})
    assert again.status_code == 409 and "completed" in again.json()["detail"]
    closed = await seen.wait_for(lambda m: m["type"] == "coaching.task.closed" and m["data"]["task_id"] == tid)
    assert closed["data"]["reason"] == "completed"
    assert closed["data"]["outcome"] == "Agreed three closing calls this week"

    listed = await replica.http.get("/v1/tasks", params={"rep_id": "cem", "status": "completed"}, headers=org.auth)
    assert [t["task_id"] for t in listed.json()["tasks"]] == [tid]
    stranger = await h.org()
    assert (await replica.http.post(f"/v1/tasks/{tid}/ack", headers=stranger.auth)).status_code == 404
    assert (await replica.http.get("/v1/tasks", headers={"Authorization": "Bearer nope"})).status_code == 401


async def test_a_rep_who_recovers_has_the_check_in_closed_as_recovered(harness: Harness, out_watch: Any) -> None:
    h = harness
    replica = await h.replica()
    org = await h.org()
    seen = await out_watch(org.slug)
    await slipping_rep(h, org, "dan")
    await replica.tick()
    assert {r["rule"] for r in await tasks_of(h, org) if r["status"] == "open"} == {
        "behind_pace",
        "no_activity",
        "stalled_pipeline",
    }

    await figure(org, "dan", "85000", "90000", h.clock.now() + timedelta(seconds=1))  # a big win reported
    await activity(org, "dan", "a-1", "call", h.clock.now() - timedelta(hours=1))  # and a call logged
    await h.until(
        lambda c: c.fetchval(
            "SELECT count(*) = 2 FROM coaching.tasks WHERE tenant = $1 AND status = 'closed'", org.slug
        )
    )
    rows = await tasks_of(h, org)
    assert {(r["rule"], r["close_reason"]) for r in rows} == {
        ("behind_pace", "recovered"),
        ("no_activity", "recovered"),
        ("stalled_pipeline", None),  # 5,000 still to win and no open pipeline at all: still stalled
    }
    closed = [
        await seen.wait_for(lambda m, rule=rule: m["type"] == "coaching.task.closed" and m["data"]["rule"] == rule)
        for rule in ("behind_pace", "no_activity")
    ]
    assert {c["data"]["reason"] for c in closed} == {"recovered"}
    await replica.tick()  # recovered: nothing new
    assert len(await tasks_of(h, org)) == 3


async def test_an_action_plan_follows_logged_activities_and_announces_each_step(
    harness: Harness, out_watch: Any
) -> None:
    h = harness
    replica = await h.replica()
    org = await h.org()
    seen = await out_watch(org.slug)
    await roster(org, "eva", "mgr-1")
    await h.until(lambda c: c.fetchval("SELECT 1 FROM coaching.reps WHERE tenant = $1 AND rep_id = 'eva'", org.slug))
    now = h.clock.now()
    made = await replica.http.post(
        "/v1/action-plans",
        headers=org.auth,
        json={
            "rep_id": "eva",
            "title": "Back on track",
            "steps": [
                {"metric": "calls", "target": "3", "due_at": (now + timedelta(days=2)).isoformat()},
                {"metric": "meetings", "target": "1", "due_at": (now + timedelta(days=1)).isoformat()},
            ],
        },
    )
    assert made.status_code == 201, made.text
    plan = made.json()
    assert [s["title"] for s in plan["steps"]] == ["3 calls by Fri 20 Nov", "1 meetings by Thu 19 Nov"]

    await activity(org, "eva", "c-1", "call", now + timedelta(hours=1))
    await activity(org, "eva", "c-1", "call", now + timedelta(hours=1))  # a duplicate delivery
    await activity(org, "eva", "c-0", "call", now - timedelta(hours=1))  # before the plan: does not count
    await activity(org, "eva", "c-2", "call", now + timedelta(hours=2))
    await h.until(
        lambda c: c.fetchval(
            "SELECT progress = 2 FROM coaching.plan_steps WHERE plan_id = $1::uuid AND metric = 'calls'",
            plan["plan_id"],
        )
    )
    await activity(org, "eva", "c-3", "call", now + timedelta(hours=3))
    await h.until(
        lambda c: c.fetchval(
            "SELECT status = 'completed' FROM coaching.plan_steps WHERE plan_id = $1::uuid AND metric = 'calls'",
            plan["plan_id"],
        )
    )
    completed = await seen.wait_for(lambda m: m["type"] == "coaching.plan.step.completed")
    assert completed["data"]["progress"] == "3" and completed["data"]["plan_status"] == "open"

    h.clock.advance(timedelta(days=1, minutes=1))  # the meeting step's due date passes without one
    assert (await replica.tick()).settled == 1
    assert (await replica.tick()).settled == 0
    missed = await seen.wait_for(lambda m: m["type"] == "coaching.plan.step.missed")
    assert missed["data"]["metric"] == "meetings" and missed["data"]["plan_status"] == "missed"
    got = await replica.http.get("/v1/action-plans", params={"rep_id": "eva"}, headers=org.auth)
    assert got.json()["action_plans"][0]["status"] == "missed"

    bad = await replica.http.post(
        "/v1/action-plans",
        headers=org.auth,
        json={
            "rep_id": "eva",
            "steps": [{"metric": "win_rate", "target": "1", "due_at": (now + timedelta(days=9)).isoformat()}],
        },
    )
    assert bad.status_code == 422 and "win_rate" in bad.text


async def test_an_action_plan_made_from_a_check_in_takes_its_suggested_steps(harness: Harness) -> None:
    h = harness
    replica = await h.replica()
    org = await h.org()
    await slipping_rep(h, org, "fay")
    await replica.tick()
    task = next(r for r in await tasks_of(h, org) if r["rule"] == "no_activity")
    made = await replica.http.post("/v1/action-plans", headers=org.auth, json={"task_id": str(task["task_id"])})
    assert made.status_code == 201, made.text
    assert made.json()["rep_id"] == "fay" and made.json()["steps"][0]["metric"] == "activities"


async def test_time_off_and_holidays_make_pace_fair(harness: Harness) -> None:
    h = harness
    replica = await h.replica()
    org = await h.org()
    # on leave from the start of the quarter until yesterday (a `time_off.set`), today a holiday (the tenant
    # calendar's, from its registry entry): nothing was expected of gus yet
    await org.send(topics.ROSTER.name, "time_off.set", "time-off/gus/parental", {
        "time_off_id": "parental", "rep_id": "gus", "first_day": "2026-10-01", "last_day": "2026-11-17",
        "reason": "parental"}, h.clock.now())
    await inprocess.register_tenant(h.producer, org.slug, org.token, org.timezone, h.clock.now(), holidays={
        "added": [{"day": "2026-11-18", "name": "Buss- und Bettag"}]})
    await h.until(lambda c: c.fetchval("SELECT count(*) = 2 FROM (SELECT 1 FROM coaching.leaves WHERE tenant = $1"
                                       " UNION ALL SELECT 1 FROM coaching.tenants WHERE tenant = $1"
                                       " AND holidays IS NOT NULL) AS both_", org.slug))
    listed = await replica.http.get("/v1/holidays?year=2026", headers=org.auth)
    assert listed.json()["holidays"] == [{"day": "2026-11-18", "name": "Buss- und Bettag", "source": "calendar"}]
    leave = await replica.http.get("/v1/reps/gus/time-off", headers=org.auth)
    assert [(t["time_off_id"], t["first_day"], t["last_day"]) for t in leave.json()["time_off"]] == [
        ("parental", "2026-10-01", "2026-11-17")]
    await activity(org, "gus", "g-1", "call", datetime(2026, 9, 30, 9, tzinfo=UTC))  # busy until the leave
    await h.until(lambda c: c.fetchval("SELECT 1 FROM coaching.activities WHERE tenant = $1", org.slug))
    await roster(org, "gus", "mgr-1")
    await figure(org, "gus", "0", "90000", h.clock.now())
    await h.until(
        lambda c: c.fetchval("SELECT 1 FROM coaching.attainment WHERE tenant = $1 AND scope_id = 'gus'", org.slug)
    )
    await h.until(lambda c: c.fetchval("SELECT name IS NOT NULL FROM coaching.reps WHERE tenant = $1", org.slug))
    await replica.tick()
    assert [r["rule"] for r in await tasks_of(h, org)] == []

    # back from leave, silent for five working days (the default): now that counts
    # Wednesday the 25th: the last 5 working days are Sep 30 (a call), Thu 19, Fri 20, Mon 23, Tue 24
    h.clock.set(datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
    await replica.tick()
    assert "no_activity" not in [r["rule"] for r in await tasks_of(h, org)]  # (pace counts from here on)
    h.clock.set(datetime(2026, 11, 26, 9, 0, tzinfo=UTC))  # Thursday: Thu 19 .. Wed 25 without a call
    await replica.tick()
    assert "no_activity" in [r["rule"] for r in await tasks_of(h, org)]
    # the old write endpoints say where holidays and time off live now
    gone = await replica.http.post("/v1/holidays", headers=org.auth, json={"day": "2026-12-24", "name": "Eve"})
    assert gone.status_code == 410 and "tenants holidays" in gone.json()["detail"]
    gone = await replica.http.post("/v1/reps/gus/time-off", headers=org.auth,
                                   json={"first_day": "2026-12-01", "last_day": "2026-12-02"})
    assert gone.status_code == 410 and "time_off.set" in gone.json()["detail"]


async def test_thresholds_are_set_per_tenant_and_team(harness: Harness) -> None:
    h = harness
    replica = await h.replica()
    org = await h.org()
    put = await replica.http.put("/v1/policies", headers=org.auth, json={"no_activity_days": 60})
    assert put.status_code == 200 and put.json()["effective"]["no_activity_days"] == 60
    team = await replica.http.put(
        "/v1/policies/teams/team-a", headers=org.auth, json={"pace_grace_share": "0.99", "coverage_multiple": "0"}
    )
    assert team.status_code == 200
    bad = await replica.http.put("/v1/policies", headers=org.auth, json={"pace_threshold": "-1"})
    assert bad.status_code == 422 and "pace_threshold" in bad.text
    await slipping_rep(h, org, "hal")  # team-a: no pace check before 99 %, no coverage check; known < 60 working days
    await replica.tick()
    assert [r["rule"] for r in await tasks_of(h, org)] == []


async def test_a_kpi_the_tenant_defined_raises_behind_pace_once_listed_and_shows_in_the_weekly_review(
    harness: Harness,
) -> None:
    """issue 22: kpi's figures of a KPI the tenant defined (demos_held) are coaching's like the built-in ones."""
    h = harness
    replica = await h.replica()
    org = await h.org()
    bad = await replica.http.put("/v1/policies", headers=org.auth, json={"pace_metrics": ["won_revenue", "Demos Held"]})
    assert bad.status_code == 422 and "pace_metrics.1" in bad.text and "'Demos Held'" in bad.text, bad.text
    put = await replica.http.put("/v1/policies", headers=org.auth, json={"pace_metrics": ["won_revenue", "demos_held"]})
    assert put.status_code == 200 and put.json()["effective"]["pace_metrics"] == ["won_revenue", "demos_held"]

    await roster(org, "lea", "mgr-3")
    await activity(org, "lea", "a-1", "call", h.clock.now() - timedelta(hours=1))  # not silent
    await figure(org, "lea", "2", "40", h.clock.now(), metric="demos_held")
    await h.until(lambda c: c.fetchval(
        "SELECT 1 FROM coaching.attainment WHERE tenant = $1 AND scope_id = 'lea' AND metric = 'demos_held'", org.slug))
    await h.until(lambda c: c.fetchval("SELECT 1 FROM coaching.activities WHERE tenant = $1", org.slug))
    await replica.tick()
    [task] = await tasks_of(h, org)
    assert (task["rule"], task["severity"]) == ("behind_pace", "critical")
    assert json.loads(task["evidence"])["metric"] == "demos_held"
    assert task["summary"].startswith("Lea is at 9% of pace on demos held for 2026-Q4: 2 against ")
    # no step tracks a KPI the tenant defined: the plan a check-in on one suggests is on meetings
    made = await replica.http.post("/v1/action-plans", headers=org.auth, json={"task_id": str(task["task_id"])})
    assert made.status_code == 201, made.text
    assert made.json()["steps"][0]["metric"] == "meetings"

    h.clock.set(datetime(2026, 11, 23, 7, 0, tzinfo=UTC))  # Monday 08:00 in Berlin: the review of 2026-W47
    await replica.tick()
    reviews = await replica.http.get("/v1/reviews", params={"week": "2026-W47"}, headers=org.auth)
    review = next(r for r in reviews.json()["reviews"] if r["scope"] == "rep")
    assert [(f["metric"], f["period"], f["attainment"]) for f in review["figures"]] == [
        ("demos_held", "2026-Q4", "0.0500")]
    assert review["headline"].startswith("Week 2026-W47 review for Lea: at 5% of demos held target for 2026-Q4")


async def test_weekly_reviews_go_out_once_per_rep_and_team_with_the_managers_scorecard(
    harness: Harness, out_watch: Any
) -> None:
    h = harness
    first, second = await h.replica("a"), await h.replica("b")
    org = await h.org()
    seen = await out_watch(org.slug)
    await slipping_rep(h, org, "ivy", "mgr-7")
    await figure(org, "team-a", "1000", "200000", h.clock.now(), scope="team")
    await first.tick()
    h.clock.set(datetime(2026, 11, 23, 6, 59, tzinfo=UTC))  # Monday 07:59 in Berlin: not yet
    await first.tick()
    count = "SELECT count(*) FROM coaching.reviews WHERE tenant = $1 AND week = '2026-W47'"
    assert (await h.query(count, org.slug))[0][0] == 0
    h.clock.set(datetime(2026, 11, 23, 7, 0, tzinfo=UTC))  # Monday 08:00 in Berlin
    await asyncio.gather(first.tick(), second.tick())
    await first.tick()
    assert (await h.query(count, org.slug))[0][0] == 2  # ivy and team-a, once each
    reviews = await first.http.get("/v1/reviews", params={"week": "2026-W47"}, headers=org.auth)
    by_scope = {r["scope"]: r for r in reviews.json()["reviews"]}
    assert set(by_scope) == {"rep", "team"}
    rep = by_scope["rep"]
    assert rep["headline"].startswith("Week 2026-W47 review for Ivy: at 0% of won revenue target for 2026-Q4")
    assert rep["open_tasks"] == 3 and rep["figures"][0]["trend"] == "new"
    team = by_scope["team"]
    assert team["members"] == ["ivy"] and team["manager"]["manager_id"] == "mgr-7"
    assert team["manager"]["tasks"] == 3 and team["manager"]["acknowledged"] == 0
    for subject in ("ivy", "team-a"):
        await seen.wait_for(
            lambda m, subject=subject: m["type"] == "coaching.review.published"
            and m["data"]["week"] == "2026-W47" and m["data"]["scope_id"] == subject
        )
    await seen.poll(1.5)  # and no second one
    weekly = [m for m in seen.seen if m["type"] == "coaching.review.published" and m["data"]["week"] == "2026-W47"]
    assert len(weekly) == 2
    card = await first.http.get("/v1/managers/mgr-7/scorecard", headers=org.auth)
    assert card.status_code == 200 and card.json()["tasks"] == 3 and card.json()["team_target"] == "90000"


# 40,000 of 90,000 won in 2026-Q4, 20,000 open in the quarter: 50,000 still to win (issue 22)
SHORT = {"closed": "40000", "commit": "15000", "best_case": "5000", "pipeline": "0", "weighted": "50500",
         "gap": "50000", "probability": "0.01", "method": "exact", "error": "0", "open_deals": 2, "estimated": 0,
         "deals": [{"deal_id": "d-1", "rep_id": "kim", "amount": "15000", "probability": "0.6", "basis": "crm",
                    "forecast_category": "commit", "expected_close_at": "2026-12-10T09:00:00+00:00"},
                   {"deal_id": "d-2", "rep_id": "kim", "amount": "5000", "probability": "0.3", "basis": "history",
                    "forecast_category": "best_case", "expected_close_at": "2026-12-20T09:00:00+00:00"}]}


async def test_a_forecast_short_of_target_reaches_the_check_in_and_the_weekly_review(harness: Harness) -> None:
    h = harness
    replica = await h.replica("a")
    org = await h.org()
    await roster(org, "kim", "mgr-9")
    # 160,000 open in all (3.2x what is left: stalled_pipeline's coverage is fine), 20,000 of it expected this quarter
    await org.send(topics.DEALS.name, "deal.upserted", "kim", {
        "deal_id": "big", "rep_id": "kim", "amount": "160000", "currency": "EUR", "stage": "open",
        "updated_at": h.clock.now().isoformat()}, h.clock.now())
    await figure(org, "kim", "40000", "90000", h.clock.now(), forecast=SHORT)
    await h.until(lambda c: c.fetchval(
        "SELECT 1 FROM coaching.attainment WHERE tenant = $1 AND scope_id = 'kim' AND forecast IS NOT NULL", org.slug))
    await h.until(lambda c: c.fetchval(
        "SELECT 1 FROM coaching.deals WHERE tenant = $1 AND deal_id = 'big'", org.slug))
    await replica.tick()
    [task] = [r for r in await tasks_of(h, org) if r["rule"] == "forecast_short"]
    assert task["severity"] == "critical" and task["summary"] == (
        "Kim is forecast at 50,500.00 of 90,000.00 won revenue for 2026-Q4 (a 1% chance of reaching it): 50,000.00"
        " still to win, and the open deals expected to close in 2026-Q4 total 20,000.00.")
    listed = await replica.http.get("/v1/tasks", params={"rep_id": "kim"}, headers=org.auth)
    [shown] = [t for t in listed.json()["tasks"] if t["rule"] == "forecast_short"]
    assert shown["details"]["gap"] == "50000" and [d["deal_id"] for d in shown["details"]["deals"]] == ["d-1", "d-2"]
    assert json.loads(task["details"])["closing_deals"][0] == "d-1 (15,000.00 at 60% by 2026-12-10)"

    h.clock.set(datetime(2026, 11, 23, 7, 0, tzinfo=UTC))  # Monday 08:00 in Berlin: the review of 2026-W47
    await replica.tick()
    reviews = await replica.http.get("/v1/reviews", params={"week": "2026-W47"}, headers=org.auth)
    by_scope = {r["scope"]: r for r in reviews.json()["reviews"]}
    for review in (by_scope["rep"], by_scope["team"]):  # kim's own, and team-a's with kim in it
        [forecast] = review["forecasts"]
        assert (forecast["rep_id"], forecast["period"], forecast["weighted"], forecast["target"]) == (
            "kim", "2026-Q4", "50500", "90000")
        assert forecast["summary"].startswith("Kim is forecast at 50,500.00 of 90,000.00 won revenue for 2026-Q4 (56%)")

    await figure(org, "kim", "40000", "90000", h.clock.now(), forecast=None)  # a newer figure without one
    await h.until(lambda c: c.fetchval(
        "SELECT 1 FROM coaching.attainment WHERE tenant = $1 AND scope_id = 'kim' AND forecast IS NULL", org.slug))
    await replica.tick()
    [task] = [r for r in await tasks_of(h, org) if r["rule"] == "forecast_short"]
    assert (task["status"], task["close_reason"]) == ("closed", "recovered")
