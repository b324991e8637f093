//! Usage metering, quotas and per-key rate limits, kept in Redis so that
//! every gateway of a deployment counts against the same numbers.
//!
//! Keys (the org is length-prefixed so that an org id holding ':' cannot
//! collide with another):
//! - `memsy:usage:<len>:<org>:<dimension>:m:<YYYYMM>` — the month's total,
//!   what quotas are checked against;
//! - `…:d:<YYYYMMDD>` and `…:h:<YYYYMMDDHH>` — the time series;
//! - `memsy:keyusage:<key_id>:<dimension>:d:<YYYYMMDD>` and
//!   `memsy:keyused:<key_id>` — per-key usage and last use;
//! - `memsy:rl:<key_id>:<window>:<window number>` — the fixed rate window.
//!
//! [`Meter::admit`] is one Lua script, so a request costs one round trip for
//! its rate check, its quota check on `api_calls` and its counting.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};
use memsy_core::config::Plan;
use redis::aio::ConnectionManager;

/// Counters live this long: a year of daily history and a bit.
const DAY_TTL_SECS: u64 = 400 * 24 * 3600;
/// Hourly points are kept for a month.
const HOUR_TTL_SECS: u64 = 35 * 24 * 3600;
/// Most periods one time series may hold.
const MAX_POINTS: i64 = 1_500;

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("usage store unavailable: {0}")]
    Unavailable(String),
    #[error("invalid usage request: {0}")]
    Invalid(String),
}

impl From<redis::RedisError> for UsageError {
    fn from(e: redis::RedisError) -> Self {
        UsageError::Unavailable(e.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dimension {
    ApiCalls,
    EventsIngested,
    MemoriesStored,
    SearchQueries,
    LlmTokens,
}

impl Dimension {
    pub const ALL: [Dimension; 5] = [
        Dimension::ApiCalls,
        Dimension::EventsIngested,
        Dimension::MemoriesStored,
        Dimension::SearchQueries,
        Dimension::LlmTokens,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::ApiCalls => "api_calls",
            Dimension::EventsIngested => "events_ingested",
            Dimension::MemoriesStored => "memories_stored",
            Dimension::SearchQueries => "search_queries",
            Dimension::LlmTokens => "llm_tokens",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// The `X-Usage-*` header the SDK reads for this dimension.
    pub fn header(self) -> &'static str {
        match self {
            Dimension::ApiCalls => "X-Usage-ApiCalls",
            Dimension::EventsIngested => "X-Usage-EventsIngested",
            Dimension::MemoriesStored => "X-Usage-MemoriesStored",
            Dimension::SearchQueries => "X-Usage-SearchQueries",
            Dimension::LlmTokens => "X-Usage-LlmTokens",
        }
    }

    /// `memories_stored` is a level (memories held now), not a flow: its
    /// value is set, never added to.
    pub fn is_level(self) -> bool {
        self == Dimension::MemoriesStored
    }
}

/// A plan's limit for `dim`, None = unlimited.
pub fn limit(plan: &Plan, dim: Dimension) -> Option<u64> {
    plan.limits.get(dim.as_str()).copied()
}

/// This month's figure per dimension.
pub type Counters = BTreeMap<Dimension, u64>;

#[derive(Debug, Clone, PartialEq)]
pub struct RateWindow {
    /// Requests allowed in the current window; None = unlimited.
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    /// Unix time at which the window resets.
    pub reset: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Allowed,
    /// Past the key's requests per minute; retry after this many seconds.
    RateLimited {
        retry_after: u64,
    },
    /// Past the month's `api_calls`.
    QuotaExceeded {
        dimension: Dimension,
        current: u64,
        limit: u64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    pub verdict: Verdict,
    pub rate: RateWindow,
    /// This month's counters, this request included.
    pub counters: Counters,
}

/// One point of a time series.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// `YYYY-MM-DD` (daily) or `YYYY-MM-DDTHH:00:00Z` (hourly).
    pub date: String,
    pub dimension: Dimension,
    pub quantity: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Daily,
    Hourly,
}

impl Granularity {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "daily" => Some(Granularity::Daily),
            "hourly" => Some(Granularity::Hourly),
            _ => None,
        }
    }
}

fn org_prefix(org_id: &str) -> String {
    format!("memsy:usage:{}:{org_id}", org_id.len())
}

/// The literal prefixes of every key holding `org_id`'s usage and that of
/// its API keys `key_ids` (for an org's purge: each is scanned for with `*`
/// appended). Key ids are ULIDs, so one is never a prefix of another.
pub fn org_key_prefixes(org_id: &str, key_ids: &[String]) -> Vec<String> {
    let mut prefixes = vec![format!("{}:", org_prefix(org_id))];
    for k in key_ids {
        prefixes.push(format!("memsy:keyusage:{k}:"));
        prefixes.push(key_used_key(k));
        prefixes.push(format!("memsy:rl:{k}:"));
    }
    prefixes
}

fn month_key(org_id: &str, dim: Dimension, t: DateTime<Utc>) -> String {
    format!("{}:{}:m:{}", org_prefix(org_id), dim.as_str(), t.format("%Y%m"))
}

fn day_key(org_id: &str, dim: Dimension, t: DateTime<Utc>) -> String {
    format!("{}:{}:d:{}", org_prefix(org_id), dim.as_str(), t.format("%Y%m%d"))
}

fn hour_key(org_id: &str, dim: Dimension, t: DateTime<Utc>) -> String {
    format!("{}:{}:h:{}", org_prefix(org_id), dim.as_str(), t.format("%Y%m%d%H"))
}

fn key_day_key(key_id: &str, dim: Dimension, t: DateTime<Utc>) -> String {
    format!("memsy:keyusage:{key_id}:{}:d:{}", dim.as_str(), t.format("%Y%m%d"))
}

fn key_used_key(key_id: &str) -> String {
    format!("memsy:keyused:{key_id}")
}

/// The first instant of `t`'s month and of the next month.
pub fn month_bounds(t: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = Utc.with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0).single().expect("valid month start");
    let (y, m) = if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
    let end = Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().expect("valid month start");
    (start, end)
}

/// Rate window check, `api_calls` quota check and counting, atomically.
/// KEYS: rate window, then api_calls month/day/hour, key-day, key-used,
/// then the month keys of every dimension (for the answer).
/// ARGV: window limit (0 = none), api_calls limit (-1 = none), now, day TTL,
/// hour TTL, window TTL.
/// Returns {verdict (1 ok, 0 rate limited, 2 over quota), window count, month values…}.
const ADMIT: &str = r#"
local rpm = tonumber(ARGV[1])
local quota = tonumber(ARGV[2])
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[6]) end
local verdict = 1
if rpm > 0 and n > rpm then
  verdict = 0
elseif quota >= 0 and tonumber(redis.call('GET', KEYS[2]) or '0') >= quota then
  verdict = 2
else
  for i = 2, 5 do
    redis.call('INCR', KEYS[i])
    redis.call('EXPIRE', KEYS[i], (i == 4) and ARGV[5] or ARGV[4])
  end
  redis.call('SET', KEYS[6], ARGV[3], 'EX', ARGV[4])
end
local out = {verdict, n}
for i = 7, #KEYS do
  out[#out + 1] = tonumber(redis.call('GET', KEYS[i]) or '0')
end
return out
"#;

/// Sets a level's month/day/hour value (the last value seen in each).
const SET_LEVEL: &str = r#"
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[1], 'EX', (i == 3) and ARGV[3] or ARGV[2])
end
return 1
"#;

#[derive(Clone)]
pub struct Meter {
    conn: ConnectionManager,
}

impl Meter {
    pub fn new(conn: ConnectionManager) -> Self {
        Self { conn }
    }

    /// Admits (or refuses) one request of `key_id` in `org_id` under `plan`
    /// at `now`, counting it as an API call when admitted. The rate window
    /// is `window_secs` long and allows its share of the plan's requests per
    /// minute (at least one).
    pub async fn admit(
        &self,
        org_id: &str,
        key_id: &str,
        plan: &Plan,
        window_secs: u64,
        now: DateTime<Utc>,
    ) -> Result<Admission, UsageError> {
        let window = window_secs.max(1) as i64;
        let number = now.timestamp().div_euclid(window);
        let reset = (number + 1) * window;
        let per_window = (plan.requests_per_minute > 0)
            .then(|| (plan.requests_per_minute.saturating_mul(window as u64) / 60).max(1));
        let d = Dimension::ApiCalls;
        let admit = redis::Script::new(ADMIT);
        let mut script = admit.prepare_invoke();
        script
            .key(format!("memsy:rl:{key_id}:{window}:{number}"))
            .key(month_key(org_id, d, now))
            .key(day_key(org_id, d, now))
            .key(hour_key(org_id, d, now))
            .key(key_day_key(key_id, d, now))
            .key(key_used_key(key_id));
        for dim in Dimension::ALL {
            script.key(month_key(org_id, dim, now));
        }
        let quota = limit(plan, d).map_or(-1, |l| l as i64);
        script
            .arg(per_window.unwrap_or(0))
            .arg(quota)
            .arg(memsy_core::time::format_rfc3339(now))
            .arg(DAY_TTL_SECS)
            .arg(HOUR_TTL_SECS)
            .arg(2 * window);
        let out: Vec<i64> = script.invoke_async(&mut self.conn.clone()).await?;
        if out.len() != 2 + Dimension::ALL.len() {
            return Err(UsageError::Unavailable(format!("admit script returned {} values", out.len())));
        }
        let counters: Counters = Dimension::ALL.into_iter().zip(out[2..].iter().map(|&v| v.max(0) as u64)).collect();
        let used = out[1].max(0) as u64;
        let rate = RateWindow { limit: per_window, remaining: per_window.map(|l| l.saturating_sub(used)), reset };
        let verdict = match out[0] {
            0 => Verdict::RateLimited { retry_after: (reset - now.timestamp()).max(1) as u64 },
            2 => Verdict::QuotaExceeded {
                dimension: d,
                current: counters[&d],
                limit: limit(plan, d).unwrap_or_default(),
            },
            _ => Verdict::Allowed,
        };
        Ok(Admission { verdict, rate, counters })
    }

    /// Adds `n` to a flow dimension for the org (and the key, when given);
    /// returns the month's new total.
    pub async fn add(
        &self,
        org_id: &str,
        key_id: Option<&str>,
        dim: Dimension,
        n: u64,
        now: DateTime<Utc>,
    ) -> Result<u64, UsageError> {
        self.add_with(org_id, key_id, dim, n, now, |_| {}).await
    }

    /// As [`Self::add`], in one atomic round trip with the commands `also`
    /// puts first (their replies must be ignored): a caller whose own
    /// writes go with the count pays one round trip for both.
    pub async fn add_with(
        &self,
        org_id: &str,
        key_id: Option<&str>,
        dim: Dimension,
        n: u64,
        now: DateTime<Utc>,
        also: impl FnOnce(&mut redis::Pipeline),
    ) -> Result<u64, UsageError> {
        if dim.is_level() {
            return Err(UsageError::Invalid(format!("{} is a level; set it instead", dim.as_str())));
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        also(&mut pipe);
        pipe.cmd("INCRBY").arg(month_key(org_id, dim, now)).arg(n);
        pipe.cmd("EXPIRE").arg(month_key(org_id, dim, now)).arg(DAY_TTL_SECS).ignore();
        pipe.cmd("INCRBY").arg(day_key(org_id, dim, now)).arg(n).ignore();
        pipe.cmd("EXPIRE").arg(day_key(org_id, dim, now)).arg(DAY_TTL_SECS).ignore();
        pipe.cmd("INCRBY").arg(hour_key(org_id, dim, now)).arg(n).ignore();
        pipe.cmd("EXPIRE").arg(hour_key(org_id, dim, now)).arg(HOUR_TTL_SECS).ignore();
        if let Some(k) = key_id {
            pipe.cmd("INCRBY").arg(key_day_key(k, dim, now)).arg(n).ignore();
            pipe.cmd("EXPIRE").arg(key_day_key(k, dim, now)).arg(DAY_TTL_SECS).ignore();
        }
        let (total,): (u64,) = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(total)
    }

    /// Records the current value of a level dimension.
    pub async fn set_level(
        &self,
        org_id: &str,
        dim: Dimension,
        value: u64,
        now: DateTime<Utc>,
    ) -> Result<(), UsageError> {
        redis::Script::new(SET_LEVEL)
            .key(month_key(org_id, dim, now))
            .key(day_key(org_id, dim, now))
            .key(hour_key(org_id, dim, now))
            .arg(value)
            .arg(DAY_TTL_SECS)
            .arg(HOUR_TTL_SECS)
            .invoke_async::<i64>(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// This month's counters of an org.
    pub async fn month(&self, org_id: &str, now: DateTime<Utc>) -> Result<Counters, UsageError> {
        let keys: Vec<String> = Dimension::ALL.iter().map(|&d| month_key(org_id, d, now)).collect();
        let values: Vec<Option<u64>> = redis::cmd("MGET").arg(&keys).query_async(&mut self.conn.clone()).await?;
        Ok(Dimension::ALL.into_iter().zip(values.into_iter().map(Option::unwrap_or_default)).collect())
    }

    /// The org's time series for `dims` from `start` to `end` inclusive,
    /// one point per period and dimension (zeros included).
    pub async fn timeseries(
        &self,
        org_id: &str,
        dims: &[Dimension],
        granularity: Granularity,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<Vec<Point>, UsageError> {
        if end < start {
            return Err(UsageError::Invalid("period_end is before period_start".into()));
        }
        // Counted before anything is built: a period of centuries must cost
        // nothing but this answer.
        let days = (end - start).num_days() + 1;
        let (points, step) = match granularity {
            Granularity::Daily => (days, Duration::days(1)),
            Granularity::Hourly => (days.saturating_mul(24), Duration::hours(1)),
        };
        // A year of days or about two months of hours per dimension.
        if points > MAX_POINTS {
            return Err(UsageError::Invalid(format!(
                "the period holds {points} points; ask for at most {MAX_POINTS} (a shorter period or daily granularity)"
            )));
        }
        let first = start.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        let instants = (0..points as i32).map(|i| first + step * i);
        let mut keys = Vec::with_capacity(points as usize * dims.len());
        let mut labels = Vec::with_capacity(keys.capacity());
        for t in instants {
            for &d in dims {
                let (key, date) = match granularity {
                    Granularity::Daily => (day_key(org_id, d, t), t.format("%Y-%m-%d").to_string()),
                    Granularity::Hourly => {
                        (hour_key(org_id, d, t), format!("{}T{:02}:00:00Z", t.format("%Y-%m-%d"), t.hour()))
                    }
                };
                keys.push(key);
                labels.push((date, d));
            }
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<u64>> = redis::cmd("MGET").arg(&keys).query_async(&mut self.conn.clone()).await?;
        Ok(labels
            .into_iter()
            .zip(values)
            .map(|((date, dimension), v)| Point { date, dimension, quantity: v.unwrap_or_default() })
            .collect())
    }

    /// A key's daily usage over the last `days` days, newest first, only days with use.
    pub async fn key_usage(&self, key_id: &str, days: u32, now: DateTime<Utc>) -> Result<Vec<Point>, UsageError> {
        let dims = [Dimension::ApiCalls, Dimension::EventsIngested, Dimension::SearchQueries];
        let mut keys = Vec::new();
        let mut labels = Vec::new();
        for i in 0..days {
            let t = now - Duration::days(i64::from(i));
            for d in dims {
                keys.push(key_day_key(key_id, d, t));
                labels.push((t.format("%Y-%m-%d").to_string(), d));
            }
        }
        let values: Vec<Option<u64>> = redis::cmd("MGET").arg(&keys).query_async(&mut self.conn.clone()).await?;
        Ok(labels
            .into_iter()
            .zip(values)
            .filter_map(|((date, dimension), v)| {
                v.filter(|&q| q > 0).map(|quantity| Point { date, dimension, quantity })
            })
            .collect())
    }

    /// When each key was last used, if ever (within the counters' lifetime).
    pub async fn last_used(&self, key_ids: &[String]) -> Result<Vec<Option<String>>, UsageError> {
        if key_ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = key_ids.iter().map(|k| key_used_key(k)).collect();
        Ok(redis::cmd("MGET").arg(&keys).query_async(&mut self.conn.clone()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_bounds_cross_the_year() {
        let t = Utc.with_ymd_and_hms(2026, 12, 31, 23, 0, 0).unwrap();
        let (s, e) = month_bounds(t);
        assert_eq!(s, Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
        assert_eq!(e, Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
    }

    #[test]
    fn dimensions_round_trip_and_match_the_config() {
        for d in Dimension::ALL {
            assert_eq!(Dimension::parse(d.as_str()), Some(d));
            assert!(memsy_core::config::USAGE_DIMENSIONS.contains(&d.as_str()));
        }
        assert_eq!(Dimension::parse("bananas"), None);
    }
}
