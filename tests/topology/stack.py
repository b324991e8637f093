"""The distributed topology as separate processes, for the topology and fault tests:
a Qdrant server, one nats-server and one redis-server, and `memsy status`,
two `memsy embedder`, two `memsy extractor`, two `memsy indexer` and two
`memsy gateway` processes, each with its own ports. Their command lines,
environments and configuration files are the Helm chart's
(tests/helm/chart_topology.py renders helm/memsy with every address on
127.0.0.1), so these tests exercise exactly what the chart deploys. Any
process can be killed (SIGKILL) and started again on the same ports.

The Qdrant server comes from QDRANT_BIN (started here on free ports with
its own storage) or QDRANT_URL (a running one: this stack then uses
collections of its own prefix)."""

from __future__ import annotations

import json
import os
import re
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

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from conftest import ROOT, _binary, _free_port, _wait_port, memsy_bin, start_memsy, stop_all  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "helm"))
import chart_topology as ct  # noqa: E402
from helm_render import deep_merge  # noqa: E402

SKIP_REASON = "the topology tests need QDRANT_BIN (a qdrant binary to start) or QDRANT_URL (a running server)"


def qdrant_available() -> bool:
    return bool(os.environ.get("QDRANT_BIN") or os.environ.get("QDRANT_URL"))


def require_qdrant() -> None:
    """Skips the calling test module without a Qdrant server (one line for
    all the modules: pytest groups skips raised from one place)."""
    if not qdrant_available():
        pytest.skip(SKIP_REASON, allow_module_level=True)


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

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing (a hung peer)."""
        self.popen.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.popen.send_signal(signal.SIGCONT)

    def ready(self) -> bool:
        return http_ok(f"http://{self.ops}/readyz")

    def local_ports(self) -> set[int]:
        """The local ports of this process's TCP sockets (Linux /proc)."""
        if not self.popen or self.popen.poll() is not None:
            return set()
        inodes = set()
        try:
            fds = list(Path(f"/proc/{self.popen.pid}/fd").iterdir())
        except OSError:  # it has just exited
            return set()
        for fd in fds:
            try:
                m = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(fd))
            except OSError:
                continue
            if m:
                inodes.add(m.group(1))
        ports = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[9] in inodes:
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
        return ports


@dataclass
class Service:
    """A nats-server, redis-server or qdrant of the stack: killed with
    SIGKILL and started again on the same ports with the same storage."""

    name: str
    cmd: list[str]
    port: int  # the port that says it is up
    cwd: Path
    env: dict | None = None
    health: str | None = None  # an HTTP path that answers 200 when ready
    popen: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.cwd / f"{self.name}.log", "a") as log:
            self.popen = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        if self.health:
            wait_until(lambda: http_ok(f"http://127.0.0.1:{self.port}{self.health}"), 60, f"{self.name} ready")
        else:
            _wait_port(self.port, self.popen, self.name)

    def kill9(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait()


@dataclass
class Infra:
    """nats-server (with its monitoring port), redis-server (AOF on, as
    memsy's own scripts run it) and a Qdrant server."""

    nats: Service
    nats_monitor: int
    redis: Service
    qdrant: Service | None
    qdrant_url: str

    def nats_monitoring(self, path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.nats_monitor}{path}", timeout=5) as r:
            return json.load(r)

    @property
    def services(self) -> list[Service]:
        return [s for s in (self.qdrant, self.redis, self.nats) if s]

    def env(self) -> dict:
        env = dict(os.environ)
        env.pop("QDRANT_BIN", None)
        env.update({
            "MEMSY__NATS__URL": f"nats://127.0.0.1:{self.nats.port}",
            "MEMSY__REDIS__URL": f"redis://127.0.0.1:{self.redis.port}",
            "QDRANT_URL": self.qdrant_url,
            "MEMSY__QDRANT__COLLECTION_PREFIX": f"topo_{uuid.uuid4().hex[:8]}_",
            "MEMSY__EMBEDDER__MODEL_DIR": os.environ.get("MEMSY__EMBEDDER__MODEL_DIR",
                                                         str(ROOT / "models" / "all-minilm-l6-v2")),
            "RUST_LOG": os.environ.get("RUST_LOG", "info"),
        })
        return env

    def stop(self) -> None:
        stop_all([s.popen for s in self.services if s.popen])


def start_infra(tmp: Path) -> Infra:
    nats_port, nats_monitor, redis_port = _free_port(), _free_port(), _free_port()
    nats = Service("nats", [_binary("nats-server", "/usr/sbin/nats-server"), "-a", "127.0.0.1", "-p", str(nats_port),
                            "-m", str(nats_monitor), "-js", "-sd", str(tmp / "nats")], nats_port, tmp)
    redis = Service("redis", [_binary("redis-server"), "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
                              "--appendonly", "yes", "--dir", str(tmp)], redis_port, tmp)
    qdrant, qdrant_url = None, os.environ.get("QDRANT_URL", "")
    if not qdrant_url:
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
        qdrant = Service("qdrant", [os.environ["QDRANT_BIN"]], http_port, qdir, env=env, health="/readyz")
        qdrant_url = f"http://127.0.0.1:{grpc_port}"
    infra = Infra(nats, nats_monitor, redis, qdrant, qdrant_url)
    try:
        for s in infra.services:
            s.start()
    except BaseException:
        infra.stop()
        raise
    return infra


@dataclass
class Topology:
    tmp: Path
    infra: Infra
    env: dict
    procs: dict[str, Proc] = field(default_factory=dict)

    @property
    def gateways(self) -> list[str]:
        """Base URLs (ending in /v1) of the processes that serve the API."""
        names = [n for n in self.procs if n.startswith("gateway") or n == "serve"]
        return [f"http://{self.procs[n].ops}/v1" for n in names]

    def create_key(self, org: str, scopes: str = "read,write") -> str:
        out = subprocess.run(
            [memsy_bin(), "keys", "create", "--org", org, "--scopes", scopes, "--name", "topology"],
            env=self.env, check=True, capture_output=True, text=True, timeout=30,
        )
        return out.stdout.strip().splitlines()[-1]

    def add(self, name: str, command: str, own_env: dict | None = None) -> Proc:
        ops = f"127.0.0.1:{_free_port()}"
        args = [command, "--http-addr", ops, "--data-dir", str(self.tmp / name)]
        return self.add_process(name, args, dict(self.env, **(own_env or {})), ops)

    def add_process(self, name: str, args: list[str], env: dict, ops: str) -> Proc:
        p = Proc(name, args, env, self.tmp / f"{name}.log", ops)
        self.procs[name] = p
        p.start()
        return p

    def delivered(self) -> dict[str, tuple[int, int]]:
        """Per process: the messages NATS has delivered to its own
        subscriptions (stage consumers, key-value watches; replies to its
        requests left out), as (all of them, the busiest subscription's).
        A process started again counts from zero."""
        conns = self.infra.nats_monitoring("/connz?subs=detail&limit=1024")["connections"]
        out = {}
        for name, p in self.procs.items():
            ports = p.local_ports()
            counts = [s["msgs"] for c in conns if c["port"] in ports
                      for s in c.get("subscriptions_list_detail", []) if not s["subject"].endswith(".*")]
            out[name] = (sum(counts), max(counts, default=0))
        return out

    def consumers(self, stream: str) -> list[dict]:
        """The JetStream consumers of `stream`, as the monitoring port reports them."""
        jsz = self.infra.nats_monitoring("/jsz?consumers=true")
        return [c for a in jsz.get("account_details", []) for s in a.get("stream_detail", [])
                if s["name"] == stream for c in s.get("consumer_detail", [])]

    def wait_ready(self, timeout: float = 120) -> None:
        for p in self.procs.values():
            wait_until(p.ready, timeout, f"{p.name} /readyz")

    def stop(self) -> None:
        stop_all([p.popen for p in reversed(list(self.procs.values())) if p.popen])
        self.infra.stop()


def _started(build, extra_env: dict | None) -> Topology:
    tmp = Path(tempfile.mkdtemp(prefix="memsy-topology-"))
    infra = topo = None
    try:
        infra = start_infra(tmp)
        env = infra.env()
        env.update(extra_env or {})
        topo = Topology(tmp=tmp, infra=infra, env=env)
        build(topo)
        topo.wait_ready()
        return topo
    except BaseException:
        if topo:
            topo.stop()
        elif infra:
            infra.stop()
        if not os.environ.get("MEMSY_E2E_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def start_topology(config: dict | None = None) -> Topology:
    """Every service its own process, as the chart runs it, started and
    ready; `config` goes into the chart's `config` block (memsy.toml). The
    caller stops it with `remove()`."""

    def build(topo: Topology) -> None:
        infra = topo.infra
        # The chart's processes get the chart's environment only.
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMSY_", "QDRANT_"))}
        extra = {
            "embedder": {"modelDir": topo.env["MEMSY__EMBEDDER__MODEL_DIR"]},
            "config": deep_merge({
                # Two embedders share two cores with everything else.
                "embedder": {"threads": 1},
                "qdrant": {"collection_prefix": topo.env["MEMSY__QDRANT__COLLECTION_PREFIX"]},
            }, config or {}),
        }
        status_ports = None
        # Two renders: one replica of each component from each (one status
        # service); a gateway reaches the embedder of its own render.
        for r in range(2):
            ports = ct.free_ports()
            if status_ports is None:
                status_ports = ports["status"]
            ports["status"] = status_ports
            chart = ct.processes(ct.local_values(
                nats_url=f"nats://127.0.0.1:{infra.nats.port}", redis_url=f"redis://127.0.0.1:{infra.redis.port}",
                qdrant_url=infra.qdrant_url, ports=ports, extra=extra))
            for component, p in chart.items():
                if component == "status" and r > 0:
                    continue
                name = component if component == "status" else f"{component}-{r}"
                argv = p.argv(memsy_bin(), topo.tmp / name)
                topo.add_process(name, argv[1:], {**base_env, **p.env}, p.http_addr)

    return _started(build, None)


def start_single_node(extra_env: dict | None = None, qdrant: bool = False) -> Topology:
    """`memsy serve` on the stack's NATS and Redis: on the Qdrant server with
    `qdrant`, else on its embedded store (in its data directory, which a
    restart keeps)."""

    def build(topo: Topology) -> None:
        if not qdrant:
            topo.env.pop("QDRANT_URL", None)
        topo.add("serve", "serve")

    return _started(build, extra_env)


def remove(topo: Topology) -> None:
    topo.stop()
    if os.environ.get("MEMSY_E2E_KEEP"):
        print(f"kept {topo.tmp}")
    else:
        shutil.rmtree(topo.tmp, ignore_errors=True)
