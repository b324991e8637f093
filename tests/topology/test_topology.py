"""memsy as a distributed system: every service its own process (two
gateways, two extractors, two embedders, two indexers, one status service),
started as the Helm chart starts them, on one nats-server, one redis-server
and a Qdrant server.

- The SDK's own end-to-end script passes through each gateway.
- 5,000 distinct events ingested across both gateways all complete, and the
  memories are the ones `memsy serve` stores for the same input: the two
  indexers, busy at once, never race on an org's consolidation.
- kill -9 of one process of each kind (extractor, embedder, indexer, status,
  gateway) while the events flow: every acknowledged event completes and the
  memories are again the undisturbed ones.

Skipped, with one line, without QDRANT_BIN or QDRANT_URL."""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stack  # noqa: E402
import workload  # noqa: E402

if not stack.qdrant_available():
    pytest.skip(stack.SKIP_REASON, allow_module_level=True)

from test_sdk_e2e_script import ALL_GROUPS, run_script  # noqa: E402


from workload import baseline, compare, events_fixture, keys_for  # noqa: E402,F401  (fixtures)


@pytest.fixture(scope="module")
def topology():
    topo = stack.start_topology()
    try:
        yield topo
    finally:
        stack.remove(topo)


class _Server:
    """What `run_script` needs of a server."""

    def __init__(self, base_url: str, env: dict):
        self.base_url, self.env = base_url, env


def test_baseline_has_every_kind_of_consolidation(baseline):
    for o, mems in baseline.items():
        levels = {}
        for (level, _, _, status, strength, _), n in mems.items():
            levels.setdefault((level, status), 0)
            levels[(level, status)] += n
        assert levels.get(("org", "active")) == workload.expected_promotions(), (o, levels)
        # At least each actor's two earlier homes.
        assert levels.get(("actor", "superseded"), 0) >= 2 * workload.ACTORS, (o, levels)
        reinforced = sum(n for (lvl, _, _, _, s, _), n in mems.items() if lvl == "actor" and s >= 2.0)
        assert reinforced >= 2 * workload.ACTORS, (o, reinforced)


def test_sdk_e2e_passes_through_each_gateway(topology):
    for i, base in enumerate(topology.gateways):
        key = topology.create_key(f"sdk-e2e-{i}-{uuid.uuid4().hex[:6]}", scopes="read,write,admin")
        steps = run_script(_Server(base, topology.env), key)
        seen = {name.split(".")[0] for _, name, _ in steps}
        assert ALL_GROUPS <= seen, f"gateway {i}: groups missing {ALL_GROUPS - seen}"
        failed = [f"{name} {rest}" for mark, name, rest in steps if mark == "✗"]
        assert not failed, f"gateway {i}:\n" + "\n".join(failed)
        print(f"gateway {i}: {len(steps)} steps passed")


def test_5000_events_across_both_gateways_make_the_single_node_memories(topology, events, baseline):
    client = workload.Client(keys_for(topology, f"topo-{uuid.uuid4().hex[:6]}"))
    t0 = time.monotonic()
    acked, retries = workload.ingest_all(client, topology.gateways, events)
    assert sum(len(v) for v in acked.values()) == workload.EVENTS and retries == 0
    client.wait_completed(topology.gateways, acked, timeout=600)
    elapsed = time.monotonic() - t0
    print(f"{workload.EVENTS} events ingested and completed in {elapsed:.1f} s "
          f"({workload.EVENTS / elapsed:.0f} events/s)")
    # Both indexers worked: each holds some of the partitions' leases.
    for name in ("indexer-0", "indexer-1"):
        log = "".join(p.read_text() for p in topology.tmp.glob(f"{name}.*.log"))
        assert "partitioned stage started" in log, name
    diffs = compare(baseline, client, topology.gateways[1])
    assert not diffs, f"{len(diffs)} differences from memsy serve:\n" + "\n".join(diffs[:40])


# The kill order and the seconds into the run of each kill; each process is
# started again two seconds after its kill.
KILLS = [("extractor-0", 2.0), ("embedder-1", 6.0), ("indexer-0", 10.0), ("status", 14.0), ("gateway-1", 18.0)]


def test_kill_9_under_load_loses_and_doubles_nothing(events, baseline):
    # Short lease and ack timeouts so that the survivors take over quickly.
    topo = stack.start_topology({"indexer": {"lease_ttl_secs": 5}, "nats": {"ack_wait_secs": 10}})
    try:
        client = workload.Client(keys_for(topo, f"kill-{uuid.uuid4().hex[:6]}"), timeout=5.0)
        report = []
        stop = threading.Event()

        def killer():
            t0 = time.monotonic()
            for name, at in KILLS:
                if stop.wait(max(0.0, at - (time.monotonic() - t0))):
                    return
                p = topo.procs[name]
                p.kill9()
                killed = time.monotonic()
                time.sleep(2.0)
                p.start()
                ready_s = stack.wait_until(p.ready, 120, f"{name} ready again")
                report.append({"process": name, "killed_at_s": round(killed - t0, 1),
                               "down_s": round(time.monotonic() - killed, 1), "ready_after_restart_s": round(ready_s, 1)})

        thread = threading.Thread(target=killer, daemon=True)
        t0 = time.monotonic()
        thread.start()
        # About 22 s of ingest: the kills all happen while events flow.
        acked, retries = workload.ingest_all(client, topo.gateways, events, batch=25, pace=0.1)
        ingest_s = time.monotonic() - t0
        thread.join(timeout=300)
        stop.set()
        n_acked = sum(len(v) for v in acked.values())
        assert n_acked == workload.EVENTS, n_acked
        drain_s = client.wait_completed(topo.gateways, acked, timeout=600)
        diffs = compare(baseline, client, topo.gateways[0])
        print("\n| process killed (SIGKILL) | at s | down s | ready after restart s |")
        print("| --- | ---: | ---: | ---: |")
        for r in report:
            print(f"| {r['process']} | {r['killed_at_s']} | {r['down_s']} | {r['ready_after_restart_s']} |")
        print(f"\nevents acknowledged {n_acked}, completed {n_acked}, lost 0; ingest requests retried {retries}; "
              f"ingest {ingest_s:.1f} s, then all completed after {drain_s:.1f} s more; "
              f"memories missing {sum(1 for d in diffs if ': missing ' in d)}, "
              f"doubled {sum(1 for d in diffs if ': extra ' in d)}")
        assert len(report) == len(KILLS), report
        assert not diffs, f"{len(diffs)} differences from the undisturbed run:\n" + "\n".join(diffs[:40])
    finally:
        stack.remove(topo)
