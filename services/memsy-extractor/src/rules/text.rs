//! Small text utilities: normalisation for pattern matching, sentence
//! tidying, and the first-person → third-person rewrite used for summaries
//! and titles.
//!
//! All functions are total (no panics on any input) and only slice strings at
//! positions they obtained from the same string.

use super::lexicon::{is_in, ADVERBS, IRREGULAR_PAST, MODALS, NOT_PAST_ED};

/// Lowercases, folds typographic apostrophes, turns every other non-word
/// character into a space and pads with spaces, so that phrase patterns like
/// `" i like "` match on whole words with a plain `contains`.
pub fn norm(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(' ');
    let mut last_space = true;
    for c in s.chars().flat_map(char::to_lowercase) {
        let c = if matches!(c, '’' | '‘' | 'ʼ') { '\'' } else { c };
        if c.is_alphanumeric() || matches!(c, '\'' | '+' | '#') {
            out.push(c);
            last_space = false;
        } else if !last_space {
            out.push(' ');
            last_space = true;
        }
    }
    if !last_space {
        out.push(' ');
    }
    out
}

/// The words of [`norm`], with quote-apostrophes trimmed from their edges
/// (but "dog's" keeps its possessive).
pub fn norm_words(s: &str) -> Vec<String> {
    norm(s).split_whitespace().map(|w| w.trim_matches('\'').to_string()).filter(|w| !w.is_empty()).collect()
}

/// Uppercases the first character.
pub fn capitalise(s: &str) -> String {
    let mut it = s.chars();
    match it.next() {
        Some(c) => c.to_uppercase().chain(it).collect(),
        None => String::new(),
    }
}

/// Lowercases the first character unless the first word looks like a proper
/// noun or acronym (kept as is: "Rust is…" stays "Rust").
pub fn decapitalise(s: &str) -> String {
    let first_word = s.split_whitespace().next().unwrap_or("");
    let second_upper = first_word.chars().nth(1).is_some_and(char::is_uppercase);
    if second_upper || first_word == "I" || first_word.starts_with("I'") {
        return s.to_string();
    }
    let mut it = s.chars();
    match it.next() {
        Some(c) => c.to_lowercase().chain(it).collect(),
        None => String::new(),
    }
}

/// Turns a raw fragment into a clean sentence: collapsed whitespace, no
/// dangling separators, a capital first letter and terminal punctuation.
/// Returns an empty string when the fragment has no letters or digits.
pub fn tidy_sentence(s: &str, terminal: char) -> String {
    if !s.chars().any(char::is_alphanumeric) {
        return String::new();
    }
    let collapsed = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut body = collapsed
        .trim_end_matches(|c: char| matches!(c, ',' | ';' | ':' | '-' | '—' | '–') || c.is_whitespace())
        .trim_start_matches(|c: char| matches!(c, ',' | ';' | ':' | '-' | '—' | '–') || c.is_whitespace())
        .to_string();
    // A trailing ellipsis is a trailing-off, not part of the statement.
    while body.ends_with("...") || body.ends_with('…') {
        body = body.trim_end_matches('…').trim_end_matches("...").trim_end().to_string();
    }
    let mut out = capitalise(&body);
    let ends_ok = out.trim_end_matches(['"', '\'', ')', '”', '’']).ends_with(['.', '!', '?']);
    if !ends_ok {
        out.push(if matches!(terminal, '!' | '?') { terminal } else { '.' });
    }
    out
}

/// Third-person singular present of an English verb ("live" → "lives").
pub fn conjugate3(word: &str) -> String {
    let lower = word.to_lowercase();
    match lower.as_str() {
        "am" | "'m" => return "is".into(),
        "have" | "'ve" => return "has".into(),
        "do" => return "does".into(),
        "go" => return "goes".into(),
        "don't" | "don’t" => return "doesn't".into(),
        "haven't" => return "hasn't".into(),
        "do not" => return "does not".into(),
        "are" => return "is".into(),
        "aren't" => return "isn't".into(),
        _ => {}
    }
    if is_in(MODALS, &lower) || is_past_tense(&lower) || !lower.chars().all(|c| c.is_alphabetic()) {
        return word.to_string();
    }
    let chars: Vec<char> = word.chars().collect();
    let n = chars.len();
    if n > 1 && chars[n - 1] == 'y' && !"aeiou".contains(chars[n - 2]) {
        let stem: String = chars[..n - 1].iter().collect();
        return format!("{stem}ies");
    }
    if ["s", "sh", "ch", "x", "z", "o"].iter().any(|e| lower.ends_with(e)) {
        return format!("{word}es");
    }
    format!("{word}s")
}

/// True for a past-tense verb form: irregular list, or a regular "-ed" that is
/// not a known adjective/false friend.
pub fn is_past_tense(word: &str) -> bool {
    is_in(IRREGULAR_PAST, word) || (word.chars().count() > 4 && word.ends_with("ed") && !is_in(NOT_PAST_ED, word))
}

/// Splits a token into (leading punctuation, core, trailing punctuation).
fn affixes(token: &str) -> (&str, &str, &str) {
    let core_start = token.find(|c: char| c.is_alphanumeric()).unwrap_or(token.len());
    let core_end = token
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_alphanumeric())
        .map(|(i, c)| i + c.len_utf8())
        .unwrap_or(core_start)
        .max(core_start);
    (&token[..core_start], &token[core_start..core_end], &token[core_end..])
}

/// How a first-person sentence is re-voiced: as "the user" (summaries) or
/// with the subject dropped (titles: "Lives in Paris").
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Voice {
    User,
    Title,
}

/// Rewrites first-person pronouns to the third person and conjugates the verb
/// that follows "I" ("I really like X" → "The user really likes X").
/// "we"/"our" are kept: team statements stay team statements.
pub fn third_person(sentence: &str, voice: Voice) -> String {
    let tokens: Vec<&str> = sentence.split_whitespace().collect();
    let mut out: Vec<String> = Vec::with_capacity(tokens.len() + 2);
    let mut conjugate_next = false;
    for (idx, tok) in tokens.iter().enumerate() {
        let (pre, core, post) = affixes(tok);
        let lower = core.to_lowercase().replace(['’', '‘'], "'");
        let at_start = idx == 0;
        let subject = |rest: &str| -> String {
            let subj = match (voice, at_start) {
                (Voice::Title, true) => String::new(),
                (Voice::Title, false) => "they".to_string(),
                (Voice::User, true) => "The user".to_string(),
                (Voice::User, false) => "the user".to_string(),
            };
            match (subj.is_empty(), rest.is_empty()) {
                (true, _) => rest.to_string(),
                (false, true) => subj,
                (false, false) => format!("{subj} {rest}"),
            }
        };
        let replaced: Option<String> = match lower.as_str() {
            "i" => {
                // "Maria and I are": a compound subject keeps its plural verb.
                let compound = idx > 0 && matches!(tokens[idx - 1].to_lowercase().as_str(), "and" | "or");
                conjugate_next = !compound;
                Some(subject(""))
            }
            "i'm" => Some(subject("is")),
            "i've" => Some(subject("has")),
            "i'd" => Some(subject("would")),
            "i'll" => Some(subject("will")),
            "my" | "mine" => Some(match voice {
                Voice::Title if at_start => String::new(),
                Voice::Title => "their".into(),
                Voice::User if at_start => "The user's".into(),
                Voice::User => "the user's".into(),
            }),
            "me" => Some(match voice {
                Voice::Title => "them".into(),
                Voice::User => "the user".into(),
            }),
            "myself" => Some("themselves".into()),
            _ if conjugate_next && is_in(ADVERBS, &lower) => None,
            _ if conjugate_next => {
                conjugate_next = false;
                Some(conjugate3(core))
            }
            _ => None,
        };
        match replaced {
            Some(r) if r.is_empty() => {
                // Dropped subject in a title: keep any punctuation around it.
                if !(pre.is_empty() && post.is_empty()) {
                    out.push(format!("{pre}{post}"));
                }
            }
            Some(r) => out.push(format!("{pre}{r}{post}")),
            None => out.push((*tok).to_string()),
        }
    }
    capitalise(out.join(" ").trim())
}

/// Truncates on a word boundary to at most `max` characters, adding "…" when
/// something was cut.
pub fn truncate_words(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out = String::new();
    for word in s.split_whitespace() {
        let extra = word.chars().count() + usize::from(!out.is_empty());
        if out.chars().count() + extra + 1 > max {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.is_empty() {
        // One giant word: cut by characters.
        out = s.chars().take(max.saturating_sub(1)).collect();
    }
    let out = out.trim_end_matches([',', ';', ':', '-', '—']).to_string();
    format!("{out}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norm_matches_whole_words() {
        assert_eq!(norm("I Like  Rust!"), " i like rust ");
        assert_eq!(norm("I’d rather—not"), " i'd rather not ");
        assert_eq!(norm(""), " ");
        assert_eq!(norm_words("'Hello' dog's"), vec!["hello", "dog's"]);
    }

    #[test]
    fn conjugation() {
        assert_eq!(conjugate3("live"), "lives");
        assert_eq!(conjugate3("study"), "studies");
        assert_eq!(conjugate3("watch"), "watches");
        assert_eq!(conjugate3("play"), "plays");
        assert_eq!(conjugate3("don't"), "doesn't");
        assert_eq!(conjugate3("moved"), "moved");
        assert_eq!(conjugate3("can"), "can");
    }

    #[test]
    fn third_person_rewrites() {
        assert_eq!(third_person("I live in Paris.", Voice::User), "The user lives in Paris.");
        assert_eq!(third_person("My dog's name is Rex.", Voice::User), "The user's dog's name is Rex.");
        assert_eq!(third_person("I really like my job.", Voice::User), "The user really likes the user's job.");
        assert_eq!(third_person("I'm vegan.", Voice::User), "The user is vegan.");
        assert_eq!(third_person("I prefer dark mode", Voice::Title), "Prefers dark mode");
        assert_eq!(third_person("My dog's name is Rex", Voice::Title), "Dog's name is Rex");
        assert_eq!(third_person("I don't like my boss", Voice::Title), "Doesn't like their boss");
    }

    #[test]
    fn tidy_and_truncate() {
        assert_eq!(tidy_sentence("  i work at acme , ", '.'), "I work at acme.");
        assert_eq!(tidy_sentence("I was thinking...", '.'), "I was thinking.");
        assert_eq!(tidy_sentence("¿?", '.'), "");
        let t = truncate_words(&"word ".repeat(40), 60);
        assert!(t.chars().count() <= 60 && t.ends_with('…'));
        let t = truncate_words(&"é".repeat(100), 60);
        assert_eq!(t.chars().count(), 60);
    }
}
