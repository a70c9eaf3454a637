"""Which rep each CRM user is: the pure proposal behind the user sync (issue 21, `users_sync.py`). No I/O.

Per CRM user, in a stable order (active users first, then by id):

- already mapped (`crm_user_map`, or every user by `"*": "="`): kept as it is;
- its e-mail (trimmed, case-insensitive) is an existing rep's: mapped to that rep (an active rep wins over an
  inactive one; two reps of the same standing with that e-mail are ambiguous: skipped, to be mapped by hand);
- otherwise, when active in the CRM: a new rep, created and mapped. Its id is the e-mail's local part (`alice`),
  else `<crm>-<user id>`, with `-2`, `-3`... when taken (compared case-insensitively with every existing rep id,
  every rep a mapping names and every rep proposed before it); its name is the CRM's, its time zone the CRM's when
  the CRM keeps a valid IANA one, else the tenant's; it joins `team_id`;
- an inactive CRM user no rep has the e-mail of: skipped (nobody is created for someone who left).

A tenant in `manual` mode gets the same proposal, and nothing of it is applied (`Proposal.applies`).

>>> from services.ingest.crm.reading.model import CrmUser
>>> users = [CrmUser("7", "Alice Example", "Alice@Example.com ", None, True), CrmUser("8", "Bo", None, None, True)]
>>> p = propose("hubspot", users, [Rep("alice", "Alice", "alice@example.com")], {}, tenant_timezone="Europe/Berlin")
>>> [(d.crm_user_id, d.action, d.rep_id) for d in p.decisions]
[('7', 'map', 'alice'), ('8', 'create', 'hubspot-8')]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from services.ingest.crm.mapping import IDENTITY
from services.ingest.crm.reading.model import CrmUser
from shared.periods import validate_timezone

Mode = Literal["automatic", "manual"]
Action = Literal["keep", "map", "create", "skip"]
MODES: tuple[Mode, ...] = ("automatic", "manual")
DEFAULT_MODE: Mode = "automatic"
DEFAULT_TEAM = "unassigned"  # the team new reps join until an admin moves them (`PUT .../user-mapping-mode`)
MAX_ID, MAX_NAME, MAX_EMAIL = 200, 200, 320  # the contract's limits (shared/events.py, RepUpserted)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_NOT_ID = re.compile(r"[^a-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class Rep:
    """A rep the tenant has (ingest's `people`, with the name the roster last gave)."""

    rep_id: str
    name: str | None
    email: str | None
    active: bool = True


@dataclass(frozen=True, slots=True)
class NewRep:
    """A rep to create from a CRM user (a `rep.upserted`)."""

    rep_id: str
    name: str
    email: str | None
    timezone: str
    team_id: str


@dataclass(frozen=True, slots=True)
class Decision:
    """What becomes of one CRM user: `rep_id` is the rep it is (kept, mapped, created) or None (skipped)."""

    crm_user_id: str
    action: Action
    rep_id: str | None
    reason: str
    new_rep: NewRep | None = None


@dataclass(frozen=True, slots=True)
class Proposal:
    mode: Mode
    decisions: tuple[Decision, ...]

    @property
    def applies(self) -> bool:
        """Whether the sync writes it (automatic mode); in manual mode it is only shown."""
        return self.mode == "automatic"

    def new_mapping(self) -> dict[str, str]:
        """The mapping entries to add: CRM user id -> rep id, of every user mapped or created."""
        return {d.crm_user_id: d.rep_id for d in self.decisions if d.action in ("map", "create") and d.rep_id}

    def new_reps(self) -> list[NewRep]:
        return [d.new_rep for d in self.decisions if d.new_rep is not None]

    def counts(self) -> dict[Action, int]:
        found: dict[Action, int] = {"keep": 0, "map": 0, "create": 0, "skip": 0}
        for decision in self.decisions:
            found[decision.action] += 1
        return found


def normal_email(email: str | None) -> str | None:
    """An e-mail as compared (trimmed, lower case), or None when it is none.

    >>> normal_email("  Alice@Example.COM "), normal_email("not an address"), normal_email("")
    ('alice@example.com', None, None)
    """
    cleaned = (email or "").strip().lower()
    return cleaned if _EMAIL.fullmatch(cleaned) and len(cleaned) <= MAX_EMAIL else None


def propose(crm: str, users: Iterable[CrmUser], reps: Iterable[Rep], mapping: Mapping[str, str], *,
            tenant_timezone: str, mode: Mode = DEFAULT_MODE, team_id: str = DEFAULT_TEAM) -> Proposal:
    """The decision for each of `users` given the tenant's `reps` and its current `mapping` (module docstring)."""
    known = list(reps)
    by_email: dict[str, list[Rep]] = {}
    for rep in known:
        if (email := normal_email(rep.email)) is not None:
            by_email.setdefault(email, []).append(rep)
    taken = {rep.rep_id.lower() for rep in known} | {r.lower() for r in mapping.values() if r != IDENTITY[1]}
    everyone = mapping.get(IDENTITY[0]) == IDENTITY[1]
    decisions: list[Decision] = []
    for user in sorted(users, key=lambda u: (not u.active, u.id)):
        decision = _decide(crm, user, mapping, everyone, by_email, taken, tenant_timezone, team_id)
        if decision.new_rep is not None:
            taken.add(decision.new_rep.rep_id.lower())
            if (email := normal_email(decision.new_rep.email)) is not None:  # a second account with that e-mail
                by_email[email] = [Rep(decision.new_rep.rep_id, decision.new_rep.name, email)]
        decisions.append(decision)
    return Proposal(mode, tuple(decisions))


def _decide(crm: str, user: CrmUser, mapping: Mapping[str, str], everyone: bool, by_email: dict[str, list[Rep]],
            taken: set[str], tenant_timezone: str, team_id: str) -> Decision:
    if user.id in mapping:
        return Decision(user.id, "keep", mapping[user.id], "already mapped")
    if everyone:
        return Decision(user.id, "keep", user.id, "mapped by '*': '=' to the rep of the same id")
    email = normal_email(user.email)
    matches = by_email.get(email, []) if email is not None else []
    active = [rep for rep in matches if rep.active]
    candidates = active or matches
    if len(candidates) == 1:
        return Decision(user.id, "map", candidates[0].rep_id, "the rep with this e-mail")
    if len(candidates) > 1:
        named = ", ".join(sorted(rep.rep_id for rep in candidates))
        return Decision(user.id, "skip", None, f"its e-mail is that of several reps ({named}): map it by hand")
    if not user.active:
        return Decision(user.id, "skip", None, f"inactive in {crm} and no rep has its e-mail")
    rep_id = new_rep_id(crm, user.id, email, taken)
    new = NewRep(rep_id=rep_id, name=_name(crm, user, email), email=email, timezone=_zone(user.time_zone,
                 tenant_timezone), team_id=team_id)
    return Decision(user.id, "create", rep_id, f"new in {crm}: no rep has its e-mail", new)


def new_rep_id(crm: str, user_id: str, email: str | None, taken: set[str]) -> str:
    """A rep id for a new CRM user, none of `taken` (lower case): the e-mail's local part, else `<crm>-<id>`;
    `-2`, `-3`... while taken.

    >>> new_rep_id("pipedrive", "42", "Ana.Berg@example.com", {"ana.berg"}), new_rep_id("hubspot", "9", None, set())
    ('ana.berg-2', 'hubspot-9')
    """
    local = _NOT_ID.sub("-", email.split("@", 1)[0].lower()).strip("-._")[:60] if email else ""
    base = local or f"{crm}-{re.sub(r'[^A-Za-z0-9._-]+', '-', user_id)}"[:MAX_ID - 8]
    candidate, n = base, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _name(crm: str, user: CrmUser, email: str | None) -> str:
    name = " ".join((user.name or "").split())
    if not name and email:
        name = email.split("@", 1)[0]
    return (name or f"{crm} user {user.id}")[:MAX_NAME]


def _zone(given: str | None, tenant_timezone: str) -> str:
    if given:
        try:
            validate_timezone(given)
            return given
        except ValueError:
            pass  # a zone the CRM keeps that is no IANA name (an old Salesforce key): the tenant's
    return tenant_timezone
