"""The memory pipeline through the public memsy SDK (0.3.5): ingest,
status until completed, natural-language search with actor and tenant
scoping."""

from __future__ import annotations

import asyncio
import time

import pytest
from memsy import AsyncMemsyClient, EventPayload, MemsyClient
from memsy.exceptions import AuthenticationError, AuthorizationError, MemsyAPIError


def wait_settled(client: MemsyClient, ids: list[str], timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while True:
        s = client.status(ids)
        if not s.pending_ids:
            assert sorted(s.completed_ids) == sorted(ids), s
            return
        assert time.time() < deadline, f"still pending: {s}"
        time.sleep(0.2)


def test_rex_is_found_for_its_actor_only(server):
    key = server.create_key("acme")
    other_org_key = server.create_key("globex")
    with MemsyClient(base_url=server.base_url, api_key=key) as client:
        r1 = client.ingest([EventPayload(actor_id="user_42", session_id="sess-a", kind="user_message", content="My dog's name is Rex.")])
        r2 = client.ingest([EventPayload(actor_id="user_42", session_id="sess-b", kind="user_message", content="Book a vet visit for tomorrow.")])
        ids = r1.event_ids + r2.event_ids
        assert len(ids) == 2
        wait_settled(client, ids)
        st = client.status(ids)
        assert st.total == 2 and st.statuses == {i: "completed" for i in ids}

        res = client.search("pets", actor_id="user_42")
        rex = [r for r in res.results if "Rex" in r.content]
        assert rex, [r.content for r in res.results]
        hit = rex[0]
        assert 0.0 <= hit.score <= 1.0
        assert hit.session_id == "sess-a"
        assert hit.source_event_ids == r1.event_ids
        assert hit.strength == 1.0 and hit.kind and hit.type and hit.title and hit.observed_at
        assert any(e.get("name") == "Rex" for e in hit.entities)

        with_src = client.search("my dog", actor_id="user_42", include_source_events=True)
        src = [r for r in with_src.results if "Rex" in r.content][0].source_events
        assert src and src[0].event_id == r1.event_ids[0] and src[0].content == "My dog's name is Rex."

        other_actor = client.search("pets", actor_id="user_7")
        assert all("Rex" not in r.content for r in other_actor.results)
        only_b = client.search("pets", actor_id="user_42", session_id="sess-b")
        assert all("Rex" not in r.content for r in only_b.results)

    with MemsyClient(base_url=server.base_url, api_key=other_org_key) as foreign:
        assert all("Rex" not in r.content for r in foreign.search("pets").results)
        assert all("Rex" not in r.content for r in foreign.search("pets", actor_id="user_42").results)
        st = foreign.status(ids)
        assert st.failed_ids == ids and set(st.statuses.values()) == {"not_found"}


def test_errors_are_typed(server):
    key = server.create_key("acme", scopes="read")
    with MemsyClient(base_url=server.base_url, api_key="msy_definitely_invalid", max_retries=0) as bad:
        with pytest.raises(AuthenticationError):
            bad.health()
    with MemsyClient(base_url=server.base_url, api_key=key, max_retries=0) as ro:
        assert ro.health().status == "ok"
        with pytest.raises(AuthorizationError) as e:
            ro.ingest([EventPayload(actor_id="a", session_id="s", kind="user_message", content="hi there friend")])
        assert e.value.required_scope == "write"
    rw = server.create_key("acme")
    with MemsyClient(base_url=server.base_url, api_key=rw, max_retries=0) as client:
        with pytest.raises(MemsyAPIError) as e:
            client.ingest([EventPayload(actor_id="a", session_id="s", kind="not_a_real_kind", content="x")])
        assert e.value.status_code == 422 and "events[0].kind" in e.value.detail
        with pytest.raises(MemsyAPIError) as e:
            client.search("q", session_id="a", exclude_session_id="b")
        assert e.value.status_code == 422
        # An empty string counts as unset.
        client.search("q", session_id="", exclude_session_id="b")


def test_async_client(server):
    key = server.create_key("acme-async")

    async def main():
        async with AsyncMemsyClient(base_url=server.base_url, api_key=key) as ac:
            assert (await ac.health()).status == "ok"
            ing = await ac.ingest([EventPayload(actor_id="u1", session_id="s1", kind="user_message", content="I prefer dark mode in all apps.")])
            deadline = time.time() + 60
            while (await ac.status(ing.event_ids)).pending_ids:
                assert time.time() < deadline
                await asyncio.sleep(0.2)
            res = await ac.search("user interface preferences", actor_id="u1")
            assert any("dark mode" in r.content for r in res.results)

    asyncio.run(main())
