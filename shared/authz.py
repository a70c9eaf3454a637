"""Who is asking, and what their role lets them do (docs/contract.md, "Tokens and roles").

Every token has one role in one tenant:

- `admin`: everything inside its tenant: settings, targets, roster, policies, tokens, every read;
- `integration`: post events and read everything; no settings, no acting on check-ins;
- `manager`: read the reps under its `manager_id` (directly or further down the roster), their check-ins
  and plans; acknowledge and complete those check-ins; make their plans; and what a viewer sees;
- `rep`: read their own scorecard, check-ins, plans and celebrations; acknowledge and complete their own
  check-ins; and what a viewer sees;
- `viewer`: leaderboards, team totals, celebrations: what a TV on the sales floor shows.

A route says which roles may call it with `allow(...)` (a FastAPI dependency that authenticates the bearer
token and answers 403 to any other role); what a rep or manager may see of a particular rep is decided per
object by `may_see_rep` with the roster, and a rep they may not see is answered 404 (its existence is not
theirs to learn). Routes that take no token say so with `public(reason)`. Every route of every service must
carry one of the two: `tests/integration/authz/test_role_matrix.py` fails a route without a decision.

Pure, except the dependencies, which read the token table through `shared.token_store`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException

from shared.events import ROLES, Role

READERS_OF_EVERYTHING: frozenset[Role] = frozenset({"admin", "integration"})
EVERYONE: tuple[Role, ...] = ROLES


@dataclass(frozen=True, slots=True)
class Principal:
    """The holder of a token: its tenant, role, id, and for a rep or manager the person it speaks for."""

    tenant: str
    role: Role
    token_id: str
    rep_id: str | None = None
    manager_id: str | None = None

    @property
    def reads_everything(self) -> bool:
        return self.role in READERS_OF_EVERYTHING


def visible_reps(who: Principal, under_manager: Collection[str] = ()) -> frozenset[str] | None:
    """The reps whose own figures, check-ins and plans `who` may read: None for every rep (admin,
    integration); `under_manager` (the reps under `who.manager_id`) for a manager; their own for a rep.

    >>> visible_reps(Principal("t", "integration", "k")) is None, visible_reps(Principal("t", "viewer", "k"))
    (True, frozenset())
    """
    if who.reads_everything:
        return None
    if who.role == "rep" and who.rep_id:
        return frozenset({who.rep_id})
    if who.role == "manager":
        return frozenset(under_manager)
    return frozenset()


def may_see_rep(who: Principal, rep_id: str, under_manager: Collection[str] = ()) -> bool:
    """Whether `who` may read rep `rep_id`'s own figures, check-ins and plans (`visible_reps`).

    >>> may_see_rep(Principal("t", "rep", "k1", rep_id="ana"), "ana"), may_see_rep(Principal("t", "rep", "k1",
    ...     rep_id="ana"), "bo")
    (True, False)
    >>> may_see_rep(Principal("t", "manager", "k2", manager_id="mia"), "bo", {"bo", "cy"})
    True
    >>> may_see_rep(Principal("t", "viewer", "k3"), "bo")
    False
    """
    visible = visible_reps(who, under_manager)
    return visible is None or rep_id in visible


def may_act_on_check_in(who: Principal, rep_id: str, under_manager: Collection[str] = ()) -> bool:
    """Whether `who` may acknowledge or complete a check-in about rep `rep_id` (integration may not: it reads).

    >>> may_act_on_check_in(Principal("t", "integration", "k"), "bo"), may_act_on_check_in(Principal("t",
    ...     "admin", "k"), "bo")
    (False, True)
    """
    if who.role == "admin":
        return True
    if who.role in ("rep", "manager"):
        return may_see_rep(who, rep_id, under_manager)
    return False


def hidden(what: str) -> HTTPException:
    """404 for an object the caller may not learn exists: the same answer as for one that does not."""
    return HTTPException(404, f"no {what}")


# --- route decisions -------------------------------------------------------------------------------------

Authenticate = Callable[[str], Awaitable[Principal | None]]
ACCESS_ATTRIBUTE = "__attain_access__"


def bearer(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or 401."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "missing bearer token: send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


def decision(dependency: Callable[..., Any]) -> tuple[str, ...] | str | None:
    """What a dependency says about access: the roles `allow` admits, the reason `public` gave, else None."""
    found: tuple[str, ...] | str | None = getattr(dependency, ACCESS_ATTRIBUTE, None)
    return found


def mark(function: Callable[..., Any], access: tuple[str, ...] | str) -> Callable[..., Any]:
    setattr(function, ACCESS_ATTRIBUTE, access)
    return function


def public(reason: str) -> Any:
    """A dependency that admits anyone, saying why (a CRM's signature, a sign-in page, a static file)."""

    async def anyone() -> None:
        return None

    return Depends(mark(anyone, f"public: {reason}"))


def admit_with(authenticate_dependency: Callable[..., Awaitable[Principal]],
               *roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting `roles` only: the principal of the request's token, or 401 (no valid token) or 403
    (a role not admitted). Use as `Annotated[Principal, Depends(admit_with(...))]`."""
    admitted = frozenset(roles)
    unknown = admitted - set(ROLES)
    if unknown or not admitted:
        raise ValueError(f"allow: roles must be some of {ROLES}, not {sorted(unknown)}")

    # the dependency as a default, not in a string annotation: FastAPI resolves annotations in the module's
    # globals, where this closure's `authenticate_dependency` is not
    async def check(who: Principal = Depends(authenticate_dependency)) -> Principal:  # noqa: B008
        if who.role not in admitted:
            raise HTTPException(403, f"a {who.role} token may not call this: it is for {', '.join(sorted(admitted))}")
        return who

    mark(check, tuple(r for r in ROLES if r in admitted))
    return check


def header_token(authorization: Annotated[str | None, Header()] = None) -> str:
    return bearer(authorization)
