"""The chart rendered offline by Helm's own library (PyPI helm-python-sdk,
Helm v4 behind a C ABI): values files, deep merging, and the rendered
manifests as Kubernetes objects. Shared by the chart tests and by
chart_topology."""

from __future__ import annotations

import copy
from pathlib import Path

import helm_python
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "helm" / "memsy"
VALUES_DIR = Path(__file__).resolve().parent / "values"
# The values files the tests render besides the defaults; local.yaml is
# chart_topology's (every address on 127.0.0.1).
VALUES_FILES = ("minimal", "production", "external-secrets", "local")
RELEASE = "memsy"
NAMESPACE = "memsy"
COMPONENTS = ("gateway", "extractor", "embedder", "indexer", "status")

_chart: helm_python.Chart | None = None


def chart() -> helm_python.Chart:
    """The chart, loaded once per process."""
    global _chart
    if _chart is None:
        _chart = helm_python.Chart.load(CHART_DIR)
    return _chart


def load_values(name: str) -> dict:
    """A values file of tests/helm/values by its stem."""
    return yaml.safe_load((VALUES_DIR / f"{name}.yaml").read_text()) or {}


def deep_merge(base: dict, over: dict) -> dict:
    """`over` on top of `base`, maps merged key by key (as Helm merges -f files)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def render_manifests(values: dict | None = None, *, release: str = RELEASE, namespace: str = NAMESPACE,
                     is_install: bool = True) -> dict[str, str]:
    """Template path → rendered text, as `helm template` would print it."""
    return chart().render(values=values or {}, name=release, namespace=namespace, is_install=is_install)


def render_objects(values: dict | None = None, **kw) -> list[dict]:
    """Every rendered object (NOTES.txt left out), each with the template it
    came from under the key `__template__`."""
    objects = []
    for path, text in sorted(render_manifests(values, **kw).items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["__template__"] = path
                objects.append(doc)
    return objects


def strip(obj: dict) -> dict:
    """The object without the bookkeeping key render_objects adds."""
    return {k: v for k, v in obj.items() if k != "__template__"}


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    """name → object, for one kind."""
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def component_of(obj: dict) -> str | None:
    return obj.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component")


def deployments(objects: list[dict]) -> dict[str, dict]:
    """component → its Deployment."""
    return {component_of(o): o for o in objects if o["kind"] == "Deployment"}
