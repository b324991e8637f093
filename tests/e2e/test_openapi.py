"""The OpenAPI document: the one served at /openapi.json is the checked-in
docs/openapi.json and what `memsy openapi` prints; it is valid OpenAPI 3.1;
it describes every route the memsy SDK calls (read from the installed SDK's
source) with its request and response schemas; every operation it lists is
served; live answers validate against their documented schemas; and /docs
is a page that loads nothing from another host."""

from __future__ import annotations

import copy
import re
import subprocess
import time
from pathlib import Path

import memsy
import pytest
import requests
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from conftest import ROOT, memsy_bin

CHECKED_IN = ROOT / "docs" / "openapi.json"
REGENERATE = "regenerate it: memsy openapi > docs/openapi.json"
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def served(server) -> requests.Response:
    r = requests.get(f"{server.root_url}/openapi.json", timeout=10)
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"].startswith("application/json")
    return r


@pytest.fixture(scope="module")
def doc(served) -> dict:
    return served.json()


def test_served_printed_and_checked_in_documents_are_one(served):
    text = served.content.decode("utf-8")
    assert text == CHECKED_IN.read_text(encoding="utf-8"), f"docs/openapi.json is not the served document; {REGENERATE}"
    printed = subprocess.run([memsy_bin(), "openapi"], check=True, capture_output=True, timeout=30).stdout
    assert printed.decode("utf-8") == text


def test_the_document_is_valid_openapi_3_1(doc):
    assert doc["openapi"].startswith("3.1")
    validate(doc)
    # The validator must be able to fail: a broken copy is refused.
    broken = copy.deepcopy(doc)
    broken["paths"]["/v1/ingest"]["post"]["responses"] = "none"
    with pytest.raises(Exception):
        validate(broken)


# ---- the SDK's routes -------------------------------------------------------

# `self._client._request("PATCH", f"/roles/{role_id}", params=…, json=body)`,
# possibly over several lines.
SDK_CALL = re.compile(r'_request\(\s*"([A-Z]+)",\s*f?"([^"]+)"')


def sdk_calls() -> list[tuple[str, str, bool, bool]]:
    """(method, path with `{}` for each path parameter, sends JSON, reads
    the answer) of every request the installed SDK makes."""
    pkg = Path(memsy.__file__).parent
    calls = set()
    for src in sorted(pkg.rglob("*.py")):
        rel = src.relative_to(pkg).as_posix()
        prefix = "/api" if rel.startswith("control") or rel == "async_control.py" else "/v1"
        text = src.read_text()
        for m in SDK_CALL.finditer(text):
            depth, end = 1, m.end()
            while depth:
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                end += 1
            args = text[m.end():end]
            line = text[text.rfind("\n", 0, m.start()) + 1:m.start()]
            path = prefix + re.sub(r"\{[^}]*\}", "{}", m.group(2))
            calls.add((m.group(1), path, "json=" in args, "data" in line))
    return sorted(calls)


def template(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_every_route_the_sdk_calls_is_described(doc):
    calls = sdk_calls()
    # The SDK's client, resources and control plane: a parse that finds
    # fewer has broken, not shrunk.
    assert len(calls) >= 50, calls
    ops = {(m.upper(), template(p)): op for p, item in doc["paths"].items() for m, op in item.items() if m in METHODS}
    missing = [(m, p) for m, p, _, _ in calls if (m, p) not in ops]
    assert not missing, f"SDK routes the document does not describe: {missing}"
    for method, path, sends_json, reads in calls:
        op = ops[(method, path)]
        where = f"{method} {path}"
        if sends_json:
            assert op["requestBody"]["content"]["application/json"]["schema"], where
        responses = op["responses"]
        with_schema = {code for code, r in responses.items() if r.get("content", {}).get("application/json", {}).get("schema")}
        assert with_schema, f"{where}: no response schema"
        if reads and "not self-hosted" not in op["tags"]:
            assert any(c.startswith("2") for c in with_schema), f"{where}: the SDK reads an answer with no schema"
        if not reads and "not self-hosted" not in op["tags"]:
            assert any(c.startswith("2") for c in responses), where
        assert "401" in responses and op["security"] == [{"api_key": []}], where


def operations(doc: dict):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield method.upper(), path, op


def test_every_documented_operation_is_served(server, doc):
    """Without a key an authenticated route answers 401 and an open one
    answers: neither is the router's 404 (`no such route`) or a 405."""
    seen = 0
    for method, path, op in operations(doc):
        url = server.root_url + re.sub(r"\{[^}]*\}", "x1", path)
        r = requests.request(method, url, timeout=30)
        if op.get("security"):
            assert r.status_code == 401, f"{method} {path}: {r.status_code} {r.text[:200]}"
        else:
            assert r.status_code in (200, 503), f"{method} {path}: {r.status_code} {r.text[:200]}"
        seen += 1
    assert seen >= 55, seen
    # And an undocumented path is the router's 404.
    r = requests.get(f"{server.root_url}/v1/no-such-route", timeout=10)
    assert r.status_code == 404 and r.json()["detail"]["error"] == "not_found"


# ---- live answers against their schemas ---------------------------------------


def strict(schemas: dict) -> dict:
    """The component schemas with `additionalProperties: false` on every
    object that lists its properties: a field the document does not name
    fails validation, as a documented field that is missing does."""
    out = copy.deepcopy(schemas)

    def walk(node):
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    # Errors may carry more fields than the envelope names (error.rs).
    for name, schema in out.items():
        if name not in ("ErrorResponse", "ErrorDetail"):
            walk(schema)
    return out


class Live:
    def __init__(self, server, doc: dict, key: str):
        self.server, self.doc, self.key = server, doc, key
        self.components = {"schemas": strict(doc["components"]["schemas"])}
        self.checked: list[str] = []

    def __call__(self, method: str, path: str, status: int = 200, url_path: str | None = None, **kw):
        """Calls `path` (its template in the document; `url_path` when it has
        parameters), asserts the status and validates the body against the
        documented schema of that status; returns the body."""
        url = self.server.root_url + (url_path or path)
        headers = {"Authorization": f"Bearer {self.key}"}
        r = requests.request(method, url, headers=headers, timeout=60, **kw)
        assert r.status_code == status, f"{method} {url}: {r.status_code} {r.text[:500]}"
        op = self.doc["paths"][path][method.lower()]
        documented = op["responses"].get(str(status))
        assert documented is not None, f"{method} {path}: {status} is not documented"
        schema = documented.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            assert not r.content, f"{method} {path}: an undocumented body"
            return None
        body = r.json()
        validator = Draft202012Validator({**schema, "components": self.components})
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
        assert not errors, f"{method} {path} {status}: " + "; ".join(errors[:5])
        self.checked.append(f"{method} {path} {status}")
        return body


def test_live_answers_match_their_schemas(server, doc):
    org = f"oas-{int(time.time() * 1000)}"
    live = Live(server, doc, server.create_key(org, scopes="admin", name="oas"))
    live("GET", "/v1/health")
    live("GET", "/api/health")
    events = [
        {"actor_id": "u1", "session_id": "s1", "kind": "user_message", "content": "My dog's name is Rex.",
         "metadata": '{"plan": "pro"}'},
        {"actor_id": "u1", "session_id": "s2", "kind": "user_message", "content": "I live in Lisbon and love surfing."},
    ]
    ids = live("POST", "/v1/ingest", json={"events": events})["event_ids"]
    deadline = time.time() + 90
    while live("POST", "/v1/status", json={"event_ids": ids})["pendingIds"]:
        assert time.time() < deadline, "events still pending"
        time.sleep(0.3)
    st = live("POST", "/v1/status", json={"event_ids": ids + ["evt_unknown"]})
    assert st["statuses"]["evt_unknown"] == "not_found"
    found = live("POST", "/v1/search", json={"query": "dog", "include_source_events": True})
    assert found["results"], found
    memories = live("GET", "/v1/console/memories", params={"status": "all"})
    assert memories["items"], memories
    memory_id = memories["items"][0]["memory_id"]
    live("GET", "/v1/console/memories/stats")
    live("GET", "/v1/console/memories/{memory_id}", url_path=f"/v1/console/memories/{memory_id}")
    live("PATCH", "/v1/memories/{memory_id}", url_path=f"/v1/memories/{memory_id}", json={"pinned": True})
    live("GET", "/v1/actors")
    live("GET", "/v1/actors/{actor_id}", url_path="/v1/actors/u1")
    live("POST", "/v1/orgs", json={"name": "Acme", "focus": "support"})
    live("GET", "/v1/orgs")
    role = live("POST", "/v1/roles", json={"name": "Agent", "focus": "refunds"})
    live("GET", "/v1/roles")
    live("PATCH", "/v1/roles/{role_id}", url_path=f"/v1/roles/{role['role_id']}", json={"promotion_prompt": "Keep X"})
    live("DELETE", "/v1/roles/{role_id}", 204, url_path=f"/v1/roles/{role['role_id']}")
    live("DELETE", "/v1/memories/{memory_id}", url_path=f"/v1/memories/{memory_id}")
    live("GET", "/api/me")
    key = live("POST", "/api/keys", json={"name": "second", "scopes": ["read"]})
    live("GET", "/api/keys")
    live("GET", "/api/keys/{key_id}/usage", url_path=f"/api/keys/{key['key_id']}/usage")
    live("DELETE", "/api/keys/{key_id}", 204, url_path=f"/api/keys/{key['key_id']}")
    live("GET", "/api/usage/summary")
    live("GET", "/api/usage/timeseries", params={"granularity": "hourly"})
    assert live("GET", "/api/console/events")["items"]
    # Refusals, in the error envelope.
    assert live("POST", "/v1/ingest", 422, json={"events": []})["detail"]["field"] == "events"
    live("GET", "/v1/console/memories/{memory_id}", 404, url_path=f"/v1/console/memories/{memory_id}")
    live("GET", "/api/billing/summary", 403)
    live("POST", "/api/connectors/s3/configure", 403, json={})
    # The strict schemas can fail: an answer with a field the document does
    # not name is refused.
    validator = Draft202012Validator({"$ref": "#/components/schemas/IngestResponse", "components": live.components})
    assert not validator.is_valid({"event_ids": [], "extra": 1})
    assert not validator.is_valid({})
    assert len(live.checked) >= 30


def test_readyz_answers_as_documented(server, doc):
    r = requests.get(f"{server.root_url}/readyz", timeout=10)
    schema = doc["paths"]["/readyz"]["get"]["responses"][str(r.status_code)]["content"]["application/json"]["schema"]
    Draft202012Validator({**schema, "components": {"schemas": strict(doc["components"]["schemas"])}}).validate(r.json())


# ---- the browsable page --------------------------------------------------------


def test_docs_page_is_served_by_the_binary(server):
    r = requests.get(f"{server.root_url}/docs", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    # Nothing from another host: no scheme and no protocol-relative URL.
    assert not re.search(r"(https?:)?//", page), page
    refs = re.findall(r'(?:src|href|spec-url)="([^"]+)"', page)
    assert sorted(refs) == ["docs/redoc.standalone.js", "openapi.json"], refs
    # Relative to /docs, both resolve under the server's root.
    script = requests.get(f"{server.root_url}/docs/redoc.standalone.js", timeout=10)
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert len(script.content) > 500_000 and b"Redoc" in script.content
    assert requests.get(f"{server.root_url}/openapi.json", timeout=10).status_code == 200
