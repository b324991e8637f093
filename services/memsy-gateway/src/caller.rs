//! Who is calling and what they may still do. [`admit`] runs in front of
//! every authenticated route: it resolves the bearer key (401), the org's
//! plan, the key's rate window and the org's `api_calls` quota (429), hands
//! the handler a [`Caller`], counts what the handler reports as
//! [`Consumed`], and puts `X-Plan`, `X-Usage-*` and `X-RateLimit-*` on the
//! response.
//!
//! When Redis cannot be reached the request is let through unmetered (and
//! logged): a metering outage should not become an API outage, and every
//! route that needs Redis for its own work answers 503 on its own.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use memsy_core::config::Plan;
use memsy_store::MemoryStore;
use memsy_usage::{limit, Counters, Dimension, Meter, RateWindow, Verdict};
use tokio::sync::Mutex;
use tracing::warn;

use crate::auth::{self, ApiKeyRecord};
use crate::{ApiError, AppState, Component};

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key: ApiKeyRecord,
    pub plan_name: String,
    pub plan: Plan,
    /// This month's usage at admission, this request included; empty when
    /// the meter could not be reached.
    pub counters: Counters,
}

impl Caller {
    pub fn org(&self) -> &str {
        &self.key.org_id
    }

    /// 403 `insufficient_scope` unless the key has `scope` (admin has all).
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.key.has_scope(scope) {
            Ok(())
        } else {
            Err(ApiError::insufficient_scope(scope))
        }
    }

    /// 429 `usage_limit_exceeded` when adding `n` to `dim` would pass the
    /// plan's monthly limit (for `memories_stored`: when the org already
    /// holds its limit).
    pub fn check_quota(&self, dim: Dimension, n: u64) -> Result<(), ApiError> {
        let Some(max) = limit(&self.plan, dim) else { return Ok(()) };
        let current = self.counters.get(&dim).copied().unwrap_or_default();
        let over = if dim.is_level() { current >= max } else { current + n > max };
        if over {
            return Err(ApiError::usage_limit_exceeded(dim.as_str(), current, max, &self.plan_name));
        }
        Ok(())
    }
}

/// A scope a route needs; see [`Authorized`].
pub trait Scope {
    const NAME: &'static str;
}

/// The `read` scope.
pub enum Read {}
/// The `write` scope.
pub enum Write {}
/// The `admin` scope.
pub enum Admin {}

impl Scope for Read {
    const NAME: &'static str = "read";
}
impl Scope for Write {
    const NAME: &'static str = "write";
}
impl Scope for Admin {
    const NAME: &'static str = "admin";
}

/// The caller of a route that needs scope `S`. Extracting it is the route's
/// scope check (403 `insufficient_scope` unless the key has `S`; `admin`
/// has every scope), so a handler declares its scope in its signature and
/// cannot forget it. Dereferences to the [`Caller`].
pub struct Authorized<S>(Caller, PhantomData<S>);

impl<S> Authorized<S> {
    pub fn into_caller(self) -> Caller {
        self.0
    }
}

impl<S> Deref for Authorized<S> {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl<S: Scope, St: Send + Sync> FromRequestParts<St> for Authorized<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, ApiError> {
        let caller = parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "this route is not behind admission")
        })?;
        caller.require(S::NAME)?;
        Ok(Self(caller, PhantomData))
    }
}

/// What a handler used besides the API call itself, put in the response's
/// extensions; [`admit`] counts it once the handler succeeded.
#[derive(Clone, Debug, Default)]
pub struct Consumed(pub Vec<(Dimension, u64)>);

/// What a handler counted itself (dimension → the month's new total), put
/// in the response's extensions for [`admit`]'s usage headers.
#[derive(Clone, Debug, Default)]
pub struct Counted(pub Vec<(Dimension, u64)>);

/// How many memories each org holds, read from the store at most every
/// couple of seconds per org (the figure behind `memories_stored`).
///
/// A request never waits for the store once the org's figure is known: a
/// stale figure is served while one background read refreshes it. Waiting
/// would put a store round trip, and every failure's timeout, into the
/// admission of every request each time the figure expires, and all the
/// requests arriving meanwhile would wait for it together.
#[derive(Clone)]
pub struct MemoryLevels {
    store: Arc<dyn MemoryStore>,
    meter: Meter,
    cache: Arc<Mutex<HashMap<String, Level>>>,
}

/// One org's figure: when it was read, the count (None when the store
/// failed: failures are remembered as briefly as answers, so an unreachable
/// store is not asked on every request), and whether a refresh is running.
#[derive(Clone, Copy)]
struct Level {
    at: Instant,
    count: Option<u64>,
    refreshing: bool,
}

const LEVEL_TTL: Duration = Duration::from_secs(2);

impl MemoryLevels {
    pub fn new(store: Arc<dyn MemoryStore>, meter: Meter) -> Self {
        Self { store, meter, cache: Arc::default() }
    }

    /// The org's memory count, None when the store cannot say. Only the
    /// first request for an org waits for the store.
    pub async fn get(&self, org_id: &str) -> Option<u64> {
        {
            let mut cache = self.cache.lock().await;
            if let Some(level) = cache.get_mut(org_id) {
                if level.at.elapsed() >= LEVEL_TTL && !level.refreshing {
                    level.refreshing = true;
                    let (this, org) = (self.clone(), org_id.to_string());
                    tokio::spawn(async move { this.fresh(&org).await });
                }
                return level.count;
            }
        }
        self.fresh(org_id).await
    }

    /// As [`Self::get`], read from the store now (for reports, not headers).
    pub async fn fresh(&self, org_id: &str) -> Option<u64> {
        let count = match self.store.count_memories(org_id).await {
            Ok(n) => Some(n),
            Err(e) => {
                warn!(org_id, error = %e, "counting memories for usage failed");
                None
            }
        };
        let level = Level { at: Instant::now(), count, refreshing: false };
        let previous = self.cache.lock().await.insert(org_id.to_string(), level);
        if let Some(n) = count.filter(|&n| previous.and_then(|p| p.count) != Some(n)) {
            // Record the level for the usage time series, off the request path.
            let (meter, org) = (self.meter.clone(), org_id.to_string());
            tokio::spawn(async move {
                if let Err(e) = meter.set_level(&org, Dimension::MemoriesStored, n, Utc::now()).await {
                    warn!(org_id = org, error = %e, "recording memories_stored failed");
                }
            });
        }
        count
    }
}

/// The middleware; see the module documentation.
pub async fn admit(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let key = match resolve_key(&s, req.headers()).await {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    tracing::Span::current().record("org_id", key.org_id.as_str());
    let (plan_name, plan) = s.config.usage.plan_for(&key.org_id);
    let (plan_name, plan) = (plan_name.to_string(), plan.clone());
    let now = Utc::now();
    let window = s.config.usage.rate_window_secs;
    let admission = match s.meter.admit(&key.org_id, &key.key_id, &plan, window, now).await {
        Ok(a) => Some(a),
        Err(e) => {
            warn!(org_id = key.org_id, error = %e, "usage meter unavailable; request admitted unmetered");
            None
        }
    };
    let mut counters = admission.as_ref().map(|a| a.counters.clone()).unwrap_or_default();
    if let Some(n) = s.levels.get(&key.org_id).await {
        counters.insert(Dimension::MemoriesStored, n);
    }
    let rate = admission.as_ref().map(|a| a.rate.clone());
    let refusal = match admission.map(|a| a.verdict) {
        Some(Verdict::RateLimited { retry_after }) => Some(ApiError::rate_limited(retry_after, &plan)),
        Some(Verdict::QuotaExceeded { dimension, current, limit }) => {
            Some(ApiError::usage_limit_exceeded(dimension.as_str(), current, limit, &plan_name))
        }
        _ => None,
    };
    let (mut resp, counters) = match refusal {
        Some(e) => (e.into_response(), counters),
        None => {
            let caller = Caller { key: key.clone(), plan_name: plan_name.clone(), plan: plan.clone(), counters };
            let counters = caller.counters.clone();
            req.extensions_mut().insert(caller);
            let resp = next.run(req).await;
            let consumed = resp.extensions().get::<Consumed>().cloned().filter(|_| resp.status().is_success());
            let mut counters = count_consumed(&s.meter, &key, consumed, counters).await;
            if let Some(Counted(totals)) = resp.extensions().get::<Counted>() {
                counters.extend(totals.iter().copied());
            }
            (resp, counters)
        }
    };
    usage_headers(resp.headers_mut(), &plan_name, &plan, &counters, rate.as_ref());
    resp
}

/// Counts what a successful handler consumed; returns the counters with the new totals.
async fn count_consumed(
    meter: &Meter,
    key: &ApiKeyRecord,
    consumed: Option<Consumed>,
    mut counters: Counters,
) -> Counters {
    let Some(Consumed(items)) = consumed else { return counters };
    for (dim, n) in items {
        if n == 0 {
            continue;
        }
        match meter.add(&key.org_id, Some(&key.key_id), dim, n, Utc::now()).await {
            Ok(total) => {
                counters.insert(dim, total);
            }
            Err(e) => warn!(org_id = key.org_id, dimension = dim.as_str(), error = %e, "counting usage failed"),
        }
    }
    counters
}

async fn resolve_key(s: &AppState, headers: &HeaderMap) -> Result<ApiKeyRecord, ApiError> {
    let raw = auth::bearer(headers)?;
    s.keys
        .lookup(raw)
        .await
        .map_err(|e| ApiError::unavailable(Component::Nats, e))?
        .ok_or_else(|| ApiError::unauthorized("invalid or revoked API key"))
}

/// `X-Plan`, `X-Usage-*` (and `-Limit` where the plan limits) and `X-RateLimit-*`.
pub fn usage_headers(
    headers: &mut HeaderMap,
    plan_name: &str,
    plan: &Plan,
    counters: &Counters,
    rate: Option<&RateWindow>,
) {
    let mut put = |name: String, value: String| {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.insert(n, v);
        }
    };
    put("X-Plan".into(), plan_name.into());
    for dim in Dimension::ALL {
        if let Some(v) = counters.get(&dim) {
            put(dim.header().into(), v.to_string());
        }
        if let Some(l) = limit(plan, dim) {
            put(format!("{}-Limit", dim.header()), l.to_string());
        }
    }
    if let Some(r) = rate {
        if let (Some(l), Some(rem)) = (r.limit, r.remaining) {
            put("X-RateLimit-Limit".into(), l.to_string());
            put("X-RateLimit-Remaining".into(), rem.to_string());
            put("X-RateLimit-Reset".into(), r.reset.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memsy_store::{EdgeStore, MemoryPoint};
    use memsy_testkit::{sample_memory, RedisServer};

    async fn add_memory(store: &EdgeStore, text: &str) {
        let memory = sample_memory("org", "alice", text, "2026-01-01T00:00:00Z");
        store.upsert_memories(&[MemoryPoint { memory, vector: vec![1.0, 0.0, 0.0, 0.0] }]).await.unwrap();
    }

    /// Once an org's figure is known, an expired one is still answered at
    /// once and refreshed behind the request; the next request sees the new count.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_expired_level_is_served_while_it_refreshes() {
        let redis = RedisServer::start();
        let meter = Meter::new(redis::Client::open(redis.url()).unwrap().get_connection_manager().await.unwrap());
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EdgeStore::open(dir.path(), 4).unwrap());
        store.ensure_schema().await.unwrap();
        add_memory(&store, "one").await;
        let levels = MemoryLevels::new(store.clone(), meter);

        assert_eq!(levels.get("org").await, Some(1), "the first request reads the store");
        add_memory(&store, "two").await;
        assert_eq!(levels.get("org").await, Some(1), "within the TTL: cached");
        tokio::time::sleep(LEVEL_TTL).await;
        assert_eq!(levels.get("org").await, Some(1), "expired: the old figure, without waiting");
        let deadline = Instant::now() + Duration::from_secs(5);
        while levels.get("org").await != Some(2) {
            assert!(Instant::now() < deadline, "the background refresh never landed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(levels.fresh("org").await, Some(2));
    }
}
