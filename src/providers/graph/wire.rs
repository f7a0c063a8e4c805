//! Graph JSON ↔ the model, without I/O: times, events, recurrence patterns.
//!
//! Times: every call asks Graph for UTC (`Prefer: outlook.timezone="UTC"`), and an answer's
//! `dateTimeTimeZone` is read with the zone it names anyway (a Windows name, an IANA name, or
//! UTC), so a call that was answered in another zone still reads right. The instant is then
//! expressed in the event's own zone (`originalStartTimeZone`, mapped from Windows names to
//! IANA by calcard's CLDR table), so a weekly 10:00 stays 10:00 across DST. An all-day event
//! is its dates. Writes name IANA zones (Graph's documented "additional time zones") or UTC.
//!
//! Recurrence: a Graph `patternedRecurrence` becomes one RRULE ([`graph_rule`]); a published
//! series becomes a Graph recurrence only when it fits Graph's patterns ([`fit`]), checked by
//! comparing the instances both give over the window: never an approximation.

use crate::model::{Details, Marking, Moment, PublicDetails, PublicEvent, Recurrence};
use crate::recurrence;
use calcard::icalendar::{ICalendarFrequency, ICalendarWeekday};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Value, json};
use std::str::FromStr;

/// Graph's seven fractional digits.
fn format_wall(t: NaiveDateTime) -> String {
    format!("{}.0000000", t.format("%Y-%m-%dT%H:%M:%S"))
}

/// A `dateTime` without offset (Graph writes up to seven fractional digits).
pub fn parse_wall(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    if let Some(text) = text.strip_suffix('Z') {
        return NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok();
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok()
}

/// An instant Graph writes with an offset or `Z` (`originalStart`), or without (UTC).
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| parse_wall(text).map(|t| t.and_utc()))
}

/// The IANA zone a Graph zone name stands for: UTC, an IANA name, or a Windows name (CLDR).
pub fn zone(name: &str) -> Option<chrono_tz::Tz> {
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    if ["utc", "tzone://microsoft/utc", "etc/utc", "gmt"]
        .iter()
        .any(|u| name.eq_ignore_ascii_case(u))
    {
        return Some(chrono_tz::Tz::UTC);
    }
    match calcard::common::timezone::Tz::from_str(name) {
        Ok(calcard::common::timezone::Tz::Tz(tz)) => Some(tz),
        _ => None,
    }
}

/// The instant a `dateTimeTimeZone` stands for.
fn slot_instant(slot: &Value) -> Option<DateTime<Utc>> {
    let wall = parse_wall(slot["dateTime"].as_str()?)?;
    let tz = slot["timeZone"]
        .as_str()
        .map_or(Some(chrono_tz::Tz::UTC), zone)?;
    Some(crate::model::zoned_to_utc(wall, tz))
}

/// A start or end as a moment: the date of an all-day event, else the instant in `own`
/// (the event's zone; UTC is [`Moment::Utc`]).
pub fn moment(slot: &Value, all_day: bool, own: chrono_tz::Tz) -> Option<Moment> {
    if all_day {
        let wall = parse_wall(slot["dateTime"].as_str()?)?;
        return Some(Moment::Date(wall.date()));
    }
    let instant = slot_instant(slot)?;
    Some(in_zone(instant, own))
}

/// An instant expressed in a zone (UTC as [`Moment::Utc`]).
pub fn in_zone(instant: DateTime<Utc>, tz: chrono_tz::Tz) -> Moment {
    if tz == chrono_tz::Tz::UTC {
        Moment::Utc(instant.naive_utc())
    } else {
        Moment::Zoned(instant.with_timezone(&tz).naive_local(), tz)
    }
}

/// The zone an event was written in (`originalStartTimeZone`), when it names one calsync
/// knows; all-day events need none.
pub fn own_zone(event: &Value) -> Option<chrono_tz::Tz> {
    event["originalStartTimeZone"].as_str().and_then(zone)
}

/// The plain text of an event's body (HTML converted), `None` when empty.
pub fn body_text(event: &Value) -> Option<String> {
    let content = event["body"]["content"].as_str()?;
    let text = match event["body"]["contentType"].as_str() {
        Some(t) if t.eq_ignore_ascii_case("html") => crate::html::to_text(content),
        _ => content.replace("\r\n", "\n"),
    };
    let text = text.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn non_empty(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// What an event (single, master or exception) says, its times in `own`. Attendees, the
/// organizer, online-meeting data and reminders are not read: they never travel.
///
/// # Errors
/// A text naming what could not be read (never a value of the event).
pub fn details(event: &Value, own: chrono_tz::Tz) -> Result<Details, String> {
    let all_day = event["isAllDay"].as_bool().unwrap_or(false);
    let start = moment(&event["start"], all_day, own).ok_or("start cannot be read")?;
    let end = moment(&event["end"], all_day, own).ok_or("end cannot be read")?;
    let categories = event["categories"]
        .as_array()
        .map(|c| c.iter().filter_map(non_empty).collect())
        .unwrap_or_default();
    Ok(Details {
        start,
        end: Some(end),
        title: non_empty(&event["subject"]),
        location: non_empty(&event["location"]["displayName"]),
        description: body_text(event),
        categories,
        // Kept as Graph spelled it; `policy` alone judges it (a missing one is not public).
        marking: Marking::Sensitivity(event["sensitivity"].as_str().map(str::to_string)),
        cancelled: event["isCancelled"].as_bool().unwrap_or(false),
    })
}

// ------------------------------------------------------------------------------------------
// Recurrence: Graph → RRULE.

const DAYS: [(&str, &str, ICalendarWeekday); 7] = [
    ("sunday", "SU", ICalendarWeekday::Sunday),
    ("monday", "MO", ICalendarWeekday::Monday),
    ("tuesday", "TU", ICalendarWeekday::Tuesday),
    ("wednesday", "WE", ICalendarWeekday::Wednesday),
    ("thursday", "TH", ICalendarWeekday::Thursday),
    ("friday", "FR", ICalendarWeekday::Friday),
    ("saturday", "SA", ICalendarWeekday::Saturday),
];

fn day_code(name: &str) -> Option<&'static str> {
    DAYS.iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, c, _)| *c)
}

fn day_name(day: ICalendarWeekday) -> &'static str {
    DAYS.iter()
        .find(|(_, _, d)| *d == day)
        .map(|(n, _, _)| *n)
        .expect("every weekday")
}

fn index_pos(name: &str) -> Option<i32> {
    match name {
        "first" => Some(1),
        "second" => Some(2),
        "third" => Some(3),
        "fourth" => Some(4),
        "last" => Some(-1),
        _ => None,
    }
}

fn pos_index(pos: i32) -> Option<&'static str> {
    match pos {
        1 => Some("first"),
        2 => Some("second"),
        3 => Some("third"),
        4 => Some("fourth"),
        -1 => Some("last"),
        _ => None,
    }
}

/// The RRULE (normalized) a Graph recurrence stands for, for a series whose first instance
/// is `start`. `clamp` reads an `absoluteMonthly`/`absoluteYearly` day after the 28th as
/// Outlook shows it (the last day of a shorter month) instead of skipping short months.
///
/// # Errors
/// A text naming the part of the pattern that cannot be read.
pub fn graph_rule(recurrence: &Value, start: &Moment, clamp: bool) -> Result<String, String> {
    let p = &recurrence["pattern"];
    let r = &recurrence["range"];
    let kind = p["type"].as_str().ok_or("the pattern has no type")?;
    let interval = p["interval"].as_u64().unwrap_or(1).max(1);
    let days = || -> Result<Vec<&'static str>, String> {
        let list = p["daysOfWeek"].as_array().cloned().unwrap_or_default();
        let codes: Option<Vec<&str>> = list.iter().map(|d| d.as_str().and_then(day_code)).collect();
        codes
            .filter(|c| !c.is_empty())
            .ok_or_else(|| "daysOfWeek cannot be read".to_string())
    };
    let day_of_month = || -> Result<u64, String> {
        p["dayOfMonth"]
            .as_u64()
            .filter(|d| (1..=31).contains(d))
            .ok_or_else(|| "dayOfMonth cannot be read".to_string())
    };
    let month = || -> Result<u64, String> {
        p["month"]
            .as_u64()
            .filter(|m| (1..=12).contains(m))
            .ok_or_else(|| "month cannot be read".to_string())
    };
    let index = || -> Result<i32, String> {
        index_pos(p["index"].as_str().unwrap_or("first"))
            .ok_or_else(|| "index cannot be read".to_string())
    };
    let month_day = |d: u64| {
        if clamp && d > 28 {
            let days: Vec<String> = (28..=d).map(|n| n.to_string()).collect();
            format!("BYMONTHDAY={};BYSETPOS=-1", days.join(","))
        } else {
            format!("BYMONTHDAY={d}")
        }
    };
    let relative = |days: Vec<&str>, index: i32| {
        if days.len() == 1 {
            format!("BYDAY={index}{}", days[0])
        } else {
            format!("BYDAY={};BYSETPOS={index}", days.join(","))
        }
    };
    let mut parts = match kind {
        "daily" => vec!["FREQ=DAILY".to_string()],
        "weekly" => {
            let wkst = p["firstDayOfWeek"]
                .as_str()
                .map_or(Some("SU"), day_code)
                .ok_or("firstDayOfWeek cannot be read")?;
            vec![
                "FREQ=WEEKLY".into(),
                format!("BYDAY={}", days()?.join(",")),
                format!("WKST={wkst}"),
            ]
        }
        "absoluteMonthly" => vec!["FREQ=MONTHLY".into(), month_day(day_of_month()?)],
        "relativeMonthly" => vec!["FREQ=MONTHLY".into(), relative(days()?, index()?)],
        "absoluteYearly" => vec![
            "FREQ=YEARLY".into(),
            format!("BYMONTH={}", month()?),
            month_day(day_of_month()?),
        ],
        "relativeYearly" => vec![
            "FREQ=YEARLY".into(),
            format!("BYMONTH={}", month()?),
            relative(days()?, index()?),
        ],
        other => return Err(format!("the pattern type '{other}' is not known")),
    };
    if interval > 1 {
        parts.push(format!("INTERVAL={interval}"));
    }
    match r["type"].as_str() {
        Some("noEnd") => {}
        Some("numbered") => {
            let n = r["numberOfOccurrences"]
                .as_u64()
                .filter(|n| *n > 0)
                .ok_or("numberOfOccurrences cannot be read")?;
            parts.push(format!("COUNT={n}"));
        }
        Some("endDate") => {
            let end = r["endDate"]
                .as_str()
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .ok_or("endDate cannot be read")?;
            parts.push(format!("UNTIL={}", until_of(end, start)));
        }
        _ => return Err("the range type is not known".into()),
    }
    let text = parts.join(";");
    let rule = recurrence::parse_rule(&text).ok_or("the pattern makes no valid rule")?;
    Ok(recurrence::normalize_rule(&rule))
}

/// RRULE's UNTIL for Graph's inclusive `endDate`: the end of that day's instance start, in
/// the series' frame (a date for all-day series, UTC otherwise).
fn until_of(end: NaiveDate, start: &Moment) -> String {
    match start {
        Moment::Date(_) => end.format("%Y%m%d").to_string(),
        Moment::Zoned(t, tz) => {
            let last = crate::model::zoned_to_utc(end.and_time(t.time()), *tz);
            last.format("%Y%m%dT%H%M%SZ").to_string()
        }
        Moment::Utc(t) | Moment::Floating(t) => {
            end.and_time(t.time()).format("%Y%m%dT%H%M%SZ").to_string()
        }
        Moment::Defined(t, zone) => Moment::Defined(end.and_time(t.time()), zone.clone())
            .to_utc()
            .format("%Y%m%dT%H%M%SZ")
            .to_string(),
    }
}

// ------------------------------------------------------------------------------------------
// Writing: the model → Graph.

/// A `dateTimeTimeZone` to write, and whether it is a date (all-day).
///
/// # Errors
/// A floating time: Graph has no way to hold one (every time names a zone), and guessing a
/// zone would publish a wrong time.
pub fn slot(m: &Moment) -> Result<(Value, bool), String> {
    match m {
        Moment::Date(d) => Ok((
            json!({"dateTime": format_wall(d.and_hms_opt(0, 0, 0).expect("midnight")), "timeZone": "UTC"}),
            true,
        )),
        Moment::Utc(t) => Ok((
            json!({"dateTime": format_wall(*t), "timeZone": "UTC"}),
            false,
        )),
        Moment::Zoned(t, tz) => Ok((
            json!({"dateTime": format_wall(*t), "timeZone": tz.name()}),
            false,
        )),
        Moment::Floating(_) => Err(
            "a floating time (no time zone) cannot be held by Microsoft 365; give the source \
             event a time zone"
                .into(),
        ),
        // A zone only the source feed defines has no name Graph knows: the instant, in UTC.
        // (A series in such a zone never fits Graph's patterns; it is written expanded.)
        Moment::Defined(..) => Ok((
            json!({"dateTime": format_wall(m.to_utc().naive_utc()), "timeZone": "UTC"}),
            false,
        )),
    }
}

/// The fields of published details as Graph event properties: subject, body (plain text),
/// location, categories, start, end, all-day. Always public, never a reminder, no attendee.
///
/// # Errors
/// Times Graph cannot hold (see [`slot`]).
pub fn event_fields(d: &PublicDetails) -> Result<serde_json::Map<String, Value>, String> {
    let (start, all_day) = slot(&d.start)?;
    let end_moment = match (&d.end, &d.start) {
        (Some(end), _) => end.clone(),
        (None, Moment::Date(day)) => Moment::Date(day.succ_opt().unwrap_or(*day)),
        (None, start) => start.clone(),
    };
    let (end, end_all_day) = slot(&end_moment)?;
    if all_day != end_all_day {
        return Err("start and end differ in kind (a date and a time)".into());
    }
    let mut fields = serde_json::Map::new();
    fields.insert("subject".into(), json!(d.title));
    fields.insert(
        "body".into(),
        json!({"contentType": "text", "content": d.description.clone().unwrap_or_default()}),
    );
    fields.insert(
        "location".into(),
        json!({"displayName": d.location.clone().unwrap_or_default()}),
    );
    fields.insert("categories".into(), json!(d.categories));
    fields.insert("start".into(), start);
    fields.insert("end".into(), end);
    fields.insert("isAllDay".into(), json!(all_day));
    fields.insert("sensitivity".into(), json!("normal"));
    fields.insert("isReminderOn".into(), json!(false));
    Ok(fields)
}

/// The Graph recurrence of a published series, when Graph's patterns hold it exactly: one
/// rule, no RDATE, a pattern Graph has, and the same instances over `[from, to)` as the
/// rule (checked by expanding both). `None` when it does not fit; then it is written
/// expanded.
pub fn fit(event: &PublicEvent, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<Value> {
    if event.rules.len() != 1 || !event.rdates.is_empty() || !event.periods.is_empty() {
        return None;
    }
    let start = &event.details.start;
    let (zone_name, start_day) = match start {
        Moment::Date(d) => ("UTC".to_string(), *d),
        Moment::Utc(t) => ("UTC".to_string(), t.date()),
        Moment::Zoned(t, tz) => (tz.name().to_string(), t.date()),
        // Graph's recurrence would follow its own idea of the zone's DST, not the feed's.
        Moment::Floating(_) | Moment::Defined(..) => return None,
    };
    let rule = recurrence::parse_rule(&event.rules[0])?;
    let untouched = rule.bysecond.is_empty()
        && rule.byminute.is_empty()
        && rule.byhour.is_empty()
        && rule.byyearday.is_empty()
        && rule.byweekno.is_empty()
        && rule.rscale.is_none()
        && rule.skip.is_none();
    if !untouched {
        return None;
    }
    let interval = rule.interval.unwrap_or(1).max(1);
    let plain_days = rule.byday.iter().all(|d| d.ordwk.is_none());
    let weekday_of_start = DAYS[start_day.weekday().num_days_from_sunday() as usize].2;
    let days = |list: &[calcard::icalendar::ICalendarDay]| -> Vec<&'static str> {
        list.iter().map(|d| day_name(d.weekday)).collect()
    };
    // (pattern type, daysOfWeek, dayOfMonth, month, index)
    let relative = || -> Option<(Vec<&'static str>, &'static str)> {
        match (rule.byday.as_slice(), rule.bysetpos.as_slice()) {
            ([one], []) => Some((
                vec![day_name(one.weekday)],
                pos_index(i32::from(one.ordwk?))?,
            )),
            (list, [pos]) if plain_days && !list.is_empty() => Some((days(list), pos_index(*pos)?)),
            _ => None,
        }
    };
    let day_ok = |d: i8| (1..=28).contains(&d);
    let mut pattern = json!({"interval": interval});
    match rule.freq {
        ICalendarFrequency::Daily => {
            if !(rule.byday.is_empty()
                && rule.bymonthday.is_empty()
                && rule.bymonth.is_empty()
                && rule.bysetpos.is_empty())
            {
                return None;
            }
            pattern["type"] = json!("daily");
        }
        ICalendarFrequency::Weekly => {
            if !(plain_days
                && rule.bymonthday.is_empty()
                && rule.bymonth.is_empty()
                && rule.bysetpos.is_empty())
            {
                return None;
            }
            let list = if rule.byday.is_empty() {
                vec![day_name(weekday_of_start)]
            } else {
                days(&rule.byday)
            };
            pattern["type"] = json!("weekly");
            pattern["daysOfWeek"] = json!(list);
            pattern["firstDayOfWeek"] =
                json!(day_name(rule.wkst.unwrap_or(ICalendarWeekday::Monday)));
        }
        ICalendarFrequency::Monthly | ICalendarFrequency::Yearly => {
            let yearly = rule.freq == ICalendarFrequency::Yearly;
            if yearly {
                let month = match rule.bymonth.as_slice() {
                    [] => start_day.month(),
                    [m] if !m.is_leap() => u32::from(m.month()),
                    _ => return None,
                };
                pattern["month"] = json!(month);
            } else if !rule.bymonth.is_empty() {
                return None;
            }
            if rule.byday.is_empty() {
                let day = match rule.bymonthday.as_slice() {
                    [] => start_day.day() as i8,
                    [d] => *d,
                    _ => return None,
                };
                if !day_ok(day) || !rule.bysetpos.is_empty() {
                    return None;
                }
                pattern["type"] = json!(if yearly {
                    "absoluteYearly"
                } else {
                    "absoluteMonthly"
                });
                pattern["dayOfMonth"] = json!(day);
            } else {
                if !rule.bymonthday.is_empty() {
                    return None;
                }
                let (list, index) = relative()?;
                pattern["type"] = json!(if yearly {
                    "relativeYearly"
                } else {
                    "relativeMonthly"
                });
                pattern["daysOfWeek"] = json!(list);
                pattern["index"] = json!(index);
            }
        }
        _ => return None,
    }
    if !on_pattern(start_day, &pattern) {
        // Graph starts a series on its first pattern day: a DTSTART off the pattern (an
        // extra instance in RFC 5545) cannot be held.
        return None;
    }
    let end = end_of(&event.details);
    let mut range = json!({
        "startDate": start_day.format("%Y-%m-%d").to_string(),
        "recurrenceTimeZone": zone_name,
    });
    let whole = Recurrence {
        rules: event.rules.clone(),
        rdates: vec![],
        periods: Vec::new(),
        exrules: Vec::new(),
        exdates: vec![],
    };
    match (rule.count, &rule.until) {
        (Some(n), None) => {
            range["type"] = json!("numbered");
            range["numberOfOccurrences"] = json!(n);
        }
        (None, Some(_)) => {
            // Graph keeps a date: the day of the rule's last instance, in the series' frame.
            let last = recurrence::instances(
                start,
                &end,
                &whole,
                start.to_utc() - Duration::days(1),
                recurrence::series_end(start, &end, &whole).ok()?? + Duration::days(1),
                recurrence::MAX_EXPANSION,
            )
            .ok()?
            .pop()?;
            range["type"] = json!("endDate");
            range["endDate"] = json!(last.start.naive().date().format("%Y-%m-%d").to_string());
        }
        (None, None) => range["type"] = json!("noEnd"),
        (Some(_), Some(_)) => return None,
    }
    let graph = json!({"pattern": pattern, "range": range});
    // The proof: Graph's pattern, read back as a rule, gives the same instances.
    let back = graph_rule(&graph, start, false).ok()?;
    let theirs = Recurrence {
        rules: vec![back],
        rdates: vec![],
        periods: Vec::new(),
        exrules: Vec::new(),
        exdates: vec![],
    };
    let limit = recurrence::MAX_EXPANSION;
    let ours = recurrence::instances(start, &end, &whole, from, to, limit).ok()?;
    let graphs = recurrence::instances(start, &end, &theirs, from, to, limit).ok()?;
    let same = ours.len() == graphs.len()
        && ours
            .iter()
            .zip(&graphs)
            .all(|(a, b)| a.start.to_utc() == b.start.to_utc());
    same.then_some(graph)
}

/// The exclusive end of published details, with RFC 5545's defaults.
pub fn end_of(d: &PublicDetails) -> Moment {
    match (&d.end, &d.start) {
        (Some(end), _) => end.clone(),
        (None, Moment::Date(day)) => Moment::Date(day.succ_opt().unwrap_or(*day)),
        (None, start) => start.clone(),
    }
}

/// Whether a Graph pattern puts an instance on `day` (interval aside: `day` is the start).
fn on_pattern(day: NaiveDate, pattern: &Value) -> bool {
    let weekday = |d: NaiveDate| day_name(DAYS[d.weekday().num_days_from_sunday() as usize].2);
    let days: Vec<&str> = pattern["daysOfWeek"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let relative_ok = || {
        let first = day.with_day(1).expect("day 1 exists");
        let candidates: Vec<NaiveDate> = first
            .iter_days()
            .take_while(|d| d.month() == first.month())
            .filter(|d| days.contains(&weekday(*d)))
            .collect();
        let chosen = match pattern["index"].as_str().and_then(index_pos) {
            Some(-1) => candidates.last(),
            Some(n) => candidates.get(n as usize - 1),
            None => None,
        };
        chosen == Some(&day)
    };
    let month_ok = pattern["month"]
        .as_u64()
        .is_none_or(|m| u64::from(day.month()) == m);
    match pattern["type"].as_str() {
        Some("daily") => true,
        Some("weekly") => days.contains(&weekday(day)),
        Some("absoluteMonthly" | "absoluteYearly") => {
            month_ok && pattern["dayOfMonth"].as_u64() == Some(u64::from(day.day()))
        }
        Some("relativeMonthly" | "relativeYearly") => month_ok && relative_ok(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PublicDetails;

    fn berlin(t: &str) -> Moment {
        format!("{t}[Europe/Berlin]").parse().unwrap()
    }

    fn series(start: Moment, rules: &[&str], rdates: Vec<Moment>) -> PublicEvent {
        PublicEvent {
            uid: "u@calsync".into(),
            details: PublicDetails {
                start,
                end: None,
                title: "T".into(),
                location: None,
                description: None,
                categories: vec![],
            },
            rules: rules.iter().map(|r| r.to_string()).collect(),
            rdates,
            periods: Vec::new(),
            exdates: vec![],
            overrides: vec![],
        }
    }

    fn window() -> (DateTime<Utc>, DateTime<Utc>) {
        (
            "2026-01-01T00:00:00Z".parse().unwrap(),
            "2027-06-01T00:00:00Z".parse().unwrap(),
        )
    }

    #[test]
    fn windows_and_iana_zones_are_read_and_instants_kept() {
        assert_eq!(
            zone("W. Europe Standard Time"),
            Some(chrono_tz::Europe::Berlin)
        );
        assert_eq!(zone("Europe/Vienna"), Some(chrono_tz::Europe::Vienna));
        assert_eq!(zone("UTC"), Some(chrono_tz::Tz::UTC));
        assert_eq!(zone("Customized Time Zone"), None);
        let slot = json!({"dateTime": "2026-05-04T17:00:00.0000000", "timeZone": "UTC"});
        assert_eq!(
            moment(&slot, false, chrono_tz::Europe::Berlin),
            Some(berlin("2026-05-04T19:00:00"))
        );
        let all_day = json!({"dateTime": "2026-06-13T00:00:00.0000000", "timeZone": "UTC"});
        assert_eq!(
            moment(&all_day, true, chrono_tz::Europe::Berlin),
            Some("2026-06-13".parse().unwrap())
        );
    }

    #[test]
    fn graph_patterns_become_rules() {
        let start = berlin("2026-05-04T19:00:00");
        let cases = [
            (
                json!({"type": "daily", "interval": 2}),
                json!({"type": "noEnd", "startDate": "2026-05-04"}),
                "FREQ=DAILY;INTERVAL=2",
            ),
            (
                json!({"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "thursday"], "firstDayOfWeek": "monday"}),
                json!({"type": "numbered", "startDate": "2026-05-04", "numberOfOccurrences": 6}),
                "FREQ=WEEKLY;COUNT=6;BYDAY=MO,TH",
            ),
            (
                json!({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 4}),
                json!({"type": "endDate", "startDate": "2026-05-04", "endDate": "2026-12-31"}),
                "FREQ=MONTHLY;UNTIL=20261231T180000Z;BYMONTHDAY=4",
            ),
            (
                json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["monday"], "index": "first"}),
                json!({"type": "noEnd", "startDate": "2026-05-04"}),
                "FREQ=MONTHLY;BYDAY=1MO",
            ),
            (
                json!({"type": "relativeYearly", "interval": 1, "daysOfWeek": ["monday"], "index": "last", "month": 5}),
                json!({"type": "noEnd", "startDate": "2026-05-04"}),
                "FREQ=YEARLY;BYDAY=-1MO;BYMONTH=5",
            ),
        ];
        for (pattern, range, want) in cases {
            let rule =
                graph_rule(&json!({"pattern": pattern, "range": range}), &start, false).unwrap();
            assert_eq!(rule, want);
        }
    }

    #[test]
    fn only_rules_graph_holds_exactly_fit() {
        let (from, to) = window();
        let monday = berlin("2026-05-04T19:00:00");
        for rule in [
            "FREQ=WEEKLY;BYDAY=MO",
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;COUNT=9",
            "FREQ=DAILY;UNTIL=20260601T170000Z",
            "FREQ=MONTHLY;BYDAY=1MO",
            "FREQ=MONTHLY;BYMONTHDAY=4",
            "FREQ=YEARLY;BYMONTH=5;BYMONTHDAY=4",
            "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=2",
        ] {
            assert!(
                fit(&series(monday.clone(), &[rule], vec![]), from, to).is_some(),
                "{rule}"
            );
        }
        for rule in [
            "FREQ=MONTHLY;BYDAY=1MO,3MO",
            "FREQ=MONTHLY;BYMONTHDAY=31",
            "FREQ=DAILY;BYHOUR=19,21",
            "FREQ=HOURLY;INTERVAL=6",
            "FREQ=WEEKLY;BYDAY=TU",
        ] {
            assert!(
                fit(&series(monday.clone(), &[rule], vec![]), from, to).is_none(),
                "{rule}"
            );
        }
        let with_rdate = series(
            monday.clone(),
            &["FREQ=WEEKLY"],
            vec![berlin("2026-05-07T19:00:00")],
        );
        assert!(fit(&with_rdate, from, to).is_none());
    }

    #[test]
    fn until_becomes_the_date_of_the_last_instance() {
        let (from, to) = window();
        let e = series(
            berlin("2026-05-04T19:00:00"),
            &["FREQ=WEEKLY;UNTIL=20260601T000000Z"],
            vec![],
        );
        let graph = fit(&e, from, to).unwrap();
        assert_eq!(graph["range"]["endDate"], "2026-05-25");
        assert_eq!(graph["range"]["recurrenceTimeZone"], "Europe/Berlin");
    }

    #[test]
    fn floating_times_are_refused_not_guessed() {
        assert!(slot(&"2026-05-04T19:00:00".parse().unwrap()).is_err());
    }
}
