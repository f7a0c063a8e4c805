//! Feed text → [`SourceEvent`]s: VEVENTs grouped by UID into a master and its overrides.
//!
//! Fail closed: an item that cannot be read faithfully is left out whole and reported in
//! [`Feed::skipped`] (a series whose override cannot be read is left out with it, since that
//! override may be what made an instance private). The privacy marking is taken from the raw
//! text, as written, for `policy` to judge.

use super::lines::{self, Block};
use super::zones::Zones;
use super::{Feed, IcalError, SkipReason, Skipped};
use crate::hashing::sha256_hex;
use crate::model::{
    Details, Marking, Moment, Override, PublicDetails, PublicEvent, PublicOverride, Recurrence,
    SourceEvent, SourceKey,
};
use crate::recurrence::{in_series_form, normalize_rule, validate};
use calcard::common::PartialDateTime;
use calcard::icalendar::{
    ICalendarComponent, ICalendarEntry, ICalendarParameterName, ICalendarParameterValue,
    ICalendarPeriod, ICalendarProperty, ICalendarValue,
};
use calcard::{Entry, Parser};
use chrono::{NaiveDate, TimeDelta};
use std::collections::{HashMap, HashSet};

/// Reads a whole feed, or one CalDAV resource (a VCALENDAR with one UID's master and
/// overrides). Only VEVENTs are read; VTODO, VJOURNAL and VFREEBUSY are ignored.
///
/// Keys: the UID; an override whose master is not in the feed stands alone as
/// `UID#<recurrence id>` (the [`Moment`] text form); a VEVENT without UID gets `nouid:` and
/// the SHA-256 of its unfolded text, stable while it is unchanged.
///
/// # Errors
/// [`IcalError`] when the bytes are not a calendar, are cut short, or nest components wrongly.
/// Problems of single events are not errors: they land in [`Feed::skipped`].
pub fn parse_feed(bytes: &[u8]) -> Result<Feed, IcalError> {
    let text = lines::unfold(bytes);
    let blocks = lines::components(&text)?;
    let zones = Zones::new(blocks.iter().filter(|b| b.kind == "VTIMEZONE"));

    let mut groups: Vec<Group> = Vec::new();
    let mut by_uid: HashMap<String, usize> = HashMap::new();
    for block in blocks.iter().filter(|b| b.kind == "VEVENT") {
        let vevent = read_vevent(block, &zones)?;
        let id = match &vevent.uid {
            Some(uid) => uid.clone(),
            None => format!("nouid:{}", sha256_hex(block.text().as_bytes())),
        };
        let index = *by_uid.entry(id.clone()).or_insert_with(|| {
            groups.push(Group {
                id,
                has_uid: vevent.uid.is_some(),
                members: Vec::new(),
            });
            groups.len() - 1
        });
        groups[index].members.push(vevent);
    }

    let mut feed = Feed::default();
    let mut keys = HashSet::new();
    for group in groups {
        group.resolve(&mut feed, &mut keys);
    }
    Ok(feed)
}

/// A published item read back from a target: what calsync wrote, or what someone made of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBack {
    /// `X-CALSYNC-TAG` of the master, when it carries one (events without are not calsync's).
    pub tag: Option<String>,
    /// The item in the published shape (UID as the target holds it).
    pub event: PublicEvent,
    /// `CLASS` of the master and every override, as written (`None`: absent).
    pub classes: Vec<Option<String>>,
    /// Properties that calsync never publishes but the target's item carries (ATTENDEE,
    /// ORGANIZER, VALARM…): a sign it was edited or is not calsync's.
    pub foreign: Vec<String>,
    /// The master's `DTSTAMP` (Unix seconds), when it is a UTC date-time.
    pub dtstamp: Option<i64>,
}

/// Properties and components calsync never writes into a target.
const NEVER_PUBLISHED: &[&str] = &["ATTENDEE", "ORGANIZER", "ATTACH", "CONTACT", "BEGIN:VALARM"];

/// Reads a target (a whole file, or one CalDAV resource) back into the published shape, with
/// each item's tag, classes and any property calsync would never have written.
///
/// # Errors
/// As [`parse_feed`].
pub fn parse_published(bytes: &[u8]) -> Result<Vec<ReadBack>, IcalError> {
    let text = lines::unfold(bytes);
    let blocks = lines::components(&text)?;
    let mut tags: HashMap<String, String> = HashMap::new();
    let mut stamps: HashMap<String, i64> = HashMap::new();
    let mut foreign: HashMap<String, Vec<String>> = HashMap::new();
    for block in blocks.iter().filter(|b| b.kind == "VEVENT") {
        let Some(uid) = block
            .raw_values("UID")
            .first()
            .map(|u| u.trim().to_string())
        else {
            continue;
        };
        if block.raw_values("RECURRENCE-ID").is_empty()
            && let Some(tag) = block.raw_values("X-CALSYNC-TAG").first()
        {
            tags.insert(uid.clone(), tag.trim().to_string());
        }
        if block.raw_values("RECURRENCE-ID").is_empty()
            && let Some(stamp) = block.raw_values("DTSTAMP").first().and_then(|v| {
                chrono::NaiveDateTime::parse_from_str(v.trim(), "%Y%m%dT%H%M%SZ").ok()
            })
        {
            stamps.insert(uid.clone(), stamp.and_utc().timestamp());
        }
        for name in NEVER_PUBLISHED {
            let present = match name.strip_prefix("BEGIN:") {
                Some(kind) => block
                    .lines
                    .iter()
                    .any(|l| l.trim().eq_ignore_ascii_case(&format!("BEGIN:{kind}"))),
                None => !block.raw_values(name).is_empty(),
            };
            if present {
                let list = foreign.entry(uid.clone()).or_default();
                let name = name.trim_start_matches("BEGIN:").to_string();
                if !list.contains(&name) {
                    list.push(name);
                }
            }
        }
    }
    let feed = parse_feed(bytes)?;
    Ok(feed
        .events
        .into_iter()
        .map(|e| {
            let uid = e.key.0.split('#').next().unwrap_or_default().to_string();
            let class = |d: &Details| match &d.marking {
                Marking::Class(c) => c.clone(),
                _ => None,
            };
            let mut classes = vec![class(&e.main)];
            classes.extend(e.overrides.iter().map(|o| class(&o.details)));
            ReadBack {
                tag: tags.get(&uid).cloned(),
                dtstamp: stamps.get(&uid).copied(),
                foreign: foreign.remove(&uid).unwrap_or_default(),
                classes,
                event: to_public(&uid, &e),
            }
        })
        .collect())
}

fn public_details(d: &Details) -> PublicDetails {
    PublicDetails {
        start: d.start.clone(),
        end: d.end.clone(),
        title: d.title.clone().unwrap_or_default(),
        location: d.location.clone(),
        description: d.description.clone(),
        categories: d.categories.clone(),
    }
}

fn to_public(uid: &str, e: &SourceEvent) -> PublicEvent {
    let rec = e.recurrence.clone().unwrap_or_default();
    let mut overrides: Vec<PublicOverride> = e
        .overrides
        .iter()
        .map(|o| PublicOverride {
            recurrence_id: o.recurrence_id.clone(),
            details: public_details(&o.details),
        })
        .collect();
    overrides.sort_by(|a, b| a.recurrence_id.cmp(&b.recurrence_id));
    let mut rdates = rec.rdates;
    rdates.sort();
    let mut exdates = rec.exdates;
    exdates.sort();
    PublicEvent {
        uid: uid.to_string(),
        details: public_details(&e.main),
        rules: rec.rules,
        rdates,
        exdates,
        overrides,
    }
}

/// The VEVENTs sharing one UID (or one `nouid:` hash), in feed order.
struct Group {
    id: String,
    has_uid: bool,
    members: Vec<Vevent>,
}

/// One VEVENT as read; reading problems are kept so the whole group can be judged.
struct Vevent {
    uid: Option<String>,
    /// `None` for a master; the instance it overrides (and whether `RANGE=THISANDFUTURE`).
    recurrence_id: Option<Result<(Moment, bool), SkipReason>>,
    body: Result<Body, SkipReason>,
}

struct Body {
    details: Details,
    recurrence: Option<Recurrence>,
}

impl Group {
    fn resolve(self, feed: &mut Feed, keys: &mut HashSet<String>) {
        let key = SourceKey(self.id.clone());
        let (masters, overrides): (Vec<Vevent>, Vec<Vevent>) = self
            .members
            .into_iter()
            .partition(|v| v.recurrence_id.is_none() || !self.has_uid);

        let mut masters = masters.into_iter();
        let Some(master) = masters.next() else {
            resolve_orphans(&self.id, overrides, feed, keys);
            return;
        };
        for _ in masters {
            feed.skipped.push(Skipped {
                key: Some(key.clone()),
                reason: SkipReason::DuplicateUid,
            });
        }
        match build_series(key.clone(), master, overrides) {
            Ok(event) => push_event(event, feed, keys),
            Err(reason) => feed.skipped.push(Skipped {
                key: Some(key),
                reason,
            }),
        }
    }
}

/// A master and its overrides as one item, or the reason the item is left out.
fn build_series(
    key: SourceKey,
    master: Vevent,
    overrides: Vec<Vevent>,
) -> Result<SourceEvent, SkipReason> {
    let body = master.body?;
    let start = body.details.start.clone();
    let mut out: Vec<Override> = Vec::with_capacity(overrides.len());
    for o in overrides {
        let Some(rid) = o.recurrence_id else {
            continue;
        };
        let (rid, this_and_future) = rid?;
        if this_and_future {
            return Err(SkipReason::ThisAndFuture);
        }
        let details = o.body?.details;
        let recurrence_id = in_series_form(&rid, &start);
        if out.iter().any(|x| x.recurrence_id == recurrence_id) {
            return Err(SkipReason::DuplicateRecurrenceId);
        }
        out.push(Override {
            recurrence_id,
            details,
        });
    }
    out.sort_by(|a, b| a.recurrence_id.cmp(&b.recurrence_id));
    Ok(SourceEvent {
        key,
        main: body.details,
        recurrence: body.recurrence,
        overrides: out,
    })
}

/// Overrides whose master is not in the feed: each is an event of its own.
fn resolve_orphans(uid: &str, orphans: Vec<Vevent>, feed: &mut Feed, keys: &mut HashSet<String>) {
    for o in orphans {
        let rid = match o.recurrence_id {
            Some(Ok((rid, _))) => rid,
            Some(Err(reason)) => {
                feed.skipped.push(Skipped {
                    key: Some(SourceKey(uid.to_string())),
                    reason,
                });
                continue;
            }
            None => continue,
        };
        let key = SourceKey(format!("{uid}#{rid}"));
        match o.body {
            Ok(body) => push_event(
                SourceEvent {
                    key,
                    main: body.details,
                    recurrence: body.recurrence,
                    overrides: Vec::new(),
                },
                feed,
                keys,
            ),
            Err(reason) => feed.skipped.push(Skipped {
                key: Some(key),
                reason,
            }),
        }
    }
}

/// Adds an event unless its key is taken (two orphans of one instance, two identical
/// VEVENTs without UID): keys must be unique in a feed.
fn push_event(event: SourceEvent, feed: &mut Feed, keys: &mut HashSet<String>) {
    if keys.insert(event.key.0.clone()) {
        feed.events.push(event);
    } else {
        let reason = if event.key.0.contains('#') {
            SkipReason::DuplicateRecurrenceId
        } else {
            SkipReason::DuplicateUid
        };
        feed.skipped.push(Skipped {
            key: Some(event.key),
            reason,
        });
    }
}

/// Parses one VEVENT block with calcard and maps what the model needs.
fn read_vevent(block: &Block<'_>, zones: &Zones) -> Result<Vevent, IcalError> {
    let text = block.text();
    let comp = match Parser::new(&text).entry() {
        Entry::ICalendar(mut ical) if !ical.components.is_empty() => ical.components.swap_remove(0),
        _ => return Err(IcalError::Unparsable("a VEVENT calcard cannot read".into())),
    };
    let uid = first_text(&comp, &ICalendarProperty::Uid)
        .filter(|u| !u.trim().is_empty())
        .map(str::to_string);
    let recurrence_id = entry(&comp, &ICalendarProperty::RecurrenceId).map(|e| {
        let rid = moment_of(e, "RECURRENCE-ID", zones)?;
        let this_and_future = e
            .parameters(&ICalendarParameterName::Range)
            .any(|v| matches!(v, ICalendarParameterValue::Bool(true)));
        Ok((rid, this_and_future))
    });
    let fallback_start = match &recurrence_id {
        Some(Ok((rid, _))) => Some(rid.clone()),
        _ => None,
    };
    let body = read_body(&comp, block, zones, fallback_start);
    Ok(Vevent {
        uid,
        recurrence_id,
        body,
    })
}

fn read_body(
    comp: &ICalendarComponent,
    block: &Block<'_>,
    zones: &Zones,
    fallback_start: Option<Moment>,
) -> Result<Body, SkipReason> {
    let start = match entry(comp, &ICalendarProperty::Dtstart) {
        Some(e) => moment_of(e, "DTSTART", zones)?,
        None => fallback_start.ok_or(SkipReason::MissingStart)?,
    };
    let end = match (
        entry(comp, &ICalendarProperty::Dtend),
        entry(comp, &ICalendarProperty::Duration),
    ) {
        (Some(e), _) => Some(moment_of(e, "DTEND", zones)?),
        (None, Some(e)) => Some(end_after(&start, e)?),
        (None, None) => None,
    };

    let class = block.raw_values("CLASS");
    let marking = Marking::Class(match class.len() {
        0 => None,
        // Two CLASS properties: kept together, which no policy reads as PUBLIC.
        _ => Some(class.join(",")),
    });
    let cancelled = block
        .raw_values("STATUS")
        .iter()
        .any(|s| s.trim().eq_ignore_ascii_case("CANCELLED"));

    let categories = comp
        .entries
        .iter()
        .filter(|e| e.name == ICalendarProperty::Categories)
        .flat_map(|e| e.values.iter())
        .filter_map(|v| v.as_text())
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();

    let recurrence = read_recurrence(comp, zones, &start)?;
    Ok(Body {
        details: Details {
            start,
            end,
            title: non_empty_text(comp, &ICalendarProperty::Summary),
            location: non_empty_text(comp, &ICalendarProperty::Location),
            description: non_empty_text(comp, &ICalendarProperty::Description),
            categories,
            marking,
            cancelled,
        },
        recurrence,
    })
}

/// RRULE, RDATE and EXDATE of a master; RDATE/EXDATE put in DTSTART's type and zone.
fn read_recurrence(
    comp: &ICalendarComponent,
    zones: &Zones,
    start: &Moment,
) -> Result<Option<Recurrence>, SkipReason> {
    let mut rec = Recurrence::default();
    for e in &comp.entries {
        match e.name {
            ICalendarProperty::Rrule => match e.values.first() {
                Some(ICalendarValue::RecurrenceRule(rule)) => rec.rules.push(normalize_rule(rule)),
                _ => return Err(SkipReason::InvalidRecurrence),
            },
            // Deprecated (RFC 5545 dropped it) and not in the model: the instances it removes
            // would be published.
            ICalendarProperty::Exrule => return Err(SkipReason::InvalidRecurrence),
            ICalendarProperty::Rdate => {
                for m in moments_of(e, "RDATE", zones)? {
                    rec.rdates.push(in_series_form(&m, start));
                }
            }
            ICalendarProperty::Exdate => {
                for m in moments_of(e, "EXDATE", zones)? {
                    rec.exdates.push(in_series_form(&m, start));
                }
            }
            _ => {}
        }
    }
    if rec.rules.is_empty() && rec.rdates.is_empty() && rec.exdates.is_empty() {
        return Ok(None);
    }
    validate(start, &rec).map_err(|_| SkipReason::InvalidRecurrence)?;
    Ok(Some(rec))
}

fn entry<'a>(comp: &'a ICalendarComponent, name: &ICalendarProperty) -> Option<&'a ICalendarEntry> {
    comp.entries.iter().find(|e| &e.name == name)
}

fn first_text<'a>(comp: &'a ICalendarComponent, name: &ICalendarProperty) -> Option<&'a str> {
    entry(comp, name)?.values.first()?.as_text()
}

fn non_empty_text(comp: &ICalendarComponent, name: &ICalendarProperty) -> Option<String> {
    first_text(comp, name)
        .filter(|t| !t.trim().is_empty())
        .map(str::to_string)
}

/// The TZID parameter of a property. An unquoted TZID holding commas (Outlook's
/// `(UTC+01:00) Amsterdam, Berlin, …` written without quotes) reaches us split into several
/// values; joined again it matches the VTIMEZONE's TZID.
// QUIRK: calcard splits unquoted parameter values at commas.
fn tzid_of(e: &ICalendarEntry) -> Option<String> {
    let parts: Vec<&str> = e
        .parameters(&ICalendarParameterName::Tzid)
        .filter_map(|v| v.as_text())
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// A single date or date-time property as a [`Moment`].
fn moment_of(e: &ICalendarEntry, prop: &'static str, zones: &Zones) -> Result<Moment, SkipReason> {
    match e.values.first() {
        Some(ICalendarValue::PartialDateTime(dt)) => {
            moment_from(dt, tzid_of(e).as_deref(), prop, zones)
        }
        _ => Err(SkipReason::InvalidTime(prop)),
    }
}

/// All values of an RDATE/EXDATE property (a PERIOD counts by its start).
fn moments_of(
    e: &ICalendarEntry,
    prop: &'static str,
    zones: &Zones,
) -> Result<Vec<Moment>, SkipReason> {
    let tzid = tzid_of(e);
    e.values
        .iter()
        .map(|v| match v {
            ICalendarValue::PartialDateTime(dt) => moment_from(dt, tzid.as_deref(), prop, zones),
            ICalendarValue::Period(
                ICalendarPeriod::Range { start, .. } | ICalendarPeriod::Duration { start, .. },
            ) => moment_from(start, tzid.as_deref(), prop, zones),
            _ => Err(SkipReason::InvalidTime(prop)),
        })
        .collect()
}

fn moment_from(
    dt: &PartialDateTime,
    tzid: Option<&str>,
    prop: &'static str,
    zones: &Zones,
) -> Result<Moment, SkipReason> {
    let invalid = || SkipReason::InvalidTime(prop);
    if !dt.has_time() {
        let (y, m, d) = (
            dt.year.ok_or_else(invalid)?,
            dt.month.ok_or_else(invalid)?,
            dt.day.ok_or_else(invalid)?,
        );
        return NaiveDate::from_ymd_opt(i32::from(y), u32::from(m), u32::from(d))
            .map(Moment::Date)
            .ok_or_else(invalid);
    }
    let value = dt.to_date_time().ok_or_else(invalid)?;
    if let Some(offset) = value.offset {
        // `Z` (or a numeric offset, which RFC 5545 does not allow but some writers use).
        return Ok(Moment::Utc(value.date_time - offset));
    }
    match tzid {
        Some(tzid) => zones
            .resolve(tzid)
            .map(|tz| Moment::Zoned(value.date_time, tz))
            .ok_or_else(|| SkipReason::UnknownTimeZone(tzid.to_string())),
        None => Ok(Moment::Floating(value.date_time)),
    }
}

/// DTSTART + DURATION. For an all-day start the duration is rounded up to whole days.
fn end_after(start: &Moment, e: &ICalendarEntry) -> Result<Moment, SkipReason> {
    let invalid = SkipReason::InvalidTime("DURATION");
    let Some(ICalendarValue::Duration(d)) = e.values.first() else {
        return Err(invalid);
    };
    if d.neg {
        return Err(invalid);
    }
    let secs = TimeDelta::try_seconds(d.as_seconds()).ok_or(invalid.clone())?;
    let later = |t: &chrono::NaiveDateTime| t.checked_add_signed(secs).ok_or(invalid.clone());
    Ok(match start {
        Moment::Date(day) => {
            let days = u64::try_from((secs.num_seconds() + 86_399) / 86_400)
                .map_err(|_| invalid.clone())?;
            Moment::Date(
                day.checked_add_days(chrono::Days::new(days))
                    .ok_or(invalid)?,
            )
        }
        Moment::Utc(t) => Moment::Utc(later(t)?),
        Moment::Zoned(t, tz) => Moment::Zoned(later(t)?, *tz),
        Moment::Floating(t) => Moment::Floating(later(t)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const DEMO: &[u8] = include_bytes!("../../examples/demo-source.ics");
    const OUTLOOK: &[u8] = include_bytes!("../../tests/fixtures/outlook-export.ics");
    const OUTLOOK_NAMES: &[u8] = include_bytes!("../../tests/fixtures/outlook-display-names.ics");
    const GOOGLE: &[u8] = include_bytes!("../../tests/fixtures/google-export.ics");
    const UNICODE: &[u8] = include_bytes!("../../tests/fixtures/folding-unicode.ics");
    const BARE_LF: &[u8] = include_bytes!("../../tests/fixtures/bare-lf.ics");
    const TRUNCATED: &[u8] = include_bytes!("../../tests/fixtures/truncated.ics");

    /// A calendar around some VEVENT (and VTIMEZONE) text.
    fn feed(body: &str) -> Feed {
        parse_feed(format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{body}END:VCALENDAR\r\n").as_bytes())
            .unwrap()
    }

    fn event(feed: &Feed, key: &str) -> SourceEvent {
        feed.events
            .iter()
            .find(|e| e.key.0 == key)
            .unwrap_or_else(|| panic!("no event {key}"))
            .clone()
    }

    fn class(d: &Details) -> Option<&str> {
        match &d.marking {
            Marking::Class(c) => c.as_deref(),
            other => panic!("not a CLASS marking: {other:?}"),
        }
    }

    /// One line per event: key | start | end | class | cancelled | title.
    fn summary(feed: &Feed) -> Vec<String> {
        feed.events
            .iter()
            .map(|e| {
                let d = &e.main;
                format!(
                    "{} | {} | {} | {} | {} | {}",
                    e.key,
                    d.start,
                    d.end.as_ref().map(|m| m.to_string()).unwrap_or("-".into()),
                    class(d).unwrap_or("-"),
                    if d.cancelled { "cancelled" } else { "-" },
                    d.title.as_deref().unwrap_or("-"),
                )
            })
            .collect()
    }

    #[test]
    fn fixtures_parse_to_the_right_events() {
        let cases: &[(&str, &[u8], &[&str])] = &[
            (
                "demo",
                DEMO,
                &[
                    "advent-concert-2026@st-martin.example.org | 2026-12-06T17:00:00[Europe/Berlin] | 2026-12-06T18:30:00[Europe/Berlin] | PUBLIC | - | Advent concert of the school choirs",
                    "christmas-eve-2026@st-martin.example.org | 2026-12-24T16:00:00[Europe/Berlin] | 2026-12-24T17:00:00[Europe/Berlin] | - | - | Christmas Eve family service with nativity play",
                    "hr-2026-12-03-salary@st-martin.example.org | 2026-12-03T14:00:00[Europe/Berlin] | 2026-12-03T15:00:00[Europe/Berlin] | PRIVATE | - | Salary review with J. Doe",
                    "pastoral-2026-12-10-miller@st-martin.example.org | 2026-12-10T16:00:00[Europe/Berlin] | 2026-12-10T17:00:00[Europe/Berlin] | CONFIDENTIAL | - | Counselling session K. Miller",
                    "staff-2026-12-16-secret-santa@st-martin.example.org | 2026-12-16T13:30:00[Europe/Berlin] | 2026-12-16T14:00:00[Europe/Berlin] | X-STAFF | - | Staff room: Secret Santa draw",
                    "private-2027-01-13-doctor@st-martin.example.org | 2027-01-13T08:30:00[Europe/Berlin] | 2027-01-13T09:30:00[Europe/Berlin] | private | - | Doctor appointment P. Novak",
                    "choir-rehearsal-2026@st-martin.example.org | 2026-12-03T19:00:00[Europe/Berlin] | 2026-12-03T20:30:00[Europe/Berlin] | PUBLIC | - | Parish choir rehearsal",
                    "cafe-2027-01-17@st-martin.example.org | 2027-01-17T14:30:00[Europe/Berlin] | 2027-01-17T17:00:00[Europe/Berlin] | PUBLIC | cancelled | Parish café after the service",
                    "epiphany-2027@st-martin.example.org | 2027-01-06 | 2027-01-07 | - | - | Epiphany – carol singers visit the parish",
                    "school-holidays-christmas-2026@st-martin.example.org | 2026-12-21 | 2027-01-02 | PUBLIC | - | Christmas holidays (school closed)",
                    "confirmation-retreat-2027@st-martin.example.org | 2027-03-12 | 2027-03-15 | - | - | Confirmation retreat at Marienthal",
                    "council-2027-01-20@st-martin.example.org | 2027-01-20T19:30:00[Europe/Berlin] | 2027-01-20T21:30:00[Europe/Berlin] | PUBLIC | - | Parish council meeting",
                    "bible-study-2027-02-03@st-martin.example.org | 2027-02-03T20:00:00[Europe/Berlin] | 2027-02-03T21:15:00[Europe/Berlin] | PUBLIC | - | Online Bible study: the Gospel of Mark",
                    "summer-fete-2027@st-martin.example.org | 2027-06-13T11:00:00[Europe/Berlin] | 2027-06-13T18:00:00[Europe/Berlin] | - | - | Summer fete of parish and school",
                ],
            ),
            (
                "outlook (Windows zone names)",
                OUTLOOK,
                &[
                    "040000008200E00074C5B7101A82E00800000000A0F3B0C1D2E4DA01000000000000000010000000E1D2C3B4A5968778695A4B3C2D1E0F10 | 2026-12-02T07:30:00[Europe/Berlin] | 2026-12-02T08:15:00[Europe/Berlin] | PUBLIC | - | Dienstbesprechung Kollegium",
                    "040000008200E00074C5B7101A82E00800000000B1C2D3E4F5A6DA01000000000000000010000000AABBCCDDEEFF00112233445566778899 | 2026-12-08T15:00:00[Europe/Berlin] | 2026-12-08T15:30:00[Europe/Berlin] | PRIVATE | - | Elterngespräch Familie Yılmaz",
                    "040000008200E00074C5B7101A82E00800000000C2D3E4F5A6B7DA01000000000000000010000000FFEEDDCCBBAA99887766554433221100 | 2027-01-23 | 2027-01-24 | PUBLIC | - | Tag der offenen Tür",
                    "040000008200E00074C5B7101A82E00800000000D3E4F5A6B7C8DA01000000000000000010000000123456789ABCDEF0123456789ABCDEF0 | 2026-12-15T14:00:00[UTC] | 2026-12-15T15:00:00[UTC] | PUBLIC | - | Austauschprojekt Lyon – Abstimmung",
                ],
            ),
            (
                "outlook ((UTC+01:00) display names)",
                OUTLOOK_NAMES,
                &[
                    "040000008200E00074C5B7101A82E00800000000E4F5A6B7C8D9DA01000000000000000010000000ABCDEF0123456789ABCDEF0123456789 | 2027-04-29T09:00:00[Europe/Berlin] | 2027-04-29T12:00:00[Europe/Berlin] | PUBLIC | - | Sportfest der Unterstufe",
                    "040000008200E00074C5B7101A82E00800000000F5A6B7C8D9E0DA01000000000000000010000000BCDEF0123456789ABCDEF0123456789A | 2026-12-14T19:00:00[Europe/Berlin] | 2026-12-14T20:00:00[Europe/Berlin] | PUBLIC | - | Weihnachtskonzert der Bläserklasse",
                    "040000008200E00074C5B7101A82E00800000000A6B7C8D9E0F1DA01000000000000000010000000CDEF0123456789ABCDEF0123456789AB | 2026-12-09T09:30:00[Europe/Berlin] | 2026-12-09T10:00:00[Europe/Berlin] | CONFIDENTIAL | - | Personalgespräch Frau Becker",
                ],
            ),
            (
                "google",
                GOOGLE,
                &[
                    "5k3j9h2g1f0e9d8c7b6a5z4y3x@google.com | 2026-12-07T18:00:00Z | 2026-12-07T19:30:00Z | - | - | Krippenspiel-Probe",
                    "7q6p5o4n3m2l1k0j9i8h7g6f5e@google.com | 2026-12-01T10:00:00[Europe/Berlin] | 2026-12-01T11:30:00[Europe/Berlin] | - | - | Seniorencafé",
                    "3a2b1c0d9e8f7g6h5i4j3k2l1m@google.com | 2026-12-26 | 2026-12-27 | - | - | 2. Weihnachtstag – Festgottesdienst 10 Uhr",
                    "0z9y8x7w6v5u4t3s2r1q0p9o8n@google.com | 2026-12-11T09:00:00Z | 2026-12-11T10:00:00Z | PRIVATE | - | Trauergespräch Familie Hoffmann",
                ],
            ),
            (
                "folded unicode",
                UNICODE,
                &[
                    "unicode-1@musikschule.example.de | 2026-12-05T15:00:00[Europe/Berlin] | 2026-12-05T16:30:00[Europe/Berlin] | PUBLIC | - | Weihnachtsvorspiel der Klavierklasse: Grüße aus Köln, Straßburg & Zürich 🎄🎹",
                    "unicode-2@musikschule.example.de | 2027-02-15 | - | - | - | Ωδείο Αθηνών – Gastkonzert 🎻 mit einem sehr langen Titel, der über mehrere Zeilen gefaltet werden muss (äöü ÄÖÜ ß €)",
                ],
            ),
            (
                "bare LF",
                BARE_LF,
                &[
                    "elternsprechtag-2027@grundschule.example.de | 2027-02-18T14:00:00[Europe/Berlin] | 2027-02-18T18:00:00[Europe/Berlin] | public | - | Elternsprechtag",
                    "lesenacht-2027@grundschule.example.de | 2027-03-05T17:00:00Z | 2027-03-06T08:00:00Z | - | - | Lesenacht der dritten Klassen",
                ],
            ),
        ];
        for (name, bytes, want) in cases {
            let feed = parse_feed(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(summary(&feed), *want, "{name}");
            assert_eq!(feed.skipped, vec![], "{name}");
        }
    }

    #[test]
    fn series_and_overrides_are_grouped_by_uid() {
        let demo = parse_feed(DEMO).unwrap();
        let choir = event(&demo, "choir-rehearsal-2026@st-martin.example.org");
        let rec = choir.recurrence.clone().unwrap();
        assert_eq!(
            rec.rules,
            vec!["FREQ=WEEKLY;UNTIL=20270624T170000Z;BYDAY=TH"]
        );
        let exdates: Vec<String> = rec.exdates.iter().map(|m| m.to_string()).collect();
        assert_eq!(
            exdates,
            vec![
                "2026-12-24T19:00:00[Europe/Berlin]",
                "2026-12-31T19:00:00[Europe/Berlin]"
            ]
        );
        let overrides: Vec<(String, String, Option<&str>, &str)> = choir
            .overrides
            .iter()
            .map(|o| {
                (
                    o.recurrence_id.to_string(),
                    o.details.start.to_string(),
                    class(&o.details),
                    o.details.title.as_deref().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            overrides,
            vec![
                (
                    "2027-02-11T19:00:00[Europe/Berlin]".to_string(),
                    "2027-02-11T19:00:00[Europe/Berlin]".to_string(),
                    Some("PRIVATE"),
                    "Choir board: disciplinary talk with M. Weber"
                ),
                (
                    "2027-04-08T19:00:00[Europe/Berlin]".to_string(),
                    "2027-04-09T18:00:00[Europe/Berlin]".to_string(),
                    Some("PUBLIC"),
                    "Parish choir rehearsal (moved to Friday after Easter)"
                ),
            ]
        );

        let google = parse_feed(GOOGLE).unwrap();
        let cafe = event(&google, "7q6p5o4n3m2l1k0j9i8h7g6f5e@google.com");
        assert_eq!(cafe.overrides.len(), 2);
        assert!(cafe.overrides[1].details.cancelled, "a cancelled instance");
        let outlook = parse_feed(OUTLOOK).unwrap();
        let staff = &outlook.events[0];
        assert_eq!(
            staff.overrides[0].recurrence_id.to_string(),
            "2027-01-20T07:30:00[Europe/Berlin]"
        );
        // Only top-level VEVENTs become events: the VTODO and the VALARM do not.
        assert!(!summary(&demo).iter().any(|l| l.contains("todo-candles")));
    }

    #[test]
    fn text_is_unescaped_and_categories_collected() {
        let unicode = parse_feed(UNICODE).unwrap();
        let e = &unicode.events[0].main;
        assert_eq!(
            e.location.as_deref(),
            Some("Großer Saal; Eingang über den Hof")
        );
        assert_eq!(
            e.description.as_deref(),
            Some(
                "Programm:\n1. J. S. Bach – Präludium C-Dur\n2. Ελληνικά τραγούδια: «Καλήν εσπέραν άρχοντες»\n3. Überraschung 🎁\n\nBackslash: C:\\Noten\\Bach; Komma, Semikolon; Ende.\nZeile nach großem N."
            )
        );
        assert_eq!(
            e.categories,
            vec!["Konzert", "Schüler,innen", "Μουσική", "Weihnachten"]
        );
        let f = feed(
            "BEGIN:VEVENT\r\nUID:c\r\nDTSTART:20261201T100000Z\r\nCATEGORIES: Music , ,Parish\r\nCATEGORIES:\r\nEND:VEVENT\r\n",
        );
        assert_eq!(f.events[0].main.categories, vec!["Music", "Parish"]);
    }

    #[test]
    fn truncated_or_foreign_input_is_an_error() {
        let cases: &[(&[u8], &str)] = &[
            (TRUNCATED, "truncated"),
            (b"", "not an iCalendar"),
            (
                b"<!DOCTYPE html><html>Service unavailable</html>",
                "not an iCalendar",
            ),
            (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n", "truncated"),
        ];
        for (bytes, want) in cases {
            let err = parse_feed(bytes).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn class_is_kept_as_written() {
        let cases: &[(&str, Option<&str>)] = &[
            ("CLASS:PUBLIC\r\n", Some("PUBLIC")),
            ("", None),
            ("class:private\r\n", Some("private")),
            ("CLASS:Confidential\r\n", Some("Confidential")),
            ("CLASS:X-STAFF\r\n", Some("X-STAFF")),
            ("CLASS:PUBLIC\r\nCLASS:PRIVATE\r\n", Some("PUBLIC,PRIVATE")),
            // A VALARM's CLASS is not the event's.
            (
                "BEGIN:VALARM\r\nCLASS:PUBLIC\r\nACTION:DISPLAY\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\n",
                None,
            ),
        ];
        for (lines, want) in cases {
            let f = feed(&format!(
                "BEGIN:VEVENT\r\nUID:x\r\nDTSTART:20261201T100000Z\r\n{lines}END:VEVENT\r\n"
            ));
            assert_eq!(class(&f.events[0].main), *want, "{lines:?}");
        }
    }

    #[test]
    fn status_cancelled_is_case_insensitive() {
        for (status, want) in [
            ("STATUS:CANCELLED", true),
            ("status:Cancelled", true),
            ("STATUS:CONFIRMED", false),
            ("STATUS:TENTATIVE", false),
        ] {
            let f = feed(&format!(
                "BEGIN:VEVENT\r\nUID:x\r\nDTSTART:20261201T100000Z\r\n{status}\r\nEND:VEVENT\r\n"
            ));
            assert_eq!(f.events[0].main.cancelled, want, "{status}");
        }
    }

    #[test]
    fn times_map_to_moments() {
        const FIXED: &str = "BEGIN:VTIMEZONE\r\nTZID:Custom Plus Two\r\nBEGIN:STANDARD\r\nDTSTART:16010101T000000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0200\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n";
        // (properties, start, end)
        let cases: &[(&str, &str, &str)] = &[
            ("DTSTART;VALUE=DATE:20261224\r\n", "2026-12-24", "-"),
            (
                "DTSTART:20261224\r\nDTEND:20261226\r\n",
                "2026-12-24",
                "2026-12-26",
            ),
            (
                "DTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z\r\n",
                "2026-12-01T10:00:00Z",
                "2026-12-01T11:00:00Z",
            ),
            ("DTSTART:20261201T100000\r\n", "2026-12-01T10:00:00", "-"),
            (
                "DTSTART;TZID=Europe/Vienna:20261201T100000\r\nDURATION:PT1H30M\r\n",
                "2026-12-01T10:00:00[Europe/Vienna]",
                "2026-12-01T11:30:00[Europe/Vienna]",
            ),
            (
                "DTSTART;VALUE=DATE:20261201\r\nDURATION:P2D\r\n",
                "2026-12-01",
                "2026-12-03",
            ),
            (
                "DTSTART;VALUE=DATE:20261201\r\nDURATION:PT1H\r\n",
                "2026-12-01",
                "2026-12-02",
            ),
            (
                "DTSTART;TZID=W. Europe Standard Time:20261201T100000\r\n",
                "2026-12-01T10:00:00[Europe/Berlin]",
                "-",
            ),
            (
                "DTSTART;TZID=/mozilla.org/20050126_1/Europe/Paris:20261201T100000\r\n",
                "2026-12-01T10:00:00[Europe/Paris]",
                "-",
            ),
            // A TZID with Z: the Z wins.
            (
                "DTSTART;TZID=Europe/Berlin:20261201T100000Z\r\n",
                "2026-12-01T10:00:00Z",
                "-",
            ),
            // A TZID nothing resolves whose VTIMEZONE is one fixed offset.
            (
                "DTSTART;TZID=Custom Plus Two:20261201T100000\r\n",
                "2026-12-01T10:00:00[Etc/GMT-2]",
                "-",
            ),
        ];
        for (props, start, end) in cases {
            let f = feed(&format!(
                "{FIXED}BEGIN:VEVENT\r\nUID:t\r\n{props}END:VEVENT\r\n"
            ));
            assert_eq!(f.skipped, vec![], "{props:?}");
            let d = &f.events[0].main;
            let got_end = d.end.as_ref().map(|m| m.to_string()).unwrap_or("-".into());
            assert_eq!(
                (d.start.to_string(), got_end),
                (start.to_string(), end.to_string()),
                "{props:?}"
            );
        }
    }

    #[test]
    fn unreadable_events_are_skipped_with_ids_only() {
        let cases: &[(&str, SkipReason)] = &[
            ("SUMMARY:Secret\r\n", SkipReason::MissingStart),
            (
                "DTSTART:20270230T100000Z\r\nSUMMARY:Secret\r\n",
                SkipReason::InvalidTime("DTSTART"),
            ),
            (
                "DTSTART:20261201T100000Z\r\nDTEND:soon\r\nSUMMARY:Secret\r\n",
                SkipReason::InvalidTime("DTEND"),
            ),
            (
                "DTSTART:20261201T100000Z\r\nDURATION:-PT1H\r\n",
                SkipReason::InvalidTime("DURATION"),
            ),
            // Never read as UTC.
            (
                "DTSTART;TZID=Mars/Olympus_Mons:20261201T100000\r\nSUMMARY:Secret\r\n",
                SkipReason::UnknownTimeZone("Mars/Olympus_Mons".into()),
            ),
            // calcard guesses Etc/GMT-1 from the label; the VTIMEZONE keeps DST, so: unknown.
            (
                "DTSTART;TZID=\"(UTC+01:00) Nowhere\":20261201T100000\r\n",
                SkipReason::UnknownTimeZone("(UTC+01:00) Nowhere".into()),
            ),
            (
                "DTSTART:20261201T100000Z\r\nRRULE:FREQ=SOMETIMES\r\n",
                SkipReason::InvalidRecurrence,
            ),
            (
                "DTSTART:20261201T100000Z\r\nRRULE:FREQ=MONTHLY;BYMONTHDAY=40\r\n",
                SkipReason::InvalidRecurrence,
            ),
            (
                "DTSTART:20261201T100000Z\r\nRRULE:FREQ=DAILY\r\nEXRULE:FREQ=WEEKLY\r\n",
                SkipReason::InvalidRecurrence,
            ),
            (
                "DTSTART:20261201T100000Z\r\nRRULE:FREQ=DAILY\r\nEXDATE:tomorrow\r\n",
                SkipReason::InvalidTime("EXDATE"),
            ),
        ];
        const NOWHERE: &str = "BEGIN:VTIMEZONE\r\nTZID:(UTC+01:00) Nowhere\r\nBEGIN:STANDARD\r\nDTSTART:16011028T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:16010325T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n";
        for (props, reason) in cases {
            let f = feed(&format!(
                "{NOWHERE}BEGIN:VEVENT\r\nUID:bad-1\r\n{props}END:VEVENT\r\n"
            ));
            assert!(f.events.is_empty(), "{props:?}");
            assert_eq!(
                f.skipped,
                vec![Skipped {
                    key: Some(SourceKey("bad-1".into())),
                    reason: reason.clone()
                }],
                "{props:?}"
            );
            assert!(!reason.to_string().contains("Secret"));
        }
    }

    const MASTER: &str = "BEGIN:VEVENT\r\nUID:s\r\nDTSTART;TZID=Europe/Berlin:20261203T190000\r\nRRULE:FREQ=WEEKLY\r\nSUMMARY:Choir\r\nEND:VEVENT\r\n";

    fn override_of(rid: &str, extra: &str) -> String {
        format!(
            "BEGIN:VEVENT\r\nUID:s\r\nRECURRENCE-ID{rid}\r\nDTSTART;TZID=Europe/Berlin:20261210T200000\r\n{extra}END:VEVENT\r\n"
        )
    }

    #[test]
    fn a_series_is_kept_or_left_out_whole() {
        // An override in UTC is put in the master's zone.
        let f = feed(&format!(
            "{}{MASTER}",
            override_of(":20261210T180000Z", "CLASS:PRIVATE\r\n")
        ));
        assert_eq!(f.events.len(), 1);
        assert_eq!(
            f.events[0].overrides[0].recurrence_id.to_string(),
            "2026-12-10T19:00:00[Europe/Berlin]"
        );

        let left_out: &[(String, SkipReason)] = &[
            (
                override_of(";TZID=Mars/Base:20261210T190000", ""),
                SkipReason::UnknownTimeZone("Mars/Base".into()),
            ),
            (
                override_of(";TZID=Europe/Berlin:20261210T190000", "DTEND:never\r\n"),
                SkipReason::InvalidTime("DTEND"),
            ),
            (
                override_of(
                    ";RANGE=THISANDFUTURE;TZID=Europe/Berlin:20261210T190000",
                    "CLASS:PRIVATE\r\n",
                ),
                SkipReason::ThisAndFuture,
            ),
            (
                format!(
                    "{}{}",
                    override_of(";TZID=Europe/Berlin:20261210T190000", ""),
                    override_of(":20261210T180000Z", "CLASS:PRIVATE\r\n")
                ),
                SkipReason::DuplicateRecurrenceId,
            ),
        ];
        for (overrides, reason) in left_out {
            let f = feed(&format!("{MASTER}{overrides}"));
            assert!(f.events.is_empty(), "{reason}");
            assert_eq!(
                f.skipped,
                vec![Skipped {
                    key: Some(SourceKey("s".into())),
                    reason: reason.clone()
                }]
            );
        }
    }

    #[test]
    fn keys_for_duplicates_orphans_and_missing_uids() {
        // Two masters: the first is kept.
        let twice = MASTER.replace("Choir", "Second");
        let f = feed(&format!("{MASTER}{twice}"));
        assert_eq!(f.events.len(), 1);
        assert_eq!(f.events[0].main.title.as_deref(), Some("Choir"));
        assert_eq!(
            f.skipped,
            vec![Skipped {
                key: Some(SourceKey("s".into())),
                reason: SkipReason::DuplicateUid
            }]
        );

        // An override whose master is not in the feed stands alone.
        let f = feed(&override_of(";TZID=Europe/Berlin:20261210T190000", ""));
        assert_eq!(f.events[0].key.0, "s#2026-12-10T19:00:00[Europe/Berlin]");
        assert!(f.events[0].recurrence.is_none());

        // No UID: a hash of the text, stable while the text is.
        let nouid = "BEGIN:VEVENT\r\nDTSTART:20261201T100000Z\r\nSUMMARY:Walk\r\nEND:VEVENT\r\n";
        let a = feed(nouid);
        let b = parse_feed(
            format!(
                "BEGIN:VCALENDAR\n{}END:VCALENDAR\n",
                nouid.replace("\r\n", "\n")
            )
            .as_bytes(),
        )
        .unwrap();
        let c = feed(&nouid.replace("Walk", "Run"));
        assert!(a.events[0].key.0.starts_with("nouid:"));
        assert_eq!(a.events[0].key.0.len(), "nouid:".len() + 64);
        assert_eq!(
            a.events[0].key, b.events[0].key,
            "line ends do not change the key"
        );
        assert_ne!(a.events[0].key, c.events[0].key);
        let two = feed(&format!("{nouid}{nouid}"));
        assert_eq!(two.events.len(), 1);
        assert_eq!(two.skipped[0].reason, SkipReason::DuplicateUid);
    }

    #[test]
    fn rdate_and_exdate_lists_take_the_series_form() {
        let f = feed(
            "BEGIN:VEVENT\r\nUID:r\r\nDTSTART;TZID=Europe/Berlin:20261201T100000\r\nRRULE:FREQ=DAILY;COUNT=10\r\n\
             EXDATE;TZID=Europe/Berlin:20261202T100000,20261203T100000\r\nEXDATE:20261204T090000Z\r\n\
             RDATE;VALUE=DATE:20261224\r\nRDATE;VALUE=PERIOD:20261225T090000Z/20261225T100000Z\r\nEND:VEVENT\r\n",
        );
        let rec = f.events[0].recurrence.clone().unwrap();
        let text = |v: &[Moment]| v.iter().map(|m| m.to_string()).collect::<Vec<_>>();
        assert_eq!(
            text(&rec.exdates),
            vec![
                "2026-12-02T10:00:00[Europe/Berlin]",
                "2026-12-03T10:00:00[Europe/Berlin]",
                "2026-12-04T10:00:00[Europe/Berlin]"
            ]
        );
        assert_eq!(
            text(&rec.rdates),
            vec![
                "2026-12-24T10:00:00[Europe/Berlin]",
                "2026-12-25T10:00:00[Europe/Berlin]"
            ]
        );
    }

    #[test]
    fn unquoted_tzid_with_commas_is_joined_again() {
        let f = feed(
            "BEGIN:VTIMEZONE\r\nTZID:Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna\r\nBEGIN:STANDARD\r\nDTSTART:16011028T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n\
             BEGIN:VEVENT\r\nUID:u\r\nDTSTART;TZID=Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna:20261214T190000\r\nEND:VEVENT\r\n",
        );
        assert_eq!(f.skipped, vec![]);
        assert_eq!(
            f.events[0].main.start.to_string(),
            "2026-12-14T19:00:00[Europe/Berlin]"
        );
    }

    #[test]
    fn demo_series_keeps_local_time_across_dst_and_drops_exdates() {
        use crate::recurrence::instances;
        let demo = parse_feed(DEMO).unwrap();
        let choir = event(&demo, "choir-rehearsal-2026@st-martin.example.org");
        let utc = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        let all = instances(
            &choir.main.start,
            &choir.main.effective_end(),
            choir.recurrence.as_ref().unwrap(),
            utc("2026-11-29T00:00:00Z"),
            utc("2027-11-29T00:00:00Z"),
            1000,
        )
        .unwrap();
        let starts: Vec<String> = all.iter().map(|i| i.start.to_string()).collect();
        // Thursdays 3 Dec 2026 .. 24 Jun 2027 (UNTIL inclusive) without 24 and 31 Dec.
        assert_eq!(starts.len(), 30 - 2);
        assert_eq!(
            starts.first().unwrap(),
            "2026-12-03T19:00:00[Europe/Berlin]"
        );
        assert_eq!(starts.last().unwrap(), "2027-06-24T19:00:00[Europe/Berlin]");
        assert!(
            !starts
                .iter()
                .any(|s| s.starts_with("2026-12-24") || s.starts_with("2026-12-31"))
        );
        let around_dst: Vec<(String, String)> = all
            .iter()
            .filter(|i| {
                i.start.naive().date().to_string().starts_with("2027-03-25")
                    || i.start.naive().date().to_string().starts_with("2027-04-01")
            })
            .map(|i| (i.start.to_string(), i.start.to_utc().to_rfc3339()))
            .collect();
        assert_eq!(
            around_dst,
            vec![
                (
                    "2027-03-25T19:00:00[Europe/Berlin]".to_string(),
                    "2027-03-25T18:00:00+00:00".to_string()
                ),
                (
                    "2027-04-01T19:00:00[Europe/Berlin]".to_string(),
                    "2027-04-01T17:00:00+00:00".to_string()
                ),
            ]
        );
        // Each override names an instance of the series.
        for o in &choir.overrides {
            assert!(all.iter().any(|i| i.recurrence_id == o.recurrence_id));
        }
    }
}
