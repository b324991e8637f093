//! Search latency through the embedded store (`memsy_store::EdgeStore`) and,
//! when there is one, a Qdrant server (`QdrantStore`; `QDRANT_BIN` starts
//! one, `QDRANT_URL` names a running one), each as a ratio against a
//! brute-force scan over the same vectors measured in the same run.
//!
//!     cargo build --release -p memsy-bench
//!     QDRANT_BIN=../shared/bin/qdrant flock /tmp/memsy-bench.lock target/release/bench-search
//!
//! (Build first, so that the lock is not held while compiling.)
//!
//! Each store (dimension 384) is filled with the same actor-level, active
//! memories built like `services/memsy-store/tests/contract.rs` builds them,
//! spread round-robin over 10 orgs × 100 actors, with random unit vectors,
//! upserted in batches of 1000 (each upsert flushes). At each size (10k, then
//! 100k: the same stores, grown) it runs `BENCH_QUERIES` (default 500)
//! queries with random unit vectors, each under the filter a real search
//! uses — org + actor + status "active", limit 10 — and, as the baseline,
//! the same query vectors through a brute-force top-10 dot product over all
//! the stored vectors (a flat `Vec<f32>` in this process, no filter). An
//! org-only store query (no actor, no status) is timed too, for reference.
//!
//! Environment (optional): `BENCH_QUERIES`, `BENCH_SIZES` (comma-separated,
//! ascending; default `10000,100000`).

use std::time::Instant;

use memsy_core::model::Memory;
use memsy_store::{CollectionSettings, EdgeStore, MemoryPoint, MemoryStore, QdrantStore, SearchFilter};
use memsy_testkit::sample_memory;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIM: usize = 384;
const ORGS: usize = 10;
const ACTORS_PER_ORG: usize = 100;
const BATCH: usize = 1000;
const LIMIT: usize = 10;
const WARMUP: usize = 50;
const TIMESTAMP: &str = "2026-01-01T00:00:00+00:00";

fn org(i: usize) -> String {
    format!("org-{i}")
}

fn actor(org_index: usize, actor_index: usize) -> String {
    format!("actor-{org_index}-{actor_index}")
}

/// Point `i` belongs to org `i % 10` and, within it, actor `(i / 10) % 100`:
/// every (org, actor) pair gets `n / 1000` memories.
fn memory(i: usize) -> Memory {
    let (o, a) = (i % ORGS, (i / ORGS) % ACTORS_PER_ORG);
    let actor_id = actor(o, a);
    sample_memory(&org(o), &actor_id, &format!("memory {i}: a memory of {actor_id}"), TIMESTAMP)
}

/// A uniformly random direction (normal components, Box–Muller), unit length.
fn unit_vector(rng: &mut StdRng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIM)
        .map(|_| {
            let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
            let u2: f64 = rng.random::<f64>();
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// Baseline: top-`LIMIT` by dot product over every stored vector.
fn brute_force(flat: &[f32], query: &[f32]) -> Vec<(f32, usize)> {
    let mut top: Vec<(f32, usize)> = Vec::with_capacity(LIMIT + 1);
    for (i, row) in flat.chunks_exact(DIM).enumerate() {
        let mut acc = [0.0f32; 8];
        for (r, q) in row.chunks_exact(8).zip(query.chunks_exact(8)) {
            for k in 0..8 {
                acc[k] += r[k] * q[k];
            }
        }
        let score: f32 = acc.iter().sum();
        if top.len() < LIMIT || score > top[top.len() - 1].0 {
            let pos = top.partition_point(|&(s, _)| s >= score);
            top.insert(pos, (score, i));
            top.truncate(LIMIT);
        }
    }
    top
}

struct Latencies(Vec<f64>);

impl Latencies {
    fn pct(&self, p: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        let idx = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[idx.clamp(1, v.len()) - 1]
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let queries: usize = std::env::var("BENCH_QUERIES").ok().and_then(|s| s.parse().ok()).unwrap_or(500);
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').map(|x| x.trim().parse().expect("BENCH_SIZES")).collect())
        .unwrap_or_else(|| vec![10_000, 100_000]);

    let dir = std::env::temp_dir().join(format!("memsy-bench-search-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut stores: Vec<(&str, Box<dyn MemoryStore>)> =
        vec![("embedded", Box::new(EdgeStore::open(&dir, DIM).expect("open edge store")))];
    let qdrant = memsy_testkit::Qdrant::from_env();
    match &qdrant {
        Some(q) => {
            let prefix = format!("bench_{}_", std::process::id());
            let store =
                QdrantStore::connect(&q.url(), q.api_key().as_deref(), &prefix, DIM, CollectionSettings::default())
                    .expect("qdrant client");
            stores.push(("qdrant server", Box::new(store)));
        }
        None => eprintln!("no Qdrant server (set QDRANT_BIN or QDRANT_URL): the embedded store only"),
    }
    for (_, store) in &stores {
        store.ensure_schema().await.expect("ensure_schema");
    }

    let mut rng = StdRng::seed_from_u64(0x6d656d7379);
    let mut flat: Vec<f32> = Vec::new();
    let mut stored = 0usize;
    let mut rows = Vec::new();

    for &size in &sizes {
        let mut fill_s = vec![0.0; stores.len()];
        while stored < size {
            let n = BATCH.min(size - stored);
            let points: Vec<MemoryPoint> = (stored..stored + n)
                .map(|i| {
                    let vector = unit_vector(&mut rng);
                    flat.extend_from_slice(&vector);
                    MemoryPoint { memory: memory(i), vector }
                })
                .collect();
            for (k, (_, store)) in stores.iter().enumerate() {
                let t = Instant::now();
                store.upsert_memories(&points).await.expect("upsert_memories");
                fill_s[k] += t.elapsed().as_secs_f64();
            }
            stored += n;
        }
        for (k, (name, store)) in stores.iter().enumerate() {
            let count: u64 = store.count_memories(&org(0)).await.expect("count");
            eprintln!("{name}: {stored} memories stored ({count} in org-0); grew in {:.1} s", fill_s[k]);
        }

        let qs: Vec<(Vec<f32>, usize, usize)> = (0..WARMUP + queries)
            .map(|_| (unit_vector(&mut rng), rng.random_range(0..ORGS), rng.random_range(0..ACTORS_PER_ORG)))
            .collect();
        let actor_filter = |o: usize, a: usize| SearchFilter {
            org_id: org(o),
            actor_id: Some(actor(o, a)),
            status: Some("active".into()),
            ..Default::default()
        };
        let org_filter = |o: usize| SearchFilter { org_id: org(o), ..Default::default() };

        // Warm-up: every path once over the first WARMUP queries.
        for (v, o, a) in &qs[..WARMUP] {
            for (_, store) in &stores {
                let hits = store.search(v, None, &actor_filter(*o, *a), LIMIT).await.expect("search");
                assert!(hits.iter().all(|h| h.memory.actor_id.as_deref() == Some(actor(*o, *a).as_str())));
                store.search(v, None, &org_filter(*o), LIMIT).await.expect("search");
            }
            std::hint::black_box(brute_force(&flat, v));
        }

        // Interleaved per query, so that drift hits every path alike.
        let mut filtered = vec![Vec::new(); stores.len()];
        let mut org_only = vec![Vec::new(); stores.len()];
        let mut hits_total = vec![0usize; stores.len()];
        let mut brute = Vec::new();
        for (v, o, a) in &qs[WARMUP..] {
            for (k, (_, store)) in stores.iter().enumerate() {
                let f = actor_filter(*o, *a);
                let t = Instant::now();
                let hits = store.search(v, None, &f, LIMIT).await.expect("search");
                filtered[k].push(ms(t.elapsed()));
                hits_total[k] += hits.len();

                let f = org_filter(*o);
                let t = Instant::now();
                let hits = store.search(v, None, &f, LIMIT).await.expect("search");
                org_only[k].push(ms(t.elapsed()));
                std::hint::black_box(hits);
            }
            let t = Instant::now();
            std::hint::black_box(brute_force(&flat, v));
            brute.push(ms(t.elapsed()));
        }
        let brute = Latencies(brute);
        for (k, (name, _)) in stores.iter().enumerate() {
            let (f, o) = (Latencies(std::mem::take(&mut filtered[k])), Latencies(std::mem::take(&mut org_only[k])));
            let hits = hits_total[k] as f64 / queries as f64;
            eprintln!(
                "{name} {size}: filtered p50 {:.2} p95 {:.2}; org-only p50 {:.2} p95 {:.2}; brute p50 {:.2} p95 {:.2} ms; {hits:.1} hits/query",
                f.pct(50.0),
                f.pct(95.0),
                o.pct(50.0),
                o.pct(95.0),
                brute.pct(50.0),
                brute.pct(95.0),
            );
            rows.push((name.to_string(), size, fill_s[k], f, o, Latencies(brute.0.clone()), hits));
        }
    }
    drop(stores);
    drop(qdrant);
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "| store | memories | queries | filtered p50 ms | filtered p95 ms | brute-force p50 ms | brute-force p95 ms | ratio p50 filtered/brute | ratio p95 filtered/brute | org-only p50 ms | org-only p95 ms | hits/query | fill time s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, size, fill_s, f, o, b, hits) in &rows {
        println!(
            "| {name} | {size} | {queries} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} |",
            f.pct(50.0),
            f.pct(95.0),
            b.pct(50.0),
            b.pct(95.0),
            f.pct(50.0) / b.pct(50.0),
            f.pct(95.0) / b.pct(95.0),
            o.pct(50.0),
            o.pct(95.0),
            hits,
            fill_s
        );
    }
}
