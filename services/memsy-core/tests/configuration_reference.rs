//! docs/configuration.md is generated from the config's doc comments; this
//! fails when the page and the code disagree, and when a key has no doc
//! comment. `MEMSY_WRITE_DOCS=1` rewrites the page instead.

use std::path::PathBuf;

use memsy_core::config_reference::{markdown, sections};

fn page_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md")
}

#[test]
fn every_key_says_what_it_is_for() {
    let undocumented: Vec<String> = sections()
        .iter()
        .flat_map(|s| s.keys.iter())
        .filter(|k| k.description.trim().is_empty())
        .map(|k| k.path.clone())
        .collect();
    assert!(undocumented.is_empty(), "keys without a doc comment in config.rs: {undocumented:?}");
}

#[test]
fn the_reference_page_matches_the_code() {
    let generated = markdown();
    let path = page_path();
    if std::env::var_os("MEMSY_WRITE_DOCS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/configuration.md is out of date: run MEMSY_WRITE_DOCS=1 cargo test -p memsy-core --test configuration_reference"
    );
}

#[test]
fn sections_list_keys_with_their_variables_and_defaults() {
    let all = sections();
    let nats = all.iter().find(|s| s.name == "nats").expect("a [nats] section");
    let url = nats.keys.iter().find(|k| k.path == "nats.url").expect("nats.url");
    assert_eq!(url.env, "MEMSY__NATS__URL");
    assert_eq!(url.default.as_deref(), Some("`\"nats://127.0.0.1:4222\"`"));
    let engine = all.iter().flat_map(|s| &s.keys).find(|k| k.path == "embedder.engine").unwrap();
    assert_eq!(engine.kind, "onnx \\| local \\| remote");
    // Secrets are never serialised, so they show no default value.
    let key = all.iter().flat_map(|s| &s.keys).find(|k| k.path == "llm.api_key").unwrap();
    assert_eq!(key.default, None);
    assert!(all.iter().any(|s| s.name == "usage.plans.<name>"), "plans are documented as their own section");
}
