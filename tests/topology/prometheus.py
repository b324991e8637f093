"""A real Prometheus (Debian's `prometheus` package, which scripts/setup.sh
installs; or PROMETHEUS_BIN) scraping the topology's processes every second,
on a free port with its own storage, and its HTTP query API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import stack

SCRAPE_SECONDS = 1


def binary() -> str | None:
    return os.environ.get("PROMETHEUS_BIN") or shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)


class Prometheus:
    """`targets`: job name → host:port whose /metrics is scraped."""

    def __init__(self, targets: dict[str, str]):
        exe = binary()
        if not exe:
            raise RuntimeError("no prometheus binary: run scripts/setup.sh (Debian package prometheus) "
                               "or set PROMETHEUS_BIN")
        self.dir = Path(tempfile.mkdtemp(prefix="memsy-prometheus-"))
        scrape = [{"job_name": job, "static_configs": [{"targets": [addr], "labels": {"process": job}}]}
                  for job, addr in targets.items()]
        config = {"global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "scrape_timeout": f"{SCRAPE_SECONDS}s"},
                  "scrape_configs": scrape}
        # JSON is YAML.
        (self.dir / "prometheus.yml").write_text(json.dumps(config))
        self.port = stack._free_port()
        self.log = open(self.dir / "prometheus.log", "w")
        self.popen = subprocess.Popen(
            [exe, f"--config.file={self.dir / 'prometheus.yml'}", f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        stack.wait_until(lambda: stack.http_ok(f"{self.url}/-/ready"), 60, "prometheus ready")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _get(self, path: str, **params) -> dict:
        q = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{q}", timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """An instant vector: [{"metric": {...}, "value": [t, "v"]}, ...]."""
        return self._get("/api/v1/query", query=expr)["result"]

    def values(self, expr: str, by: str) -> dict[str, float]:
        """Each series' value, keyed by its label `by`."""
        return {r["metric"].get(by, ""): float(r["value"][1]) for r in self.query(expr)}

    def targets(self) -> list[dict]:
        return self._get("/api/v1/targets")["activeTargets"]

    def wait_all_up(self, timeout: float = 60) -> None:
        def up() -> bool:
            t = self.targets()
            return bool(t) and all(x["health"] == "up" for x in t)
        stack.wait_until(up, timeout, "every scrape target up", every=0.5)

    def stop(self) -> None:
        stack.stop_all([self.popen])
        self.log.close()
        if not os.environ.get("MEMSY_E2E_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)


def wait_for(prom: Prometheus, expr: str, pred, timeout: float, what: str):
    """Polls `expr` until `pred(result)`; returns the last result."""
    last = None
    end = time.monotonic() + timeout
    while True:
        last = prom.query(expr)
        if pred(last):
            return last
        if time.monotonic() > end:
            raise AssertionError(f"{what} not within {timeout} s: {expr} = {last}")
        time.sleep(0.5)
