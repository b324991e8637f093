//! Slots: what a memory states a value for, when a person can only have one
//! value at a time (where they live, who they work for, their favourite
//! colour). A newer memory of the same actor and slot supersedes the older
//! one. Derived from the memory's text, so it works for every extraction
//! engine, first person ("I moved to Berlin") or third ("Alice lives in
//! Paris"); when unsure there is no slot, because a wrong slot would retire
//! a memory that still holds.
//!
//! A slot has a subject, whose value it is: `residence:user` ("I live in
//! Paris"; a transcript's speaker instead of `user`: `residence:caroline`),
//! `residence:olaf` ("My brother Olaf lives in Bergen"),
//! `residence:my_sister` ("My sister lives in Tromso"). A fact about
//! someone else is not the user's slot, and a pronoun ("she lives in …")
//! names nobody for sure: no slot.

use crate::words::{split, Word, RELATIVES};

/// A slot and the value a text states for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// `<kind>:<subject>`, e.g. `residence:user`, `name_of:dog:user`.
    pub name: String,
    /// Lowercase words ("new york", "acme corp").
    pub value: String,
}

impl Slot {
    /// Whether two values are the same place, employer, name…: equal, or
    /// one the start of the other ("New York" / "New York City").
    pub fn same_value(&self, other: &Slot) -> bool {
        let (a, b) = (format!("{} ", self.value), format!("{} ", other.value));
        a.starts_with(&b) || b.starts_with(&a)
    }
}

/// What a slot was called before slots had a subject (`residence` for
/// `residence:user`): memories stored then carry it.
pub fn unsubjected(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(kind, _)| kind)
}

/// The slot a memory's text fills, if any.
pub fn slot_of(text: &str) -> Option<String> {
    read(text).map(|s| s.name)
}

/// The slot a memory's text fills and the value it states, if any.
pub fn read(text: &str) -> Option<Slot> {
    let (speaker, words) = split(text);
    let lower: Vec<&str> = words.iter().map(|w| w.lower.as_str()).collect();
    // Negations, hypotheticals and the past state no current value.
    const UNSURE: &[&str] = &[
        "not", "never", "don't", "doesn't", "didn't", "won't", "can't", "would", "might", "maybe", "if", "could",
        "should", "want", "wants", "hope", "plan", "planning", "used", "wish",
    ];
    if lower.iter().any(|w| UNSURE.contains(w)) {
        return None;
    }
    let user = speaker.unwrap_or_else(|| "user".to_string());
    for (kind, markers) in [("residence", RESIDENCE), ("employer", EMPLOYER)] {
        for marker in markers {
            if let Some(at) = find(&lower, marker) {
                // One joins a club or a program as well: only "joined
                // Globex", a name right after it, is an employer.
                if marker == &["joined"] && !words.get(at + 1).is_some_and(Word::is_name) {
                    continue;
                }
                let subject = subject(&words[..at], &user)?;
                let value = value(&lower[at + marker.len()..])?;
                return Some(Slot { name: format!("{kind}:{subject}"), value });
            }
        }
    }
    for marker in [&["my", "name", "is"][..], &["call", "me"]] {
        if let Some(at) = find(&lower, marker) {
            let value = value(&lower[at + marker.len()..])?;
            return Some(Slot { name: format!("name:{user}"), value });
        }
    }
    // "my dog's name is Rex", "my cat is called Tom" → name_of:dog / name_of:cat.
    for end in [&["name", "is"][..], &["is", "called"], &["is", "named"]] {
        if let Some(at) = find(&lower, end) {
            if let Some(what) = owned_thing(&lower[..at]) {
                let value = value(&lower[at + end.len()..])?;
                return Some(Slot { name: format!("name_of:{what}:{user}"), value });
            }
        }
    }
    // "my favourite colour is green" → favorite:colour.
    for marker in [&["my", "favorite"][..], &["my", "favourite"]] {
        if let Some(at) = find(&lower, marker) {
            let rest = &lower[at + marker.len()..];
            let is = rest.iter().position(|w| *w == "is")?;
            if (1..=2).contains(&is) {
                let value = value(&rest[is + 1..])?;
                return Some(Slot { name: format!("favorite:{}:{user}", rest[..is].join("_")), value });
            }
        }
    }
    None
}

/// Where a person lives: the verb phrase, whose subject comes before it.
const RESIDENCE: &[&[&str]] = &[
    &["live", "in"],
    &["lives", "in"],
    &["living", "in"],
    &["moved", "to"],
    &["relocated", "to"],
    &["based", "in"],
    &["home", "is", "in"],
];

const EMPLOYER: &[&[&str]] = &[
    &["started", "working", "at"],
    &["started", "working", "for"],
    &["new", "job", "at"],
    &["work", "at"],
    &["work", "for"],
    &["works", "at"],
    &["works", "for"],
    &["working", "at"],
    &["working", "for"],
    &["joined"],
    &["employer", "is"],
];

fn find(words: &[&str], phrase: &[&str]) -> Option<usize> {
    words.windows(phrase.len()).position(|w| w == phrase)
}

/// Whose value a slot sentence states, from the words before its verb:
/// `user` (or the speaker) for "I" / "we" / "my home", a name ("Olaf",
/// "My brother Olaf" → `olaf`), a relative ("my sister" → `my_sister`);
/// None for anyone else or when unsure.
fn subject(before: &[Word], user: &str) -> Option<String> {
    const AUX: &[&str] = &[
        "now",
        "just",
        "recently",
        "also",
        "still",
        "currently",
        "finally",
        "actually",
        "has",
        "have",
        "had",
        "am",
        "is",
        "are",
        "was",
        "been",
        "all",
        "started",
        "officially",
        "new",
        "a",
        "got",
        "landed",
        "found",
    ];
    let mut end = before.len();
    while end > 0 && AUX.contains(&before[end - 1].lower.as_str()) {
        end -= 1;
    }
    let before = &before[..end];
    let last = before.last()?;
    if matches!(last.lower.as_str(), "i" | "i'm" | "i've" | "we" | "we're" | "we've" | "my") {
        // "my" ends the subject in "my home is in …" and "my employer is …".
        return Some(user.to_string());
    }
    // A name: the capitalised words just before the verb (at most three).
    let names: Vec<&Word> = before.iter().rev().take_while(|w| w.is_name() || is_initial_name(w)).take(3).collect();
    if !names.is_empty() {
        let mut names: Vec<&str> = names.iter().map(|w| w.lower.as_str()).collect();
        names.reverse();
        return Some(names.join("_"));
    }
    // A relative or friend of the user: "my sister", "my older brother".
    let my = before.iter().rposition(|w| w.lower == "my")?;
    let who: Vec<&str> = before[my + 1..].iter().map(|w| w.lower.as_str()).collect();
    if who.is_empty() || who.len() > 3 || !RELATIVES.contains(who.last()?) {
        return None;
    }
    // A transcript speaker's sister is not the other speaker's.
    let owner = if user == "user" { "my" } else { user };
    Some(format!("{owner}_{}", who.join("_")))
}

/// A capitalised first word that is no common sentence opener: "Olaf lives
/// in Bergen" names Olaf, "She lives in …" names nobody.
fn is_initial_name(w: &Word) -> bool {
    const OPENERS: &[&str] =
        &["he", "she", "they", "it", "this", "that", "the", "a", "an", "someone", "everyone", "who"];
    w.initial && w.orig.chars().next().is_some_and(char::is_uppercase) && !OPENERS.contains(&w.lower.as_str())
}

/// "my dog" before "'s name is" / "is called" → `dog` (at most two words).
fn owned_thing(before: &[&str]) -> Option<String> {
    let my = before.iter().rposition(|w| *w == "my")?;
    let what = &before[my + 1..];
    (!what.is_empty() && what.len() <= 2).then(|| what.join("_"))
}

/// The value after a slot's verb: up to four words, without a leading
/// article, ending where a preposition, conjunction or time phrase starts
/// ("Berlin last year" → "berlin", "the Acme Corp as an engineer" → "acme corp").
fn value(after: &[&str]) -> Option<String> {
    const STOP: &[&str] = &[
        "in",
        "at",
        "on",
        "with",
        "for",
        "since",
        "as",
        "and",
        "but",
        "because",
        "last",
        "next",
        "this",
        "now",
        "ago",
        "when",
        "where",
        "after",
        "before",
        "from",
        "to",
        "near",
        "so",
        "a",
        "an",
        "the",
        "recently",
        "today",
        "yesterday",
        "two",
        "three",
        "few",
        "several",
        "about",
        "around",
        "which",
        "who",
        "back",
        "again",
        "too",
        "also",
        "i",
        "we",
    ];
    let start = after.iter().position(|w| !matches!(*w, "a" | "an" | "the")).unwrap_or(after.len());
    let words: Vec<&str> = after[start..].iter().take_while(|w| !STOP.contains(w)).take(4).copied().collect();
    (!words.is_empty()).then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_jobs_names_and_favourites() {
        for (text, slot, value) in [
            ("I live in Paris.", "residence:user", "paris"),
            ("I moved to Berlin last year.", "residence:user", "berlin"),
            ("We just moved to New York City!", "residence:user", "new york city"),
            ("Alice lives in Lisbon.", "residence:alice", "lisbon"),
            ("My brother Olaf lives in Bergen.", "residence:olaf", "bergen"),
            ("My older sister lives in Tromso.", "residence:my_older_sister", "tromso"),
            ("Caroline: I moved to Denver!", "residence:caroline", "denver"),
            ("Caroline: My sister lives in Denver.", "residence:caroline_sister", "denver"),
            ("I work at Acme.", "employer:user", "acme"),
            ("I joined Globex in March.", "employer:user", "globex"),
            ("Mary Ann works for the Acme Corp as an engineer.", "employer:mary_ann", "acme corp"),
            ("My name is Sam.", "name:user", "sam"),
            ("My dog's name is Rex.", "name_of:dog:user", "rex"),
            ("My cat is called Tom.", "name_of:cat:user", "tom"),
            ("My favourite colour is green.", "favorite:colour:user", "green"),
            ("My favorite programming language is Rust.", "favorite:programming_language:user", "rust"),
        ] {
            let s = read(text).unwrap_or_else(|| panic!("{text}: no slot"));
            assert_eq!((s.name.as_str(), s.value.as_str()), (slot, value), "{text}");
        }
    }

    #[test]
    fn no_slot_when_unsure() {
        for text in [
            "I prefer dark mode.",
            "I don't live in Paris anymore.",
            "I would move to Berlin if I could.",
            "I used to live in Rome.",
            "I visited Paris.",
            "Last weekend I joined a mentorship program.",
            "She lives in Oslo.",
            "His brother lives in Oslo.",
            "The office is based in Berlin.",
            "My dog's favourite toy is a ball and it is red.",
            "",
        ] {
            assert_eq!(read(text), None, "{text}");
        }
    }

    #[test]
    fn values_compare_by_their_start() {
        let s = |v: &str| Slot { name: "residence:user".into(), value: v.into() };
        assert!(s("new york").same_value(&s("new york city")));
        assert!(!s("new york").same_value(&s("new delhi")));
        assert!(!s("paris").same_value(&s("parisville")));
    }
}
