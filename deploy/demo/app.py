"""One demo run, start to finish: stack, tenant, services, stream, live view, summary, teardown.

The services run on a clock that plays the quarter in `--duration` seconds and stops where the story ends
(`Scenario.ends_at`): afterwards the dashboard, the TV and the APIs show the quarter just played, as of that
moment, however long `--keep-running` leaves them up. Every derived message of the run's tenant goes to an
event log (`.local/demo/<tenant>-events.log`), the terminal shows one live screen (`display`), and the
summary ends with the dashboard's address, a sign-in token and a TV link.

Exit status: 0 when the run completed, nothing died, and Attain produced at least one check-in
and one celebration; 1 otherwise; 130 when interrupted (Ctrl-C or SIGTERM). Whatever happens,
the services the demo started are stopped, and the local stack too if the demo started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

import httpx
from rich.console import Console

from deploy.demo.display import Board, LiveView, PlainView, View
from deploy.demo.feed import FeedError, FeedState, KafkaFeed
from deploy.demo.org import TENANT_TIMEZONE, Quarter
from deploy.demo.runner import (
    HOST,
    KAFKA_BOOTSTRAP,
    LOG_DIR,
    PORT_BASE,
    DemoError,
    Services,
    SetupError,
    Stack,
    child_env,
    create_tenant,
    service_ports,
    share_link,
    start_groups_at_end,
    tail,
)
from deploy.demo.simulator import CURRENCY, build_scenario
from deploy.demo.stream import EventStream, SimClock, clock_spec
from deploy.demo.summary import Links, RunResult, differences, summary_text

__all__ = ["Options", "run_demo"]

READY_TIMEOUT_S = 60.0
NEWS_S = 20.0  # real seconds within which recognition still celebrates a win (the tenant's history horizon)
HORIZON_MAX_H = 24 * 3650  # recognition's upper bound on that horizon
QUIET_S, MAX_SETTLE_S = 5.0, 20.0  # after the last event: wait for this much silence, at most that long
TICK_S = 0.25


@dataclass(frozen=True, slots=True)
class Options:
    seed: int = 1
    duration: float = 100.0
    reps: int = 24
    teams: int = 4
    keep_running: bool = False
    quarter: str | None = None  # the quarter to play, e.g. 2026-Q4 (default: the one running now in Berlin)
    port_base: int = PORT_BASE  # ingest on it, kpi (the dashboard) on +1, coaching +2, recognition +3, notify +4


class Demo:
    def __init__(self, options: Options, console: Console) -> None:
        self.options, self.console = options, console
        self.result = RunResult(seed=options.seed, keep_running=options.keep_running)
        self.stack, self.services = Stack(), Services(specs=service_ports(options.port_base))
        self.ingest_url = f"http://{HOST}:{options.port_base}"
        self.feed: KafkaFeed | None = None
        self.log: TextIO | None = None
        self.client: httpx.AsyncClient | None = None
        self.board: Board | None = None
        self.token = ""
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)

    async def run(self) -> int:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        if task is not None:
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        summary_printed = False
        try:
            await self.setup()
            await self.play()
            if self.options.keep_running and not self.services.dead():
                self.finish()
                summary_printed = True
                with contextlib.suppress(asyncio.CancelledError):  # Ctrl-C ends the look-around, not the run
                    await self.linger()
                if task is not None and task.cancelling():
                    task.uncancel()
        except DemoError as err:
            self.result.problems.append(str(err))
        except asyncio.CancelledError:
            self.result.interrupted = True
            if task is not None:
                task.uncancel()
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            try:  # a second Ctrl-C may cut this short, never the teardown
                if self.feed is not None:
                    await self.feed.stop()
                if self.client is not None:
                    await self.client.aclose()
                self._close_log()
                if not summary_printed:
                    self.finish()
            finally:
                self.teardown()
        if self.result.interrupted:
            return 130
        return 0 if self.result.ok else 1

    async def setup(self) -> None:
        o = self.options
        quarter = Quarter.of(o.quarter) if o.quarter else Quarter.containing(datetime.now(UTC))
        self.say(f"[bold]Attain demo[/]: {quarter.label} in {o.duration:.0f}s · {o.reps} reps in {o.teams} teams"
                 f" · seed {o.seed}")
        self.services.check_ports_free()
        self.say("starting the local stack (Kafka + PostgreSQL; the first run fetches Kafka) …")
        await self.stack.up()
        scenario = build_scenario(o.seed, quarter, reps=o.reps, teams=o.teams)
        self.result.scenario = scenario
        tenant = await create_tenant(f"demo-{secrets.token_hex(4)}", TENANT_TIMEZONE, CURRENCY,
                                     quarter.company_days())
        self.token, self.result.tenant = tenant.token, tenant.slug
        dashboard = f"http://{HOST}:{o.port_base + 1}"
        self.result.links = Links(dashboard, tenant.token, await share_link(tenant.slug))
        rate = quarter.seconds / o.duration
        clock = clock_spec(quarter.start, rate, scenario.ends_at)
        self.services.check_ports_free()
        prefix = f"attain-{tenant.slug}"  # this run's own consumer groups, starting at the topics' ends
        await start_groups_at_end(prefix)
        ports = dict(service_ports(o.port_base))
        self.services.start(child_env({
            "KAFKA_CONSUMER_GROUP_PREFIX": prefix,
            "LOG_LEVEL": "WARNING",
            "ATTAIN_CLOCK": clock,
            "COACHING_EVALUATION_INTERVAL_S": "1",
            "COACHING_COOLDOWN_DAYS": "7",
            "COACHING_GRACE_S": str(14 * 86400),
            "DASHBOARD_COACHING_URL": f"http://{HOST}:{ports['coaching']}",
            "DASHBOARD_RECOGNITION_URL": f"http://{HOST}:{ports['recognition']}",
            "DASHBOARD_INGEST_URL": f"http://{HOST}:{ports['ingest']}",
            "DASHBOARD_NOTIFY_URL": f"http://{HOST}:{ports['notify']}",
            # notify's links point at the demo's dashboard; no SMTP_URL (the demo has no mail server): unless the
            # shell sets one, e-mail deliveries stay pending, and the control room shows them
            "DASHBOARD_BASE_URL": f"http://{HOST}:{ports['kpi']}",
        }))  # fmt: skip
        self.say(f"stack {'started' if self.stack.started else 'already running'}; tenant {tenant.slug}; "
                 f"services starting (logs in {self.services.all[0].log.parent}) …")
        anchor = await self.services.wait_ready(READY_TIMEOUT_S)
        await self.news_horizon(f"http://{HOST}:{ports['recognition']}", tenant.token, rate)
        self.say(f"services ready after {time.monotonic() - self.started:.1f}s; ATTAIN_CLOCK={clock}")
        feed_state = FeedState(tenant.slug, quarter.label)
        self.result.feed = feed_state
        self.result.log = LOG_DIR / f"{tenant.slug}-events.log"
        self.result.log.parent.mkdir(parents=True, exist_ok=True)
        self.log = self.result.log.open("w", encoding="utf-8")
        self.feed = KafkaFeed(KAFKA_BOOTSTRAP, feed_state, log=self.log)
        try:
            await self.feed.start()
        except (FeedError, OSError) as err:
            raise DemoError(f"cannot read the derived topics: {err}") from err
        except Exception as err:  # aiokafka's own errors have no common base worth naming
            raise DemoError(f"cannot read the derived topics: {type(err).__name__}: {err}") from err
        sim = SimClock(quarter.start, rate, anchor, scenario.ends_at)
        self.client = httpx.AsyncClient(base_url=self.ingest_url, timeout=30.0)
        stream = EventStream(self.client, tenant.token, scenario.schedule, sim, quarter, self.result.book)
        self.board = Board(tenant.slug, scenario, o.duration, sim, stream, feed_state, self.result.book)
        self.result.stats = self.board.stream.stats

    async def news_horizon(self, recognition: str, token: str, rate: float) -> None:
        """Recognition celebrates what it finds within the tenant's history horizon (48 h by default) and records
        older milestones quietly. At the demo's speed a second of processing is most of a simulated day, so the
        demo tenant's horizon is `NEWS_S` real seconds of its clock: a win is news while the run is live."""
        hours = min(max(48, math.ceil(NEWS_S * rate / 3600)), HORIZON_MAX_H)
        deadline = time.monotonic() + READY_TIMEOUT_S
        async with httpx.AsyncClient(base_url=recognition, timeout=5.0,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            while (answer := await client.put("/v1/recognition/settings", json={"history_horizon_hours": hours})
                   ).status_code != 200:  # 401 until recognition has read the tenant's registry entry
                if time.monotonic() > deadline:
                    raise SetupError(f"recognition refused the demo's settings: {answer.status_code} {answer.text}")
                await asyncio.sleep(0.2)

    async def play(self) -> None:
        """Stream the quarter while the view shows what comes back; then let the last results arrive."""
        assert self.board is not None and self.feed is not None
        board = self.board
        view: View = LiveView(board, self.console) if self.console.is_terminal else PlainView(board, self.console)
        stream_task = asyncio.create_task(board.stream.run(), name="stream")
        feed_task = asyncio.create_task(self.feed.run(), name="feed")
        view.start()
        try:
            while not stream_task.done():
                if self.troubled(feed_task):
                    return
                view.refresh()
                await asyncio.sleep(TICK_S)
            if (err := stream_task.exception()) is not None:
                self.result.problems.append(f"streaming events failed: {type(err).__name__}: {err}")
                return
            finished = time.monotonic()
            while (now := time.monotonic()) - finished < MAX_SETTLE_S and board.feed.quiet_for(now, finished) < QUIET_S:
                if self.troubled(feed_task):
                    return
                view.refresh()
                await asyncio.sleep(TICK_S)
            self.judge()
        finally:
            for task in (stream_task, feed_task):
                task.cancel()
            await asyncio.gather(stream_task, feed_task, return_exceptions=True)
            view.stop()

    def troubled(self, feed_task: asyncio.Task[None]) -> bool:
        """Record a dead service or a failed feed; True when the run cannot go on."""
        for service in self.services.dead():
            self.result.problems.append(f"{service.name} died (exit code {service.exit_code}); "
                                        f"last lines of {service.log}:\n{tail(service.log, 15)}")
        if feed_task.done() and not feed_task.cancelled() and (err := feed_task.exception()) is not None:
            self.result.problems.append(f"reading the derived topics failed: {type(err).__name__}: {err}")
        return bool(self.result.problems)

    def judge(self) -> None:
        """A demo that shows neither check-ins nor celebrations is broken, and so is one whose figures are not
        exactly what was sent."""
        feed = self.result.feed
        assert feed is not None
        if not feed.checkins:
            self.result.problems.append("no check-in reached coaching.tasks.v1")
        if not feed.celebrations:
            self.result.problems.append("no celebration reached recognition.celebrations.v1")
        if differ := differences(self.result):
            self.result.problems.append(f"kpi's won revenue is not what was sent for {len(differ)} reps and teams")

    async def linger(self) -> None:
        """--keep-running: leave everything up for a look around, until Ctrl-C (the summary said so)."""
        while not self.services.dead():  # noqa: ASYNC110 -- polling child processes, nothing to wait on
            await asyncio.sleep(1)
        self.result.problems += [f"{s.name} died (exit code {s.exit_code}) after the run" for s in self.services.dead()]
        self.say("a service died; stopping")

    def finish(self) -> None:
        self.result.elapsed_s = time.monotonic() - self.started
        self._close_log()
        self.console.print(summary_text(self.result), markup=False, highlight=False, soft_wrap=True)

    def _close_log(self) -> None:
        """Flush the event log (it stays open while the feed runs) and count its lines."""
        if self.log is not None:
            self.log.flush()
        if self.result.log is not None and self.result.log.exists():
            with self.result.log.open("rb") as written:
                self.result.log_lines = sum(1 for _ in written)

    def teardown(self) -> None:
        """Stop what the demo started: the services always, the stack if it was not running before."""
        if self.log is not None:
            self.log.close()
            self.log = None
        outcome = self.services.stop()
        if outcome:
            self.say("services: " + ", ".join(f"{name} {how}" for name, how in outcome.items()))
        if self.stack.started:
            self.say("stopping the local stack (the demo started it) …")
        if (stack := self.stack.down()) is not None:
            self.say(f"  {stack}")


async def run_demo(options: Options, console: Console | None = None) -> int:
    """Run the demo; returns the process exit status."""
    return await Demo(options, console or Console()).run()
