//! A memory's text as words, for the fact check and the slots: the
//! transcript speaker label split off, curly apostrophes straightened, each
//! word with its case (names are told by it) and lowercased.

use memsy_core::model::split_speaker_label;

/// One word of a memory's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    /// As written, without surrounding punctuation.
    pub orig: String,
    pub lower: String,
    /// First word of a sentence (its capital says nothing).
    pub initial: bool,
    /// Followed by a comma ("No, …" is an interjection, not a negation).
    pub comma: bool,
    /// Written with a possessive "'s" ("Bob's").
    pub possessive: bool,
}

impl Word {
    /// Capitalised where a sentence does not start: a name ("Olaf",
    /// "Bergen", "May"), not a word that happens to open the sentence.
    pub fn is_name(&self) -> bool {
        !self.initial
            && self.orig.chars().next().is_some_and(char::is_uppercase)
            && self.lower != "i"
            && !self.lower.starts_with("i'")
    }
}

/// The speaker of a transcript line ("Caroline: …" → "caroline"), lowercased,
/// and the words of what was said.
pub(crate) fn split(text: &str) -> (Option<String>, Vec<Word>) {
    let text = text.trim().replace(['\u{2019}', '\u{2018}'], "'");
    let (speaker, said) = match split_speaker_label(&text) {
        // Only a name is a speaker ("Caroline", "Mary Ann"), as the extractor
        // labels lines; "note: …" is content.
        Some((label, said)) if label.split_whitespace().all(|w| w.chars().next().is_some_and(char::is_uppercase)) => {
            (Some(label.split_whitespace().collect::<Vec<_>>().join("_").to_lowercase()), said)
        }
        _ => (None, text.as_str()),
    };
    (speaker, words(said))
}

/// People of the user's life, as "my …" names them.
pub(crate) const RELATIVES: &[&str] = &[
    "aunt",
    "boss",
    "boyfriend",
    "brother",
    "children",
    "colleague",
    "cousin",
    "dad",
    "daughter",
    "family",
    "father",
    "fiance",
    "fiancee",
    "friend",
    "girlfriend",
    "grandfather",
    "grandma",
    "grandmother",
    "grandpa",
    "grandparents",
    "husband",
    "kids",
    "manager",
    "mom",
    "mother",
    "mum",
    "neighbor",
    "neighbour",
    "nephew",
    "niece",
    "parents",
    "partner",
    "roommate",
    "sister",
    "son",
    "uncle",
    "wife",
];

fn words(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut initial = true;
    for raw in text.split_whitespace() {
        // "red-and-blue" is three words; "X7-QZ9" or "v1.2" is one code.
        let has_digit = raw.chars().any(|c| c.is_ascii_digit());
        let parts: Vec<&str> = if has_digit { vec![raw] } else { raw.split(['-', '/']).collect() };
        let ends_sentence = raw.ends_with(['.', '!', '?', ':', ';']);
        let comma = raw.ends_with(',');
        for part in parts {
            let w = part.trim_matches(|c: char| !c.is_alphanumeric());
            // A possessive or a plural's apostrophe is not part of the name.
            let possessive = w.ends_with("'s");
            let w = w.strip_suffix("'s").unwrap_or(w);
            if w.is_empty() {
                continue;
            }
            // Thousands separators: "1,000" and "1000" are one number.
            let w = if has_digit { w.replace(',', "") } else { w.to_string() };
            out.push(Word { lower: w.to_lowercase(), orig: w, initial, comma, possessive });
            initial = false;
        }
        if ends_sentence {
            initial = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speaker_case_and_sentence_starts() {
        let (speaker, ws) = split("Mary Ann: My brother’s dog Rex lives in Bergen. Codes: X7-QZ9, 1,000 red-blue");
        assert_eq!(speaker.as_deref(), Some("mary_ann"));
        let lower: Vec<&str> = ws.iter().map(|w| w.lower.as_str()).collect();
        assert_eq!(
            lower,
            ["my", "brother", "dog", "rex", "lives", "in", "bergen", "codes", "x7-qz9", "1000", "red", "blue"]
        );
        let names: Vec<&str> = ws.iter().filter(|w| w.is_name()).map(|w| w.orig.as_str()).collect();
        assert_eq!(names, ["Rex", "Bergen"]);
        assert_eq!(split("note: buy milk").0, None);
    }
}
