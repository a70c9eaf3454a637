"""Which rows are a tenant's and which a rep's, in every schema: the one declared mapping, and how a row is
rendered in an export. Pure: no I/O (the catalogue is read by `repository`).

A tenant's rows are found from the catalogue: every table of the four schemas with a `tenant` column, plus
the tables whose tenant is told another way (`shared.db.TENANT_COLUMN`, `shared.db.VIA_PARENT`). A rep's
rows are declared here, table by table (`REP_ROWS`); `tests/integration/privacy/test_rep_mapping.py` fails
when a table with a rep-like column (`rep_like`) is neither declared nor listed in `NOT_A_REPS_ROW` with a
reason.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from shared import db

SCHEMAS = ("ingest", "kpi", "coaching", "recognition")
# Never exported nor deleted: the record of the erasure itself (what keeps a replay from bringing the
# person back; it holds the tenant's slug and the rep's id, nothing else).
KEPT = frozenset({"erasures"})

# $1 is the tenant, $2 the rep. A predicate without `tenant = $1` gets it added (`rep_predicate`).
_REP = "rep_id = $2"
_SCOPE = "scope = 'rep' AND scope_id = $2"
# an outbox row not yet published (or refused by Kafka) keyed by the rep: `<tenant>:<rep>` or attainment's
# `<tenant>:rep:<rep>:<period>:<metric>`
_KEY = ("(convert_from(key, 'UTF8') = $1 || ':' || $2"
        " OR starts_with(convert_from(key, 'UTF8'), $1 || ':rep:' || $2 || ':')"
        " OR starts_with(convert_from(key, 'UTF8'), $1 || ':time-off/' || $2 || '/'))")

REP_ROWS: dict[str, str] = {
    "ingest.crm_user_map": _REP,
    "ingest.deal_owners": _REP,
    "ingest.crm_deals": "deal_id IN (SELECT o.deal_id FROM deal_owners o WHERE o.tenant = $1 AND o.rep_id = $2)",
    "ingest.outbox": _KEY,
    "ingest.outbox_dead": _KEY,
    "kpi.activities": _REP,
    "kpi.deals": _REP,
    "kpi.memberships": _REP,
    "kpi.reps": _REP,
    "kpi.roster_versions": _REP,
    "kpi.period_tallies": _SCOPE,
    "kpi.published_figures": _SCOPE,
    "kpi.targets": _SCOPE,
    "kpi.leaves": _REP,
    "kpi.custom_tallies": _SCOPE,
    "kpi.custom_deals": _SCOPE,
    # a contest between reps ranks them by name (its standings): the contest goes with any rep it ranks
    "kpi.contests": "participants = 'reps' AND $2 = ANY(participant_ids)",
    "kpi.outbox": _KEY,
    "kpi.outbox_dead": _KEY,
    "coaching.action_plans": _REP,
    "coaching.plan_steps": "plan_id IN (SELECT p.plan_id FROM action_plans p WHERE p.tenant = $1 AND p.rep_id = $2)",
    "coaching.activities": _REP,
    "coaching.attainment": _SCOPE,
    "coaching.cooldowns": _REP,
    "coaching.deals": _REP,
    "coaching.owed_evaluations": _REP,
    "coaching.reps": _REP,
    "coaching.reviews": _SCOPE,
    "coaching.tasks": _REP,
    "coaching.follow_ups": _REP,
    "coaching.time_off": _REP,
    "coaching.leaves": _REP,
    "coaching.outbox": _KEY,
    "coaching.outbox_dead": _KEY,
    "recognition.activities": _REP,
    "recognition.attainment": _SCOPE,
    # a team's largest deal names the rep who won it (facts: rep, rep_id; headline)
    # a contest's lead names its runner-up (facts: runner_up_id, runner_up)
    "recognition.celebrations": f"({_SCOPE}) OR facts->>'rep_id' = $2 OR facts->>'runner_up_id' = $2",
    "recognition.contests": ("latest->>'participants' = 'reps' AND latest->'standings'"
                             " @> jsonb_build_array(jsonb_build_object('participant_id', $2::text))"),
    "recognition.deals": _REP,
    "recognition.leaves": _REP,
    "recognition.reps": _REP,
    "recognition.outbox": _KEY,
    "recognition.outbox_dead": _KEY,
    # who signs in as whom (single sign-on, services/ingest/sso.py), and their sessions, found by that e-mail
    "ingest.people": _REP,
    "ingest.sso_sessions": "email IN (SELECT p.email FROM people p WHERE p.tenant = $1 AND p.rep_id = $2)",
    # a rep's own token, or a manager token that speaks for them (issue 17: tokens and roles)
    **{f"{schema}.tokens": "(rep_id = $2 OR manager_id = $2)" for schema in ("ingest", "kpi", "coaching",
                                                                              "recognition")},
}
# Rows of another rep that name this one (as their manager): exported with the rep's data, kept by an
# erasure (they are the other rep's; the id left there names no row any more).
MENTIONS: dict[str, str] = {
    "kpi.reps": "manager_id = $2",
    "coaching.reps": "manager_id = $2",
    "coaching.tasks": "manager_id = $2",
    "coaching.attainment": "manager_id = $2",
    "ingest.people": "manager_id = $2",
}
# Tables with a rep-like column whose rows are nobody's in particular, each with the reason.
NOT_A_REPS_ROW: dict[str, str] = {
    "kpi.teams": "a team (parent_id names a team)",
    "coaching.policies": "a team's coaching policy",
}
# Deleted before the tables their predicate reads (a rep's rows are found through their parent's); the
# registry last (the other tables of ingest may refer to it).
FIRST = ("ingest.crm_deals", "coaching.plan_steps", "ingest.sso_sessions")
LAST = ("ingest.tenants",)
# Sealed secrets are not exported (a CRM credential is no one's personal data, and is the tenant's to rotate).
REDACTED: dict[str, frozenset[str]] = {
    "ingest.tenant_secrets": frozenset({"secret", "previous_secret"}),
    "ingest.crm_api_tokens": frozenset({"token"}),
    "ingest.sso_configs": frozenset({"client_secret"}),  # single sign-on's client secret and refresh tokens
    "ingest.sso_sessions": frozenset({"refresh_token"}),
    # a token's digest is a credential's stand-in, not personal data: the export says which tokens, not them
    **{f"{schema}.tokens": frozenset({"token_sha256"}) for schema in ("ingest", "kpi", "coaching", "recognition")},
}
_REP_LIKE = ("rep_id", "scope_id", "manager_id", "owner_id", "parent_id", "person_id", "user_id")


def rep_like(column: str) -> bool:
    """Whether a column's name says it may hold a rep's id.

    >>> rep_like("rep_id"), rep_like("crm_user_id"), rep_like("deal_id")
    (True, True, False)
    """
    return column.endswith(_REP_LIKE) or column == "owner"


@dataclass(frozen=True, slots=True)
class Table:
    """A table of a tenant's: its schema, name, columns, and how its tenant is told."""

    schema: str
    name: str
    columns: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def tenant_predicate(self) -> str:
        """The rows of tenant $1."""
        if "tenant" in self.columns:
            return "tenant = $1"
        if self.name in db.TENANT_COLUMN:
            return f"{db.TENANT_COLUMN[self.name]} = $1"
        if self.name in db.VIA_PARENT and self.name == "plan_steps":
            return "plan_id IN (SELECT p.plan_id FROM action_plans p WHERE p.tenant = $1)"
        raise ValueError(f"{self.qualified}: no way to tell its tenant")

    def rep_predicate(self, *, mentions: bool = False) -> str | None:
        """The rows of rep $2 of tenant $1 (with `mentions`, also the rows of others that name the rep); None
        when the table holds none."""
        own = REP_ROWS.get(self.qualified)
        ors = [p for p in (own, MENTIONS.get(self.qualified) if mentions else None) if p]
        if not ors:
            return None
        either = " OR ".join(f"({p})" for p in ors)
        if "tenant" in self.columns:
            return f"tenant = $1 AND ({either})"
        return either


def known(table: Table) -> bool:
    """Whether the mapping covers `table`: it has no rep-like column, or is declared either way."""
    if not any(rep_like(c) for c in table.columns if c != "tenant"):
        return True
    return table.qualified in REP_ROWS or table.qualified in NOT_A_REPS_ROW


def ordered(tables: list[Table]) -> list[Table]:
    """`tables` in an order safe for deleting: those of `FIRST` before the rest, those of `LAST` after."""
    return sorted(tables, key=lambda t: (0 if t.qualified in FIRST else 2 if t.qualified in LAST else 1,
                                         t.schema, t.name))


def render(value: Any) -> Any:
    """A column's value as JSON, losslessly: Decimal as its exact text, times in ISO 8601 with their offset,
    bytes as base64, UUIDs as text, containers value by value.

    >>> render(Decimal("1200.50")), render([b"\\x00"])
    ('1200.50', ['AA=='])
    """
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, list | tuple):
        return [render(v) for v in value]
    if isinstance(value, dict):
        return {str(k): render(v) for k, v in value.items()}
    return value


def render_row(table: Table, row: dict[str, Any], jsonb: frozenset[str] = frozenset()) -> dict[str, Any]:
    """One row for the export: each value `render`ed, `jsonb` columns parsed (numbers as exact text),
    `REDACTED` columns replaced by a marker."""
    hidden = REDACTED.get(table.qualified, frozenset())
    out: dict[str, Any] = {}
    for column, value in row.items():
        if column in hidden and value is not None:
            out[column] = "<redacted>"
        elif column in jsonb and isinstance(value, str):
            out[column] = render(json.loads(value, parse_float=Decimal))
        else:
            out[column] = render(value)
    return out
