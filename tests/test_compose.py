"""The compose file's shape, and that it only sets settings docsync knows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from docsync.plugin.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def test_qdrant_is_pinned_persistent_and_checked() -> None:
    qdrant = compose()["services"]["qdrant"]
    image = qdrant["image"]
    assert re.fullmatch(r"qdrant/qdrant:v\d+\.\d+\.\d+", image), image
    assert any(v.endswith(":/qdrant/storage") for v in qdrant["volumes"])
    assert "healthcheck" in qdrant


def test_worker_waits_for_qdrant_and_reads_docs_read_only() -> None:
    worker = compose()["services"]["worker"]
    assert worker["depends_on"]["qdrant"]["condition"] == "service_healthy"
    assert any(v.endswith(":/docs:ro") for v in worker["volumes"])
    assert any(v.endswith(":/cache") for v in worker["volumes"])  # the model cache survives
    env = worker["environment"]
    assert env["DOCSYNC_QDRANT_URL"] == "http://qdrant:6333"
    assert worker["command"] == ["run", "/docs"]
    port = str(env["DOCSYNC_HTTP_PORT"])
    assert f"127.0.0.1:{port}/healthz" in " ".join(worker["healthcheck"]["test"])
    assert env["DOCSYNC_HTTP_HOST"] == "0.0.0.0"  # reachable from the healthcheck and host


def test_gpu_profile_reserves_an_nvidia_device() -> None:
    gpu = compose()["services"]["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["environment"]["DOCSYNC_DEVICE"] == "cuda"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "cu" in gpu["build"]["args"]["TORCH_INDEX"]


def test_cluster_profile_runs_three_nodes_and_a_worker_that_shards_and_replicates() -> None:
    services = compose()["services"]
    nodes = {name: services[name] for name in ("qdrant-node1", "qdrant-node2", "qdrant-node3")}
    for name, node in nodes.items():
        assert node["profiles"] == ["cluster"]
        assert node["environment"]["QDRANT__CLUSTER__ENABLED"] == "true"
        assert node["image"] == services["qdrant"]["image"]  # the same pinned version
        assert f"http://{name}:6335" in node["command"]
        assert any(v.endswith(":/qdrant/storage") for v in node["volumes"])  # one volume each
    assert len({node["volumes"][0] for node in nodes.values()}) == 3
    for follower in ("qdrant-node2", "qdrant-node3"):
        assert "--bootstrap" in nodes[follower]["command"]
    worker = services["worker-cluster"]
    assert worker["profiles"] == ["cluster"]
    assert set(worker["depends_on"]) == set(nodes)
    env = worker["environment"]
    assert env["DOCSYNC_QDRANT_URL"] == "http://qdrant-node1:6333"
    settings = Settings(
        shard_number=env["DOCSYNC_SHARD_NUMBER"].split(":-")[1].rstrip("}"),
        replication_factor=env["DOCSYNC_REPLICATION_FACTOR"].split(":-")[1].rstrip("}"),
        write_consistency_factor=env["DOCSYNC_WRITE_CONSISTENCY_FACTOR"].split(":-")[1].rstrip("}"),
        write_ordering=env["DOCSYNC_WRITE_ORDERING"].split(":-")[1].rstrip("}"),
    )
    assert settings.replication_factor is not None and settings.replication_factor >= 2


def test_dockerfile_is_slim_cpu_and_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim", text, re.M)
    assert "download.pytorch.org/whl/cpu" in text
    assert re.search(r"^USER (?!root)\w+", text, re.M)
    assert "HF_HOME=/cache" in text


def test_every_docsync_variable_is_a_setting() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    names = set(re.findall(r"\bDOCSYNC_([A-Z_]+)", text))
    assert names, "the compose file configures docsync through DOCSYNC_ variables"
    fields = {name.upper() for name in Settings.model_fields}
    assert names <= fields, names - fields
