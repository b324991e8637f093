"""End-to-end fixtures: a real nats-server (JetStream), redis-server and
`memsy serve`, each on a free port with its own temporary directory, and
API keys minted with `memsy keys create`. The tests talk to the server only
through the public memsy SDK, as a user's program would."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


def _binary(name: str, *fallbacks: str) -> str:
    # scripts/setup.sh installs a current nats-server into .venv/bin (see there).
    venv = ROOT / ".venv" / "bin" / name
    if venv.is_file():
        return str(venv)
    found = shutil.which(name)
    if found:
        return found
    for f in fallbacks:
        if os.path.exists(f):
            return f
    raise RuntimeError(f"{name} not found: run scripts/setup.sh")


def memsy_bin() -> str:
    b = os.environ.get("MEMSY_BIN") or str(ROOT / "target" / "release" / "memsy")
    if not os.path.exists(b):
        raise RuntimeError(f"memsy binary not found at {b}: build it (cargo build --release -p memsy) or set MEMSY_BIN")
    return b


# Plans for the tests that exercise rate limits and quotas; every other org
# is on the default plan. Rate windows are 2 s so that a test waiting for
# `Retry-After` waits seconds, not a minute.
TEST_CONFIG = """
[usage]
rate_window_secs = 2

[usage.plans.tiny]
requests_per_minute = 90  # 3 per 2-second window

[usage.plans.metered]
max_keys = 3
limits = { events_ingested = 5, search_queries = 3 }

[usage.plans.llm-metered]
limits = { llm_tokens = 300 }

[usage.orgs]
"rl-org" = "tiny"
"rl-shared" = "tiny"
"quota-org" = "metered"
"llm-quota-org" = "llm-metered"
"""


@dataclass
class Server:
    base_url: str  # ends in /v1, as the SDK expects
    root_url: str
    env: dict
    config_path: Path
    tmp: Path
    # `memsy serve` and how it was started, for a test that stops it (to run
    # a command that needs the embedded store to itself) and starts it again.
    process: subprocess.Popen | None = None
    serve_args: list[str] | None = None

    @property
    def control_url(self) -> str:
        return f"{self.root_url}/api"

    def create_key(self, org: str, scopes: str = "read,write", name: str = "e2e") -> str:
        out = subprocess.run(
            [memsy_bin(), "--config", str(self.config_path), "keys", "create", "--org", org, "--scopes", scopes, "--name", name],
            env=self.env, check=True, capture_output=True, text=True, timeout=30,
        )
        lines = out.stdout.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("msy_"), out.stdout
        return lines[0]


def start_memsy(args: list[str], env: dict, log_path: Path, timeout: float = 60) -> subprocess.Popen:
    """Starts `memsy <args>` (an HTTP server: `--http-addr` among the args)
    with its output in `log_path`; returns it once its /livez answers. When it
    exits or does not answer in time, it is stopped and the log's tail raised."""
    addr = args[args.index("--http-addr") + 1]
    with open(log_path, "w") as log:
        proc = subprocess.Popen([memsy_bin(), *args], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(f"http://{addr}/livez", timeout=1)
            return proc
        except Exception:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"memsy {' '.join(args)} did not start:\n" + log_path.read_text()[-4000:])
            time.sleep(0.1)


def stop_all(procs) -> None:
    """Stops each process in turn, killing one that does not exit in 15 s."""
    for p in procs:
        p.terminate()
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()


@contextlib.contextmanager
def extra_gateways(server, n: int, name: str):
    """`n` more `memsy gateway` processes on `server`'s NATS and Redis
    (logs and data dirs `<name><i>` in its temporary directory); yields
    their root URLs. No Qdrant server exists here: the gateways start
    without one (the control plane and authentication need none) and
    report it in /readyz."""
    procs, urls = [], []
    try:
        for i in range(n):
            addr = f"127.0.0.1:{_free_port()}"
            env = dict(server.env, QDRANT_URL=f"http://127.0.0.1:{_free_port()}")
            args = ["--config", str(server.config_path), "gateway", "--http-addr", addr,
                    "--data-dir", str(server.tmp / f"{name}{i}")]
            procs.append(start_memsy(args, env, server.tmp / f"{name}{i}.log"))
            urls.append(f"http://{addr}")
        yield urls
    finally:
        stop_all(procs)


@contextlib.contextmanager
def memsy_stack(extra_env: dict | None = None):
    """nats-server, redis-server and `memsy serve`, each on a free port in a
    temporary directory of its own; yields the Server and stops them all."""
    tmp = Path(tempfile.mkdtemp(prefix="memsy-e2e-"))
    procs: list[subprocess.Popen] = []
    server = None
    try:
        nats_port, redis_port, http_port = _free_port(), _free_port(), _free_port()
        nats = subprocess.Popen(
            [_binary("nats-server", "/usr/sbin/nats-server"), "-a", "127.0.0.1", "-p", str(nats_port), "-js", "-sd", str(tmp / "nats")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        procs.append(nats)
        redis = subprocess.Popen(
            [_binary("redis-server"), "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "", "--appendonly", "no", "--dir", str(tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        procs.append(redis)
        _wait_port(nats_port, nats, "nats-server")
        _wait_port(redis_port, redis, "redis-server")
        env = dict(os.environ)
        env.update({
            "MEMSY__NATS__URL": f"nats://127.0.0.1:{nats_port}",
            "MEMSY__REDIS__URL": f"redis://127.0.0.1:{redis_port}",
            "MEMSY__EMBEDDER__MODEL_DIR": os.environ.get("MEMSY__EMBEDDER__MODEL_DIR", str(ROOT / "models" / "all-minilm-l6-v2")),
            "RUST_LOG": os.environ.get("RUST_LOG", "info,qdrant_edge=warn"),
        })
        env.pop("QDRANT_URL", None)
        env.update(extra_env or {})
        config_path = tmp / "memsy.toml"
        config_path.write_text(TEST_CONFIG)
        serve_args = ["--config", str(config_path), "serve", "--http-addr", f"127.0.0.1:{http_port}",
                      "--data-dir", str(tmp / "data")]
        procs.append(start_memsy(serve_args, env, tmp / "memsy.log"))
        server = Server(
            base_url=f"http://127.0.0.1:{http_port}/v1", root_url=f"http://127.0.0.1:{http_port}", env=env,
            config_path=config_path, tmp=tmp, process=procs[-1], serve_args=serve_args,
        )
        yield server
    finally:
        # A test may have started `memsy serve` again.
        if server is not None and server.process not in procs:
            procs.append(server.process)
        stop_all(reversed(procs))
        if os.environ.get("MEMSY_E2E_KEEP"):
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def qdrant_server():
    """A Qdrant server for `memsy_stack(extra_env=...)`: QDRANT_URL when set
    (a running one), else QDRANT_BIN started on free ports with storage of
    its own; yields the environment that points memsy at it (a collection
    prefix of its own), or None without either."""
    prefix = {"MEMSY__QDRANT__COLLECTION_PREFIX": f"e2e_{os.getpid()}_{int(time.time())}_"}
    if os.environ.get("QDRANT_URL"):
        yield {"QDRANT_URL": os.environ["QDRANT_URL"], **prefix}
        return
    if not os.environ.get("QDRANT_BIN"):
        yield None
        return
    tmp = Path(tempfile.mkdtemp(prefix="memsy-e2e-qdrant-"))
    http_port, grpc_port = _free_port(), _free_port()
    env = dict(os.environ, QDRANT__SERVICE__HOST="127.0.0.1", QDRANT__SERVICE__HTTP_PORT=str(http_port),
               QDRANT__SERVICE__GRPC_PORT=str(grpc_port), QDRANT__STORAGE__STORAGE_PATH=str(tmp / "storage"),
               QDRANT__STORAGE__SNAPSHOTS_PATH=str(tmp / "snapshots"), QDRANT__TELEMETRY_DISABLED="true",
               QDRANT__LOG_LEVEL="WARN")
    with open(tmp / "qdrant.log", "w") as log:
        proc = subprocess.Popen([os.environ["QDRANT_BIN"]], cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_port(http_port, proc, "qdrant", timeout=60)
        yield {"QDRANT_URL": f"http://127.0.0.1:{grpc_port}", **prefix}
    finally:
        stop_all([proc])
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def server():
    with memsy_stack() as s:
        yield s
