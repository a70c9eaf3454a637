"""The routes a service's FastAPI app serves, read from the app itself, so that checks of "every route" cover
routes added later."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from services.coaching.app import SPEC as COACHING
from services.ingest.app import SPEC as INGEST
from services.kpi.app import SPEC as KPI
from services.notify.app import SPEC as NOTIFY
from services.recognition.app import SPEC as RECOGNITION
from shared.authz import decision
from shared.service import ServiceSpec, create_app
from shared.settings import ServiceSettings

SPECS: dict[str, ServiceSpec] = {"ingest": INGEST, "kpi": KPI, "coaching": COACHING, "recognition": RECOGNITION,
                                 "notify": NOTIFY}
# Small on purpose, so the oversized bodies these tests send stay small; production's default is 16 MiB.


@functools.cache
def app_of(service: str) -> FastAPI:
    """The service's app as it is built to run (nothing started: routes only)."""
    return create_app(SPECS[service], ServiceSettings())


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # as the app serves it, with its parameters in braces
    dependant: Dependant  # the endpoint's parameters and dependencies

    def parameters(self, where: str) -> list[str]:
        """The names of the route's `where` ("query" or "path") parameters, its dependencies' included."""
        return _parameters(self.dependant, where)


def _parameters(dependant: Dependant, where: str) -> list[str]:
    own = dependant.query_params if where == "query" else dependant.path_params
    return [p.alias for p in own] + [name for sub in dependant.dependencies for name in _parameters(sub, where)]


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any] | None]:
    yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def routes(app: FastAPI) -> list[Route]:
    """Every (method, path) the app serves through FastAPI, its included routers' included."""
    return [Route(method, context.path or "", context.dependant) for context in iter_route_contexts(app.routes)
            if isinstance(context.original_route, APIRoute) for method in sorted(context.methods or ())]


def access(route: Route) -> tuple[str, ...] | str | None:
    """The route's access decision (shared/authz.py): the roles it admits, "public: <why>", or None (none
    made: a route every role matrix must refuse)."""
    found = [d for d in map(decision, filter(None, _calls(route.dependant))) if d is not None]
    return found[0] if len(found) == 1 else None


def tenant_scoped(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route whose answer depends on which tenant is calling: it admits roles."""
    return {(r.method, r.path) for r in routes(app) if isinstance(access(r), tuple)}
