"""deploy/helm/attain is generated from the Kustomize base and current, lints, and renders what the base does.

The chart is `python -m deploy.helm_chart`'s output: the first test fails when the committed files differ from a
fresh generation. helm (the pin of deploy/local/tools.py) lints it strictly and renders it with its defaults and
with each tests/unit/deploy/helm-values-*.yaml, which flip its toggles. Every render is validated as the Kustomize
overlays are, with test_k8s.py's helpers: the built-in kinds with kubernetes-validate (strict), the custom
resources with kubeconform against the pinned operators' own CRDs (deploy/local/crds.py). With its defaults the
chart renders the base object for object: the one-source guarantee.
"""

from __future__ import annotations

import base64
import copy
import functools
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import helm_chart
from deploy.helm.base import canonical_names, renamed
from deploy.local.tools import TOOLS, ensure
from tests.unit.deploy.test_k8s import (
    K8S_VERSIONS,
    container,
    is_custom,
    kubeconform,
    kubeconform_problems,
    kubernetes_errors,
    render,
)

pytestmark = [pytest.mark.tools, pytest.mark.timeout(1500)]  # helm, kubeconform: built in the background, run last

HERE = Path(__file__).parent
CHART = helm_chart.CHART
VALUES_FILES = {path.stem.removeprefix("helm-values-"): path for path in sorted(HERE.glob("helm-values-*.yaml"))}
RENDERS = ("defaults", *VALUES_FILES)
# What the chart adds to the base's objects: Helm's labels, the namespace, hook and checksum annotations.
HELM_LABELS = {"app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by",
               "helm.sh/chart"}
OPTIONAL_KINDS = {"ScaledObject", "TriggerAuthentication", "KafkaTopic", "KafkaUser", "ServiceMonitor",
                  "PrometheusRule", "NetworkPolicy", "HTTPRoute"}


# --- helm -----------------------------------------------------------------------------------------------------


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ensure("helm")), *args], capture_output=True, text=True, timeout=60, check=False)


def switched_off() -> list[str]:
    """`--set` of every toggle of a kind the base has, off: helm-values-off.yaml switches off all there are even
    when the base gains another optional kind."""
    present = kinds(render("base"))
    return sorted({f"{value}=false" for kind, value in helm_chart.TOGGLES.items() if kind in present
                   and kind != "Secret"})


@functools.cache
def _template(render_name: str, *sets: str) -> tuple[dict[str, Any], ...]:
    args = ["template", "attain", str(CHART), "--namespace", "attain"]
    if render_name != "defaults":
        args += ["--values", str(VALUES_FILES[render_name])]
    for value in [*(switched_off() if render_name == "off" else []), *sets]:
        args += ["--set", value]
    done = helm(*args)
    assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def template(render_name: str = "defaults", *sets: str) -> list[dict[str, Any]]:
    return copy.deepcopy(list(_template(render_name, *sets)))


def _merge(defaults: Any, override: Any) -> Any:
    """Helm's coalescing of a values file over the defaults: maps merge, null deletes."""
    if not (isinstance(defaults, dict) and isinstance(override, dict)):
        return override
    merged = dict(defaults)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merge(defaults.get(key), value)
    return merged


def values_for(render_name: str) -> dict[str, Any]:
    """The values a render used: the chart's defaults with the file's over them."""
    values: dict[str, Any] = _merge(yaml.safe_load((CHART / "values.yaml").read_text()),
                                    yaml.safe_load(VALUES_FILES[render_name].read_text()))
    return values


def kinds(objects: list[dict[str, Any]]) -> set[str]:
    return {o["kind"] for o in objects}


def named(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


# --- generated and current ---------------------------------------------------------------------------------------


def test_the_committed_chart_is_what_the_generator_makes_of_the_base() -> None:
    stale = helm_chart.stale(helm_chart.generate(render("base")))
    assert not stale, f"deploy/helm/attain is stale ({', '.join(stale)}): run `python -m deploy.helm_chart`"


def test_a_change_to_the_base_shows_in_the_generated_chart() -> None:
    """Regenerating picks up what the base changes: a probe, a resource default, a new object."""
    base = copy.deepcopy(render("base"))
    kpi = next(o for o in base if o["kind"] == "Deployment" and o["metadata"]["name"] == "attain-kpi")
    container(kpi)["readinessProbe"]["timeoutSeconds"] = 9
    container(kpi)["resources"]["requests"]["cpu"] = "300m"
    base.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "attain-extra"}})
    files = helm_chart.generate(base)
    assert helm_chart.stale(files) == ["README.md", "templates/kpi.yaml", "templates/serviceaccount.yaml",
                                       "values.yaml"]
    assert "timeoutSeconds: 9" in files["templates/kpi.yaml"]
    assert 'name: {{ include "attain.fullname" . }}-extra' in files["templates/serviceaccount.yaml"]


def test_the_staleness_check_names_changed_missing_and_extra_files(tmp_path: Path) -> None:
    files = {"Chart.yaml": "name: attain\n", "templates/a.yaml": "a\n", "templates/b.yaml": "b\n"}
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    assert helm_chart.stale(files, tmp_path) == []
    (tmp_path / "templates/a.yaml").write_text("changed\n")
    (tmp_path / "templates/b.yaml").unlink()
    (tmp_path / "templates/old.yaml").write_text("gone from the base\n")
    assert helm_chart.stale(files, tmp_path) == ["templates/a.yaml", "templates/b.yaml", "templates/old.yaml"]


def test_the_chart_is_versioned_as_the_project_for_the_kubernetes_versions_tested() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = helm_chart.project()
    assert (chart["name"], chart["version"], chart["appVersion"]) == ("attain", project["version"], project["version"])
    assert chart["kubeVersion"] == f">={K8S_VERSIONS[0]}.0-0"
    assert chart["annotations"]["artifacthub.io/license"] == project["license"]


# --- helm lint and template ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("render_name", RENDERS)
def test_the_chart_lints_strictly(render_name: str) -> None:
    args = ["lint", str(CHART), "--strict", "--namespace", "attain"]
    if render_name != "defaults":
        args += ["--values", str(VALUES_FILES[render_name])]
    done = helm(*args)
    assert done.returncode == 0, f"helm {TOOLS['helm'].version} {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("render_name", RENDERS)
def test_the_rendered_built_in_objects_are_valid_kubernetes(render_name: str) -> None:
    built_in = [o for o in template(render_name) if not is_custom(o)]
    assert {"Deployment", "Service", "PodDisruptionBudget", "ServiceAccount", "ConfigMap", "Job"} <= kinds(built_in)
    errors = [f"{version}: {error}" for version in K8S_VERSIONS for error in kubernetes_errors(built_in, version)]
    assert not errors, f"{render_name}:\n" + "\n".join(errors)


@pytest.mark.parametrize("render_name", RENDERS)
def test_the_rendered_custom_resources_are_valid_against_the_operators_crds(render_name: str) -> None:
    manifests = template(render_name)
    custom = [m for m in manifests if is_custom(m)]
    if render_name == "off":
        assert not custom, f"the toggles left {kinds(custom)}"
        return
    assert {(m["apiVersion"], m["kind"]) for m in custom} == {(m["apiVersion"], m["kind"]) for m in render("base")
                                                              if is_custom(m)}
    for version in K8S_VERSIONS:
        status, report = kubeconform(manifests, version)
        assert status == 0 and not kubeconform_problems(report), "\n".join(kubeconform_problems(report))
        assert report["summary"]["valid"] == len(custom) and not report["summary"]["errors"], report["summary"]


def test_every_object_lands_in_the_releases_namespace() -> None:
    for manifest in template("defaults"):
        assert manifest["metadata"].get("namespace") == "attain", manifest["metadata"]["name"]


def test_the_schema_rejects_a_wrong_type_or_an_unknown_value() -> None:
    for wrong in ("image.tag=5", "keda.enabled=yes", "services.kpi.replicas.min=0",
                  "services.kpi.disruptionBudget.maxUnavailabel=1", "image.pullPolicy=Sometimes",
                  "config.KAFKA_BOOTSTRAP_SERVERS=x:9092", "kafka.topics.replicas=three"):
        done = helm("template", "attain", str(CHART), "--set", wrong)
        assert done.returncode != 0 and "schema" in done.stderr.lower(), f"{wrong} was accepted"


# --- one source ------------------------------------------------------------------------------------------------------


def _as_base_would_have_it(helm_obj: dict[str, Any], base_obj: dict[str, Any]) -> dict[str, Any]:
    """The chart's object without what the chart adds (namespace, Helm's labels, hook and checksum annotations)."""
    found = copy.deepcopy(helm_obj)
    pairs = [(found["metadata"], base_obj["metadata"])]
    if "template" in found.get("spec", {}):
        pairs.append((found["spec"]["template"]["metadata"], base_obj["spec"]["template"].get("metadata", {})))
    for meta, base_meta in pairs:
        meta.pop("namespace", None)
        added = HELM_LABELS | ({"app.kubernetes.io/name"} - set(base_meta.get("labels", {})))
        meta["labels"] = {k: v for k, v in meta.get("labels", {}).items() if k not in added}
        meta["annotations"] = {k: v for k, v in meta.get("annotations", {}).items()
                               if not k.startswith(("helm.sh/", "checksum/"))}
        for key in ("labels", "annotations"):
            if not meta[key] and key not in base_meta:
                del meta[key]
    if found["kind"] == "Secret":
        found["data"] = {k: base64.b64decode(v) for k, v in found.get("data", {}).items()}
    return found


def _base() -> dict[tuple[str, str], dict[str, Any]]:
    objects = render("base")
    canonical = renamed(objects, canonical_names(objects))
    for obj in canonical:
        if obj["kind"] == "Secret":
            obj["data"] = {k: base64.b64decode(v) for k, v in obj.get("data", {}).items()}
    return {(o["kind"], o["metadata"]["name"]): o for o in canonical}


def test_with_its_defaults_the_chart_renders_the_base_object_for_object() -> None:
    """Same kinds and names, and every field equal but for what Helm adds; with the defaults the Secrets are left
    to the operator, with placeholderSecrets=true they are the base's placeholders."""
    base = _base()
    rendered = {(o["kind"], o["metadata"]["name"]): o for o in template("defaults", "placeholderSecrets=true")}
    assert sorted(rendered) == sorted(base)
    for key, obj in rendered.items():
        assert _as_base_would_have_it(obj, base[key]) == base[key], f"{key}: the chart differs from the base"
    defaults = {(o["kind"], o["metadata"]["name"]) for o in template("defaults")}
    assert defaults == {key for key in base if key[0] != "Secret"}
    for workload in (o for o in template("defaults") if o["kind"] in ("Deployment", "Job")):
        app, base_app = container(workload), container(base[workload["kind"], workload["metadata"]["name"]])
        for field in ("image", "command", "ports", "livenessProbe", "readinessProbe", "startupProbe"):
            assert app.get(field) == base_app.get(field), f"{workload['metadata']['name']}: {field}"
        assert [e["name"] for e in app.get("env", ())] == [e["name"] for e in base_app.get("env", ())]


def test_a_changed_setting_rolls_the_pods() -> None:
    def checksums(*sets: str) -> set[str]:
        return {o["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
                for o in template("defaults", *sets) if o["kind"] == "Deployment"}

    (before,), (after,) = checksums(), checksums("config.LOG_LEVEL=DEBUG")
    assert before != after


# --- the toggles and values -------------------------------------------------------------------------------------------


def test_the_toggles_leave_out_what_they_switch_off_and_consumers_keep_replicas_without_keda() -> None:
    off = template("off")
    assert not kinds(off) & OPTIONAL_KINDS, kinds(off) & OPTIONAL_KINDS
    assert set(named(off, "Secret")) == {name for kind, name in _base() if kind == "Secret"}
    scaled = {o["spec"]["scaleTargetRef"]["name"]: o["spec"] for o in render("base") if o["kind"] == "ScaledObject"}
    minimum = {f"attain-{name}": spec["replicas"]["min"] for name, spec in values_for("off")["services"].items()}
    for name, deployment in named(off, "Deployment").items():
        if name in scaled:
            assert deployment["spec"]["replicas"] == minimum[name], name
        else:
            assert "replicas" not in deployment["spec"], f"{name}: its HorizontalPodAutoscaler owns the count"
    for job in named(off, "Job").values():
        assert not set(job["metadata"].get("annotations", {})) & {"helm.sh/hook"}, "helmHook: false"
    images = {c["image"] for o in off if o["kind"] in ("Deployment", "Job")
              for c in o["spec"]["template"]["spec"]["containers"]}
    image = values_for("off")["image"]
    assert images == {f"{image['repository']}@{image['digest']}"}


def test_a_release_prefixes_every_name_and_every_reference_follows() -> None:
    """fullnameOverride renames every object of the chart (not the topics: their names are the contract) and
    every reference to one: config, secrets, service account, scale targets, KEDA's authentication, URLs."""
    prod = template("prod")
    prefix = values_for("prod")["fullnameOverride"]
    names = {(o["kind"], o["metadata"]["name"]) for o in prod}
    for kind, name in names:
        assert kind == "KafkaTopic" or name == prefix or name.startswith(f"{prefix}-"), (kind, name)
    topics = {(o["kind"], o["metadata"]["name"]) for o in render("base") if o["kind"] == "KafkaTopic"}
    assert topics <= names
    for workload in (o for o in prod if o["kind"] in ("Deployment", "Job")):
        pod = workload["spec"]["template"]["spec"]
        assert ("ServiceAccount", pod["serviceAccountName"]) in names
        for app in pod["containers"] + pod.get("initContainers", []):
            for source in app.get("envFrom", ()):
                for kind, ref in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    if ref in source:
                        assert source[ref]["name"].startswith(f"{prefix}-"), source
                        assert kind == "Secret" or (kind, source[ref]["name"]) in names
            for env in app.get("env", ()):
                secret = env.get("valueFrom", {}).get("secretKeyRef")
                assert secret is None or secret["name"].startswith(f"{prefix}-"), env
                assert not env.get("value", "").startswith("http://attain-"), f"a URL kept the base's name: {env}"
    for kind in ("ScaledObject", "HorizontalPodAutoscaler"):
        for scaler in named(prod, kind).values():
            assert ("Deployment", scaler["spec"]["scaleTargetRef"]["name"]) in names
    for scaled in named(prod, "ScaledObject").values():
        for trigger in scaled["spec"]["triggers"]:
            assert ("TriggerAuthentication", trigger["authenticationRef"]["name"]) in names
            assert trigger["metadata"]["bootstrapServers"] == values_for("prod")["kafka"]["bootstrapServers"]


def test_the_values_reach_the_objects_they_name() -> None:
    prod, values = template("prod"), values_for("prod")
    for name, service in values["services"].items():
        deployment = named(prod, "Deployment")[f"{values['fullnameOverride']}-{name}"]
        assert container(deployment)["resources"] == service["resources"], name
        budget = named(prod, "PodDisruptionBudget")[f"{values['fullnameOverride']}-{name}"]["spec"]
        limits = service["disruptionBudget"]
        expected = {"minAvailable": limits["minAvailable"]} if "minAvailable" in limits else limits
        assert {k: v for k, v in budget.items() if k != "selector"} == expected, name
    for topic in named(prod, "KafkaTopic").values():
        assert topic["spec"]["replicas"] == values["kafka"]["topics"]["replicas"]
        assert topic["spec"]["config"]["min.insync.replicas"] == values["kafka"]["topics"]["minInsyncReplicas"]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == values["kafka"]["clusterName"]
    (config,) = named(prod, "ConfigMap").values()
    assert config["data"] == {"KAFKA_BOOTSTRAP_SERVERS": values["kafka"]["bootstrapServers"], **values["config"]}
    for kind in ("ServiceMonitor", "PrometheusRule"):
        for monitor in named(prod, kind).values():
            assert values["monitoring"]["labels"].items() <= monitor["metadata"]["labels"].items(), kind
    for route in named(prod, "HTTPRoute").values():
        assert route["spec"]["parentRefs"] == values["httpRoute"]["parentRefs"]
    policies = named(prod, "NetworkPolicy").values()
    namespaces = {peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                  for policy in policies for rule in policy["spec"].get("ingress", ()) for peer in rule["from"]
                  if "namespaceSelector" in peer}
    assert not policies or namespaces == {values["networkPolicy"][key] for key in ("gatewayNamespace",
                                                                                   "prometheusNamespace")}


def test_the_notes_name_every_secret_the_pods_read_and_the_job_to_wait_for() -> None:
    done = helm("install", "attain", str(CHART), "--namespace", "attain", "--dry-run=client",
                "--kubeconfig", "/nonexistent")  # client-side: no cluster is contacted
    assert done.returncode == 0, done.stderr
    notes = done.stdout.partition("NOTES:")[2]
    read = set()
    for workload in (o for o in template("defaults") if o["kind"] in ("Deployment", "Job")):
        pod = workload["spec"]["template"]["spec"]
        for app in pod["containers"] + pod.get("initContainers", []):
            read |= {s["secretRef"]["name"] for s in app.get("envFrom", ()) if "secretRef" in s}
            read |= {e["valueFrom"]["secretKeyRef"]["name"] for e in app.get("env", ())
                     if "secretKeyRef" in e.get("valueFrom", {})}
    assert read
    for name in read:
        assert f"create secret generic {name} " in notes, f"NOTES.txt does not say to create {name}"
    for job in named(template("defaults"), "Job"):
        assert f"job/{job} " in notes
