//! Statements made from one template, each a different fact ("My code word
//! number 7 is kalomi: I collect red and blue stickers from Peru."), score
//! above the duplicate threshold on MiniLM; each must stay its own memory,
//! findable by its own words, while a repetition of one still reinforces
//! it. (Before the fact check, 2,000 such statements became 1,735
//! memories, one of them absorbing 50.)

mod common;

use std::collections::BTreeMap;

use memsy_store::cosine;

const ACTORS: usize = 4;
const PER_ACTOR: usize = 50;

/// A made-up word per statement, unique across the test.
fn token(n: usize) -> String {
    const SYLLABLES: [&str; 12] = ["ka", "lo", "mi", "tu", "re", "sa", "vo", "ne", "zi", "pa", "qu", "by"];
    [n % 12, (n / 12) % 12, (n / 144) % 12].iter().map(|&i| SYLLABLES[i]).collect()
}

fn statement(actor: usize, n: usize) -> String {
    // Few colours and places, so that most statements differ only in their
    // number and code word: the hardest case.
    const COLOURS: [&str; 3] = ["red", "blue", "green"];
    const PLACES: [&str; 2] = ["Peru", "Chile"];
    let k = actor * PER_ACTOR + n;
    format!(
        "My code word number {} is {}: I collect {} and {} stickers from {}.",
        n + 1,
        token(k),
        COLOURS[k % 3],
        COLOURS[(k / 3 + 1) % 3],
        PLACES[(k / 9) % 2]
    )
}

#[tokio::test]
async fn statements_of_one_template_stay_apart_and_repetitions_reinforce() {
    let engine = common::engine();
    let texts: Vec<String> = (0..ACTORS).flat_map(|a| (0..PER_ACTOR).map(move |n| statement(a, n))).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = common::embed(&engine, &refs);
    // The case is only a test when cosine alone would merge many of them.
    let threshold = memsy_core::config::IndexerConfig::default().duplicate_similarity;
    let close = (0..ACTORS * PER_ACTOR)
        .flat_map(|i| (i + 1..(i / PER_ACTOR + 1) * PER_ACTOR).map(move |j| (i, j)))
        .filter(|&(i, j)| cosine(&vectors[i], &vectors[j]) >= threshold)
        .count();
    println!("{close} pairs of one actor's statements within cosine {threshold}");
    assert!(close >= 20, "only {close} pairs within {threshold}: the template no longer tests anything");

    let (_dir, store) = common::store().await;
    // The actors' statements interleaved, in batches of 20, as a busy
    // indexer sees them; then the first ten of each actor once more.
    let mut points = Vec::new();
    for n in 0..PER_ACTOR {
        for a in 0..ACTORS {
            let i = a * PER_ACTOR + n;
            let at = format!("2026-01-01T00:{:02}:{:02}Z", n, a);
            points.push(common::point(&format!("actor-{a}"), &format!("e{i}"), &texts[i], &at, vectors[i].clone()));
        }
    }
    for n in 0..10 {
        for a in 0..ACTORS {
            let i = a * PER_ACTOR + n;
            let at = format!("2026-01-02T00:{:02}:{:02}Z", n, a);
            points.push(common::point(&format!("actor-{a}"), &format!("r{i}"), &texts[i], &at, vectors[i].clone()));
        }
    }
    for batch in points.chunks(20) {
        common::apply(&store, batch.to_vec()).await;
    }

    let memories = common::actor_memories(&store).await;
    let mut by_actor: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for m in &memories {
        assert_eq!(m.status, "active", "{m:#?}");
        by_actor.entry(m.actor_id.clone().unwrap()).or_default().push(m);
    }
    for a in 0..ACTORS {
        let ms = &by_actor[&format!("actor-{a}")];
        assert_eq!(ms.len(), PER_ACTOR, "actor-{a}: {} memories", ms.len());
        for n in 0..PER_ACTOR {
            let i = a * PER_ACTOR + n;
            let m = ms.iter().find(|m| m.text == texts[i]).unwrap_or_else(|| panic!("{} lost", texts[i]));
            let mut expected = vec![format!("e{i}")];
            if n < 10 {
                expected.push(format!("r{i}"));
            }
            assert_eq!(m.source_event_ids, expected, "{}", texts[i]);
        }
    }
}
