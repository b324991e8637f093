//! Process-wide counters in the Prometheus text format, for `/metrics`.
//! A handful of named counters is all the services need, so this is a
//! small map rather than a metrics framework.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

fn registry() -> &'static Mutex<BTreeMap<String, u64>> {
    static R: OnceLock<Mutex<BTreeMap<String, u64>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// Adds `n` to the counter `name` (which may carry labels: `x{stage="a"}`).
pub fn add(name: &str, n: u64) {
    let mut r = registry().lock().unwrap_or_else(|p| p.into_inner());
    *r.entry(name.to_string()).or_default() += n;
}

pub fn get(name: &str) -> u64 {
    registry().lock().unwrap_or_else(|p| p.into_inner()).get(name).copied().unwrap_or(0)
}

/// Every counter, one `# TYPE` line per metric family.
pub fn render() -> String {
    let r = registry().lock().unwrap_or_else(|p| p.into_inner());
    let mut out = String::new();
    let mut last_family = "";
    for (name, v) in r.iter() {
        let family = name.split('{').next().unwrap_or(name);
        if family != last_family {
            out.push_str(&format!("# TYPE {family} counter\n"));
            last_family = family;
        }
        out.push_str(&format!("{name} {v}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families() {
        add("memsy_test_total{stage=\"a\"}", 2);
        add("memsy_test_total{stage=\"b\"}", 1);
        add("memsy_test_total{stage=\"a\"}", 1);
        let text = render();
        assert!(text.contains("# TYPE memsy_test_total counter\n"));
        assert!(text.contains("memsy_test_total{stage=\"a\"} 3\n"));
        assert_eq!(get("memsy_test_total{stage=\"b\"}"), 1);
    }
}
