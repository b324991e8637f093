"""The container image's recipe, run where no container engine is:
deploy/build-image.sh lays the image's files out in a temporary root, and
memsy is started from there with the Dockerfile's own environment (its
absolute paths moved under that root), its default embedder (ONNX Runtime)
and a nats-server and redis-server of the test's own. An event goes from
ingest to search, and `memsy embedder` from the image is ready. The
compose file is checked as a document."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from conftest import _free_port, memsy_stack, start_memsy, stop_all  # noqa: E402


def dockerfile_env() -> dict[str, str]:
    """The ENV lines of the runtime stage (the last FROM's)."""
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    runtime = text.split("\nFROM ")[-1]
    return dict(re.findall(r"^ENV (\S+)=(\S+)$", runtime, re.M))


@pytest.fixture(scope="module")
def image_root():
    tmp = Path(tempfile.mkdtemp(prefix="memsy-image-"))
    try:
        subprocess.run([str(ROOT / "deploy" / "build-image.sh"), str(tmp / "root")], check=True, timeout=3600)
        yield tmp / "root"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def image_env(root: Path) -> dict[str, str]:
    """The Dockerfile's environment with its image paths under `root`."""
    env = {}
    for k, v in dockerfile_env().items():
        env[k] = str(root / v.lstrip("/")) if v.startswith("/") else v
    return env


def test_the_image_holds_binary_model_graphs_and_runtime(image_root):
    assert os.access(image_root / "usr/local/bin/memsy", os.X_OK)
    env = image_env(image_root)
    model = Path(env["MEMSY__EMBEDDER__MODEL_DIR"])
    for f in ("model.safetensors", "tokenizer.json", "onnx/model_int8.onnx", "onnx/model.onnx"):
        assert (model / f).is_file(), f
    assert Path(env["MEMSY__EMBEDDER__ONNXRUNTIME_PATH"]).is_file(), "the Dockerfile names the runtime the recipe lays out"


def test_serve_from_the_image_takes_an_event_to_search(image_root, monkeypatch):
    from memsy import EventPayload, MemsyClient

    monkeypatch.setenv("MEMSY_BIN", str(image_root / "usr/local/bin/memsy"))
    # Only the image's own model and runtime: nothing from the checkout.
    extra = dict(image_env(image_root), MEMSY__EMBEDDER__ENGINE="onnx")
    with memsy_stack(extra) as server:
        key = server.create_key("image", "read,write")
        client = MemsyClient(base_url=server.base_url, api_key=key)
        r = client.ingest([EventPayload(actor_id="u1", session_id="s1", kind="user_message",
                                        content="My favourite instrument is the cello.")])
        deadline = time.time() + 60
        while client.status(r.event_ids).completed_ids != r.event_ids:
            assert time.time() < deadline
            time.sleep(0.2)
        hits = client.search("which instrument do I like", actor_id="u1").results
        assert hits and "cello" in hits[0].content

        # `memsy embedder` from the image loads the model and is ready.
        ops, grpc = f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"
        env = dict(server.env, MEMSY__EMBEDDER__GRPC_ADDR=grpc,
                   MEMSY__STATUS__URL=f"http://127.0.0.1:{_free_port()}")
        proc = start_memsy(["embedder", "--http-addr", ops, "--data-dir", str(server.tmp / "embedder")], env,
                           server.tmp / "embedder.log")
        try:
            import urllib.request
            deadline = time.time() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://{ops}/readyz", timeout=1) as resp:
                        if resp.status == 200:
                            break
                except Exception:
                    pass
                assert time.time() < deadline, (server.tmp / "embedder.log").read_text()[-2000:]
                time.sleep(0.2)
        finally:
            stop_all([proc])


def test_every_command_starts_from_the_image(image_root, monkeypatch):
    """status, extractor, indexer and gateway from the image's binary answer
    /livez (the indexer needs a Qdrant server: started from QDRANT_BIN or
    taken from QDRANT_URL, else left out with one line)."""
    sys.path.insert(0, str(ROOT / "tests" / "topology"))
    import stack

    monkeypatch.setenv("MEMSY_BIN", str(image_root / "usr/local/bin/memsy"))
    tmp = Path(tempfile.mkdtemp(prefix="memsy-image-cmds-"))
    infra = None
    procs = []
    try:
        qdrant = stack.qdrant_available()
        if not qdrant:
            print("the indexer is left out: it needs QDRANT_BIN or QDRANT_URL")
            monkeypatch.setenv("QDRANT_URL", f"http://127.0.0.1:{_free_port()}")
        infra = stack.start_infra(tmp)
        env = dict(infra.env(), **image_env(image_root))
        env["MEMSY__STATUS__GRPC_ADDR"] = status = f"127.0.0.1:{_free_port()}"
        env["MEMSY__STATUS__URL"] = f"http://{status}"
        for command in ["status", "extractor", "gateway"] + (["indexer"] if qdrant else []):
            ops = f"127.0.0.1:{_free_port()}"
            procs.append(start_memsy([command, "--http-addr", ops, "--data-dir", str(tmp / command)], env,
                                     tmp / f"{command}.log"))
    finally:
        stop_all(procs)
        if infra:
            infra.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_compose_runs_every_service_with_a_health_check():
    doc = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = doc["services"]
    for name in ("status", "embedder", "extractor", "indexer", "gateway"):
        s = services[name]
        assert s["command"][0] == name and s["healthcheck"]["test"], name
        assert s["build"]["dockerfile"] == "deploy/Dockerfile"
    for name in ("nats", "redis"):
        assert services[name]["healthcheck"]["test"], name
    assert "--appendonly" in services["redis"]["command"]
    assert services["redis"]["command"][services["redis"]["command"].index("--appendonly") + 1] == "yes"
    for name in ("nats", "redis", "qdrant"):
        image = services[name]["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name} is pinned: {image}"
        assert services[name]["volumes"], f"{name} keeps its data in a volume"
    major, minor = map(int, services["nats"]["image"].split(":")[1].split("-")[0].split(".")[:2])
    assert (major, minor) >= (2, 15)
