"""Two gateways in separate processes (`memsy gateway`) on one NATS and one
Redis, as a scaled-out deployment runs them: a key revoked through one is
refused by the other within a second, and both count against the same
rate window."""

from __future__ import annotations

import time
import uuid

import pytest
from memsy import MemsyControlClient
from memsy.exceptions import AuthenticationError, RateLimitExceeded

from conftest import extra_gateways
from test_control import _start_of_window


@pytest.fixture(scope="module")
def gateways(server):
    with extra_gateways(server, 2, "gateway") as roots:
        yield [f"{r}/api" for r in roots]


def test_key_revoked_through_one_gateway_is_refused_by_the_other(server, gateways):
    a_url, b_url = gateways
    admin = server.create_key(f"two-gw-{uuid.uuid4().hex[:8]}", scopes="admin")
    with MemsyControlClient(base_url=a_url, api_key=admin) as a:
        made = a.keys.create("short-lived", scopes=["read"])
        with MemsyControlClient(base_url=b_url, api_key=made.raw_key, max_retries=0) as b:
            assert b.me().user_id == made.key_id  # a brand-new key works elsewhere at once
            a.keys.delete(made.key_id)
            revoked_at = time.time()
            while True:
                try:
                    b.me()
                except AuthenticationError:
                    break
                assert time.time() - revoked_at < 1.0, "the other gateway still accepts the revoked key after 1 s"
                time.sleep(0.02)


def test_rate_window_is_shared_by_both_gateways(server, gateways):
    a_url, b_url = gateways
    key = server.create_key("rl-shared", scopes="read", name=f"shared-{uuid.uuid4().hex[:6]}")
    with MemsyControlClient(base_url=a_url, api_key=key, max_retries=0) as a, \
            MemsyControlClient(base_url=b_url, api_key=key, max_retries=0) as b:
        _start_of_window()
        a.me()
        b.me()
        a.me()
        with pytest.raises(RateLimitExceeded) as e:
            b.me()
        assert e.value.retry_after and e.value.response.headers["X-RateLimit-Limit"] == "3"
