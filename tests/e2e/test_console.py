"""Console reads through the public memsy SDK (0.3.5): browsing memories
(`client.memories`), their aggregates, and the actors derived from them
(`client.actors`), against memories the real pipeline extracted."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from memsy import AsyncMemsyClient, EventPayload, MemsyClient
from memsy.exceptions import AuthorizationError, MemsyAPIError

from test_sdk import wait_settled

# (actor_id, content, ts): each of these yields at least one memory with the
# rules extractor; the timestamps make observed_at differ from one to the next.
EVENTS = [
    ("alice", "I prefer dark mode in all apps.", "2025-03-01T09:00:00Z"),
    ("alice", "My dog's name is Rex.", "2025-03-02T09:00:00Z"),
    ("alice", "Book a vet visit for tomorrow.", "2025-03-03T09:00:00Z"),
    ("bob", "I live in Paris.", "2025-03-04T09:00:00Z"),
    ("bob", "I'm allergic to peanuts.", "2025-03-05T09:00:00Z"),
    # A '/' in an actor id must survive the SDK's percent-encoding.
    ("team/Carol", "My favourite editor is Neovim.", "2025-03-06T09:00:00Z"),
]
ACTORS = sorted({a for a, _, _ in EVENTS})

# Every sort the SDK documents: (sort key, descending).
MEMORY_SORTS = {
    "observed_at_desc": (lambda m: m.observed_at, True),
    "observed_at_asc": (lambda m: m.observed_at, False),
    "strength_desc": (lambda m: m.strength, True),
    "confidence_desc": (lambda m: m.confidence, True),
    "created_at_desc": (lambda m: m.created_at, True),
}
ACTOR_SORTS = {
    "first_memory_desc": (lambda a: a.first_memory_at, True),
    "first_memory_asc": (lambda a: a.first_memory_at, False),
    "last_memory_desc": (lambda a: a.last_memory_at, True),
    "actor_id_asc": (lambda a: a.actor_id, False),
}


def ingest(client: MemsyClient, events: list[tuple[str, str, str]]) -> list[str]:
    payloads = [
        EventPayload(actor_id=a, session_id=f"sess-{i}", kind="user_message", content=c, ts=ts)
        for i, (a, c, ts) in enumerate(events)
    ]
    ids = client.ingest(payloads).event_ids
    wait_settled(client, ids)
    return ids


@pytest.fixture(scope="module")
def world(server):
    """One org with memories for three actors, and another org with one."""
    org = f"console-{uuid.uuid4().hex[:10]}"
    other_org = f"console-other-{uuid.uuid4().hex[:10]}"
    key, other_key = server.create_key(org), server.create_key(other_org)
    with MemsyClient(base_url=server.base_url, api_key=key) as c:
        ingest(c, EVENTS)
        every = c.memories.list(status="all", limit=200)
    with MemsyClient(base_url=server.base_url, api_key=other_key) as c:
        ingest(c, [("mallory", "I prefer light mode in all apps.", "2025-01-01T00:00:00Z")])
        foreign = c.memories.list(limit=200).items
    assert {m.scope.actor_id for m in every.items} == set(ACTORS), [m.text for m in every.items]
    assert foreign, "the other org's event yielded no memory"
    return {"org": org, "key": key, "other_org": other_org, "other_key": other_key,
            "memories": every.items, "foreign": foreign}


@pytest.fixture
def client(server, world):
    with MemsyClient(base_url=server.base_url, api_key=world["key"], max_retries=0) as c:
        yield c


def expected_order(items, key, descending, id_of):
    """The id (memory_id or actor_id) ascending breaks ties whatever the direction."""
    tiebroken = sorted(items, key=id_of)
    return [id_of(i) for i in sorted(tiebroken, key=key, reverse=descending)]


def assert_sorts_and_pages(list_page, items, sorts, id_of) -> None:
    """Each of `sorts` lists `items` in its order, and pages of one item list
    them in the same order, each exactly once."""
    n = len(items)
    for sort, (key, descending) in sorts.items():
        got = [id_of(i) for i in list_page(sort=sort).items]
        assert got == expected_order(items, key, descending, id_of), sort
        paged = []
        for offset in range(n):
            p = list_page(sort=sort, limit=1, offset=offset)
            assert p.total == n and p.limit == 1 and p.offset == offset and len(p.items) == 1
            paged.append(id_of(p.items[0]))
        assert paged == got, sort
        assert sorted(paged) == sorted(id_of(i) for i in items)
        assert list_page(sort=sort, offset=n).items == []


# ---------------------------------------------------------------- memories


def test_list_shape_and_filters(client, world):
    all_items = world["memories"]
    n = len(all_items)
    assert n >= len(EVENTS)
    page = client.memories.list()
    assert page.total == n and len(page.items) == n and page.limit == 50 and page.offset == 0
    for m in page.items:
        assert m.org_id == world["org"]
        assert m.scope.level == "actor" and m.scope.actor_id in ACTORS
        assert m.status == "active" and m.kind == m.memory_kind and m.type and m.text
        assert 0.0 < m.confidence <= 1.0 and m.strength == 1.0 and m.recall_count == 0
        assert uuid.UUID(m.memory_id).version == 5
        assert m.source_event_ids and m.source_urls == [] and m.observed_at and m.created_at and m.updated_at
        assert m.payload and m.payload["session_id"].startswith("sess-") and "title" in m.payload

    rex = [m for m in page.items if "Rex" in m.text]
    assert rex and {"name": "Rex", "type": "pet"} in rex[0].entity_refs
    assert rex[0].scope.actor_id == "alice"

    for actor in ACTORS:
        mine = client.memories.list(actor_id=actor)
        assert mine.total == sum(1 for m in all_items if m.scope.actor_id == actor) > 0
        assert {m.scope.actor_id for m in mine.items} == {actor}
    assert client.memories.list(actor_id="nobody").total == 0

    for t, count in Counter(m.type for m in all_items).items():
        assert {m.type for m in client.memories.list(type=t).items} == {t}
        assert client.memories.list(type=t).total == count
    for k, count in Counter(m.memory_kind for m in all_items).items():
        got = client.memories.list(kind=k)
        assert got.total == count and {m.memory_kind for m in got.items} == {k}
    assert client.memories.list(type="preference", actor_id="alice").total == 1

    # Nothing in this pipeline supersedes or archives: every memory is active.
    assert client.memories.list(status="active").total == n
    assert client.memories.list(status="all").total == n
    assert client.memories.list(status="any").total == n
    assert client.memories.list(status="superseded").total == 0
    assert client.memories.list(status="archived").total == 0

    dark = client.memories.list(search="DARK mode")
    assert dark.total == 1 and "dark mode" in dark.items[0].text
    assert client.memories.list(search="neovim").items[0].scope.actor_id == "team/Carol"
    assert client.memories.list(search="no such words anywhere").total == 0
    # The other org's memory (light mode) is not visible.
    assert client.memories.list(search="light mode").total == 0


def test_every_sort_and_stable_paging(client, world):
    assert_sorts_and_pages(client.memories.list, world["memories"], MEMORY_SORTS, lambda m: m.memory_id)
    observed = [m.observed_at for m in client.memories.list(sort="observed_at_asc").items]
    assert observed == sorted(observed) and observed[0].startswith("2025-03-01")


def test_bad_list_parameters_are_422(client):
    for kwargs, field in [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"offset": -1}, "offset"),
        ({"sort": "strength_asc"}, "sort"),
        ({"status": "deleted"}, "status"),
    ]:
        with pytest.raises(MemsyAPIError) as e:
            client.memories.list(**kwargs)
        assert e.value.status_code == 422, kwargs
        assert field in e.value.detail, (kwargs, e.value.detail)
    assert client.memories.list(limit=200).limit == 200
    assert client.memories.list(limit=1).limit == 1


def test_get_one_memory(client, world):
    for m in world["memories"]:
        got = client.memories.get(m.memory_id)
        assert got == m
    one = world["memories"][0]
    assert client.memories.get(one.memory_id.upper()).memory_id == one.memory_id

    with pytest.raises(MemsyAPIError) as e:
        client.memories.get("not-a-uuid")
    assert e.value.status_code == 422 and "memory_id" in e.value.detail
    with pytest.raises(MemsyAPIError) as e:
        client.memories.get(str(uuid.uuid4()))
    assert e.value.status_code == 404
    with pytest.raises(MemsyAPIError) as e:
        client.memories.get(world["foreign"][0].memory_id)
    assert e.value.status_code == 404


def test_stats_match_the_lists(client, world):
    items = world["memories"]
    s = client.memories.stats()
    assert s.total == s.total_memories == client.memories.list(status="all").total == len(items)
    assert s.active_memories == client.memories.list().total
    assert s.by_status == {"active": len(items)}
    assert s.by_type == dict(Counter(m.type for m in items))
    assert s.by_kind == dict(Counter(m.memory_kind for m in items))
    for t, count in s.by_type.items():
        assert client.memories.list(type=t, status="all").total == count
    assert s.avg_strength == pytest.approx(1.0)
    assert s.avg_confidence == pytest.approx(sum(m.confidence for m in items) / len(items), abs=1e-5)
    assert {"name": "Rex", "type": "pet", "count": 1} in s.top_entities
    assert len(s.top_entities) <= 10
    counts = [e["count"] for e in s.top_entities]
    assert counts == sorted(counts, reverse=True)
    assert [b["range"] for b in s.confidence_buckets] == ["0.0-0.2", "0.2-0.4", "0.4-0.6", "0.6-0.8", "0.8-1.0"]
    assert sum(b["count"] for b in s.confidence_buckets) == len(items)
    for b in s.confidence_buckets:
        assert b["count"] == sum(1 for m in items if b["min"] <= m.confidence < b["max"] or (b["max"] == 1.0 and m.confidence == 1.0))
    observed = sorted(m.observed_at for m in items)
    assert s.date_range == {"earliest": observed[0], "latest": observed[-1]}


def test_stats_of_an_empty_org(server):
    key = server.create_key(f"console-empty-{uuid.uuid4().hex[:10]}", scopes="read")
    with MemsyClient(base_url=server.base_url, api_key=key, max_retries=0) as c:
        s = c.memories.stats()
        assert (s.total, s.total_memories, s.active_memories) == (0, 0, 0)
        assert (s.avg_confidence, s.avg_strength) == (0.0, 0.0)
        assert s.by_type == {} and s.top_entities == []
        assert s.date_range == {"earliest": None, "latest": None}
        assert [b["count"] for b in s.confidence_buckets] == [0] * 5
        assert c.memories.list().total == 0
        page = c.actors.list()
        assert page.total == 0 and page.items == [] and page.truncated is False


def test_reads_need_the_read_scope(server, world):
    key = server.create_key(world["org"], scopes="write")
    with MemsyClient(base_url=server.base_url, api_key=key, max_retries=0) as c:
        for call in (c.memories.list, c.memories.stats, c.actors.list, lambda: c.actors.get("alice")):
            with pytest.raises(AuthorizationError) as e:
                call()
            assert e.value.required_scope == "read"


def test_served_at_the_root_too(server, world):
    with MemsyClient(base_url=server.root_url, api_key=world["key"], max_retries=0) as c:
        assert c.memories.list().total == len(world["memories"])
        assert c.actors.get("team/Carol").actor_id == "team/Carol"


# ---------------------------------------------------------------- actors


def test_actors_are_folded_from_memories(client, world):
    items = world["memories"]
    page = client.actors.list()
    assert page.total == len(ACTORS) and page.limit == 100 and page.offset == 0 and page.truncated is False
    assert sorted(a.actor_id for a in page.items) == ACTORS
    for a in page.items:
        mine = [m for m in items if m.scope.actor_id == a.actor_id]
        assert a.memory_count == len(mine) == client.memories.list(actor_id=a.actor_id, status="all").total
        assert a.active_memory_count == len(mine)
        assert a.first_memory_at == min(m.created_at for m in mine)
        assert a.last_memory_at == max(m.created_at for m in mine)
        assert a.scope_levels == ["actor"] and a.role_ids == [] and a.team_ids == []
        assert client.actors.get(a.actor_id) == a
    # Passing one's own org is allowed.
    assert client.actors.list(org_id=world["org"]).total == len(ACTORS)
    assert client.actors.get("alice", org_id=world["org"]).actor_id == "alice"


def test_actor_sorts_q_and_paging(client):
    everyone = client.actors.list().items
    assert_sorts_and_pages(client.actors.list, everyone, ACTOR_SORTS, lambda a: a.actor_id)
    assert [a.actor_id for a in client.actors.list(sort="actor_id_asc").items] == ACTORS

    q = client.actors.list(q="CAROL")
    assert q.total == 1 and [a.actor_id for a in q.items] == ["team/Carol"]
    q = client.actors.list(q="b")
    assert {a.actor_id for a in q.items} == {"bob"}
    assert client.actors.list(q="zzz").total == 0
    two = client.actors.list(limit=2, offset=2, sort="actor_id_asc")
    assert two.total == 3 and [a.actor_id for a in two.items] == ACTORS[2:]


def test_actor_errors(client, world):
    for sort in ["memory_count_desc", "memory_count_asc", "bogus"]:
        with pytest.raises(MemsyAPIError) as e:
            client.actors.list(sort=sort)  # type: ignore[arg-type]
        assert e.value.status_code == 422 and "sort" in e.value.detail
    for limit in [0, 501]:
        with pytest.raises(MemsyAPIError) as e:
            client.actors.list(limit=limit)
        assert e.value.status_code == 422
    assert client.actors.list(limit=500).limit == 500

    # "mallory" is the other org's actor, not this org's; and a '/' is one
    # opaque segment, never a path to somewhere else.
    for actor_id in ["nobody", "mallory", "team", "../actors"]:
        with pytest.raises(MemsyAPIError) as e:
            client.actors.get(actor_id)
        assert e.value.status_code == 404, actor_id

    for call in (lambda: client.actors.list(org_id="other"), lambda: client.actors.get("alice", org_id="other"),
                 lambda: client.actors.list(org_id=world["other_org"])):
        with pytest.raises(AuthorizationError) as e:
            call()
        assert e.value.status_code == 403 and e.value.error_code == "org_mismatch"


def test_slash_in_actor_id_round_trips(client):
    a = client.actors.get("team/Carol")
    assert a.actor_id == "team/Carol" and a.memory_count >= 1
    m = client.memories.list(actor_id="team/Carol")
    assert m.total == a.memory_count and m.items[0].scope.actor_id == "team/Carol"


# ---------------------------------------------------------------- async


def test_async_client(server, world):
    async def main():
        async with AsyncMemsyClient(base_url=server.base_url, api_key=world["key"], max_retries=0) as ac:
            page = await ac.memories.list(sort="observed_at_asc", limit=2, offset=1)
            assert page.total == len(world["memories"]) and len(page.items) == 2
            one = await ac.memories.get(page.items[0].memory_id)
            assert one == page.items[0]
            stats = await ac.memories.stats()
            assert stats.total == len(world["memories"])
            actors = await ac.actors.list(sort="actor_id_asc", q="a")
            assert [a.actor_id for a in actors.items] == ["alice", "team/Carol"]
            carol = await ac.actors.get("team/Carol")
            assert carol == actors.items[1]
            with pytest.raises(MemsyAPIError) as e:
                await ac.memories.get("not-a-uuid")
            assert e.value.status_code == 422
            with pytest.raises(MemsyAPIError) as e:
                await ac.memories.list(limit=201)
            assert e.value.status_code == 422
            with pytest.raises(MemsyAPIError) as e:
                await ac.actors.list(sort="memory_count_desc")  # type: ignore[arg-type]
            assert e.value.status_code == 422
            with pytest.raises(MemsyAPIError) as e:
                await ac.actors.get("nobody")
            assert e.value.status_code == 404
            with pytest.raises(AuthorizationError):
                await ac.actors.list(org_id="other")

    asyncio.run(main())
