"""Re-extraction through the CLI: `memsy replay --org ORG [--since T]
[--actor A]` sends an org's events retained in MEMSY_EVENTS through
extraction, embedding and indexing again, against real NATS, Redis and the
store (the embedded engine, and a Qdrant server when QDRANT_BIN or
QDRANT_URL is set). Replaying changes no memory, however often; that the
events really went through the pipeline again is read from the indexer's
own count of settled messages (`/metrics`)."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
import uuid
from datetime import datetime, timezone

import pytest
import requests
from memsy import EventPayload, MemsyClient

from conftest import memsy_bin, memsy_stack, qdrant_server
from test_sdk import wait_settled

# Before T: a repetition to reinforce, a slot to supersede later.
FIRST = [
    ("dana", "My dog's name is Rex."),
    ("dana", "I prefer green tea."),
    ("dana", "I live in Lisbon."),
    ("eli", "My favourite editor is Helix."),
    ("eli", "I prefer green tea."),
]
# After T.
SECOND = [
    ("dana", "I prefer green tea."),
    ("dana", "I moved to Porto."),
    ("eli", "I work at Acme."),
]


@pytest.fixture(scope="module", params=["embedded", "qdrant"])
def stack(request):
    if request.param == "embedded":
        yield request.getfixturevalue("server")
        return
    with qdrant_server() as qdrant_env:
        if qdrant_env is None:
            pytest.skip("the Qdrant-server variant needs QDRANT_BIN (a qdrant binary) or QDRANT_URL")
        with memsy_stack(qdrant_env) as s:
            yield s


@pytest.fixture(scope="module")
def world(stack):
    org = f"replay-{uuid.uuid4().hex[:10]}"
    key = stack.create_key(org)
    with MemsyClient(base_url=stack.base_url, api_key=key) as c:
        # A session per batch: the same words in the same session within a
        # minute would be de-duplicated at ingest.
        def ingest(events, session):
            ids = c.ingest([EventPayload(actor_id=a, session_id=session, kind="user_message", content=t)
                            for a, t in events]).event_ids
            wait_settled(c, ids)
        ingest(FIRST, "s1")
        time.sleep(1.1)
        since = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        time.sleep(1.1)
        ingest(SECOND, "s2")
    world = {"org": org, "key": key, "since": since}
    world["memories"] = memories(stack, world)
    texts = [m["text"] for m in world["memories"]]
    assert any("Porto" in t for t in texts) and any("Helix" in t for t in texts), texts
    tea = [m for m in world["memories"] if "green tea" in m["text"] and m["scope"]["actor_id"] == "dana"]
    assert len(tea) == 1 and tea[0]["strength"] > 1.0, tea  # reinforced, not a twin
    return world


def memories(stack, world) -> list[dict]:
    """Every memory of the org, any status, as the console shows it. The
    strength shown decays by the second: compared to 3 decimals (one more
    reinforcement would add 0.5)."""
    r = requests.get(f"{stack.base_url}/console/memories", params={"status": "all", "limit": 200},
                     headers={"Authorization": f"Bearer {world['key']}"}, timeout=30)
    r.raise_for_status()
    items = sorted(r.json()["items"], key=lambda m: m["memory_id"])
    for m in items:
        m["strength"] = round(m["strength"], 3)
    return items


def indexed(stack) -> float:
    """Messages the indexer has settled: `memsy_stage_messages_total{stage="indexer",outcome="ok"}`."""
    text = urllib.request.urlopen(f"{stack.root_url}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith("memsy_stage_messages_total{") and 'stage="indexer"' in line and 'outcome="ok"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def replay(stack, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([memsy_bin(), "--config", str(stack.config_path), "replay", *args],
                       env=stack.env, capture_output=True, text=True, timeout=300)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def replayed(p: subprocess.CompletedProcess) -> tuple[int, int]:
    """(replayed, skipped) from the summary line, the only line on stdout."""
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1, p.stdout
    m = re.match(r"(?:replayed|would replay) (\d+) events of org \S+, skip(?:ped)? (\d+) ", lines[0])
    assert m, lines[0]
    return int(m.group(1)), int(m.group(2))


def indexed_again(stack, before: float, n: int) -> None:
    """The indexer settles exactly `n` more messages (its count is taken
    after the status it marks, so give it a moment)."""
    deadline = time.time() + 10
    while indexed(stack) < before + n and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    assert indexed(stack) == before + n


def test_replaying_an_org_twice_changes_no_memory(stack, world):
    for _ in range(2):
        before = indexed(stack)
        p = replay(stack, "--org", world["org"], "--wait", "--wait-secs", "60")
        assert replayed(p) == (len(FIRST) + len(SECOND), 0)
        assert p.stdout.strip().endswith("settled with 0 failed"), p.stdout
        indexed_again(stack, before, len(FIRST) + len(SECOND))
        assert memories(stack, world) == world["memories"]


def test_actor_replays_that_actors_events_only(stack, world):
    before = indexed(stack)
    p = replay(stack, "--org", world["org"], "--actor", "dana", "--wait", "--wait-secs", "60")
    dana = sum(1 for a, _ in FIRST + SECOND if a == "dana")
    assert replayed(p) == (dana, len(FIRST) + len(SECOND) - dana)
    assert "of other actors" in p.stdout
    indexed_again(stack, before, dana)
    assert memories(stack, world) == world["memories"]


def test_since_replays_the_events_accepted_from_then_on(stack, world):
    before = indexed(stack)
    p = replay(stack, "--org", world["org"], "--since", world["since"], "--wait", "--wait-secs", "60")
    assert replayed(p) == (len(SECOND), len(FIRST))
    indexed_again(stack, before, len(SECOND))
    assert memories(stack, world) == world["memories"]


def test_dry_run_only_counts(stack, world):
    before = indexed(stack)
    p = replay(stack, "--org", world["org"], "--actor", "eli", "--dry-run")
    eli = sum(1 for a, _ in FIRST + SECOND if a == "eli")
    assert replayed(p) == (eli, len(FIRST) + len(SECOND) - eli)
    assert p.stdout.startswith("would replay"), p.stdout
    time.sleep(1)
    assert indexed(stack) == before


def test_an_org_without_events_replays_nothing(stack):
    p = replay(stack, "--org", f"empty-{uuid.uuid4().hex[:8]}")
    assert replayed(p) == (0, 0)


@pytest.mark.parametrize("args, named", [
    (["--org", "x", "--since", "yesterday"], "--since"),
    (["--org", ""], "--org"),
    (["--since", "2026-01-01"], "--org"),
])
def test_bad_options_are_named(stack, args, named):
    p = replay(stack, *args, check=False)
    assert p.returncode != 0
    assert named in p.stderr, p.stderr
