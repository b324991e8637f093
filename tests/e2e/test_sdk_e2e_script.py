"""The SDK's own end-to-end script (`scripts/e2e.py` from the memsy 0.3.5
source distribution) against `memsy serve`. Groups 1, 2, 3, 4, 6 and 7 must
pass every step; group 8 (control plane) is checked elsewhere once served."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REQUIRED_GROUPS = {"1", "2", "3", "4", "6", "7"}


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


def test_sdk_e2e_script_groups(server):
    key = server.create_key("e2e-script", scopes="read,write")
    env = dict(server.env, MEMSY_BASE_URL=server.base_url, MEMSY_API_KEY=key)
    out = subprocess.run([sys.executable, str(sdk_e2e_script())], env=env, capture_output=True, text=True, timeout=600)
    print(out.stdout)
    steps = re.findall(r"^([✓✗]) (\d+)\.(\d+) (.*)$", out.stdout, re.M)
    seen = {g for _, g, _, _ in steps}
    assert REQUIRED_GROUPS <= seen, f"groups missing from the output: {REQUIRED_GROUPS - seen}\n{out.stdout}\n{out.stderr}"
    failed = [f"{g}.{n} {rest}" for mark, g, n, rest in steps if g in REQUIRED_GROUPS and mark == "✗"]
    assert not failed, "\n".join(failed)
    # Status right after the wait should show the pipeline finished.
    later = [rest for mark, g, n, rest in steps if (g, n) == ("3", "02")]
    assert later and re.search(r"completed=(\d+)/(\d+)", later[0]), later
    done, total = map(int, re.search(r"completed=(\d+)/(\d+)", later[0]).groups())
    assert done == total, later[0]
