//! Property values read exactly, from the text as written.
//!
//! DESIGN: "publish exactly what the source means, or withhold the event". calcard's parser is
//! lenient in ways that change meaning (`T1300Z` and `T18300` read as times, `UNTL=` dropped
//! so a bounded series becomes endless, `COUNT=-1` read as 1, `\"` read as `"`), so dates,
//! times, durations, recurrence rules and TEXT are read here by their RFC 5545 grammar; a
//! value that does not follow it is `None` and its event is withheld. Surrounding blanks are
//! not meaning and are ignored.

use crate::recurrence::{normalize_rule, parse_rule};
use chrono::{NaiveDate, NaiveDateTime, TimeDelta};

/// A DATE or DATE-TIME value as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Time {
    Date(NaiveDate),
    /// A date-time; `true` when written in UTC (`Z`).
    DateTime(NaiveDateTime, bool),
}

/// `20260501` or `20260501T100000` or `20260501T100000Z`; nothing else.
pub(super) fn time(value: &str) -> Option<Time> {
    let v = value.trim();
    if !v.is_ascii() {
        return None;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match v.len() {
        8 if digits(v) => NaiveDate::parse_from_str(v, "%Y%m%d").ok().map(Time::Date),
        15 | 16 if v.as_bytes()[8] == b'T' && digits(&v[..8]) && digits(&v[9..15]) => {
            let utc = match &v[15..] {
                "" => false,
                "Z" => true,
                _ => return None,
            };
            NaiveDateTime::parse_from_str(&v[..15], "%Y%m%dT%H%M%S")
                .ok()
                .map(|t| Time::DateTime(t, utc))
        }
        _ => None,
    }
}

/// A DURATION (`P1W`, `P2DT3H`, `PT90M`, `+PT1H`); a negative one is `None` (no event lasts
/// less than nothing).
pub(super) fn duration(value: &str) -> Option<TimeDelta> {
    let v = value.trim();
    let v = v.strip_prefix('+').unwrap_or(v);
    let body = v.strip_prefix('P')?;
    if body.is_empty() {
        return None;
    }
    let (date, time) = match body.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (body, None),
    };
    let mut seconds: i64 = 0;
    let mut take = |part: &str, units: &[(char, i64)]| -> Option<()> {
        let mut number = String::new();
        let mut allowed = units.iter();
        for c in part.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            // Units in order, each once.
            let (_, factor) = allowed.by_ref().find(|(u, _)| *u == c)?;
            if number.is_empty() {
                return None;
            }
            let n: i64 = number.parse().ok()?;
            seconds = seconds.checked_add(n.checked_mul(*factor)?)?;
            number.clear();
        }
        number.is_empty().then_some(())
    };
    if body.contains('W') {
        // `P3W` stands alone.
        if time.is_some() {
            return None;
        }
        take(date, &[('W', 7 * 86_400)])?;
    } else {
        if !date.is_empty() {
            take(date, &[('D', 86_400)])?;
        }
        if let Some(t) = time {
            take(t, &[('H', 3600), ('M', 60), ('S', 1)])?;
        }
    }
    TimeDelta::try_seconds(seconds)
}

/// The parts RFC 5545 §3.3.10 defines for a RECUR value.
const RULE_PARTS: &[&str] = &[
    "FREQ",
    "UNTIL",
    "COUNT",
    "INTERVAL",
    "BYSECOND",
    "BYMINUTE",
    "BYHOUR",
    "BYDAY",
    "BYMONTHDAY",
    "BYYEARDAY",
    "BYWEEKNO",
    "BYMONTH",
    "BYSETPOS",
    "WKST",
];

/// Why an RRULE (or EXRULE) cannot be read exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BadRule;

/// An RRULE or EXRULE value in calsync's canonical spelling; `Ok(None)` for an empty value
/// (`RRULE:` alone is no rule). Refused: an unknown or repeated part (`UNTL=`, RFC 7529's
/// `RSCALE`, whose calendar calsync cannot compute), no FREQ, COUNT with UNTIL, a COUNT or
/// INTERVAL that is not a positive integer, an UNTIL that is not a date or date-time, a BYxxx
/// list that is not one, and anything calcard's parser does not take as it is written.
pub(super) fn rule(value: &str) -> Result<Option<String>, BadRule> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    // `BYDAY=MO, TU` is not the grammar; how a reader takes it is anyone's guess.
    if v.contains(char::is_whitespace) {
        return Err(BadRule);
    }
    let mut seen: Vec<String> = Vec::new();
    for part in v.split(';') {
        if part.trim().is_empty() {
            // A trailing `;` adds no meaning.
            continue;
        }
        let (key, val) = part.split_once('=').ok_or(BadRule)?;
        let key = key.trim().to_ascii_uppercase();
        let val = val.trim();
        if !RULE_PARTS.contains(&key.as_str()) || seen.contains(&key) || val.is_empty() {
            return Err(BadRule);
        }
        let positive = |s: &str| {
            s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u32>().is_ok_and(|n| n > 0)
        };
        let int_list = |s: &str| {
            s.split(',').all(|n| {
                let n = n.strip_prefix(['+', '-']).unwrap_or(n);
                !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
            })
        };
        let day = |s: &str| {
            ["MO", "TU", "WE", "TH", "FR", "SA", "SU"].contains(&s.to_ascii_uppercase().as_str())
        };
        let ok = match key.as_str() {
            "FREQ" => [
                "SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY",
            ]
            .contains(&val.to_ascii_uppercase().as_str()),
            "COUNT" | "INTERVAL" => positive(val),
            "UNTIL" => time(val).is_some(),
            "WKST" => day(val),
            "BYDAY" => val.split(',').all(|d| {
                let d = d.trim();
                let split = d.len().saturating_sub(2);
                let (n, w) = d.split_at(split);
                let n = n.strip_prefix(['+', '-']).unwrap_or(n);
                day(w) && n.bytes().all(|b| b.is_ascii_digit())
            }),
            _ => int_list(val),
        };
        if !ok {
            return Err(BadRule);
        }
        seen.push(key);
    }
    if !seen.iter().any(|k| k == "FREQ")
        || (seen.iter().any(|k| k == "COUNT") && seen.iter().any(|k| k == "UNTIL"))
    {
        return Err(BadRule);
    }
    let parsed = parse_rule(v).ok_or(BadRule)?;
    Ok(Some(normalize_rule(&parsed)))
}

/// TEXT unescaped (`\\ \; \, \n \N`); any other backslash is kept as written, so the text
/// round-trips exactly.
pub(super) fn text(value: &str) -> String {
    crate::vzone::unescape_text(value)
}

/// A TEXT list (CATEGORIES): split at commas that are not escaped, each item unescaped.
pub(super) fn text_list(value: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                current.push('\\');
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            ',' => items.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    items.push(current);
    items.iter().map(|i| text(i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_follow_the_grammar_exactly() {
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let t = |s| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap();
        let cases: &[(&str, Option<Time>)] = &[
            ("20261224", Some(Time::Date(d("2026-12-24")))),
            (
                "20261224T100000",
                Some(Time::DateTime(t("2026-12-24T10:00:00"), false)),
            ),
            (
                " 20261224T100000Z ",
                Some(Time::DateTime(t("2026-12-24T10:00:00"), true)),
            ),
            // libical's malformed DTEND, phpicalendar's five-digit time, and others.
            ("19970901T1300Z", None),
            ("20031114T18300", None),
            ("20261224T100000+0100", None),
            ("20270230", None),
            ("2026-12-24", None),
            ("-0011130T100000", None),
            ("20261224T250000", None),
            ("", None),
        ];
        for (value, want) in cases {
            assert_eq!(time(value), *want, "{value:?}");
        }
    }

    #[test]
    fn durations() {
        let cases: &[(&str, Option<i64>)] = &[
            ("PT1H30M", Some(5400)),
            ("P2D", Some(172_800)),
            ("P1W", Some(604_800)),
            ("+P1DT2H", Some(93_600)),
            ("PT86400S", Some(86_400)),
            ("P0D", Some(0)),
            ("-PT1H", None),
            ("P", None),
            ("PT", None),
            ("P1H", None),
            ("PT1M1H", None),
            ("P1W2D", None),
            ("1H", None),
        ];
        for (value, want) in cases {
            assert_eq!(duration(value).map(|d| d.num_seconds()), *want, "{value:?}");
        }
    }

    #[test]
    fn rules_are_read_exactly_or_refused() {
        let cases: &[(&str, Result<Option<&str>, BadRule>)] = &[
            (
                "FREQ=WEEKLY;BYDAY=MO,WE",
                Ok(Some("FREQ=WEEKLY;BYDAY=MO,WE")),
            ),
            ("freq=daily;count=3;", Ok(Some("FREQ=DAILY;COUNT=3"))),
            (
                "FREQ=MONTHLY;BYDAY=-1FR;UNTIL=20270101",
                Ok(Some("FREQ=MONTHLY;UNTIL=20270101;BYDAY=-1FR")),
            ),
            // An empty RRULE is no rule.
            ("", Ok(None)),
            ("  ", Ok(None)),
            // A typo is not dropped: the series would become endless.
            ("FREQ=DAILY;UNTL=20270101", Err(BadRule)),
            // COUNT beside UNTIL, a negative or zero COUNT: never "repaired".
            ("FREQ=DAILY;COUNT=-1;UNTIL=20270101", Err(BadRule)),
            ("FREQ=DAILY;COUNT=-1", Err(BadRule)),
            ("FREQ=DAILY;COUNT=0", Err(BadRule)),
            ("FREQ=DAILY;COUNT=5;UNTIL=20270101", Err(BadRule)),
            ("FREQ=DAILY;INTERVAL=0", Err(BadRule)),
            ("FREQ=DAILY;UNTIL=20270101T1300Z", Err(BadRule)),
            ("FREQ=SOMETIMES", Err(BadRule)),
            ("BYDAY=MO", Err(BadRule)),
            ("FREQ=DAILY;FREQ=WEEKLY", Err(BadRule)),
            ("FREQ=WEEKLY;BYDAY=XX", Err(BadRule)),
            ("RSCALE=HEBREW;FREQ=YEARLY", Err(BadRule)),
            ("FREQ=DAILY;COUNT", Err(BadRule)),
            ("FREQ=DAILY;BYDAY=MO, TU", Err(BadRule)),
        ];
        for (value, want) in cases {
            assert_eq!(
                rule(value),
                want.clone().map(|o| o.map(str::to_string)),
                "{value:?}"
            );
        }
    }

    #[test]
    fn text_round_trips_escapes_included() {
        let cases = [
            (r"Hall\, room 1\,", "Hall, room 1,"),
            (r"a\;b\\c\nd\Ne", "a;b\\c\nd\ne"),
            // Not an escape RFC 5545 knows: kept as written.
            (r#"\"MJ\" and C:\Temp"#, r#"\"MJ\" and C:\Temp"#),
            ("trailing\\", "trailing\\"),
        ];
        for (raw, want) in cases {
            assert_eq!(text(raw), want, "{raw:?}");
        }
        assert_eq!(
            text_list(r"Konzert,Schüler\,innen, Music ,a\;b"),
            vec!["Konzert", "Schüler,innen", " Music ", "a;b"]
        );
    }
}
