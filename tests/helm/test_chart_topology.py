"""chart_topology: the chart's own command lines and environments, made
runnable on one machine. The last test starts every service from them on a
real nats-server, redis-server and Qdrant server and sends an event through
the memsy SDK from ingest to search."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest

import chart_topology as ct
from helm_render import COMPONENTS, ROOT

sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from conftest import _binary, _free_port, _wait_port, memsy_bin, start_memsy, stop_all  # noqa: E402

QDRANT_SKIP = "the chart-topology smoke test needs QDRANT_BIN (a qdrant binary to start) or QDRANT_URL (a running server)"


def _values(ports=None, extra=None):
    return ct.local_values(nats_url="nats://127.0.0.1:14222", redis_url="redis://127.0.0.1:16379",
                           qdrant_url="http://127.0.0.1:16334", ports=ports or ct.free_ports(), extra=extra)


def test_every_service_is_rendered_in_start_order():
    procs = ct.processes(_values())
    assert tuple(procs) == ct.START_ORDER and set(procs) == set(COMPONENTS)
    for name, p in procs.items():
        assert p.command == ["memsy"] and p.args[0] == name
        assert p.args[p.args.index("--config") + 1] == p.config_path == "/etc/memsy/memsy.toml"


def test_every_address_is_local_and_every_client_finds_its_server():
    ports = ct.free_ports()
    procs = ct.processes(_values(ports))
    listeners = []
    for name, p in procs.items():
        assert p.http_addr == f"127.0.0.1:{ports[name]['http']}"
        listeners.append(p.http_addr)
    status_grpc = procs["status"].env["MEMSY__STATUS__GRPC_ADDR"]
    embedder_grpc = procs["embedder"].env["MEMSY__EMBEDDER__GRPC_ADDR"]
    listeners += [status_grpc, embedder_grpc]
    assert len(set(listeners)) == len(listeners) == 7
    for name in ("gateway", "extractor", "embedder", "indexer"):
        assert procs[name].env["MEMSY__STATUS__URL"] == f"http://{status_grpc}"
    assert procs["gateway"].env["MEMSY__EMBEDDER__URL"] == f"http://{embedder_grpc}"
    for p in procs.values():
        for key, value in p.env.items():
            if "://" in value:
                assert urlparse(value).hostname == "127.0.0.1", (p.component, key, value)
    assert procs["gateway"].env["MEMSY__NATS__URL"] == "nats://127.0.0.1:14222"
    assert procs["status"].env["MEMSY__REDIS__URL"] == "redis://127.0.0.1:16379"
    assert procs["indexer"].env["QDRANT_URL"] == "http://127.0.0.1:16334"


def test_argv_makes_config_and_data_local(tmp_path):
    procs = ct.processes(_values(extra={"config": {"embedder": {"threads": 1}}}))
    argv = procs["embedder"].argv("/opt/memsy", tmp_path / "embedder")
    assert argv[:2] == ["/opt/memsy", "embedder"]
    config = Path(argv[argv.index("--config") + 1])
    assert config == tmp_path / "embedder" / "memsy.toml" and "threads = 1" in config.read_text()
    assert argv[argv.index("--data-dir") + 1] == str(tmp_path / "embedder" / "data")
    moved = procs["gateway"].argv("/opt/memsy", tmp_path / "gw", http_addr="127.0.0.1:1")
    assert moved[moved.index("--http-addr") + 1] == "127.0.0.1:1"


def test_secrets_are_resolved_from_the_chart_s_own_secret():
    procs = ct.processes(_values(extra={"secrets": {"llmApiKey": "sk-local", "qdrantApiKey": "qk"}}))
    assert procs["gateway"].env["MEMSY__LLM__API_KEY"] == "sk-local"
    assert procs["indexer"].env["QDRANT_API_KEY"] == "qk"
    # An optional key of a Secret this render does not hold is left out ...
    procs = ct.processes(_values(extra={"secrets": {"existingSecret": "elsewhere"}}))
    assert "MEMSY__LLM__API_KEY" not in procs["gateway"].env
    # ... and a required one cannot be run here.
    with pytest.raises(ValueError, match="MEMSY__NATS__URL needs key url of Secret nats-url"):
        ct.processes(_values(extra={"externalNats": {"existingSecret": "nats-url"}}))


def _start_qdrant(tmp: Path):
    """A Qdrant server's gRPC URL (and its process when started here)."""
    if os.environ.get("QDRANT_URL"):
        return os.environ["QDRANT_URL"], None
    http_port, grpc_port = _free_port(), _free_port()
    (tmp / "qdrant").mkdir()
    env = dict(os.environ, QDRANT__SERVICE__HOST="127.0.0.1", QDRANT__SERVICE__HTTP_PORT=str(http_port),
               QDRANT__SERVICE__GRPC_PORT=str(grpc_port), QDRANT__STORAGE__STORAGE_PATH=str(tmp / "qdrant" / "storage"),
               QDRANT__STORAGE__SNAPSHOTS_PATH=str(tmp / "qdrant" / "snapshots"), QDRANT__TELEMETRY_DISABLED="true",
               QDRANT__LOG_LEVEL="WARN")
    with open(tmp / "qdrant.log", "w") as log:
        proc = subprocess.Popen([os.environ["QDRANT_BIN"]], cwd=tmp / "qdrant", env=env, stdout=log, stderr=subprocess.STDOUT)
    _wait_port(http_port, proc, "qdrant")
    return f"http://127.0.0.1:{grpc_port}", proc


def _ready(addr: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{addr}/readyz", timeout=1) as r:
            return r.status == 200
    except Exception:
        return False


@pytest.mark.skipif(not (os.environ.get("QDRANT_BIN") or os.environ.get("QDRANT_URL")), reason=QDRANT_SKIP)
def test_the_chart_s_processes_run_an_event_from_ingest_to_search():
    from memsy import EventPayload, MemsyClient

    tmp = Path(tempfile.mkdtemp(prefix="memsy-chart-"))
    procs: list[subprocess.Popen] = []
    qdrant = None
    try:
        qdrant_url, qdrant = _start_qdrant(tmp)
        nats_port, redis_port = _free_port(), _free_port()
        nats = subprocess.Popen([_binary("nats-server", "/usr/sbin/nats-server"), "-a", "127.0.0.1", "-p", str(nats_port),
                                 "-js", "-sd", str(tmp / "nats")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(nats)
        redis = subprocess.Popen([_binary("redis-server"), "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
                                  "--appendonly", "yes", "--dir", str(tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(redis)
        _wait_port(nats_port, nats, "nats-server")
        _wait_port(redis_port, redis, "redis-server")

        model_dir = os.environ.get("MEMSY__EMBEDDER__MODEL_DIR", str(ROOT / "models" / "all-minilm-l6-v2"))
        values = ct.local_values(
            nats_url=f"nats://127.0.0.1:{nats_port}", redis_url=f"redis://127.0.0.1:{redis_port}", qdrant_url=qdrant_url,
            ports=ct.free_ports(),
            extra={"embedder": {"modelDir": model_dir},
                   "config": {"embedder": {"threads": 1}, "qdrant": {"collection_prefix": f"chart_{uuid.uuid4().hex[:8]}_"}}})
        chart = ct.processes(values)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMSY_", "QDRANT_"))}
        for name, p in chart.items():
            argv = p.argv(memsy_bin(), tmp / name)
            procs.append(start_memsy(argv[1:], {**base_env, **p.env}, tmp / f"{name}.log"))
        deadline = time.time() + 120
        for name, p in chart.items():
            while not _ready(p.http_addr):
                assert time.time() < deadline, f"{name} not ready:\n" + (tmp / f"{name}.log").read_text()[-3000:]
                time.sleep(0.2)

        gateway = chart["gateway"]
        key = subprocess.run([memsy_bin(), "keys", "create", "--org", "chart", "--scopes", "read,write,admin"],
                             env={**base_env, **gateway.env}, check=True, capture_output=True, text=True,
                             timeout=30).stdout.strip()
        client = MemsyClient(base_url=f"http://{gateway.http_addr}/v1", api_key=key)
        r = client.ingest([EventPayload(actor_id="user_42", session_id="s1", kind="user_message",
                                        content="My dog's name is Rex.")])
        deadline = time.time() + 60
        while True:
            status = client.status(r.event_ids)
            if status.completed_ids == r.event_ids:
                break
            assert not status.failed_ids, status
            assert time.time() < deadline, status
            time.sleep(0.2)
        hits = client.search("what is my dog called", actor_id="user_42").results
        assert hits and "Rex" in hits[0].content
    finally:
        stop_all(reversed(procs))
        if qdrant is not None:
            stop_all([qdrant])
        if os.environ.get("MEMSY_E2E_KEEP"):
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
