//! The contract every `MemoryStore` must honour. Each scenario is written
//! once against `&dyn MemoryStore` and instantiated per implementation by
//! `contract!`: `EdgeStore` in a temporary directory always, `QdrantStore`
//! on a Qdrant server when there is one (`QDRANT_BIN` starts one per test
//! process, `QDRANT_URL` names a running one; without either they are
//! skipped, said once), each test in its own randomly prefixed collections
//! so that tests run in parallel.

use chrono::Utc;
use memsy_core::ids::new_event_id;
use memsy_core::model::{Memory, StoredEvent};
use memsy_store::{
    CollectionSettings, DenseQuery, EdgeStore, EventScan, MemoryEdit, MemoryPoint, MemoryScan, MemoryStore,
    QdrantStore, SearchFilter, StoreError, UserStatus,
};
use memsy_testkit::sample_memory;
use uuid::Uuid;

const DIM: usize = 4;

// ---------------------------------------------------------------- fixtures

/// The directory comes first so that, bound as `let (_dir, store)`, it is
/// dropped after the store (whose drop flushes into it).
async fn edge_store() -> (tempfile::TempDir, EdgeStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EdgeStore::open(dir.path(), DIM).expect("open edge store");
    store.ensure_schema().await.expect("ensure_schema");
    // Idempotent: a second run must not fail.
    store.ensure_schema().await.expect("ensure_schema again");
    (dir, store)
}

async fn qdrant_store() -> Option<QdrantStore> {
    let store = qdrant_store_with(&CollectionSettings::default(), DIM)?;
    store.ensure_schema().await.expect("ensure_schema");
    store.ensure_schema().await.expect("ensure_schema again");
    Some(store)
}

/// A store on the shared server in collections of its own, not yet prepared.
fn qdrant_store_with(settings: &CollectionSettings, dim: usize) -> Option<QdrantStore> {
    let server = memsy_testkit::shared_qdrant()?;
    let prefix = format!("memsy_test_{}_", Uuid::new_v4().simple());
    Some(
        QdrantStore::connect(&server.url(), server.api_key().as_deref(), &prefix, dim, settings.clone())
            .expect("connect"),
    )
}

/// Instantiates each scenario for both stores.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod edge {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (_dir, store) = super::edge_store().await;
                    super::$name(&store).await;
                }
            )*
        }
        mod qdrant {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(store) = super::qdrant_store().await else { return };
                    super::$name(&store).await;
                }
            )*
        }
    };
}

contract!(
    min_score_leaves_out_weaker_hits,
    nearest_first_with_full_payload,
    org_isolation,
    actor_filter,
    session_filter_includes_sessionless,
    exclude_session_keeps_sessionless,
    status_filter,
    upsert_same_id_replaces,
    events_round_trip,
    role_and_team_eligibility,
    limit_is_honoured,
    malformed_and_unknown_ids_are_absent,
    wrong_dimension_is_invalid,
    scan_memories_filters_and_caps,
    scan_events_filters,
    replace_keeps_vectors_and_tenants,
    write_memories_replaces_then_inserts,
    hybrid_finds_a_keyword_match_far_from_the_vector,
    hybrid_scores_are_dense_cosines,
    hybrid_filters_apply_to_both_sources,
    hybrid_limit_is_honoured,
    dense_ids_answer_each_query_as_search_does,
    edits_change_pinned_and_status_within_the_org,
    rewrites_keep_what_a_user_set,
    delete_removes_only_the_orgs_memories,
    erase_removes_one_actor_or_one_org,
);

// ----------------------------------------------------------------- helpers

/// An active, actor-level memory of `actor` in `org`, no session.
fn memory(org: &str, actor: &str) -> Memory {
    sample_memory(org, actor, &format!("a memory of {actor}"), &Utc::now().to_rfc3339())
}

fn in_session(mut m: Memory, session: &str) -> Memory {
    m.session_id = Some(session.into());
    m
}

/// A unit vector along axis `i`.
fn axis(i: usize) -> Vec<f32> {
    let mut v = vec![0.0; DIM];
    v[i] = 1.0;
    v
}

async fn put(store: &dyn MemoryStore, memories: &[(&Memory, Vec<f32>)]) {
    let points: Vec<MemoryPoint> =
        memories.iter().map(|(m, v)| MemoryPoint { memory: (*m).clone(), vector: v.clone() }).collect();
    store.upsert_memories(&points).await.expect("upsert_memories");
}

fn filter(org: &str) -> SearchFilter {
    SearchFilter { org_id: org.into(), ..Default::default() }
}

/// Sorted ids of the hits, for set comparisons. Asked twice, dense only and
/// hybrid with words every test memory has ("a memory of <actor>"): the
/// filter must select the same set through both sources.
async fn hit_ids(store: &dyn MemoryStore, f: &SearchFilter) -> Vec<String> {
    let sorted = |hits: Vec<memsy_store::SearchHit>| {
        let mut ids: Vec<String> = hits.into_iter().map(|h| h.memory.memory_id).collect();
        ids.sort();
        ids
    };
    let dense = sorted(store.search(&axis(0), None, f, 100).await.expect("search"));
    let hybrid = sorted(store.search(&axis(0), Some("memory"), f, 100).await.expect("hybrid search"));
    assert_eq!(dense, hybrid, "dense and hybrid search select different memories");
    dense
}

/// A memory with this text.
fn saying(org: &str, actor: &str, text: &str) -> Memory {
    sample_memory(org, actor, text, &Utc::now().to_rfc3339())
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (n(a) * n(b))
}

/// Ten memories near `axis(0)` about drinks, and one far from it (opposite)
/// that is the only one with the word "zanzibar"; (near, far).
async fn keyword_fixture(store: &dyn MemoryStore, org: &str) -> (Vec<(Memory, Vec<f32>)>, (Memory, Vec<f32>)) {
    let near: Vec<(Memory, Vec<f32>)> = (0..10)
        .map(|i| {
            let m = saying(org, "alice", &format!("alice drinks tea number {i} in the morning"));
            (m, vec![1.0, 0.1 * i as f32, 0.05, 0.0])
        })
        .collect();
    let far = (saying(org, "alice", "The safe word for the trip is Zanzibar."), vec![-1.0, 0.0, 0.3, 0.2]);
    let mut all: Vec<(&Memory, Vec<f32>)> = near.iter().map(|(m, v)| (m, v.clone())).collect();
    all.push((&far.0, far.1.clone()));
    put(store, &all).await;
    (near, far)
}

fn ids_of(memories: &[&Memory]) -> Vec<String> {
    let mut ids: Vec<String> = memories.iter().map(|m| m.memory_id.clone()).collect();
    ids.sort();
    ids
}

fn event(org: &str, metadata: Option<&str>) -> StoredEvent {
    StoredEvent {
        event_id: new_event_id(),
        org_id: org.into(),
        actor_id: "alice".into(),
        session_id: "s1".into(),
        kind: "user_message".into(),
        content: "I prefer tea".into(),
        role_id: Some("r1".into()),
        team_id: None,
        ts: Utc::now().to_rfc3339(),
        metadata: metadata.map(str::to_string),
        ingested_at: Utc::now().to_rfc3339(),
    }
}

// --------------------------------------------------------------- scenarios

async fn nearest_first_with_full_payload(store: &dyn MemoryStore) {
    let exact = memory("org", "alice");
    let near = memory("org", "alice");
    let far = memory("org", "alice");
    put(store, &[(&far, axis(1)), (&exact, axis(0)), (&near, vec![0.9, 0.1, 0.0, 0.0])]).await;

    let hits = store.search(&axis(0), None, &filter("org"), 10).await.unwrap();
    let ids: Vec<&str> = hits.iter().map(|h| h.memory.memory_id.as_str()).collect();
    assert_eq!(ids, [&exact.memory_id, &near.memory_id, &far.memory_id]);
    assert!((hits[0].score - 1.0).abs() < 1e-4, "identical vector scores {}", hits[0].score);
    assert!(hits[1].score < hits[0].score && hits[2].score < hits[1].score);
    assert!(hits[2].score.abs() < 1e-4, "orthogonal vector scores {}", hits[2].score);
    // The payload round-trips to the very same record.
    assert_eq!(hits[0].memory, exact);
}

async fn min_score_leaves_out_weaker_hits(store: &dyn MemoryStore) {
    let exact = memory("org", "alice");
    let near = memory("org", "alice");
    let far = memory("org", "alice");
    put(store, &[(&far, axis(1)), (&exact, axis(0)), (&near, vec![0.9, 0.1, 0.0, 0.0])]).await;

    let f = SearchFilter { min_score: Some(0.9), ..filter("org") };
    let hits = store.search(&axis(0), None, &f, 10).await.unwrap();
    let ids: Vec<&str> = hits.iter().map(|h| h.memory.memory_id.as_str()).collect();
    assert_eq!(ids, [&exact.memory_id, &near.memory_id]);
    assert!(hits.iter().all(|h| h.score >= 0.9));
}

async fn dense_ids_answer_each_query_as_search_does(store: &dyn MemoryStore) {
    let (a, b, c) = (memory("org", "alice"), memory("org", "bob"), memory("other", "alice"));
    put(store, &[(&a, axis(0)), (&b, vec![0.9, 0.1, 0.0, 0.0]), (&c, axis(0))]).await;
    let alice = SearchFilter { actor_id: Some("alice".into()), ..filter("org") };
    let queries = vec![
        DenseQuery { vector: axis(0), filter: filter("org"), limit: 10 },
        DenseQuery { vector: axis(0), filter: alice.clone(), limit: 10 },
        DenseQuery { vector: axis(1), filter: SearchFilter { min_score: Some(0.5), ..filter("org") }, limit: 10 },
        DenseQuery { vector: axis(0), filter: filter("org"), limit: 1 },
        DenseQuery { vector: axis(0), filter: filter("org"), limit: 0 },
        DenseQuery { vector: axis(0), filter: filter("nobody"), limit: 10 },
    ];
    let answers = store.search_dense_ids(&queries).await.unwrap();
    assert_eq!(answers.len(), queries.len());
    for (q, answer) in queries.iter().zip(&answers) {
        let alone = store.search(&q.vector, None, &q.filter, q.limit).await.unwrap();
        let expected: Vec<(String, f32)> = alone.into_iter().map(|h| (h.memory.memory_id, h.score)).collect();
        let got: Vec<(String, f32)> = answer.iter().map(|h| (h.memory_id.clone(), h.score)).collect();
        assert_eq!(got.len(), expected.len(), "{q:?}");
        for ((id, score), (want_id, want_score)) in got.iter().zip(&expected) {
            assert_eq!(id, want_id, "{q:?}");
            assert!((score - want_score).abs() < 1e-5, "{q:?}: {score} vs {want_score}");
        }
    }
    let ids: Vec<Vec<&str>> = answers.iter().map(|hits| hits.iter().map(|h| h.memory_id.as_str()).collect()).collect();
    assert_eq!(ids[0], [&a.memory_id, &b.memory_id]);
    assert_eq!(ids[1], [&a.memory_id]);
    assert!(ids[2].is_empty(), "{:?}", ids[2]);
    assert_eq!(ids[3], [&a.memory_id]);
    assert!(ids[4].is_empty() && ids[5].is_empty());
    // The ids are the memories' own: get_memories fetches them.
    let fetched = store.get_memories("org", &[ids[0][0].to_string()]).await.unwrap();
    assert_eq!(fetched, std::slice::from_ref(&a));
    // A wrong vector anywhere refuses the whole request.
    let bad = vec![queries[0].clone(), DenseQuery { vector: vec![1.0; DIM - 1], filter: filter("org"), limit: 5 }];
    assert!(matches!(store.search_dense_ids(&bad).await.unwrap_err(), StoreError::Invalid(_)));
}

async fn org_isolation(store: &dyn MemoryStore) {
    let a = memory("org-a", "alice");
    put(store, &[(&a, axis(0))]).await;
    let ev = event("org-a", None);
    store.upsert_events(std::slice::from_ref(&ev)).await.unwrap();

    assert!(store.search(&axis(0), None, &filter("org-b"), 10).await.unwrap().is_empty());
    assert!(store.get_memories("org-b", std::slice::from_ref(&a.memory_id)).await.unwrap().is_empty());
    assert!(store.get_events("org-b", std::slice::from_ref(&ev.event_id)).await.unwrap().is_empty());
    assert_eq!(store.count_memories("org-b").await.unwrap(), 0);

    // …while org A sees its own.
    assert_eq!(store.search(&axis(0), None, &filter("org-a"), 10).await.unwrap().len(), 1);
    assert_eq!(store.get_memories("org-a", std::slice::from_ref(&a.memory_id)).await.unwrap(), vec![a]);
    assert_eq!(store.get_events("org-a", std::slice::from_ref(&ev.event_id)).await.unwrap(), vec![ev]);
    assert_eq!(store.count_memories("org-a").await.unwrap(), 1);
}

async fn actor_filter(store: &dyn MemoryStore) {
    let alice = memory("org", "alice");
    let bob = memory("org", "bob");
    put(store, &[(&alice, axis(0)), (&bob, axis(0))]).await;

    let f = SearchFilter { actor_id: Some("alice".into()), ..filter("org") };
    assert_eq!(hit_ids(store, &f).await, ids_of(&[&alice]));
    // No actor: everyone in the org.
    assert_eq!(hit_ids(store, &filter("org")).await, ids_of(&[&alice, &bob]));
}

async fn session_filter_includes_sessionless(store: &dyn MemoryStore) {
    let s1 = in_session(memory("org", "alice"), "s1");
    let s2 = in_session(memory("org", "alice"), "s2");
    let none = memory("org", "alice");
    put(store, &[(&s1, axis(0)), (&s2, axis(0)), (&none, axis(0))]).await;

    let f = SearchFilter { session_id: Some("s1".into()), ..filter("org") };
    assert_eq!(hit_ids(store, &f).await, ids_of(&[&s1, &none]));
}

async fn exclude_session_keeps_sessionless(store: &dyn MemoryStore) {
    let s1 = in_session(memory("org", "alice"), "s1");
    let s2 = in_session(memory("org", "alice"), "s2");
    let none = memory("org", "alice");
    put(store, &[(&s1, axis(0)), (&s2, axis(0)), (&none, axis(0))]).await;

    let f = SearchFilter { exclude_session_id: Some("s1".into()), ..filter("org") };
    assert_eq!(hit_ids(store, &f).await, ids_of(&[&s2, &none]));
}

async fn status_filter(store: &dyn MemoryStore) {
    let active = memory("org", "alice");
    let superseded = Memory { status: "superseded".into(), ..memory("org", "alice") };
    put(store, &[(&active, axis(0)), (&superseded, axis(0))]).await;

    let f = SearchFilter { status: Some("active".into()), ..filter("org") };
    assert_eq!(hit_ids(store, &f).await, ids_of(&[&active]));
    let f = SearchFilter { status: Some("superseded".into()), ..filter("org") };
    assert_eq!(hit_ids(store, &f).await, ids_of(&[&superseded]));
    assert_eq!(hit_ids(store, &filter("org")).await, ids_of(&[&active, &superseded]));
}

async fn upsert_same_id_replaces(store: &dyn MemoryStore) {
    let first = memory("org", "alice");
    put(store, &[(&first, axis(1))]).await;
    let second = Memory { text: "revised".into(), status: "archived".into(), ..first.clone() };
    put(store, &[(&second, axis(0))]).await;

    assert_eq!(store.count_memories("org").await.unwrap(), 1);
    assert_eq!(store.get_memories("org", std::slice::from_ref(&first.memory_id)).await.unwrap(), vec![second.clone()]);
    let hits = store.search(&axis(0), None, &filter("org"), 10).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].memory, second);
    // The vector was replaced too.
    assert!((hits[0].score - 1.0).abs() < 1e-4);
}

async fn events_round_trip(store: &dyn MemoryStore) {
    let plain = event("org", None);
    let with_meta = StoredEvent { team_id: Some("t1".into()), ..event("org", Some(r#"{"plan":"pro"}"#)) };
    store.upsert_events(&[plain.clone(), with_meta.clone()]).await.unwrap();

    let got = store.get_events("org", &[with_meta.event_id.clone(), plain.event_id.clone()]).await.unwrap();
    assert_eq!(got, vec![with_meta.clone(), plain.clone()], "all fields, in request order");

    // Upserting an event again replaces it.
    let edited = StoredEvent { content: "edited".into(), metadata: None, ..with_meta.clone() };
    store.upsert_events(std::slice::from_ref(&edited)).await.unwrap();
    assert_eq!(store.get_events("org", std::slice::from_ref(&edited.event_id)).await.unwrap(), vec![edited]);
    // Events are not memories.
    assert_eq!(store.count_memories("org").await.unwrap(), 0);
}

async fn role_and_team_eligibility(store: &dyn MemoryStore) {
    let own = memory("org", "alice");
    let bobs = memory("org", "bob");
    let role_r1 =
        Memory { scope_level: "role".into(), actor_id: None, role_id: Some("r1".into()), ..memory("org", "x") };
    let role_r2 =
        Memory { scope_level: "role".into(), actor_id: None, role_id: Some("r2".into()), ..memory("org", "x") };
    let team_t1 =
        Memory { scope_level: "team".into(), actor_id: None, team_id: Some("t1".into()), ..memory("org", "x") };
    let team_t2 =
        Memory { scope_level: "team".into(), actor_id: None, team_id: Some("t2".into()), ..memory("org", "x") };
    let org_wide = Memory { scope_level: "org".into(), actor_id: None, ..memory("org", "x") };
    // Bob's own memory that merely carries role r1 stays Bob's: eligibility
    // needs scope_level = role.
    let bobs_in_r1 = Memory { role_id: Some("r1".into()), ..memory("org", "bob") };
    let other_org_role =
        Memory { scope_level: "role".into(), actor_id: None, role_id: Some("r1".into()), ..memory("org-b", "x") };
    put(
        store,
        &[
            (&own, axis(0)),
            (&bobs, axis(0)),
            (&role_r1, axis(0)),
            (&role_r2, axis(0)),
            (&team_t1, axis(0)),
            (&team_t2, axis(0)),
            (&org_wide, axis(0)),
            (&bobs_in_r1, axis(0)),
            (&other_org_role, axis(0)),
        ],
    )
    .await;

    let both = SearchFilter {
        actor_id: Some("alice".into()),
        role_ids: vec!["r1".into()],
        team_ids: vec!["t1".into()],
        ..filter("org")
    };
    assert_eq!(hit_ids(store, &both).await, ids_of(&[&own, &role_r1, &team_t1, &org_wide]));

    let roles_only =
        SearchFilter { actor_id: Some("alice".into()), role_ids: vec!["r1".into(), "r2".into()], ..filter("org") };
    assert_eq!(hit_ids(store, &roles_only).await, ids_of(&[&own, &role_r1, &role_r2, &org_wide]));

    let teams_only = SearchFilter { actor_id: Some("alice".into()), team_ids: vec!["t2".into()], ..filter("org") };
    assert_eq!(hit_ids(store, &teams_only).await, ids_of(&[&own, &team_t2, &org_wide]));

    // Org-level knowledge reaches an actor with no roles or teams too.
    let plain = SearchFilter { actor_id: Some("alice".into()), ..filter("org") };
    assert_eq!(hit_ids(store, &plain).await, ids_of(&[&own, &org_wide]));

    // Without an actor there is no actor condition: the whole org.
    let no_actor = SearchFilter { role_ids: vec!["r1".into()], ..filter("org") };
    assert_eq!(hit_ids(store, &no_actor).await.len(), 8);
}

async fn limit_is_honoured(store: &dyn MemoryStore) {
    let ms: Vec<Memory> = (0..5).map(|_| memory("org", "alice")).collect();
    let best = &ms[3];
    let points: Vec<(&Memory, Vec<f32>)> = ms
        .iter()
        .enumerate()
        .map(|(i, m)| (m, if i == 3 { axis(0) } else { vec![0.5, 0.5, i as f32 * 0.1, 0.0] }))
        .collect();
    put(store, &points).await;

    let hits = store.search(&axis(0), None, &filter("org"), 2).await.unwrap();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].memory.memory_id, best.memory_id);
    assert!(hits[0].score >= hits[1].score);
    assert!(store.search(&axis(0), None, &filter("org"), 0).await.unwrap().is_empty());
}

async fn hybrid_finds_a_keyword_match_far_from_the_vector(store: &dyn MemoryStore) {
    let (_, (far, _)) = keyword_fixture(store, "org").await;
    let ids = |hits: Vec<memsy_store::SearchHit>| hits.into_iter().map(|h| h.memory.memory_id).collect::<Vec<_>>();
    // Dense only: the far memory is last of eleven, outside a top 3.
    let dense = ids(store.search(&axis(0), None, &filter("org"), 3).await.unwrap());
    assert!(!dense.contains(&far.memory_id));
    // Hybrid: the rare word brings it in (stemmed, case-folded: "zanzibar's").
    let hybrid = ids(store.search(&axis(0), Some("what was zanzibar's role?"), &filter("org"), 3).await.unwrap());
    assert!(hybrid.contains(&far.memory_id), "{hybrid:?}");
    // A query with no indexable word (only stopwords) is dense only.
    let stop = ids(store.search(&axis(0), Some("what is the"), &filter("org"), 3).await.unwrap());
    assert_eq!(stop, dense);
}

async fn hybrid_scores_are_dense_cosines(store: &dyn MemoryStore) {
    let (near, far) = keyword_fixture(store, "org").await;
    let vectors: std::collections::HashMap<String, Vec<f32>> =
        near.iter().chain([&far]).map(|(m, v)| (m.memory_id.clone(), v.clone())).collect();
    let query = vec![0.9, 0.2, 0.1, 0.1];
    let hits = store.search(&query, Some("zanzibar tea"), &filter("org"), 11).await.unwrap();
    assert_eq!(hits.len(), 11);
    for h in &hits {
        let expected = cos(&query, &vectors[&h.memory.memory_id]);
        assert!((h.score - expected).abs() < 1e-4, "score {} vs cosine {expected}", h.score);
        assert!((0.0..=1.0).contains(&h.rank), "rank {}", h.rank);
    }
    // Fusion order: ranks never increase; the far memory's score stays negative.
    assert!(hits.windows(2).all(|w| w[0].rank >= w[1].rank));
    let far_hit = hits.iter().find(|h| h.memory.memory_id == far.0.memory_id).unwrap();
    assert!(far_hit.score < 0.0);
}

async fn hybrid_filters_apply_to_both_sources(store: &dyn MemoryStore) {
    let own = saying("org", "alice", "alice keeps a zanzibar stamp");
    let other_actor = saying("org", "bob", "bob keeps a zanzibar stamp");
    let other_org = saying("org-b", "alice", "alice keeps a zanzibar stamp");
    let mut archived = saying("org", "alice", "an archived zanzibar stamp");
    archived.status = "archived".into();
    let other_session = in_session(saying("org", "alice", "zanzibar in another session"), "s2");
    put(
        store,
        &[
            (&own, axis(1)),
            (&other_actor, axis(0)),
            (&other_org, axis(0)),
            (&archived, axis(0)),
            (&other_session, axis(0)),
        ],
    )
    .await;
    let f = SearchFilter {
        actor_id: Some("alice".into()),
        status: Some("active".into()),
        exclude_session_id: Some("s2".into()),
        ..filter("org")
    };
    let hits = store.search(&axis(0), Some("zanzibar stamp"), &f, 10).await.unwrap();
    let ids: Vec<String> = hits.into_iter().map(|h| h.memory.memory_id).collect();
    assert_eq!(ids, vec![own.memory_id]);
}

async fn hybrid_limit_is_honoured(store: &dyn MemoryStore) {
    keyword_fixture(store, "org").await;
    for limit in [1, 2, 5] {
        let hits = store.search(&axis(0), Some("zanzibar tea"), &filter("org"), limit).await.unwrap();
        assert_eq!(hits.len(), limit);
    }
    assert!(store.search(&axis(0), Some("zanzibar"), &filter("org"), 0).await.unwrap().is_empty());
}

async fn malformed_and_unknown_ids_are_absent(store: &dyn MemoryStore) {
    let m = memory("org", "alice");
    put(store, &[(&m, axis(0))]).await;
    let ev = event("org", None);
    store.upsert_events(std::slice::from_ref(&ev)).await.unwrap();

    let junk = vec![
        "not-a-uuid".to_string(),
        String::new(),
        "01ARZ3NDEKTSV4RRFFQ69G5FA!".to_string(),
        Uuid::new_v4().to_string(),
        new_event_id(),
    ];
    assert!(store.get_memories("org", &junk).await.unwrap().is_empty());
    assert!(store.get_events("org", &junk).await.unwrap().is_empty());
    assert!(store.get_memories("org", &[]).await.unwrap().is_empty());

    // Junk mixed with a real id still finds the real one.
    let mut mixed = junk.clone();
    mixed.push(m.memory_id.clone());
    assert_eq!(store.get_memories("org", &mixed).await.unwrap(), vec![m]);
    let mut mixed = junk;
    mixed.push(ev.event_id.clone());
    assert_eq!(store.get_events("org", &mixed).await.unwrap(), vec![ev]);
}

async fn wrong_dimension_is_invalid(store: &dyn MemoryStore) {
    let m = memory("org", "alice");
    let err = store.upsert_memories(&[MemoryPoint { memory: m, vector: vec![1.0; DIM + 1] }]).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    let err = store.search(&[1.0; DIM - 1], None, &filter("org"), 5).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
}

async fn scan_memories_filters_and_caps(store: &dyn MemoryStore) {
    let mut ms: Vec<Memory> = (0..7).map(|i| memory("org", if i < 5 { "alice" } else { "bob" })).collect();
    ms[0].status = "superseded".into();
    ms[1].memory_type = "preference".into();
    ms[1].memory_kind = "episodic".into();
    let other = memory("org-b", "alice");
    let mut points: Vec<(&Memory, Vec<f32>)> = ms.iter().map(|m| (m, axis(0))).collect();
    points.push((&other, axis(0)));
    put(store, &points).await;

    let ids = |items: &[Memory]| {
        let mut v: Vec<String> = items.iter().map(|m| m.memory_id.clone()).collect();
        v.sort();
        v
    };
    let all = store.scan_memories(&MemoryScan::org("org"), 100).await.unwrap();
    assert!(!all.truncated);
    assert_eq!(ids(&all.items), ids_of(&ms.iter().collect::<Vec<_>>()));

    let alice = MemoryScan { actor_id: Some("alice".into()), ..MemoryScan::org("org") };
    assert_eq!(store.scan_memories(&alice, 100).await.unwrap().items.len(), 5);
    let active = MemoryScan { status: Some("active".into()), ..alice.clone() };
    assert_eq!(store.scan_memories(&active, 100).await.unwrap().items.len(), 4);
    let typed = MemoryScan {
        memory_type: Some("preference".into()),
        memory_kind: Some("episodic".into()),
        ..MemoryScan::org("org")
    };
    assert_eq!(ids(&store.scan_memories(&typed, 100).await.unwrap().items), vec![ms[1].memory_id.clone()]);

    // The cap is exact: at the cap nothing is missing, below it the scan says so.
    let capped = store.scan_memories(&MemoryScan::org("org"), 7).await.unwrap();
    assert_eq!((capped.items.len(), capped.truncated), (7, false));
    let capped = store.scan_memories(&MemoryScan::org("org"), 3).await.unwrap();
    assert_eq!((capped.items.len(), capped.truncated), (3, true));
    assert!(store.scan_memories(&MemoryScan::org("nobody"), 10).await.unwrap().items.is_empty());
}

async fn scan_events_filters(store: &dyn MemoryStore) {
    let a = event("org", None);
    let mut b = event("org", None);
    b.session_id = "s2".into();
    b.kind = "assistant_message".into();
    let mut c = event("org", None);
    c.actor_id = "bob".into();
    let other = event("org-b", None);
    store.upsert_events(&[a.clone(), b.clone(), c.clone(), other]).await.unwrap();

    let scan = |actor: Option<&str>, session: Option<&str>, kind: Option<&str>| EventScan {
        org_id: "org".into(),
        actor_id: actor.map(Into::into),
        session_id: session.map(Into::into),
        kind: kind.map(Into::into),
    };
    let count = |s: EventScan| async move { store.scan_events(&s, 100).await.unwrap().items.len() };
    assert_eq!(count(scan(None, None, None)).await, 3);
    assert_eq!(count(scan(Some("alice"), None, None)).await, 2);
    assert_eq!(count(scan(None, Some("s2"), None)).await, 1);
    assert_eq!(count(scan(Some("alice"), Some("s1"), Some("user_message"))).await, 1);
    assert_eq!(count(scan(None, None, Some("tool_result"))).await, 0);
    let capped = store.scan_events(&scan(None, None, None), 2).await.unwrap();
    assert_eq!((capped.items.len(), capped.truncated), (2, true));
}

async fn replace_keeps_vectors_and_tenants(store: &dyn MemoryStore) {
    let m = memory("org", "alice");
    put(store, &[(&m, axis(1))]).await;
    let changed = Memory { strength: 3.0, status: "superseded".into(), slot: Some("residence".into()), ..m.clone() };
    // Same id under another org, and an id never stored: both ignored.
    let foreign = Memory { org_id: "org-b".into(), strength: 5.0, ..m.clone() };
    let unknown = memory("org", "bob");
    store.replace_memories(&[foreign, unknown.clone()]).await.unwrap();
    assert_eq!(store.get_memories("org", std::slice::from_ref(&m.memory_id)).await.unwrap(), vec![m.clone()]);
    assert!(store.get_memories("org", &[unknown.memory_id]).await.unwrap().is_empty());
    assert!(store.get_memories("org-b", std::slice::from_ref(&m.memory_id)).await.unwrap().is_empty());

    store.replace_memories(std::slice::from_ref(&changed)).await.unwrap();
    assert_eq!(store.get_memories("org", std::slice::from_ref(&m.memory_id)).await.unwrap(), vec![changed.clone()]);
    // The vector is untouched.
    let hits = store.search(&axis(1), None, &filter("org"), 1).await.unwrap();
    assert_eq!(hits[0].memory, changed);
    assert!(hits[0].score > 0.99);
    // Exact conditions and the slot scan see the new fields.
    let exact = SearchFilter { exact: vec![("slot".into(), "residence".into())], ..filter("org") };
    assert_eq!(hit_ids(store, &exact).await, vec![m.memory_id.clone()]);
    let other = SearchFilter { exact: vec![("slot".into(), "employer".into())], ..filter("org") };
    assert!(hit_ids(store, &other).await.is_empty());
    let scan = MemoryScan { slot: Some("residence".into()), ..MemoryScan::org("org") };
    assert_eq!(store.scan_memories(&scan, 10).await.unwrap().items, vec![changed]);
}

async fn write_memories_replaces_then_inserts(store: &dyn MemoryStore) {
    let old = memory("org", "alice");
    put(store, &[(&old, axis(1))]).await;
    let superseded = Memory { status: "superseded".into(), strength: 2.0, ..old.clone() };
    let new = memory("org", "alice");
    // A replacement of an id never stored is ignored, as in replace_memories.
    let unknown = memory("org", "bob");
    store
        .write_memories(&[superseded.clone(), unknown.clone()], &[MemoryPoint { memory: new.clone(), vector: axis(2) }])
        .await
        .unwrap();
    let ids = vec![old.memory_id.clone(), new.memory_id.clone(), unknown.memory_id.clone()];
    let mut got = store.get_memories("org", &ids).await.unwrap();
    got.sort_by_key(|m| ids.iter().position(|i| *i == m.memory_id));
    assert_eq!(got, vec![superseded.clone(), new.clone()]);
    // The replaced memory keeps its vector; the inserted one has its own.
    let hits = store.search(&axis(1), None, &filter("org"), 1).await.unwrap();
    assert_eq!(hits[0].memory, superseded);
    assert!(hits[0].score > 0.99);
    let active = SearchFilter { status: Some("active".into()), ..filter("org") };
    assert_eq!(hit_ids(store, &active).await, vec![new.memory_id.clone()]);
    // Nothing at all is a no-op.
    store.write_memories(&[], &[]).await.unwrap();
}

fn edit(pinned: Option<bool>, status: Option<UserStatus>) -> MemoryEdit {
    MemoryEdit { pinned, status, at: "2030-01-01T00:00:00.000Z".into() }
}

async fn edits_change_pinned_and_status_within_the_org(store: &dyn MemoryStore) {
    let m = memory("org", "alice");
    put(store, &[(&m, axis(1))]).await;
    // Another org's caller and an unknown or malformed id change nothing.
    assert_eq!(store.edit_memory("org-b", &m.memory_id, &edit(Some(true), None)).await.unwrap(), None);
    assert_eq!(store.edit_memory("org", &memory("org", "x").memory_id, &edit(Some(true), None)).await.unwrap(), None);
    assert_eq!(store.edit_memory("org", "not-a-uuid", &edit(Some(true), None)).await.unwrap(), None);
    assert_eq!(store.get_memories("org", std::slice::from_ref(&m.memory_id)).await.unwrap(), vec![m.clone()]);

    let pinned = store.edit_memory("org", &m.memory_id, &edit(Some(true), None)).await.unwrap().unwrap();
    let expected = Memory { pinned: true, updated_at: "2030-01-01T00:00:00.000Z".into(), ..m.clone() };
    assert_eq!(pinned, expected);
    assert_eq!(store.get_memories("org", std::slice::from_ref(&m.memory_id)).await.unwrap(), vec![expected.clone()]);

    let archived =
        store.edit_memory("org", &m.memory_id, &edit(None, Some(UserStatus::Archived))).await.unwrap().unwrap();
    assert_eq!(archived, Memory { status: "archived".into(), ..expected.clone() });
    let active = SearchFilter { status: Some("active".into()), ..filter("org") };
    assert!(hit_ids(store, &active).await.is_empty());
    // The vector is untouched by an edit.
    let restored =
        store.edit_memory("org", &m.memory_id, &edit(None, Some(UserStatus::Active))).await.unwrap().unwrap();
    assert!(restored.pinned);
    let hits = store.search(&axis(1), None, &active, 1).await.unwrap();
    assert_eq!(hits[0].memory, restored);
    assert!(hits[0].score > 0.99);
}

async fn rewrites_keep_what_a_user_set(store: &dyn MemoryStore) {
    let m = memory("org", "alice");
    put(store, &[(&m, axis(1))]).await;
    // The pipeline read `m` before the user pinned it, and rewrites it after.
    store.edit_memory("org", &m.memory_id, &edit(Some(true), None)).await.unwrap();
    let reinforced = Memory { strength: 3.0, recall_count: 2, ..m.clone() };
    store.replace_memories(std::slice::from_ref(&reinforced)).await.unwrap();
    let got = store.get_memories("org", std::slice::from_ref(&m.memory_id)).await.unwrap();
    assert_eq!((got[0].pinned, got[0].strength, got[0].recall_count), (true, 3.0, 2));
    // An archived memory is not rewritten at all, by either write.
    store.edit_memory("org", &m.memory_id, &edit(None, Some(UserStatus::Archived))).await.unwrap();
    let before = store.get_memories("org", std::slice::from_ref(&m.memory_id)).await.unwrap();
    store.replace_memories(&[Memory { strength: 4.0, status: "active".into(), ..m.clone() }]).await.unwrap();
    store.write_memories(&[Memory { status: "superseded".into(), ..m.clone() }], &[]).await.unwrap();
    assert_eq!(store.get_memories("org", std::slice::from_ref(&m.memory_id)).await.unwrap(), before);
}

async fn delete_removes_only_the_orgs_memories(store: &dyn MemoryStore) {
    let (a, b, foreign) = (memory("org", "alice"), memory("org", "bob"), memory("org-b", "carol"));
    put(store, &[(&a, axis(1)), (&b, axis(2)), (&foreign, axis(3))]).await;
    let asked =
        vec![a.memory_id.clone(), foreign.memory_id.clone(), memory("org", "x").memory_id, "not-a-uuid".to_string()];
    assert_eq!(store.delete_memories("org", &asked).await.unwrap(), vec![a.memory_id.clone()]);
    assert!(store.get_memories("org", std::slice::from_ref(&a.memory_id)).await.unwrap().is_empty());
    assert_eq!(hit_ids(store, &filter("org")).await, vec![b.memory_id.clone()]);
    assert_eq!(store.count_memories("org").await.unwrap(), 1);
    assert_eq!(store.scan_memories(&MemoryScan::org("org"), 10).await.unwrap().items, vec![b.clone()]);
    assert_eq!(store.get_memories("org-b", std::slice::from_ref(&foreign.memory_id)).await.unwrap(), vec![foreign]);
    // Gone means gone: deleting again finds nothing, a rewrite planned
    // before the delete does not bring it back, nor does an edit.
    assert!(store.delete_memories("org", std::slice::from_ref(&a.memory_id)).await.unwrap().is_empty());
    store.replace_memories(&[Memory { strength: 2.0, ..a.clone() }]).await.unwrap();
    store.write_memories(std::slice::from_ref(&a), &[]).await.unwrap();
    assert_eq!(store.edit_memory("org", &a.memory_id, &edit(Some(true), None)).await.unwrap(), None);
    assert!(store.get_memories("org", std::slice::from_ref(&a.memory_id)).await.unwrap().is_empty());
    assert_eq!(store.count_memories("org").await.unwrap(), 1);
}

fn event_of(org: &str, actor: &str) -> StoredEvent {
    StoredEvent { actor_id: actor.into(), ..event(org, None) }
}

async fn erase_removes_one_actor_or_one_org(store: &dyn MemoryStore) {
    let (a1, a2, b) = (memory("org", "alice"), memory("org", "alice"), memory("org", "bob"));
    let mut promoted = memory("org", "alice");
    (promoted.actor_id, promoted.scope_level) = (None, "org".into());
    let (foreign, foreign_alice) = (memory("org-b", "carol"), memory("org-b", "alice"));
    put(store, &[(&a1, axis(0)), (&a2, axis(1)), (&b, axis(2)), (&promoted, axis(3))]).await;
    put(store, &[(&foreign, axis(0)), (&foreign_alice, axis(1))]).await;
    let (ea, eb, ef) = (event_of("org", "alice"), event_of("org", "bob"), event_of("org-b", "alice"));
    store.upsert_events(&[ea.clone(), eb.clone(), ef.clone()]).await.unwrap();

    let erased = store.erase("org", Some("alice")).await.unwrap();
    assert_eq!(erased, memsy_store::Erased { events: 1, memories: 2 });
    let left = |scan: MemoryScan| async move {
        let mut ids: Vec<String> =
            store.scan_memories(&scan, 100).await.unwrap().items.into_iter().map(|m| m.memory_id).collect();
        ids.sort();
        ids
    };
    assert_eq!(left(MemoryScan::org("org")).await, ids_of(&[&b, &promoted]));
    assert_eq!(hit_ids(store, &filter("org")).await, ids_of(&[&b, &promoted]));
    assert!(store.get_events("org", std::slice::from_ref(&ea.event_id)).await.unwrap().is_empty());
    assert_eq!(store.get_events("org", std::slice::from_ref(&eb.event_id)).await.unwrap(), vec![eb.clone()]);
    // The same actor id in another org is another person.
    assert_eq!(left(MemoryScan::org("org-b")).await, ids_of(&[&foreign, &foreign_alice]));
    assert_eq!(store.get_events("org-b", std::slice::from_ref(&ef.event_id)).await.unwrap(), vec![ef.clone()]);
    // Nothing left of the actor: nothing to erase.
    assert_eq!(store.erase("org", Some("alice")).await.unwrap(), memsy_store::Erased::default());

    // The whole org, promoted memories included; the other org stays.
    assert_eq!(store.erase("org", None).await.unwrap(), memsy_store::Erased { events: 1, memories: 2 });
    assert_eq!(store.count_memories("org").await.unwrap(), 0);
    assert!(store
        .scan_events(&EventScan { org_id: "org".into(), ..Default::default() }, 10)
        .await
        .unwrap()
        .items
        .is_empty());
    assert_eq!(store.count_memories("org-b").await.unwrap(), 2);
    assert_eq!(hit_ids(store, &filter("org-b")).await, ids_of(&[&foreign, &foreign_alice]));
}

// ------------------------------------------------------------- edge only

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let m = in_session(memory("org", "alice"), "s1");
    let ev = event("org", Some("raw"));
    {
        let store = EdgeStore::open(dir.path(), DIM).unwrap();
        store.ensure_schema().await.unwrap();
        put(&store, &[(&m, axis(0))]).await;
        store.upsert_events(std::slice::from_ref(&ev)).await.unwrap();
    }
    let store = EdgeStore::open(dir.path(), DIM).unwrap();
    store.ensure_schema().await.unwrap();
    assert_eq!(store.count_memories("org").await.unwrap(), 1);
    assert_eq!(store.get_memories("org", std::slice::from_ref(&m.memory_id)).await.unwrap(), vec![m.clone()]);
    assert_eq!(store.get_events("org", std::slice::from_ref(&ev.event_id)).await.unwrap(), vec![ev]);
    let f = SearchFilter { session_id: Some("s1".into()), ..filter("org") };
    let hits = store.search(&axis(0), None, &f, 5).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].memory, m);
    drop(store);

    // The stored dimension is checked on reopen.
    assert!(EdgeStore::open(dir.path(), DIM * 2).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_concurrent_writes_and_reads() {
    let (_dir, store) = edge_store().await;
    let store = std::sync::Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let m = memory("org", &format!("actor{i}"));
            put(store.as_ref(), &[(&m, axis(i % DIM))]).await;
            store.upsert_events(&[event("org", None)]).await.unwrap();
            store.search(&axis(0), None, &filter("org"), 5).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.count_memories("org").await.unwrap(), 8);
}

#[tokio::test]
async fn qdrant_ready_when_configured() {
    let Some(store) = qdrant_store().await else { return };
    store.ready().await.unwrap();
}

#[tokio::test]
// The server answers the flags memsy sets (`on_disk`, `on_disk_payload`),
// which the client marks deprecated in favour of memory placements.
#[allow(deprecated)]
async fn qdrant_collections_follow_the_settings() {
    let settings = CollectionSettings {
        shard_number: 2,
        replication_factor: 1,
        write_consistency_factor: 1,
        on_disk_vectors: true,
        on_disk_payload: false,
    };
    let Some(store) = qdrant_store_with(&settings, DIM) else { return };
    store.ensure_schema().await.expect("ensure_schema");
    let server = memsy_testkit::shared_qdrant().expect("server");
    let client = qdrant_client::Qdrant::from_url(&server.url()).api_key(server.api_key()).build().unwrap();
    let [memories, _] = store.collection_names();
    let params = client.collection_info(&memories).await.unwrap().result.unwrap().config.unwrap().params.unwrap();
    assert_eq!(params.shard_number, 2);
    assert!(!params.on_disk_payload);
    let Some(qdrant_client::qdrant::vectors_config::Config::ParamsMap(map)) =
        params.vectors_config.and_then(|v| v.config)
    else {
        panic!("named vectors expected");
    };
    assert_eq!(map.map["dense"].on_disk, Some(true));
    // Tenancy stays a tenant index on the org.
    let info = client.collection_info(&memories).await.unwrap().result.unwrap();
    let org = &info.payload_schema["org_id"];
    let is_tenant = match org.params.as_ref().and_then(|p| p.index_params.as_ref()) {
        Some(qdrant_client::qdrant::payload_index_params::IndexParams::KeywordIndexParams(k)) => k.is_tenant,
        _ => None,
    };
    assert_eq!(is_tenant, Some(true));
}

#[tokio::test]
async fn qdrant_incompatible_existing_collection_is_refused() {
    let Some(first) = qdrant_store_with(&CollectionSettings::default(), DIM) else { return };
    first.ensure_schema().await.expect("ensure_schema");
    // The same collections, opened for a model of another dimension.
    let server = memsy_testkit::shared_qdrant().expect("server");
    let prefix = first.collection_names()[0].trim_end_matches("memories").to_string();
    let other = QdrantStore::connect(
        &server.url(),
        server.api_key().as_deref(),
        &prefix,
        DIM * 2,
        CollectionSettings::default(),
    )
    .unwrap();
    let err = other.ensure_schema().await.expect_err("a collection of another dimension is refused");
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert!(msg.contains(&format!("{DIM}-dimensional")) && msg.contains(&format!("{}-dimensional", DIM * 2)), "{msg}");
    assert!(msg.contains("collection_prefix"), "says what to do: {msg}");
}
