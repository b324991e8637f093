//! The `rules` extraction engine: an offline, deterministic way to turn one
//! conversation event into candidate memories without calling a model.
//!
//! It exists so that memsy works with no LLM configured (and so tests have a
//! stable extractor): the pipeline is sentence split → clause split → filter
//! (fillers, questions, chit-chat) → classify by lexical patterns → dress the
//! statement up as a [`Candidate`] (title, third-person summary, tags,
//! entities, confidence). Every decision is a table lookup or a substring
//! test over lowercase, space-padded text, so the same event always yields
//! the same candidates, in order, and no input can make it panic. Precision
//! is preferred over recall: when unsure whether something is a memory (an
//! assistant's remark, a one-off request, a tool dump) it is skipped, because
//! a wrong long-term memory costs more than a missed one.

mod lexicon;
mod split;
mod text;
mod when;

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate};
use memsy_proto::Event;

use lexicon::*;
use text::{capitalise, decapitalise, norm, norm_words, third_person, tidy_sentence, truncate_words, Voice};

/// One candidate memory extracted from an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The atomic statement, as a clean sentence.
    pub text: String,
    /// A short label (≤ 60 characters).
    pub title: String,
    /// One sentence, in the third person for user statements.
    pub summary: String,
    /// fact, preference, decision, norm, event, procedure, plan, goal.
    pub memory_type: String,
    /// semantic, episodic, procedural.
    pub memory_kind: String,
    /// Lowercase keywords: the type first, then topics, then salient words.
    pub tags: Vec<String>,
    /// (name, type) with type one of person, place, organization, product,
    /// technology, pet, date, other.
    pub entities: Vec<(String, String)>,
    /// 0..1.
    pub confidence: f32,
}

/// The rules engine. Its limits bound the work done per event, so a huge
/// message costs no more than a large one.
#[derive(Debug, Clone)]
pub struct RulesEngine {
    /// At most this many candidates per event.
    max_candidates: usize,
    /// Only this many bytes of content are looked at.
    max_input_bytes: usize,
    /// Longer "sentences" are run-ons or pasted data, not atomic statements.
    max_sentence_chars: usize,
    /// Longer tool results are dumps, not statements.
    max_tool_chars: usize,
}

impl Default for RulesEngine {
    fn default() -> Self {
        Self::new()
    }
}

/// Who produced the content; it decides how strict the filters are and how
/// much the result is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    User,
    Assistant,
    Tool,
    App,
    /// An unknown kind: handled like a user message, trusted a little less.
    Other,
}

impl Source {
    fn of(kind: &str) -> Self {
        match kind {
            "user_message" => Source::User,
            "assistant_message" => Source::Assistant,
            "tool_result" => Source::Tool,
            "app_event" => Source::App,
            _ => Source::Other,
        }
    }

    fn is_user_like(self) -> bool {
        matches!(self, Source::User | Source::Other)
    }
}

/// What the analysis of one statement found, before it is dressed up.
struct Analysis {
    text: String,
    n: String,
    words: Vec<String>,
    memory_type: &'static str,
    imperative: bool,
    hedged: bool,
    source: Source,
    today: Option<NaiveDate>,
}

impl RulesEngine {
    pub fn new() -> Self {
        RulesEngine { max_candidates: 20, max_input_bytes: 128 * 1024, max_sentence_chars: 600, max_tool_chars: 300 }
    }

    /// Candidate memories for one event, in order. Empty when there is
    /// nothing to remember.
    pub fn extract(&self, event: &Event) -> Vec<Candidate> {
        let source = Source::of(&event.kind);
        let content = strip_code_fences(cap_bytes(&event.content, self.max_input_bytes));
        let trimmed = content.trim();
        if trimmed.is_empty() {
            return Vec::new();
        }
        if source == Source::Tool && !is_short_tool_statement(trimmed, self.max_tool_chars) {
            return Vec::new();
        }
        // Relative dates ("tomorrow") are resolved against the event time so
        // the memory still means something next month.
        let today = DateTime::parse_from_rfc3339(event.ts.trim()).ok().map(|t| t.date_naive());
        // A transcript line ("Caroline: I went to …") names who speaks: the
        // label is taken off before splitting, so that it does not stick to
        // the first sentence only, and every memory of the line says whose
        // it is (see `attribute`). Tool results and app events are not
        // spoken: their "Error: …" or "Status: …" is a field name.
        let (speaker, body) = match source {
            Source::Tool | Source::App => (None, trimmed),
            _ => transcript_speaker(trimmed),
        };

        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for sentence in split::sentences(body) {
            // Run-ons are pasted data; "Here is my config:" introduces what
            // follows and states nothing itself.
            if sentence.chars().count() > self.max_sentence_chars || sentence.ends_with(':') {
                continue;
            }
            for clause in split::clauses(&sentence) {
                let Some(a) = analyse(&clause, source, today) else {
                    continue;
                };
                if !seen.insert(a.text.to_lowercase()) {
                    continue; // the same statement twice in one message
                }
                let mut candidate = build(&a);
                if let Some(speaker) = speaker {
                    attribute(&mut candidate, speaker);
                }
                out.push(candidate);
                if out.len() >= self.max_candidates {
                    return out;
                }
            }
        }
        out
    }
}

/// Labels in front of a colon that introduce a note rather than name a
/// speaker ("Reminder: call the vet").
const NOT_SPEAKERS: &[&str] = &[
    "answer",
    "error",
    "fwd",
    "fyi",
    "important",
    "info",
    "note",
    "ps",
    "q",
    "question",
    "re",
    "reminder",
    "summary",
    "tip",
    "todo",
    "update",
    "warning",
];

/// The speaker of a transcript line and what they said: `Some("Caroline")`
/// for "Caroline: I went to …" (one to three capitalised words before the
/// colon), None and the whole text otherwise.
fn transcript_speaker(text: &str) -> (Option<&str>, &str) {
    let Some((label, said)) = memsy_core::model::split_speaker_label(text) else {
        return (None, text);
    };
    let label = label.trim_end_matches(':').trim();
    let is_name = label.split_whitespace().all(|w| w.chars().next().is_some_and(char::is_uppercase))
        && !is_in(NOT_SPEAKERS, &label.to_lowercase());
    if is_name && !said.trim().is_empty() {
        (Some(label), said.trim_start())
    } else {
        (None, text)
    }
}

/// Makes a candidate from a transcript line say whose it is: the text keeps
/// the speaker's label ("Caroline: I went to a support group.") and the
/// summary names them where it would say "the user". Without this, a
/// conversation's memories are anonymous and only the line's first one,
/// usually a greeting, would carry the name its questions ask about.
fn attribute(c: &mut Candidate, speaker: &str) {
    c.text = format!("{speaker}: {}", c.text);
    c.summary = c.summary.replace("The user", speaker).replace("the user", speaker);
    if !c.entities.iter().any(|(name, _)| name == speaker) {
        c.entities.push((speaker.to_string(), "person".to_string()));
    }
}

/// The first `max` bytes of `s`, cut on a character boundary.
fn cap_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Drops fenced code blocks: code is not a statement about anyone, and its
/// punctuation would confuse the sentence splitter. An unclosed fence drops
/// the rest of the text.
fn strip_code_fences(s: &str) -> String {
    s.split("```").step_by(2).collect::<Vec<_>>().join("\n")
}

/// Tool output is kept only when it reads like one short statement, not a
/// dump (structured data, many lines, long text).
fn is_short_tool_statement(s: &str, max_chars: usize) -> bool {
    s.chars().count() <= max_chars
        && !s.starts_with(['{', '[', '<'])
        && s.lines().filter(|l| !l.trim().is_empty()).count() <= 3
}

/// Strips a leading phrase from `list` (case-insensitive, whole words) once.
fn strip_prefix_phrase<'s>(s: &'s str, list: &[&str]) -> Option<(&'s str, &'static str)> {
    let lower: Vec<char> = s.chars().flat_map(char::to_lowercase).collect();
    // Only simple one-to-one lowercase mappings make char counts comparable.
    if lower.len() != s.chars().count() {
        return None;
    }
    for p in list {
        let pc: Vec<char> = p.chars().collect();
        if lower.len() >= pc.len()
            && lower[..pc.len()] == pc[..]
            && lower.get(pc.len()).is_none_or(|c| !c.is_alphanumeric() && *c != '\'')
        {
            let byte = s.char_indices().nth(pc.len()).map_or(s.len(), |(i, _)| i);
            let rest = s[byte..].trim_start_matches(|c: char| {
                c.is_whitespace() || matches!(c, ',' | '!' | '.' | '—' | '–' | '-' | ':' | ';')
            });
            return Some((rest, lexicon_static(p)));
        }
    }
    None
}

/// `&str` items of the lexicon lists are `'static`; this just says so.
fn lexicon_static(p: &str) -> &'static str {
    REMEMBER_PREFIXES.iter().chain(ACK_PREFIXES).find(|x| **x == p).copied().unwrap_or("")
}

/// Removes acknowledgements and "please remember" openers. Returns the rest
/// and whether an explicit "remember" request was seen (which makes a
/// question-shaped statement worth keeping).
fn strip_openers(s: &str) -> (String, bool) {
    let mut cur = s.trim().to_string();
    let mut remember = false;
    for _ in 0..4 {
        if let Some((rest, _)) = strip_prefix_phrase(&cur, ACK_PREFIXES) {
            cur = rest.to_string();
            continue;
        }
        if let Some((rest, p)) = strip_prefix_phrase(&cur, REMEMBER_PREFIXES) {
            remember |= p.contains("remember") || p.contains("note");
            cur = rest.to_string();
            continue;
        }
        break;
    }
    (cur, remember)
}

fn has_any(n: &str, list: &[&str]) -> bool {
    list.iter().any(|p| n.contains(p))
}

/// The normalised text with adverbs removed, so "I really like" and
/// "I always prefer" match the plain preference patterns.
fn match_form(words: &[String]) -> String {
    let kept: Vec<&str> = words.iter().map(String::as_str).filter(|w| !is_in(ADVERBS, w)).collect();
    format!(" {} ", kept.join(" "))
}

fn is_question_shaped(words: &[String]) -> bool {
    let (Some(w0), Some(w1)) = (words.first(), words.get(1)) else {
        return false;
    };
    (is_in(WH_WORDS, w0) && (is_in(AUX, w1) || w1 == "to" && w0 != "how"))
        || (is_in(AUX, w0)
            && (is_in(SUBJECTS, w1) || matches!(w1.as_str(), "there" | "it" | "anyone" | "this" | "that")))
}

/// True when the statement opens with a base verb: an instruction.
fn imperative_verb(words: &[String]) -> Option<&str> {
    let w0 = words.first()?.as_str();
    let w1 = words.get(1).map(String::as_str).unwrap_or("");
    // "Text messages are…", "Order matters": the next word is a verb, so
    // the first one was a noun.
    if is_in(VERBS, w1) && w1 != "me" {
        return None;
    }
    (is_in(PLAN_VERBS, w0) || is_in(PROC_VERBS, w0)).then_some(w0)
}

/// The text without inline code spans, so "`npm i -g foo`" is not read as
/// a first-person "i".
fn prose(text: &str) -> String {
    text.split('`').step_by(2).collect::<Vec<_>>().join(" ")
}

fn is_first_person(words: &[String]) -> bool {
    words.iter().any(|w| matches!(w.as_str(), "i" | "my" | "me" | "mine" | "myself" | "i'm" | "i've" | "i'd" | "i'll"))
}

fn is_collective(words: &[String]) -> bool {
    words
        .iter()
        .any(|w| matches!(w.as_str(), "we" | "our" | "us" | "we're" | "we've" | "we'll" | "we'd" | "let's" | "ours"))
}

/// Past-tense happening: the first word after the subject is a past form.
fn past_tense_after_subject(words: &[String]) -> bool {
    let subjectish = |w: &str| {
        is_in(SUBJECTS, w) || is_in(ADVERBS, w) || matches!(w, "user" | "the" | "my" | "our" | "they" | "he" | "she")
    };
    let first_subject = words.first().is_some_and(|w| subjectish(w));
    if !first_subject {
        return false;
    }
    let verb = words.iter().take(5).find(|w| !subjectish(w));
    verb.is_some_and(|v| text::is_past_tense(v) && v != "used")
}

/// Does the statement contain a verb at all? "Dark mode." and "Pizza with
/// extra cheese." (answers out of context) do not, and are skipped.
fn has_verb(words: &[String]) -> bool {
    words.iter().enumerate().any(|(i, w)| {
        is_in(VERBS, w)
            || text::is_past_tense(w)
            || ["'m", "'re", "'ve", "'ll", "'d"].iter().any(|s| w.ends_with(s))
            || matches!(w.as_str(), "he's" | "she's" | "it's" | "that's" | "there's" | "who's")
            || (matches!(w.as_str(), "i" | "we" | "they" | "you" | "user") && i + 1 < words.len())
            || looks_like_s_verb(words, i)
    })
}

/// A third-person "-s" verb after a noun ("The flight departs", "Company
/// policy requires"): the word ends in a single "s" and follows a word that
/// is not a function word, so "cats and dogs" does not count.
fn looks_like_s_verb(words: &[String], i: usize) -> bool {
    let w = words[i].as_str();
    i >= 1
        && words.len() >= 4
        && w.chars().count() > 3
        && w.ends_with('s')
        && !w.ends_with("ss")
        && !w.ends_with("'s")
        && !w.ends_with("ous")
        && !is_in(STOPWORDS, &words[i - 1])
        && !is_in(DETERMINERS, &words[i - 1])
}

/// Assistant openers that are conversation management, not content.
const ASSISTANT_CHATTER: &[&str] = &[
    " let me ",
    " i can ",
    " i'll ",
    " i'd be ",
    " here's ",
    " here is ",
    " happy to ",
    " glad ",
    " sorry ",
    " i hope ",
    " feel free ",
    " you're welcome ",
    " great question ",
    " i understand ",
    " i see ",
    " i'm ",
    " i am ",
    " i will ",
    " would you ",
    " do you ",
    " if you ",
    " hope ",
];

fn classify(n: &str, m: &str, words: &[String], source: Source, raw: &str) -> Option<&'static str> {
    let w0 = words.first().map(String::as_str).unwrap_or("");
    let first_singular = is_first_person(&norm_words(&prose(raw)));
    let future = has_any(n, FUTURE_TIME);
    let lower_raw = raw.to_lowercase();

    if has_any(n, DECISION) || has_any(m, DECISION) {
        return Some("decision");
    }
    if has_any(m, PREFERENCE) {
        return Some("preference");
    }
    // Structural procedure cues; a first-person singular statement ("I know
    // how to cook", "my first car") is about the person, not a how-to.
    let step_opening = matches!(w0, "first" | "then" | "next" | "finally" | "afterwards" | "step")
        || lower_raw.contains("step 1")
        || lower_raw.contains("step one");
    let to_do_x = w0 == "to" && raw.contains(',');
    let run_code =
        raw.contains('`') && words.iter().any(|w| matches!(w.as_str(), "run" | "execute" | "type" | "use" | "install"));
    if !first_singular && (step_opening || to_do_x || run_code || has_any(n, PROCEDURE)) {
        return Some("procedure");
    }
    if has_any(n, NORM_STRONG) || (has_any(n, NORM_WEAK) && !future) {
        return Some("norm");
    }
    if w0 == "let's" || w0 == "lets" {
        let plan = future || words.get(1).is_some_and(|w| is_in(PLAN_VERBS, w));
        return Some(if plan { "plan" } else { "decision" });
    }
    if future {
        return Some("plan");
    }
    if has_any(n, PAST_TIME) {
        return Some("event");
    }
    if has_any(n, FUTURE_INTENT) {
        return Some("plan");
    }
    if has_any(n, GOAL) {
        return Some("goal");
    }
    if let Some(verb) = imperative_verb(words) {
        if is_in(PLAN_VERBS, verb) {
            return Some("plan");
        }
        // A user's one-off instruction ("open the file") is a task, not a
        // memory; an assistant's, or one naming a command, is a procedure.
        return (source == Source::Assistant || raw.contains('`')).then_some("procedure");
    }
    if past_tense_after_subject(words) {
        return Some("event");
    }
    if has_any(n, PLAN_NOUNS) || words.iter().any(|w| is_in(DATE_WORDS, w) && w != "weekend") {
        return Some("plan");
    }
    Some("fact")
}

/// Decides whether one clause is a memory and of which type.
fn analyse(clause: &str, source: Source, today: Option<NaiveDate>) -> Option<Analysis> {
    let (rest, remember) = strip_openers(clause);
    let terminal = clause.chars().last().unwrap_or('.');
    let text = tidy_sentence(&rest, terminal);
    if text.is_empty() {
        return None;
    }
    let n = norm(&text);
    let words = norm_words(&text);
    if words.len() < 2 || words.iter().all(|w| is_in(FILLER_WORDS, w)) {
        return None;
    }
    // "Dark mode it is." — a confirmation, not a statement.
    if n.ends_with(" it is ") && words.len() <= 6 {
        return None;
    }
    if !remember && (text.ends_with('?') || is_question_shaped(&words)) {
        return None;
    }
    // "Always answer in English", "Never push to main", "Don't use tabs":
    // rule-shaped instructions whose verb is not in any list.
    let rule_opening =
        matches!(words[0].as_str(), "always" | "never" | "don't") || (words[0] == "do" && words[1] == "not");
    let imperative = imperative_verb(&words).is_some() || rule_opening;
    if !imperative && !has_verb(&words) {
        return None;
    }
    if is_empty_reaction(&text) {
        return None;
    }
    let prose_words = norm_words(&prose(&text));
    let first_person = is_first_person(&prose_words) || is_collective(&prose_words);
    // Very short: two words only count as a statement when they are a
    // first-person one ("I'm vegan") or an instruction ("Buy milk").
    if words.len() < 3 && !(first_person || imperative) {
        return None;
    }
    if source == Source::Assistant && (words.len() < 4 || has_any(&n, ASSISTANT_CHATTER)) {
        return None;
    }
    let m = match_form(&words);
    let memory_type = classify(&n, &m, &words, source, &text)?;
    // Assistants are trusted only for decisions and procedures: everything
    // else they say is either chit-chat or an echo of the user.
    if source == Source::Assistant && !matches!(memory_type, "decision" | "procedure") {
        return None;
    }
    let hedged = has_any(&n, HEDGES);
    Some(Analysis { text, n, words, memory_type, imperative, hedged, source, today })
}

/// "I love it.", "That's so true!", "Glad you agree": a reaction to
/// something said before, whose object is only a pronoun. Nothing in it
/// can be remembered on its own, and as a memory it matches any question
/// about its speaker.
fn is_empty_reaction(text: &str) -> bool {
    // A transcript's "Name:" label is not part of what was said, nor is the
    // name of the person spoken to.
    let said = without_vocatives(memsy_core::model::without_speaker_label(text));
    let words = norm_words(&said);
    let mut points_back = false;
    for word in &words {
        // "that's" → "that", "i'm" → "i".
        let w = word.split('\'').next().unwrap_or(word);
        if matches!(w, "it" | "that" | "this" | "them" | "those" | "so") {
            points_back = true;
            continue;
        }
        if w.is_empty() || is_in(STOPWORDS, w) || is_in(FILLER_WORDS, w) || is_in(SUBJECTS, w) || is_in(AUX, w) {
            continue;
        }
        if !is_in(REACTION_WORDS, w) {
            return false;
        }
    }
    !words.is_empty() && (points_back || words.len() <= 3)
}

/// `text` without the names it addresses: "Wow, that's cool, Caroline!" →
/// "Wow, that's cool,", "Yeah Mel, let's go" → "Yeah let's go". A name
/// counts as addressed when it follows a comma, or ends the opening word pair
/// with one; a name elsewhere ("I love Paris") is part of the statement.
fn without_vocatives(text: &str) -> String {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let is_name = |tok: &str| {
        let core = tok.trim_matches(|c: char| !c.is_alphanumeric());
        core.chars().next().is_some_and(char::is_uppercase) && core != "I" && !core.starts_with("I'")
    };
    let kept: Vec<&str> = tokens
        .iter()
        .enumerate()
        .filter(|&(i, tok)| {
            let after_comma = i > 0 && tokens[i - 1].ends_with(',');
            let opening = i == 1 && tok.ends_with(',');
            !(i > 0 && is_name(tok) && (after_comma || opening))
        })
        .map(|(_, tok)| *tok)
        .collect();
    kept.join(" ")
}

fn memory_kind(memory_type: &str) -> &'static str {
    match memory_type {
        "procedure" => "procedural",
        "event" | "plan" => "episodic",
        _ => "semantic",
    }
}

fn build(a: &Analysis) -> Candidate {
    let entities = entities(&a.text, &a.words, &a.n, a.today);
    Candidate {
        title: title(a),
        summary: summary(a),
        memory_type: a.memory_type.to_string(),
        memory_kind: memory_kind(a.memory_type).to_string(),
        tags: tags(a),
        entities,
        confidence: confidence(a),
        // When it happened, not just "last week": the memory outlives the week.
        text: match a.today {
            Some(today) => when::annotate(&a.text, today).0,
            None => a.text.clone(),
        },
    }
}

const HEDGE_OPENERS: &[&str] =
    &["i think that", "i think", "i guess", "i believe", "i suppose", "maybe", "perhaps", "probably", "possibly"];

fn strip_hedge_opener(s: &str) -> String {
    let lower = s.to_lowercase();
    for h in HEDGE_OPENERS {
        if lower.starts_with(h) && lower[h.len()..].starts_with([' ', ',']) {
            // `get`: lowercasing may change byte lengths of non-ASCII text.
            if let Some(rest) = s.get(h.len()..) {
                return capitalise(rest.trim_start_matches([' ', ',']));
            }
        }
    }
    s.to_string()
}

fn title(a: &Analysis) -> String {
    let base = a.text.trim_end_matches(['.', '!', '?']).trim();
    let base = strip_hedge_opener(base);
    let t = if a.source.is_user_like() && !a.imperative {
        let lower = base.to_lowercase();
        // `get`: lowercasing may change byte lengths of non-ASCII text.
        let copula = lower
            .strip_prefix("i am ")
            .or_else(|| lower.strip_prefix("i'm "))
            .and_then(|r| base.len().checked_sub(r.len()))
            .and_then(|at| base.get(at..));
        match copula {
            // "Is vegan" reads badly: name the subject for the copula.
            Some(rest) => {
                // third_person capitalises; keep the original case ("a
                // doctor" stays lowercase, "Sam" stays a name).
                let tp = third_person(rest, Voice::Title);
                let lower_first = rest.chars().next().is_some_and(char::is_lowercase);
                format!("User is {}", if lower_first { decapitalise(&tp) } else { tp })
            }
            None => third_person(&base, Voice::Title),
        }
    } else if let Some(rest) = base.strip_prefix("Remind me to ") {
        format!("Reminder to {rest}")
    } else {
        capitalise(&base)
    };
    truncate_words(&t, 60)
}

fn summary(a: &Analysis) -> String {
    let s = if a.source.is_user_like() {
        if a.imperative && a.memory_type == "plan" {
            let body = a.text.trim_end_matches(['.', '!', '?']);
            let lower = body.to_lowercase();
            let rest = lower
                .strip_prefix("remind me ")
                .and_then(|r| body.len().checked_sub(r.len()))
                .and_then(|at| body.get(at..));
            let s = if let Some(rest) = rest {
                let rest = rest.trim_start_matches("to ").trim_start_matches("that ").trim_start_matches("about ");
                format!(
                    "The user wants a reminder to {}.",
                    decapitalise(third_person(rest, Voice::User).trim_end_matches('.'))
                )
            } else {
                format!("The user plans to {}.", decapitalise(&third_person(body, Voice::User)))
            };
            s.replace("reminder to To ", "reminder to ")
        } else {
            third_person(&a.text, Voice::User)
        }
    } else {
        a.text.clone()
    };
    match a.today {
        Some(today) => when::annotate(&s, today).0,
        None => s,
    }
}

fn is_tag_noise(w: &str) -> bool {
    w.chars().count() < 3
        || !w.chars().any(char::is_alphabetic)
        || is_in(STOPWORDS, w)
        || is_in(FILLER_WORDS, w)
        || is_in(DATE_WORDS, w)
        || is_in(PLAN_VERBS, w)
        || is_in(PROC_VERBS, w)
        || is_in(VERBS, w)
        || is_in(ADVERBS, w)
        || text::is_past_tense(w)
        || looks_like_date_or_time(w)
}

fn tags(a: &Analysis) -> Vec<String> {
    let mut tags = vec![a.memory_type.to_string()];
    for (topic, keywords) in TOPICS {
        if keywords.iter().any(|k| a.n.contains(&format!(" {k} "))) {
            tags.push((*topic).to_string());
        }
    }
    for w in &a.words {
        let w = w.strip_suffix("'s").unwrap_or(w).trim_matches('\'');
        if !is_tag_noise(w) {
            tags.push(w.to_string());
        }
    }
    let mut seen = HashSet::new();
    tags.retain(|t| seen.insert(t.clone()));
    tags.truncate(8);
    tags
}

fn confidence(a: &Analysis) -> f32 {
    let first_person = is_first_person(&a.words) || is_collective(&a.words);
    let explicit = matches!(a.memory_type, "preference" | "decision");
    let base: f32 = match a.source {
        Source::User | Source::Other if first_person && explicit => 0.9,
        Source::User | Source::Other if first_person => 0.85,
        Source::User | Source::Other if a.imperative => 0.8,
        Source::User | Source::Other => 0.7,
        // App events come from the product itself: reliable.
        Source::App => 0.9,
        Source::Tool | Source::Assistant => 0.6,
    };
    let base = if a.source == Source::Other { base - 0.1 } else { base };
    let c = if a.hedged { base * 0.65 } else { base };
    // Two decimals: the value is a coarse judgement, not a measurement.
    ((c * 100.0).round() / 100.0).clamp(0.0, 1.0)
}

/// Words after which a capitalised sentence-initial word is taken as a name
/// ("Rex is my dog", "Alice works at Acme").
const NAME_VERBS: &[&str] = &[
    "is", "was", "has", "lives", "works", "likes", "loves", "said", "says", "will", "can", "runs", "wants", "needs",
    "prefers", "'s", "and", "told", "hates", "makes", "does",
];

/// Common words that may open a multi-word proper name ("New York",
/// "San Francisco", "The Hague") when a capitalised word follows.
const NAME_STARTERS: &[&str] = &[
    "new", "san", "santa", "los", "las", "saint", "north", "south", "east", "west", "great", "united", "la", "le",
    "el", "upper", "lower", "little", "old", "port", "mount", "lake", "fort", "cape", "hong", "costa", "puerto", "rio",
    "the", "big", "royal", "central",
];

/// Capitalised small words that are never entities on their own.
fn is_common_word(lower: &str) -> bool {
    if is_in(TECHNOLOGIES, lower) || is_in(PRODUCTS, lower) {
        return false;
    }
    is_in(STOPWORDS, lower)
        || is_in(FILLER_WORDS, lower)
        || is_in(VERBS, lower)
        || is_in(IRREGULAR_PAST, lower)
        || is_in(PLAN_VERBS, lower)
        || is_in(PROC_VERBS, lower)
        || is_in(ADVERBS, lower)
        || is_in(WH_WORDS, lower)
        || is_in(AUX, lower)
        || is_in(SUBJECTS, lower)
        || is_in(DETERMINERS, lower)
        || matches!(lower, "i" | "a" | "let's" | "dear" | "note" | "also" | "yesterday" | "tomorrow" | "today")
        || TOPICS.iter().any(|(_, kws)| is_in(kws, lower))
}

/// Core of a token: without surrounding punctuation and possessive "'s".
fn token_core(tok: &str) -> (String, bool, bool) {
    let has_code = tok.contains('`');
    let start = tok.find(|c: char| c.is_alphanumeric());
    let Some(start) = start else {
        return (String::new(), false, has_code);
    };
    let end = tok.char_indices().rev().find(|(_, c)| c.is_alphanumeric()).map_or(tok.len(), |(i, c)| i + c.len_utf8());
    let core = &tok[start..end.max(start)];
    let core = core.strip_suffix("'s").or_else(|| core.strip_suffix("’s")).unwrap_or(core);
    let punct_after = end < tok.len();
    (core.to_string(), punct_after, has_code)
}

fn is_capitalised(word: &str) -> bool {
    let mut it = word.chars();
    match it.next() {
        Some(c) if c.is_uppercase() => word.chars().count() > 1,
        _ => false,
    }
}

fn entities(text: &str, words: &[String], n: &str, today: Option<NaiveDate>) -> Vec<(String, String)> {
    let toks: Vec<&str> = text.split_whitespace().collect();
    let cores: Vec<(String, bool, bool)> = toks.iter().map(|t| token_core(t)).collect();
    let mut out: Vec<(String, String)> = Vec::new();
    let push = |out: &mut Vec<(String, String)>, name: String, ty: &str| {
        if !name.is_empty() && !out.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            out.push((name, ty.to_string()));
        }
    };

    let mut i = 0;
    while i < toks.len() {
        let (core, punct_after, code) = &cores[i];
        let lower = core.to_lowercase();
        let starts_name = is_in(NAME_STARTERS, &lower)
            && !*punct_after
            && cores.get(i + 1).is_some_and(|(c, _, _)| is_capitalised(c) && !is_common_word(&c.to_lowercase()));
        if *code
            || !is_capitalised(core)
            || is_in(DATE_WORDS, &lower)
            || (is_common_word(&lower) && !is_in(HONORIFICS, &lower) && !starts_name)
        {
            i += 1;
            continue;
        }
        // Group a run of capitalised words into one name ("New York",
        // "Dr. Smith"); punctuation ends the run except after an honorific.
        let mut parts = vec![core.clone()];
        let mut j = i;
        let mut brk = *punct_after && !is_in(HONORIFICS, &lower);
        while !brk && j + 1 < toks.len() {
            let (next, next_punct, next_code) = &cores[j + 1];
            let next_lower = next.to_lowercase();
            if *next_code || !is_capitalised(next) || is_in(DATE_WORDS, &next_lower) || is_in(SUBJECTS, &next_lower) {
                break;
            }
            if is_in(HONORIFICS, &parts[parts.len() - 1].to_lowercase()) && toks[j].ends_with('.') {
                let last = parts.len() - 1;
                parts[last].push('.');
            }
            parts.push(next.clone());
            j += 1;
            brk = *next_punct;
        }
        if parts.len() == 1 && is_in(HONORIFICS, &lower) {
            i += 1; // a lone "Dr" is no one
            continue;
        }
        let name = parts.join(" ");
        let next_word = toks.get(j + 1).map(|t| norm_words(t).into_iter().next().unwrap_or_default());
        // Sentence-initial capitals are grammar, not names, unless the word
        // is known or reads like a subject followed by a verb.
        if i == 0 && parts.len() == 1 {
            let known = is_in(TECHNOLOGIES, &lower) || is_in(PRODUCTS, &lower);
            let named = next_word.as_deref().is_some_and(|w| is_in(NAME_VERBS, w)) || toks.len() == 1;
            if !(known || named) || lower.ends_with("ing") {
                i = j + 1;
                continue;
            }
        }
        let prev: Vec<String> = toks[..i].iter().flat_map(|t| norm_words(t)).collect();
        let after: Vec<String> = toks[(j + 1).min(toks.len())..].iter().take(3).flat_map(|t| norm_words(t)).collect();
        let ty = entity_type(&name, &prev, &after, words, n);
        push(&mut out, name, ty);
        i = j + 1;
    }

    // Dates: multi-word phrases first so "next week" wins over "week".
    let mut covered: HashSet<String> = HashSet::new();
    for p in DATE_PHRASES {
        if n.contains(&format!(" {p} ")) {
            push(&mut out, (*p).to_string(), "date");
            covered.extend(p.split(' ').map(str::to_string));
        }
    }
    for w in words {
        if is_in(DATE_WORDS, w) && !covered.contains(w) {
            let shown = if matches!(w.as_str(), "today" | "tonight" | "tomorrow" | "yesterday" | "weekend") {
                w.clone()
            } else {
                capitalise(w)
            };
            push(&mut out, shown, "date");
        } else if looks_like_date_or_time(w) {
            push(&mut out, w.clone(), "date");
        }
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    if let Some(d) = today.and_then(|t| when::find(&words, t)).and_then(|f| f.span.first_day()) {
        push(&mut out, d.format("%Y-%m-%d").to_string(), "date");
    }
    out
}

/// "2025-03-01", "3pm", "10am", "12/05".
fn looks_like_date_or_time(w: &str) -> bool {
    let b = w.as_bytes();
    let iso = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() });
    let clock = (w.ends_with("am") || w.ends_with("pm"))
        && w.len() > 2
        && w.len() <= 6
        && w[..w.len() - 2].chars().all(|c| c.is_ascii_digit() || c == ':')
        && w.chars().next().is_some_and(|c| c.is_ascii_digit());
    iso || clock
}

/// Guesses an entity type from the name itself and the words around it.
fn entity_type(name: &str, prev: &[String], after: &[String], words: &[String], n: &str) -> &'static str {
    let lower = name.to_lowercase();
    let squashed: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
    if is_in(TECHNOLOGIES, &lower) || is_in(TECHNOLOGIES, &squashed) {
        return "technology";
    }
    if is_in(PRODUCTS, &lower) || is_in(PRODUCTS, &squashed) {
        return "product";
    }
    // "British English": a language, not the place "in" would suggest.
    if lower.split(' ').any(|w| {
        matches!(w, "english" | "french" | "spanish" | "german" | "italian" | "japanese" | "chinese" | "portuguese")
    }) {
        return "other";
    }
    let first = lower.split([' ', '.']).next().unwrap_or("");
    if is_in(HONORIFICS, first) && name.contains(' ') {
        return "person";
    }
    let has_pet = words.iter().any(|w| is_in(PET_WORDS, w));
    let family = |w: &str| {
        is_in(RELATIONS, w)
            && !matches!(
                w,
                "name"
                    | "named"
                    | "with"
                    | "met"
                    | "meet"
                    | "call"
                    | "email"
                    | "told"
                    | "tell"
                    | "ask"
                    | "asked"
                    | "text"
                    | "thank"
                    | "visit"
                    | "visiting"
            )
    };
    let p1 = prev.last().map(String::as_str).unwrap_or("");
    let p2 = prev.len().checked_sub(2).and_then(|i| prev.get(i)).map(String::as_str).unwrap_or("");

    // "Rex is my dog", "Anna is my sister".
    if after.first().is_some_and(|w| w == "is") && after.get(1).is_some_and(|w| w == "my" || w == "our") {
        if let Some(what) = after.get(2) {
            if is_in(PET_WORDS, what) {
                return "pet";
            }
            if family(what) {
                return "person";
            }
        }
    }
    // "name is X", "named X", "called X".
    if (p1 == "is" && (p2 == "name" || p2 == "name's")) || p1 == "named" || p1 == "called" || p1 == "name's" {
        if has_pet {
            return "pet";
        }
        if n.contains(" my name ") || words.iter().any(|w| family(w)) {
            return "person";
        }
        return "other";
    }
    if is_in(PET_WORDS, p1) {
        return "pet"; // "my dog Rex"
    }
    if family(p1) {
        return "person"; // "my sister Anna"
    }
    match p1 {
        "in" | "near" | "around" | "visiting" | "visited" | "across" | "outside" | "inside" => "place",
        "to" => {
            let speech = matches!(
                p2,
                "talk"
                    | "talked"
                    | "spoke"
                    | "speak"
                    | "wrote"
                    | "write"
                    | "said"
                    | "say"
                    | "sent"
                    | "send"
                    | "reply"
                    | "replied"
                    | "listen"
                    | "listened"
                    | "married"
                    | "engaged"
            );
            if speech && !words.iter().any(|w| is_in(TRAVEL_CONTEXT, w)) {
                "person"
            } else {
                "place"
            }
        }
        "from" => {
            if words.iter().any(|w| {
                matches!(
                    w.as_str(),
                    "i'm" | "am" | "come" | "comes" | "moved" | "originally" | "born" | "flew" | "flying"
                )
            }) {
                "place"
            } else {
                "other"
            }
        }
        "at" | "joined" | "join" | "joining" => "organization",
        // "I'm Sam", "I am Sam": a capitalised word right after is a name.
        "i'm" | "am" if prev.len() <= 2 => "person",
        "for" if words.iter().any(|w| is_in(WORK_CONTEXT, w)) => "organization",
        "with" | "met" | "meet" | "call" | "email" | "told" | "tell" | "ask" | "asked" | "text" | "thank"
        | "thanked" | "and"
            if !has_pet || p1 != "and" =>
        {
            "person"
        }
        _ => {
            if after
                .first()
                .is_some_and(|w| matches!(w.as_str(), "said" | "says" | "told" | "thinks" | "wants" | "asked"))
            {
                "person"
            } else {
                "other"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, content: &str) -> Event {
        Event {
            event_id: "e1".into(),
            org_id: "o1".into(),
            actor_id: "u1".into(),
            session_id: "s1".into(),
            kind: kind.into(),
            content: content.into(),
            ts: "2025-03-01T10:00:00Z".into(),
            ..Default::default()
        }
    }

    fn user(content: &str) -> Vec<Candidate> {
        RulesEngine::new().extract(&ev("user_message", content))
    }

    fn one(content: &str) -> Candidate {
        let out = user(content);
        assert_eq!(out.len(), 1, "{content:?} → {out:#?}");
        out.into_iter().next().unwrap()
    }

    fn has_entity(c: &Candidate, name: &str, ty: &str) -> bool {
        c.entities.iter().any(|(n, t)| n == name && t == ty)
    }

    // ---- the required cases -------------------------------------------

    #[test]
    fn reactions_with_nothing_to_remember_are_skipped() {
        for said in [
            "I love it.",
            "Melanie: I love it!",
            "That's so true!",
            "Glad you agree.",
            "Caroline: Thanks, that's awesome!",
        ] {
            assert!(user(said).is_empty(), "{said}");
        }
        for kept in
            ["I love hiking in the Alps.", "Melanie: I love painting sunsets.", "I live in Paris.", "I'm vegan."]
        {
            assert!(!user(kept).is_empty(), "{kept}");
        }
    }

    #[test]
    fn every_memory_of_a_transcript_line_names_its_speaker() {
        let out = user("Caroline: Hey Mel! I went to a support group yesterday. My friends are my rocks.");
        let texts: Vec<&str> = out.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            ["Caroline: I went to a support group yesterday (28 February 2025).", "Caroline: My friends are my rocks."]
        );
        assert_eq!(out[0].summary, "Caroline went to a support group yesterday (28 February 2025).");
        assert!(has_entity(&out[1], "Caroline", "person"), "{:?}", out[1].entities);
        // A note's label is not a speaker.
        assert_eq!(
            one("Reminder: I need to call the vet tomorrow.").text,
            "Reminder: I need to call the vet tomorrow (2 March 2025)."
        );
        assert_eq!(transcript_speaker("Note: buy milk"), (None, "Note: buy milk"));
        assert_eq!(transcript_speaker("Mary Ann: I moved."), (Some("Mary Ann"), "I moved."));
    }

    #[test]
    fn names_of_whoever_is_spoken_to_do_not_make_a_reaction_a_statement() {
        for said in ["Melanie: Wow, that's cool, Caroline!", "Sounds great, Mel!", "Caroline: Yeah, it's tough."] {
            assert!(user(said).is_empty(), "{said} → {:#?}", user(said));
        }
        assert_eq!(without_vocatives("Yeah Mel, let's go"), "Yeah let's go");
        assert!(!user("I love Paris!").is_empty());
    }

    #[test]
    fn dog_name_is_a_pet_fact() {
        let c = one("My dog's name is Rex.");
        assert_eq!(c.memory_type, "fact");
        assert_eq!(c.memory_kind, "semantic");
        assert!(has_entity(&c, "Rex", "pet"), "{:?}", c.entities);
        assert!(c.tags.contains(&"pets".to_string()), "{:?}", c.tags);
        assert_eq!(c.title, "Dog's name is Rex");
        assert_eq!(c.summary, "The user's dog's name is Rex.");
        assert!(c.confidence >= 0.8 && c.confidence <= 0.9);
    }

    #[test]
    fn vet_visit_tomorrow_is_an_episodic_plan() {
        let c = one("Book a vet visit for tomorrow.");
        assert!(c.memory_type == "plan" || c.memory_type == "event");
        assert_eq!(c.memory_kind, "episodic");
        assert!(has_entity(&c, "tomorrow", "date"));
        assert!(has_entity(&c, "2025-03-02", "date"), "{:?}", c.entities);
        assert!(c.summary.contains("tomorrow (2 March 2025)"), "{}", c.summary);
        assert_eq!(c.text, "Book a vet visit for tomorrow (2 March 2025).");
        assert!(c.tags.contains(&"pets".to_string()));
    }

    #[test]
    fn dark_mode_is_a_preference() {
        let c = one("I prefer dark mode in all apps.");
        assert_eq!(c.memory_type, "preference");
        assert_eq!(c.memory_kind, "semantic");
        assert_eq!(c.title, "Prefers dark mode in all apps");
        assert_eq!(c.summary, "The user prefers dark mode in all apps.");
        assert!(c.tags.contains(&"ui".to_string()));
        assert!(c.confidence >= 0.85);
    }

    #[test]
    fn assistant_acknowledgement_is_nothing() {
        let out = RulesEngine::new().extract(&ev("assistant_message", "Got it — dark mode it is."));
        assert!(out.is_empty(), "{out:#?}");
    }

    #[test]
    fn ok_thanks_is_nothing() {
        assert!(user("ok thanks").is_empty());
    }

    #[test]
    fn compound_with_two_clauses_splits() {
        let out = user("I live in Paris and I work at Acme.");
        assert_eq!(out.len(), 2, "{out:#?}");
        assert_eq!(out[0].text, "I live in Paris.");
        assert_eq!(out[1].text, "I work at Acme.");
        assert!(has_entity(&out[0], "Paris", "place"));
        assert!(has_entity(&out[1], "Acme", "organization"));
        assert_eq!(out[0].title, "Lives in Paris");
        assert_eq!(out[1].summary, "The user works at Acme.");
    }

    #[test]
    fn compound_object_does_not_split() {
        let c = one("I like cats and dogs.");
        assert_eq!(c.text, "I like cats and dogs.");
        assert_eq!(c.memory_type, "preference");
        assert!(c.tags.contains(&"pets".to_string()));
    }

    #[test]
    fn huge_input_does_not_panic_and_is_capped() {
        let engine = RulesEngine::new();
        let mut big = String::new();
        let mut i = 0;
        while big.len() < 64 * 1024 {
            big.push_str(&format!("I live in city number {i} and I work at Company{i}. "));
            i += 1;
        }
        let out = engine.extract(&ev("user_message", &big));
        assert!(!out.is_empty() && out.len() <= 20, "{}", out.len());
        // One 64 KiB run-on word and multi-byte soup.
        assert!(engine.extract(&ev("user_message", &"a".repeat(64 * 1024))).len() <= 20);
        let soup = "é🐶日本語. ".repeat(8 * 1024);
        assert!(engine.extract(&ev("user_message", &soup)).len() <= 20);
    }

    #[test]
    fn app_event_upgrade_is_kept() {
        let out = RulesEngine::new().extract(&ev("app_event", "User upgraded to pro plan."));
        assert_eq!(out.len(), 1, "{out:#?}");
        let c = &out[0];
        assert!(c.memory_type == "fact" || c.memory_type == "event");
        assert!(c.tags.contains(&"billing".to_string()));
        assert!(c.confidence >= 0.8);
    }

    // ---- filtering ------------------------------------------------------

    #[test]
    fn fillers_are_skipped() {
        for s in [
            "hi!",
            "sure",
            "thank you so much",
            "sounds good",
            "👍🎉",
            "...",
            "?!",
            "ok",
            "k",
            "",
            "   ",
            "Hello there!",
            "Got it — dark mode it is.",
            "lol",
            "yes please",
            "Great, thanks!",
        ] {
            assert!(user(s).is_empty(), "{s:?} → {:#?}", user(s));
        }
    }

    #[test]
    fn questions_are_skipped_unless_they_ask_to_remember() {
        assert!(user("What is the weather like in Paris?").is_empty());
        assert!(user("do you know a good vet").is_empty());
        assert!(user("Can you book a table for Friday?").is_empty());
        let c = one("Can you remember that my cat is called Mochi?");
        assert!(has_entity(&c, "Mochi", "pet"), "{c:#?}");
    }

    #[test]
    fn acknowledgement_prefix_is_stripped() {
        let c = one("Ok, I live in Berlin.");
        assert_eq!(c.text, "I live in Berlin.");
        assert!(has_entity(&c, "Berlin", "place"));
        let out = user("Hi! My name is Sam. Thanks!");
        assert_eq!(out.len(), 1);
        assert!(has_entity(&out[0], "Sam", "person"), "{:?}", out[0].entities);
    }

    #[test]
    fn verbless_fragments_and_one_off_requests_are_skipped() {
        assert!(user("Dark mode.").is_empty());
        assert!(user("Pizza with extra cheese.").is_empty());
        assert!(user("Open the file and fix the typo in line 3.").is_empty());
        assert!(user("Write me a haiku about autumn.").is_empty());
    }

    #[test]
    fn assistant_is_kept_only_for_decisions_and_procedures() {
        let e = RulesEngine::new();
        let a = |s: &str| e.extract(&ev("assistant_message", s));
        assert!(a("Sure, I can help with that!").is_empty());
        assert!(a("That's a great choice, dark mode is easier on the eyes.").is_empty());
        assert!(a("Your dog Rex sounds lovely.").is_empty());
        let out = a("Sure! To reset your password, open Settings and click Forgot password.");
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!(out[0].memory_type, "procedure");
        assert_eq!(out[0].memory_kind, "procedural");
        assert!(out[0].confidence <= 0.65);
        let out = a("We decided to use Postgres for the event store.");
        assert_eq!(out[0].memory_type, "decision");
        assert!(has_entity(&out[0], "Postgres", "technology"));
    }

    #[test]
    fn tool_results_only_when_short_statements() {
        let e = RulesEngine::new();
        let out = e.extract(&ev("tool_result", "The flight to Tokyo departs at 9am on Friday."));
        assert_eq!(out.len(), 1, "{out:#?}");
        assert!(out[0].confidence <= 0.65);
        let dump = "Row data value with numbers 1234 and text. ".repeat(20);
        assert!(e.extract(&ev("tool_result", &dump)).is_empty());
        assert!(e.extract(&ev("tool_result", "{\"status\": \"ok\", \"items\": []}")).is_empty());
    }

    // ---- classification -------------------------------------------------

    #[test]
    fn types_by_pattern() {
        let cases = [
            ("I really love hiking in the mountains.", "preference"),
            ("My favourite editor is Neovim.", "preference"),
            ("I'd rather take the train than fly.", "preference"),
            ("I don't like cilantro.", "preference"),
            ("We decided to use Rust for the backend.", "decision"),
            ("Let's go with the blue logo.", "decision"),
            ("We will use Qdrant for vectors.", "decision"),
            ("We never deploy on Fridays.", "norm"),
            ("All pull requests must have two reviews.", "norm"),
            ("Company policy requires badges on site.", "norm"),
            ("To deploy, run `make release` and then tag the commit.", "procedure"),
            ("Run `cargo fmt` before every push.", "procedure"),
            ("I have a meeting with Dana next week.", "plan"),
            ("Schedule a call with the landlord.", "plan"),
            ("I went to the dentist yesterday.", "event"),
            ("I moved to Lisbon in 2019.", "event"),
            ("I want to learn Japanese this year.", "goal"),
            ("I live in Paris.", "fact"),
            ("I'm allergic to peanuts.", "fact"),
        ];
        for (s, ty) in cases {
            let c = one(s);
            assert_eq!(c.memory_type, ty, "{s:?} → {c:#?}");
            let kind = match ty {
                "procedure" => "procedural",
                "event" | "plan" => "episodic",
                _ => "semantic",
            };
            assert_eq!(c.memory_kind, kind, "{s:?}");
        }
    }

    #[test]
    fn hedged_statements_have_lower_confidence() {
        let sure = one("I live in Oslo.");
        let hedged = one("I think I might move to Oslo.");
        assert!(sure.confidence >= 0.8);
        assert!(hedged.confidence >= 0.45 && hedged.confidence <= 0.6, "{}", hedged.confidence);
        let c = one("Maybe we should use Redis for caching.");
        assert!(c.confidence <= 0.6);
        assert!(c.title.starts_with("We should use Redis"), "{}", c.title);
    }

    // ---- text shaping ---------------------------------------------------

    #[test]
    fn sentences_are_split_and_cleaned() {
        let out = user("i like green tea. e.g. sencha is great... My sister Anna lives in Rome; she's a doctor");
        let texts: Vec<&str> = out.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            vec!["I like green tea.", "E.g. sencha is great.", "My sister Anna lives in Rome.", "She's a doctor."]
        );
        assert!(has_entity(&out[2], "Anna", "person"));
        assert!(has_entity(&out[2], "Rome", "place"));
    }

    #[test]
    fn titles_are_short_and_tags_bounded() {
        let long = "I prefer extremely verbose and detailed explanations with many worked examples, references, diagrams and exercises.";
        let c = one(long);
        assert!(c.title.chars().count() <= 60, "{}", c.title);
        assert!(c.tags.len() <= 8 && !c.tags.is_empty());
        assert_eq!(c.tags[0], "preference");
        let mut seen = HashSet::new();
        assert!(c.tags.iter().all(|t| seen.insert(t) && *t == t.to_lowercase()));
        assert!(!c.tags.iter().any(|t| is_in(STOPWORDS, t)));
    }

    #[test]
    fn entity_types_from_context() {
        let c = one("I switched from Python to Rust at Initech.");
        assert!(has_entity(&c, "Python", "technology"));
        assert!(has_entity(&c, "Rust", "technology"));
        assert!(has_entity(&c, "Initech", "organization"));
        assert!(c.tags.contains(&"programming".to_string()));
        let c = one("I had lunch with Dr. Maria Lopez on Monday.");
        assert!(has_entity(&c, "Dr. Maria Lopez", "person"), "{:?}", c.entities);
        assert!(has_entity(&c, "Monday", "date"));
        let c = one("I moved to New York last year.");
        assert!(has_entity(&c, "New York", "place"), "{:?}", c.entities);
        assert!(has_entity(&c, "last year", "date"));
    }

    #[test]
    fn code_blocks_and_odd_input_never_panic() {
        let e = RulesEngine::new();
        for s in [
            "```rust\nfn main() { println!(\"I like cats.\"); }\n```",
            "```unclosed fence. I live in Paris.",
            "`",
            "'s",
            "Dr.",
            "I.",
            "... ... ...",
            "\u{0}\u{feff}\u{200b}",
            "İstanbul'da yaşıyorum ve İzmir'de çalışıyorum.",
            "Ich wohne in München. ÄÖÜ ß ﬁ",
            "I love 🍣 and I hate 🥦.",
            "2025-03-01 3pm",
        ] {
            for kind in ["user_message", "assistant_message", "tool_result", "app_event", "weird"] {
                let _ = e.extract(&ev(kind, s));
            }
        }
        // Code is not content: only the prose around it survives.
        let out = user("Here is my config:\n```\nlet x = 1; I like cats and I hate dogs.\n```\nI use Vim every day.");
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!(out[0].text, "I use Vim every day.");
    }

    #[test]
    fn pseudo_random_input_never_panics() {
        // A fixed LCG over a pool of awkward fragments: reproducible, no deps.
        let pool = [
            "I ",
            "my ",
            "Dr. ",
            "e.g. ",
            "3.5",
            "...",
            "…",
            "?",
            "!",
            ";",
            " and ",
            " but ",
            ", and ",
            "`",
            "```",
            "\n",
            "- ",
            "1. ",
            "İ",
            "ß",
            "🐶",
            "日本",
            "’s",
            "'",
            "Remind me ",
            "Rex",
            "tomorrow",
            " is ",
            "name",
            "to ",
            "at ",
            "K",
            "\u{0}",
            ":",
            "—",
            "I'm ",
            "the user ",
        ];
        let e = RulesEngine::new();
        let mut x: u64 = 42;
        for _ in 0..300 {
            let mut s = String::new();
            for _ in 0..(x % 40) {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                s.push_str(pool[(x >> 33) as usize % pool.len()]);
            }
            for kind in ["user_message", "assistant_message", "tool_result", "app_event"] {
                let out = e.extract(&ev(kind, &s));
                assert!(out.len() <= 20);
                for c in out {
                    assert!(c.title.chars().count() <= 60 && c.tags.len() <= 8);
                    assert!((0.0..=1.0).contains(&c.confidence));
                }
            }
        }
    }

    #[test]
    fn names_rules_and_compound_subjects() {
        let c = one("I'm Sam.");
        assert_eq!(c.title, "User is Sam");
        assert!(has_entity(&c, "Sam", "person"));
        let c = one("My wife Maria and I are going to Lisbon next month.");
        assert_eq!(c.summary, "The user's wife Maria and the user are going to Lisbon next month (April 2025).");
        assert_eq!(c.memory_type, "plan");
        assert!(has_entity(&c, "Maria", "person") && has_entity(&c, "Lisbon", "place"));
        let c = one("Please always answer in British English.");
        assert_eq!((c.text.as_str(), c.memory_type.as_str()), ("Always answer in British English.", "norm"));
        assert!(!has_entity(&c, "British English", "place"));
        let out = RulesEngine::new()
            .extract(&ev("assistant_message", "First, install the CLI with `npm i -g foo`. Then run `foo login`."));
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|c| c.memory_type == "procedure"));
    }

    #[test]
    fn deterministic() {
        let s = "I live in Paris and I work at Acme. My dog's name is Rex! Book a vet visit for tomorrow.";
        let a = user(s);
        let b = user(s);
        assert_eq!(a, b);
        assert_eq!(a.len(), 4);
    }

    #[test]
    fn duplicates_within_an_event_are_dropped() {
        assert_eq!(user("I live in Paris. I live in Paris.").len(), 1);
    }

    #[test]
    fn unknown_kind_is_treated_like_user_but_trusted_less() {
        let c = RulesEngine::new().extract(&ev("note", "I live in Paris."));
        assert_eq!(c.len(), 1);
        assert!(c[0].confidence < one("I live in Paris.").confidence);
    }
}
