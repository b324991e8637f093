//! Splitting text into atomic statements.
//!
//! Two passes: [`sentences`] cuts a message into sentences (line by line,
//! then on terminal punctuation, with care for abbreviations, decimals,
//! ellipses and inline code), and [`clauses`] cuts one sentence on "; " and
//! on " and " / " but " when both sides are independent clauses. Everything
//! works on `char`s, never on byte offsets derived from a different string, so
//! arbitrary Unicode input cannot cause a slicing panic.

use super::lexicon::{is_in, DETERMINERS, SUBJECTS, VERBS};
use super::text::{norm_words, tidy_sentence};

/// Abbreviations whose trailing "." does not end a sentence (lowercase,
/// without the final dot).
const ABBREVIATIONS: &[&str] = &[
    "e.g", "i.e", "dr", "mr", "mrs", "ms", "st", "vs", "prof", "jr", "sr", "inc", "ltd", "co", "approx", "fig", "cf",
    "a.m", "p.m", "u.s", "u.k", "mt", "ave", "dept", "est", "al", "min", "max", "sec", "hr", "hrs", "ft", "lb", "lbs",
    "oz", "incl", "resp", "vol", "ca", "corp",
];

/// Cuts `text` into sentences. Newlines always end a sentence: chat messages
/// are rarely hard-wrapped, and list items are separate statements.
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = strip_list_marker(line.trim());
        if line.is_empty() {
            continue;
        }
        split_line(line, &mut out);
    }
    out
}

/// Removes "- ", "* ", "• ", "1. ", "2) " and markdown heading markers.
fn strip_list_marker(line: &str) -> &str {
    let mut s = line.trim_start_matches('#').trim_start();
    for bullet in ["- ", "* ", "• ", "+ ", "> "] {
        if let Some(rest) = s.strip_prefix(bullet) {
            s = rest.trim_start();
        }
    }
    // Numbered items: up to three digits then "." or ")" then a space.
    let digits = s.chars().take_while(|c| c.is_ascii_digit()).count();
    if (1..=3).contains(&digits) {
        let rest = &s[digits..]; // ASCII digits are one byte each
        for marker in [". ", ") "] {
            if let Some(r) = rest.strip_prefix(marker) {
                return r.trim_start();
            }
        }
    }
    s
}

fn is_terminal(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？')
}

fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '”' | '’' | '»')
}

fn split_line(line: &str, out: &mut Vec<String>) {
    let chars: Vec<char> = line.chars().collect();
    let mut start = 0;
    let mut in_code = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '`' {
            in_code = !in_code;
        }
        if in_code || !is_terminal(c) {
            i += 1;
            continue;
        }
        // Consume the whole run of terminal punctuation and closing quotes.
        let mut end = i + 1;
        while end < chars.len() && (is_terminal(chars[end]) || is_closer(chars[end])) {
            end += 1;
        }
        let run: String = chars[i..end].iter().filter(|c| is_terminal(**c)).collect();
        let at_end = end >= chars.len();
        let followed_by_space = at_end || chars[end].is_whitespace();
        let next_word_start = chars[end..].iter().find(|c| !c.is_whitespace()).copied();
        let boundary = if !followed_by_space {
            // "3.5", "example.com", "file.rs": no boundary inside a token.
            false
        } else if run == "..." || run == "…" {
            // An ellipsis trails off mid-thought unless a new sentence starts.
            at_end || next_word_start.is_some_and(|c| c.is_uppercase())
        } else if run == "." {
            !is_abbreviation(&chars[start..i], next_word_start)
        } else {
            true
        };
        if boundary {
            push_sentence(&chars[start..end], out);
            start = end;
        }
        i = end;
    }
    if start < chars.len() {
        push_sentence(&chars[start..], out);
    }
}

/// True when the word just before a "." is a known abbreviation or an
/// initial ("J. Smith"), so the dot does not end the sentence.
fn is_abbreviation(before: &[char], next: Option<char>) -> bool {
    let word: String =
        before.iter().rev().take_while(|c| !c.is_whitespace()).collect::<Vec<_>>().into_iter().rev().collect();
    let word = word.trim_start_matches(|c: char| !c.is_alphanumeric()).to_lowercase();
    if word.is_empty() {
        return false;
    }
    if word == "no" {
        // "No. 5" is an abbreviation; "No. I live in Paris." is not.
        return next.is_some_and(|c| c.is_ascii_digit());
    }
    if word == "etc" {
        // "etc." ends a sentence when a capitalised word follows.
        return !next.is_some_and(|c| c.is_uppercase());
    }
    if ABBREVIATIONS.contains(&word.as_str()) {
        return true;
    }
    // A single capital letter is an initial; "I." never is (it ends "so do I.").
    let mut it = word.chars();
    matches!((it.next(), it.next()), (Some(c), None) if c.is_alphabetic() && c != 'i')
        && before.last().is_some_and(|c| c.is_uppercase())
}

fn push_sentence(chars: &[char], out: &mut Vec<String>) {
    let s: String = chars.iter().collect();
    let s = s.trim();
    if !s.is_empty() {
        out.push(s.to_string());
    }
}

/// Conjunctions on which a sentence may split, with a leading space so they
/// only match whole words. ", and " is listed before " and " so the comma
/// goes away with it.
const CONJUNCTIONS: &[&str] = &[", and ", " and ", ", but ", " but "];

/// Cuts one sentence into independent clauses, each tidied into a sentence.
pub fn clauses(sentence: &str) -> Vec<String> {
    let terminal = sentence.chars().last().filter(|c| is_terminal(*c)).unwrap_or('.');
    let mut out = Vec::new();
    for part in split_semicolons(sentence) {
        let mut rest = part;
        loop {
            match find_clause_split(&rest) {
                Some((left, right)) => {
                    out.push(tidy_sentence(&left, terminal));
                    rest = right;
                }
                None => {
                    out.push(tidy_sentence(&rest, terminal));
                    break;
                }
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// Splits on "; " outside inline code.
fn split_semicolons(sentence: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut in_code = false;
    let mut chars = sentence.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '`' {
            in_code = !in_code;
        }
        if c == ';' && !in_code && chars.peek().is_some_and(|n| n.is_whitespace()) {
            parts.push(std::mem::take(&mut cur));
            continue;
        }
        cur.push(c);
    }
    parts.push(cur);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// Finds the first conjunction whose both sides are clauses and returns the
/// two sides. Works on a char vector with an ASCII-lowercased mirror so the
/// search is case-insensitive without any byte-offset arithmetic.
fn find_clause_split(s: &str) -> Option<(String, String)> {
    let chars: Vec<char> = s.chars().collect();
    let lower: Vec<char> = chars.iter().map(|c| c.to_ascii_lowercase()).collect();
    let mut in_code = false;
    for i in 0..lower.len() {
        if lower[i] == '`' {
            in_code = !in_code;
        }
        if in_code {
            continue;
        }
        for conj in CONJUNCTIONS {
            let pat: Vec<char> = conj.chars().collect();
            if lower[i..].starts_with(&pat) {
                let left: String = chars[..i].iter().collect();
                let right: String = chars[i + pat.len()..].iter().collect();
                if is_clause(&left, true) && is_clause(&right, false) {
                    return Some((left, right));
                }
                break; // ", and " and " and " overlap; test the longest only
            }
        }
    }
    None
}

/// A word sequence is a clause when it has its own subject and a verb. The
/// left side of a split may open with an adverbial ("Yesterday I went…"), so
/// its subject is looked for among the first three words.
fn is_clause(text: &str, left: bool) -> bool {
    let words = norm_words(text);
    if words.len() < 2 {
        return false;
    }
    let reach = if left { 3 } else { 1 };
    for (i, w) in words.iter().take(reach).enumerate() {
        let w = w.as_str();
        if is_in(SUBJECTS, w) && words.len() > i + 1 {
            return true;
        }
        if is_in(DETERMINERS, w) {
            // "my sister lives…": a verb within the next four words.
            return words.iter().skip(i + 1).take(4).any(|v| is_in(VERBS, v));
        }
    }
    // A capitalised name directly followed by a verb: "Alice works at Acme".
    let first_cap = text.trim_start().chars().next().is_some_and(|c| c.is_uppercase());
    if !first_cap {
        return false;
    }
    if left {
        words.iter().take(4).any(|v| is_in(VERBS, v))
    } else {
        is_in(VERBS, &words[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentence_split_handles_abbreviations_decimals_and_ellipsis() {
        let s = sentences("I like fruit, e.g. apples. Dr. Smith is my doctor. Pi is 3.14 roughly!");
        assert_eq!(s, vec!["I like fruit, e.g. apples.", "Dr. Smith is my doctor.", "Pi is 3.14 roughly!"]);
        let s = sentences("I was thinking... maybe pizza. Or not... Then again, who knows?");
        assert_eq!(s, vec!["I was thinking... maybe pizza.", "Or not...", "Then again, who knows?"]);
    }

    #[test]
    fn sentence_split_handles_lists_code_and_initials() {
        let s = sentences("Steps:\n1. Run `cargo build. now` first\n- Then deploy.\nJ. R. R. Tolkien wrote it.");
        assert_eq!(s, vec!["Steps:", "Run `cargo build. now` first", "Then deploy.", "J. R. R. Tolkien wrote it."]);
        assert_eq!(sentences("No. I live in Paris."), vec!["No.", "I live in Paris."]);
        assert!(sentences("   \n\n ").is_empty());
    }

    #[test]
    fn clause_split_needs_subject_and_verb_on_both_sides() {
        assert_eq!(clauses("I live in Paris and I work at Acme."), vec!["I live in Paris.", "I work at Acme."]);
        assert_eq!(clauses("I like cats and dogs."), vec!["I like cats and dogs."]);
        assert_eq!(
            clauses("I live in Paris, and my sister lives in Rome!"),
            vec!["I live in Paris!", "My sister lives in Rome!"]
        );
        assert_eq!(clauses("I like tea but I hate coffee."), vec!["I like tea.", "I hate coffee."]);
        assert_eq!(clauses("I bought a car and it is red."), vec!["I bought a car and it is red."]);
        assert_eq!(clauses("I use vim; we deploy on Fridays."), vec!["I use vim.", "We deploy on Fridays."]);
        assert_eq!(clauses("Cats and dogs are great."), vec!["Cats and dogs are great."]);
    }
}
