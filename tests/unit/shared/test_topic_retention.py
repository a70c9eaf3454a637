"""Topic retention is deliberate: the source topics a rebuild replays keep everything, in the code and in
the Kubernetes manifests; dead letters keep 14 days."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shared import topics

MANIFEST = Path(__file__).resolve().parents[3] / "deploy" / "k8s" / "base" / "topics.yaml"
SOURCES = (topics.DEALS, topics.ACTIVITIES, topics.ROSTER, topics.TARGETS)


def _manifests() -> dict[str, dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d and d.get("kind") == "KafkaTopic"]
    return {d["spec"]["topicName"]: d["spec"]["config"] for d in docs}


@pytest.mark.parametrize("topic", SOURCES, ids=lambda t: t.name)
def test_the_source_topics_are_kept_forever(topic: topics.Topic) -> None:
    assert topic.configs["retention.ms"] == "-1"
    assert int(_manifests()[topic.name]["retention.ms"]) == -1


def test_every_topic_is_created_with_the_configs_its_manifest_states() -> None:
    manifests = _manifests()
    for topic in topics.all_with_dlq():
        stated = {k: str(v) for k, v in manifests[topic.name].items() if k != "min.insync.replicas"}
        assert stated == topic.configs, topic.name


def test_derived_topics_keep_the_brokers_default_and_dead_letters_fourteen_days() -> None:
    assert "retention.ms" not in topics.TASKS.configs
    assert {t.configs["retention.ms"] for t in topics.all_with_dlq() if t.name.endswith(".dlq")} == {
        str(14 * 24 * 3600 * 1000)}
