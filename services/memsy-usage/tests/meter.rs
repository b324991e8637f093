//! The meter against a real redis-server: rate windows, quotas, counting,
//! time series and per-key usage, shared by two independent connections
//! (as two gateways would be).

use std::collections::BTreeMap;

use chrono::{NaiveDate, TimeZone, Utc};
use memsy_core::config::Plan;
use memsy_testkit::RedisServer;
use memsy_usage::{Dimension, Granularity, Meter, UsageError, Verdict};

async fn meter(redis: &RedisServer) -> Meter {
    let client = redis::Client::open(redis.url()).unwrap();
    Meter::new(client.get_connection_manager().await.unwrap())
}

fn plan(rpm: u64, limits: &[(&str, u64)]) -> Plan {
    Plan {
        requests_per_minute: rpm,
        max_keys: 10,
        limits: limits.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
    }
}

#[tokio::test]
async fn rate_window_is_shared_and_resets_each_minute() {
    let redis = RedisServer::start();
    let (a, b) = (meter(&redis).await, meter(&redis).await);
    let p = plan(3, &[]);
    let t = Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 15).unwrap();
    let first = a.admit("org", "k1", &p, 60, t).await.unwrap();
    assert_eq!(first.verdict, Verdict::Allowed);
    assert_eq!((first.rate.limit, first.rate.remaining), (Some(3), Some(2)));
    assert_eq!(first.rate.reset, Utc.with_ymd_and_hms(2026, 11, 21, 10, 1, 0).unwrap().timestamp());
    assert_eq!(b.admit("org", "k1", &p, 60, t).await.unwrap().verdict, Verdict::Allowed);
    assert_eq!(a.admit("org", "k1", &p, 60, t).await.unwrap().verdict, Verdict::Allowed);
    let over = b.admit("org", "k1", &p, 60, t).await.unwrap();
    assert_eq!(over.verdict, Verdict::RateLimited { retry_after: 45 });
    assert_eq!(over.rate.remaining, Some(0));
    // Another key has its own window; a refused request is not an API call.
    assert_eq!(a.admit("org", "k2", &p, 60, t).await.unwrap().verdict, Verdict::Allowed);
    assert_eq!(a.month("org", t).await.unwrap()[&Dimension::ApiCalls], 4);
    let next_minute = t + chrono::Duration::seconds(60);
    assert_eq!(a.admit("org", "k1", &p, 60, next_minute).await.unwrap().verdict, Verdict::Allowed);

    // A 2-second window allows its share of the minute's requests (at least one).
    let p = plan(90, &[]);
    let w = a.admit("org", "k3", &p, 2, t).await.unwrap();
    assert_eq!((w.rate.limit, w.rate.reset), (Some(3), t.timestamp() + 1));
    a.admit("org", "k3", &p, 2, t).await.unwrap();
    a.admit("org", "k3", &p, 2, t).await.unwrap();
    assert_eq!(a.admit("org", "k3", &p, 2, t).await.unwrap().verdict, Verdict::RateLimited { retry_after: 1 });
}

#[tokio::test]
async fn api_call_quota_refuses_past_the_limit_and_flows_count() {
    let redis = RedisServer::start();
    let m = meter(&redis).await;
    let p = plan(0, &[("api_calls", 2)]);
    let t = Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap();
    assert_eq!(m.admit("o", "k", &p, 60, t).await.unwrap().verdict, Verdict::Allowed);
    let second = m.admit("o", "k", &p, 60, t).await.unwrap();
    assert_eq!(second.counters[&Dimension::ApiCalls], 2);
    assert_eq!(second.rate.limit, None);
    let third = m.admit("o", "k", &p, 60, t).await.unwrap();
    assert_eq!(third.verdict, Verdict::QuotaExceeded { dimension: Dimension::ApiCalls, current: 2, limit: 2 });
    // A new month starts from zero.
    let december = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    assert_eq!(m.admit("o", "k", &p, 60, december).await.unwrap().verdict, Verdict::Allowed);

    assert_eq!(m.add("o", Some("k"), Dimension::EventsIngested, 25, t).await.unwrap(), 25);
    assert_eq!(m.add("o", Some("k"), Dimension::EventsIngested, 5, t).await.unwrap(), 30);
    assert!(m.add("o", None, Dimension::MemoriesStored, 1, t).await.is_err());
    m.set_level("o", Dimension::MemoriesStored, 7, t).await.unwrap();
    m.set_level("o", Dimension::MemoriesStored, 9, t).await.unwrap();
    let month = m.month("o", t).await.unwrap();
    assert_eq!((month[&Dimension::EventsIngested], month[&Dimension::MemoriesStored]), (30, 9));
    // Orgs are separate, even when one id is a prefix of another.
    assert_eq!(m.month("o:x", t).await.unwrap()[&Dimension::EventsIngested], 0);
}

#[tokio::test]
async fn timeseries_and_key_usage() {
    let redis = RedisServer::start();
    let m = meter(&redis).await;
    let day1 = Utc.with_ymd_and_hms(2026, 11, 20, 9, 30, 0).unwrap();
    let day2 = Utc.with_ymd_and_hms(2026, 11, 21, 14, 5, 0).unwrap();
    m.add("o", Some("k"), Dimension::SearchQueries, 3, day1).await.unwrap();
    m.add("o", Some("k"), Dimension::SearchQueries, 4, day2).await.unwrap();
    m.add("o", None, Dimension::EventsIngested, 10, day2).await.unwrap();
    let daily = m
        .timeseries("o", &[Dimension::SearchQueries], Granularity::Daily, day1.date_naive(), day2.date_naive())
        .await
        .unwrap();
    let got: Vec<(&str, u64)> = daily.iter().map(|p| (p.date.as_str(), p.quantity)).collect();
    assert_eq!(got, vec![("2026-11-20", 3), ("2026-11-21", 4)]);
    let hourly = m
        .timeseries("o", &[Dimension::EventsIngested], Granularity::Hourly, day2.date_naive(), day2.date_naive())
        .await
        .unwrap();
    assert_eq!(hourly.len(), 24);
    assert_eq!(hourly[14].date, "2026-11-21T14:00:00Z");
    assert_eq!(hourly[14].quantity, 10);
    assert_eq!(hourly.iter().map(|p| p.quantity).sum::<u64>(), 10);
    assert!(m
        .timeseries("o", &[Dimension::ApiCalls], Granularity::Daily, day2.date_naive(), day1.date_naive())
        .await
        .is_err());
    // The longest period allowed is served; a longer one, even of millennia,
    // is refused at once (nothing is built for it).
    let start = day1.date_naive();
    let longest = start + chrono::Days::new(1_499);
    let d = &[Dimension::ApiCalls];
    assert_eq!(m.timeseries("o", d, Granularity::Daily, start, longest).await.unwrap().len(), 1_500);
    let too_long = longest + chrono::Days::new(1);
    assert!(matches!(m.timeseries("o", d, Granularity::Daily, start, too_long).await, Err(UsageError::Invalid(_))));
    for g in [Granularity::Daily, Granularity::Hourly] {
        let got = m.timeseries("o", d, g, NaiveDate::MIN, NaiveDate::MAX).await;
        assert!(matches!(got, Err(UsageError::Invalid(ref e)) if e.contains("at most 1500")), "{got:?}");
    }
    let last_day = m.timeseries("o", d, Granularity::Hourly, NaiveDate::MAX, NaiveDate::MAX).await.unwrap();
    assert_eq!(last_day.len(), 24);

    let usage = m.key_usage("k", 7, day2).await.unwrap();
    let got: Vec<(&str, &str, u64)> =
        usage.iter().map(|p| (p.date.as_str(), p.dimension.as_str(), p.quantity)).collect();
    assert_eq!(got, vec![("2026-11-21", "search_queries", 4), ("2026-11-20", "search_queries", 3)]);

    m.admit("o", "k", &plan(0, &[]), 60, day2).await.unwrap();
    let used = m.last_used(&["k".to_string(), "never".to_string()]).await.unwrap();
    assert_eq!(used, vec![Some("2026-11-21T14:05:00.000Z".to_string()), None]);
}
