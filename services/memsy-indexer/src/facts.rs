//! Whether two near-identical texts state different facts. Cosine alone
//! cannot tell "the same fact again" from "the same template, another fact"
//! ("My code word number 7 is quokka" / "… number 8 is lemur" score 0.93+
//! on MiniLM), so a merge also needs the texts not to disagree.
//!
//! They disagree — evidence of a different fact — when:
//! - they are said by different speakers of a transcript, or one is about
//!   the user ("I …", "my …") and the other about someone else ("my
//!   husband …", "she …", "Bob's …");
//! - one is negated and the other is not ("I like jazz" / "I don't like
//!   jazz"), or one is a dislike or worry and the other is not;
//! - each names something specific the other does not: a number, a code, a
//!   name, or any word that is not common filler ("red" / "blue", "brother"
//!   / "sister", "Bergen" / "Tromso").
//!
//! Words only one side has (more detail, "I live in Paris" / "I live in
//! Paris with my wife") and differing filler ("I really love hiking" / "I
//! enjoy hiking") are not evidence: such paraphrases still merge.

use std::collections::BTreeSet;

use crate::words::{split, Word, RELATIVES};

/// True when `a` and `b` disagree on something only a different fact
/// would (see the module documentation).
pub fn different_facts(a: &str, b: &str) -> bool {
    let (a, b) = (Fact::of(a), Fact::of(b));
    if a.speaker.is_some() && b.speaker.is_some() && a.speaker != b.speaker {
        return true;
    }
    if matches!(
        (&a.subject, &b.subject),
        (Some(Subject::User), Some(Subject::Other)) | (Some(Subject::Other), Some(Subject::User))
    ) {
        return true;
    }
    if a.negated != b.negated || a.averse != b.averse {
        return true;
    }
    a.specific.difference(&b.specific).next().is_some() && b.specific.difference(&a.specific).next().is_some()
}

/// What the fact check reads of a text.
#[derive(Debug, Default)]
struct Fact {
    speaker: Option<String>,
    subject: Option<Subject>,
    negated: bool,
    /// A dislike, a fear or a sadness rather than a liking.
    averse: bool,
    /// Numbers, codes, names and uncommon words, normalised.
    specific: BTreeSet<String>,
}

impl Fact {
    fn of(text: &str) -> Fact {
        let (speaker, words) = split(text);
        let mut f = Fact { speaker, subject: subject(&words), ..Fact::default() };
        for w in &words {
            let l = canonical(&w.lower);
            if is_negation(w) {
                f.negated = true;
            } else if AVERSE.contains(&l) {
                f.averse = true;
            } else if let Some(n) = number(l) {
                f.specific.insert(n.to_string());
            } else if w.lower.chars().any(|c| c.is_ascii_digit()) || w.is_name() || !is_filler(l) {
                f.specific.insert(stem(l));
            }
        }
        f
    }
}

/// Whom a text is about, when its first words say so.
#[derive(Debug, PartialEq, Eq)]
enum Subject {
    User,
    Other,
}

fn subject(words: &[Word]) -> Option<Subject> {
    let first = words.first()?;
    let next = words.get(1);
    match first.lower.as_str() {
        "i" | "i'm" | "i've" | "i'd" | "i'll" | "we" | "we're" | "we've" | "we'd" | "our" | "me" => Some(Subject::User),
        // "my husband …" is about him, "my car …" about the user's car.
        "my" => Some(if words.iter().skip(1).take(3).any(|w| RELATIVES.contains(&w.lower.as_str())) {
            Subject::Other
        } else {
            Subject::User
        }),
        "he" | "she" | "they" | "his" | "her" | "their" | "he's" | "she's" | "they're" => Some(Subject::Other),
        // "Bob's …", "Olaf lives …"; but "Vim is my editor" is about Vim.
        _ if first.possessive && first.orig.chars().next().is_some_and(char::is_uppercase) => Some(Subject::Other),
        _ if first.orig.chars().next().is_some_and(char::is_uppercase)
            && next.is_some_and(|n| {
                n.lower.ends_with('s') && !matches!(n.lower.as_str(), "is" | "was") && !n.is_name()
            }) =>
        {
            Some(Subject::Other)
        }
        _ => None,
    }
}

/// One spelling for words that name the same person or thing.
fn canonical(l: &str) -> &str {
    match l {
        "mom" | "mum" | "mommy" | "mama" => "mother",
        "dad" | "daddy" | "papa" => "father",
        "kid" | "kids" | "children" => "child",
        "hubby" => "husband",
        "usually" | "normally" | "typically" | "generally" => "usually",
        "named" | "called" => "named",
        // What someone does for a living, however it is called.
        "job" | "jobs" | "career" | "careers" | "profession" | "occupation" => "job",
        "lately" | "recently" | "nowadays" => "lately",
        _ => l,
    }
}

fn is_negation(w: &Word) -> bool {
    let l = w.lower.as_str();
    l.ends_with("n't")
        || matches!(l, "not" | "never" | "nothing" | "none" | "nobody" | "neither" | "nor" | "cannot" | "without")
        // "No, I …" answers; "no pets" negates.
        || (l == "no" && !w.comma)
}

/// Words of dislike, fear and sadness: "I love X" and "I hate X" embed
/// alike and share every other word.
const AVERSE: &[&str] = &[
    "afraid",
    "angry",
    "annoyed",
    "annoying",
    "anxious",
    "awful",
    "bad",
    "bored",
    "boring",
    "disappointed",
    "dislike",
    "disliked",
    "dislikes",
    "dread",
    "fear",
    "frightened",
    "hate",
    "hated",
    "hates",
    "hating",
    "miserable",
    "nervous",
    "sad",
    "scared",
    "stressed",
    "terrible",
    "terrified",
    "unhappy",
    "upset",
    "worried",
    "worse",
    "worst",
];

/// Number words as digits, so "two kids" and "2 kids" agree.
fn number(l: &str) -> Option<&'static str> {
    const WORDS: &[(&str, &str)] = &[
        ("zero", "0"),
        ("one", "1"),
        ("two", "2"),
        ("three", "3"),
        ("four", "4"),
        ("five", "5"),
        ("six", "6"),
        ("seven", "7"),
        ("eight", "8"),
        ("nine", "9"),
        ("ten", "10"),
        ("eleven", "11"),
        ("twelve", "12"),
        ("thirteen", "13"),
        ("fourteen", "14"),
        ("fifteen", "15"),
        ("sixteen", "16"),
        ("seventeen", "17"),
        ("eighteen", "18"),
        ("nineteen", "19"),
        ("twenty", "20"),
        ("thirty", "30"),
        ("forty", "40"),
        ("fifty", "50"),
        ("sixty", "60"),
        ("seventy", "70"),
        ("eighty", "80"),
        ("ninety", "90"),
        ("hundred", "100"),
        ("thousand", "1000"),
        ("million", "1000000"),
        ("first", "1st"),
        ("second", "2nd"),
        ("third", "3rd"),
        ("fourth", "4th"),
        ("fifth", "5th"),
        ("twice", "2x"),
        ("dozen", "12"),
    ];
    WORDS.iter().find(|(w, _)| *w == l).map(|(_, n)| *n)
}

/// Light stemming, enough for "stickers" / "sticker", "hiking" / "hike",
/// "studies" / "studied" to meet.
fn stem(l: &str) -> String {
    if l.chars().any(|c| c.is_ascii_digit()) {
        return l.to_string();
    }
    let mut s = l.to_string();
    if s.len() > 4 && s.ends_with("ies") {
        s.truncate(s.len() - 3);
        s.push('y');
    } else if s.len() > 3 && s.ends_with('s') && !s.ends_with("ss") && !s.ends_with("us") && !s.ends_with("is") {
        s.pop();
    }
    if s.len() > 5 && s.ends_with("ly") {
        s.truncate(s.len() - 2);
    }
    if s.len() > 5 && s.ends_with("ing") {
        s.truncate(s.len() - 3);
        undouble(&mut s);
    } else if s.len() > 4 && s.ends_with("ed") {
        s.truncate(s.len() - 2);
        undouble(&mut s);
    }
    if s.len() > 3 && (s.ends_with('e') || s.ends_with('y')) {
        s.pop();
    }
    s
}

/// "runn" → "run", "stopp" → "stop" (but "fill", "pass" keep theirs).
fn undouble(s: &mut String) {
    let b = s.as_bytes();
    if b.len() > 2 && b[b.len() - 1] == b[b.len() - 2] && !matches!(b[b.len() - 1], b'l' | b's' | b'z' | b'e' | b'o') {
        s.pop();
    }
}

fn is_filler(l: &str) -> bool {
    FILLER.binary_search(&l).is_ok()
}

/// Words that say how something is said, not what: function words,
/// pronouns, auxiliaries, degree and discourse words, generic verbs and
/// nouns, and words of liking (their opposite is `AVERSE`). Sorted.
const FILLER: &[&str] = &[
    "a",
    "about",
    "absolutely",
    "actually",
    "adore",
    "adored",
    "adores",
    "after",
    "again",
    "all",
    "already",
    "also",
    "always",
    "am",
    "amazing",
    "an",
    "and",
    "any",
    "anything",
    "appreciate",
    "are",
    "around",
    "as",
    "at",
    "awesome",
    "be",
    "been",
    "being",
    "best",
    "big",
    "bit",
    "both",
    "but",
    "by",
    "can",
    "cool",
    "could",
    "currently",
    "day",
    "days",
    "deeply",
    "definitely",
    "did",
    "do",
    "does",
    "doing",
    "done",
    "each",
    "either",
    "enjoy",
    "enjoyed",
    "enjoying",
    "enjoys",
    "especially",
    "even",
    "ever",
    "every",
    "excited",
    "exciting",
    "extremely",
    "fan",
    "fantastic",
    "favorite",
    "favourite",
    "feel",
    "feeling",
    "feels",
    "felt",
    "finally",
    "fond",
    "for",
    "from",
    "fun",
    "get",
    "gets",
    "getting",
    "glad",
    "go",
    "goes",
    "going",
    "good",
    "got",
    "gotten",
    "great",
    "had",
    "happy",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "honestly",
    "how",
    "huge",
    "i",
    "i'd",
    "i'll",
    "i'm",
    "i've",
    "if",
    "in",
    "incredibly",
    "into",
    "is",
    "it",
    "it's",
    "its",
    "itself",
    "just",
    "kind",
    "kinda",
    "know",
    "lately",
    "like",
    "liked",
    "likes",
    "liking",
    "lot",
    "lots",
    "love",
    "loved",
    "loves",
    "loving",
    "made",
    "make",
    "makes",
    "making",
    "me",
    "mine",
    "more",
    "most",
    "much",
    "my",
    "myself",
    "named",
    "nice",
    "now",
    "of",
    "oh",
    "ok",
    "okay",
    "on",
    "one's",
    "only",
    "or",
    "our",
    "ours",
    "ourselves",
    "passionate",
    "pretty",
    "quite",
    "rather",
    "really",
    "so",
    "some",
    "something",
    "sort",
    "still",
    "stuff",
    "super",
    "sure",
    "that",
    "that's",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "they're",
    "thing",
    "things",
    "think",
    "thinking",
    "this",
    "those",
    "thrilled",
    "through",
    "time",
    "times",
    "to",
    "too",
    "totally",
    "truly",
    "us",
    "usually",
    "very",
    "want",
    "wanted",
    "wants",
    "was",
    "way",
    "we",
    "we're",
    "we've",
    "well",
    "were",
    "what",
    "when",
    "which",
    "while",
    "who",
    "whom",
    "with",
    "wonderful",
    "would",
    "wow",
    "yeah",
    "yes",
    "you",
    "you're",
    "your",
    "yours",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filler_is_sorted() {
        assert!(FILLER.windows(2).all(|w| w[0] < w[1]), "FILLER must stay sorted for binary_search");
    }

    #[test]
    fn the_same_template_with_another_fact_differs() {
        for (a, b) in [
            (
                "My code word number 7 is quokka: I collect red and blue stickers from Peru.",
                "My code word number 8 is lemur: I collect green and blue stickers from Chile.",
            ),
            ("My code word is XQ-17.", "My code word is XQ-18."),
            ("I have two kids.", "I have three kids."),
            ("My brother lives in Bergen.", "My sister lives in Bergen."),
            ("I like jazz.", "I don't like jazz."),
            ("I love hiking.", "I hate hiking."),
            ("Caroline: I love painting.", "Melanie: I love painting."),
            ("I prefer green tea.", "I prefer black tea."),
        ] {
            assert!(different_facts(a, b), "{a} / {b}");
        }
    }

    #[test]
    fn paraphrases_and_added_detail_agree() {
        for (a, b) in [
            ("I really love hiking.", "I enjoy hiking a lot."),
            ("I have 2 kids.", "I have two kids."),
            ("I live in Paris.", "I live in Paris with my wife."),
            ("I collect stickers.", "I'm collecting stickers."),
            ("Caroline: I went to a support group.", "I went to a support group."),
            ("No, I prefer tea.", "I prefer tea."),
            (
                "Caroline: Lately, I've been looking into counseling and mental health as a career.",
                "Caroline: I'm still looking into counseling and mental health jobs.",
            ),
        ] {
            assert!(!different_facts(a, b), "{a} / {b}");
        }
    }
}
