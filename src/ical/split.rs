//! `RANGE=THISANDFUTURE`: an override that applies to its instance and every later one.
//!
//! DESIGN: such an override is not skipped; the series is split there. The instances before
//! the first such override stay with the master; from each such override on, the instances
//! (shifted as the override moved its own instance, RFC 5545 §3.2.13) form a series of their
//! own whose fields are the override's. RDATEs, EXDATEs and single overrides go to the part
//! they fall in, shifted with it.
//!
//! Each part must say exactly what the source meant, or the whole item is withheld
//! ([`SkipReason::ThisAndFuture`]): a part's rule starts at its first instance, so the
//! override must name an instance of the rule; a moved part keeps the rule only when moving
//! cannot change what the rule generates (no BYxxx part, at most weekly); and a series with
//! more than one RRULE or with an EXRULE is not split.

use super::SkipReason;
use crate::model::{Details, Moment, Override, Period, Recurrence, SourceEvent, SourceKey};
use crate::recurrence::{in_series_form, normalize_rule, parse_rule, rule_starts};
use calcard::common::PartialDateTime;
use calcard::icalendar::{ICalendarFrequency, ICalendarRecurrenceRule};
use chrono::{Datelike, NaiveDateTime, TimeDelta};

/// The series `whole` (which has a recurrence) split at each `(recurrence id, details)` of a
/// `RANGE=THISANDFUTURE` override (recurrence ids in the series' form).
pub(super) fn split_series(
    whole: SourceEvent,
    mut futures: Vec<(Moment, Details)>,
) -> Result<Vec<SourceEvent>, SkipReason> {
    let rec = whole.recurrence.clone().unwrap_or_default();
    if rec.rules.len() > 1 || !rec.exrules.is_empty() {
        return Err(SkipReason::ThisAndFuture);
    }
    futures.sort_by_key(|f| f.0.naive());
    let start = whole.main.start.clone();
    let rule = match rec.rules.first() {
        Some(text) => Some(parse_rule(text).ok_or(SkipReason::InvalidRecurrence)?),
        None => None,
    };
    let bounded = rule
        .as_ref()
        .is_some_and(|r| r.count.is_some() || r.until.is_some());
    // Every rule instance when the rule ends; else enough to check each boundary.
    let last_boundary = futures.last().map(|(rid, _)| rid.naive());
    let rule_instances: Vec<NaiveDateTime> = match rec.rules.first() {
        Some(text) => rule_starts(&start, text, if bounded { None } else { last_boundary })
            .map_err(|_| SkipReason::ThisAndFuture)?,
        None => Vec::new(),
    };

    let mut parts = Vec::new();
    let boundaries: Vec<NaiveDateTime> = futures.iter().map(|(rid, _)| rid.naive()).collect();
    for part in 0..=futures.len() {
        let lo = part.checked_sub(1).map(|i| boundaries[i]);
        let hi = boundaries.get(part).copied();
        let inside = |t: NaiveDateTime| lo.is_none_or(|lo| t >= lo) && hi.is_none_or(|hi| t < hi);
        let (key, main, delta) = match part.checked_sub(1) {
            None => (whole.key.clone(), whole.main.clone(), TimeDelta::zero()),
            Some(i) => {
                let (rid, details) = &futures[i];
                let moved = in_series_form(&details.start, &start);
                let delta = moved.naive() - rid.naive();
                let mut main = details.clone();
                main.start = moved;
                (
                    SourceKey(format!("{}#{}/future", whole.key, rid)),
                    main,
                    delta,
                )
            }
        };
        if part == 0 && hi == Some(start.naive()) {
            // The first override names the series' first instance: nothing stays before it.
            continue;
        }

        let mut rules = Vec::new();
        if let Some(rule) = &rule {
            let mine: Vec<NaiveDateTime> = rule_instances
                .iter()
                .copied()
                .filter(|t| inside(*t))
                .collect();
            let anchored = match lo {
                None => true,
                Some(lo) => mine.first() == Some(&lo),
            };
            // Known instances: all of a bounded rule, up to the last boundary of another.
            if !mine.is_empty() {
                if !anchored || (delta != TimeDelta::zero() && !shift_safe(rule)) {
                    return Err(SkipReason::ThisAndFuture);
                }
                let until = if bounded {
                    mine.last().map(|last| *last + delta)
                } else {
                    hi.map(|hi| hi - TimeDelta::seconds(1) + delta)
                };
                let mut r = rule.clone();
                r.count = None;
                r.until = until.map(|u| until_value(&start, u));
                rules.push(normalize_rule(&r));
            }
        }
        let shift = |m: &Moment| shifted(m, delta);
        let rdates: Vec<Moment> = rec
            .rdates
            .iter()
            .filter(|m| inside(m.naive()))
            .map(shift)
            .collect();
        let periods: Vec<Period> = rec
            .periods
            .iter()
            .filter(|p| inside(p.start.naive()))
            .map(|p| Period {
                start: shift(&p.start),
                end: shift(&p.end),
            })
            .collect();
        let exdates: Vec<Moment> = rec
            .exdates
            .iter()
            .filter(|m| inside(m.naive()))
            .map(shift)
            .collect();
        let overrides: Vec<Override> = whole
            .overrides
            .iter()
            .filter(|o| inside(o.recurrence_id.naive()))
            .map(|o| Override {
                recurrence_id: shift(&o.recurrence_id),
                details: o.details.clone(),
            })
            .collect();
        let recurrence =
            (!rules.is_empty() || !rdates.is_empty() || !periods.is_empty()).then(|| Recurrence {
                rules,
                rdates,
                exdates,
                periods,
                exrules: Vec::new(),
            });
        parts.push(SourceEvent {
            key,
            main,
            recurrence,
            overrides,
        });
    }
    Ok(parts)
}

/// Moving the first instance moves every instance alike only for a rule whose instances
/// follow from DTSTART alone and whose steps have one length (up to weekly).
fn shift_safe(rule: &ICalendarRecurrenceRule) -> bool {
    rule.bysecond.is_empty()
        && rule.byminute.is_empty()
        && rule.byhour.is_empty()
        && rule.byday.is_empty()
        && rule.bymonthday.is_empty()
        && rule.byyearday.is_empty()
        && rule.byweekno.is_empty()
        && rule.bymonth.is_empty()
        && rule.bysetpos.is_empty()
        && matches!(
            rule.freq,
            ICalendarFrequency::Secondly
                | ICalendarFrequency::Minutely
                | ICalendarFrequency::Hourly
                | ICalendarFrequency::Daily
                | ICalendarFrequency::Weekly
        )
}

fn shifted(m: &Moment, delta: TimeDelta) -> Moment {
    let t = m.naive() + delta;
    match m {
        Moment::Date(_) => Moment::Date(t.date()),
        Moment::Utc(_) => Moment::Utc(t),
        Moment::Zoned(_, tz) => Moment::Zoned(t, *tz),
        Moment::Floating(_) => Moment::Floating(t),
        Moment::Defined(_, z) => Moment::Defined(t, z.clone()),
    }
}

/// An inclusive last instance (wall-clock, in the series' frame) as UNTIL: a date for an
/// all-day series, floating for a floating one, else UTC (RFC 5545 §3.3.10).
fn until_value(start: &Moment, last: NaiveDateTime) -> PartialDateTime {
    let date = |t: NaiveDateTime| PartialDateTime {
        year: u16::try_from(t.year()).ok(),
        month: u8::try_from(t.month()).ok(),
        day: u8::try_from(t.day()).ok(),
        ..Default::default()
    };
    match start {
        Moment::Date(_) => date(last),
        Moment::Floating(_) => crate::recurrence::floating_value(last),
        _ => {
            let instant = shifted(start, last - start.naive()).to_utc().naive_utc();
            let mut v = crate::recurrence::floating_value(instant);
            v.tz_hour = Some(0);
            v.tz_minute = Some(0);
            v
        }
    }
}
