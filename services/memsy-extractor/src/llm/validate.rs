//! Checking the model's answer before anything of it is stored. What cannot
//! be stored as it stands (an unknown type, an empty or overlong statement,
//! a wrongly typed field) makes the whole answer invalid, so the event is
//! retried and, if the model keeps answering that way, failed with the
//! reason; what can be normalised without changing its meaning (case,
//! surrounding space, over-long lists, out-of-range confidence) is.

use std::collections::HashSet;

use memsy_llm::LlmError;
use serde_json::{Map, Value};
use tracing::warn;

use super::truncate;
use crate::Candidate;

pub(crate) const MEMORY_TYPES: [&str; 8] =
    ["fact", "preference", "decision", "norm", "event", "procedure", "plan", "goal"];
pub(crate) const MEMORY_KINDS: [&str; 3] = ["semantic", "episodic", "procedural"];
pub(crate) const ENTITY_TYPES: [&str; 8] =
    ["person", "place", "organization", "product", "technology", "pet", "date", "other"];

pub(crate) const MAX_MEMORIES: usize = 8;
const MAX_TEXT_CHARS: usize = 1_000;
const MAX_TITLE_CHARS: usize = 60;
const MAX_SUMMARY_CHARS: usize = 300;
const MAX_TAGS: usize = 10;
const MAX_TAG_CHARS: usize = 40;
const MAX_ENTITIES: usize = 20;
const MAX_ENTITY_CHARS: usize = 100;

/// The candidates in an answer `{memories: [...]}`, validated and
/// normalised. An empty list is a valid answer: nothing to remember.
pub(crate) fn memories(answer: &Value) -> Result<Vec<Candidate>, LlmError> {
    let list = answer
        .get("memories")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("the answer has no \"memories\" array".into()))?;
    if list.len() > MAX_MEMORIES {
        // The instructions ask for at most this many; the first ones are
        // still good memories, so an over-eager model loses only the rest.
        warn!(memories = list.len(), kept = MAX_MEMORIES, "the model returned too many memories; keeping the first");
    }
    list.iter()
        .take(MAX_MEMORIES)
        .enumerate()
        .map(|(i, m)| memory(m).map_err(|e| invalid(format!("memories[{i}]: {e}"))))
        .collect()
}

fn invalid(msg: String) -> LlmError {
    LlmError::Invalid(msg)
}

fn memory(v: &Value) -> Result<Candidate, String> {
    let m = v.as_object().ok_or("not an object")?;
    let text = string(m, "text")?.unwrap_or_default();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return Err("text is empty".into());
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(format!("text is longer than {MAX_TEXT_CHARS} characters"));
    }
    let memory_type = one_of(m, "type", &MEMORY_TYPES)?;
    let memory_kind = one_of(m, "memory_kind", &MEMORY_KINDS)?;
    let title = string(m, "title")?.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
    let title = truncate(title.as_deref().unwrap_or(&text), MAX_TITLE_CHARS);
    let summary = string(m, "summary")?.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let summary = truncate(summary.as_deref().unwrap_or(&text), MAX_SUMMARY_CHARS);
    let confidence = match m.get("confidence") {
        Some(Value::Number(n)) => n.as_f64().filter(|c| c.is_finite()).ok_or("confidence is not a finite number")?,
        Some(_) => return Err("confidence is not a number".into()),
        None => return Err("confidence is missing".into()),
    };
    Ok(Candidate {
        tags: tags(m, &memory_type)?,
        entities: entities(m)?,
        text,
        title,
        summary,
        memory_type,
        memory_kind,
        confidence: confidence.clamp(0.0, 1.0) as f32,
    })
}

/// A string field; None when absent or null.
fn string<'a>(m: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, String> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{field} is not a string")),
    }
}

fn array<'a>(m: &'a Map<String, Value>, field: &str) -> Result<&'a [Value], String> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(format!("{field} is not an array")),
    }
}

fn one_of(m: &Map<String, Value>, field: &str, allowed: &[&str]) -> Result<String, String> {
    let v = string(m, field)?.ok_or_else(|| format!("{field} is missing"))?.trim().to_lowercase();
    if allowed.contains(&v.as_str()) {
        Ok(v)
    } else {
        Err(format!("{field} {v:?} is not one of {}", allowed.join(", ")))
    }
}

/// Lowercase, trimmed, de-duplicated, at most ten; the memory's type first,
/// as the rules engine does, so that tag filters work the same for both.
fn tags(m: &Map<String, Value>, memory_type: &str) -> Result<Vec<String>, String> {
    let mut out = vec![memory_type.to_string()];
    let mut seen: HashSet<String> = out.iter().cloned().collect();
    for t in array(m, "tags")? {
        let t = t.as_str().ok_or("tags must be strings")?;
        let t = t.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
        if t.is_empty() || t.chars().count() > MAX_TAG_CHARS || !seen.insert(t.clone()) {
            continue;
        }
        out.push(t);
        if out.len() == MAX_TAGS {
            break;
        }
    }
    Ok(out)
}

/// Named, de-duplicated by name, typed from the known list ("other" for
/// anything else), at most twenty.
fn entities(m: &Map<String, Value>) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for e in array(m, "entities")? {
        let e = e.as_object().ok_or("entities must be objects")?;
        let name = string(e, "name").map_err(|x| format!("entity {x}"))?.unwrap_or_default();
        let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
        if name.is_empty() || name.chars().count() > MAX_ENTITY_CHARS || !seen.insert(name.to_lowercase()) {
            continue;
        }
        let kind = e.get("type").and_then(Value::as_str).map(|t| t.trim().to_lowercase()).unwrap_or_default();
        let kind = if ENTITY_TYPES.contains(&kind.as_str()) { kind } else { "other".to_string() };
        out.push((name, kind));
        if out.len() == MAX_ENTITIES {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn good() -> Value {
        json!({
            "text": "  Alice's dog is named   Rex. ",
            "title": "Alice's dog",
            "summary": "Alice has a dog called Rex.",
            "type": "Fact",
            "memory_kind": "semantic",
            "tags": ["Pets", "pets", " dogs ", "", "fact"],
            "entities": [{"name": "Rex", "type": "pet"}, {"name": "Alice", "type": "human"}, {"name": "rex", "type": "pet"}, {"name": " ", "type": "pet"}],
            "confidence": 1.7,
        })
    }

    #[test]
    fn a_good_answer_is_normalised() {
        let got = memories(&json!({"memories": [good()]})).unwrap();
        assert_eq!(got.len(), 1);
        let c = &got[0];
        assert_eq!(c.text, "Alice's dog is named Rex.");
        assert_eq!((c.memory_type.as_str(), c.memory_kind.as_str()), ("fact", "semantic"));
        assert_eq!(c.tags, ["fact", "pets", "dogs"]);
        assert_eq!(c.entities, [("Rex".to_string(), "pet".to_string()), ("Alice".to_string(), "other".to_string())]);
        assert_eq!(c.confidence, 1.0);
    }

    #[test]
    fn nothing_to_remember_is_a_valid_answer() {
        assert!(memories(&json!({"memories": []})).unwrap().is_empty());
    }

    #[test]
    fn limits_are_applied() {
        let mut m = good();
        m["tags"] = json!((0..30).map(|i| format!("t{i}")).collect::<Vec<_>>());
        m["confidence"] = json!(-3);
        m["title"] = json!("");
        m["summary"] = Value::Null;
        let got = memories(&json!({"memories": vec![m; 12]})).unwrap();
        assert_eq!(got.len(), MAX_MEMORIES);
        assert_eq!(got[0].tags.len(), MAX_TAGS);
        assert_eq!(got[0].confidence, 0.0);
        assert_eq!(got[0].title, "Alice's dog is named Rex.");
        assert_eq!(got[0].summary, "Alice's dog is named Rex.");
    }

    #[test]
    fn what_cannot_be_stored_is_invalid() {
        let cases: Vec<(&str, Value)> = vec![
            ("no memories", json!({"facts": []})),
            ("memories not a list", json!({"memories": "none"})),
            ("item not an object", json!({"memories": ["Rex"]})),
        ];
        for (what, answer) in cases {
            assert!(matches!(memories(&answer), Err(LlmError::Invalid(_))), "{what}");
        }
        let edits: Vec<(&str, Value)> = vec![
            ("type", json!("opinion")),
            ("type", Value::Null),
            ("memory_kind", json!("working")),
            ("text", json!("   ")),
            ("text", json!("x".repeat(1001))),
            ("text", json!(42)),
            ("confidence", json!("high")),
            ("confidence", Value::Null),
            ("tags", json!("pets")),
            ("tags", json!([1])),
            ("entities", json!(["Rex"])),
        ];
        for (field, v) in edits {
            let mut m = good();
            m[field] = v.clone();
            let err = memories(&json!({"memories": [good(), m]})).unwrap_err();
            assert!(
                matches!(err, LlmError::Invalid(ref msg) if msg.starts_with("memories[1]: ")),
                "{field}={v}: {err}"
            );
        }
    }
}
