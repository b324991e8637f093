"""The SDK's own end-to-end script (`scripts/e2e.py` from the memsy 0.3.5
source distribution) against `memsy serve`: with a key holding every scope
all steps of all groups (1–8) must pass; with a read-only key the
admin-gated control-plane steps must pass through the SDK's typed
AuthorizationError path and the read-only ones must pass as such."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ALL_GROUPS = {"1", "2", "3", "4", "6", "7", "8"}
ADMIN_GATED = {"8.03", "8.04", "8.05", "8.06", "8.07"}


def sdk_e2e_script() -> Path:
    d = Path(tempfile.mkdtemp(prefix="memsy-sdk-"))
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "memsy==0.3.5",
         "--no-deps", "--no-binary", ":all:", "-d", str(d)],
        check=True, timeout=300,
    )
    sdist = next(d.glob("memsy-0.3.5.tar.gz"))
    with tarfile.open(sdist) as t:
        member = t.getmember("memsy-0.3.5/scripts/e2e.py")
        (d / "e2e.py").write_bytes(t.extractfile(member).read())
    return d / "e2e.py"


def run_script(server, key: str) -> list[tuple[str, str, str]]:
    """Runs the script; returns (mark, "group.step", detail) per step."""
    env = dict(server.env, MEMSY_BASE_URL=server.base_url, MEMSY_API_KEY=key)
    out = subprocess.run([sys.executable, str(sdk_e2e_script())], env=env, capture_output=True, text=True, timeout=600)
    print(out.stdout)
    steps = [(mark, f"{g}.{n}", rest) for mark, g, n, rest in re.findall(r"^([✓✗]) (\d+)\.(\d+) (.*)$", out.stdout, re.M)]
    assert steps, f"no steps in the output:\n{out.stdout}\n{out.stderr}"
    return steps


def test_sdk_e2e_script_every_group_with_a_full_key(server):
    key = server.create_key("e2e-script", scopes="read,write,admin")
    steps = run_script(server, key)
    seen = {name.split(".")[0] for _, name, _ in steps}
    assert ALL_GROUPS <= seen, f"groups missing from the output: {ALL_GROUPS - seen}"
    failed = [f"{name} {rest}" for mark, name, rest in steps if mark == "✗"]
    assert not failed, "\n".join(failed)
    # Status right after the wait should show the pipeline finished.
    later = [rest for _, name, rest in steps if name == "3.02"]
    assert later and re.search(r"completed=(\d+)/(\d+)", later[0]), later
    done, total = map(int, re.search(r"completed=(\d+)/(\d+)", later[0]).groups())
    assert done == total, later[0]
    # With admin scope the admin-gated steps really ran (no 403 shortcut).
    for _, name, rest in steps:
        if name in {"8.03", "8.04", "8.05"}:
            assert "AuthorizationError" not in rest, (name, rest)
        if name in {"8.06", "8.07"}:
            # The script lists roles/teams of an org that is not the key's.
            assert "MemsyAPIError 404" in rest, (name, rest)
    actor = [rest for _, name, rest in steps if name == "8.11"][0]
    assert "memory_count=" in actor, actor
    q = [rest for _, name, rest in steps if name == "8.12"][0]
    assert "both run actors present=True" in q, q


def test_sdk_e2e_script_read_only_key(server):
    key = server.create_key("e2e-script-ro", scopes="read")
    steps = run_script(server, key)
    by_name = {name: (mark, rest) for mark, name, rest in steps}
    for name in sorted(ADMIN_GATED):
        mark, rest = by_name[name]
        assert mark == "✓" and "AuthorizationError 403" in rest, (name, rest)
    for name in ("8.01", "8.02", "8.08", "8.09", "8.10", "8.12", "8.13", "1.01", "4.01", "7.01"):
        assert by_name[name][0] == "✓", (name, by_name[name])
    # Writing needs the write scope: the ingest steps fail as they should.
    assert by_name["2.01"][0] == "✗" and "AuthorizationError" in by_name["2.01"][1]
