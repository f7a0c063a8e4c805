//! Published events → iCalendar text: a whole feed (streamed) or one CalDAV resource.
//!
//! Only [`PublicEvent`] fields are written, so nothing a source held (attendees, alarms, `X-`
//! properties, its UID) can reach the output. Every property goes through calcard's writer,
//! which escapes TEXT and folds at 75 octets without splitting a UTF-8 sequence. Output is
//! deterministic: VTIMEZONEs are generated from chrono-tz over a fixed span of years (never
//! "now"), zones are sorted by name, properties come in a fixed order, and the caller's
//! DTSTAMP is used, so equal input renders byte-identical.

use super::Published;
use crate::model::{Moment, Period, PublicDetails, PublicEvent};
use crate::recurrence::{normalize_rule, parse_rule};
use calcard::common::PartialDateTime;
use calcard::icalendar::{
    ICalendar, ICalendarClassification, ICalendarComponent, ICalendarComponentType, ICalendarEntry,
    ICalendarParameter, ICalendarParameterName, ICalendarParameterValue, ICalendarPeriod,
    ICalendarProperty, ICalendarValue, ICalendarValueType,
};
use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;

/// The span VTIMEZONEs describe: 1970 to 2100, wide enough for any series a calendar still
/// shows, and fixed so that output never depends on the day it is written.
const ZONE_SPAN: (i64, i64) = (0, 4_102_444_800);

/// The IANA zones an event uses (start, end, RDATE, EXDATE, overrides), sorted by name: what
/// a caller collects in a first pass to give [`render_calendar`].
///
/// Zones the source defined itself are not among them: the writer puts each one's VTIMEZONE
/// before the first item that uses it (see [`CalendarWriter::item`]).
pub fn zones_of(event: &PublicEvent) -> Vec<chrono_tz::Tz> {
    let mut zones: BTreeMap<&'static str, chrono_tz::Tz> = BTreeMap::new();
    for m in event.moments() {
        if let Moment::Zoned(_, tz) = m {
            zones.insert(tz.name(), *tz);
        }
    }
    zones.into_values().collect()
}

/// Writes a whole calendar: header, one VTIMEZONE per zone in `zones`, then each item (master
/// VEVENT, then its overrides) in the order given, streaming: one item is held at a time.
///
/// `zones` must hold every zone the items use (collect them with [`zones_of`] in a first pass,
/// or from the stored events); it is sorted and deduplicated here. The VTIMEZONEs come first
/// because some clients resolve TZIDs as they read.
///
/// # Errors
/// The writer's errors; [`io::ErrorKind::InvalidInput`] when an item uses a zone not in
/// `zones` or holds a rule that is not a valid RRULE (output written so far is then
/// incomplete: write to a temporary file).
pub fn render_calendar<W: io::Write>(
    out: &mut W,
    name: Option<&str>,
    zones: &[chrono_tz::Tz],
    items: impl Iterator<Item = Published>,
) -> io::Result<()> {
    let mut writer = CalendarWriter::new(out, name, zones)?;
    for item in items {
        writer.item(&item)?;
    }
    writer.finish()
}

/// [`render_calendar`] one item at a time, for callers that hand items out through a callback
/// (the state file's rows): the header and VTIMEZONEs on `new`, each item on `item`, the end
/// on `finish`. Only one item is held at a time.
pub struct CalendarWriter<'w, W: io::Write> {
    out: &'w mut W,
    zones: BTreeMap<&'static str, chrono_tz::Tz>,
    /// The defined zones written so far, by TZID.
    defined: BTreeMap<String, std::sync::Arc<crate::vzone::DefinedZone>>,
    text: String,
}

impl<'w, W: io::Write> CalendarWriter<'w, W> {
    /// Writes the header and one VTIMEZONE per zone (sorted by name).
    ///
    /// # Errors
    /// The writer's errors.
    pub fn new(out: &'w mut W, name: Option<&str>, zones: &[chrono_tz::Tz]) -> io::Result<Self> {
        let zones: BTreeMap<&'static str, chrono_tz::Tz> =
            zones.iter().map(|tz| (tz.name(), *tz)).collect();
        let mut text = String::new();
        write_header(&mut text, name);
        write_timezones(&mut text, zones.values().copied());
        out.write_all(text.as_bytes())?;
        Ok(CalendarWriter {
            out,
            zones,
            defined: BTreeMap::new(),
            text,
        })
    }

    /// Writes one item (master and overrides), preceded by the VTIMEZONE of each zone the
    /// source defined that it is the first to use (so a reader that resolves TZIDs as it goes
    /// has the definition before the use).
    ///
    /// # Errors
    /// The writer's errors; [`io::ErrorKind::InvalidInput`] for an item using an IANA zone
    /// not given to `new`, a defined zone whose TZID an earlier item defined differently, or
    /// an invalid rule.
    pub fn item(&mut self, item: &Published) -> io::Result<()> {
        if let Some(missing) = zones_of(&item.event)
            .into_iter()
            .find(|tz| !self.zones.contains_key(tz.name()))
        {
            return Err(invalid(format!(
                "event {} uses time zone {} not given to render_calendar",
                item.event.uid,
                missing.name()
            )));
        }
        self.text.clear();
        for zone in item.event.defined_zones() {
            match self.defined.get(zone.tzid()) {
                Some(known) if *known == zone => {}
                Some(_) => {
                    return Err(invalid(format!(
                        "event {} defines time zone {:?} unlike an earlier event",
                        item.event.uid,
                        zone.tzid()
                    )));
                }
                None => {
                    write_folded(&mut self.text, &zone.vtimezone());
                    self.defined.insert(zone.tzid().to_string(), zone);
                }
            }
        }
        write_item(&mut self.text, item)?;
        self.out.write_all(self.text.as_bytes())
    }

    /// Ends the calendar.
    ///
    /// # Errors
    /// The writer's errors.
    pub fn finish(self) -> io::Result<()> {
        self.out.write_all(b"END:VCALENDAR\r\n")
    }
}

/// One VCALENDAR holding one item (master and overrides) with its VTIMEZONEs: a CalDAV
/// resource.
///
/// # Errors
/// [`io::ErrorKind::InvalidInput`] when the item holds a rule that is not a valid RRULE.
pub fn render_resource(item: &Published) -> io::Result<String> {
    let mut text = String::new();
    write_header(&mut text, None);
    write_timezones(&mut text, zones_of(&item.event).into_iter());
    for zone in item.event.defined_zones() {
        write_folded(&mut text, &zone.vtimezone());
    }
    write_item(&mut text, item)?;
    text.push_str("END:VCALENDAR\r\n");
    Ok(text)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn write_header(out: &mut String, name: Option<&str>) {
    out.push_str(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//calsync//EN\r\nCALSCALE:GREGORIAN\r\n",
    );
    if let Some(name) = name {
        let name = clean(name);
        write_entry(
            out,
            ICalendarEntry::new(ICalendarProperty::Other("X-WR-CALNAME".into()))
                .with_value(name.clone()),
        );
        write_entry(
            out,
            ICalendarEntry::new(ICalendarProperty::Name).with_value(name),
        );
    }
}

/// One VTIMEZONE per zone, generated by calcard from chrono-tz.
fn write_timezones(out: &mut String, zones: impl Iterator<Item = chrono_tz::Tz>) {
    let mut ical = ICalendar {
        components: vec![ICalendarComponent::new(ICalendarComponentType::VCalendar)],
    };
    for tz in zones {
        ical.add_timezone(tz.name(), ZONE_SPAN.0, ZONE_SPAN.1);
    }
    if let Some(root) = ical.components.first() {
        for id in &root.component_ids {
            write_component(out, &ical, *id);
        }
    }
}

/// A component and its children, as calcard's `write_to` does for a whole calendar.
fn write_component(out: &mut String, ical: &ICalendar, id: u32) {
    let Some(comp) = ical.components.get(id as usize) else {
        return;
    };
    let name = comp.component_type.as_str();
    let _ = write!(out, "BEGIN:{name}\r\n");
    for e in &comp.entries {
        let _ = e.write_to(out);
    }
    for child in &comp.component_ids {
        write_component(out, ical, *child);
    }
    let _ = write!(out, "END:{name}\r\n");
}

/// Unfolded CRLF lines, folded at 75 octets without splitting a character.
fn write_folded(out: &mut String, text: &str) {
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let mut width = 0;
        for c in line.chars() {
            let len = c.len_utf8();
            if width + len > 75 {
                out.push_str("\r\n ");
                width = 1;
            }
            out.push(c);
            width += len;
        }
        out.push_str("\r\n");
    }
}

fn write_entry(out: &mut String, e: ICalendarEntry) {
    // Writing to a String cannot fail.
    let _ = e.write_to(out);
}

fn write_item(out: &mut String, item: &Published) -> io::Result<()> {
    let event = &item.event;
    out.push_str("BEGIN:VEVENT\r\n");
    write_common(out, item, None, &event.details);
    for (index, text) in event.rules.iter().enumerate() {
        let rule = parse_rule(text).ok_or_else(|| {
            invalid(format!(
                "event {}: recurrence rule {index} is not a valid RRULE",
                event.uid
            ))
        })?;
        // Written as calcard prints a parsed rule: no line break can get through.
        write_entry(
            out,
            ICalendarEntry::new(ICalendarProperty::Rrule)
                .with_value(ICalendarValue::Text(normalize_rule(&rule))),
        );
    }
    for e in moment_list(ICalendarProperty::Rdate, &event.rdates) {
        write_entry(out, e);
    }
    for e in period_list(&event.periods) {
        write_entry(out, e);
    }
    for e in moment_list(ICalendarProperty::Exdate, &event.exdates) {
        write_entry(out, e);
    }
    write_entry(
        out,
        ICalendarEntry::new(ICalendarProperty::Other("X-CALSYNC-TAG".into()))
            .with_value(clean(&item.tag)),
    );
    out.push_str("END:VEVENT\r\n");
    for o in &event.overrides {
        out.push_str("BEGIN:VEVENT\r\n");
        write_common(out, item, Some(&o.recurrence_id), &o.details);
        out.push_str("END:VEVENT\r\n");
    }
    Ok(())
}

/// The properties a master and an override share.
fn write_common(
    out: &mut String,
    item: &Published,
    recurrence_id: Option<&Moment>,
    d: &PublicDetails,
) {
    write_entry(
        out,
        ICalendarEntry::new(ICalendarProperty::Uid).with_value(clean(&item.event.uid)),
    );
    write_entry(
        out,
        ICalendarEntry::new(ICalendarProperty::Dtstamp).with_value(
            PartialDateTime::from_utc_timestamp(item.dtstamp.timestamp()),
        ),
    );
    if let Some(rid) = recurrence_id {
        write_entry(out, moment_entry(ICalendarProperty::RecurrenceId, rid));
    }
    write_entry(out, moment_entry(ICalendarProperty::Dtstart, &d.start));
    if let Some(end) = &d.end {
        write_entry(out, moment_entry(ICalendarProperty::Dtend, end));
    }
    write_entry(
        out,
        ICalendarEntry::new(ICalendarProperty::Summary).with_value(clean(&d.title)),
    );
    for (prop, text) in [
        (ICalendarProperty::Location, &d.location),
        (ICalendarProperty::Description, &d.description),
    ] {
        if let Some(text) = text {
            write_entry(out, ICalendarEntry::new(prop).with_value(clean(text)));
        }
    }
    if !d.categories.is_empty() {
        write_entry(
            out,
            ICalendarEntry::new(ICalendarProperty::Categories).with_values(
                d.categories
                    .iter()
                    .map(|c| ICalendarValue::Text(clean(c)))
                    .collect(),
            ),
        );
    }
    write_entry(
        out,
        ICalendarEntry::new(ICalendarProperty::Class).with_value(ICalendarClassification::Public),
    );
}

/// TEXT as iCalendar can carry it: line breaks as LF (written `\n`), no other control
/// characters (RFC 5545 §3.3.11 forbids them; calcard would write CR as a non-standard `\r`).
fn clean(text: &str) -> String {
    if !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return text.to_string(); // the common case, without three passes and a copy each
    }
    text.replace("\r\n", "\n")
        .chars()
        .map(|c| if c == '\r' { '\n' } else { c })
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect()
}

/// The value and parameters of one date or date-time property.
fn moment_entry(prop: ICalendarProperty, m: &Moment) -> ICalendarEntry {
    let (params, value) = moment_parts(m);
    ICalendarEntry::new(prop)
        .with_params(params)
        .with_value(value)
}

/// RDATE/EXDATE: one property per type and zone (a property has one VALUE and one TZID),
/// values in the order given.
fn moment_list(prop: ICalendarProperty, list: &[Moment]) -> Vec<ICalendarEntry> {
    let mut frames: Vec<(u8, &str)> = Vec::new();
    for m in list {
        if !frames.contains(&frame(m)) {
            frames.push(frame(m));
        }
    }
    frames
        .into_iter()
        .filter_map(|f| {
            let members: Vec<&Moment> = list.iter().filter(|m| frame(m) == f).collect();
            let (params, _) = moment_parts(members.first()?);
            let values = members
                .iter()
                .map(|m| ICalendarValue::from(moment_parts(m).1))
                .collect();
            Some(
                ICalendarEntry::new(prop.clone())
                    .with_params(params)
                    .with_values(values),
            )
        })
        .collect()
}

/// A moment's kind and zone: values of one RDATE/EXDATE property share them.
fn frame(m: &Moment) -> (u8, &str) {
    match m {
        Moment::Date(_) => (0, ""),
        Moment::Utc(_) => (1, ""),
        Moment::Zoned(_, tz) => (2, tz.name()),
        Moment::Floating(_) => (3, ""),
        Moment::Defined(_, zone) => (4, zone.tzid()),
    }
}

/// `RDATE;VALUE=PERIOD`: one property per frame of the starts, each `start/end` with the end
/// in the start's frame (a property has one TZID for both).
fn period_list(list: &[Period]) -> Vec<ICalendarEntry> {
    let mut frames: Vec<(u8, &str)> = Vec::new();
    for p in list {
        if !frames.contains(&frame(&p.start)) {
            frames.push(frame(&p.start));
        }
    }
    frames
        .into_iter()
        .filter_map(|f| {
            let members: Vec<&Period> = list.iter().filter(|p| frame(&p.start) == f).collect();
            let (mut params, _) = moment_parts(&members.first()?.start);
            params.push(ICalendarParameter::new(
                ICalendarParameterName::Value,
                ICalendarParameterValue::Value(ICalendarValueType::Period),
            ));
            let values = members
                .iter()
                .map(|p| {
                    let end = crate::recurrence::in_series_form(&p.end, &p.start);
                    ICalendarValue::Period(ICalendarPeriod::Range {
                        start: moment_parts(&p.start).1,
                        end: moment_parts(&end).1,
                    })
                })
                .collect();
            Some(
                ICalendarEntry::new(ICalendarProperty::Rdate)
                    .with_params(params)
                    .with_values(values),
            )
        })
        .collect()
}

fn moment_parts(m: &Moment) -> (Vec<ICalendarParameter>, PartialDateTime) {
    match m {
        Moment::Date(d) => (
            vec![ICalendarParameter::new(
                ICalendarParameterName::Value,
                ICalendarParameterValue::Value(ICalendarValueType::Date),
            )],
            date_value(*d),
        ),
        Moment::Utc(t) => {
            let mut v = date_time_value(*t);
            v.tz_hour = Some(0);
            v.tz_minute = Some(0);
            (Vec::new(), v)
        }
        Moment::Zoned(t, tz) => (
            vec![ICalendarParameter::new(
                ICalendarParameterName::Tzid,
                ICalendarParameterValue::Text(tz.name().to_string()),
            )],
            date_time_value(*t),
        ),
        Moment::Floating(t) => (Vec::new(), date_time_value(*t)),
        Moment::Defined(t, zone) => (
            vec![ICalendarParameter::new(
                ICalendarParameterName::Tzid,
                ICalendarParameterValue::Text(zone.tzid().to_string()),
            )],
            date_time_value(*t),
        ),
    }
}

fn date_value(d: NaiveDate) -> PartialDateTime {
    PartialDateTime {
        year: u16::try_from(d.year()).ok(),
        month: u8::try_from(d.month()).ok(),
        day: u8::try_from(d.day()).ok(),
        ..Default::default()
    }
}

fn date_time_value(t: NaiveDateTime) -> PartialDateTime {
    PartialDateTime {
        hour: u8::try_from(t.hour()).ok(),
        minute: u8::try_from(t.minute()).ok(),
        second: u8::try_from(t.second()).ok(),
        ..date_value(t.date())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ical::parse_feed;
    use crate::model::{PublicOverride, SourceEvent};
    use chrono::{DateTime, Utc};

    const DEMO: &[u8] = include_bytes!("../../examples/demo-source.ics");
    const UNICODE: &[u8] = include_bytes!("../../tests/fixtures/folding-unicode.ics");
    const GOOGLE: &[u8] = include_bytes!("../../tests/fixtures/google-export.ics");
    const OUTLOOK: &[u8] = include_bytes!("../../tests/fixtures/outlook-export.ics");
    const OUTLOOK_NAMES: &[u8] = include_bytes!("../../tests/fixtures/outlook-display-names.ics");
    const BARE_LF: &[u8] = include_bytes!("../../tests/fixtures/bare-lf.ics");

    fn public_details(d: &crate::model::Details) -> PublicDetails {
        PublicDetails {
            start: d.start.clone(),
            end: d.end.clone(),
            title: d.title.clone().unwrap_or_else(|| "Busy".into()),
            location: d.location.clone(),
            description: d.description.clone(),
            categories: d.categories.clone(),
        }
    }

    /// Every field published, as a policy choosing all four fields would (privacy aside).
    fn published(e: &SourceEvent, n: usize) -> Published {
        let rec = e.recurrence.clone().unwrap_or_default();
        Published {
            event: PublicEvent {
                uid: format!("{n:064x}@calsync"),
                details: public_details(&e.main),
                rules: rec.rules,
                rdates: rec.rdates,
                exdates: rec.exdates,
                periods: rec.periods,
                overrides: e
                    .overrides
                    .iter()
                    .map(|o| PublicOverride {
                        recurrence_id: o.recurrence_id.clone(),
                        details: public_details(&o.details),
                    })
                    .collect(),
            },
            dtstamp: DateTime::parse_from_rfc3339("2026-11-29T06:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            tag: format!("{n:064x}"),
        }
    }

    fn items(bytes: &[u8]) -> Vec<Published> {
        parse_feed(bytes)
            .unwrap()
            .events
            .iter()
            .enumerate()
            .map(|(n, e)| published(e, n))
            .collect()
    }

    fn all_zones(items: &[Published]) -> Vec<chrono_tz::Tz> {
        items.iter().flat_map(|i| zones_of(&i.event)).collect()
    }

    fn render(items: &[Published], name: Option<&str>) -> String {
        let mut out = Vec::new();
        render_calendar(&mut out, name, &all_zones(items), items.iter().cloned()).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Physical lines end in CRLF, are at most 75 octets, and no other CR or LF occurs.
    fn assert_wire_format(text: &str) {
        assert!(text.ends_with("\r\n"));
        for line in text[..text.len() - 2].split("\r\n") {
            assert!(line.len() <= 75, "{} octets: {line:?}", line.len());
            assert!(!line.contains(['\r', '\n']), "stray line break in {line:?}");
            assert!(!line.is_empty());
        }
    }

    #[test]
    fn output_is_crlf_folded_and_deterministic() {
        for bytes in [DEMO, UNICODE, GOOGLE, OUTLOOK] {
            let items = items(bytes);
            let a = render(&items, Some("St. Martin – public, \"all\"; events"));
            let b = render(&items, Some("St. Martin – public, \"all\"; events"));
            assert_eq!(a, b, "render twice → identical bytes");
            assert_wire_format(&a);
            assert!(a.starts_with(
                "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//calsync//EN\r\nCALSCALE:GREGORIAN\r\nX-WR-CALNAME:St. Martin – public\\, \"all\"\\; events\r\nNAME:"
            ));
            assert!(a.ends_with("END:VCALENDAR\r\n"));
            for item in &items {
                let r = render_resource(item).unwrap();
                assert_wire_format(&r);
                assert_eq!(r, render_resource(item).unwrap());
            }
        }
    }

    #[test]
    fn one_vtimezone_per_zone_sorted_by_name() {
        let items = items(OUTLOOK); // Europe/Berlin and UTC
        let text = render(&items, None);
        let tzids: Vec<&str> = text
            .split("\r\n")
            .filter_map(|l| l.strip_prefix("TZID:"))
            .collect();
        assert_eq!(tzids, vec!["Europe/Berlin", "UTC"]);
        assert_eq!(text.matches("BEGIN:VTIMEZONE").count(), 2);
        assert!(text.find("END:VTIMEZONE").unwrap() < text.find("BEGIN:VEVENT").unwrap());
        assert!(text.contains("DTSTART;TZID=Europe/Berlin:20261202T073000\r\n"));
        // Zones repeated in the caller's list are written once.
        let mut out = Vec::new();
        let twice = [all_zones(&items), all_zones(&items)].concat();
        render_calendar(&mut out, None, &twice, items.into_iter()).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), text);
    }

    #[test]
    fn nothing_from_the_source_but_the_published_fields() {
        let items = items(DEMO);
        let text = render(&items, None);
        for forbidden in [
            "ATTENDEE",
            "ORGANIZER",
            "VALARM",
            "X-PARISH",
            "X-ALT-DESC",
            "X-WR-TIMEZONE",
            "METHOD",
            "@st-martin.example.org",
            "CLASS:PRIVATE",
            "CLASS:CONFIDENTIAL",
            "X-STAFF",
            "STATUS",
            "TRANSP",
            "SEQUENCE",
            "VTODO",
        ] {
            assert!(!text.contains(forbidden), "{forbidden} leaked");
        }
        assert_eq!(
            text.matches("CLASS:PUBLIC").count(),
            text.matches("BEGIN:VEVENT").count()
        );
        assert_eq!(
            text.matches("X-CALSYNC-TAG:").count(),
            items.len(),
            "one tag per item"
        );
    }

    #[test]
    fn series_render_with_rules_exceptions_and_overrides() {
        let items = items(DEMO);
        let choir = items
            .iter()
            .find(|i| !i.event.overrides.is_empty())
            .unwrap();
        let text = render_resource(choir).unwrap();
        let unfolded = icalendar::parser::unfold(&text);
        let uid = &choir.event.uid;
        for want in [
            "RRULE:FREQ=WEEKLY;UNTIL=20270624T170000Z;BYDAY=TH\r\n",
            "EXDATE;TZID=Europe/Berlin:20261224T190000,20261231T190000\r\n",
            "RECURRENCE-ID;TZID=Europe/Berlin:20270211T190000\r\n",
            "RECURRENCE-ID;TZID=Europe/Berlin:20270408T190000\r\n",
            "DTSTART;TZID=Europe/Berlin:20270409T180000\r\n",
            "DTSTAMP:20261129T060000Z\r\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert_eq!(text.matches("BEGIN:VCALENDAR").count(), 1);
        assert_eq!(text.matches("BEGIN:VEVENT").count(), 3);
        assert_eq!(unfolded.matches(&format!("UID:{uid}\r\n")).count(), 3);
        assert_eq!(text.matches("BEGIN:VTIMEZONE").count(), 1);
    }

    #[test]
    fn dates_utc_and_floating_are_written_in_their_form() {
        let mut item = items(DEMO).remove(0);
        item.event.details.start = "2026-12-21".parse().unwrap();
        item.event.details.end = Some("2027-01-02".parse().unwrap());
        item.event.rdates = vec![
            "2027-02-01".parse().unwrap(),
            "2027-03-01T10:00:00Z".parse().unwrap(),
            "2027-04-01T10:00:00".parse().unwrap(),
            "2027-05-01".parse().unwrap(),
        ];
        let text = render_resource(&item).unwrap();
        for want in [
            "DTSTART;VALUE=DATE:20261221\r\n",
            "DTEND;VALUE=DATE:20270102\r\n",
            "RDATE;VALUE=DATE:20270201,20270501\r\n",
            "RDATE:20270301T100000Z\r\n",
            "RDATE:20270401T100000\r\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("BEGIN:VTIMEZONE"));
    }

    #[test]
    fn text_round_trips_through_an_independent_parser() {
        for bytes in [UNICODE, DEMO, GOOGLE, OUTLOOK, OUTLOOK_NAMES, BARE_LF] {
            let items = items(bytes);
            let text = render(&items, None);
            let unfolded = icalendar::parser::unfold(&text);
            let cal = icalendar::parser::read_calendar(&unfolded).unwrap();
            // Masters and overrides, in the order written, against the model's.
            let written: Vec<_> = cal
                .components
                .iter()
                .filter(|c| c.name == "VEVENT")
                .collect();
            let expected: Vec<(&str, &PublicDetails)> = items
                .iter()
                .flat_map(|i| {
                    std::iter::once((i.event.uid.as_str(), &i.event.details)).chain(
                        i.event
                            .overrides
                            .iter()
                            .map(|o| (i.event.uid.as_str(), &o.details)),
                    )
                })
                .collect();
            assert_eq!(written.len(), expected.len());
            for (event, (uid, d)) in written.iter().zip(expected) {
                let prop = |name: &str| event.find_prop(name).map(|p| p.val.as_str().to_string());
                assert_eq!(prop("SUMMARY").as_deref(), Some(d.title.as_str()));
                assert_eq!(prop("LOCATION"), d.location);
                assert_eq!(prop("DESCRIPTION"), d.description);
                assert_eq!(prop("UID").as_deref(), Some(uid));
                // CATEGORIES is a list: the parser leaves it escaped; split on unescaped commas.
                let categories = prop("CATEGORIES")
                    .map(|raw| split_list(&raw))
                    .unwrap_or_default();
                assert_eq!(categories, d.categories);
            }
            // And our own reader gets the same events back.
            let back = parse_feed(text.as_bytes()).unwrap();
            let again: Vec<Published> = back
                .events
                .iter()
                .zip(&items)
                .map(|(e, i)| Published {
                    event: PublicEvent {
                        uid: i.event.uid.clone(),
                        ..published(e, 0).event
                    },
                    ..i.clone()
                })
                .collect();
            assert_eq!(again, items);
        }
    }

    /// RFC 5545 TEXT list: split on commas not escaped, then unescape.
    fn split_list(raw: &str) -> Vec<String> {
        let mut items = vec![String::new()];
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n' | 'N') => items.last_mut().unwrap().push('\n'),
                    Some(other) => items.last_mut().unwrap().push(other),
                    None => {}
                },
                ',' => items.push(String::new()),
                c => items.last_mut().unwrap().push(c),
            }
        }
        items
    }

    #[test]
    fn control_characters_never_reach_the_output() {
        let mut item = items(DEMO).remove(0);
        item.event.details.title = "Line one\r\nline two\rthree\u{7}\u{0}end".into();
        item.event.details.description = Some("tab\tkept\u{1b}[31m".into());
        let text = render_resource(&item).unwrap();
        assert!(
            text.contains("SUMMARY:Line one\\nline two\\nthreeend\r\n"),
            "{text}"
        );
        assert!(text.contains("DESCRIPTION:tab\tkept[31m\r\n"), "{text}");
        assert_wire_format(&text);
    }

    #[test]
    fn bad_input_is_an_error_not_bad_output() {
        let mut item = items(DEMO).remove(0);
        // A zone the caller did not announce.
        let mut out = Vec::new();
        let err = render_calendar(&mut out, None, &[], std::iter::once(item.clone())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("Europe/Berlin"));
        // A rule that is not a rule, or would inject a line.
        for rule in [
            "FREQ=SOMETIMES",
            "FREQ=DAILY\r\nATTENDEE:mailto:x@example.org",
        ] {
            item.event.rules = vec![rule.into()];
            let err = render_resource(&item).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn defined_zones_precede_their_first_use_once_and_periods_keep_their_ends() {
        const FEED: &[u8] = b"BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nTZID:(GMT-03:00)\r\nBEGIN:STANDARD\r\nDTSTART:16010101T230000\r\nTZOFFSETFROM:-0200\r\nTZOFFSETTO:-0300\r\nRRULE:FREQ=YEARLY;BYMONTH=2;BYDAY=3SU\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:16010101T230000\r\nTZOFFSETFROM:-0300\r\nTZOFFSETTO:-0200\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=4SU\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:a\r\nDTSTART;TZID=\"(GMT-03:00)\":20160518T123000\r\nRDATE;TZID=\"(GMT-03:00)\";VALUE=PERIOD:20160601T090000/20160601T170000\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:b\r\nDTSTART;TZID=\"(GMT-03:00)\":20160519T123000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let items = items(FEED);
        let text = render(&items, None);
        assert_wire_format(&text);
        assert_eq!(text.matches("BEGIN:VTIMEZONE").count(), 1, "{text}");
        assert!(text.find("TZID:(GMT-03:00)").unwrap() < text.find("BEGIN:VEVENT").unwrap());
        for want in [
            "DTSTART;TZID=\"(GMT-03:00)\":20160518T123000\r\n",
            "RDATE;TZID=\"(GMT-03:00)\";VALUE=PERIOD:20160601T090000/20160601T170000\r\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        // Read back: the same zone, the same instants.
        let back = parse_feed(text.as_bytes()).unwrap();
        assert_eq!(back.skipped, vec![]);
        assert_eq!(
            back.events[0].main.start,
            parse_feed(FEED).unwrap().events[0].main.start
        );
        assert_eq!(
            back.events[0].main.start.to_utc().to_rfc3339(),
            "2016-05-18T15:30:00+00:00"
        );
        let resource = render_resource(&items[0]).unwrap();
        assert_eq!(resource.matches("BEGIN:VTIMEZONE").count(), 1);
    }

    #[test]
    fn zones_of_collects_every_zone_once() {
        let mut item = items(DEMO).remove(0);
        item.event.exdates = vec!["2027-01-01T10:00:00[America/New_York]".parse().unwrap()];
        item.event.overrides = vec![PublicOverride {
            recurrence_id: "2027-01-02T10:00:00[Europe/Berlin]".parse().unwrap(),
            details: PublicDetails {
                start: "2027-01-02T10:00:00[Asia/Tokyo]".parse().unwrap(),
                ..item.event.details.clone()
            },
        }];
        let names: Vec<&str> = zones_of(&item.event).iter().map(|tz| tz.name()).collect();
        assert_eq!(
            names,
            vec!["America/New_York", "Asia/Tokyo", "Europe/Berlin"]
        );
    }
}
