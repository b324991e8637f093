"""The distributed topology as separate processes, for the topology tests:
a Qdrant server, one nats-server and one redis-server, and `memsy status`,
two `memsy embedder`, two `memsy extractor`, two `memsy indexer` and two
`memsy gateway` processes, each with its own ports, wired as README
"Running it" says. Any of them can be killed (SIGKILL) and started again on
the same ports.

The Qdrant server comes from QDRANT_BIN (started here on free ports with
its own storage) or QDRANT_URL (a running one: this stack then uses
collections of its own prefix)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from conftest import ROOT, _binary, _free_port, _wait_port, memsy_bin, start_memsy, stop_all  # noqa: E402

SKIP_REASON = "the topology tests need QDRANT_BIN (a qdrant binary to start) or QDRANT_URL (a running server)"


def qdrant_available() -> bool:
    return bool(os.environ.get("QDRANT_BIN") or os.environ.get("QDRANT_URL"))


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except Exception:
        return False


def wait_until(pred, timeout: float, what: str, every: float = 0.1) -> float:
    """Polls `pred` until true; returns the seconds it took."""
    start = time.monotonic()
    while not pred():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what} not within {timeout} s")
        time.sleep(every)
    return time.monotonic() - start


@dataclass
class Proc:
    """One `memsy` process of the topology and how to start it again."""

    name: str
    args: list[str]
    env: dict
    log: Path
    ops: str  # host:port of /livez, /readyz, /metrics
    popen: subprocess.Popen | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        log = self.log.with_name(f"{self.log.stem}.{self.starts}.log")
        self.popen = start_memsy(self.args, self.env, log)

    def kill9(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait()

    def ready(self) -> bool:
        return http_ok(f"http://{self.ops}/readyz")


@dataclass
class Topology:
    tmp: Path
    env: dict
    procs: dict[str, Proc] = field(default_factory=dict)
    infra: list[subprocess.Popen] = field(default_factory=list)
    qdrant: subprocess.Popen | None = None

    @property
    def gateways(self) -> list[str]:
        """Base URLs (ending in /v1) of the gateways."""
        return [f"http://{self.procs[n].ops}/v1" for n in ("gateway-0", "gateway-1")]

    def create_key(self, org: str, scopes: str = "read,write") -> str:
        out = subprocess.run(
            [memsy_bin(), "keys", "create", "--org", org, "--scopes", scopes, "--name", "topology"],
            env=self.env, check=True, capture_output=True, text=True, timeout=30,
        )
        return out.stdout.strip().splitlines()[-1]

    def wait_ready(self, timeout: float = 120) -> None:
        for p in self.procs.values():
            wait_until(p.ready, timeout, f"{p.name} /readyz")

    def stop(self) -> None:
        stop_all([p.popen for p in reversed(list(self.procs.values())) if p.popen])
        stop_all(self.infra)
        if self.qdrant:
            stop_all([self.qdrant])


def start_qdrant(tmp: Path) -> tuple[str, subprocess.Popen | None]:
    """The gRPC URL of a Qdrant server (and its process when started here)."""
    if os.environ.get("QDRANT_URL"):
        return os.environ["QDRANT_URL"], None
    http_port, grpc_port = _free_port(), _free_port()
    qdir = tmp / "qdrant"
    qdir.mkdir()
    env = dict(os.environ)
    env.update({
        "QDRANT__SERVICE__HOST": "127.0.0.1",
        "QDRANT__SERVICE__HTTP_PORT": str(http_port),
        "QDRANT__SERVICE__GRPC_PORT": str(grpc_port),
        "QDRANT__STORAGE__STORAGE_PATH": str(qdir / "storage"),
        "QDRANT__STORAGE__SNAPSHOTS_PATH": str(qdir / "snapshots"),
        "QDRANT__TELEMETRY_DISABLED": "true",
        "QDRANT__LOG_LEVEL": "WARN",
    })
    with open(tmp / "qdrant.log", "w") as log:
        proc = subprocess.Popen([os.environ["QDRANT_BIN"]], cwd=qdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_until(lambda: http_ok(f"http://127.0.0.1:{http_port}/readyz"), 60, "qdrant /readyz")
    return f"http://127.0.0.1:{grpc_port}", proc


def start_topology(extra_env: dict | None = None) -> Topology:
    """Everything started and ready; the caller stops it with `stop()`."""
    tmp = Path(tempfile.mkdtemp(prefix="memsy-topology-"))
    topo = Topology(tmp=tmp, env={})
    try:
        qdrant_url, topo.qdrant = start_qdrant(tmp)
        nats_port, redis_port = _free_port(), _free_port()
        nats = subprocess.Popen(
            [_binary("nats-server", "/usr/sbin/nats-server"), "-a", "127.0.0.1", "-p", str(nats_port), "-js",
             "-sd", str(tmp / "nats")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        topo.infra.append(nats)
        redis = subprocess.Popen(
            [_binary("redis-server"), "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
             "--appendonly", "yes", "--dir", str(tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        topo.infra.append(redis)
        _wait_port(nats_port, nats, "nats-server")
        _wait_port(redis_port, redis, "redis-server")

        status_grpc = f"127.0.0.1:{_free_port()}"
        env = dict(os.environ)
        env.pop("QDRANT_BIN", None)
        env.update({
            "MEMSY__NATS__URL": f"nats://127.0.0.1:{nats_port}",
            "MEMSY__REDIS__URL": f"redis://127.0.0.1:{redis_port}",
            "QDRANT_URL": qdrant_url,
            "MEMSY__QDRANT__COLLECTION_PREFIX": f"topo_{uuid.uuid4().hex[:8]}_",
            "MEMSY__STATUS__URL": f"http://{status_grpc}",
            "MEMSY__STATUS__GRPC_ADDR": status_grpc,
            "MEMSY__EMBEDDER__MODEL_DIR": os.environ.get("MEMSY__EMBEDDER__MODEL_DIR",
                                                         str(ROOT / "models" / "all-minilm-l6-v2")),
            # Two embedders share two cores with everything else.
            "MEMSY__EMBEDDER__THREADS": "1",
            "RUST_LOG": os.environ.get("RUST_LOG", "info"),
        })
        env.update(extra_env or {})
        topo.env = env

        def add(name: str, command: str, own_env: dict | None = None) -> Proc:
            ops = f"127.0.0.1:{_free_port()}"
            args = [command, "--http-addr", ops, "--data-dir", str(tmp / name)]
            p = Proc(name, args, dict(env, **(own_env or {})), tmp / f"{name}.log", ops)
            topo.procs[name] = p
            p.start()
            return p

        add("status", "status")
        embedder_urls = []
        for i in range(2):
            grpc = f"127.0.0.1:{_free_port()}"
            add(f"embedder-{i}", "embedder", {"MEMSY__EMBEDDER__GRPC_ADDR": grpc})
            embedder_urls.append(f"http://{grpc}")
        for i in range(2):
            add(f"extractor-{i}", "extractor")
        for i in range(2):
            add(f"indexer-{i}", "indexer")
        # A gateway reaches one embedder for query embeddings: each its own.
        for i in range(2):
            add(f"gateway-{i}", "gateway", {"MEMSY__EMBEDDER__URL": embedder_urls[i]})
        topo.wait_ready()
        return topo
    except BaseException:
        topo.stop()
        if not os.environ.get("MEMSY_E2E_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove(topo: Topology) -> None:
    topo.stop()
    if os.environ.get("MEMSY_E2E_KEEP"):
        print(f"kept {topo.tmp}")
    else:
        shutil.rmtree(topo.tmp, ignore_errors=True)
