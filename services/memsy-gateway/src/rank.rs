//! Search ranking: the store's order first (its `rank`: the hybrid fusion
//! score, or the cosine for a dense-only search); strength (as decayed today)
//! and recency only break near-ties. The bonus they add is small (at most
//! [`STRENGTH_BONUS`] + [`RECENCY_BONUS`]), so a clearly better match always
//! wins, and it only orders results: the score returned stays the cosine
//! similarity, so `threshold` keeps its meaning.

use chrono::{DateTime, Utc};
use memsy_core::model::{Memory, INITIAL_STRENGTH, MAX_STRENGTH};

/// Added for full strength (5.0) over a fresh memory's 1.0: under one step
/// of a fused ranking near its top (about 0.015), so it reorders ties, not results.
pub const STRENGTH_BONUS: f32 = 0.01;
/// Added for a memory observed just now; halves every [`RECENCY_HALF_LIFE_DAYS`].
pub const RECENCY_BONUS: f32 = 0.005;
pub const RECENCY_HALF_LIFE_DAYS: f64 = 30.0;

/// The key a hit is ordered by.
pub fn rank_key(similarity: f32, m: &Memory, now: DateTime<Utc>) -> f32 {
    let strength = m.effective_strength(now);
    let strength_part = ((strength - INITIAL_STRENGTH) / (MAX_STRENGTH - INITIAL_STRENGTH)).clamp(-1.0, 1.0);
    let age_days = memsy_core::time::parse_ts(&m.observed_at)
        .map(|t| (now - t).num_seconds().max(0) as f64 / 86_400.0)
        .unwrap_or(f64::INFINITY);
    let recency = 0.5f64.powf(age_days / RECENCY_HALF_LIFE_DAYS) as f32;
    similarity + STRENGTH_BONUS * strength_part + RECENCY_BONUS * recency
}

/// `hits` (similarity, memory) best first by [`rank_key`], memory id last.
#[cfg(test)]
pub fn rerank(hits: Vec<(f32, Memory)>, now: DateTime<Utc>) -> Vec<(f32, Memory)> {
    rerank_by(hits, |(s, m)| (*s, m), now)
}

/// As [`rerank`], for any hit type: `key` gives the value the hit is
/// ordered by (the store's rank, 0–1) and its memory.
pub fn rerank_by<T>(mut hits: Vec<T>, key: impl Fn(&T) -> (f32, &Memory), now: DateTime<Utc>) -> Vec<T> {
    hits.sort_by(|x, y| {
        let ((sa, a), (sb, b)) = (key(x), key(y));
        rank_key(sb, b, now).total_cmp(&rank_key(sa, a, now)).then_with(|| a.memory_id.cmp(&b.memory_id))
    });
    hits
}

/// Keeps the order but moves each memory that comes from the same message
/// as a better-placed one behind every memory of a message not yet seen:
/// a long message split into several memories should not crowd out the
/// other messages that match (they follow, in order, once every message has
/// had its turn).
pub fn one_per_message_first<T>(hits: Vec<T>, memory: impl Fn(&T) -> &Memory) -> Vec<T> {
    let mut seen = std::collections::HashSet::new();
    let (mut first, mut rest) = (Vec::with_capacity(hits.len()), Vec::new());
    for h in hits {
        // Memories with no source (none today) count as their own message.
        let message = memory(&h).source_event_ids.first().cloned().unwrap_or_else(|| memory(&h).memory_id.clone());
        if seen.insert(message) {
            first.push(h);
        } else {
            rest.push(h);
        }
    }
    first.extend(rest);
    first
}

#[cfg(test)]
mod tests {
    use super::*;
    use memsy_testkit::sample_memory;

    fn now() -> DateTime<Utc> {
        memsy_core::time::parse_ts("2026-06-01T00:00:00Z").unwrap()
    }

    fn mem(id: &str, strength: f32, observed: &str) -> Memory {
        let mut m = sample_memory("o", "a", id, observed);
        m.memory_id = id.into();
        m.strength = strength;
        m.updated_at = "2026-06-01T00:00:00Z".into();
        m
    }

    #[test]
    fn a_message_gets_one_place_before_others_get_theirs() {
        let from = |id: &str, event: &str| {
            let mut m = mem(id, 1.0, "2026-05-31T00:00:00Z");
            m.source_event_ids = vec![event.into()];
            m
        };
        let hits = vec![from("a1", "e1"), from("a2", "e1"), from("b1", "e2"), from("a3", "e1"), from("c1", "e3")];
        let ids: Vec<String> = one_per_message_first(hits, |m| m).into_iter().map(|m| m.memory_id).collect();
        assert_eq!(ids, ["a1", "b1", "c1", "a2", "a3"]);
    }

    #[test]
    fn strength_and_recency_break_near_ties_only() {
        let weak = mem("weak", 1.0, "2026-05-31T00:00:00Z");
        let strong = mem("strong", 4.0, "2026-05-31T00:00:00Z");
        let ranked = rerank(vec![(0.800, weak.clone()), (0.795, strong.clone())], now());
        assert_eq!(ranked[0].1.memory_id, "strong");
        assert_eq!(ranked[0].0, 0.795, "the score stays the similarity");
        // A clearly better match is not overtaken.
        let ranked = rerank(vec![(0.85, weak.clone()), (0.80, strong)], now());
        assert_eq!(ranked[0].1.memory_id, "weak");
        // Between equals, the more recent observation wins.
        let old = mem("old", 1.0, "2024-01-01T00:00:00Z");
        let ranked = rerank(vec![(0.7, old), (0.7, weak)], now());
        assert_eq!(ranked[0].1.memory_id, "weak");
    }
}
