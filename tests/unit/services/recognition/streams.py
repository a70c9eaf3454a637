"""Records for recognition's tests: kpi figures, deals, activities, roster and registry entries as the
consumer hands them to the handler (`shared.consumer.Incoming`), at fixed instants, and a mixed stream."""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from shared.cloudevents import CloudEvent
from shared.consumer import Incoming
from shared.events import (
    ActivityLogged,
    AttainmentUpdated,
    ContestStanding,
    ContestUpdated,
    DealDeleted,
    DealUpserted,
    RepUpserted,
)

NOW = datetime(2026, 11, 18, 10, tzinfo=UTC)  # October and 2026-Q3 have closed (Berlin)
EXT = {"tenanttimezone": "Europe/Berlin", "tenantfiscalstart": "1", "tenantcurrency": "EUR"}
MONDAY = datetime(2026, 11, 2, 8, tzinfo=UTC)


def tenant_id() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def incoming(tenant: str, type_: str, data: BaseModel, at: datetime, *, source: str = "api",
             event_id: str | None = None) -> Incoming:
    event = CloudEvent(event_id or str(uuid.uuid4()), type_, source, at, tenant, data.model_dump(mode="json"), EXT)
    return Incoming("topic", 0, 0, event, data)


def rep(tenant: str, rep_id: str, team: str = "team-1") -> Incoming:
    return incoming(tenant, "rep.upserted", RepUpserted(rep_id=rep_id, name=rep_id.title(), team_id=team,
                                                        timezone="Europe/Berlin"), datetime(2026, 1, 1, tzinfo=UTC))


def won(tenant: str, deal_id: str, rep_id: str, amount: str, closed: datetime, *, currency: str = "EUR",
        stage: str = "won", updated: datetime | None = None) -> Incoming:
    data = DealUpserted(deal_id=deal_id, rep_id=rep_id, amount=Decimal(amount), currency=currency, stage=stage,
                        created_at=closed - timedelta(days=20), closed_at=closed if stage != "open" else None,
                        updated_at=updated or closed)
    return incoming(tenant, "deal.upserted", data, closed)


def figure(tenant: str, scope_id: str, attainment: str, as_of: datetime, *, scope: str = "rep",
           period: str = "2026-Q4", target: str = "100000", source_time: datetime | None = None,
           period_end: datetime | None = None) -> Incoming:
    actual = Decimal(attainment) * Decimal(target)
    data = AttainmentUpdated(scope=scope, scope_id=scope_id, period=period, metric="won_revenue", actual=actual,
                             target=Decimal(target), attainment=Decimal(attainment), as_of=as_of, name=scope_id.title(),
                             source_time=source_time, period_end=period_end)
    return incoming(tenant, "kpi.attainment.updated", data, as_of, source="attain/kpi")


def activity(tenant: str, activity_id: str, rep_id: str, at: datetime) -> Incoming:
    return incoming(tenant, "activity.logged", ActivityLogged(activity_id=activity_id, rep_id=rep_id, kind="call",
                                                              occurred_at=at), at)


def batches_of(records: Sequence[Incoming], rnd: random.Random) -> list[list[Incoming]]:
    """`records` cut at random places (batch sizes 1 to 12), order kept."""
    out, i = [], 0
    while i < len(records):
        n = rnd.randint(1, 12)
        out.append(list(records[i:i + n]))
        i += n
    return out


def week_of_calls(t: str, rep_id: str, per_day: int = 5) -> list[Incoming]:
    """Monday 2026-11-02 to Friday: `per_day` calls a day."""
    return [activity(t, f"{rep_id}-{d}-{k}", rep_id, MONDAY + timedelta(days=d, minutes=10 * k))
            for d in range(5) for k in range(per_day)]


def mixed_stream(t: str, rnd: random.Random) -> list[Incoming]:
    """Roster first, then deals, figures and activities of four reps, each rep's in its own order (as Kafka
    keeps a key's records), the reps' streams mixed at random, with redeliveries."""
    reps = [f"rep-{i}" for i in range(4)]
    out = [rep(t, r, f"team-{i % 2}") for i, r in enumerate(reps)]
    queues: list[list[Incoming]] = []
    for i, r in enumerate(reps):
        closes = sorted(datetime(2026, 10, 1, tzinfo=UTC) + timedelta(hours=rnd.randrange(0, 1400)) for _ in range(5))
        own = [won(t, f"{r}-d{n}", r, str(rnd.randrange(5, 90) * 1000), closed) for n, closed in enumerate(closes)]
        later = closes[-1] + timedelta(days=1)  # one deal reopened and lost, one deleted, one older version late
        own.append(won(t, f"{r}-d1", r, "1000", closes[1], stage="lost", updated=later))
        own.append(incoming(t, "deal.deleted", DealDeleted(deal_id=f"{r}-d2", updated_at=later), later))
        own.append(won(t, f"{r}-d3", r, "999999", closes[3], updated=closes[3] - timedelta(days=1)))
        for _ in range(8):  # figures in any order of as_of: the newest wins
            share = Decimal(rnd.randrange(20, 180)) / 100
            own.append(figure(t, r, str(share), datetime(2026, 11, 1, tzinfo=UTC) + timedelta(hours=rnd.randrange(99))))
        own += week_of_calls(t, r, per_day=5 if i % 2 == 0 else 4)
        queues.append(own)
    body: list[Incoming] = []
    while queues:
        queue = rnd.choice(queues)
        body.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    body += [rnd.choice(body) for _ in range(15)]
    return out + body


# --- contests (kpi.contests.v1) -------------------------------------------------------------------------

CONTEST_START = datetime(2026, 11, 2, 8, tzinfo=UTC)  # Monday 09:00 in Berlin
CONTEST_END = datetime(2026, 11, 30, 23, tzinfo=UTC)  # 1 December 00:00 in Berlin: the window's last day is the 30th


def standings_of(values: Mapping[str, str]) -> tuple[list[ContestStanding], list[str]]:
    """Participants' values as kpi ranks them (competition ranking, ties sharing a rank; equal values in id
    order), and the leaders: rank 1 with a value above 0."""
    ordered = sorted(values.items(), key=lambda kv: (-Decimal(kv[1]), kv[0]))
    standings = [ContestStanding(rank=1 + sum(Decimal(w) > Decimal(v) for _, w in ordered),
                                 tied=sum(Decimal(w) == Decimal(v) for _, w in ordered) > 1, participant_id=pid,
                                 name=pid.title(), value=Decimal(v)) for pid, v in ordered]
    return standings, [s.participant_id for s in standings if s.rank == 1 and s.value > 0]


def contest_update(revision: int, as_of: datetime, values: Mapping[str, str], *, status: str = "running",
                   prizes: Sequence[str] = ("a weekend in Rome", "a dinner for two"), contest_id: str = "c-1",
                   participants: str = "reps", starts_at: datetime = CONTEST_START,
                   ends_at: datetime = CONTEST_END) -> ContestUpdated:
    standings, leaders = standings_of(values)
    return ContestUpdated(contest_id=contest_id, name="November Sprint", metric="won_revenue",
                          participants=participants, rank_by="amount", starts_at=starts_at, ends_at=ends_at,
                          status=status, prizes=list(prizes), standings=standings, leaders=leaders,
                          revision=revision, as_of=as_of)


def contest(tenant: str, revision: int, as_of: datetime, values: Mapping[str, str], **kwargs: Any) -> Incoming:
    """kpi's `kpi.contest.updated` of one revision (its ce_id stable per contest and revision)."""
    data = contest_update(revision, as_of, values, **kwargs)
    return incoming(tenant, "kpi.contest.updated", data, as_of, source="attain/kpi",
                    event_id=f"{data.contest_id}:{revision}")


def minutes(m: float) -> datetime:
    return NOW + timedelta(minutes=m)


def race(t: str) -> list[tuple[float, Incoming]]:
    """A contest from its schedule to its end, each revision at its minute after NOW: it starts at 0, ann leads
    alone from 5, bob ties at 8, ann alone again from 9, bob from 30, ann from 38 (celebrated last already),
    bob from 70, ann from 90; it ends at 180 with ann 1st and bob 2nd (two prizes), cid on 0."""
    end = minutes(180)

    def at(m: float, revision: int, ann: str, bob: str, status: str = "running") -> tuple[float, Incoming]:
        return m, contest(t, revision, minutes(m), {"ann": ann, "bob": bob, "cid": "0"}, status=status, starts_at=NOW,
                          ends_at=end)

    return [at(-60, 1, "0", "0", "scheduled"), at(0, 2, "0", "0"), at(5, 3, "100", "0"), at(8, 4, "100", "100"),
            at(9, 5, "150", "100"), at(30, 6, "150", "200"), at(38, 7, "250", "200"), at(70, 8, "250", "300"),
            at(90, 9, "400", "300"), at(180, 10, "400", "300", "final")]


TICKS = [18.99, 19, 25, 35, 60, 79.99, 80, 85, 100, 150, 181]  # the lead timer's runs, in minutes after NOW
