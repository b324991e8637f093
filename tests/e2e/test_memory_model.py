"""The memory model through the SDK, with the real model and the rules
engine: a repeated statement reinforces one memory, a newer value of a slot
supersedes the older in either delivery order, and three members of a role
holding the same memory promote it to role-level knowledge that a search
with `role_ids` finds."""

from __future__ import annotations

import time
import uuid

from memsy import EventPayload, MemsyClient

from test_sdk import wait_settled


def ingest_one(client: MemsyClient, actor: str, content: str, session: str, ts: str | None = None, **kw) -> str:
    ids = client.ingest([EventPayload(actor_id=actor, session_id=session, kind="user_message", content=content, ts=ts, **kw)]).event_ids
    wait_settled(client, ids)
    return ids[0]


def test_a_repeated_statement_reinforces_one_memory(server):
    key = server.create_key(f"mm-dup-{uuid.uuid4().hex[:8]}", scopes="read,write")
    with MemsyClient(base_url=server.base_url, api_key=key) as client:
        first = ingest_one(client, "alice", "I prefer green tea.", "s1")
        second = ingest_one(client, "alice", "I prefer green tea.", "s2")
        tea = [m for m in client.memories.list(actor_id="alice", status="all").items if "green tea" in m.text]
        assert len(tea) == 1, [(m.text, m.status) for m in tea]
        m = tea[0]
        assert m.strength > 1.0 and m.status == "active"
        assert m.source_event_ids == [first, second]
        hit = [r for r in client.search("what does alice drink", actor_id="alice").results if "green tea" in r.content][0]
        assert hit.strength > 1.0 and hit.source_event_ids == [first, second]


def test_a_newer_value_supersedes_the_older_in_either_order(server):
    key = server.create_key(f"mm-slot-{uuid.uuid4().hex[:8]}", scopes="read,write")
    with MemsyClient(base_url=server.base_url, api_key=key) as client:
        for actor, order in (("in-order", ("paris", "berlin")), ("reversed", ("berlin", "paris"))):
            says = {
                "paris": ("I live in Paris.", "2025-01-10T09:00:00Z"),
                "berlin": ("I moved to Berlin.", "2025-06-01T09:00:00Z"),
            }
            for i, which in enumerate(order):
                content, ts = says[which]
                ingest_one(client, actor, content, f"s{i}", ts=ts)
            ms = {m.text: m for m in client.memories.list(actor_id=actor, status="all").items}
            paris, berlin = ms["I live in Paris."], ms["I moved to Berlin."]
            assert (berlin.status, berlin.effective_to) == ("active", None), actor
            assert paris.status == "superseded", actor
            assert paris.effective_to.startswith("2025-06-01T09:00:00"), (actor, paris.effective_to)
            # Superseded memories leave search but stay in the console.
            found = [r.content for r in client.search("where does the user live", actor_id=actor, threshold=0.0).results]
            assert "I moved to Berlin." in found and "I live in Paris." not in found, found
            assert [m.text for m in client.memories.list(actor_id=actor).items if "Paris" in m.text] == []
            assert [m.text for m in client.memories.list(actor_id=actor, status="superseded").items] == ["I live in Paris."]


def test_three_engineers_promote_a_preference_to_their_role(server):
    org = f"mm-promo-{uuid.uuid4().hex[:8]}"
    key = server.create_key(org, scopes="read,write,admin")
    with MemsyClient(base_url=server.base_url, api_key=key) as client:
        role = client.roles.create(org, "Engineer", "Engineering conventions").role_id
        for i in range(3):
            ingest_one(client, f"eng{i}", "I prefer tabs over spaces.", f"s{i}", role_id=role)
        promoted = [m for m in client.memories.list().items if m.scope.level == "role"]
        assert len(promoted) == 1, [(m.scope.level, m.text) for m in client.memories.list().items]
        p = promoted[0]
        assert p.scope.role_id == role and p.scope.actor_id is None and "tabs over spaces" in p.text
        assert len(p.source_event_ids) == 3
        # A new engineer's search finds it through role_ids, as role knowledge with no conversation.
        res = client.search("tabs or spaces?", actor_id="new-hire", role_ids=[role]).results
        assert res and res[0].id == p.memory_id, [(r.content, r.metadata.get("scope_level")) for r in res]
        assert res[0].session_id is None
        # Without the role it is not theirs.
        assert all(r.id != p.memory_id for r in client.search("tabs or spaces?", actor_id="new-hire").results)


def test_search_hits_grow_stronger_in_the_background(server):
    key = server.create_key(f"mm-recall-{uuid.uuid4().hex[:8]}", scopes="read,write")
    with MemsyClient(base_url=server.base_url, api_key=key) as client:
        ingest_one(client, "alice", "My favourite colour is teal.", "s1")
        first = [r for r in client.search("favourite colour", actor_id="alice").results if "teal" in r.content][0]
        assert first.strength == 1.0
        for _ in range(3):
            client.search("favourite colour", actor_id="alice")
        deadline = time.time() + 10
        while True:
            m = client.memories.get(first.id)
            if m.recall_count >= 4:
                break
            assert time.time() < deadline, (m.recall_count, m.strength)
            time.sleep(0.1)
        assert m.last_recalled_at and 1.35 <= m.strength <= 1.45, m.strength
        again = [r for r in client.search("favourite colour", actor_id="alice").results if r.id == first.id][0]
        assert again.strength > 1.3
