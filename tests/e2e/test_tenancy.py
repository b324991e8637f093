"""Tenancy and keys: org A's key, addressed at every route with org B's ids
(events, memories, actors, keys, roles, teams, the org record), gets a 403 or
a 404 and never sees B's data; a revoked key is refused by every gateway
within a second; an expired key is refused; no key secret reaches a log."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
import requests
from memsy import EventPayload, MemsyClient
from memsy.exceptions import MemsyAPIError

from conftest import extra_gateways
from test_bad_input import assert_error_shape
from test_sdk import wait_settled

ADMIN = "read,write,admin"
# Every raw key this module sees, checked against the logs at the end.
SECRETS: list[str] = []


def _session(key: str) -> requests.Session:
    SECRETS.append(key)
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {key}"
    return s


def _org(server, tag: str) -> dict:
    """An org with completed events, memories, a role, a team, an org record and a second key."""
    org = f"tenant-{tag}-{uuid.uuid4().hex[:8]}"
    token = f"zq{uuid.uuid4().hex[:10]}"
    key = server.create_key(org, scopes=ADMIN)
    s = _session(key)
    actor = f"actor-{tag}-{token}"
    with MemsyClient(base_url=server.base_url, api_key=key, max_retries=0) as c:
        ids = c.ingest([EventPayload(actor_id=actor, session_id=f"s-{token}", kind="user_message",
                                     content=f"I prefer {token} tea every morning."),
                        EventPayload(actor_id=actor, session_id=f"s-{token}", kind="user_message",
                                     content=f"My dog's name is {token.capitalize()}.")]).event_ids
        wait_settled(c, ids)
        memories = c.memories.list(status="all", limit=200).items
        c.orgs.create(org, f"Org {token}", "Research")
        role = c.roles.create(org, f"Role {token}", "Lab results")
        team = c.teams.create(org, f"Team {token}", "Experiments")
    assert memories, "no memory extracted"
    made = s.post(f"{server.root_url}/api/keys", json={"name": f"second-{token}", "scopes": ["read"]}, timeout=30)
    assert made.status_code in (200, 201), made.text
    SECRETS.append(made.json()["raw_key"])
    return {"org": org, "key": key, "s": s, "token": token, "actor": actor, "event_ids": ids,
            "memory_ids": [m.memory_id for m in memories], "role": role.role_id, "team": team.team_id,
            "key_id": made.json()["key_id"]}


@pytest.fixture(scope="module")
def orgs(server):
    return _org(server, "a"), _org(server, "b")


def _secrets_of(b: dict) -> list[str]:
    return [b["org"], b["token"], b["actor"], b["role"], b["team"], b["key_id"], *b["event_ids"], *b["memory_ids"]]


def _assert_no_leak(r: requests.Response, b: dict, what: str) -> None:
    text = r.text
    # A refusal may echo the id it was asked about: that is the caller's own input.
    asked = r.request.url + str(r.request.body or "")
    for secret in _secrets_of(b):
        if r.status_code >= 400 and (secret in asked or requests.utils.quote(secret, safe="") in asked):
            continue
        assert secret.lower() not in text.lower(), f"{what}: org B's {secret!r} in {r.status_code} {text[:400]}"


def test_other_orgs_ids_get_404_or_403_and_no_data(server, orgs):
    a, b = orgs
    base, s = server.root_url, a["s"]
    q = requests.utils.quote
    probes = []
    for prefix in ("", "/v1"):
        for mid in b["memory_ids"]:
            probes.append(("GET", f"{prefix}/console/memories/{mid}", None, None))
        probes += [
            ("GET", f"{prefix}/actors/{q(b['actor'], safe='')}", None, None),
            ("GET", f"{prefix}/orgs/{b['org']}", None, None),
            ("PATCH", f"{prefix}/orgs/{b['org']}", None, {"name": "Stolen"}),
            ("POST", f"{prefix}/orgs/{b['org']}/regenerate-prompt", None, {}),
            ("DELETE", f"{prefix}/orgs/{b['org']}", None, None),
        ]
        for kind, rid in (("roles", b["role"]), ("teams", b["team"])):
            for params in (None, {"org_id": b["org"]}, {"org_id": a["org"]}):
                probes += [
                    ("GET", f"{prefix}/{kind}/{rid}", params, None),
                    ("PATCH", f"{prefix}/{kind}/{rid}", params, {"name": "Stolen"}),
                    ("POST", f"{prefix}/{kind}/{rid}/regenerate-prompt", params, {}),
                    ("DELETE", f"{prefix}/{kind}/{rid}", params, None),
                ]
            probes.append(("GET", f"{prefix}/{kind}", {"org_id": b["org"]}, None))
    probes += [
        ("DELETE", f"/api/keys/{b['key_id']}", None, None),
        ("GET", f"/api/keys/{b['key_id']}/usage", None, None),
    ]
    for method, path, params, body in probes:
        r = s.request(method, base + path, params=params, json=body, timeout=30)
        assert r.status_code in (403, 404), f"{method} {path} {params}: {r.status_code} {r.text[:300]}"
        assert_error_shape(r)
        _assert_no_leak(r, b, f"{method} {path}")

    # Lists, searches and status read A's own data only, whatever B's ids they name.
    reads = [
        ("POST", "/v1/status", None, {"event_ids": b["event_ids"]}),
        ("POST", "/v1/search", None, {"query": f"{b['token']} tea", "actor_id": b["actor"]}),
        ("POST", "/v1/search", None, {"query": "dog name", "actor_id": b["actor"], "org_id": b["org"]}),
    ]
    for prefix in ("", "/v1"):
        reads += [("GET", f"{prefix}/console/memories", {"actor_id": b["actor"], "status": "all"}, None),
                  ("GET", f"{prefix}/console/memories", {"q": b["token"]}, None),
                  ("GET", f"{prefix}/console/memories/stats", {"actor_id": b["actor"]}, None),
                  ("GET", f"{prefix}/actors", {"q": b["actor"]}, None),
                  ("GET", f"{prefix}/actors", None, None),
                  ("GET", f"{prefix}/orgs", None, None)]
    reads += [("GET", "/api/keys", None, None), ("GET", "/api/me", None, None),
              ("GET", "/api/console/events", None, None), ("GET", "/api/console/events", {"actor_id": b["actor"]}, None),
              ("GET", "/api/usage/summary", {"org_id": b["org"]}, None),
              ("GET", "/api/usage/timeseries", {"org_id": b["org"]}, None)]
    for method, path, params, body in reads:
        r = s.request(method, base + path, params=params, json=body, timeout=30)
        assert r.status_code < 500, f"{method} {path}: {r.status_code} {r.text[:300]}"
        assert_error_shape(r)
        if path == "/v1/status" and r.status_code == 200:
            st = r.json()
            assert not st.get("completed_ids") and not st.get("pending_ids"), f"B's events visible to A: {r.text}"
            # The reply echoes the ids asked about; it must say nothing else of them.
            continue
        _assert_no_leak(r, b, f"{method} {path} {params}")

    # B lost nothing.
    with MemsyClient(base_url=server.base_url, api_key=b["key"], max_retries=0) as c:
        assert sorted(c.status(b["event_ids"]).completed_ids) == sorted(b["event_ids"])
        assert c.roles.get(b["role"], b["org"]).role_id == b["role"]
        assert c.teams.get(b["team"], b["org"]).team_id == b["team"]
        assert {m.memory_id for m in c.memories.list(status="all", limit=200).items} >= set(b["memory_ids"])
    keys = b["s"].get(f"{base}/api/keys", timeout=30).json()["keys"]
    assert b["key_id"] in {k["key_id"] for k in keys if k["is_active"]}


@pytest.fixture(scope="module")
def gateways(server):
    """Two more gateway processes (`memsy gateway`) on the same NATS and Redis."""
    with extra_gateways(server, 2, "tenancy-gw") as roots:
        yield [server.root_url, *roots]


def _refused(url: str, key: str, path: str) -> bool:
    r = requests.request("POST" if path == "/v1/status" else "GET", url + path,
                         headers={"Authorization": f"Bearer {key}"},
                         json={"event_ids": [str(uuid.uuid4())]} if path == "/v1/status" else None, timeout=5)
    if r.status_code == 401:
        assert r.json()["detail"]["error"] == "invalid_api_key", r.text
        return True
    # A gateway without the status service behind it answers 503 past authentication.
    assert r.status_code == 200 or (r.status_code == 503 and path == "/v1/status"), f"{url}{path}: {r.status_code} {r.text[:300]}"
    return False


def test_revoked_key_is_refused_on_every_gateway_within_a_second(server, orgs, gateways):
    a = orgs[0]
    made = a["s"].post(f"{server.root_url}/api/keys", json={"name": "to-revoke", "scopes": ["read", "write"]}, timeout=30).json()
    SECRETS.append(made["raw_key"])
    paths = ["/api/me", "/v1/status"]
    for url in gateways:
        for path in paths:
            assert not _refused(url, made["raw_key"], path)
    r = a["s"].delete(f"{server.root_url}/api/keys/{made['key_id']}", timeout=30)
    assert r.status_code in (200, 204), r.text
    revoked_at = time.time()
    pending = {(u, p) for u in gateways for p in paths}
    while pending:
        pending = {(u, p) for u, p in pending if not _refused(u, made["raw_key"], p)}
        assert time.time() - revoked_at < 1.0, f"still accepted 1 s after revocation: {sorted(pending)}"
        time.sleep(0.02)


def test_expired_key_is_refused(server, orgs, gateways):
    a = orgs[0]
    expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=3)
    made = a["s"].post(f"{server.root_url}/api/keys", timeout=30, json={
        "name": "short", "scopes": ["read"], "expires_at": expires.isoformat().replace("+00:00", "Z")})
    assert made.status_code in (200, 201), made.text
    made = made.json()
    SECRETS.append(made["raw_key"])
    assert made["expires_at"]
    for url in gateways:
        assert not _refused(url, made["raw_key"], "/api/me")
    time.sleep(max(0.0, (expires - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 0.3)
    for url in gateways:
        for path in ("/api/me", "/v1/status"):
            assert _refused(url, made["raw_key"], path), f"{url}{path} accepts an expired key"
    # An expiry in the past is refused outright.
    r = a["s"].post(f"{server.root_url}/api/keys", json={"name": "late", "expires_at": "2020-01-01T00:00:00Z"}, timeout=30)
    assert r.status_code == 422 and assert_error_shape(r)["field"] == "expires_at", r.text
    # So is an SDK call with the expired key.
    with MemsyClient(base_url=server.base_url, api_key=made["raw_key"], max_retries=0) as c:
        with pytest.raises(MemsyAPIError) as e:
            c.status([str(uuid.uuid4())])
        assert e.value.status_code == 401


def test_no_key_secret_in_any_log(server, orgs, gateways):
    # Runs last in this module: every key above was created, used and revoked.
    assert len(SECRETS) >= 5
    logs = sorted(server.tmp.glob("*.log"))
    assert logs, f"no logs in {server.tmp}"
    text = "\n".join(p.read_text(errors="replace") for p in logs)
    assert "gateway listening" in text
    for key in SECRETS:
        assert key not in text, "a full API key is in the logs"
        # Its secret part either: only the short prefix may be logged.
        assert key[len("msy_") + 12:] not in text
