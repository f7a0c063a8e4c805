//! Recurrence: which instances a series has, and when it ends. Pure, no I/O, no clock.
//!
//! A series is DTSTART ∪ RRULE ∪ RDATE − EXDATE (RFC 5545 §3.8.5), DTSTART always its first
//! instance. RRULE arithmetic is calcard's (`ICalendar::expand_dates`, its port of rust-rrule);
//! this module owns what surrounds it: the series' frame (date, UTC, zone or floating), RDATE
//! and EXDATE, durations, the window, and leniency towards rules real feeds contain.
//!
//! Rules are expanded in wall-clock ("floating") time and only then placed in DTSTART's zone,
//! so a weekly 10:00 Europe/Berlin meeting stays at 10:00 local on both sides of a DST change,
//! and an instance keeps its start-to-end distance in wall-clock terms. A wall-clock time that
//! a DST gap skips stays as written; [`Moment::to_utc`] moves it forward as RFC 5545 says.
//!
//! Leniency (feeds get this wrong often enough that refusing would drop real events):
//! - `UNTIL` in another type or zone than DTSTART is converted into DTSTART's frame: a UTC
//!   `UNTIL` becomes the wall-clock time in DTSTART's zone; a floating `UNTIL` is read as
//!   wall-clock time in that zone; a DATE `UNTIL` includes the whole day; for an all-day series
//!   any `UNTIL` counts by its calendar date as written.
//! - `UNTIL` before DTSTART makes that rule contribute nothing: the series is DTSTART (and its
//!   RDATEs), rather than an error.
//! - A DTSTART that does not match its rule (an undefined set in RFC 5545) is kept as an
//!   instance; `COUNT` then counts only the instances the rule generates.
//!
//! An invalid rule is an error, never a panic, and expansion is bounded (see
//! [`MAX_EXPANSION`]).

use crate::model::{Moment, Recurrence};
use calcard::common::PartialDateTime;
use calcard::common::timezone::Tz as CalTz;
use calcard::icalendar::{
    ICalendar, ICalendarComponent, ICalendarComponentType, ICalendarEntry, ICalendarProperty,
    ICalendarRecurrenceRule, ICalendarValue, ICalendarWeekday,
};
use calcard::{Entry, Parser};
use chrono::{DateTime, Datelike, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Timelike, Utc};

/// The most rule occurrences computed for one rule, however many the window needs. A rule
/// that needs more to reach the window (a minutely rule from years ago) is refused with
/// [`RecurrenceError::TooDense`] instead of eating memory and time on every run.
pub const MAX_EXPANSION: usize = 1 << 18;

/// One instance of a series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// The instance's original start, in DTSTART's type and zone (what RECURRENCE-ID and
    /// EXDATE name it by).
    pub recurrence_id: Moment,
    pub start: Moment,
    /// Exclusive end, in DTEND's type and zone.
    pub end: Moment,
}

/// A series whose rules cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecurrenceError {
    /// The rule text does not parse, or calcard refuses it (a BYxxx value out of range, …).
    #[error("recurrence rule {index} is invalid: {reason}")]
    InvalidRule { index: usize, reason: String },
    /// Reaching the window would take more than [`MAX_EXPANSION`] occurrences.
    #[error("recurrence rule {index} needs more than {max} occurrences", max = MAX_EXPANSION)]
    TooDense { index: usize },
}

/// The instances of a series whose `[start, end)` overlaps `[from, to)`, in order, at most
/// `limit` of them. `start`/`end` are the master's DTSTART and effective end.
///
/// A zero-length instance overlaps when its start lies in `[from, to)`.
///
/// # Errors
/// [`RecurrenceError`] when a rule is invalid or too dense to expand up to `to`.
pub fn instances(
    start: &Moment,
    end: &Moment,
    rec: &Recurrence,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<Instance>, RecurrenceError> {
    // Expand a day past `to` in the series' own frame, so no zone offset hides an instance.
    let stop = add(frame_naive(start, to), TimeDelta::days(1));
    let starts = occurrence_starts(start, rec, Some(stop))?;
    let mut out = Vec::new();
    for (naive, period_end) in starts {
        if out.len() >= limit {
            break;
        }
        let s = in_frame(start, naive);
        let e = period_end.unwrap_or_else(|| instance_end(start, end, &s));
        let (su, eu) = (s.to_utc(), e.to_utc());
        let overlaps = if eu > su {
            su < to && eu > from
        } else {
            su >= from && su < to
        };
        if overlaps {
            out.push(Instance {
                recurrence_id: s.clone(),
                start: s,
                end: e,
            });
        }
    }
    Ok(out)
}

/// The end of the series' last instance, or `None` when a rule has neither COUNT nor UNTIL.
///
/// # Errors
/// [`RecurrenceError`] when a rule is invalid or has more than [`MAX_EXPANSION`] occurrences.
pub fn series_end(
    start: &Moment,
    end: &Moment,
    rec: &Recurrence,
) -> Result<Option<DateTime<Utc>>, RecurrenceError> {
    for (index, text) in rec.rules.iter().enumerate() {
        let rule = prepared_rule(index, text, start)?;
        if let Some(rule) = rule
            && rule.count.is_none()
            && rule.until.is_none()
        {
            return Ok(None);
        }
    }
    let starts = occurrence_starts(start, rec, None)?;
    let last = match starts.last() {
        Some((naive, Some(period_end))) => {
            let _ = naive;
            period_end.to_utc()
        }
        Some((naive, None)) => instance_end(start, end, &in_frame(start, *naive)).to_utc(),
        None => instance_end(start, end, start).to_utc(),
    };
    // A period may end after a later instance does.
    let periods = starts
        .iter()
        .filter_map(|(_, e)| e.as_ref().map(Moment::to_utc));
    Ok(Some(periods.fold(last, DateTime::max)))
}

/// Checks that every rule of a series parses and that calcard accepts it for this DTSTART,
/// without expanding it.
///
/// # Errors
/// [`RecurrenceError::InvalidRule`] naming the first bad rule.
pub fn validate(start: &Moment, rec: &Recurrence) -> Result<(), RecurrenceError> {
    for (index, text) in rec.rules.iter().chain(&rec.exrules).enumerate() {
        if let Some(rule) = prepared_rule(index, text, start)? {
            let expanded = rule_calendar(&rule, start.naive()).expand_dates(CalTz::Floating, 1);
            if let Some(error) = expanded.errors.first() {
                return Err(RecurrenceError::InvalidRule {
                    index,
                    reason: error.error.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// `moment` expressed in the type and zone of a series' DTSTART: what RECURRENCE-ID, RDATE
/// and EXDATE values are compared in. A date given for a timed series gets DTSTART's time of
/// day; a timed value given for an all-day series keeps its date as written; UTC and zoned
/// values are converted between zones; a floating value is read as wall-clock time.
pub fn in_series_form(moment: &Moment, dtstart: &Moment) -> Moment {
    let time_of_start = dtstart.naive().time();
    match dtstart {
        Moment::Date(_) => Moment::Date(moment.naive().date()),
        Moment::Utc(_) => Moment::Utc(match moment {
            Moment::Date(d) => d.and_time(time_of_start),
            Moment::Utc(t) | Moment::Floating(t) => *t,
            Moment::Zoned(..) | Moment::Defined(..) => moment.to_utc().naive_utc(),
        }),
        Moment::Zoned(_, tz) => Moment::Zoned(
            match moment {
                Moment::Date(d) => d.and_time(time_of_start),
                Moment::Floating(t) => *t,
                Moment::Zoned(t, other) if other == tz => *t,
                Moment::Utc(_) | Moment::Zoned(..) | Moment::Defined(..) => {
                    moment.to_utc().with_timezone(tz).naive_local()
                }
            },
            *tz,
        ),
        Moment::Defined(_, zone) => Moment::Defined(
            match moment {
                Moment::Date(d) => d.and_time(time_of_start),
                Moment::Floating(t) => *t,
                Moment::Defined(t, other) if other == zone => *t,
                Moment::Utc(_) | Moment::Zoned(..) | Moment::Defined(..) => {
                    zone.local(moment.to_utc())
                }
            },
            zone.clone(),
        ),
        Moment::Floating(_) => Moment::Floating(match moment {
            Moment::Date(d) => d.and_time(time_of_start),
            Moment::Utc(t) | Moment::Zoned(t, _) | Moment::Floating(t) | Moment::Defined(t, _) => {
                *t
            }
        }),
    }
}

/// Reads an RRULE value (with or without the `RRULE:` prefix) with calcard's parser. `None`
/// when it is not a rule calcard understands (no FREQ, a malformed part, a line break).
pub fn parse_rule(text: &str) -> Option<ICalendarRecurrenceRule> {
    let text = text.trim();
    let text = match text.get(..6) {
        Some(prefix) if prefix.eq_ignore_ascii_case("RRULE:") => &text[6..],
        _ => text,
    };
    if text.is_empty() || text.contains(['\r', '\n']) {
        return None;
    }
    let source = format!("BEGIN:VEVENT\r\nRRULE:{text}\r\nEND:VEVENT\r\n");
    let Entry::ICalendar(ical) = Parser::new(&source).entry() else {
        return None;
    };
    ical.components
        .first()?
        .entries
        .iter()
        .find(|e| e.name == ICalendarProperty::Rrule)
        .and_then(|e| match e.values.first() {
            Some(ICalendarValue::RecurrenceRule(rule)) => Some((**rule).clone()),
            _ => None,
        })
}

/// The canonical text of a rule, through calcard's writer: parts in a fixed order, BYxxx
/// lists sorted and without duplicates, defaults (`INTERVAL=1`, `WKST=MO`) left out, so that
/// equal rules print equally and an unchanged series hashes equally.
pub fn normalize_rule(rule: &ICalendarRecurrenceRule) -> String {
    let mut rule = rule.clone();
    if rule.interval == Some(1) {
        rule.interval = None;
    }
    if rule.wkst == Some(ICalendarWeekday::Monday) {
        rule.wkst = None;
    }
    fn tidy<T: Ord>(v: &mut Vec<T>) {
        v.sort();
        v.dedup();
    }
    tidy(&mut rule.bysecond);
    tidy(&mut rule.byminute);
    tidy(&mut rule.byhour);
    tidy(&mut rule.byday);
    tidy(&mut rule.bymonthday);
    tidy(&mut rule.byyearday);
    tidy(&mut rule.byweekno);
    tidy(&mut rule.bymonth);
    tidy(&mut rule.bysetpos);
    rule.to_string()
}

/// The wall-clock starts of all instances (DTSTART, rule occurrences up to `stop` when given,
/// RDATEs and RDATE periods; minus EXDATEs), sorted, in DTSTART's frame, each with its own
/// end when a period gave one. A period starting where another instance does wins (its end
/// is stated).
fn occurrence_starts(
    start: &Moment,
    rec: &Recurrence,
    stop: Option<NaiveDateTime>,
) -> Result<Vec<(NaiveDateTime, Option<Moment>)>, RecurrenceError> {
    let mut all: Vec<(NaiveDateTime, Option<Moment>)> = vec![(start.naive(), None)];
    for (index, text) in rec.rules.iter().enumerate() {
        if let Some(rule) = prepared_rule(index, text, start)? {
            all.extend(
                rule_occurrences(index, &rule, start.naive(), stop)?
                    .into_iter()
                    .map(|t| (t, None)),
            );
        }
    }
    all.extend(
        rec.rdates
            .iter()
            .map(|m| (in_series_form(m, start).naive(), None)),
    );
    all.extend(rec.periods.iter().map(|p| {
        (
            in_series_form(&p.start, start).naive(),
            Some(in_series_form(&p.end, start)),
        )
    }));
    // Periods first among equal starts, so dedup keeps them.
    all.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| b.1.is_some().cmp(&a.1.is_some()))
    });
    all.dedup_by(|later, earlier| later.0 == earlier.0);
    let excluded: Vec<NaiveDateTime> = rec
        .exdates
        .iter()
        .map(|m| in_series_form(m, start).naive())
        .collect();
    all.retain(|(t, _)| !excluded.contains(t));
    // EXRULE occurrences go too (up to `stop`, or all of a bounded EXRULE).
    for (index, text) in rec.exrules.iter().enumerate() {
        if let Some(rule) = prepared_rule(index, text, start)? {
            let last = all.last().map(|(t, _)| *t);
            let until = match (stop, last) {
                (Some(s), _) => Some(s),
                (None, l) => l,
            };
            let gone: std::collections::BTreeSet<NaiveDateTime> =
                rule_occurrences(index, &rule, start.naive(), until)?
                    .into_iter()
                    .collect();
            all.retain(|(t, _)| !gone.contains(t));
        }
    }
    Ok(all)
}

/// Parses rule `index` and moves its UNTIL into DTSTART's frame as a floating value. `None`
/// when UNTIL lies before DTSTART (the rule adds no instance).
fn prepared_rule(
    index: usize,
    text: &str,
    start: &Moment,
) -> Result<Option<ICalendarRecurrenceRule>, RecurrenceError> {
    let mut rule = parse_rule(text).ok_or_else(|| RecurrenceError::InvalidRule {
        index,
        reason: "not a recurrence rule".into(),
    })?;
    if let Some(until) = rule.until.take() {
        let until = until_in_frame(&until, start).ok_or_else(|| RecurrenceError::InvalidRule {
            index,
            reason: "UNTIL is not a date".into(),
        })?;
        if until < start.naive() {
            return Ok(None);
        }
        rule.until = Some(floating(until));
    }
    Ok(Some(rule))
}

/// UNTIL as a wall-clock time in DTSTART's frame (see the module docs for the leniency).
fn until_in_frame(until: &PartialDateTime, start: &Moment) -> Option<NaiveDateTime> {
    let value = until.to_date_time()?;
    let written = value.date_time;
    if matches!(start, Moment::Date(_)) {
        return Some(written.date().and_time(NaiveTime::MIN));
    }
    if !until.has_time() {
        return written.date().and_hms_opt(23, 59, 59);
    }
    let Some(offset) = value.offset else {
        return Some(written);
    };
    let instant = Utc.from_utc_datetime(&(written - offset));
    Some(match start {
        Moment::Zoned(_, tz) => instant.with_timezone(tz).naive_local(),
        Moment::Defined(_, zone) => zone.local(instant),
        Moment::Utc(_) => instant.naive_utc(),
        // A floating series has no zone to convert into: the time as written.
        Moment::Floating(_) | Moment::Date(_) => written,
    })
}

/// The occurrences calcard generates for one rule from `dtstart` (floating), in order, up to
/// `stop` when given (else all: the rule must be bounded).
fn rule_occurrences(
    index: usize,
    rule: &ICalendarRecurrenceRule,
    dtstart: NaiveDateTime,
    stop: Option<NaiveDateTime>,
) -> Result<Vec<NaiveDateTime>, RecurrenceError> {
    let ical = rule_calendar(rule, dtstart);
    // calcard expands eagerly up to a count, so ask for more until the rule ends or passes
    // `stop`.
    // Start small: calcard expands eagerly up to the cap, and a yearly rule asked for 512
    // occurrences computes five centuries. Doubling costs at most twice the final expansion.
    let mut cap = 32;
    loop {
        let expanded = ical.expand_dates(CalTz::Floating, cap);
        if let Some(error) = expanded.errors.first() {
            return Err(RecurrenceError::InvalidRule {
                index,
                reason: error.error.to_string(),
            });
        }
        let dates: Vec<NaiveDateTime> = expanded
            .events
            .iter()
            .map(|e| e.start.naive_local())
            .collect();
        let finished = dates.len() < cap;
        let passed_stop = matches!((stop, dates.last()), (Some(stop), Some(last)) if *last >= stop);
        if finished || passed_stop {
            return Ok(match stop {
                Some(stop) => dates.into_iter().filter(|d| *d <= stop).collect(),
                None => dates,
            });
        }
        if cap >= MAX_EXPANSION {
            return Err(RecurrenceError::TooDense { index });
        }
        cap = (cap * 2).min(MAX_EXPANSION);
    }
}

/// A calendar of one VEVENT with a floating DTSTART and the rule: what calcard expands.
fn rule_calendar(rule: &ICalendarRecurrenceRule, dtstart: NaiveDateTime) -> ICalendar {
    let mut root = ICalendarComponent::new(ICalendarComponentType::VCalendar);
    root.component_ids.push(1);
    let mut event = ICalendarComponent::new(ICalendarComponentType::VEvent);
    event
        .entries
        .push(ICalendarEntry::new(ICalendarProperty::Dtstart).with_value(floating(dtstart)));
    event
        .entries
        .push(ICalendarEntry::new(ICalendarProperty::Rrule).with_value(rule.clone()));
    ICalendar {
        components: vec![root, event],
    }
}

/// The occurrences of one parsed rule from a floating `dtstart` up to `stop`, for callers
/// outside series (the onsets of a VTIMEZONE observance). UNTIL must already be floating.
///
/// # Errors
/// [`RecurrenceError`] when calcard refuses the rule or it is too dense.
pub(crate) fn expand_rule(
    rule: &ICalendarRecurrenceRule,
    dtstart: NaiveDateTime,
    stop: NaiveDateTime,
) -> Result<Vec<NaiveDateTime>, RecurrenceError> {
    rule_occurrences(0, rule, dtstart, Some(stop))
}

/// The starts one rule of a series generates (wall-clock, in DTSTART's frame), up to `stop`
/// when given (else all: the rule must be bounded).
///
/// # Errors
/// [`RecurrenceError`] when the rule is invalid or too dense.
pub(crate) fn rule_starts(
    start: &Moment,
    text: &str,
    stop: Option<NaiveDateTime>,
) -> Result<Vec<NaiveDateTime>, RecurrenceError> {
    match prepared_rule(0, text, start)? {
        Some(rule) => rule_occurrences(0, &rule, start.naive(), stop),
        None => Ok(Vec::new()),
    }
}

/// The wall-clock starts (DTSTART's frame) of a series' instances up to `stop` inclusive:
/// what a RECURRENCE-ID must name.
///
/// # Errors
/// [`RecurrenceError`] when a rule is invalid or too dense.
pub fn instance_starts(
    start: &Moment,
    rec: &Recurrence,
    stop: NaiveDateTime,
) -> Result<std::collections::BTreeSet<NaiveDateTime>, RecurrenceError> {
    Ok(occurrence_starts(start, rec, Some(stop))?
        .into_iter()
        .map(|(t, _)| t)
        .filter(|t| *t <= stop)
        .collect())
}

/// The instances an EXRULE removes from a series (DTSTART's type and zone), up to `stop` (a
/// wall-clock time in that frame) when the rule has no end of its own.
///
/// # Errors
/// [`RecurrenceError`] when a rule is invalid or too dense.
pub fn exrule_dates(
    start: &Moment,
    rec: &Recurrence,
    stop: NaiveDateTime,
) -> Result<Vec<Moment>, RecurrenceError> {
    let plain = Recurrence {
        exrules: Vec::new(),
        ..rec.clone()
    };
    let kept: std::collections::BTreeSet<NaiveDateTime> =
        occurrence_starts(start, &plain, Some(stop))?
            .into_iter()
            .map(|(t, _)| t)
            .collect();
    let mut out = Vec::new();
    for (index, text) in rec.exrules.iter().enumerate() {
        if let Some(rule) = prepared_rule(index, text, start)? {
            for t in rule_occurrences(index, &rule, start.naive(), Some(stop))? {
                if kept.contains(&t) {
                    out.push(in_frame(start, t));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A floating calcard date-time (for an UNTIL moved into a frame).
pub(crate) fn floating_value(t: NaiveDateTime) -> PartialDateTime {
    floating(t)
}

/// A floating calcard date-time.
fn floating(t: NaiveDateTime) -> PartialDateTime {
    PartialDateTime {
        year: u16::try_from(t.year()).ok(),
        month: u8::try_from(t.month()).ok(),
        day: u8::try_from(t.day()).ok(),
        hour: u8::try_from(t.hour()).ok(),
        minute: u8::try_from(t.minute()).ok(),
        second: u8::try_from(t.second()).ok(),
        tz_hour: None,
        tz_minute: None,
        tz_minus: false,
    }
}

/// `instant` read in the frame of `like` (the wall-clock a series' instants are compared in).
fn frame_naive(like: &Moment, instant: DateTime<Utc>) -> NaiveDateTime {
    match like {
        Moment::Zoned(_, tz) => instant.with_timezone(tz).naive_local(),
        Moment::Defined(_, zone) => zone.local(instant),
        _ => instant.naive_utc(),
    }
}

/// A wall-clock time placed in the type and zone of `like`.
pub(crate) fn in_frame(like: &Moment, t: NaiveDateTime) -> Moment {
    match like {
        Moment::Date(_) => Moment::Date(t.date()),
        Moment::Utc(_) => Moment::Utc(t),
        Moment::Zoned(_, tz) => Moment::Zoned(t, *tz),
        Moment::Floating(_) => Moment::Floating(t),
        Moment::Defined(_, zone) => Moment::Defined(t, zone.clone()),
    }
}

/// `t + d`, saturating at the end of time (only absurd input gets there).
fn add(t: NaiveDateTime, d: TimeDelta) -> NaiveDateTime {
    t.checked_add_signed(d).unwrap_or(NaiveDateTime::MAX)
}

fn same_frame(a: &Moment, b: &Moment) -> bool {
    match (a, b) {
        (Moment::Zoned(_, x), Moment::Zoned(_, y)) => x == y,
        (Moment::Defined(_, x), Moment::Defined(_, y)) => x == y,
        _ => std::mem::discriminant(a) == std::mem::discriminant(b),
    }
}

/// The end of the instance starting at `instance_start`: the master's start-to-end distance
/// in wall-clock terms when start and end share a frame, else in elapsed time.
fn instance_end(start: &Moment, end: &Moment, instance_start: &Moment) -> Moment {
    if same_frame(start, end) {
        let delta = (end.naive() - start.naive()).max(TimeDelta::zero());
        in_frame(end, add(instance_start.naive(), delta))
    } else {
        let delta = (end.to_utc() - start.to_utc()).max(TimeDelta::zero());
        let instant = instance_start
            .to_utc()
            .checked_add_signed(delta)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        in_frame(end, frame_naive(end, instant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Moment {
        s.parse().unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn rec(rules: &[&str], rdates: &[&str], exdates: &[&str]) -> Recurrence {
        Recurrence {
            rules: rules.iter().map(|s| s.to_string()).collect(),
            rdates: rdates.iter().map(|s| m(s)).collect(),
            exdates: exdates.iter().map(|s| m(s)).collect(),
            periods: vec![],
            exrules: vec![],
        }
    }

    fn starts(
        start: &str,
        end: &str,
        r: &Recurrence,
        from: &str,
        to: &str,
        limit: usize,
    ) -> Vec<String> {
        instances(&m(start), &m(end), r, utc(from), utc(to), limit)
            .unwrap()
            .into_iter()
            .map(|i| i.start.to_string())
            .collect()
    }

    const WIDE_FROM: &str = "2000-01-01T00:00:00Z";
    const WIDE_TO: &str = "2100-01-01T00:00:00Z";

    #[test]
    fn weekly_berlin_event_keeps_local_time_across_dst() {
        let got = instances(
            &m("2027-03-18T10:00:00[Europe/Berlin]"),
            &m("2027-03-18T11:00:00[Europe/Berlin]"),
            &rec(&["FREQ=WEEKLY;COUNT=3"], &[], &[]),
            utc(WIDE_FROM),
            utc(WIDE_TO),
            100,
        )
        .unwrap();
        let shown: Vec<(String, String, String)> = got
            .iter()
            .map(|i| {
                (
                    i.start.to_string(),
                    i.end.to_string(),
                    i.start.to_utc().to_rfc3339(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                (
                    "2027-03-18T10:00:00[Europe/Berlin]".into(),
                    "2027-03-18T11:00:00[Europe/Berlin]".into(),
                    "2027-03-18T09:00:00+00:00".into()
                ),
                (
                    "2027-03-25T10:00:00[Europe/Berlin]".into(),
                    "2027-03-25T11:00:00[Europe/Berlin]".into(),
                    "2027-03-25T09:00:00+00:00".into()
                ),
                (
                    "2027-04-01T10:00:00[Europe/Berlin]".into(),
                    "2027-04-01T11:00:00[Europe/Berlin]".into(),
                    "2027-04-01T08:00:00+00:00".into()
                ),
            ]
        );
        assert!(got.iter().all(|i| i.recurrence_id == i.start));
    }

    #[test]
    fn rule_cases() {
        // (name, dtstart, dtend, rules, rdates, exdates, expected starts)
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a str,
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
        );
        let cases: &[Case] = &[
            (
                "count",
                "2026-12-01T10:00:00Z",
                "2026-12-01T11:00:00Z",
                &["FREQ=DAILY;COUNT=3"],
                &[],
                &[],
                &[
                    "2026-12-01T10:00:00Z",
                    "2026-12-02T10:00:00Z",
                    "2026-12-03T10:00:00Z",
                ],
            ),
            (
                "until utc with zoned start is inclusive",
                "2026-12-01T10:00:00[Europe/Berlin]",
                "2026-12-01T11:00:00[Europe/Berlin]",
                &["FREQ=DAILY;UNTIL=20261203T090000Z"],
                &[],
                &[],
                &[
                    "2026-12-01T10:00:00[Europe/Berlin]",
                    "2026-12-02T10:00:00[Europe/Berlin]",
                    "2026-12-03T10:00:00[Europe/Berlin]",
                ],
            ),
            (
                "exdate removes an instance",
                "2026-12-01T10:00:00[Europe/Berlin]",
                "2026-12-01T11:00:00[Europe/Berlin]",
                &["FREQ=DAILY;COUNT=3"],
                &[],
                &["2026-12-02T10:00:00[Europe/Berlin]"],
                &[
                    "2026-12-01T10:00:00[Europe/Berlin]",
                    "2026-12-03T10:00:00[Europe/Berlin]",
                ],
            ),
            (
                "exdate given in utc matches a zoned instance",
                "2026-12-01T10:00:00[Europe/Berlin]",
                "2026-12-01T11:00:00[Europe/Berlin]",
                &["FREQ=DAILY;COUNT=3"],
                &[],
                &["2026-12-02T09:00:00Z"],
                &[
                    "2026-12-01T10:00:00[Europe/Berlin]",
                    "2026-12-03T10:00:00[Europe/Berlin]",
                ],
            ),
            (
                "rdate adds an instance, in order",
                "2026-12-01T10:00:00[Europe/Berlin]",
                "2026-12-01T11:00:00[Europe/Berlin]",
                &["FREQ=WEEKLY;COUNT=2"],
                &["2026-12-04T15:00:00[Europe/Berlin]"],
                &[],
                &[
                    "2026-12-01T10:00:00[Europe/Berlin]",
                    "2026-12-04T15:00:00[Europe/Berlin]",
                    "2026-12-08T10:00:00[Europe/Berlin]",
                ],
            ),
            (
                "rdates without a rule",
                "2026-12-01",
                "2026-12-02",
                &[],
                &["2026-12-24", "2026-12-01"],
                &[],
                &["2026-12-01", "2026-12-24"],
            ),
            (
                "exdate may remove dtstart",
                "2026-12-01",
                "2026-12-02",
                &["FREQ=DAILY;COUNT=3"],
                &[],
                &["2026-12-01"],
                &["2026-12-02", "2026-12-03"],
            ),
            (
                "all-day with date until",
                "2026-12-01",
                "2026-12-02",
                &["FREQ=WEEKLY;UNTIL=20261215"],
                &[],
                &[],
                &["2026-12-01", "2026-12-08", "2026-12-15"],
            ),
            (
                "all-day with utc until counts by its date",
                "2026-12-01",
                "2026-12-02",
                &["FREQ=WEEKLY;UNTIL=20261215T230000Z"],
                &[],
                &[],
                &["2026-12-01", "2026-12-08", "2026-12-15"],
            ),
            (
                "date until with timed start includes that day",
                "2026-12-01T18:00:00[Europe/Berlin]",
                "2026-12-01T19:00:00[Europe/Berlin]",
                &["FREQ=DAILY;UNTIL=20261203"],
                &[],
                &[],
                &[
                    "2026-12-01T18:00:00[Europe/Berlin]",
                    "2026-12-02T18:00:00[Europe/Berlin]",
                    "2026-12-03T18:00:00[Europe/Berlin]",
                ],
            ),
            (
                "floating until with zoned start is wall-clock",
                "2026-12-01T10:00:00[Europe/Berlin]",
                "2026-12-01T11:00:00[Europe/Berlin]",
                &["FREQ=DAILY;UNTIL=20261202T100000"],
                &[],
                &[],
                &[
                    "2026-12-01T10:00:00[Europe/Berlin]",
                    "2026-12-02T10:00:00[Europe/Berlin]",
                ],
            ),
            (
                "until before dtstart leaves dtstart alone",
                "2026-12-01T10:00:00Z",
                "2026-12-01T11:00:00Z",
                &["FREQ=DAILY;UNTIL=20261101T000000Z"],
                &[],
                &[],
                &["2026-12-01T10:00:00Z"],
            ),
            (
                "off-pattern dtstart is still the first instance",
                "2026-12-02T10:00:00Z",
                "2026-12-02T11:00:00Z",
                &["FREQ=WEEKLY;BYDAY=MO;COUNT=2"],
                &[],
                &[],
                &[
                    "2026-12-02T10:00:00Z",
                    "2026-12-07T10:00:00Z",
                    "2026-12-14T10:00:00Z",
                ],
            ),
            (
                "floating series",
                "2026-12-01T08:00:00",
                "2026-12-01T09:00:00",
                &["FREQ=MONTHLY;BYMONTHDAY=1;COUNT=2"],
                &[],
                &[],
                &["2026-12-01T08:00:00", "2027-01-01T08:00:00"],
            ),
        ];
        for (name, start, end, rules, rdates, exdates, want) in cases {
            let got = starts(
                start,
                end,
                &rec(rules, rdates, exdates),
                WIDE_FROM,
                WIDE_TO,
                100,
            );
            assert_eq!(&got, want, "{name}");
        }
    }

    #[test]
    fn periods_keep_their_ends_and_exrules_remove() {
        let mut r = rec(&["FREQ=DAILY;COUNT=3"], &[], &[]);
        r.periods = vec![crate::model::Period {
            start: m("2026-12-10T08:00:00Z"),
            end: m("2026-12-10T12:30:00Z"),
        }];
        let got: Vec<(String, String)> = instances(
            &m("2026-12-01T10:00:00Z"),
            &m("2026-12-01T11:00:00Z"),
            &r,
            utc(WIDE_FROM),
            utc(WIDE_TO),
            100,
        )
        .unwrap()
        .into_iter()
        .map(|i| (i.start.to_string(), i.end.to_string()))
        .collect();
        assert_eq!(
            got.last().unwrap(),
            &(
                "2026-12-10T08:00:00Z".to_string(),
                "2026-12-10T12:30:00Z".to_string()
            )
        );
        assert_eq!(got.len(), 4);
        assert_eq!(
            series_end(&m("2026-12-01T10:00:00Z"), &m("2026-12-01T11:00:00Z"), &r)
                .unwrap()
                .map(|t| t.to_rfc3339()),
            Some("2026-12-10T12:30:00+00:00".to_string())
        );
        let mut r = rec(&["FREQ=WEEKLY;BYDAY=FR;COUNT=6"], &[], &[]);
        r.exrules = vec!["FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13".into()];
        let got = starts(
            "2026-11-06T10:00:00Z",
            "2026-11-06T11:00:00Z",
            &r,
            WIDE_FROM,
            WIDE_TO,
            100,
        );
        assert!(
            !got.contains(&"2026-11-13T10:00:00Z".to_string()),
            "{got:?}"
        );
        assert_eq!(got.len(), 5);
        let gone = exrule_dates(
            &m("2026-11-06T10:00:00Z"),
            &r,
            m("2027-01-01T00:00:00Z").naive(),
        )
        .unwrap();
        assert_eq!(gone, vec![m("2026-11-13T10:00:00Z")]);
    }

    #[test]
    fn window_and_limit_bound_the_result() {
        let r = rec(&["FREQ=DAILY"], &[], &[]);
        // An instance that started before the window but is still running overlaps it.
        let got = starts(
            "2020-01-01T23:00:00Z",
            "2020-01-02T01:00:00Z",
            &r,
            "2026-12-10T00:00:00Z",
            "2026-12-12T00:00:00Z",
            100,
        );
        assert_eq!(
            got,
            vec![
                "2026-12-09T23:00:00Z",
                "2026-12-10T23:00:00Z",
                "2026-12-11T23:00:00Z"
            ]
        );
        let got = starts(
            "2020-01-01T23:00:00Z",
            "2020-01-02T01:00:00Z",
            &r,
            "2026-12-10T00:00:00Z",
            "2026-12-31T00:00:00Z",
            2,
        );
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn invalid_rules_are_errors_not_panics() {
        for bad in [
            "FREQ=SOMETIMES",
            "BYDAY=MO",
            "FREQ=MONTHLY;BYMONTHDAY=40",
            "",
            "x\r\ny",
        ] {
            let got = instances(
                &m("2026-12-01T10:00:00Z"),
                &m("2026-12-01T11:00:00Z"),
                &rec(&[bad], &[], &[]),
                utc(WIDE_FROM),
                utc(WIDE_TO),
                10,
            );
            assert!(
                matches!(got, Err(RecurrenceError::InvalidRule { index: 0, .. })),
                "{bad:?}: {got:?}"
            );
        }
    }

    #[test]
    fn dense_rules_are_refused() {
        let got = instances(
            &m("2000-01-01T00:00:00Z"),
            &m("2000-01-01T00:00:00Z"),
            &rec(&["FREQ=MINUTELY"], &[], &[]),
            utc("2026-12-01T00:00:00Z"),
            utc("2026-12-02T00:00:00Z"),
            10,
        );
        assert_eq!(got, Err(RecurrenceError::TooDense { index: 0 }));
    }

    #[test]
    fn series_end_cases() {
        // (name, dtstart, dtend, rules, rdates, expected end)
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a str,
            &'a [&'a str],
            &'a [&'a str],
            Option<&'a str>,
        );
        let cases: &[Case] = &[
            (
                "unbounded",
                "2026-12-01T10:00:00Z",
                "2026-12-01T11:00:00Z",
                &["FREQ=WEEKLY"],
                &[],
                None,
            ),
            (
                "count",
                "2026-12-01T10:00:00Z",
                "2026-12-01T11:00:00Z",
                &["FREQ=WEEKLY;COUNT=3"],
                &[],
                Some("2026-12-15T11:00:00+00:00"),
            ),
            (
                "until across dst, zoned",
                "2027-03-18T10:00:00[Europe/Berlin]",
                "2027-03-18T11:00:00[Europe/Berlin]",
                &["FREQ=WEEKLY;UNTIL=20270401T080000Z"],
                &[],
                Some("2027-04-01T09:00:00+00:00"),
            ),
            (
                "rdate after the rule",
                "2026-12-01",
                "2026-12-02",
                &["FREQ=DAILY;COUNT=2"],
                &["2027-01-06"],
                Some("2027-01-07T00:00:00+00:00"),
            ),
            (
                "single event with only exdates",
                "2026-12-01",
                "2026-12-03",
                &[],
                &[],
                Some("2026-12-03T00:00:00+00:00"),
            ),
            (
                "until before start",
                "2026-12-01T10:00:00Z",
                "2026-12-01T11:00:00Z",
                &["FREQ=DAILY;UNTIL=20200101T000000Z"],
                &[],
                Some("2026-12-01T11:00:00+00:00"),
            ),
        ];
        for (name, start, end, rules, rdates, want) in cases {
            let got = series_end(&m(start), &m(end), &rec(rules, rdates, &[])).unwrap();
            assert_eq!(got.map(|t| t.to_rfc3339()).as_deref(), *want, "{name}");
        }
    }

    #[test]
    fn rules_normalise_to_one_spelling() {
        let a = parse_rule("RRULE:freq=weekly;byday=WE,MO,MO;interval=1;wkst=MO").unwrap();
        let b = parse_rule("FREQ=WEEKLY;BYDAY=MO,WE").unwrap();
        assert_eq!(normalize_rule(&a), "FREQ=WEEKLY;BYDAY=MO,WE");
        assert_eq!(normalize_rule(&a), normalize_rule(&b));
        let c = parse_rule("FREQ=MONTHLY;UNTIL=20270630T215959Z;BYDAY=-1FR;INTERVAL=2").unwrap();
        assert_eq!(
            normalize_rule(&c),
            "FREQ=MONTHLY;UNTIL=20270630T215959Z;INTERVAL=2;BYDAY=-1FR"
        );
    }

    #[test]
    fn series_form_conversions() {
        let cases = [
            (
                "2026-12-02T09:00:00Z",
                "2026-12-01T10:00:00[Europe/Berlin]",
                "2026-12-02T10:00:00[Europe/Berlin]",
            ),
            (
                "2026-12-02",
                "2026-12-01T10:00:00[Europe/Berlin]",
                "2026-12-02T10:00:00[Europe/Berlin]",
            ),
            (
                "2026-12-02T10:00:00",
                "2026-12-01T10:00:00[Europe/Berlin]",
                "2026-12-02T10:00:00[Europe/Berlin]",
            ),
            (
                "2026-12-02T10:00:00[Europe/London]",
                "2026-12-01T10:00:00[Europe/Berlin]",
                "2026-12-02T11:00:00[Europe/Berlin]",
            ),
            (
                "2026-12-02T10:00:00[Europe/Berlin]",
                "2026-12-01T10:00:00Z",
                "2026-12-02T09:00:00Z",
            ),
            ("2026-12-02T23:30:00Z", "2026-12-01", "2026-12-02"),
            (
                "2026-12-02T10:00:00Z",
                "2026-12-01T08:00:00",
                "2026-12-02T10:00:00",
            ),
        ];
        for (value, dtstart, want) in cases {
            assert_eq!(
                in_series_form(&m(value), &m(dtstart)).to_string(),
                want,
                "{value} in {dtstart}"
            );
        }
    }
}
