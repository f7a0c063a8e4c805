//! Google Calendar event resources ↔ the common model. Pure: JSON in, model out (and back);
//! no I/O, no clock.
//!
//! Reading (a source): an event's `start`/`end` become [`Moment`]s in the event's own IANA
//! zone; its `visibility` travels as [`Marking::Visibility`] exactly as spelled (absent stays
//! absent, which Google defines as `default`), for `policy` to judge; an `eventType` other
//! than `default` (out of office, focus time, working location…) is marked so that the policy
//! can only withhold it. `recurrence[]` lines are read by the iCalendar reader, so a Google
//! series and a feed's series mean the same and an RRULE that cannot be read exactly
//! withholds its event there as here. A description the web UI wrote as HTML becomes text.
//! Nothing else is read: attendees, organizer, Meet data (`hangoutLink`, `conferenceData`),
//! attachments and reminders never reach the model.
//!
//! Writing (a target): only what calsync publishes, explicitly public, no attendees, reminders
//! off, and the ownership tag in `extendedProperties.private`. Reading that back gives the
//! published shape again, with the markings and anything calsync never writes listed.

use crate::model::{
    Details, Marking, Moment, Override, PublicDetails, PublicEvent, PublicOverride, Recurrence,
    SourceEvent, SourceKey,
};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value, json};

/// The private extended property holding an event's tag.
pub const TAG_KEY: &str = "calsyncTag";
/// The private extended property naming the pair (the tag's prefix): what `list_owned`
/// filters on, since Google filters extended properties by exact value only.
pub const PAIR_KEY: &str = "calsyncPair";
/// The private extended property keeping the published categories (Google has none), so that
/// reading an event back gives what was published.
pub const CATEGORIES_KEY: &str = "calsyncCategories";
/// Google's limit on an extended property's value (unverified, as API-NOTES says).
const MAX_PROPERTY_VALUE: usize = 1024;

/// A field of a resource as a string, if it is one.
pub fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

pub fn is_cancelled(v: &Value) -> bool {
    text(v, "status") == Some("cancelled")
}

/// The `recurrence[]` lines of a master, if it has any.
pub fn recurrence_lines(v: &Value) -> Option<&Vec<Value>> {
    v.get("recurrence")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
}

// ------------------------------------------------------------------------------------------
// Times.

/// A zone name as Google writes it (IANA), in any letter case.
fn zone(name: &str) -> Option<chrono_tz::Tz> {
    name.parse::<chrono_tz::Tz>().ok().or_else(|| {
        chrono_tz::TZ_VARIANTS
            .iter()
            .find(|tz| tz.name().eq_ignore_ascii_case(name))
            .copied()
    })
}

fn is_utc(tz: chrono_tz::Tz) -> bool {
    matches!(tz, chrono_tz::UTC | chrono_tz::Etc::UTC)
}

/// A `start`/`end`/`originalStartTime` object as a moment: `{date}` is a date; `{dateTime,
/// timeZone}` is the wall-clock time in that zone (UTC when the zone is UTC or absent).
///
/// # Errors
/// A missing or unreadable value, or a zone that is not an IANA name (named in the text).
pub fn moment_of(point: Option<&Value>) -> Result<Moment, String> {
    let point = point
        .and_then(Value::as_object)
        .ok_or("a time is missing")?;
    let tz = match point.get("timeZone").and_then(Value::as_str) {
        None | Some("") => None,
        Some(name) => Some(zone(name).ok_or_else(|| format!("unknown time zone {name:?}"))?),
    };
    if let Some(date) = point.get("date").and_then(Value::as_str) {
        return NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .map(Moment::Date)
            .map_err(|_| "a date cannot be read".to_string());
    }
    let text = point
        .get("dateTime")
        .and_then(Value::as_str)
        .ok_or("a time has neither date nor dateTime")?;
    let bad = || "a dateTime cannot be read".to_string();
    match (DateTime::parse_from_rfc3339(text), tz) {
        (Ok(t), Some(tz)) if !is_utc(tz) => {
            Ok(Moment::Zoned(t.with_timezone(&tz).naive_local(), tz))
        }
        (Ok(t), _) => Ok(Moment::Utc(t.with_timezone(&Utc).naive_utc())),
        // Without an offset, the wall-clock time in the named zone.
        (Err(_), Some(tz)) => {
            let local =
                NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map_err(|_| bad())?;
            Ok(if is_utc(tz) {
                Moment::Utc(local)
            } else {
                Moment::Zoned(local, tz)
            })
        }
        (Err(_), None) => Err(bad()),
    }
}

/// A moment as a `start`/`end` object. A floating time (no zone) is placed in `floating`, the
/// target calendar's own zone: what a person typing the time into that calendar would get.
pub fn point_json(m: &Moment, floating: &str) -> Value {
    match m {
        Moment::Date(d) => json!({ "date": d.format("%Y-%m-%d").to_string() }),
        Moment::Utc(t) => json!({
            "dateTime": format!("{}Z", t.format("%Y-%m-%dT%H:%M:%S")),
            "timeZone": "UTC",
        }),
        Moment::Zoned(t, tz) => json!({
            "dateTime": t.format("%Y-%m-%dT%H:%M:%S").to_string(),
            "timeZone": tz.name(),
        }),
        Moment::Floating(t) => json!({
            "dateTime": t.format("%Y-%m-%dT%H:%M:%S").to_string(),
            "timeZone": floating,
        }),
        // A zone only the source feed defines has no IANA name Google would know: the
        // instant, in UTC. (A series in such a zone is refused before it gets here: its
        // instances would move with Google's idea of the zone's DST.)
        Moment::Defined(..) => json!({
            "dateTime": m.to_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "timeZone": "UTC",
        }),
    }
}

/// A moment as an iCalendar property's parameters and value (`;TZID=…`, `2026…`).
fn ical_value(m: &Moment, floating: &str) -> (String, String) {
    match m {
        Moment::Date(d) => (";VALUE=DATE".into(), d.format("%Y%m%d").to_string()),
        Moment::Utc(t) => (String::new(), t.format("%Y%m%dT%H%M%SZ").to_string()),
        Moment::Zoned(t, tz) => (
            format!(";TZID={}", tz.name()),
            t.format("%Y%m%dT%H%M%S").to_string(),
        ),
        Moment::Floating(t) => (
            format!(";TZID={floating}"),
            t.format("%Y%m%dT%H%M%S").to_string(),
        ),
        Moment::Defined(..) => (
            String::new(),
            m.to_utc().format("%Y%m%dT%H%M%SZ").to_string(),
        ),
    }
}

/// The RFC 3339 instant of a moment (dates at midnight UTC), for query parameters.
pub fn rfc3339(m: &Moment) -> String {
    m.to_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

// ------------------------------------------------------------------------------------------
// Recurrence.

/// Google's `recurrence[]` lines (no DTSTART: the series starts at `start`) read exactly as an
/// iCalendar feed's would be: RDATE and EXDATE in the series' type and zone, rules checked.
///
/// # Errors
/// A line that is not an `RRULE`/`EXRULE`/`RDATE`/`EXDATE` string, or one the iCalendar reader
/// refuses (an RRULE it cannot read exactly, an unknown zone): the event is withheld.
pub fn recurrence_of(start: &Moment, lines: &[Value]) -> Result<Option<Recurrence>, String> {
    let mut text = String::from(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//google//EN\r\nBEGIN:VEVENT\r\nUID:series\r\n",
    );
    let (params, value) = ical_value(start, "UTC");
    text.push_str(&format!("DTSTART{params}:{value}\r\n"));
    for line in lines {
        let line = line.as_str().ok_or("a recurrence line is not a string")?;
        // One property per line and nothing else: no line breaks, no other property.
        if line.chars().any(char::is_control) {
            return Err("a recurrence line holds a control character".into());
        }
        let name = line
            .split([':', ';'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        if !["RRULE", "EXRULE", "RDATE", "EXDATE"].contains(&name.as_str()) {
            return Err("a recurrence line is not RRULE, EXRULE, RDATE or EXDATE".into());
        }
        text.push_str(line.trim());
        text.push_str("\r\n");
    }
    text.push_str("END:VEVENT\r\nEND:VCALENDAR\r\n");
    let feed = crate::ical::parse_feed(text.as_bytes()).map_err(|e| e.to_string())?;
    if let Some(skipped) = feed.skipped.first() {
        return Err(skipped.reason.to_string());
    }
    let event = feed
        .events
        .into_iter()
        .next()
        .ok_or("the recurrence cannot be read")?;
    Ok(event.recurrence)
}

/// A published series as `recurrence[]` lines.
fn recurrence_json(e: &PublicEvent, floating: &str) -> Vec<String> {
    let mut lines: Vec<String> = e.rules.iter().map(|r| format!("RRULE:{r}")).collect();
    for (name, list) in [("RDATE", &e.rdates), ("EXDATE", &e.exdates)] {
        for m in list {
            let (params, value) = ical_value(m, floating);
            lines.push(format!("{name}{params}:{value}"));
        }
    }
    lines
}

// ------------------------------------------------------------------------------------------
// Reading a source.

/// Whether a description looks like the HTML Google's web UI writes (`<br>`, `<a href…>`,
/// `<b>`…), rather than plain text that happens to hold a `<`.
fn looks_like_html(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.windows(2).enumerate().any(|(i, w)| {
        w[0] == b'<' && (w[1].is_ascii_alphabetic() || w[1] == b'/') && s[i..].contains('>')
    })
}

/// The marking an event is judged by: its `visibility` as spelled (absent stays absent). An
/// event that is not a plain event (`eventType` out of office, focus time, working location,
/// birthday…) is not mirrored: it carries a marking that no rule reads as public.
fn marking_of(v: &Value) -> Marking {
    match v.get("eventType").and_then(Value::as_str) {
        None | Some("default") => {}
        Some(other) => return Marking::Visibility(Some(format!("eventType:{other}"))),
    }
    if !v.get("eventType").is_none_or(Value::is_string) {
        return Marking::Visibility(Some("eventType:unreadable".into()));
    }
    match v.get("visibility") {
        None | Some(Value::Null) => Marking::Visibility(None),
        Some(Value::String(s)) => Marking::Visibility(Some(s.clone())),
        Some(_) => Marking::Visibility(Some("unreadable".into())),
    }
}

/// What one event (or modified instance) says.
///
/// # Errors
/// A start or end that cannot be read.
pub fn details_of(v: &Value) -> Result<Details, String> {
    let start = moment_of(v.get("start"))?;
    let end = match v.get("end") {
        None | Some(Value::Null) => None,
        Some(end) => Some(moment_of(Some(end))?),
    };
    let description = text(v, "description").map(|d| {
        if looks_like_html(d) {
            crate::html::to_text(d)
        } else {
            d.to_string()
        }
    });
    Ok(Details {
        start,
        end,
        title: text(v, "summary").map(str::to_string),
        location: text(v, "location").map(str::to_string),
        description,
        categories: Vec::new(),
        marking: marking_of(v),
        cancelled: is_cancelled(v),
    })
}

/// One source item: a single event, or a series master with its modified and cancelled
/// instances (`exceptions`: items whose `recurringEventId` is the master's id). A cancelled
/// instance is an override marked cancelled, so the policy removes it from the series.
///
/// # Errors
/// A time, zone or recurrence that cannot be read exactly: the item is withheld.
pub fn source_event(master: &Value, exceptions: &[&Value]) -> Result<SourceEvent, String> {
    let id = text(master, "id").ok_or("an event without id")?;
    let main = details_of(master)?;
    let recurrence = match recurrence_lines(master) {
        Some(lines) => recurrence_of(&main.start, lines)?,
        None => None,
    };
    let mut overrides: Vec<Override> = Vec::new();
    if recurrence.is_some() {
        for ex in exceptions {
            let original = moment_of(ex.get("originalStartTime"))?;
            let recurrence_id = crate::recurrence::in_series_form(&original, &main.start);
            let details = if is_cancelled(ex) {
                // Google keeps only id, recurringEventId and originalStartTime of a
                // cancelled instance.
                Details {
                    start: recurrence_id.clone(),
                    end: None,
                    title: None,
                    location: None,
                    description: None,
                    categories: Vec::new(),
                    marking: main.marking.clone(),
                    cancelled: true,
                }
            } else {
                details_of(ex)?
            };
            // One instance twice (a replay): the later word wins.
            overrides.retain(|o| o.recurrence_id != recurrence_id);
            overrides.push(Override {
                recurrence_id,
                details,
            });
        }
        overrides.sort_by(|a, b| a.recurrence_id.cmp(&b.recurrence_id));
    }
    Ok(SourceEvent {
        key: SourceKey(id.to_string()),
        main,
        recurrence,
        overrides,
    })
}

// ------------------------------------------------------------------------------------------
// Writing a target.

/// What calsync writes of one event or instance: its published fields, explicitly public,
/// confirmed, no reminders, and the ownership properties.
fn body_of(d: &PublicDetails, tag: &str, pair_prefix: &str, floating: &str) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("summary".into(), json!(d.title));
    body.insert(
        "location".into(),
        d.location.as_deref().map_or(Value::Null, |l| json!(l)),
    );
    body.insert(
        "description".into(),
        d.description.as_deref().map_or(Value::Null, |l| json!(l)),
    );
    body.insert("start".into(), point_json(&d.start, floating));
    body.insert("end".into(), point_json(&end_of(d), floating));
    body.insert("visibility".into(), json!("public"));
    body.insert("status".into(), json!("confirmed"));
    body.insert("reminders".into(), json!({ "useDefault": false }));
    let mut private = Map::new();
    private.insert(TAG_KEY.into(), json!(tag));
    private.insert(PAIR_KEY.into(), json!(pair_prefix));
    if !d.categories.is_empty() {
        let list = serde_json::to_string(&d.categories).expect("strings serialise");
        if list.chars().count() <= MAX_PROPERTY_VALUE {
            private.insert(CATEGORIES_KEY.into(), json!(list));
        }
    }
    body.insert(
        "extendedProperties".into(),
        json!({ "private": Value::Object(private) }),
    );
    // Absent fields must not be sent as null on insert (Google would read them as set).
    body.retain(|_, v| !v.is_null());
    body
}

/// The exclusive end, with RFC 5545's defaults (Google needs one).
fn end_of(d: &PublicDetails) -> Moment {
    match (&d.end, &d.start) {
        (Some(end), _) => end.clone(),
        (None, Moment::Date(day)) => Moment::Date(day.succ_opt().unwrap_or(*day)),
        (None, start) => start.clone(),
    }
}

/// The body of an insert (`id` given) or a full update (PUT) of a published item's master.
pub fn master_body(
    e: &PublicEvent,
    id: Option<&str>,
    tag: &str,
    pair_prefix: &str,
    floating: &str,
) -> Value {
    let mut body = body_of(&e.details, tag, pair_prefix, floating);
    if let Some(id) = id {
        body.insert("id".into(), json!(id));
    }
    if e.is_series() || !e.exdates.is_empty() {
        body.insert("recurrence".into(), json!(recurrence_json(e, floating)));
    }
    Value::Object(body)
}

/// The body of a PUT to one instance of a series: `details`, at the instance's place.
pub fn instance_body(
    instance: &Value,
    details: &PublicDetails,
    tag: &str,
    pair_prefix: &str,
    floating: &str,
) -> Value {
    let mut body = body_of(details, tag, pair_prefix, floating);
    for key in ["recurringEventId", "originalStartTime"] {
        if let Some(v) = instance.get(key) {
            body.insert(key.into(), v.clone());
        }
    }
    Value::Object(body)
}

// ------------------------------------------------------------------------------------------
// Reading a target back.

/// One of calsync's events read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBack {
    pub tag: Option<String>,
    pub event: PublicEvent,
    /// `visibility` of the master and of each modified instance.
    pub markings: Vec<Marking>,
    /// What calsync never writes that the event carries.
    pub foreign: Vec<String>,
}

/// The tag in an event's private extended properties.
pub fn tag_of(v: &Value) -> Option<&str> {
    v.pointer(&format!("/extendedProperties/private/{TAG_KEY}"))
        .and_then(Value::as_str)
}

/// What calsync never writes that an event (or instance) carries.
fn foreign_of(v: &Value, out: &mut Vec<String>) {
    let mut add = |name: &str| {
        if !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    };
    if v.get("attendees")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        add("attendees");
    }
    if v.get("hangoutLink").is_some() || v.get("conferenceData").is_some() {
        add("conferenceData");
    }
    if v.get("attachments")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        add("attachments");
    }
    let reminders = v.get("reminders");
    let default_reminders = reminders
        .and_then(|r| r.get("useDefault"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let own_reminders = reminders
        .and_then(|r| r.get("overrides"))
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if default_reminders || own_reminders {
        add("reminders");
    }
}

fn public_details_of(v: &Value) -> Result<PublicDetails, String> {
    let categories = v
        .pointer(&format!("/extendedProperties/private/{CATEGORIES_KEY}"))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok())
        .unwrap_or_default();
    Ok(PublicDetails {
        start: moment_of(v.get("start"))?,
        end: match v.get("end") {
            None | Some(Value::Null) => None,
            Some(end) => Some(moment_of(Some(end))?),
        },
        title: text(v, "summary").unwrap_or("").to_string(),
        location: text(v, "location")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        description: text(v, "description")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        categories,
    })
}

/// A master (or single event) and its exceptions, read back into the published shape. The
/// UID is the one calsync derived, recovered from the tag.
///
/// # Errors
/// Times or recurrence that cannot be read.
pub fn read_back(master: &Value, exceptions: &[&Value]) -> Result<ReadBack, String> {
    let tag = tag_of(master).map(str::to_string);
    let details = public_details_of(master)?;
    let mut markings = vec![marking_of(master)];
    let mut foreign = Vec::new();
    foreign_of(master, &mut foreign);
    let rec = match recurrence_lines(master) {
        Some(lines) => recurrence_of(&details.start, lines)?.unwrap_or_default(),
        None => Recurrence::default(),
    };
    let mut exdates = rec.exdates;
    let mut overrides = Vec::new();
    for ex in exceptions {
        let original = moment_of(ex.get("originalStartTime"))?;
        let recurrence_id = crate::recurrence::in_series_form(&original, &details.start);
        if is_cancelled(ex) {
            // An instance removed in the target is not shown: as good as an EXDATE.
            exdates.push(recurrence_id);
            continue;
        }
        markings.push(marking_of(ex));
        foreign_of(ex, &mut foreign);
        let own = public_details_of(ex)?;
        // An instance written back to the series' own details (an override undone) is no
        // override: Google keeps it as an exception all the same.
        let plain = at_instance(&details, &details.start, &recurrence_id);
        if with_end(&own) == with_end(&plain) {
            continue;
        }
        overrides.push(PublicOverride {
            recurrence_id,
            details: own,
        });
    }
    exdates.sort();
    exdates.dedup();
    let mut rdates = rec.rdates;
    rdates.sort();
    rdates.dedup();
    overrides.sort_by(|a, b| a.recurrence_id.cmp(&b.recurrence_id));
    let uid = tag
        .as_deref()
        .and_then(|t| t.split_once('.'))
        .map(|(_, digest)| format!("{digest}@calsync"))
        .unwrap_or_default();
    Ok(ReadBack {
        tag,
        event: PublicEvent {
            uid,
            details,
            rules: rec.rules,
            rdates,
            periods: Vec::new(),
            exdates,
            overrides,
        },
        markings,
        foreign,
    })
}

fn with_end(d: &PublicDetails) -> PublicDetails {
    let mut d = d.clone();
    d.end = Some(end_of(&d));
    d
}

/// `e` with every end written out (Google always holds one), for comparing what is wanted
/// with what was read back.
pub fn with_ends(e: &PublicEvent) -> PublicEvent {
    let mut e = e.clone();
    e.details.end = Some(end_of(&e.details));
    for o in &mut e.overrides {
        o.details.end = Some(end_of(&o.details));
    }
    e
}

/// The series' own details moved to the instance that originally starts at `rid`.
pub fn at_instance(details: &PublicDetails, start: &Moment, rid: &Moment) -> PublicDetails {
    let mut d = details.clone();
    let end = d.end.clone();
    d.start = crate::recurrence::in_series_form(rid, start);
    d.end = end.map(|end| match (&end, start, &d.start) {
        (Moment::Date(e), Moment::Date(s), Moment::Date(n)) => Moment::Date(*n + (*e - *s)),
        _ => shift(&end, d.start.naive() - start.naive()),
    });
    d
}

fn shift(m: &Moment, by: chrono::TimeDelta) -> Moment {
    match m {
        Moment::Date(d) => Moment::Date(*d + chrono::TimeDelta::days(by.num_days())),
        Moment::Utc(t) => Moment::Utc(*t + by),
        Moment::Zoned(t, tz) => Moment::Zoned(*t + by, *tz),
        Moment::Floating(t) => Moment::Floating(*t + by),
        Moment::Defined(t, zone) => Moment::Defined(*t + by, zone.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Moment {
        s.parse().unwrap()
    }

    #[test]
    fn times_are_read_in_their_own_zone() {
        let zoned = json!({"dateTime": "2026-05-04T10:00:00+02:00", "timeZone": "Europe/Berlin"});
        assert_eq!(
            moment_of(Some(&zoned)).unwrap(),
            m("2026-05-04T10:00:00[Europe/Berlin]")
        );
        let utc = json!({"dateTime": "2026-05-04T10:00:00+02:00"});
        assert_eq!(moment_of(Some(&utc)).unwrap(), m("2026-05-04T08:00:00Z"));
        let local = json!({"dateTime": "2026-05-04T10:00:00", "timeZone": "europe/berlin"});
        assert_eq!(
            moment_of(Some(&local)).unwrap(),
            m("2026-05-04T10:00:00[Europe/Berlin]")
        );
        assert_eq!(
            moment_of(Some(&json!({"date": "2026-05-04"}))).unwrap(),
            m("2026-05-04")
        );
        assert!(moment_of(Some(&json!({"dateTime": "2026-05-04T10:00:00"}))).is_err());
        assert!(
            moment_of(Some(
                &json!({"dateTime": "2026-05-04T10:00:00Z", "timeZone": "Mars/Olympus"})
            ))
            .unwrap_err()
            .contains("Mars/Olympus")
        );
        assert!(moment_of(Some(&json!({"dateTime": "T1300Z"}))).is_err());
    }

    #[test]
    fn written_times_read_back_the_same() {
        for s in [
            "2026-05-04",
            "2026-05-04T10:00:00Z",
            "2026-05-04T10:00:00[Europe/Berlin]",
        ] {
            assert_eq!(moment_of(Some(&point_json(&m(s), "UTC"))).unwrap(), m(s));
        }
        assert_eq!(
            moment_of(Some(&point_json(
                &m("2026-05-04T10:00:00"),
                "Europe/Vienna"
            )))
            .unwrap(),
            m("2026-05-04T10:00:00[Europe/Vienna]")
        );
    }

    #[test]
    fn recurrence_lines_are_read_like_a_feed() {
        let start = m("2026-05-04T10:00:00[Europe/Berlin]");
        let rec = recurrence_of(
            &start,
            &[
                json!("RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=5"),
                json!("EXDATE;TZID=Europe/Berlin:20260511T100000"),
                json!("RDATE:20260520T080000Z"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(rec.rules.len(), 1);
        assert_eq!(rec.exdates, [m("2026-05-11T10:00:00[Europe/Berlin]")]);
        assert_eq!(rec.rdates, [m("2026-05-20T10:00:00[Europe/Berlin]")]);
        for bad in [
            json!("RRULE:FREQ=SOMETIMES"),
            json!("RRULE:FREQ=WEEKLY;BYDAY=XX"),
            json!("RRULE:FREQ=WEEKLY\r\nBEGIN:VEVENT"),
            json!("DTSTART:20260101T000000Z"),
            json!("SUMMARY:x"),
            json!(3),
        ] {
            assert!(
                recurrence_of(&start, std::slice::from_ref(&bad)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn markings_keep_the_spelling_and_other_event_types_are_never_public() {
        assert_eq!(marking_of(&json!({})), Marking::Visibility(None));
        assert_eq!(
            marking_of(&json!({"visibility": "secret"})),
            Marking::Visibility(Some("secret".into()))
        );
        let ooo = marking_of(&json!({"visibility": "public", "eventType": "outOfOffice"}));
        assert!(!crate::policy::is_public(
            &ooo,
            crate::policy::Visibility::Public
        ));
        assert_eq!(
            marking_of(&json!({"visibility": "public", "eventType": "default"})),
            Marking::Visibility(Some("public".into()))
        );
    }

    #[test]
    fn html_descriptions_become_text_and_plain_ones_stay() {
        let v =
            json!({"start": {"date": "2026-05-04"}, "description": "Line one<br>Line <b>two</b>"});
        assert_eq!(
            details_of(&v).unwrap().description.unwrap(),
            "Line one\nLine two"
        );
        let v = json!({"start": {"date": "2026-05-04"}, "description": "a < b and c > d"});
        assert_eq!(
            details_of(&v).unwrap().description.unwrap(),
            "a < b and c > d"
        );
    }

    #[test]
    fn a_series_reads_its_modified_and_cancelled_instances() {
        let master = json!({
            "id": "s1", "visibility": "public",
            "start": {"dateTime": "2026-05-04T10:00:00+02:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2026-05-04T11:00:00+02:00", "timeZone": "Europe/Berlin"},
            "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=4"],
        });
        let private = json!({
            "id": "s1_x", "recurringEventId": "s1", "visibility": "private",
            "originalStartTime": {"dateTime": "2026-05-11T10:00:00+02:00", "timeZone": "Europe/Berlin"},
            "start": {"dateTime": "2026-05-11T12:00:00+02:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2026-05-11T13:00:00+02:00", "timeZone": "Europe/Berlin"},
        });
        let cancelled = json!({
            "id": "s1_y", "recurringEventId": "s1", "status": "cancelled",
            "originalStartTime": {"dateTime": "2026-05-18T08:00:00Z"},
        });
        let e = source_event(&master, &[&private, &cancelled]).unwrap();
        assert_eq!(e.overrides.len(), 2);
        assert_eq!(
            e.overrides[0].recurrence_id,
            m("2026-05-11T10:00:00[Europe/Berlin]")
        );
        assert_eq!(
            e.overrides[1].recurrence_id,
            m("2026-05-18T10:00:00[Europe/Berlin]")
        );
        assert!(e.overrides[1].details.cancelled);
    }

    #[test]
    fn written_events_read_back_as_published() {
        let event = PublicEvent {
            uid: "ab12@calsync".into(),
            details: PublicDetails {
                start: m("2026-05-04T10:00:00[Europe/Berlin]"),
                end: Some(m("2026-05-04T11:00:00[Europe/Berlin]")),
                title: "Mass".into(),
                location: Some("Church".into()),
                description: None,
                categories: vec!["Parish".into()],
            },
            rules: vec!["FREQ=WEEKLY;COUNT=4".into()],
            rdates: vec![],
            periods: vec![],
            exdates: vec![m("2026-05-11T10:00:00[Europe/Berlin]")],
            overrides: vec![],
        };
        let body = master_body(&event, Some("id1"), "p.ab12", "p", "UTC");
        assert_eq!(body["visibility"], "public");
        assert_eq!(body["reminders"]["useDefault"], false);
        assert!(body.get("attendees").is_none() && body.get("description").is_none());
        let back = read_back(&body, &[]).unwrap();
        assert_eq!(back.event, event);
        assert_eq!(back.tag.as_deref(), Some("p.ab12"));
        assert!(back.foreign.is_empty());
        assert!(back.markings.iter().all(crate::policy::is_marked_public));
    }
}
