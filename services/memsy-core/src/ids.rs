//! Ids: event ids are ULIDs minted by the gateway, memory ids are UUID v5
//! over (org, source event, index) so that a redelivered message upserts the
//! same point instead of adding a twin. Also the rules for ids a caller may
//! search by, and the encoding that makes any tenant id safe as a NATS
//! subject token.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Namespace for memory ids (a fixed random UUID; changing it would orphan
/// every stored memory).
const MEMORY_NS: Uuid = Uuid::from_u128(0x6d65_6d73_795f_4d45_4d4f_5259_5f49_4453);

pub fn new_event_id() -> String {
    ulid::Ulid::new().to_string()
}

/// A ULID as the UUID with the same 128 bits, which is how an event is keyed
/// in a vector store.
pub fn event_point_id(event_id: &str) -> Option<Uuid> {
    ulid::Ulid::from_string(event_id).ok().map(|u| Uuid::from_u128(u.0))
}

pub fn is_event_id(s: &str) -> bool {
    s.len() == 26 && ulid::Ulid::from_string(s).is_ok()
}

/// Deterministic id of the `index`-th memory extracted from an event.
pub fn memory_id(org_id: &str, event_id: &str, index: usize) -> Uuid {
    let name = format!("{org_id}\u{1f}{event_id}\u{1f}{index}");
    Uuid::new_v5(&MEMORY_NS, name.as_bytes())
}

/// True when `s` may be used as a searchable id: `[A-Za-z0-9_\-:.@/]`.
pub fn is_searchable_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'.' | b'@' | b'/'))
}

/// Encodes an arbitrary id as one NATS subject token: the token alphabet is
/// `[A-Za-z0-9_-]`; anything else (dots, spaces, wildcards, non-ASCII) is
/// written as `=XX` hex bytes, so distinct ids stay distinct.
pub fn subject_token(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    if out.is_empty() {
        out.push('=');
    }
    out
}

/// The id a [`subject_token`] was made of; None for a token it cannot have made.
pub fn subject_token_decode(token: &str) -> Option<String> {
    if token == "=" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let hex = token.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Lower-case hex SHA-256, used for API-key hashes and de-duplication keys.
pub fn sha256_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_ids_are_deterministic_and_distinct() {
        assert_eq!(memory_id("o", "e", 0), memory_id("o", "e", 0));
        assert_ne!(memory_id("o", "e", 0), memory_id("o", "e", 1));
        assert_ne!(memory_id("o1", "e", 0), memory_id("o2", "e", 0));
    }

    #[test]
    fn event_ids_round_trip_to_uuid() {
        let id = new_event_id();
        assert!(is_event_id(&id));
        let u = event_point_id(&id).unwrap();
        assert_eq!(ulid::Ulid::from(u.as_u128()).to_string(), id);
        assert!(!is_event_id("not-an-id"));
    }

    #[test]
    fn searchable_ids() {
        assert!(is_searchable_id("user_42"));
        assert!(is_searchable_id("a-b:c.d@e/f"));
        assert!(!is_searchable_id("has space"));
        assert!(!is_searchable_id("ünï"));
        assert!(!is_searchable_id(""));
    }

    #[test]
    fn subject_tokens_are_safe_and_injective() {
        assert_eq!(subject_token("acme"), "acme");
        let t = subject_token("a.b *>");
        assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'='));
        assert_ne!(subject_token("a.b"), subject_token("a_b"));
        assert_ne!(subject_token("=2E"), subject_token("."));
        for id in ["acme", "a.b *>", "ünïcode org", "", "=2E"] {
            assert_eq!(subject_token_decode(&subject_token(id)).as_deref(), Some(id));
        }
        assert_eq!(subject_token_decode("=Z"), None);
    }

    #[test]
    fn sha256_separates_parts() {
        assert_ne!(sha256_hex(&["ab", "c"]), sha256_hex(&["a", "bc"]));
    }
}
