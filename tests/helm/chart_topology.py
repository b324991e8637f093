"""The chart's processes, runnable on one machine: renders helm/memsy with a
"local" values file (tests/helm/values/local.yaml: every listener and every
service address on 127.0.0.1, on ports the values choose) and answers, for
each Deployment, the container's command, args and environment, so that a
test can start exactly what the chart deploys.

    import chart_topology as ct
    values = ct.local_values(nats_url=..., redis_url=..., qdrant_url=..., ports=ct.free_ports())
    for name, proc in ct.processes(values).items():      # in start order
        argv = proc.argv(memsy_bin, workdir / name)      # the binary, a local config file and data dir
        env = {**os.environ, **proc.env}
        subprocess.Popen(argv, env=env)

What is made local, and nothing else: the container's `memsy` becomes the
given binary, the ConfigMap's memsy.toml is written under the process's
work directory and `--config` points at it, `--data-dir` points at that
directory too, and environment entries read from the chart's own Secrets
are resolved (a Secret the chart does not render, such as an existingSecret,
cannot be read here and raises unless the entry is optional). A second
replica of a component on the same machine needs ports of its own: render
again with other ports (processes() is cheap), or override `--http-addr`
with argv(http_addr=...) and its gRPC address in `env`.
"""

from __future__ import annotations

import base64
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from helm_render import COMPONENTS, by_kind, deep_merge, load_values, render_objects

# The order a topology starts in: the status service before its clients,
# the embedder (query embeddings) before the gateway.
START_ORDER = ("status", "embedder", "extractor", "indexer", "gateway")
# Keys of local_values()'s `ports` argument, per component.
PORT_NAMES = {"gateway": ("http",), "extractor": ("http",), "embedder": ("http", "grpc"),
              "indexer": ("http",), "status": ("http", "grpc")}


@dataclass(frozen=True)
class ChartProcess:
    """One Deployment's container as the chart renders it."""

    component: str
    command: list[str]
    args: list[str]
    # Environment entries in the chart's order, secrets resolved.
    env: dict[str, str]
    # memsy.toml as the ConfigMap holds it, and where the pod mounts it.
    config_toml: str
    config_path: str
    replicas: int | None
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def http_addr(self) -> str:
        return self.args[self.args.index("--http-addr") + 1]

    def argv(self, memsy_bin: str | Path, workdir: Path, *, http_addr: str | None = None) -> list[str]:
        """The command line to run here: `memsy` → memsy_bin, the config file
        written to workdir/memsy.toml, the data directory workdir/data, and
        optionally another --http-addr."""
        if self.command != ["memsy"]:
            raise ValueError(f"{self.component}: unexpected container command {self.command}")
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "memsy.toml"
        config.write_text(self.config_toml)
        args = list(self.args)
        for flag, value in (("--config", str(config)), ("--data-dir", str(workdir / "data")),
                            ("--http-addr", http_addr)):
            if value is None:
                continue
            i = args.index(flag)
            args[i + 1] = value
        return [str(memsy_bin), *args]


def free_ports() -> dict[str, dict[str, int]]:
    """A free port for every listener of PORT_NAMES."""
    out = {}
    for component, names in PORT_NAMES.items():
        out[component] = {}
        for name in names:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                out[component][name] = s.getsockname()[1]
    return out


def local_values(*, nats_url: str, redis_url: str, qdrant_url: str,
                 ports: dict[str, dict[str, int]] | None = None, extra: dict | None = None) -> dict:
    """Values over local.yaml: where NATS, Redis and Qdrant run, the ports of
    every listener (PORT_NAMES layout; the gRPC clients' URLs follow them),
    then `extra` (any chart values, e.g. {"config": {...}} or
    {"embedder": {"modelDir": ...}})."""
    values = {
        "externalNats": {"url": nats_url},
        "externalRedis": {"url": redis_url},
        "externalQdrant": {"url": qdrant_url},
    }
    for component, p in (ports or {}).items():
        values[component] = {"ports": dict(p)}
        if "grpc" in p:
            values[component]["grpc"] = {"url": f"http://127.0.0.1:{p['grpc']}"}
    return deep_merge(values, extra or {})


_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def _expand(value: str, env: dict[str, str]) -> str:
    # Kubernetes expands $(VAR) of entries defined earlier; $$ escapes.
    return _REF.sub(lambda m: env.get(m.group(1), m.group(0)), value).replace("$$", "$")


def _resolve_env(entries: list[dict], secrets: dict[str, dict], component: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for e in entries:
        name = e["name"]
        if "value" in e:
            env[name] = _expand(str(e["value"]), env)
            continue
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref is None:
            raise ValueError(f"{component}: {name} comes from {e.get('valueFrom')}, which cannot be resolved locally")
        secret = secrets.get(ref["name"])
        if secret is not None and ref["key"] in secret.get("data", {}):
            env[name] = base64.b64decode(secret["data"][ref["key"]]).decode()
        elif not ref.get("optional"):
            raise ValueError(f"{component}: {name} needs key {ref['key']} of Secret {ref['name']}, "
                             "which this render does not contain")
    return env


def processes(values: dict | None = None, *, base: str = "local", release: str = "memsy") -> dict[str, ChartProcess]:
    """component → its process, in START_ORDER, rendered from the `base`
    values file with `values` on top."""
    merged = deep_merge(load_values(base), values or {})
    objects = render_objects(merged, release=release)
    secrets = by_kind(objects, "Secret")
    config_maps = by_kind(objects, "ConfigMap")
    found: dict[str, ChartProcess] = {}
    for d in objects:
        if d["kind"] != "Deployment":
            continue
        component = d["metadata"]["labels"]["app.kubernetes.io/component"]
        pod = d["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
        volume = next(v for v in pod["volumes"] if v["name"] == "config")
        config_map = config_maps[volume["configMap"]["name"]]
        config_path = container["args"][container["args"].index("--config") + 1]
        if not config_path.startswith(mount["mountPath"] + "/"):
            raise ValueError(f"{component}: --config {config_path} is not on the config volume")
        key = config_path[len(mount["mountPath"]) + 1:]
        found[component] = ChartProcess(
            component=component,
            command=list(container["command"]),
            args=[str(a) for a in container["args"]],
            env=_resolve_env(container.get("env", []), secrets, component),
            config_toml=config_map["data"][key],
            config_path=config_path,
            replicas=d["spec"].get("replicas"),
            ports={p["name"]: p["containerPort"] for p in container.get("ports", [])},
        )
    missing = set(COMPONENTS) - set(found)
    if missing:
        raise ValueError(f"the chart rendered no Deployment for {sorted(missing)}")
    return {c: found[c] for c in START_ORDER}
