"""Roles and object-level rules (shared/authz.py): who may see and act on what, and the route decisions."""

from __future__ import annotations

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException

from shared.authz import (
    ACCESS_ATTRIBUTE,
    Principal,
    admit_with,
    bearer,
    decision,
    may_act_on_check_in,
    may_see_rep,
    public,
)
from shared.events import ROLES

ANA_REP = Principal("t", "rep", "k-rep", rep_id="ana")
MIA_MANAGER = Principal("t", "manager", "k-mgr", manager_id="mia")
UNDER_MIA = {"ana", "bo"}


@pytest.mark.parametrize(("who", "rep", "expected"), [
    (Principal("t", "admin", "k"), "zed", True),
    (Principal("t", "integration", "k"), "zed", True),
    (ANA_REP, "ana", True),
    (ANA_REP, "bo", False),
    (MIA_MANAGER, "bo", True),
    (MIA_MANAGER, "zed", False),
    (MIA_MANAGER, "mia", False),  # a manager token reads the reps under the manager, not the manager's own
    (Principal("t", "viewer", "k"), "ana", False),
])
def test_who_may_see_a_rep(who: Principal, rep: str, expected: bool) -> None:
    assert may_see_rep(who, rep, UNDER_MIA if who.role == "manager" else ()) is expected


@pytest.mark.parametrize(("who", "rep", "expected"), [
    (Principal("t", "admin", "k"), "zed", True),
    (Principal("t", "integration", "k"), "ana", False),  # it reads everything and acts on nothing
    (ANA_REP, "ana", True),
    (ANA_REP, "bo", False),
    (MIA_MANAGER, "bo", True),
    (MIA_MANAGER, "zed", False),
    (Principal("t", "viewer", "k"), "ana", False),
])
def test_who_may_act_on_a_check_in(who: Principal, rep: str, expected: bool) -> None:
    assert may_act_on_check_in(who, rep, UNDER_MIA if who.role == "manager" else ()) is expected


def test_a_bearer_header_gives_its_token_and_anything_else_is_401() -> None:
    assert bearer("Bearer abc ") == "abc"
    assert bearer("bearer abc") == "abc"
    for bad in (None, "", "Basic abc", "Bearer ", "abc"):
        with pytest.raises(HTTPException) as refused:
            bearer(bad)
        assert refused.value.status_code == 401


def _app(role: str) -> FastAPI:
    async def authenticate() -> Principal:
        return Principal("t", role, "k")  # type: ignore[arg-type]

    app = FastAPI()
    admins = admit_with(authenticate, "admin")
    people = admit_with(authenticate, "admin", "rep")

    @app.get("/settings")
    async def settings(who: Principal = Depends(admins)) -> dict[str, str]:  # noqa: B008
        return {"tenant": who.tenant}

    @app.get("/people")
    async def people_route(who: Principal = Depends(people)) -> dict[str, str]:  # noqa: B008
        return {"role": who.role}

    @app.get("/open", dependencies=[public("a test")])
    async def open_route() -> dict[str, str]:
        return {}

    return app


@pytest.mark.parametrize("role", ROLES)
async def test_a_route_admits_its_roles_and_answers_403_naming_the_role_to_the_others(role: str) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(role)), base_url="http://t") as client:
        settings, people = await client.get("/settings"), await client.get("/people")
    assert settings.status_code == (200 if role == "admin" else 403)
    assert people.status_code == (200 if role in ("admin", "rep") else 403)
    if role != "admin":
        assert f"a {role} token may not" in settings.json()["detail"]


def test_decisions_are_readable_from_the_dependencies_and_only_known_roles_are_admitted() -> None:
    async def authenticate() -> Principal:
        return Principal("t", "admin", "k")

    check = admit_with(authenticate, "rep", "admin")
    assert decision(check) == ("admin", "rep")  # in the contract's order
    assert str(decision(public("why").dependency)).startswith("public: why")  # type: ignore[arg-type]
    assert getattr(authenticate, ACCESS_ATTRIBUTE, None) is None
    with pytest.raises(ValueError, match="roles must be some of"):
        admit_with(authenticate, "owner")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="roles must be some of"):
        admit_with(authenticate)
