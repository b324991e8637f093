//! Slots: what a memory states a value for, when a person can only have one
//! value at a time (where they live, who they work for, their favourite
//! colour). A newer memory of the same actor and slot supersedes the older
//! one. Derived from the memory's text, so it works for every extraction
//! engine, first person ("I moved to Berlin") or third ("Alice lives in
//! Paris"); when unsure there is no slot, because a wrong slot would retire
//! a memory that still holds.

/// The slot a memory's text fills, if any.
pub fn slot_of(text: &str) -> Option<String> {
    let t = normalise(text);
    let padded = format!(" {t} ");
    let has = |phrases: &[&str]| phrases.iter().any(|p| padded.contains(p));

    // Negations and hypotheticals state no current value.
    if has(&[" not ", " never ", " don't ", " doesn't ", " didn't ", " would ", " might ", " maybe ", " if "]) {
        return None;
    }
    if has(&[
        " i live in ",
        " i now live in ",
        " i'm living in ",
        " i am living in ",
        " lives in ",
        " i moved to ",
        " moved to ",
        " relocated to ",
        " i'm based in ",
        " i am based in ",
        " is based in ",
        " my home is in ",
    ]) {
        return Some("residence".into());
    }
    if has(&[
        " i work at ",
        " i work for ",
        " works at ",
        " works for ",
        " i'm working at ",
        " i am working at ",
        " i joined ",
        " started working at ",
        " started a new job at ",
        " my employer is ",
    ]) {
        return Some("employer".into());
    }
    if has(&[" my name is ", " call me "]) {
        return Some("name".into());
    }
    // "my dog's name is Rex", "my cat is called Tom" → pet_name:dog / pet_name:cat.
    for (marker, end) in [("my ", "'s name is "), ("my ", " is called "), ("my ", " is named ")] {
        if let Some(i) = padded.find(end) {
            let before = &padded[..i];
            if let Some(j) = before.rfind(marker) {
                let what = before[j + marker.len()..].trim();
                if !what.is_empty() && what.split_whitespace().count() <= 2 {
                    return Some(format!("name_of:{}", what.replace(' ', "_")));
                }
            }
        }
    }
    // "my favourite colour is green" → favorite:colour.
    for marker in [" my favorite ", " my favourite "] {
        if let Some(i) = padded.find(marker) {
            let rest = &padded[i + marker.len()..];
            if let Some(k) = rest.find(" is ") {
                let what = rest[..k].trim();
                if !what.is_empty() && what.split_whitespace().count() <= 2 {
                    return Some(format!("favorite:{}", what.replace(' ', "_")));
                }
            }
        }
    }
    None
}

/// Lowercase, straight apostrophes, a leading "Name:" speaker label dropped,
/// punctuation at the end removed.
fn normalise(text: &str) -> String {
    // "Caroline: I moved to …": a transcript's speaker label, not content.
    let t = memsy_core::model::without_speaker_label(text.trim()).replace(['\u{2019}', '\u{2018}'], "'").to_lowercase();
    t.trim_end_matches(['.', '!', '?']).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_jobs_names_and_favourites() {
        for (text, slot) in [
            ("I live in Paris.", "residence"),
            ("I moved to Berlin last year.", "residence"),
            ("Alice lives in Lisbon.", "residence"),
            ("Caroline: I moved to Denver!", "residence"),
            ("I work at Acme.", "employer"),
            ("I joined Globex in March.", "employer"),
            ("My name is Sam.", "name"),
            ("My dog's name is Rex.", "name_of:dog"),
            ("My cat is called Tom.", "name_of:cat"),
            ("My favourite colour is green.", "favorite:colour"),
            ("My favorite programming language is Rust.", "favorite:programming_language"),
        ] {
            assert_eq!(slot_of(text).as_deref(), Some(slot), "{text}");
        }
    }

    #[test]
    fn no_slot_when_unsure() {
        for text in [
            "I prefer dark mode.",
            "I don't live in Paris anymore.",
            "I would move to Berlin if I could.",
            "I visited Paris.",
            "My dog's favourite toy is a ball and it is red.",
            "",
        ] {
            assert_eq!(slot_of(text), None, "{text}");
        }
    }
}
