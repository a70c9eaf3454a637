"""docker-compose.yml, deploy/Dockerfile and deploy/compose/ checked against the code they run.

No Docker engine runs where the tests run, so the stack is never built or started here: these tests
parse the files and compare them with the contract's services, their settings, shared/topics.py and
the Kafka version deploy/local pins. Pure and fast: no network, no containers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet
from pydantic import ValidationError

import deploy.local.stack as stack
import deploy.local.topics as topics_module
from deploy.local.kafka_setup import pinned_kafka_version
from services.coaching.settings import CoachingSettings
from services.ingest.settings import IngestSettings
from services.kpi.settings import KpiSettings
from services.notify.settings import NotifySettings
from services.recognition.settings import RecognitionSettings
from shared.registry_signing import encode_private_key, encode_public_key, generate_private_key
from shared.settings import ServiceSettings
from shared.topics import all_with_dlq

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS_FILE = ROOT / "deploy" / "compose" / "prometheus.yml"

# The contract's services (CONTRACT.md section 1) and the settings each one reads.
SETTINGS: dict[str, type[ServiceSettings]] = {
    "ingest": IngestSettings,
    "kpi": KpiSettings,
    "coaching": CoachingSettings,
    "recognition": RecognitionSettings,
    "notify": NotifySettings,
}

# What the operator's shell provides (the file reads it from there and holds no value of its own): compose
# interpolates `${NAME:-default}` with these.
_PRIVATE = generate_private_key()
SHELL = {"CRM_SECRET_KEYS": Fernet.generate_key().decode(), "NOTIFY_SECRET_KEYS": Fernet.generate_key().decode(),
         "SMTP_URL": "smtp://user:pass@mail.example.com:587", "REGISTRY_SIGNING_KEY": encode_private_key(_PRIVATE),
         "REGISTRY_VERIFY_KEYS": encode_public_key(_PRIVATE.public_key())}

# Mounted by compose but filled by another change: Grafana's dashboards (deploy/grafana/*.json).
# Until that folder exists, compose creates it empty and Grafana simply shows no dashboards.


# --- reading the files ----------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def service(name: str) -> dict[str, Any]:
    services = compose()["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    return dict(services[name])


def environment(svc: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whichever of compose's two spellings it uses."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): str(value) for key, value in env.items()}


def interpolated(value: str, shell: dict[str, str]) -> str:
    """`value` as compose interpolates it from `shell`: `${NAME}`, `${NAME:-default}` (`$$` is a literal `$`)."""
    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(3) or ""
        return shell.get(name) or default
    return re.sub(r"\$\{(\w+)(:-([^}]*))?\}", one, value).replace("$$", "$")


def published(svc: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port, from short-syntax port mappings ("[ip:]host:container")."""
    out: dict[int, int] = {}
    for spec in svc.get("ports", []):
        parts = str(spec).split("/")[0].split(":")
        out[int(parts[-1])] = int(parts[-2]) if len(parts) > 1 else int(parts[-1])
    return out


def command(svc: dict[str, Any]) -> list[str]:
    cmd = svc.get("command")
    assert isinstance(cmd, list), "commands are written in exec form (a list), so no shell sits in between"
    return [str(part) for part in cmd]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of deploy/Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        out.append((keyword.upper(), rest.strip()))
        pending = ""
    return out


def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's build stages, each starting with its FROM."""
    out: list[list[tuple[str, str]]] = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "FROM":
            out.append([])
        if out:
            out[-1].append((keyword, rest))
    return out


def copy_sources() -> list[str]:
    """What the Dockerfile copies from the build context (not from another stage)."""
    sources: list[str] = []
    for keyword, rest in dockerfile_instructions():
        if keyword not in {"COPY", "ADD"}:
            continue
        tokens = rest.split()
        if any(token.startswith("--from") for token in tokens):
            continue
        paths = [token for token in tokens if not token.startswith("--")]
        sources.extend(path.rstrip("/") for path in paths[:-1])
    return sources


def dockerignored(path: str) -> bool:
    """Whether .dockerignore leaves `path` (relative to the root) out of the build context.

    Docker's rules, enough of them for this file: the last pattern matching the path or one of its
    parent directories decides; `!` lets back in; `*` stays inside one path segment, `**` crosses them.
    """
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line[1:].strip().strip("/") if negated else line.strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append((negated, re.compile(regex + r"\Z")))
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negated, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def bind_sources(svc: dict[str, Any]) -> list[str]:
    """The host paths a service bind-mounts (short syntax "src:dst[:mode]" or long syntax)."""
    out: list[str] = []
    for volume in svc.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                out.append(str(volume["source"]))
        else:
            source = str(volume).split(":")[0]
            if source.startswith((".", "/")):
                out.append(source)
    return out


def mount_target(svc: dict[str, Any], source: str) -> str:
    for volume in svc.get("volumes", []):
        parts = str(volume).split(":")
        if Path(parts[0]) == Path(source):
            return parts[1]
    raise AssertionError(f"nothing mounts {source}")


def module_path(module: str) -> str:
    return module.replace(".", "/")


# --- the four services ----------------------------------------------------------------------------


def built_image() -> tuple[str, str]:
    """(service, image tag) of the one service that builds our image."""
    builders = [(name, svc) for name, svc in compose()["services"].items() if "build" in svc]
    assert len(builders) == 1, f"the image is built by one service, not {[name for name, _ in builders]}"
    name, svc = builders[0]
    return name, str(svc["image"])


@pytest.mark.parametrize("name", SETTINGS)
def test_each_service_of_the_contract_runs_its_module_from_the_one_image(name: str) -> None:
    svc = service(name)
    assert command(svc) == ["python", "-m", f"services.{name}"]
    assert "build" not in svc, "built once, by one service: five builds of one tag would race"
    assert svc["image"] == built_image()[1]


def test_the_image_is_built_once_by_a_service_every_other_user_of_the_tag_waits_for() -> None:
    builder, tag = built_image()
    assert builder == "topics"
    assert service(builder)["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
    assert service(builder)["pull_policy"] == "build", "built from the checkout, never pulled by its tag"
    users = [name for name, svc in compose()["services"].items() if svc.get("image") == tag and name != builder]
    assert sorted(users) == sorted(SETTINGS)
    for name in users:
        svc = service(name)
        assert svc["pull_policy"] == "never", f"{name} would look for {tag} on a registry"
        assert builder in svc["depends_on"], f"{name} could be created before {tag} is built"


@pytest.mark.parametrize("name", SETTINGS)
def test_each_service_publishes_its_settings_default_http_port(name: str) -> None:
    port = SETTINGS[name].model_fields["http_port"].default
    assert published(service(name)) == {port: port}
    assert environment(service(name)).get("HTTP_PORT", str(port)) == str(port)


@pytest.mark.parametrize("name", SETTINGS)
def test_every_environment_name_is_a_field_of_the_services_settings(name: str) -> None:
    env = environment(service(name))
    fields = {field.upper() for field in SETTINGS[name].model_fields}
    assert set(env) <= fields, f"not read by {name}: {sorted(set(env) - fields)}"
    assert {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"} <= set(env)
    # And the values parse: a typo in a Literal (LOG_FORMAT, say) fails here, not in a container.
    SETTINGS[name](**{key.lower(): interpolated(value, SHELL) for key, value in env.items()})


def test_only_ingest_gets_crm_secret_keys_and_from_the_shell_not_the_file() -> None:
    """The keys the CRM secrets are encrypted with are interpolated from the operator's shell (none is written in
    the file), only into ingest; without them ingest stops at start, naming the variable."""
    assert environment(service("ingest"))["CRM_SECRET_KEYS"] == "${CRM_SECRET_KEYS:-}"
    assert [name for name in SETTINGS if "CRM_SECRET_KEYS" in environment(service(name))] == ["ingest"]
    env = {key.lower(): interpolated(value, {}) for key, value in environment(service("ingest")).items()}
    with pytest.raises(ValidationError, match="CRM_SECRET_KEYS is not set"):
        IngestSettings(**env)


def test_only_notify_gets_its_secret_keys_and_the_smtp_url_and_from_the_shell_not_the_file() -> None:
    """notify's keys (webhook URLs, Slack tokens) and SMTP_URL (it carries the mail server's password) are
    interpolated from the operator's shell, only into notify; unset, notify still starts (e-mail waits, no secret
    is stored), and its links point at kpi as the host publishes it."""
    env = environment(service("notify"))
    assert env["NOTIFY_SECRET_KEYS"] == "${NOTIFY_SECRET_KEYS:-}"
    assert env["SMTP_URL"] == "${SMTP_URL:-}"
    for name in ("NOTIFY_SECRET_KEYS", "SMTP_URL"):
        assert [s for s in SETTINGS if name in environment(service(s))] == ["notify"], name
    unset = NotifySettings(**{key.lower(): interpolated(value, {}) for key, value in env.items()})
    assert unset.box() is None and not unset.smtp_url
    assert unset.dashboard_base_url == f"http://localhost:{published(service('kpi'))[8002]}"
    assert NotifySettings(**{key.lower(): interpolated(value, SHELL) for key, value in env.items()}).box() is not None


def test_kpi_reaches_every_service_it_calls_by_its_compose_name() -> None:
    env = environment(service("kpi"))
    for name in ("coaching", "recognition", "ingest", "notify"):
        port = SETTINGS[name].model_fields["http_port"].default
        assert env[f"DASHBOARD_{name.upper()}_URL"] == f"http://{name}:{port}", name


def test_only_ingest_gets_the_registry_signing_key_and_every_service_the_verify_keys_from_the_shell() -> None:
    assert environment(service("ingest"))["REGISTRY_SIGNING_KEY"] == "${REGISTRY_SIGNING_KEY:-}"
    assert [name for name in SETTINGS if "REGISTRY_SIGNING_KEY" in environment(service(name))] == ["ingest"]
    for name in SETTINGS:
        assert environment(service(name))["REGISTRY_VERIFY_KEYS"] == "${REGISTRY_VERIFY_KEYS:-}"


@pytest.mark.parametrize("name", SETTINGS)
def test_each_service_reaches_kafka_and_postgres_by_their_compose_names(name: str) -> None:
    env = environment(service(name))
    services = compose()["services"]
    for server in env["KAFKA_BOOTSTRAP_SERVERS"].split(","):
        host, _, port = server.partition(":")
        assert host in services
        assert f"PLAINTEXT://{host}:{port}" in environment(services[host])["KAFKA_ADVERTISED_LISTENERS"]
    database = re.fullmatch(r"postgresql://(\w+):(\w+)@([\w-]+):(\d+)/(\w+)", env["DATABASE_URL"])
    assert database is not None
    user, password, host, port, name_of_db = database.groups()
    postgres = environment(services[host])
    assert (user, password, port) == ("postgres", postgres["POSTGRES_PASSWORD"], "5432")
    assert name_of_db == postgres["POSTGRES_DB"]


@pytest.mark.parametrize("name", SETTINGS)
def test_each_healthcheck_asks_readyz_on_the_services_port(name: str) -> None:
    port = SETTINGS[name].model_fields["http_port"].default
    test = service(name)["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert f"http://127.0.0.1:{port}/readyz" in " ".join(test)


@pytest.mark.parametrize("name", SETTINGS)
def test_each_service_starts_after_the_topics_exist_and_the_broker_and_database_are_healthy(name: str) -> None:
    assert service(name)["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
        "topics": {"condition": "service_completed_successfully"},
    }
    assert "healthcheck" in service("kafka")
    assert "healthcheck" in service("postgres")


# --- Kafka and its topics -------------------------------------------------------------------------


def test_kafka_is_the_official_image_at_the_version_deploy_local_pins_in_kraft_mode() -> None:
    kafka = service("kafka")
    assert kafka["image"] == f"apache/kafka:{pinned_kafka_version()}"
    env = environment(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert not any("ZOOKEEPER" in key for key in env)
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # topics only as shared/topics.py declares them


def test_the_topics_job_runs_deploy_local_stack_topics_once_against_the_compose_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = service("topics")
    cmd = command(job)
    assert cmd[:4] == ["python", "-m", "deploy.local.stack", "topics"]
    assert job["image"] == service("ingest")["image"]
    assert job["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert job.get("restart", "no") == "no"
    assert environment(job)["KAFKA_BOOTSTRAP_SERVERS"] == environment(service("ingest"))["KAFKA_BOOTSTRAP_SERVERS"]
    # Its arguments are ones the module's command line accepts, and they select `topics`.
    called: list[float] = []

    def topics(*, bootstrap: str | None = None, wait_s: float = 0.0) -> int:
        called.append(wait_s)
        return 0

    monkeypatch.setattr(stack, "topics", topics)
    assert stack.main(cmd[3:]) == 0
    assert len(called) == 1


class FakeAdmin:
    """Stands in for aiokafka's admin client: remembers the topics created on an empty broker."""

    created: list[Any]

    def __init__(self, **_: Any) -> None:
        self.topics: dict[str, int] = {}
        FakeAdmin.created = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def describe_topics(self, names: list[str] | None = None) -> list[dict[str, Any]]:
        wanted = self.topics if names is None else names
        return [
            {"topic": name, "error_code": 0, "partitions": [{"leader": 1}] * self.topics[name]}
            for name in wanted
            if name in self.topics
        ]

    async def create_topics(self, new_topics: list[Any], timeout_ms: int) -> Any:
        FakeAdmin.created.extend(new_topics)
        self.topics.update({topic.name: topic.num_partitions for topic in new_topics})
        return type("Response", (), {"topic_errors": [(topic.name, 0, None) for topic in new_topics]})()

    async def create_partitions(self, partitions: dict[str, Any], timeout_ms: int) -> None:
        raise AssertionError("an empty broker has no topic to grow")


async def test_the_topics_job_creates_every_topic_and_dlq_with_its_partitions_and_cleanup_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(topics_module, "AIOKafkaAdminClient", FakeAdmin)
    count = await topics_module.ensure_topics("kafka:9092", within_s=1.0)
    made = {
        (topic.name, topic.num_partitions, topic.replication_factor, topic.topic_configs.get("cleanup.policy"))
        for topic in FakeAdmin.created
    }
    expected = {(topic.name, topic.partitions, 1, topic.cleanup) for topic in all_with_dlq()}
    assert made == expected
    assert count == len(expected) == len(FakeAdmin.created)
    assert any(name.endswith(".dlq") for name, *_ in made)


# --- Prometheus and Grafana -----------------------------------------------------------------------


def test_prometheus_scrapes_every_services_metrics_on_its_port() -> None:
    prometheus = service("prometheus")
    assert "/etc/prometheus/prometheus.yml" in {mount_target(prometheus, src) for src in bind_sources(prometheus)}
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    scraped = {
        (target, job.get("metrics_path", "/metrics"))
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    for name, settings in SETTINGS.items():
        assert (f"{name}:{settings.model_fields['http_port'].default}", "/metrics") in scraped


def test_grafana_is_provisioned_with_the_prometheus_datasource_and_the_dashboards_folder() -> None:
    grafana = service("grafana")
    mounts = {mount_target(grafana, src): src for src in bind_sources(grafana)}
    datasources_dir = ROOT / mounts["/etc/grafana/provisioning/datasources"]
    dashboards_dir = ROOT / mounts["/etc/grafana/provisioning/dashboards"]
    datasources = [
        source
        for path in sorted(datasources_dir.glob("*.y*ml"))
        for source in yaml.safe_load(path.read_text())["datasources"]
    ]
    prometheus = [source for source in datasources if source["type"] == "prometheus"]
    assert len(prometheus) == 1
    assert "prometheus" in compose()["services"]
    assert prometheus[0]["url"] == "http://prometheus:9090"  # the service's name and Prometheus' own port
    providers = [
        provider
        for path in sorted(dashboards_dir.glob("*.y*ml"))
        for provider in yaml.safe_load(path.read_text())["providers"]
    ]
    dashboards_target = next(target for target, source in mounts.items() if Path(source) == Path("./deploy/grafana"))
    assert [provider["options"]["path"] for provider in providers] == [dashboards_target]


def test_every_path_compose_mounts_exists_in_the_repository() -> None:
    for name, svc in compose()["services"].items():
        for source in bind_sources(svc):
            relative = Path(source).as_posix().removeprefix("./")
            assert not Path(source).is_absolute(), f"{name} mounts an absolute host path: {source}"
            assert (ROOT / relative).exists(), f"{name} mounts {source}, which is not in the repository"


# --- the image ------------------------------------------------------------------------------------


def test_the_final_stage_runs_as_a_fixed_non_root_uid() -> None:
    final = stages()[-1]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users, "no USER after the last FROM: the services would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "a numeric UID, so Kubernetes' runAsNonRoot can verify it"
    assert int(uid) != 0


def test_the_final_stage_holds_only_the_venv_and_runs_ingest_by_default() -> None:
    final = stages()[-1]
    copies = [rest for keyword, rest in final if keyword in {"COPY", "ADD"}]
    assert copies == ["--from=builder /opt/venv /opt/venv"]
    assert ("CMD", '["python", "-m", "services.ingest"]') in final
    exposed = {int(port) for keyword, rest in final if keyword == "EXPOSE" for port in rest.split()}
    assert exposed == {settings.model_fields["http_port"].default for settings in SETTINGS.values()}
    env = " ".join(rest for keyword, rest in final if keyword == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env


def test_the_image_contains_every_module_compose_runs() -> None:
    sources = copy_sources()
    _, tag = built_image()
    for name, svc in compose()["services"].items():
        if svc.get("image") != tag:
            continue
        cmd = command(svc)
        assert cmd[:2] == ["python", "-m"], name
        module = module_path(cmd[2])
        assert any(module == src or module.startswith(src + "/") for src in sources), f"{name}: {cmd[2]} not copied"
        assert (ROOT / module).with_suffix(".py").exists() or (ROOT / module / "__main__.py").exists()


def test_dockerignore_lets_the_sources_in_and_keeps_the_checkout_out() -> None:
    for source in copy_sources():
        assert not dockerignored(source), f"deploy/Dockerfile copies {source}, which .dockerignore leaves out"
    for needed in ("services/kpi/migrations/001_state.sql", "shared/migrations", "deploy/local/topics.py"):
        assert not dockerignored(needed), needed
    for kept_out in (
        ".git",
        ".venv",
        ".local",
        "tests",
        "tests/unit/deploy/test_compose.py",
        ".mypy_cache",
        ".hypothesis",
        "services/kpi/__pycache__/app.cpython-311.pyc",
        "docs",
        "deploy/demo",
        "requirements/dev.lock",
    ):
        assert dockerignored(kept_out), kept_out


def test_the_builder_installs_the_locked_dependencies_with_their_hashes_then_the_wheel_alone() -> None:
    runs = [rest for keyword, rest in stages()[0] if keyword == "RUN"]
    locked = [i for i, run in enumerate(runs) if "--require-hashes" in run and "-r requirements/runtime.lock" in run]
    assert locked, "the builder does not install requirements/runtime.lock with --require-hashes"
    wheel = [i for i, run in enumerate(runs) if re.search(r"pip install --no-deps \S*\.whl", run)]
    assert wheel and wheel[0] > locked[0], "the project's wheel, with --no-deps, after the locked dependencies"
    assert not any(re.search(r"pip install (?!.*--no-deps)(?!.*--require-hashes)", run) for run in runs), runs
    assert "requirements/runtime.lock" in copy_sources()


def test_the_image_has_one_recipe() -> None:
    assert not (ROOT / "Dockerfile").exists(), "deploy/Dockerfile is the image's recipe; a root Dockerfile would drift"


def test_a_service_listens_on_the_loopback_unless_it_runs_in_the_image() -> None:
    """Started by hand (the demo, a shell) a service is not reachable from the network; in a container it
    must listen on the container's interfaces, which the image says (so compose and Kubernetes do too)."""
    assert ServiceSettings.model_fields["http_host"].default == "127.0.0.1"
    runtime = stages()[-1]
    env = " ".join(rest for keyword, rest in runtime if keyword == "ENV")
    assert re.search(r"(^|\s)HTTP_HOST=0\.0\.0\.0(\s|$)", env), env
    for name in SETTINGS:
        assert environment(service(name)).get("HTTP_HOST") == "0.0.0.0", name
