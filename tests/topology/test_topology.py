"""memsy as a distributed system: every service its own process (two
gateways, two extractors, two embedders, two indexers, one status service),
started as the Helm chart starts them, on one nats-server, one redis-server
and a Qdrant server. Each gateway reaches the embedder of its own render
(a gateway takes one embedder URL).

- The SDK's own end-to-end script passes, all 35 steps, through each gateway.
- 5,000 distinct events ingested across both gateways all complete, every
  replica of every stage takes a share of them, and the memories are the
  ones `memsy serve` stores for the same input: the two indexers, busy at
  once, never race on an org's consolidation.
- A real Prometheus scrapes every process while 1,000 events flow: every
  metric family of the README's table is there, from the processes that
  must report it; the stage counters moved by the events; and every
  consumer's backlog is back to 0 after the drain; every query of the
  Grafana dashboard (deploy/grafana-dashboard.json) finds its series.
- kill -9 of one process of each kind (extractor, embedder, indexer, status,
  gateway) while the events flow: every acknowledged event completes, each
  restarted process takes work again, and the memories are again the
  undisturbed ones. The run prints docs/FAULTS.md's table.

Skipped, with one line, without QDRANT_BIN or QDRANT_URL."""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import prometheus  # noqa: E402
import stack  # noqa: E402
import workload  # noqa: E402

stack.require_qdrant()

from test_sdk_e2e_script import ALL_GROUPS, run_script  # noqa: E402

from workload import baseline, compare, events_fixture, keys_for  # noqa: E402,F401  (fixtures)

# The steps of the memsy 0.3.5 SDK's scripts/e2e.py.
SDK_E2E_STEPS = 35
STAGES = ("extractor", "embedder", "indexer")


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
    promoted = workload.expected_promotions()
    for o, mems in baseline.items():
        by = {}
        for (level, _, _, _, status, _, _), n in mems.items():
            by[(level, status)] = by.get((level, status), 0) + n
        assert by.get(("org", "active")) == promoted["org"], (o, by)
        assert by.get(("role", "active")) == promoted["role"], (o, by)
        # Each actor's two earlier homes.
        assert by.get(("actor", "superseded")) == 2 * workload.ACTORS, (o, by)
        reinforced = sorted(s for (lvl, _, _, _, _, s, _), n in mems.items() if lvl == "actor" and s > 1.0
                            for _ in range(n))
        assert reinforced == [1.5] * workload.ACTORS + [2.0] * 2 * workload.ACTORS, (o, reinforced)
        # Every actor of a role holds its fact: promoted with all five as sources.
        roles = [(role, s, n_src) for (lvl, _, role, _, _, s, n_src) in mems if lvl == "role"]
        assert sorted(roles) == [("role-0", 2.0, 5), ("role-1", 2.0, 5)], (o, roles)


def test_sdk_e2e_passes_through_each_gateway(topology):
    for i, base in enumerate(topology.gateways):
        key = topology.create_key(f"sdk-e2e-{i}-{uuid.uuid4().hex[:6]}", scopes="read,write,admin")
        steps = run_script(_Server(base, topology.env), key)
        seen = {name.split(".")[0] for _, name, _ in steps}
        assert ALL_GROUPS <= seen, f"gateway {i}: groups missing {ALL_GROUPS - seen}"
        failed = [f"{name} {rest}" for mark, name, rest in steps if mark == "✗"]
        assert not failed, f"gateway {i}:\n" + "\n".join(failed)
        assert len(steps) == SDK_E2E_STEPS, f"gateway {i}: {len(steps)} steps"
        print(f"gateway {i}: {len(steps)}/{SDK_E2E_STEPS} steps passed")


def test_5000_events_across_both_gateways_make_the_single_node_memories(topology, events, baseline):
    client = workload.Client(keys_for(topology, f"topo-{uuid.uuid4().hex[:6]}"))
    before = topology.delivered()
    t0 = time.monotonic()
    acked, retries = workload.ingest_all(client, topology.gateways, events)
    assert sum(len(v) for v in acked.values()) == workload.EVENTS and retries == 0
    client.wait_completed(topology.gateways, acked, timeout=600)
    elapsed = time.monotonic() - t0
    print(f"{workload.EVENTS} events ingested and completed in {elapsed:.1f} s "
          f"({workload.EVENTS / elapsed:.0f} events/s)")
    # Every replica of every stage worked (both indexers at once: the orgs
    # cover every partition), each on a share of the events.
    after = topology.delivered()
    took = {n: after[n][0] - before[n][0] for n in after if n.startswith(STAGES)}
    print("messages each stage process took: " + ", ".join(f"{n} {v}" for n, v in sorted(took.items())))
    for stage in STAGES:
        for r in range(2):
            assert took[f"{stage}-{r}"] >= workload.EVENTS // 10, (stage, took)
    consumers = {c["name"]: c for c in topology.consumers("MEMSY_EMBEDDED")}
    idle = [p for p in range(workload.INDEXER_PARTITIONS) if not consumers[f"indexer-{p}"]["delivered"]["stream_seq"]]
    assert not idle, f"indexer partitions that got no event: {idle}"
    diffs = compare(baseline, client, topology.gateways[1])
    assert not diffs, f"{len(diffs)} differences from memsy serve:\n" + "\n".join(diffs[:40])



# Every family the README's metric table lists, and which processes must
# report it (a prefix of the process names: gateway-0, extractor-1, ...).
METRIC_FAMILIES = {
    "memsy_http_requests_total": ("gateway", "extractor", "embedder", "indexer", "status"),
    "memsy_http_request_duration_seconds_bucket": ("gateway",),
    "memsy_stage_messages_total": STAGES,
    "memsy_stage_batch_duration_seconds_bucket": STAGES,
    "memsy_stage_batch_size_bucket": STAGES,
    "memsy_stream_pending_messages": STAGES,
    "memsy_stream_ack_pending": STAGES,
    "memsy_dlq_messages": STAGES,
    "memsy_embedder_texts_total": ("embedder",),
    "memsy_embedder_queue_depth": ("embedder",),
    "memsy_store_request_duration_seconds_bucket": ("indexer", "gateway"),
    "memsy_event_freshness_seconds_bucket": ("indexer",),
    "memsy_events_ingested_total": ("gateway",),
    "memsy_search_queries_total": ("gateway",),
    "process_cpu_seconds_total": ("gateway", "extractor", "embedder", "indexer", "status"),
    "process_resident_memory_bytes": ("gateway", "extractor", "embedder", "indexer", "status"),
}
METRICS_EVENTS = 1000
WARM_UP = 50


def test_prometheus_scrapes_every_process_and_sees_the_pipeline_move_and_drain(topology, events):
    prom = prometheus.Prometheus({name: p.ops for name, p in topology.procs.items()})
    try:
        prom.wait_all_up()
        client = workload.Client(keys_for(topology, f"prom-{uuid.uuid4().hex[:6]}"))
        # A first trickle, so that every counter exists before the load
        # (Prometheus does not count a counter's first sample as an increase).
        first, load = events[:WARM_UP], events[WARM_UP:WARM_UP + METRICS_EVENTS]
        acked, _ = workload.ingest_all(client, topology.gateways, first)
        client.wait_completed(topology.gateways, acked, timeout=120)
        settled = 'sum by (stage) (memsy_stage_messages_total{outcome="ok"})'
        prometheus.wait_for(prom, settled, lambda r: len(r) == len(STAGES) and all(
            float(x["value"][1]) >= WARM_UP for x in r), 30, "the warm-up seen settled by every stage")
        before = prom.values(settled, "stage")
        acked, _ = workload.ingest_all(client, topology.gateways, load)
        client.wait_completed(topology.gateways, acked, timeout=300)
        org = next(iter(acked))
        for base in topology.gateways:
            r = client.http.post(f"{base}/search", json={"query": "where do I live", "limit": 3},
                                 headers={"Authorization": f"Bearer {client.keys[org]}"})
            assert r.status_code == 200, r.text

        # Every family, from every process that must report it.
        def reported(result) -> bool:
            by = _by_family(result)
            return all(any(p.startswith(want) for p in by.get(family, ()))
                       for family, wants in METRIC_FAMILIES.items() for want in wants)
        result = prometheus.wait_for(prom, '{__name__=~"memsy_.+|process_.+"}', reported, 30,
                                     "every metric family from every process")
        by = _by_family(result)
        for family, wants in METRIC_FAMILIES.items():
            print(f"{family}: {sorted(by[family])}")

        # The counters moved by the load: each stage settled at least one
        # message per event (replicas summed); ingest and embedding rates rose.
        after = prometheus.wait_for(prom, settled, lambda r: all(
            float(x["value"][1]) - before.get(x["metric"]["stage"], 0) >= METRICS_EVENTS for x in r), 30,
            "every stage's settled count up by the load")
        print(f"messages settled ok, before and after the load: {before} → "
              f"{ {x['metric']['stage']: float(x['value'][1]) for x in after} }")
        window = "[5m]"
        ingests = prom.values(
            f'sum by (route) (increase(memsy_http_requests_total{{route="/v1/ingest",status="200"}}{window}))', "route")
        assert ingests.get("/v1/ingest", 0) > 0, ingests
        texts = prom.values(f"sum(increase(memsy_embedder_texts_total{window}))", "")
        assert texts.get("", 0) > 0, texts
        fresh = prom.values("sum(memsy_event_freshness_seconds_count)", "")
        assert fresh.get("", 0) >= METRICS_EVENTS, fresh
        dead = prom.values("max(memsy_dlq_messages)", "")
        assert dead.get("", -1) == 0, dead

        # After the drain nothing is pending on any consumer of any stream.
        prometheus.wait_for(
            prom, "sum(max by (stream, consumer) (memsy_stream_pending_messages + memsy_stream_ack_pending))",
            lambda r: bool(r) and float(r[0]["value"][1]) == 0, 30, "every consumer drained")
        # Every query of the Grafana dashboard in deploy/ finds its series.
        dashboard = json.loads((stack.ROOT / "deploy" / "grafana-dashboard.json").read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", "5m")
                assert prom.query(expr), f"dashboard panel {panel['title']!r}: no series for {expr}"
        consumers = prom.values("max by (consumer) (memsy_stream_pending_messages)", "consumer")
        assert {"extractor", "embedder"} <= set(consumers), consumers
        assert {f"indexer-{p}" for p in range(workload.INDEXER_PARTITIONS)} <= set(consumers), consumers
    finally:
        prom.stop()


def _by_family(result: list[dict]) -> dict[str, set[str]]:
    """Metric name → the processes that report it."""
    out: dict[str, set[str]] = {}
    for r in result:
        out.setdefault(r["metric"]["__name__"], set()).add(r["metric"].get("process", ""))
    return out

# The kill order and the seconds into the run of each kill; each process is
# started again two seconds after its kill.
KILLS = [("extractor-0", 2.0), ("embedder-1", 6.0), ("indexer-0", 10.0), ("status", 14.0), ("gateway-1", 18.0)]
# A restarted stage is back at work once one of its subscriptions has had
# this many messages (an idle one gets about one every five seconds).
AT_WORK = 10


@dataclass
class Kill:
    name: str
    killed: float
    started: float = 0.0
    ready: float = 0.0


def _back_at_work(k: Kill, samples, client, completions, gateways) -> float | None:
    """Seconds from the restarted process's readiness to its first work:
    a stage's first messages, a gateway's first 200 to an ingest, the status
    service's first answer through a gateway."""
    if k.name.startswith(STAGES):
        at = [t for t, d in samples if t >= k.ready and d.get(k.name, (0, 0))[1] >= AT_WORK]
    elif k.name.startswith("gateway"):
        base = gateways[int(k.name.rsplit("-", 1)[1])]
        at = [s.at for s in client.sent if s.base == base and s.ids is not None and s.at >= k.ready]
    else:
        at = [t for t in completions.answered_at if t >= k.ready]
    return min(at) - k.ready if at else None


def _fmt(x: float | None) -> str:
    return "never" if x is None else f"{x:.1f}"


def test_kill_9_under_load_loses_and_doubles_nothing(events, baseline):
    # Short lease and ack timeouts so that the survivors take over quickly.
    topo = stack.start_topology({"indexer": {"lease_ttl_secs": 5}, "nats": {"ack_wait_secs": 10}})
    try:
        client = workload.Client(keys_for(topo, f"kill-{uuid.uuid4().hex[:6]}"), timeout=5.0)
        completions = workload.Completions(client, topo.gateways)
        kills: list[Kill] = []
        samples: list[tuple[float, dict]] = []  # (when, Topology.delivered())
        stop = threading.Event()
        t0 = time.monotonic()

        def killer():
            for name, at in KILLS:
                if stop.wait(max(0.0, at - (time.monotonic() - t0))):
                    return
                p = topo.procs[name]
                p.kill9()
                k = Kill(name, time.monotonic())
                kills.append(k)
                time.sleep(2.0)
                k.started = time.monotonic()
                p.start()
                stack.wait_until(p.ready, 120, f"{name} ready again")
                k.ready = time.monotonic()

        def sampler():
            while not stop.wait(0.5):
                samples.append((time.monotonic(), topo.delivered()))

        threads = [threading.Thread(target=f, daemon=True) for f in (killer, sampler)]
        completions.start()
        for t in threads:
            t.start()
        # About 22 s of ingest: the kills all happen while events flow.
        acked, retries = workload.ingest_all(client, topo.gateways, events, batch=25, pace=0.1,
                                             on_ack=completions.add)
        ingest_s = time.monotonic() - t0
        threads[0].join(timeout=300)
        drain_s = completions.wait(timeout=300)
        # Long enough for a stage restarted last to show its work.
        time.sleep(max(0.0, 1.0 - drain_s))
        stop.set()
        threads[1].join(timeout=30)
        completions.stop()
        diffs = compare(baseline, client, topo.gateways[0])

        all_acked = [i for ids in acked.values() for i in ids]
        acked_at = {i: s.at for s in client.sent if s.ids for i in s.ids}
        missing = sum(": missing " in d for d in diffs)
        doubled = sum(": extra " in d for d in diffs)
        rows = []
        for k in kills:
            down = [i for i in all_acked if k.killed <= acked_at[i] <= k.ready]
            done = [i for i in down if i in completions.completed_at]
            before = [completions.completed_at.get(i) for i in all_acked if acked_at[i] <= k.ready]
            caught_up = None if None in before else max(0.0, max(before) - k.ready)
            took = samples[-1][1][k.name][0] if k.name.startswith(STAGES) else None
            work = _back_at_work(k, samples, client, completions, topo.gateways)
            rows.append((k, len(down), len(done), work, caught_up, took))
        print("\n| process killed (SIGKILL) | at s | down s | events acked while it was down | of them completed "
              "| lost | back at work after restart s | all acked before its restart completed after s |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for k, n_down, n_done, work, caught_up, took in rows:
            print(f"| {k.name} | {k.killed - t0:.1f} | {k.ready - k.killed:.1f} | {n_down} | {n_done} "
                  f"| {n_down - n_done} | {_fmt(work)} | {_fmt(caught_up)} |")
        n_done = sum(1 for i in all_acked if i in completions.completed_at)
        print(f"| whole run | | | {len(all_acked)} | {n_done} | {len(all_acked) - n_done} | | |")
        print(f"\nmemories doubled {doubled}, missing {missing}; ingest requests retried {retries}; "
              f"ingest {ingest_s:.1f} s, then every acknowledged event completed {drain_s:.1f} s later; "
              f"messages the restarted stages took: "
              + ", ".join(f"{k.name} {took}" for k, *_, took in rows if took is not None))

        assert len(kills) == len(KILLS) and all(k.ready for k in kills), kills
        assert len(all_acked) == workload.EVENTS, len(all_acked)
        assert not completions.failed, f"acknowledged events failed: {list(completions.failed.items())[:5]}"
        assert n_done == len(all_acked), f"{len(all_acked) - n_done} acknowledged events not completed"
        lazy = [k.name for k, _, _, work, _, _ in rows if work is None]
        assert not lazy, f"restarted but never back at work: {lazy}"
        assert not diffs, f"{len(diffs)} differences from the undisturbed run:\n" + "\n".join(diffs[:40])
    finally:
        stack.remove(topo)
