"""The admin-key Job's script, run here as the Job's init container runs it:
the real `memsy` against a real nats-server, with the chart's memsy.toml.
The manifest it leaves for the kubectl container must be a valid Secret
holding a key that memsy then accepts."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import kubernetes_validate
import yaml

from helm_render import ROOT, by_kind, render_objects

sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from conftest import _binary, _free_port, _wait_port, memsy_bin, stop_all  # noqa: E402


def test_the_job_script_mints_a_key_into_a_valid_secret():
    objects = render_objects({"bootstrap": {"org": "acme", "secretName": "acme-admin", "secretKey": "token"}})
    (job,) = by_kind(objects, "Job").values()
    (config_map,) = by_kind(objects, "ConfigMap").values()
    (mint,) = job["spec"]["template"]["spec"]["initContainers"]
    assert mint["command"] == ["/bin/sh", "-c"]
    mounts = {m["name"]: m["mountPath"] for m in mint["volumeMounts"]}

    tmp = Path(tempfile.mkdtemp(prefix="memsy-bootstrap-"))
    nats = None
    try:
        port = _free_port()
        nats = subprocess.Popen([_binary("nats-server", "/usr/sbin/nats-server"), "-a", "127.0.0.1", "-p", str(port),
                                 "-js", "-sd", str(tmp / "nats")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(port, nats, "nats-server")
        # The pod's volumes, here: the ConfigMap's file and the shared directory.
        (tmp / "config").mkdir()
        (tmp / "config" / "memsy.toml").write_text(config_map["data"]["memsy.toml"])
        (tmp / "shared").mkdir()
        script = mint["args"][0].replace(mounts["config"] + "/", f"{tmp}/config/").replace(mounts["work"] + "/", f"{tmp}/shared/")
        (tmp / "bin").mkdir()
        (tmp / "bin" / "memsy").symlink_to(memsy_bin())
        env = {e["name"]: e["value"] for e in mint["env"]}
        assert env["MEMSY__NATS__URL"] == "nats://nats:4222"
        env["MEMSY__NATS__URL"] = f"nats://127.0.0.1:{port}"
        env["PATH"] = f"{tmp / 'bin'}:{os.environ['PATH']}"
        subprocess.run(["/bin/sh", "-c", script], env=env, check=True, timeout=60)

        secret = yaml.safe_load((tmp / "shared" / "secret.yaml").read_text())
        kubernetes_validate.validate(secret, "1.37.0", strict=True)
        assert secret["metadata"]["name"] == "acme-admin"
        assert set(secret["data"]) == {"token"}
        key = base64.b64decode(secret["data"]["token"]).decode()
        assert key.startswith("msy_") and key == key.strip()
        # memsy knows the key: its org lists one admin key named after the Job's value.
        listed = subprocess.run([memsy_bin(), "keys", "list", "--org", "acme"], env=env, check=True,
                                capture_output=True, text=True, timeout=30).stdout.strip().splitlines()
        assert len(listed) == 1, listed
        record = yaml.safe_load(listed[0])
        assert record.get("name") == "bootstrap" and "admin" in str(record.get("scopes")), record
    finally:
        if nats is not None:
            stop_all([nats])
        shutil.rmtree(tmp, ignore_errors=True)
