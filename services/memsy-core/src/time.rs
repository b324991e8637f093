//! Timestamps: every time memsy writes is RFC 3339 in UTC with millisecond
//! precision, so stored strings sort the way the instants do.

use chrono::{DateTime, SecondsFormat, Utc};

/// Now, formatted the one way memsy writes times.
pub fn now_rfc3339() -> String {
    format_rfc3339(Utc::now())
}

pub fn format_rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses a caller-supplied ISO 8601 / RFC 3339 time. A time without an
/// offset is taken as UTC, as most clients mean it.
pub fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert!(parse_ts("2025-01-15T14:22:10Z").is_some());
        assert!(parse_ts("2025-01-15T14:22:10.123+02:00").is_some());
        assert!(parse_ts("2025-01-15T14:22:10").is_some());
        assert!(parse_ts("2025-01-15").is_some());
        assert!(parse_ts("yesterday").is_none());
        assert!(parse_ts("2025-13-40T00:00:00Z").is_none());
    }

    #[test]
    fn formats_utc_millis() {
        let t = parse_ts("2025-01-15T16:22:10+02:00").unwrap();
        assert_eq!(format_rfc3339(t), "2025-01-15T14:22:10.000Z");
    }
}
