//! The `recurrence[]` lines of a Google series, expanded into instance starts.
//!
//! Written for the fake alone, independent of calsync's `src/recurrence.rs`, so that a bug in one
//! cannot hide the same bug in the other. The subset: `RRULE`/`EXRULE` with FREQ
//! DAILY|WEEKLY|MONTHLY|YEARLY, INTERVAL, COUNT, UNTIL, BYDAY (ordinals for MONTHLY/YEARLY),
//! BYMONTHDAY (negative too), BYMONTH, WKST; `RDATE`/`EXDATE` as DATE, UTC, `TZID=` or floating
//! DATE-TIME lists. Everything else (BYSETPOS, BYYEARDAY, BYWEEKNO, BYHOUR…, HOURLY…,
//! `RDATE;VALUE=PERIOD`, a `DTSTART` line) is an error, so the fake answers 400 instead of
//! expanding a series wrongly. Google itself accepts more; tests must stay inside the subset.
//!
//! Rules run in wall-clock time of the series' zone and are placed in the zone afterwards (a
//! weekly 10:00 Europe/Berlin stays 10:00 across DST). The first instance is the series start
//! (Google: "For a recurring event, this is the start time of the first instance").

use std::collections::BTreeSet;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc,
    Weekday,
};
use chrono_tz::Tz;

/// How many periods (days, weeks, months, years) a rule may step through before giving up:
/// a rule that never matches (BYMONTHDAY=31;BYMONTH=2) must end, not spin.
const MAX_PERIODS: i64 = 50_000;

/// Where a series sits: its first start in wall-clock time of `tz`; all-day or timed.
#[derive(Clone, Copy, Debug)]
pub struct Frame {
    pub all_day: bool,
    pub tz: Tz,
    pub start: NaiveDateTime,
}

impl Frame {
    /// The instant of a wall-clock time in the frame's zone (RFC 5545 §3.3.5: a time in a DST gap
    /// moves forward by the gap; an ambiguous one takes the first occurrence).
    pub fn instant(&self, local: NaiveDateTime) -> DateTime<Utc> {
        local_to_utc(self.tz, local)
    }
}

pub fn local_to_utc(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // In a gap: read the time with the offset in force just before it.
            let before = tz
                .from_local_datetime(&(local - Duration::hours(3)))
                .earliest()
                .map(|t| t.offset().fix().local_minus_utc())
                .unwrap_or(0);
            Utc.from_utc_datetime(&(local - Duration::seconds(i64::from(before))))
        }
    }
}

/// One value of an RDATE or EXDATE line.
#[derive(Clone, Copy, Debug)]
enum Stamp {
    Date(NaiveDate),
    Utc(DateTime<Utc>),
    Zoned(NaiveDateTime, Tz),
    Floating(NaiveDateTime),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Freq {
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

#[derive(Clone, Copy, Debug)]
enum Until {
    Date(NaiveDate),
    Utc(DateTime<Utc>),
    Floating(NaiveDateTime),
}

#[derive(Clone, Debug)]
struct Rule {
    freq: Freq,
    interval: i64,
    count: Option<usize>,
    until: Option<Until>,
    by_day: Vec<(Option<i32>, Weekday)>,
    by_month_day: Vec<i32>,
    by_month: Vec<u32>,
    wkst: Weekday,
}

/// A parsed `recurrence[]`.
#[derive(Clone, Debug, Default)]
pub struct Recurrence {
    rules: Vec<Rule>,
    exrules: Vec<Rule>,
    rdates: Vec<Stamp>,
    exdates: Vec<Stamp>,
}

/// Parses Google's `recurrence[]` lines; the error says what is wrong or unsupported.
pub fn parse(lines: &[String]) -> Result<Recurrence, String> {
    let mut recurrence = Recurrence::default();
    for line in lines {
        let (head, value) = line
            .split_once(':')
            .ok_or_else(|| format!("recurrence line without ':': {line:?}"))?;
        let mut params = head.split(';');
        let name = params.next().unwrap_or("").to_ascii_uppercase();
        let params: Vec<&str> = params.collect();
        match name.as_str() {
            "RRULE" | "EXRULE" => {
                if !params.is_empty() {
                    return Err(format!("{name} takes no parameters: {line:?}"));
                }
                let rule = parse_rule(value)?;
                if name == "RRULE" {
                    recurrence.rules.push(rule);
                } else {
                    recurrence.exrules.push(rule);
                }
            }
            "RDATE" | "EXDATE" => {
                let stamps = parse_stamps(&params, value)?;
                if name == "RDATE" {
                    recurrence.rdates.extend(stamps);
                } else {
                    recurrence.exdates.extend(stamps);
                }
            }
            "DTSTART" | "DTEND" => {
                return Err(format!(
                    "{name} lines are not allowed in recurrence (use start/end)"
                ));
            }
            _ => return Err(format!("unknown recurrence line {name:?}")),
        }
    }
    Ok(recurrence)
}

fn parse_rule(text: &str) -> Result<Rule, String> {
    let mut freq = None;
    let mut rule = Rule {
        freq: Freq::Daily,
        interval: 1,
        count: None,
        until: None,
        by_day: Vec::new(),
        by_month_day: Vec::new(),
        by_month: Vec::new(),
        wkst: Weekday::Mon,
    };
    for part in text.split(';').filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("rule part without '=': {part:?}"))?;
        match key.to_ascii_uppercase().as_str() {
            "FREQ" => {
                freq = Some(match value.to_ascii_uppercase().as_str() {
                    "DAILY" => Freq::Daily,
                    "WEEKLY" => Freq::Weekly,
                    "MONTHLY" => Freq::Monthly,
                    "YEARLY" => Freq::Yearly,
                    "SECONDLY" | "MINUTELY" | "HOURLY" => {
                        return Err(format!("fake: FREQ={value} is not implemented"));
                    }
                    _ => return Err(format!("bad FREQ {value:?}")),
                })
            }
            "INTERVAL" => rule.interval = parse_positive(key, value)? as i64,
            "COUNT" => rule.count = Some(parse_positive(key, value)? as usize),
            "UNTIL" => rule.until = Some(parse_until(value)?),
            "BYDAY" => {
                rule.by_day = value
                    .split(',')
                    .map(parse_by_day)
                    .collect::<Result<_, _>>()?;
            }
            "BYMONTHDAY" => {
                rule.by_month_day = value
                    .split(',')
                    .map(|v| match v.parse::<i32>() {
                        Ok(n) if n != 0 && (-31..=31).contains(&n) => Ok(n),
                        _ => Err(format!("bad BYMONTHDAY {v:?}")),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "BYMONTH" => {
                rule.by_month = value
                    .split(',')
                    .map(|v| match v.parse::<u32>() {
                        Ok(n) if (1..=12).contains(&n) => Ok(n),
                        _ => Err(format!("bad BYMONTH {v:?}")),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "WKST" => rule.wkst = parse_weekday(value)?,
            "BYSETPOS" | "BYYEARDAY" | "BYWEEKNO" | "BYHOUR" | "BYMINUTE" | "BYSECOND" => {
                return Err(format!("fake: {key} is not implemented"));
            }
            _ => return Err(format!("unknown rule part {key:?}")),
        }
    }
    rule.freq = freq.ok_or("a rule needs FREQ")?;
    check_rule(&rule)?;
    Ok(rule)
}

/// The combinations RFC 5545 §3.3.10 forbids or leaves undefined.
fn check_rule(rule: &Rule) -> Result<(), String> {
    if rule.count.is_some() && rule.until.is_some() {
        return Err("COUNT and UNTIL must not both be set".into());
    }
    let ordinal = rule.by_day.iter().any(|(n, _)| n.is_some());
    if ordinal && matches!(rule.freq, Freq::Daily | Freq::Weekly) {
        return Err("BYDAY with an ordinal needs FREQ=MONTHLY or YEARLY".into());
    }
    if rule.freq == Freq::Weekly && !rule.by_month_day.is_empty() {
        return Err("BYMONTHDAY is not allowed with FREQ=WEEKLY".into());
    }
    let monthly_ordinal_out_of_range =
        rule.freq == Freq::Monthly || (rule.freq == Freq::Yearly && !rule.by_month.is_empty());
    if monthly_ordinal_out_of_range
        && rule
            .by_day
            .iter()
            .any(|(n, _)| n.is_some_and(|n| n.abs() > 5))
    {
        return Err("a monthly BYDAY ordinal must be within ±5".into());
    }
    Ok(())
}

fn parse_positive(key: &str, value: &str) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("bad {key} {value:?}")),
    }
}

fn parse_until(value: &str) -> Result<Until, String> {
    if let Some(utc) = value.strip_suffix('Z') {
        let t = NaiveDateTime::parse_from_str(utc, "%Y%m%dT%H%M%S")
            .map_err(|_| format!("bad UNTIL {value:?}"))?;
        return Ok(Until::Utc(Utc.from_utc_datetime(&t)));
    }
    if value.len() == 8 {
        let d = NaiveDate::parse_from_str(value, "%Y%m%d")
            .map_err(|_| format!("bad UNTIL {value:?}"))?;
        return Ok(Until::Date(d));
    }
    let t = NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%S")
        .map_err(|_| format!("bad UNTIL {value:?}"))?;
    Ok(Until::Floating(t))
}

fn parse_by_day(value: &str) -> Result<(Option<i32>, Weekday), String> {
    let split = value
        .len()
        .checked_sub(2)
        .ok_or_else(|| format!("bad BYDAY {value:?}"))?;
    let (ordinal, day) = value.split_at(split);
    let weekday = parse_weekday(day)?;
    if ordinal.is_empty() {
        return Ok((None, weekday));
    }
    match ordinal.parse::<i32>() {
        Ok(n) if n != 0 && (-53..=53).contains(&n) => Ok((Some(n), weekday)),
        _ => Err(format!("bad BYDAY {value:?}")),
    }
}

fn parse_weekday(value: &str) -> Result<Weekday, String> {
    Ok(match value.to_ascii_uppercase().as_str() {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => return Err(format!("bad weekday {value:?}")),
    })
}

/// The values of an RDATE/EXDATE line, read by its `VALUE=` and `TZID=` parameters.
fn parse_stamps(params: &[&str], value: &str) -> Result<Vec<Stamp>, String> {
    let mut tz = None;
    let mut is_date = false;
    for param in params {
        let (key, v) = param
            .split_once('=')
            .ok_or_else(|| format!("bad parameter {param:?}"))?;
        match (
            key.to_ascii_uppercase().as_str(),
            v.to_ascii_uppercase().as_str(),
        ) {
            ("VALUE", "DATE") => is_date = true,
            ("VALUE", "DATE-TIME") => {}
            ("VALUE", "PERIOD") => return Err("fake: RDATE;VALUE=PERIOD is not implemented".into()),
            ("TZID", _) => tz = Some(v.parse::<Tz>().map_err(|_| format!("unknown TZID {v:?}"))?),
            _ => return Err(format!("unsupported parameter {param:?}")),
        }
    }
    value
        .split(',')
        .map(|v| {
            if is_date || v.len() == 8 {
                let d = NaiveDate::parse_from_str(v, "%Y%m%d")
                    .map_err(|_| format!("bad date {v:?}"))?;
                return Ok(Stamp::Date(d));
            }
            let naive = v.strip_suffix('Z').unwrap_or(v);
            let t = NaiveDateTime::parse_from_str(naive, "%Y%m%dT%H%M%S")
                .map_err(|_| format!("bad date-time {v:?}"))?;
            Ok(match (v.ends_with('Z'), tz) {
                (true, _) => Stamp::Utc(Utc.from_utc_datetime(&t)),
                (false, Some(tz)) => Stamp::Zoned(t, tz),
                (false, None) => Stamp::Floating(t),
            })
        })
        .collect()
}

impl Recurrence {
    /// Refuses date lists whose type does not match the series (a DATE EXDATE on a timed series
    /// has no defined meaning).
    pub fn check(&self, frame: &Frame) -> Result<(), String> {
        for stamp in self.rdates.iter().chain(&self.exdates) {
            if matches!(stamp, Stamp::Date(_)) != frame.all_day {
                return Err(
                    "RDATE/EXDATE value type must match the series (date vs date-time)".into(),
                );
            }
        }
        Ok(())
    }

    /// Wall-clock starts of the series in order, stopping at the first start at or after
    /// `horizon` and after `limit` instances.
    pub fn expand(
        &self,
        frame: &Frame,
        horizon: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Vec<NaiveDateTime> {
        let beyond = |t: NaiveDateTime| horizon.is_some_and(|h| frame.instant(t) >= h);
        let mut starts = BTreeSet::new();
        if !beyond(frame.start) {
            starts.insert(frame.start);
        }
        for rule in &self.rules {
            starts.extend(rule.occurrences(frame, &beyond, limit));
        }
        for stamp in &self.rdates {
            let t = local_of(frame, *stamp);
            if !beyond(t) {
                starts.insert(t);
            }
        }
        for rule in &self.exrules {
            for t in rule.occurrences(frame, &beyond, limit) {
                starts.remove(&t);
            }
        }
        for stamp in &self.exdates {
            starts.remove(&local_of(frame, *stamp));
        }
        starts.into_iter().take(limit).collect()
    }
}

/// A date list value as wall-clock time of the series' zone.
fn local_of(frame: &Frame, stamp: Stamp) -> NaiveDateTime {
    match stamp {
        Stamp::Date(d) => d.and_hms_opt(0, 0, 0).expect("midnight exists"),
        Stamp::Utc(u) => u.with_timezone(&frame.tz).naive_local(),
        Stamp::Zoned(t, tz) => local_to_utc(tz, t).with_timezone(&frame.tz).naive_local(),
        Stamp::Floating(t) => t,
    }
}

impl Rule {
    /// The rule's own occurrences from the series start on.
    fn occurrences(
        &self,
        frame: &Frame,
        beyond: &dyn Fn(NaiveDateTime) -> bool,
        limit: usize,
    ) -> Vec<NaiveDateTime> {
        let time = frame.start.time();
        let mut out = Vec::new();
        for period in 0..MAX_PERIODS {
            let Some(mut days) = self.candidates(frame.start.date(), period) else {
                break;
            };
            days.sort();
            days.dedup();
            for day in days {
                let t = day.and_time(time);
                if t < frame.start {
                    continue;
                }
                if self.past_until(frame, t) || beyond(t) {
                    return out;
                }
                out.push(t);
                if Some(out.len()) == self.count || out.len() >= limit {
                    return out;
                }
            }
        }
        out
    }

    fn past_until(&self, frame: &Frame, t: NaiveDateTime) -> bool {
        match self.until {
            None => false,
            Some(Until::Date(d)) => t.date() > d,
            Some(Until::Floating(u)) => t > u,
            Some(Until::Utc(u)) if frame.all_day => t.date() > u.date_naive(),
            Some(Until::Utc(u)) => frame.instant(t) > u,
        }
    }

    /// The days of the `period`-th period (counted in INTERVAL steps) the rule selects; `None`
    /// past the calendar's range.
    fn candidates(&self, first: NaiveDate, period: i64) -> Option<Vec<NaiveDate>> {
        let step = period.checked_mul(self.interval)?;
        let days = match self.freq {
            Freq::Daily => {
                let day = first.checked_add_signed(Duration::days(step))?;
                vec![day]
                    .into_iter()
                    .filter(|d| self.day_matches(*d))
                    .collect()
            }
            Freq::Weekly => {
                let back = (7 + first.weekday().num_days_from_monday()
                    - self.wkst.num_days_from_monday())
                    % 7;
                let week = first
                    .checked_sub_signed(Duration::days(back as i64))?
                    .checked_add_signed(Duration::weeks(step))?;
                let wanted: Vec<Weekday> = if self.by_day.is_empty() {
                    vec![first.weekday()]
                } else {
                    self.by_day.iter().map(|(_, w)| *w).collect()
                };
                (0..7)
                    .filter_map(|i| week.checked_add_signed(Duration::days(i)))
                    .filter(|d| wanted.contains(&d.weekday()) && self.month_allowed(*d))
                    .collect()
            }
            Freq::Monthly => {
                let index = i64::from(first.year()) * 12 + i64::from(first.month0()) + step;
                let (year, month) = (
                    i32::try_from(index.div_euclid(12)).ok()?,
                    index.rem_euclid(12) as u32 + 1,
                );
                self.month_days(year, month, first.day())
                    .into_iter()
                    .filter(|d| self.month_allowed(*d))
                    .collect()
            }
            Freq::Yearly => {
                self.year_days(first.year().checked_add(i32::try_from(step).ok()?)?, first)?
            }
        };
        Some(days)
    }

    fn year_days(&self, year: i32, first: NaiveDate) -> Option<Vec<NaiveDate>> {
        NaiveDate::from_ymd_opt(year, 1, 1)?;
        let months: Vec<u32> = if !self.by_month.is_empty() {
            self.by_month.clone()
        } else if !self.by_month_day.is_empty() {
            (1..=12).collect()
        } else if !self.by_day.is_empty() {
            // BYDAY alone in a yearly rule counts weekdays within the year.
            return Some(
                days_of_year(year)
                    .filter(|d| {
                        self.by_day
                            .iter()
                            .any(|(n, w)| weekday_matches(*d, *n, *w, Scope::Year))
                    })
                    .collect(),
            );
        } else {
            vec![first.month()]
        };
        Some(
            months
                .into_iter()
                .flat_map(|m| self.month_days(year, m, first.day()))
                .collect(),
        )
    }

    /// The days of one month the rule selects; the series' own day of month when no BY part says.
    fn month_days(&self, year: i32, month: u32, default_day: u32) -> Vec<NaiveDate> {
        if self.by_month_day.is_empty() && self.by_day.is_empty() {
            return NaiveDate::from_ymd_opt(year, month, default_day)
                .into_iter()
                .collect();
        }
        days_of_month(year, month)
            .filter(|d| {
                self.by_month_day.is_empty()
                    || self.by_month_day.iter().any(|n| month_day_matches(*d, *n))
            })
            .filter(|d| {
                self.by_day.is_empty()
                    || self
                        .by_day
                        .iter()
                        .any(|(n, w)| weekday_matches(*d, *n, *w, Scope::Month))
            })
            .collect()
    }

    /// DAILY: every BY part filters.
    fn day_matches(&self, day: NaiveDate) -> bool {
        self.month_allowed(day)
            && (self.by_month_day.is_empty()
                || self.by_month_day.iter().any(|n| month_day_matches(day, *n)))
            && (self.by_day.is_empty() || self.by_day.iter().any(|(_, w)| *w == day.weekday()))
    }

    fn month_allowed(&self, day: NaiveDate) -> bool {
        self.by_month.is_empty() || self.by_month.contains(&day.month())
    }
}

#[derive(Clone, Copy)]
enum Scope {
    Month,
    Year,
}

fn days_of_month(year: i32, month: u32) -> impl Iterator<Item = NaiveDate> {
    (1..=31).filter_map(move |d| NaiveDate::from_ymd_opt(year, month, d))
}

fn days_of_year(year: i32) -> impl Iterator<Item = NaiveDate> {
    (1..=366).filter_map(move |d| NaiveDate::from_yo_opt(year, d))
}

fn month_length(day: NaiveDate) -> u32 {
    days_of_month(day.year(), day.month()).count() as u32
}

fn month_day_matches(day: NaiveDate, n: i32) -> bool {
    let len = month_length(day) as i32;
    let d = day.day() as i32;
    n == d || n == d - len - 1
}

/// `1MO` is the first Monday of the month (or year), `-1FR` the last Friday; no ordinal: every one.
fn weekday_matches(day: NaiveDate, ordinal: Option<i32>, weekday: Weekday, scope: Scope) -> bool {
    if day.weekday() != weekday {
        return false;
    }
    let Some(n) = ordinal else { return true };
    let (index, length) = match scope {
        Scope::Month => (day.day() as i32 - 1, month_length(day) as i32),
        Scope::Year => (
            day.ordinal0() as i32,
            days_of_year(day.year()).count() as i32,
        ),
    };
    let from_start = index / 7 + 1;
    let from_end = -((length - 1 - index) / 7 + 1);
    n == from_start || n == from_end
}
