"""A user's corrections of single memories over HTTP: `PATCH /v1/memories/{id}`
(pinned, status active/archived) and `DELETE /v1/memories/{id}`, against
memories the real pipeline extracted. What each changes is read back through
the SDK's own views: search, the console list and stats, and actors."""

from __future__ import annotations

import uuid

import pytest
import requests
from memsy import EventPayload, MemsyClient

from test_sdk import wait_settled

EVENTS = [
    ("dana", "My dog's name is Rex."),
    ("dana", "I live in Lisbon."),
    ("dana", "I'm allergic to shellfish."),
    ("eli", "My favourite editor is Helix."),
]


@pytest.fixture(scope="module")
def world(server):
    org = f"edits-{uuid.uuid4().hex[:10]}"
    key = server.create_key(org)
    with MemsyClient(base_url=server.base_url, api_key=key) as c:
        ids = c.ingest([EventPayload(actor_id=a, session_id="s1", kind="user_message", content=t)
                        for a, t in EVENTS]).event_ids
        wait_settled(c, ids)
        memories = c.memories.list(limit=200).items
    by_text = {}
    for m in memories:
        for _, text in EVENTS:
            word = text.split()[-1].rstrip(".")
            if word in m.text:
                by_text[word] = m
    assert {"Rex", "Lisbon", "shellfish", "Helix"} <= set(by_text), [m.text for m in memories]
    return {"org": org, "key": key, "memories": by_text,
            "other_key": server.create_key(f"edits-other-{uuid.uuid4().hex[:10]}"),
            "read_key": server.create_key(org, scopes="read")}


def call(server, method: str, path: str, key: str, body=None) -> requests.Response:
    return requests.request(method, f"{server.base_url}{path}", json=body, timeout=30,
                            headers={"Authorization": f"Bearer {key}"})


def found_by_search(server, key: str, query: str, memory_id: str, actor: str) -> bool:
    with MemsyClient(base_url=server.base_url, api_key=key) as c:
        hits = c.search(query, actor_id=actor, limit=10)
    return memory_id in {h.id for h in hits.results}


def test_pin_and_unpin(server, world):
    m = world["memories"]["Rex"]
    r = call(server, "PATCH", f"/memories/{m.memory_id}", world["key"], {"pinned": True})
    assert r.status_code == 200, r.text
    assert r.json()["pinned"] is True and r.json()["memory_id"] == m.memory_id and r.json()["status"] == "active"
    with MemsyClient(base_url=server.base_url, api_key=world["key"]) as c:
        assert c.memories.get(m.memory_id).pinned is True
        assert found_by_search(server, world["key"], "What is my dog called?", m.memory_id, "dana")
    r = call(server, "PATCH", f"/memories/{m.memory_id}", world["key"], {"pinned": False})
    assert r.status_code == 200 and r.json()["pinned"] is False


def test_archive_leaves_search_but_stays_in_the_console(server, world):
    m = world["memories"]["Lisbon"]
    assert found_by_search(server, world["key"], "Where do I live?", m.memory_id, "dana")
    r = call(server, "PATCH", f"/memories/{m.memory_id}", world["key"], {"status": "archived"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "archived"
    assert not found_by_search(server, world["key"], "Where do I live?", m.memory_id, "dana")
    with MemsyClient(base_url=server.base_url, api_key=world["key"]) as c:
        assert m.memory_id not in {x.memory_id for x in c.memories.list(limit=200).items}
        archived = c.memories.list(status="archived", limit=200).items
        assert [x.memory_id for x in archived] == [m.memory_id]
        assert c.memories.get(m.memory_id).status == "archived"
        assert c.memories.stats().by_status.get("archived") == 1
    # Restored, it is found again.
    r = call(server, "PATCH", f"/memories/{m.memory_id}", world["key"], {"status": "active"})
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert found_by_search(server, world["key"], "Where do I live?", m.memory_id, "dana")


def test_delete_removes_the_memory_from_every_view(server, world):
    m = world["memories"]["shellfish"]
    with MemsyClient(base_url=server.base_url, api_key=world["key"]) as c:
        before = c.memories.stats().total_memories
        dana_before = c.actors.get("dana").memory_count
    assert found_by_search(server, world["key"], "What am I allergic to?", m.memory_id, "dana")
    r = call(server, "DELETE", f"/memories/{m.memory_id}", world["key"])
    assert r.status_code == 200, r.text
    assert r.json() == {"memory_id": m.memory_id, "deleted": True}
    assert not found_by_search(server, world["key"], "What am I allergic to?", m.memory_id, "dana")
    with MemsyClient(base_url=server.base_url, api_key=world["key"]) as c:
        assert m.memory_id not in {x.memory_id for x in c.memories.list(status="all", limit=200).items}
        assert c.memories.stats().total_memories == before - 1
        assert c.actors.get("dana").memory_count == dana_before - 1
    assert call(server, "GET", f"/console/memories/{m.memory_id}", world["key"]).status_code == 404
    # A second delete finds nothing.
    r = call(server, "DELETE", f"/memories/{m.memory_id}", world["key"])
    assert r.status_code == 404 and r.json()["detail"]["error"] == "not_found"


def test_other_orgs_and_read_keys_change_nothing(server, world):
    m = world["memories"]["Helix"]
    for method, body in (("PATCH", {"pinned": True}), ("DELETE", None)):
        r = call(server, method, f"/memories/{m.memory_id}", world["other_key"], body)
        assert r.status_code == 404, (method, r.text)
        r = call(server, method, f"/memories/{m.memory_id}", world["read_key"], body)
        assert r.status_code == 403, (method, r.text)
    with MemsyClient(base_url=server.base_url, api_key=world["key"]) as c:
        after = c.memories.get(m.memory_id)
    assert after.pinned is False and after.status == "active"


@pytest.mark.parametrize("body, field", [
    ({}, "pinned"),
    ({"pinned": "yes"}, "pinned"),
    ({"status": "superseded"}, "status"),
    ({"status": 3}, "status"),
    ({"text": "rewritten"}, "text"),
])
def test_bad_edits_name_the_field_and_change_nothing(server, world, body, field):
    m = world["memories"]["Helix"]
    r = call(server, "PATCH", f"/memories/{m.memory_id}", world["key"], body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]["field"] == field
    r = call(server, "PATCH", "/memories/not-a-uuid", world["key"], {"pinned": True})
    assert r.status_code == 422 and r.json()["detail"]["field"] == "memory_id"
    r = call(server, "DELETE", f"/memories/{uuid.uuid4()}", world["key"])
    assert r.status_code == 404
    with MemsyClient(base_url=server.base_url, api_key=world["key"]) as c:
        after = c.memories.get(m.memory_id)
    assert after.pinned is False and after.status == "active" and after.text == m.text
