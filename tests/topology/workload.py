"""The topology tests' input and how its outcome is read.

5,000 distinct events over 20 orgs of 10 actors in two roles, built so that
every kind of consolidation happens and the final memories do not depend on
the order in which events are processed: each actor states 15 facts of its
own (each template once per actor, fillers its own), repeats two of them in
two more sessions and a third in one more (reinforcement: strength 2.0 with
three source events, 1.5 with two), moves home twice (supersession by `ts`:
one residence active, two superseded), states its role's fact, which every
actor of the role states once (promotion to the role), and one of its org's
three shared facts, which three or four actors across both roles each state
once (promotion to the org). The org ids are chosen so that the orgs cover
every indexer partition. Memory and event ids differ between runs, so
memories are compared by what they say: scope, actor, text, status, strength
and number of sources."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass

import httpx
import pytest

ORGS = 20
ACTORS = 10
ROLES = 2  # actors 0-4 hold the first, 5-9 the second
EVENTS = ORGS * ACTORS * 25
# memsy's default `nats.indexer_partitions` (the topology tests keep it).
INDEXER_PARTITIONS = 16

FIRST = ["Amara", "Bjorn", "Chiara", "Dmitri", "Elif", "Farah", "Gustav", "Hiroko", "Ines", "Jonas", "Kalani",
         "Lorenzo", "Mireille", "Nikolai", "Oksana", "Pedro", "Quinn", "Rashid", "Sunniva", "Tobias", "Ulrike",
         "Vikram", "Wanjiru", "Xavier", "Yusuf"]
CITIES = ["Aberdeen", "Bologna", "Cusco", "Dakar", "Edmonton", "Fukuoka", "Gdansk", "Hobart", "Izmir", "Jaipur",
          "Kazan", "Leipzig", "Mombasa", "Nantes", "Oaxaca", "Perth", "Quito", "Recife", "Sapporo", "Tartu",
          "Utrecht", "Valparaiso", "Windhoek", "Xiamen", "Yerevan", "Zagreb", "Arequipa", "Bergamo", "Cork",
          "Dundee", "Eindhoven", "Florianopolis", "Graz", "Hue", "Ipoh", "Jena", "Kobe", "Lviv", "Malmo",
          "Nagpur", "Odense", "Porto", "Rosario", "Split", "Tromso", "Uppsala", "Vilnius", "Wroclaw", "Yokohama",
          "Zurich", "Antwerp", "Bilbao", "Cordoba", "Dresden", "Essen", "Fez", "Galway", "Hamilton", "Innsbruck",
          "Juneau", "Krakow", "Lucerne", "Mendoza", "Nicosia", "Oulu", "Pune", "Reno", "Salta", "Tallinn",
          "Umea", "Varna", "Wellington", "Ystad", "Zadar", "Aarhus"]
THINGS = ["a ceramic kiln", "a vintage motorcycle", "a sourdough starter", "a telescope", "a canoe",
          "a beehive", "a harpsichord", "a loom", "a greenhouse", "a sailboat", "a pottery wheel", "a forge",
          "a drone", "a chess set from 1900", "a jukebox", "a tandem bicycle", "an aquarium", "a bonsai tree",
          "a typewriter", "a banjo", "a kayak", "a metal detector", "a 3D printer", "a record player",
          "a woodworking lathe"]
FOODS = ["pickled herring", "mole poblano", "kimchi stew", "injera", "pierogi", "laksa", "feijoada", "ramen",
         "baklava", "poutine", "ceviche", "goulash", "dal makhani", "paella", "bibimbap", "tagine", "pho",
         "moussaka", "arepas", "haggis", "bobotie", "khachapuri", "risotto", "shakshuka", "pavlova"]
HOBBIES = ["birdwatching", "fencing", "origami", "salsa dancing", "rock climbing", "beekeeping", "calligraphy",
           "scuba diving", "falconry", "archery", "glassblowing", "bouldering", "knitting", "astronomy",
           "geocaching", "sailing", "pottery", "orienteering", "juggling", "curling", "woodcarving", "rowing",
           "tango", "fly fishing", "skateboarding"]
# Each template carries several of an actor's own fillers, so that one
# actor's fact is never a near-duplicate of another actor's.
TEMPLATES = [
    "My cousin {name} runs {thing} business in {city}.",
    "I learned {hobby} from a neighbour in {city}.",
    "{name} cooked {food} for my birthday.",
    "I keep {thing} in the garage next to my {hobby} gear.",
    "The best {food} I ever ate was in {city}.",
    "My sister {name} taught me {hobby}.",
    "I bought {thing} from {name} last spring.",
    "I go {hobby} with {name} every weekend.",
    "My first job was selling {food} at a market in {city}.",
    "I want to bring {thing} on my next trip to {city}.",
    "{name} and I are planning a {hobby} holiday near {city}.",
    "I never eat {food} because {name} once made me sick with it.",
    "My grandfather left me {thing} and an old map of {city}.",
    "I met my partner {name} at a {hobby} club.",
    "On Fridays I make {food} and watch films about {hobby}.",
]
SHARED = [
    "Our team retrospective happens every second Friday afternoon.",
    "The office wifi password changes on the first Monday of each month.",
    "Expense reports must be filed within thirty days of travel.",
]
# What every actor of one role says (and no one of the other).
ROLE_FACTS = [
    "Support engineers must answer every urgent customer ticket within two hours.",
    "The warehouse forklifts are charged overnight in loading bay four.",
]


@dataclass(frozen=True)
class Event:
    org: int  # index; the org id is given per run
    actor: str
    role: str
    session: str
    content: str
    ts: str

    def body(self) -> dict:
        return {"actor_id": self.actor, "session_id": self.session, "kind": "user_message",
                "content": self.content, "role_id": self.role, "ts": self.ts}


def _ts(day: int, minute: int) -> str:
    return f"2026-03-{day:02d}T{9 + minute // 60:02d}:{minute % 60:02d}:00Z"


def events() -> list[Event]:
    """The 5,000 events, in a fixed interleaved order (orgs and actors mixed)."""
    out: list[list[Event]] = []
    for o in range(ORGS):
        for a in range(ACTORS):
            actor = f"actor-{a}"
            role_index = a * ROLES // ACTORS
            role = f"role-{role_index}"
            fill = {
                "name": FIRST[(a + o) % len(FIRST)],
                "thing": THINGS[(a * 7 + o) % len(THINGS)],
                "city": CITIES[(a * 3 + o * 5 + 1) % len(CITIES)],
                "food": FOODS[(a * 11 + o) % len(FOODS)],
                "hobby": HOBBIES[(a * 13 + o * 3) % len(HOBBIES)],
            }

            def said(session: str, content: str, ts: str) -> Event:
                return Event(o, actor, role, session, content, ts)

            mine: list[Event] = []
            facts = [t.format(**fill) for t in TEMPLATES]
            for i, text in enumerate(facts):
                mine.append(said(f"s{a}-main", text, _ts(1, i)))
            # Two facts repeated in two more sessions each, a third in one more.
            for k in (1, 2):
                for i in (a % 15, (a + 7) % 15):
                    mine.append(said(f"s{a}-again{k}", facts[i], _ts(1 + k, i)))
            mine.append(said(f"s{a}-again3", facts[(a + 3) % 15], _ts(3, 30)))
            # Moves: the last by ts stays active, whatever the order of processing.
            homes = [CITIES[(a * 3 + k) % len(CITIES)] for k in range(3)]
            mine.append(said(f"s{a}-home", f"I live in {homes[0]}.", _ts(4, 0)))
            mine.append(said(f"s{a}-home", f"I moved to {homes[1]}.", _ts(5, 0)))
            mine.append(said(f"s{a}-home", f"I live in {homes[2]} now.", _ts(6, 0)))
            mine.append(said(f"s{a}-work", SHARED[a % len(SHARED)], _ts(7, a)))
            mine.append(said(f"s{a}-role", ROLE_FACTS[role_index], _ts(8, a)))
            assert len(mine) == 25
            out.append(mine)
    # Round-robin over the actors, so that batches mix orgs and actors.
    mixed = [e for group in zip(*out) for e in group]
    assert len(mixed) == EVENTS and len(set(mixed)) == EVENTS
    return mixed


def expected_promotions() -> dict[str, int]:
    """Promoted memories per org, by level."""
    return {"org": len(SHARED), "role": ROLES}


def partition_of(org_id: str, partitions: int = INDEXER_PARTITIONS) -> int:
    """The indexer partition of an org, as memsy computes it (FNV-1a 64 of
    the id, modulo the partition count; README, *Scaling the indexer*)."""
    h = 0xCBF29CE484222325
    for b in org_id.encode():
        h = ((h ^ b) * 0x100000001B3) % (1 << 64)
    return h % partitions


def org_names(prefix: str) -> list[str]:
    """One org id per org index, org o in partition o mod the partition
    count: every partition gets work, so every indexer replica does."""
    names = []
    for o in range(ORGS):
        k = 0
        while partition_of(f"{prefix}-{o}-{k}") != o % INDEXER_PARTITIONS:
            k += 1
        names.append(f"{prefix}-{o}-{k}")
    return names


@dataclass(frozen=True)
class Sent:
    """One ingest request: when it was answered, where, and the event ids
    of a 200 (None when it was refused or failed)."""

    at: float  # time.monotonic()
    base: str
    org: int
    ids: list[str] | None


class Client:
    """Ingest and status over HTTP with one key per org; keeps a log of its
    ingest requests."""

    def __init__(self, keys: dict[int, str], timeout: float = 10.0):
        self.keys = keys
        self.http = httpx.Client(timeout=timeout)
        self.sent: list[Sent] = []

    def ingest(self, base: str, org: int, batch: list[Event]) -> list[str] | None:
        """The event ids on a 200; None when the request was refused or failed."""
        try:
            r = self.http.post(f"{base}/ingest", json={"events": [e.body() for e in batch]},
                               headers={"Authorization": f"Bearer {self.keys[org]}"})
            ids = r.json()["event_ids"] if r.status_code == 200 else None
        except httpx.HTTPError:
            ids = None
        self.sent.append(Sent(time.monotonic(), base, org, ids))
        return ids

    def status(self, base: str, org: int, ids: list[str]) -> dict:
        r = self.http.post(f"{base}/status", json={"event_ids": ids},
                           headers={"Authorization": f"Bearer {self.keys[org]}"})
        r.raise_for_status()
        return r.json()

    def wait_completed(self, bases: list[str], acked: dict[int, list[str]], timeout: float) -> float:
        """Polls until every acked id is completed; fails on a failed one. Returns the seconds it took."""
        c = Completions(self, bases)
        for o, ids in acked.items():
            c.add(o, ids)
        c.start()
        try:
            waited = c.wait(timeout)
        finally:
            c.stop()
        assert not c.failed, f"failed events: {list(c.failed.items())[:5]}"
        assert not c.pending(), f"{c.pending()} acknowledged events not completed after {timeout} s"
        return waited

    def memories(self, base: str, org: int) -> Counter:
        """Every memory of the org (any status) as comparable tuples: (scope
        level, actor, role, text, status, strength to 0.1, number of source
        events)."""
        out: Counter = Counter()
        offset = 0
        while True:
            r = self.http.get(f"{base}/console/memories", params={"status": "all", "limit": 200, "offset": offset},
                              headers={"Authorization": f"Bearer {self.keys[org]}"})
            r.raise_for_status()
            page = r.json()
            assert not page["truncated"]
            for m in page["items"]:
                scope = m["scope"]
                out[(scope["level"], scope["actor_id"], scope["role_id"], m["text"], m["status"],
                     round(m["strength"], 1), len(m["source_event_ids"]))] += 1
            offset += len(page["items"])
            if offset >= page["total"] or not page["items"]:
                return out


def ingest_all(client: Client, bases: list[str], evs: list[Event], batch: int = 50,
               pace: float = 0.0, attempts: int = 200, on_ack=None) -> tuple[dict[int, list[str]], int]:
    """Sends every event in batches (one org per batch), alternating gateways
    and moving on to the next gateway when one refuses or fails; `on_ack(org,
    ids)` hears of every 200. Returns the acknowledged ids per org and how
    many requests were retried."""
    by_org: dict[int, list[Event]] = {}
    for e in evs:
        by_org.setdefault(e.org, []).append(e)
    batches = []
    for o, es in by_org.items():
        batches.extend((o, es[i:i + batch]) for i in range(0, len(es), batch))
    # Interleave the orgs' batches.
    batches.sort(key=lambda ob: (by_org[ob[0]].index(ob[1][0]) // batch, ob[0]))
    acked: dict[int, list[str]] = {}
    retries = 0
    for n, (o, b) in enumerate(batches):
        for attempt in range(attempts):
            ids = client.ingest(bases[(n + attempt) % len(bases)], o, b)
            if ids is not None:
                assert len(ids) == len(b)
                acked.setdefault(o, []).extend(ids)
                if on_ack:
                    on_ack(o, ids)
                break
            retries += 1
            time.sleep(0.2)
        else:
            raise AssertionError(f"batch {n} refused {attempts} times")
        if pace:
            time.sleep(pace)
    return acked, retries


def keys_for(topo, prefix: str) -> dict[int, str]:
    """A read/write key per org index, for the orgs of org_names(prefix)."""
    return {o: topo.create_key(name) for o, name in enumerate(org_names(prefix))}


class Completions(threading.Thread):
    """Polls /status for every acknowledged event until it is completed,
    noting when each was first seen completed (to within `every` seconds)
    and when status answers came; events reported failed are kept apart."""

    def __init__(self, client: Client, bases: list[str], every: float = 0.5):
        super().__init__(daemon=True)
        self.client, self.bases, self.every = client, bases, every
        self.completed_at: dict[str, float] = {}
        self.failed: dict[str, dict] = {}
        self.answered_at: list[float] = []
        self._pending: dict[int, list[str]] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def add(self, org: int, ids: list[str]) -> None:
        with self._lock:
            self._pending.setdefault(org, []).extend(ids)

    def pending(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._pending.values())

    def run(self) -> None:
        turn = 0
        while not self._halt.is_set():
            with self._lock:
                work = {o: list(ids) for o, ids in self._pending.items() if ids}
            for o, ids in work.items():
                done: set[str] = set()
                for i in range(0, len(ids), 1000):
                    turn += 1
                    try:
                        st = self.client.status(self.bases[turn % len(self.bases)], o, ids[i:i + 1000])
                    except httpx.HTTPError:
                        continue
                    now = time.monotonic()
                    self.answered_at.append(now)
                    for eid in st["completedIds"]:
                        self.completed_at.setdefault(eid, now)
                    for eid in st["failedIds"]:
                        self.failed[eid] = {"status": st["statuses"].get(eid), "reason": st["reasons"].get(eid)}
                    done |= set(st["completedIds"]) | set(st["failedIds"])
                with self._lock:
                    self._pending[o] = [eid for eid in self._pending[o] if eid not in done]
            self._halt.wait(self.every)

    def wait(self, timeout: float) -> float:
        """Waits until nothing acknowledged is pending (or `timeout`); returns the seconds waited."""
        start = time.monotonic()
        while self.pending() and time.monotonic() - start < timeout:
            time.sleep(0.2)
        return time.monotonic() - start

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)


def compare(baseline, client: Client, base: str) -> list[str]:
    """What differs from the baseline, per org: memories missing, and extra (doubled)."""
    diffs = []
    for o in range(ORGS):
        got = client.memories(base, o)
        missing, extra = baseline[o] - got, got - baseline[o]
        diffs.extend(f"org {o}: missing {m}" for m in missing.elements())
        diffs.extend(f"org {o}: extra {m}" for m in extra.elements())
    return diffs


@pytest.fixture(scope="module", name="events")
def events_fixture():
    return events()


_baseline: dict[int, Counter] = {}


@pytest.fixture(scope="module")
def baseline(events):
    """The memories `memsy serve` (embedded store, undisturbed) makes of the
    events, per org index; made once per test session."""
    from conftest import memsy_stack  # tests/e2e, on the path through stack

    if not _baseline:
        with memsy_stack() as server:
            keys = {o: server.create_key(name) for o, name in enumerate(org_names("base"))}
            client = Client(keys)
            acked, _ = ingest_all(client, [server.base_url], events)
            client.wait_completed([server.base_url], acked, timeout=600)
            _baseline.update({o: client.memories(server.base_url, o) for o in range(ORGS)})
    return _baseline
