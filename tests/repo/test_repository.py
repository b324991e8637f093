"""Checks on the repository itself: it must work from any clone on any
machine, so no tracked file may name a path of one machine (a home or work
directory, a build cache). Paths inside the container image (/usr/local/bin,
/var/lib/memsy) and system paths (/proc, /dev/null, /usr/bin/env) are fine."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Directories that only exist on one machine: users' homes, the root
# account's home, and work or build directories outside the clone.
MACHINE_PATH = re.compile(r"(?<![\w.$-])(/work/|/root/|/home/[A-Za-z0-9_.-]+/|/Users/[A-Za-z0-9_.-]+/|/mnt/[a-z]/)")


def tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    files = []
    for name in out.decode().split("\0"):
        if not name:
            continue
        path = ROOT / name
        try:
            text = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            continue
        if b"\0" in text[:8192]:
            continue  # binary
        files.append(path)
    return files


def test_no_machine_paths_in_tracked_files():
    offenders = []
    for path in tracked_text_files():
        if path == Path(__file__).resolve():
            continue  # the rule itself
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if MACHINE_PATH.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:120]}")
    assert not offenders, "machine-specific paths:\n" + "\n".join(offenders)


def test_the_rule_catches_machine_paths_and_spares_others():
    assert MACHINE_PATH.search("export CARGO_TARGET_DIR=/work/cargo-target")
    assert MACHINE_PATH.search("cp /root/.cache/x .")
    assert MACHINE_PATH.search('"/home/alice/src/memsy"')
    for fine in ["#!/usr/bin/env bash", "/proc/self/stat", "> /dev/null", "COPY memsy /usr/local/bin/memsy",
                 "WORKDIR /var/lib/memsy", "https://example.org/work/x", "$HOME/.cache", "tests/work/x"]:
        assert not MACHINE_PATH.search(fine), fine


def documented_metrics() -> set[str]:
    """The metric names of the README's table (Observability)."""
    readme = (ROOT / "README.md").read_text()
    return set(re.findall(r"^\| `(memsy_[a-z_]+)` \|", readme, re.M))


def test_dashboard_and_alerts_use_only_documented_metrics():
    documented = documented_metrics()
    assert len(documented) >= 14, documented
    # Histograms are queried by their series (_bucket, _sum, _count).
    used = {re.sub(r"_(bucket|sum|count)$", "", m)
            for path in ("deploy/grafana-dashboard.json", "helm/memsy/values.yaml",
                         "helm/memsy/templates/prometheusrule.yaml")
            for m in re.findall(r"\bmemsy_[a-z_]+", (ROOT / path).read_text())}
    assert used, "no memsy metric in the dashboard or the alerts"
    assert used <= documented, f"undocumented metrics: {sorted(used - documented)}"
    # And every documented family is in the code's list of names.
    code = (ROOT / "services" / "memsy-core" / "src" / "metrics.rs").read_text()
    assert all(f'"{m}"' in code for m in documented), sorted(m for m in documented if f'"{m}"' not in code)
