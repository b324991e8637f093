"""The container image's recipe, exercised where there is no container engine.

deploy/build-image.sh is run as the Dockerfile's build stages run it, into a
temporary directory that stands for the image's root. memsy is then started
from there as the image starts it: the Dockerfile's ENTRYPOINT, CMD, WORKDIR
and ENV, every absolute image path moved under that root, and no environment
from the checkout (so the model, the ONNX graphs and ONNX Runtime must be
the image's own). `memsy serve` with its default embedder takes an event from
ingest to search; `memsy embedder` becomes ready; and every service of
deploy/compose.yaml starts with the compose file's environment and passes
its own health check (that part needs a Qdrant server: QDRANT_BIN or
QDRANT_URL). NATS and Redis are the test's own, on free ports.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from conftest import _binary, _free_port, _wait_port, start_memsy, stop_all  # noqa: E402

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
COMPOSE = ROOT / "deploy" / "compose.yaml"
MEMSY_SERVICES = ("status", "embedder", "extractor", "indexer", "gateway")
QDRANT_SKIP = "the compose services test needs QDRANT_BIN (a qdrant binary to start) or QDRANT_URL (a running server)"


# --- the Dockerfile, read as the recipe it is ---------------------------------------------------------

@dataclass
class Stage:
    name: str
    instructions: list[tuple[str, str]]  # (INSTRUCTION, arguments)

    def args(self, instruction: str) -> list[str]:
        return [a for i, a in self.instructions if i == instruction]


def dockerfile_stages() -> list[Stage]:
    lines, buf = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        lines.append(buf + line)
        buf = ""
    stages: list[Stage] = []
    for line in lines:
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            m = re.search(r"\bAS\s+(\S+)", rest, re.I)
            stages.append(Stage(m.group(1) if m else "", []))
        stages[-1].instructions.append((instruction, rest.strip()))
    return stages


@dataclass
class Image:
    """The runtime stage's settings, with image paths under `root`."""

    root: Path
    env: dict[str, str]
    entrypoint: list[str]
    cmd: list[str]
    workdir: Path
    user: str

    def path(self, image_path: str) -> Path:
        assert image_path.startswith("/"), image_path
        return self.root / image_path.lstrip("/")

    def environment(self, extra: dict[str, str]) -> dict[str, str]:
        """What a container's process sees: the image's ENV and `extra`,
        plus PATH and HOME; nothing else from this machine's environment."""
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.workdir), **self.env, **extra}


def runtime_image(root: Path) -> Image:
    runtime = dockerfile_stages()[-1]
    env: dict[str, str] = {}
    for line in runtime.args("ENV"):
        for pair in shlex.split(line):
            k, _, v = pair.partition("=")
            env[k] = str(root / v.lstrip("/")) if v.startswith("/") else v
    entrypoint = json.loads(runtime.args("ENTRYPOINT")[-1])
    return Image(
        root=root,
        env=env,
        entrypoint=[str(root / entrypoint[0].lstrip("/")), *entrypoint[1:]],
        cmd=json.loads(runtime.args("CMD")[-1]),
        workdir=root / runtime.args("WORKDIR")[-1].lstrip("/"),
        user=runtime.args("USER")[-1],
    )


@pytest.fixture(scope="module")
def image():
    """The image's root, laid out by the build stages' own invocations of
    deploy/build-image.sh (each stage's `/image` becomes the temporary root)."""
    tmp = Path(tempfile.mkdtemp(prefix="memsy-image-"))
    root = tmp / "root"
    try:
        runs = [run for stage in dockerfile_stages()[:-1] for run in stage.args("RUN") if "deploy/build-image.sh" in run]
        assert runs, "the Dockerfile's build stages run deploy/build-image.sh"
        for run in runs:
            argv = shlex.split(run[run.index("deploy/build-image.sh"):])
            argv = [str(root) if a == "/image" else a for a in argv]
            subprocess.run(argv, cwd=ROOT, check=True, timeout=3600)
        img = runtime_image(root)
        # The runtime stage makes the working directory (owned by the image's user).
        img.workdir.mkdir(parents=True, exist_ok=True)
        yield img
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- running processes from the image ----------------------------------------------------------------

@pytest.fixture
def from_image(image, monkeypatch):
    """Processes started by start_memsy run the image's binary in its working directory."""
    monkeypatch.setenv("MEMSY_BIN", image.entrypoint[0])
    monkeypatch.chdir(image.workdir)
    return image


def rerooted(image: Image, args: list[str], http_addr: str) -> list[str]:
    """A command line of the image with its HTTP address on this machine and
    its absolute paths under the image's root."""
    out = list(args)
    out[out.index("--http-addr") + 1] = http_addr
    return [str(image.path(a)) if a.startswith("/") else a for a in out]


def memsy(image: Image, env: dict, *args: str) -> str:
    out = subprocess.run([*image.entrypoint, *args], env=env, cwd=image.workdir, check=True, capture_output=True,
                         text=True, timeout=60)
    return out.stdout


def mapped_libraries(pid: int) -> set[str]:
    """The ONNX Runtime libraries the process has loaded."""
    paths = {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()}
    return {p for p in paths if re.search(r"/libonnxruntime[^/]*\.so", p)}


def wait_for(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"{what} not within {timeout} s"
        time.sleep(0.2)


def run_probe(test: list[str], port_map: dict[int, int], redis_port: int | None = None) -> int:
    """Runs a compose health check here, its container ports replaced by
    this machine's; returns its exit code."""
    kind, *rest = test
    def local(s: str) -> str:
        for container, here in port_map.items():
            s = s.replace(f"127.0.0.1/{container}", f"127.0.0.1/{here}").replace(f"127.0.0.1:{container}/",
                                                                               f"127.0.0.1:{here}/")
        if redis_port is not None:
            s = s.replace("redis-cli", f"redis-cli -p {redis_port}")
        return s
    if kind == "CMD-SHELL":
        argv = ["sh", "-c", local(rest[0])]
    else:
        assert kind == "CMD", test
        argv = [local(a) for a in rest]
    return subprocess.run(argv, capture_output=True, timeout=10).returncode


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def interpolated(value: str, shell: dict[str, str]) -> str:
    """A compose value with `${VAR:-default}` and `${VAR}` filled in from
    `shell` as `docker compose` fills them from the caller's environment."""
    def fill(m: re.Match) -> str:
        return shell.get(m.group(1)) or (m.group(3) or "")
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}", fill, value)


def nats_and_redis(image: Image, tmp: Path) -> tuple[subprocess.Popen, subprocess.Popen, dict]:
    """A nats-server (JetStream) and a redis-server of this test's own, and
    the image's environment pointed at them."""
    nats_port, redis_port = _free_port(), _free_port()
    nats = subprocess.Popen([_binary("nats-server", "/usr/sbin/nats-server"), "-a", "127.0.0.1", "-p", str(nats_port),
                             "-js", "-sd", str(tmp / "nats")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    redis = subprocess.Popen([_binary("redis-server"), "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
                              "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(nats_port, nats, "nats-server")
        _wait_port(redis_port, redis, "redis-server")
    except Exception:
        stop_all([redis, nats])
        raise
    env = image.environment({"MEMSY__NATS__URL": f"nats://127.0.0.1:{nats_port}",
                             "MEMSY__REDIS__URL": f"redis://127.0.0.1:{redis_port}"})
    return nats, redis, env


def ingest_to_search(base_url: str, key: str) -> None:
    from memsy import EventPayload, MemsyClient

    client = MemsyClient(base_url=base_url, api_key=key)
    actor = f"image-{uuid.uuid4().hex[:8]}"
    r = client.ingest([EventPayload(actor_id=actor, session_id="s1", kind="user_message",
                                    content="My favourite instrument is the cello.")])
    assert len(r.event_ids) == 1
    wait_for(lambda: client.status(r.event_ids).completed_ids == r.event_ids, 60, "the event completed")
    hits = client.search("which instrument do I like", actor_id=actor).results
    assert hits and "cello" in hits[0].content, hits


# --- the tests ---------------------------------------------------------------------------------------

def test_the_image_holds_binary_model_graphs_and_onnx_runtime(image):
    assert os.access(image.entrypoint[0], os.X_OK)
    assert image.user.split(":")[0] == "10001", "the image runs as a non-root user"
    assert image.cmd[0] == "serve"
    model = Path(image.env["MEMSY__EMBEDDER__MODEL_DIR"])
    for f in ("tokenizer.json", "config.json", "model.safetensors", "onnx/model_int8.onnx", "onnx/model.onnx"):
        assert (model / f).is_file(), f"{f} in the image's model directory"
    lib = Path(image.env["MEMSY__EMBEDDER__ONNXRUNTIME_PATH"])
    assert lib.is_file() and lib.open("rb").read(4) == b"\x7fELF", "the Dockerfile names the library the recipe lays out"
    assert image.root in lib.parents and image.root in model.parents
    assert "MEMSY__EMBEDDER__ENGINE" not in image.env, "the image runs the default engine (onnx)"


def test_default_command_takes_an_event_from_ingest_to_search(from_image):
    image = from_image
    tmp = Path(tempfile.mkdtemp(prefix="memsy-image-serve-"))
    procs = []
    try:
        nats, redis, env = nats_and_redis(image, tmp)
        procs += [nats, redis]

        http = f"127.0.0.1:{_free_port()}"
        serve = start_memsy(rerooted(image, image.cmd, http), env, tmp / "serve.log")
        procs.append(serve)
        wait_for(lambda: mapped_libraries(serve.pid), 60, "ONNX Runtime loaded")
        assert mapped_libraries(serve.pid) == {image.env["MEMSY__EMBEDDER__ONNXRUNTIME_PATH"]}
        key = memsy(image, env, "keys", "create", "--org", "image", "--scopes", "read,write").strip()
        assert key.startswith("msy_")
        ingest_to_search(f"http://{http}/v1", key)

        ops = _free_port()
        embedder_env = dict(env, MEMSY__EMBEDDER__GRPC_ADDR=f"127.0.0.1:{_free_port()}",
                            MEMSY__STATUS__URL=f"http://127.0.0.1:{_free_port()}")
        embedder = start_memsy(["embedder", "--http-addr", f"127.0.0.1:{ops}"], embedder_env, tmp / "embedder.log")
        procs.append(embedder)
        probe = compose()["services"]["embedder"]["healthcheck"]["test"]
        wait_for(lambda: run_probe(probe, {8080: ops}) == 0, 120, "the embedder's compose health check passing")
        assert mapped_libraries(embedder.pid) == {image.env["MEMSY__EMBEDDER__ONNXRUNTIME_PATH"]}
    finally:
        stop_all(reversed(procs))
        shutil.rmtree(tmp, ignore_errors=True)


def test_every_compose_service_starts_from_the_image_and_passes_its_health_check(from_image):
    if not (os.environ.get("QDRANT_BIN") or os.environ.get("QDRANT_URL")):
        pytest.skip(QDRANT_SKIP)
    sys.path.insert(0, str(ROOT / "tests" / "topology"))
    import stack

    image = from_image
    services = compose()["services"]
    tmp = Path(tempfile.mkdtemp(prefix="memsy-image-compose-"))
    infra, procs = None, []
    try:
        infra = stack.start_infra(tmp)
        status_grpc, embedder_grpc = _free_port(), _free_port()
        # The compose network's addresses, as this machine has them.
        addresses = {
            "nats://nats:4222": f"nats://127.0.0.1:{infra.nats.port}",
            "redis://redis:6379": f"redis://127.0.0.1:{infra.redis.port}",
            "http://qdrant:6334": infra.qdrant_url,
            "http://status:50051": f"http://127.0.0.1:{status_grpc}",
            "0.0.0.0:50051": f"127.0.0.1:{status_grpc}",
            "http://embedder:50052": f"http://127.0.0.1:{embedder_grpc}",
            "0.0.0.0:50052": f"127.0.0.1:{embedder_grpc}",
        }
        envs, ops = {}, {}
        # Collections of this run's own on a shared server.
        prefix = f"image_{uuid.uuid4().hex[:8]}_"
        for name in MEMSY_SERVICES:
            env = {}
            for k, v in services[name]["environment"].items():
                v = addresses.get(str(v), interpolated(str(v), {}))
                assert not re.search(r"//(nats|redis|qdrant|status|embedder|gateway)[:/]", v), \
                    f"{name}: {k}={v} names a service at an address it does not listen on"
                env[k] = v
            env["MEMSY__QDRANT__COLLECTION_PREFIX"] = prefix
            envs[name] = image.environment(env)
            ops[name] = _free_port()
            assert services[name]["command"][0] == name
            procs.append(start_memsy(rerooted(image, services[name]["command"], f"127.0.0.1:{ops[name]}"), envs[name],
                                     tmp / f"{name}.log"))
        for name in MEMSY_SERVICES:
            probe = services[name]["healthcheck"]["test"]
            wait_for(lambda: run_probe(probe, {8080: ops[name]}) == 0, 120, f"{name}'s compose health check passing")

        # The dependencies' own health checks, against the same servers.
        assert run_probe(services["nats"]["healthcheck"]["test"], {8222: infra.nats_monitor}) == 0
        assert run_probe(services["redis"]["healthcheck"]["test"], {}, redis_port=infra.redis.port) == 0
        if infra.qdrant:
            assert run_probe(services["qdrant"]["healthcheck"]["test"], {6333: infra.qdrant.port}) == 0

        # As the compose file's header says: a key from the gateway's container, then the SDK.
        key = memsy(image, envs["gateway"], "keys", "create", "--org", "image", "--scopes", "read,write").strip()
        ingest_to_search(f"http://127.0.0.1:{ops['gateway']}/v1", key)
    finally:
        stop_all(reversed(procs))
        if infra:
            infra.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_the_compose_health_check_fails_when_a_service_is_not_ready(from_image):
    """The probe reads the status code, not just the port: `memsy status`
    passes it while Redis answers and fails it once Redis is gone."""
    image = from_image
    tmp = Path(tempfile.mkdtemp(prefix="memsy-image-probe-"))
    procs = []
    try:
        nats, redis, env = nats_and_redis(image, tmp)
        procs += [nats, redis]
        ops = _free_port()
        env["MEMSY__STATUS__GRPC_ADDR"] = f"127.0.0.1:{_free_port()}"
        procs.append(start_memsy(["status", "--http-addr", f"127.0.0.1:{ops}"], env, tmp / "status.log"))
        probe = compose()["services"]["status"]["healthcheck"]["test"]
        wait_for(lambda: run_probe(probe, {8080: ops}) == 0, 30, "the status service's health check passing")
        redis.kill()
        redis.wait()
        wait_for(lambda: run_probe(probe, {8080: ops}) != 0, 30, "the status service's health check failing")
    finally:
        stop_all(reversed(procs))
        shutil.rmtree(tmp, ignore_errors=True)


def test_compose_file_pins_persists_and_checks_every_service():
    doc = compose()
    services = doc["services"]
    assert set(MEMSY_SERVICES) | {"nats", "redis", "qdrant"} == set(services)
    for name, s in services.items():
        assert s.get("healthcheck", {}).get("test"), f"{name} has a health check"
    for name in MEMSY_SERVICES:
        s = services[name]
        assert s["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}, name
        assert s["command"][:2] == [name, "--http-addr"] and s["command"][2].endswith(":8080"), name
        assert "/readyz" in " ".join(s["healthcheck"]["test"]), f"{name} is healthy when ready"
        for dep in ("nats", "redis", "qdrant"):
            assert s["depends_on"][dep]["condition"] == "service_healthy", f"{name} waits for {dep}"
    # Pinned images; NATS the version the tests run (scripts/setup.sh), at least 2.15.
    for name in ("nats", "redis", "qdrant"):
        repo, _, tag = services[name]["image"].rpartition(":")
        assert repo and re.match(r"v?\d+\.\d+\.\d+", tag), f"{name} is pinned to a release: {services[name]['image']}"
    nats_tag = services["nats"]["image"].rpartition(":")[2]
    tested = re.search(r"^nats_version=(\S+)$", (ROOT / "scripts" / "setup.sh").read_text(), re.M).group(1)
    assert nats_tag.split("-")[0] == tested
    assert tuple(map(int, tested.split(".")[:2])) >= (2, 15)
    # JetStream on, its store and Qdrant's and Redis's on named volumes; Redis with its append-only file.
    nats_cmd = services["nats"]["command"]
    assert "--jetstream" in nats_cmd and nats_cmd[nats_cmd.index("--store_dir") + 1] == "/data"
    volumes = {"nats": "/data", "redis": "/data", "qdrant": "/qdrant/storage"}
    for name, path in volumes.items():
        mounts = [v.split(":") for v in services[name]["volumes"]]
        assert any(m[1] == path and m[0] in doc["volumes"] for m in mounts), f"{name} keeps {path} on a named volume"
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    # Traces follow the caller's OTEL_ variables and are off without an endpoint.
    for name in MEMSY_SERVICES:
        env = services[name]["environment"]
        assert interpolated(env["OTEL_EXPORTER_OTLP_ENDPOINT"], {}) == "", name
        assert interpolated(env["OTEL_EXPORTER_OTLP_ENDPOINT"], {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}) \
            == "http://c:4317", name
        assert interpolated(env["OTEL_EXPORTER_OTLP_PROTOCOL"], {}) in ("grpc", "http/protobuf"), name


def test_compose_config_accepts_the_file():
    """`docker compose config` where a compose client is installed (it needs no daemon)."""
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for cmd in candidates:
        if subprocess.run([*cmd, "version"], capture_output=True).returncode == 0:
            out = subprocess.run([*cmd, "-f", str(COMPOSE), "config", "--quiet"], capture_output=True, text=True,
                                 cwd=ROOT)
            assert out.returncode == 0, out.stderr
            return
    pytest.skip("docker compose config not run: neither the docker compose plugin nor docker-compose is installed")


def test_build_context_and_model_stage_hold_what_the_recipe_needs():
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {"target", "models", "data", ".venv"} <= ignored
    # The model stage copies only some files in: every script the recipe's model part runs must be among them.
    stages = {s.name: s for s in dockerfile_stages()}
    copied = {src for line in stages["model"].args("COPY") for src in line.split()[:-1]}
    needed = {"deploy/build-image.sh"}
    for script in ("deploy/build-image.sh", "scripts/fetch-onnx.sh"):
        needed |= set(re.findall(r"\$root/(scripts/[\w.-]+)", (ROOT / script).read_text()))
    assert needed <= copied, f"the model stage lacks {needed - copied}"
    for src in copied:
        assert (ROOT / src).is_file(), src
