"""Data lifecycle: an actor's erasure (`DELETE /v1/actors/{id}`), its export
(`GET /v1/actors/{id}/export`) and an org's purge (`memsy orgs purge`), on
real NATS, Redis and each store: the embedded engine, and a Qdrant server
when QDRANT_BIN names one. What is gone is read back through every view a
user has (search, console, actors, export, raw events, status) and in the
JetStream streams themselves."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest
import requests
from memsy import EventPayload, MemsyClient

from conftest import memsy_bin, memsy_stack, qdrant_server, start_memsy, stop_all
from jetstream import JetStream
from test_sdk import wait_settled


@pytest.fixture(scope="module", params=["embedded", "qdrant"])
def stack(request):
    """`memsy serve` of its own (the purge test stops and restarts it) on
    the embedded store, or on a Qdrant server."""
    if request.param == "embedded":
        with memsy_stack() as s:
            s.backend = "embedded"
            yield s
        return
    with qdrant_server() as qdrant_env:
        if qdrant_env is None:
            pytest.skip("the Qdrant server variant needs QDRANT_BIN (a qdrant binary to start) or QDRANT_URL")
        # Collections of its own: the purge test empties its org's.
        with memsy_stack({**qdrant_env, "MEMSY__QDRANT__COLLECTION_PREFIX": f"erase_{uuid.uuid4().hex[:8]}_"}) as s:
            s.backend = "qdrant"
            yield s


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def call(server, method: str, path: str, key: str, **kw) -> requests.Response:
    return requests.request(method, f"{server.base_url}{path}", timeout=60,
                            headers={"Authorization": f"Bearer {key}"}, **kw)


def ev(actor: str, content: str, session: str = "s1") -> EventPayload:
    return EventPayload(actor_id=actor, session_id=session, kind="user_message", content=content)


def ingest(server, key: str, events: list[EventPayload], settle: bool = True) -> list[str]:
    with MemsyClient(base_url=server.base_url, api_key=key) as c:
        ids = c.ingest(events).event_ids
        if settle:
            wait_settled(c, ids)
    return ids


def memories(server, key: str) -> list:
    with MemsyClient(base_url=server.base_url, api_key=key) as c:
        return c.memories.list(status="all", limit=200).items


def raw_events(server, key: str, actor: str) -> list:
    r = requests.get(f"{server.control_url}/console/events", params={"actor_id": actor, "limit": 200},
                     headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def export(server, key: str, actor: str) -> requests.Response:
    return call(server, "GET", f"/actors/{actor}/export", key)


def stream_hits(server, needle: str) -> list:
    with JetStream(server.env["MEMSY__NATS__URL"]) as js:
        return js.holding(needle)


def nothing_of(server, key: str, actor: str, event_ids: list[str]) -> None:
    """No view shows anything of `actor`, and no stream holds its messages."""
    with MemsyClient(base_url=server.base_url, api_key=key) as c:
        hits = c.search("dog name city office deploy", actor_id=actor, limit=50).results
        assert all(h.metadata.get("actor_id") != actor for h in hits), hits
        assert actor not in {a.actor_id for a in c.actors.list(limit=500).items}
        statuses = c.status(event_ids)
        assert not statuses.completed_ids and not statuses.pending_ids, statuses
    assert all(m.scope.actor_id != actor for m in memories(server, key))
    assert call(server, "GET", f"/actors/{actor}", key).status_code == 404
    assert raw_events(server, key, actor) == []
    assert export(server, key, actor).status_code == 404
    assert stream_hits(server, actor) == []
    for m in memories(server, key):
        assert not set(m.source_event_ids or []) & set(event_ids), m


FACT_KEPT = "We deploy on Fridays."
FACT_GONE = "Our office is in Porto."


@pytest.fixture(scope="module")
def world(stack):
    """An org where `gone` said two things of its own and two shared ones;
    the shared ones were promoted to the org: one held by four actors, one
    by three."""
    org = uid("erase")
    admin = stack.create_key(org, scopes="read,write,admin")
    gone, kept = uid("gone"), uid("kept")
    helpers = [uid("h1"), uid("h2"), uid("h3")]
    events = [ev(gone, "My dog's name is Rex."), ev(gone, "I live in Lisbon."), ev(kept, "My favourite editor is Helix.")]
    events += [ev(a, FACT_KEPT) for a in [gone, *helpers]]
    events += [ev(a, FACT_GONE) for a in [gone, *helpers[:2]]]
    ids = ingest(stack, admin, events)
    gone_ids = [i for i, e in zip(ids, events) if e.actor_id == gone]
    return {"org": org, "admin": admin, "gone": gone, "kept": kept, "gone_ids": gone_ids,
            "read": stack.create_key(org, scopes="read,write"),
            "other_admin": stack.create_key(uid("erase-other"), scopes="read,write,admin")}


def promoted(server, key: str, text: str) -> list:
    return [m for m in memories(server, key) if m.scope.level == "org" and text.rstrip(".") in m.text]


def test_erasure_removes_the_actor_everywhere(stack, world):
    admin, gone, kept = world["admin"], world["gone"], world["kept"]
    kept_before = sorted(m.memory_id for m in memories(stack, admin) if m.scope.actor_id == kept)
    assert kept_before
    kept_events = raw_events(stack, admin, kept)
    assert len(promoted(stack, admin, FACT_KEPT)) == 1 and len(promoted(stack, admin, FACT_GONE)) == 1
    assert set(promoted(stack, admin, FACT_KEPT)[0].source_event_ids) & set(world["gone_ids"])
    assert stream_hits(stack, gone)

    r = call(stack, "DELETE", f"/actors/{gone}", admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["actor_id"] == gone and body["erased_at"]
    assert body["events"] == len(world["gone_ids"]) == 4
    assert body["memories"] >= 4 and body["status_entries"] == 4
    assert body["stream_messages"] >= 4  # at least the raw events in the log
    assert (body["promoted_updated"], body["promoted_removed"]) == (1, 1), body
    assert body["dedup_claims"] <= 4  # those still within the 60 s window

    nothing_of(stack, admin, gone, world["gone_ids"])
    # The fact three others still hold stays, without the actor's events.
    [fridays] = promoted(stack, admin, FACT_KEPT)
    assert fridays.summary.startswith("Held by 3 "), fridays.summary
    assert promoted(stack, admin, FACT_GONE) == []
    # Another actor of the org is untouched.
    assert sorted(m.memory_id for m in memories(stack, admin) if m.scope.actor_id == kept) == kept_before
    assert raw_events(stack, admin, kept) == kept_events
    with MemsyClient(base_url=stack.base_url, api_key=admin) as c:
        assert "Helix" in " ".join(h.content for h in c.search("Which editor do I use?", actor_id=kept).results)
    assert export(stack, admin, kept).status_code == 200

    # Erasing again finds nothing; the same content may be sent again at once
    # (its de-duplication claim is gone) and is a new actor's from then on.
    assert call(stack, "DELETE", f"/actors/{gone}", admin).status_code == 404
    [again] = ingest(stack, admin, [ev(gone, "My dog's name is Rex.")])
    assert again not in world["gone_ids"]
    again_memories = [m.text for m in memories(stack, admin) if m.scope.actor_id == gone]
    assert len(again_memories) == 1 and "Rex" in again_memories[0], again_memories


def test_erasing_while_events_are_queued_leaves_nothing(stack, world):
    admin = world["admin"]
    queued = uid("queued")
    ids = ingest(stack, admin, [ev(queued, f"I have {n} cats and live in Oslo.", session=f"s{n}") for n in range(20)],
                 settle=False)
    r = call(stack, "DELETE", f"/actors/{queued}", admin)
    assert r.status_code == 200, r.text
    # Whatever was on its way has arrived by the time a later event has.
    marker = ingest(stack, admin, [ev(world["kept"], "I drink green tea.")])
    time.sleep(3)
    nothing_of(stack, admin, queued, ids)
    assert marker


def test_export_streams_json_lines(stack, world):
    admin, kept = world["admin"], world["kept"]
    r = export(stack, admin, kept)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in r.text.splitlines()]
    kinds = [x["kind"] for x in lines]
    assert set(kinds) == {"event", "memory"} and kinds == sorted(kinds), kinds  # events first
    assert all(x["event"]["actor_id"] == kept for x in lines if x["kind"] == "event")
    assert all(x["memory"]["scope"]["actor_id"] == kept for x in lines if x["kind"] == "memory")
    assert {x["event"]["content"] for x in lines if x["kind"] == "event"} >= {"My favourite editor is Helix."}
    assert any("Helix" in x["memory"]["text"] for x in lines if x["kind"] == "memory")


def test_bad_and_foreign_requests_erase_nothing(stack, world):
    admin, kept = world["admin"], world["kept"]
    for method, path in (("DELETE", f"/actors/{kept}"), ("GET", f"/actors/{kept}/export")):
        r = call(stack, method, path, world["read"])
        assert r.status_code == 403, r.text
        r = call(stack, method, path, admin, params={"org_id": "someone-else"})
        assert r.status_code == 403, r.text
        r = call(stack, method, path, world["other_admin"])
        assert r.status_code == 404, r.text
        r = call(stack, method, f"/actors/{'x' * 300}" + ("/export" if method == "GET" else ""), admin)
        assert r.status_code == 422 and r.json()["detail"]["field"] == "actor_id", r.text
    assert call(stack, "DELETE", f"/actors/{uid('nobody')}", admin).status_code == 404
    assert export(stack, admin, kept).status_code == 200


def purge(server, org: str) -> dict:
    """`memsy orgs purge`; with the embedded store `memsy serve` is stopped
    around it (the engine is one process's)."""
    args = [memsy_bin(), "--config", str(server.config_path), "orgs", "purge", "--org", org]
    embedded = server.backend == "embedded"
    if embedded:
        stop_all([server.process])
        args += ["--data-dir", str(server.tmp / "data")]
    try:
        out = subprocess.run(args, env=server.env, capture_output=True, text=True, timeout=120)
    finally:
        if embedded:
            server.process = start_memsy(server.serve_args, server.env, server.tmp / "memsy-restarted.log")
    assert out.returncode == 0, out.stderr[-3000:]
    print(out.stdout)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_org_purge_erases_the_tenant(stack):
    org, other = uid("purge"), uid("purge-other")
    admin, other_key = stack.create_key(org, scopes="read,write,admin"), stack.create_key(other)
    ids = ingest(stack, admin, [ev("ann", "My dog's name is Rex."), ev("bo", "I live in Lisbon.")])
    other_ids = ingest(stack, other_key, [ev("ann", "My dog's name is Rex.")])
    with MemsyClient(base_url=stack.base_url, api_key=admin) as c:
        role = c.roles.create(org, "Support", "Billing questions")
    queued = ingest(stack, admin, [ev("cy", f"I have {n} cats.", session=f"q{n}") for n in range(10)], settle=False)

    counts = purge(stack, org)
    assert counts["org_id"] == org and counts["purged_at"]
    assert counts["events"] >= len(ids) and counts["memories"] >= 2
    assert counts["api_keys"] == 1 and counts["hierarchy_records"] >= 1 and counts["usage_keys"] >= 1
    assert counts["status_entries"] >= len(ids) and counts["stream_messages"] >= len(ids)

    # The org's key is gone with it.
    assert call(stack, "GET", "/console/memories", admin).status_code == 401
    time.sleep(3)  # whatever of `queued` was on its way has arrived
    fresh = stack.create_key(org, scopes="read,write,admin")
    assert memories(stack, fresh) == []
    for actor in ("ann", "bo", "cy"):
        assert raw_events(stack, fresh, actor) == []
    with MemsyClient(base_url=stack.base_url, api_key=fresh) as c:
        assert c.actors.list().items == []
        assert c.roles.list(org) == [] and role.role_id
        st = c.status(ids + queued)
        assert not st.completed_ids and not st.pending_ids, st
    r = requests.get(f"{stack.control_url}/usage/summary", headers={"Authorization": f"Bearer {fresh}"}, timeout=30)
    used = {d["dimension"]: d["used"] for d in r.json()["dimensions"]}
    assert used["events_ingested"] == 0, used
    with JetStream(stack.env["MEMSY__NATS__URL"]) as js:
        for s in ("MEMSY_EVENTS", "MEMSY_EXTRACTED", "MEMSY_EMBEDDED", "MEMSY_DLQ"):
            # The org id ([a-z0-9-]) is its own subject token.
            assert [subj for subj, _ in js.messages(s) if f".{org}." in f"{subj}."] == [], s
    # Another org is untouched.
    assert [m.scope.actor_id for m in memories(stack, other_key)] == ["ann"]
    with MemsyClient(base_url=stack.base_url, api_key=other_key) as c:
        assert c.status(other_ids).completed_ids == other_ids
