//! Relative time expressions ("yesterday", "last week", "two months ago",
//! "next Saturday") resolved against the day a statement was made, so that
//! an episodic memory still says when something happened a month later:
//! "I joined a gym last week" said on 16 June 2023 is kept as "… last week
//! (week of 5 June 2023)".

use chrono::{Datelike, Duration, Months, NaiveDate, Weekday};

/// What a relative expression refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Day(NaiveDate),
    /// The week starting on this Monday.
    Week(NaiveDate),
    /// The weekend starting on this Saturday.
    Weekend(NaiveDate),
    /// The month containing this day.
    Month(NaiveDate),
    Year(i32),
}

impl Span {
    /// How the span is written after the expression: "7 May 2023", "week of
    /// 1 May 2023", "May 2023", "2022". Month names rather than ISO dates,
    /// so that a question that names the date ("on May 3, 2023") shares its
    /// words.
    pub fn label(self) -> String {
        let day = |d: NaiveDate| d.format("%-d %B %Y").to_string();
        match self {
            Span::Day(d) => day(d),
            Span::Week(d) => format!("week of {}", day(d)),
            Span::Weekend(d) => format!("weekend of {}", day(d)),
            Span::Month(d) => d.format("%B %Y").to_string(),
            Span::Year(y) => y.to_string(),
        }
    }

    /// The day an entity of type "date" records: the span's first day.
    pub fn first_day(self) -> Option<NaiveDate> {
        match self {
            Span::Day(d) | Span::Week(d) | Span::Weekend(d) => Some(d),
            Span::Month(d) => d.with_day(1),
            Span::Year(y) => NaiveDate::from_ymd_opt(y, 1, 1),
        }
    }
}

/// A relative expression in a list of lowercase words: the words
/// `start..end` refer to `span`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub start: usize,
    pub end: usize,
    pub span: Span,
}

/// The first relative time expression in `words` (lowercase, punctuation
/// removed), resolved against `today`.
pub fn find(words: &[&str], today: NaiveDate) -> Option<Found> {
    (0..words.len()).find_map(|i| at(words, i, today).map(|(len, span)| Found { start: i, end: i + len, span }))
}

/// An expression starting at word `i`: its length in words and its span.
fn at(words: &[&str], i: usize, today: NaiveDate) -> Option<(usize, Span)> {
    let w = |k: usize| words.get(i + k).copied().unwrap_or("");
    let days = |n: i64| today.checked_add_signed(Duration::days(n));
    let one = |span: Option<Span>| span.map(|s| (1, s));
    let two = |span: Option<Span>| span.map(|s| (2, s));
    match (w(0), w(1)) {
        ("today" | "tonight", _) => one(Some(Span::Day(today))),
        ("tomorrow", _) => one(days(1).map(Span::Day)),
        ("yesterday", _) => one(days(-1).map(Span::Day)),
        ("this", "morning" | "afternoon" | "evening") => two(Some(Span::Day(today))),
        ("last", "night") => two(days(-1).map(Span::Day)),
        ("last" | "this" | "next", unit) => {
            let step = match w(0) {
                "last" => -1,
                "this" => 0,
                _ => 1,
            };
            two(relative_unit(unit, step, today))
        }
        _ => {
            // "two weeks ago", "a few days ago", "a couple of months ago".
            let (count, len) = count_words(&words[i..])?;
            if words.get(i + len + 1) != Some(&"ago") {
                return None;
            }
            Some((len + 2, ago(words[i + len], count, today)?))
        }
    }
}

/// "week", "month", "year", "weekend" or a weekday, `step` units from today
/// (−1 last, 0 this, +1 next).
fn relative_unit(unit: &str, step: i64, today: NaiveDate) -> Option<Span> {
    let monday = |d: NaiveDate| d - Duration::days(d.weekday().num_days_from_monday() as i64);
    match unit {
        "week" => Some(Span::Week(monday(today) + Duration::weeks(step))),
        // Last week's weekend for "last", this week's or a later one otherwise.
        "weekend" => Some(Span::Weekend(monday(today) + Duration::days(5) + Duration::weeks(step))),
        "month" => shift_months(today, step).map(Span::Month),
        "year" => Some(Span::Year(today.year() + step as i32)),
        _ => {
            let day = weekday(unit)?;
            let offset = (day.num_days_from_monday() as i64) - (today.weekday().num_days_from_monday() as i64);
            let d = match step {
                // The most recent such day before today.
                -1 => today + Duration::days(if offset < 0 { offset } else { offset - 7 }),
                // The next such day after today.
                1 => today + Duration::days(if offset > 0 { offset } else { offset + 7 }),
                // This week's.
                _ => today + Duration::days(offset),
            };
            Some(Span::Day(d))
        }
    }
}

fn shift_months(d: NaiveDate, step: i64) -> Option<NaiveDate> {
    let months = Months::new(step.unsigned_abs() as u32);
    if step < 0 {
        d.checked_sub_months(months)
    } else {
        d.checked_add_months(months)
    }
}

/// `unit`s (singular or plural) `count` ago.
fn ago(unit: &str, count: i64, today: NaiveDate) -> Option<Span> {
    match unit.trim_end_matches('s') {
        "day" => today.checked_sub_signed(Duration::days(count)).map(Span::Day),
        "week" => relative_unit("week", -count, today),
        "month" => shift_months(today, -count).map(Span::Month),
        "year" => Some(Span::Year(today.year() - count as i32)),
        _ => None,
    }
}

/// A small count at the start of `words`: its value and how many words it
/// took ("3", "two", "a", "a few", "a couple of").
fn count_words(words: &[&str]) -> Option<(i64, usize)> {
    let first = *words.first()?;
    if let Ok(n) = first.parse::<i64>() {
        return (1..=100).contains(&n).then_some((n, 1));
    }
    let n = match first {
        "a" | "an" | "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "few" | "several" => 3,
        _ => return None,
    };
    match (first, words.get(1).copied(), words.get(2).copied()) {
        ("a", Some("few"), _) => Some((3, 2)),
        ("a", Some("couple"), Some("of")) => Some((2, 3)),
        ("a", Some("couple"), _) => Some((2, 2)),
        _ => Some((n, 1)),
    }
}

fn weekday(word: &str) -> Option<Weekday> {
    Some(match word {
        "monday" => Weekday::Mon,
        "tuesday" => Weekday::Tue,
        "wednesday" => Weekday::Wed,
        "thursday" => Weekday::Thu,
        "friday" => Weekday::Fri,
        "saturday" => Weekday::Sat,
        "sunday" => Weekday::Sun,
        _ => return None,
    })
}

/// `text` with the resolved span written after its first relative time
/// expression: "I joined a gym last week." → "I joined a gym last week (week
/// of 5 June 2023)." Unchanged when there is none, or when the text already
/// carries a written-out span (a summary made from an annotated text).
pub fn annotate(text: &str, today: NaiveDate) -> (String, Option<Span>) {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let cores: Vec<String> = tokens
        .iter()
        .map(|t| t.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase().replace(['\u{2019}', '\u{2018}'], "'"))
        .collect();
    let words: Vec<&str> = cores.iter().map(String::as_str).collect();
    let Some(found) = find(&words, today) else {
        return (text.to_string(), None);
    };
    if tokens.get(found.end).is_some_and(|t| t.starts_with('(')) {
        return (text.to_string(), Some(found.span));
    }
    // The label goes after the last word of the expression, before its
    // trailing punctuation: "week!" → "week (…)!".
    let last = tokens[found.end - 1];
    let core_end = last.trim_end_matches(|c: char| !c.is_alphanumeric()).len();
    let (core, post) = last.split_at(core_end);
    let mut out: Vec<String> = tokens[..found.end - 1].iter().map(|t| t.to_string()).collect();
    out.push(format!("{core} ({}){post}", found.span.label()));
    out.extend(tokens[found.end..].iter().map(|t| t.to_string()));
    (out.join(" "), Some(found.span))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn annotated(text: &str) -> String {
        // A Friday.
        annotate(text, day("2023-06-16")).0
    }

    #[test]
    fn relative_expressions_get_their_dates() {
        assert_eq!(annotated("I went there yesterday."), "I went there yesterday (15 June 2023).");
        assert_eq!(annotated("We met last night!"), "We met last night (15 June 2023)!");
        assert_eq!(annotated("I joined a gym last week."), "I joined a gym last week (week of 5 June 2023).");
        assert_eq!(annotated("I'm going camping next month."), "I'm going camping next month (July 2023).");
        assert_eq!(annotated("I read it last year"), "I read it last year (2022)");
        assert_eq!(annotated("I ran a race last Saturday."), "I ran a race last Saturday (10 June 2023).");
        assert_eq!(annotated("See you next Monday."), "See you next Monday (19 June 2023).");
        assert_eq!(annotated("We went biking last weekend."), "We went biking last weekend (weekend of 10 June 2023).");
        assert_eq!(annotated("I'll bake this weekend."), "I'll bake this weekend (weekend of 17 June 2023).");
        assert_eq!(annotated("I moved two years ago."), "I moved two years ago (2021).");
        assert_eq!(annotated("I quit a few days ago."), "I quit a few days ago (13 June 2023).");
        assert_eq!(annotated("A couple of weeks ago I fell."), "A couple of weeks ago (week of 29 May 2023) I fell.");
        assert_eq!(annotated("Call me tomorrow"), "Call me tomorrow (17 June 2023)");
    }

    #[test]
    fn text_without_relative_time_is_unchanged() {
        for s in ["I live in Paris.", "This is the last one.", "I had a few drinks.", "Last of all, thanks.", ""] {
            assert_eq!(annotated(s), s);
        }
        // Already annotated: not twice.
        assert_eq!(annotated("I went there yesterday (15 June 2023)."), "I went there yesterday (15 June 2023).");
    }

    #[test]
    fn spans_start_on_their_first_day() {
        let today = day("2023-06-16");
        assert_eq!(Span::Month(today).first_day(), Some(day("2023-06-01")));
        assert_eq!(Span::Year(2022).first_day(), Some(day("2022-01-01")));
        assert_eq!(find(&["last", "week"], today).unwrap().span, Span::Week(day("2023-06-05")));
    }
}
