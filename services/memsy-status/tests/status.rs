//! The status service against a real redis-server, directly and over gRPC.

use memsy_core::config::{RedisConfig, StatusConfig};
use std::sync::Arc;

use memsy_status::{EventState, GrpcStatus, StatusApi, StatusStore};
use memsy_testkit::{free_port, RedisServer};

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

async fn exercise(api: &dyn StatusApi) {
    api.mark("acme", &ids(&["e1", "e2", "e3"]), EventState::Pending, "").await.unwrap();
    api.mark("acme", &ids(&["e1"]), EventState::Completed, "").await.unwrap();
    api.mark("acme", &ids(&["e2"]), EventState::Failed, "extractor: cannot decode").await.unwrap();
    // A late failure report must not undo a completed event either.
    api.mark("acme", &ids(&["e1"]), EventState::Failed, "late").await.unwrap();
    // A late pending must not roll back a completed event.
    api.mark("acme", &ids(&["e1"]), EventState::Pending, "").await.unwrap();

    let got = api.get("acme", &ids(&["e1", "e2", "e3", "never"])).await.unwrap();
    let states: Vec<EventState> = got.iter().map(|s| s.state).collect();
    assert_eq!(states, vec![EventState::Completed, EventState::Failed, EventState::Pending, EventState::NotFound]);
    assert_eq!(got[1].reason, "extractor: cannot decode");

    // Another org sees nothing of acme's.
    let other = api.get("globex", &ids(&["e1", "e2"])).await.unwrap();
    assert!(other.iter().all(|s| s.state == EventState::NotFound));
    // Org ids cannot collide through the key separator.
    api.mark("a:b", &ids(&["c"]), EventState::Completed, "").await.unwrap();
    let x = api.get("a", &ids(&["b:c"])).await.unwrap();
    assert_eq!(x[0].state, EventState::NotFound);
    assert!(api.get("acme", &[]).await.unwrap().is_empty());
    api.ready().await.unwrap();
}

#[tokio::test]
async fn redis_store_keeps_state_per_org() {
    let redis = RedisServer::start();
    let store = StatusStore::connect(&redis.url(), 60, RedisConfig::default().timeouts()).await.unwrap();
    exercise(&store).await;
}

#[tokio::test]
async fn grpc_service_round_trips() {
    let redis = RedisServer::start();
    let store = StatusStore::connect(&redis.url(), 60, RedisConfig::default().timeouts()).await.unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(memsy_status::serve(addr, Arc::new(store), async move {
        let _ = rx.await;
    }));
    let client =
        GrpcStatus::connect_lazy(&format!("http://127.0.0.1:{port}"), StatusConfig::default().timeouts()).unwrap();
    // The server may take a moment to bind.
    for _ in 0..50 {
        if client.ready().await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    exercise(&client).await;
    let _ = tx.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn statuses_expire_with_ttl() {
    let redis = RedisServer::start();
    let store = StatusStore::connect(&redis.url(), 1, RedisConfig::default().timeouts()).await.unwrap();
    store.mark("acme", &ids(&["e1"]), EventState::Completed, "").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(store.get("acme", &ids(&["e1"])).await.unwrap()[0].state, EventState::NotFound);
}

#[tokio::test]
async fn unreachable_redis_is_an_error_not_a_hang() {
    let port = free_port();
    let r = StatusStore::connect(&format!("redis://127.0.0.1:{port}"), 60, RedisConfig::default().timeouts()).await;
    assert!(r.is_err());
}
