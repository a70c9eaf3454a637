"""shared/schema_wait.py: the init container that holds a pod until its schema is current, as the working role."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from shared import db, schema_wait
from shared.db import missing_versions as missing
from shared.migrate import spec_of
from shared.schema_wait import Outcome, wait


class FakeClock:
    """Time that passes only when the wait sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def probes(*answers: list[str] | Exception) -> list[list[str] | Exception]:
    return list(answers)


def run_wait(answers: list[list[str] | Exception], *, timeout_s: float = 30.0, interval_s: float = 2.0,
             heard: list[Outcome] | None = None) -> tuple[Outcome, FakeClock]:
    clock = FakeClock()
    queue = list(answers)

    async def probe() -> list[str]:
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    report = heard.append if heard is not None else (lambda _: None)
    outcome = asyncio.run(wait(probe, timeout_s=timeout_s, interval_s=interval_s, clock=clock, sleep=clock.sleep,
                               report=report))
    return outcome, clock


def test_missing_keeps_the_order_migrations_are_applied_in() -> None:
    assert missing(["shared:001", "kpi:001", "kpi:002"], {"kpi:002", "shared:001"}) == ["kpi:001"]
    assert missing(["shared:001"], {"shared:001", "kpi:009"}) == []


def test_a_current_schema_ends_the_wait_at_once() -> None:
    outcome, clock = run_wait(probes([]))
    assert outcome == Outcome(True, 1)
    assert clock.slept == []


def test_the_wait_ends_when_the_job_has_applied_the_last_migration() -> None:
    heard: list[Outcome] = []
    outcome, clock = run_wait(probes(["kpi:002", "kpi:003"], ["kpi:003"], []), heard=heard)
    assert outcome.ready and outcome.attempts == 3
    assert [h.missing for h in heard] == [("kpi:002", "kpi:003"), ("kpi:003",)]
    assert clock.slept == [2.0, 2.0]


def test_a_role_that_does_not_exist_yet_is_not_yet_and_retried() -> None:
    """Before the Job has run the working role may be missing (it creates it): an error, then success."""
    heard: list[Outcome] = []
    refused = asyncpg.InvalidAuthorizationSpecificationError('role "attain_kpi" does not exist')
    outcome, _ = run_wait(probes(refused, ConnectionRefusedError("connection refused"), []), heard=heard)
    assert outcome.ready and outcome.attempts == 3
    assert heard[0].error is not None and "attain_kpi" in heard[0].error
    assert heard[1].error is not None and "ConnectionRefusedError" in heard[1].error


def test_the_wait_gives_up_at_the_timeout_naming_what_is_missing() -> None:
    outcome, clock = run_wait(probes(["kpi:003"]), timeout_s=10.0, interval_s=3.0)
    assert not outcome.ready
    assert outcome.missing == ("kpi:003",)
    assert clock.now <= 10.0 and outcome.attempts == 4  # at 0, 3, 6 and 9 s
    assert "kpi:003" in outcome.describe("kpi") and "shared.migrate" in outcome.describe("kpi")


def test_the_wait_gives_up_naming_the_last_error_when_the_database_never_answers() -> None:
    outcome, _ = run_wait(probes(OSError("no route to host")), timeout_s=5.0, interval_s=2.0)
    assert not outcome.ready and outcome.error == "OSError: no route to host"
    assert "no route to host" in outcome.describe("kpi")


def test_an_unexpected_error_is_not_swallowed() -> None:
    with pytest.raises(KeyError):
        run_wait(probes(KeyError("a bug")))


def test_the_versions_waited_for_are_those_the_migration_job_applies() -> None:
    spec = spec_of("kpi")
    shipped = db.shipped_versions(spec.schema, spec.migrations)
    assert shipped and any(v.startswith("shared:") for v in shipped) and any(v.startswith("kpi:") for v in shipped)


def test_without_the_working_roles_url_it_refuses_rather_than_use_the_owner(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("DATABASE_APP_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://owner:secret@127.0.0.1:1/attain")
    assert schema_wait.main(["kpi", "--timeout", "0"]) == 2
    assert "DATABASE_APP_URL is not set" in capsys.readouterr().err


def test_an_unknown_service_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_:
        schema_wait.main(["billing"])
    assert exit_.value.code == 2


def test_the_command_line_waits_and_exits_1_when_the_database_never_answers(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_APP_URL", "postgresql://attain_kpi:x@127.0.0.1:1/attain")  # port 1: refused
    assert schema_wait.main(["kpi", "--timeout", "0", "--interval", "0.01"]) == 1
    assert "did not answer" in capsys.readouterr().err
