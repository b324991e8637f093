"""`helm lint --strict` through Helm's own library, with the default values
and with every values file of tests/helm/values.

The optional subcharts (NATS, Redis, Qdrant) are Chart.yaml dependencies,
off by default and not vendored: `helm dependency build` fetches them from
their repositories. Without them Helm's lint reports one finding, that the
chart directory lacks them; the first test pins that this is the only
finding and names exactly those three, and the others lint a copy of the
chart without the dependency list, where nothing at all may be reported."""

from __future__ import annotations

import shutil

import helm_python
import pytest
import yaml

from helm_render import CHART_DIR, VALUES_FILES, load_values

INFO, WARNING, ERROR = 1, 2, 3
# Helm's lint recommends an icon URL; memsy publishes none.
ACCEPTED_INFO = {"icon is recommended"}


def findings(report: dict) -> list[str]:
    return [f"{m['severity']} {m['path']}: {m['error']}" for m in report["messages"]
            if m["severity"] > INFO or m["error"] not in ACCEPTED_INFO]


@pytest.fixture(scope="module")
def chart_without_dependencies(tmp_path_factory):
    """A copy of the chart whose Chart.yaml declares no subcharts."""
    copy = tmp_path_factory.mktemp("chart") / "memsy"
    shutil.copytree(CHART_DIR, copy)
    meta = yaml.safe_load((copy / "Chart.yaml").read_text())
    assert {d["name"] for d in meta.pop("dependencies")} == {"nats", "redis", "qdrant"}
    (copy / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return copy


def test_the_only_finding_on_the_chart_is_the_unfetched_optional_subcharts():
    report = helm_python.lint(CHART_DIR, strict=True)
    assert report["total_charts_linted"] == 1
    assert findings(report) == [
        f"{WARNING} {CHART_DIR}: chart directory is missing these dependencies: nats,redis,qdrant"
    ]
    meta = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    # Each is off unless asked for, so an install without them is whole.
    assert {d["name"]: d["condition"] for d in meta["dependencies"]} == {
        "nats": "nats.enabled", "redis": "redis.enabled", "qdrant": "qdrant.enabled"}
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert not any(defaults[n]["enabled"] for n in ("nats", "redis", "qdrant"))
    status = {d["name"]: d["status"] for d in helm_python.dependency_list(CHART_DIR)}
    assert status == {"nats": "missing", "redis": "missing", "qdrant": "missing"}


@pytest.mark.parametrize("values_file", [None, *VALUES_FILES])
def test_lint_strict_finds_nothing(chart_without_dependencies, values_file):
    values = load_values(values_file) if values_file else None
    for kube in ("v1.30.0", "v1.37.0"):
        report = helm_python.lint(chart_without_dependencies, values, strict=True, kube_version=kube)
        assert findings(report) == [], (values_file, kube)
        assert report["errors"] == [], (values_file, kube)


def test_lint_reports_bad_values(chart_without_dependencies):
    # The linter does read the values it is given: a negative replica count
    # is an error (the schema's).
    report = helm_python.lint(chart_without_dependencies, {"indexer": {"replicas": -1}}, strict=True)
    assert any("/indexer/replicas" in m["error"] and m["severity"] == ERROR for m in report["messages"]), report
