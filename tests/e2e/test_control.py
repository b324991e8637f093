"""The control plane (`/api`) and the usage surface through the memsy 0.3.5
SDK: identity, API keys, usage summary and time series, raw events,
billing/interest/connectors answers, usage and rate-limit headers, quotas
and rate limits (with the SDK's own `Retry-After` retry)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timezone

import httpx
import pytest
from memsy import AsyncMemsyClient, AsyncMemsyControlClient, EventPayload, MemsyClient, MemsyControlClient
from memsy.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BillingNotEnabledError,
    FeatureNotAvailable,
    KeyLimitReachedError,
    MemsyAPIError,
    RateLimitExceeded,
)

from test_sdk import wait_settled


def org_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def ev(actor: str, content: str, session: str = "s1", kind: str = "user_message", **kw) -> EventPayload:
    return EventPayload(actor_id=actor, session_id=session, kind=kind, content=content, **kw)


def test_me_and_health(server):
    org = org_name("ctl")
    admin = server.create_key(org, scopes="admin", name="ops")
    reader = server.create_key(org, scopes="read", name="dash")
    with MemsyControlClient(base_url=server.control_url, api_key=admin) as c:
        me = c.me()
        assert me.org_id == org and me.customer_id == org
        assert me.tier == "self-hosted" and me.org_role == "admin"
        assert me.is_superadmin is False and me.is_billing_admin is False
        h = c.health()
        assert h.status == "ok" and h.billing_enabled is False
    with MemsyControlClient(base_url=server.control_url, api_key=reader) as c:
        assert c.me().org_role == "member"
    with MemsyControlClient(base_url=server.control_url, api_key="msy_nope", max_retries=0) as c:
        with pytest.raises(AuthenticationError):
            c.me()


def test_keys_lifecycle(server):
    org = org_name("keys")
    admin = server.create_key(org, scopes="admin", name="ops")
    with MemsyControlClient(base_url=server.control_url, api_key=admin) as c:
        listed = c.keys.list()
        assert listed.active_count == 1 and listed.max_keys == 100
        assert [k.name for k in listed.keys] == ["ops"]
        ops = listed.keys[0]
        assert ops.is_active and ops.scopes == ["admin"] and admin.startswith(ops.prefix)
        assert ops.last_used_at  # this very call used it

        created = c.keys.create("ci", scopes=["read"])
        assert created.raw_key.startswith("msy_") and created.raw_key.startswith(created.prefix)
        assert created.scopes == ["read"] and created.name == "ci"
        # The raw key is never listed again.
        listed = c.keys.list()
        assert listed.active_count == 2
        assert all(not hasattr(k, "raw_key") for k in listed.keys)
        assert {k.key_id for k in listed.keys} == {ops.key_id, created.key_id}

        # The new key works at once, with its scope only.
        with MemsyClient(base_url=server.base_url, api_key=created.raw_key, max_retries=0) as ro:
            assert ro.health().status == "ok"
            ro.search("anything")
            with pytest.raises(AuthorizationError) as e:
                ro.ingest([ev("a", "hello")])
            assert e.value.required_scope == "write" and e.value.status_code == 403

        usage = c.keys.usage(created.key_id)
        calls = {u["dimension"]: u["quantity"] for u in usage if u["date"] == datetime.now(timezone.utc).strftime("%Y-%m-%d")}
        assert calls.get("api_calls", 0) >= 3 and calls.get("search_queries") == 1, usage

        with pytest.raises(MemsyAPIError) as e:
            c.keys.create("bad", scopes=["root"])
        assert e.value.status_code == 422
        for blank in ("", "   "):
            with pytest.raises(MemsyAPIError) as e:
                c.keys.create(blank, scopes=["read"])
            assert e.value.status_code == 422 and "name" in e.value.detail
        with pytest.raises(MemsyAPIError) as e:
            c.keys.create("old", scopes=["read"], expires_at="2001-01-01T00:00:00Z")
        assert e.value.status_code == 422

        # Revocation is seen within a second.
        c.keys.delete(created.key_id)
        deadline = time.time() + 1.0
        with MemsyClient(base_url=server.base_url, api_key=created.raw_key, max_retries=0) as ro:
            while True:
                try:
                    ro.health()
                except AuthenticationError:
                    break
                assert time.time() < deadline, "revoked key still accepted after 1 s"
                time.sleep(0.05)
        with pytest.raises(MemsyAPIError) as e:
            c.keys.delete(created.key_id)
        assert e.value.status_code == 404
        with pytest.raises(MemsyAPIError) as e:
            c.keys.usage("no-such-key")
        assert e.value.status_code == 404


def test_keys_of_another_org_are_invisible(server):
    a = server.create_key(org_name("ka"), scopes="admin")
    b_org = org_name("kb")
    b = server.create_key(b_org, scopes="admin")
    with MemsyControlClient(base_url=server.control_url, api_key=b) as cb:
        b_key = cb.keys.list().keys[0]
    with MemsyControlClient(base_url=server.control_url, api_key=a) as ca:
        assert b_key.key_id not in {k.key_id for k in ca.keys.list().keys}
        with pytest.raises(MemsyAPIError) as e:
            ca.keys.delete(b_key.key_id)
        assert e.value.status_code == 404
        with pytest.raises(MemsyAPIError) as e:
            ca.keys.usage(b_key.key_id)
        assert e.value.status_code == 404
    with MemsyClient(base_url=server.base_url, api_key=b) as still:
        assert still.health().status == "ok"


def test_key_limit_of_the_plan(server):
    admin = server.create_key("quota-org", scopes="admin", name="quota-admin")
    with MemsyControlClient(base_url=server.control_url, api_key=admin) as c:
        assert c.keys.list().max_keys == 3
        made = []
        with pytest.raises(KeyLimitReachedError) as e:
            for i in range(5):
                made.append(c.keys.create(f"k{i}", scopes=["read"]))
        assert e.value.limit == 3 and e.value.current == 3
        for k in made:
            c.keys.delete(k.key_id)


def test_read_only_key_is_refused_admin_routes(server):
    reader = server.create_key(org_name("ro"), scopes="read")
    with MemsyControlClient(base_url=server.control_url, api_key=reader, max_retries=0) as c:
        for call in (c.keys.list, c.usage.summary, lambda: c.keys.create("x"), lambda: c.keys.delete("x"), c.usage.timeseries):
            with pytest.raises(AuthorizationError) as e:
                call()
            assert e.value.status_code == 403 and e.value.required_scope == "admin"
        # Reading raw events only needs read.
        assert c.events.list().total == 0


def test_usage_counts_headers_and_timeseries(server):
    org = org_name("use")
    key = server.create_key(org, scopes="read,write,admin")
    with MemsyClient(base_url=server.base_url, api_key=key) as client:
        r1 = client.ingest([ev("alice", "I prefer green tea."), ev("alice", "My cat is called Tom.")])
        assert r1.usage is not None and r1.usage.plan == "self-hosted"
        assert r1.usage.events_ingested == 2 and r1.usage.events_ingested_limit is None
        assert r1.rate_limit is not None and r1.rate_limit.limit and r1.rate_limit.remaining is not None
        assert r1.rate_limit.reset and r1.rate_limit.reset >= int(time.time())
        # A retried batch within the de-duplication window is not counted twice.
        client.ingest([ev("alice", "I prefer green tea.")])
        r2 = client.ingest([ev("bob", "I live in Lisbon.")])
        assert r2.usage.events_ingested == 3
        wait_settled(client, r1.event_ids + r2.event_ids)
        s = client.search("tea", actor_id="alice")
        assert s.usage.search_queries == 1
        client.search("cats")
        h = client.health()
        assert h.usage.api_calls >= 6 and h.usage.search_queries == 2
        memories = client.memories.list(status="all", limit=200).total if hasattr(client, "memories") else None

    with MemsyControlClient(base_url=server.control_url, api_key=key) as c:
        summary = c.usage.summary()
        assert summary.org_id == org and summary.tier == "self-hosted"
        assert summary.period_start < summary.period_end
        used = {d.dimension: d.used for d in summary.dimensions}
        assert set(used) == {"api_calls", "events_ingested", "memories_stored", "search_queries", "llm_tokens"}
        assert used["events_ingested"] == 3 and used["search_queries"] == 2 and used["llm_tokens"] == 0
        assert used["api_calls"] >= 7
        assert used["memories_stored"] >= 1
        if memories is not None:
            assert used["memories_stored"] == memories
        assert all(d.limit is None for d in summary.dimensions)

        today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        daily = c.usage.timeseries(dimension="events_ingested")
        assert daily.org_id == org and daily.granularity == "daily"
        points = {p.date: p.quantity for p in daily.data}
        assert points[today] == 3 and all(p.dimension == "events_ingested" for p in daily.data)
        hourly = c.usage.timeseries(granularity="hourly", dimension="search_queries", period_start=today, period_end=today)
        assert len(hourly.data) == 24 and sum(p.quantity for p in hourly.data) == 2
        everything = c.usage.timeseries(period_start=today, period_end=today)
        assert {p.dimension for p in everything.data} == set(used)
        # A period_end alone ends its month, whichever month that is.
        january = c.usage.timeseries(dimension="api_calls", period_end="2025-01-31")
        assert [p.date for p in january.data] == [f"2025-01-{d:02}" for d in range(1, 32)]
        assert all(p.quantity == 0 for p in january.data)
        for bad in ({"granularity": "weekly"}, {"dimension": "bananas"}, {"period_start": "yesterday"},
                    {"period_start": today, "period_end": "2000-01-01"}):
            with pytest.raises(MemsyAPIError) as e:
                c.usage.timeseries(**bad)
            assert e.value.status_code == 422, bad


def test_console_events(server):
    org = org_name("evt")
    key = server.create_key(org, scopes="read,write")
    with MemsyClient(base_url=server.base_url, api_key=key) as client:
        ids = client.ingest([
            ev("alice", "first", session="s1", ts="2025-01-01T10:00:00Z", metadata='{"source": "crm"}'),
            ev("alice", "second", session="s2", kind="assistant_message", ts="2025-01-02T10:00:00Z"),
            ev("bob", "third", session="s1", kind="tool_result", ts="2025-01-03T10:00:00Z", metadata="plain text"),
        ]).event_ids
        wait_settled(client, ids)
    with MemsyControlClient(base_url=server.control_url, api_key=key) as c:
        page = c.events.list()
        assert page.total == 3 and [e.content for e in page.items] == ["third", "second", "first"]
        first = page.items[2]
        assert first.event_id == ids[0] and first.org_id == org and first.actor_id == "alice"
        assert first.session_id == "s1" and first.kind == "user_message" and first.ts.startswith("2025-01-01T10:00:00")
        assert first.metadata == {"source": "crm"} and first.ingested_at
        assert page.items[0].metadata == {"raw": "plain text"}
        assert [e.content for e in c.events.list(sort="ts_asc").items] == ["first", "second", "third"]
        assert [e.content for e in c.events.list(actor_id="alice").items] == ["second", "first"]
        assert [e.content for e in c.events.list(session_id="s1").items] == ["third", "first"]
        assert [e.content for e in c.events.list(kind="assistant_message").items] == ["second"]
        paged = [c.events.list(limit=1, offset=i).items[0].content for i in range(3)]
        assert paged == ["third", "second", "first"]
        assert c.events.list(offset=5).items == []
        for bad in ({"sort": "newest"}, {"limit": 0}, {"limit": 201}, {"kind": "chat"}, {"offset": -1}):
            with pytest.raises(MemsyAPIError) as e:
                c.events.list(**bad)
            assert e.value.status_code == 422, bad
    # Another org sees none of them.
    other = server.create_key(org_name("evt-other"), scopes="read")
    with MemsyControlClient(base_url=server.control_url, api_key=other) as c:
        assert c.events.list().total == 0


def test_billing_interest_and_connectors_are_not_part_of_self_hosting(server):
    key = server.create_key(org_name("bill"), scopes="admin")
    with MemsyControlClient(base_url=server.control_url, api_key=key, max_retries=0) as c:
        for call in (c.billing.summary, c.billing.invoices, c.interest.status,
                     lambda: c.interest.express("a@example.com", "A")):
            with pytest.raises(BillingNotEnabledError) as e:
                call()
            assert e.value.status_code == 403 and e.value.interest_path
        for call in (c.connectors.list_providers, c.connectors.list, lambda: c.connectors.create("slack"),
                     lambda: c.connectors.status("slack")):
            with pytest.raises(FeatureNotAvailable) as e:
                call()
            assert e.value.feature == "connectors" and e.value.status_code == 403


def _record_statuses(client) -> list[int]:
    seen: list[int] = []
    client._client.event_hooks["response"].append(lambda r: seen.append(r.status_code))
    return seen


def _start_of_window(window: float = 2.0) -> None:
    """Waits for the next rate window to begin, so that a burst lands in one
    fresh window."""
    current = int(time.time() // window)
    while int(time.time() // window) == current:
        time.sleep(0.01)


def test_rate_limit_with_retry_after_honoured_by_the_sdk(server):
    key = server.create_key("rl-org", scopes="read,write", name=f"rl-{uuid.uuid4().hex[:6]}")
    with MemsyClient(base_url=server.base_url, api_key=key, max_retries=0) as strict:
        _start_of_window()
        first = strict.health()
        assert first.rate_limit.limit == 3 and first.rate_limit.remaining == 2
        strict.health()
        strict.health()
        # The core client without retries reports a 429 as a plain MemsyAPIError.
        with pytest.raises(MemsyAPIError) as e:
            strict.health()
        assert e.value.status_code == 429
    # The control client classifies it: the typed error with the server's Retry-After.
    with MemsyControlClient(base_url=server.control_url, api_key=key, max_retries=0) as strict:
        _start_of_window()
        for _ in range(3):
            strict.me()
        with pytest.raises(RateLimitExceeded) as e:
            strict.me()
        assert e.value.status_code == 429 and e.value.error_code == "rate_limited"
        assert e.value.retry_after is not None and 0 < e.value.retry_after <= 2
        r = e.value.response
        assert r.headers["X-RateLimit-Remaining"] == "0" and r.headers["X-Plan"] == "tiny"
    with MemsyClient(base_url=server.base_url, api_key=key, max_retries=3) as patient:
        seen = _record_statuses(patient)
        _start_of_window()
        started = time.time()
        for _ in range(4):
            assert patient.health().status == "ok"
        assert 429 in seen and seen[-1] == 200, seen
        assert time.time() - started >= 0.5


def test_async_rate_limit_and_control_client(server):
    key = server.create_key("rl-org", scopes="read,admin", name=f"rl-async-{uuid.uuid4().hex[:6]}")

    async def main():
        async with AsyncMemsyClient(base_url=server.base_url, api_key=key, max_retries=0) as ac:
            _start_of_window()
            results = await asyncio.gather(*[ac.health() for _ in range(4)], return_exceptions=True)
            limited = [r for r in results if isinstance(r, MemsyAPIError) and r.status_code == 429]
            assert len(limited) == 1, results
        await asyncio.sleep(2.1)
        async with AsyncMemsyControlClient(base_url=server.control_url, api_key=key) as cc:
            me = await cc.me()
            assert me.org_id == "rl-org" and me.tier == "tiny"
            keys = await cc.keys.list()
            assert any(k.name.startswith("rl-async-") for k in keys.keys)
            summary = await cc.usage.summary()
            assert summary.tier == "tiny"
            await asyncio.sleep(2.1)
            page = await cc.events.list(limit=5)
            assert page.limit == 5

    asyncio.run(main())


def test_quotas_refuse_past_the_limit(server):
    key = server.create_key("quota-org", scopes="read,write", name=f"q-{uuid.uuid4().hex[:6]}")
    with MemsyClient(base_url=server.base_url, api_key=key, max_retries=0) as client:
        ok = client.ingest([ev("q", f"quota event {i}") for i in range(5)])
        assert ok.usage.events_ingested == 5 and ok.usage.events_ingested_limit == 5
        # The core client reports every 429 as a plain MemsyAPIError (it only
        # retries them); the body says which quota, as the raw call below shows.
        with pytest.raises(MemsyAPIError) as e:
            client.ingest([ev("q", "one too many")])
        assert e.value.status_code == 429
        raw = httpx.post(f"{server.base_url}/ingest", headers={"Authorization": f"Bearer {key}"},
                         json={"events": [ev("q", "still too many").to_dict()]})
        assert raw.status_code == 429 and "Retry-After" not in raw.headers
        detail = raw.json()["detail"]
        assert (detail["error"], detail["dimension"], detail["current"], detail["limit"]) == \
            ("usage_limit_exceeded", "events_ingested", 5, 5)
        assert raw.headers["X-Usage-EventsIngested"] == "5" and raw.headers["X-Usage-EventsIngested-Limit"] == "5"
        for i in range(3):
            client.search(f"query {i}")
        with pytest.raises(MemsyAPIError) as e:
            client.search("query 4")
        assert e.value.status_code == 429
        # Reads that use no quota still work.
        assert client.health().usage.search_queries == 3
    with MemsyControlClient(base_url=server.control_url, api_key=server.create_key("quota-org", scopes="admin", name=f"qa-{uuid.uuid4().hex[:6]}")) as c:
        used = {d.dimension: (d.used, d.limit) for d in c.usage.summary().dimensions}
        assert used["events_ingested"] == (5, 5) and used["search_queries"] == (3, 3)
        # Nothing of the refused batches was stored.
        deadline = time.time() + 30
        while c.events.list().total < 5 and time.time() < deadline:
            time.sleep(0.2)
        assert {e.content for e in c.events.list().items} == {f"quota event {i}" for i in range(5)}
