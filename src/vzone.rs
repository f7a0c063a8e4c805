//! Time zones a feed defines itself: a VTIMEZONE whose TZID names no IANA zone.
//!
//! DESIGN ("Reading real calendars"): a TZID that no IANA name, Windows name, X-LIC-LOCATION,
//! globally unique path or Outlook label stands for is read with the feed's own VTIMEZONE, as
//! written, and that VTIMEZONE is copied into the target under its TZID. A [`DefinedZone`] is
//! that definition: its observances (STANDARD/DAYLIGHT with onset, offsets, RRULE, RDATEs),
//! enough to turn a wall-clock time into an instant across every DST change it describes
//! ([`DefinedZone::to_utc`]), and a canonical VTIMEZONE text that re-reads to an equal zone
//! (so a published calendar reads back unchanged and hashes stay stable).
//!
//! Pure: no I/O. Only what defines the zone is kept (TZID, observances, TZNAME); anything else
//! a VTIMEZONE holds (X- properties, comments) never travels.

use crate::recurrence::{expand_rule, normalize_rule, parse_rule};
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use std::fmt::Write as _;
use std::sync::OnceLock;

/// The last year whose transitions are computed; instants later use the offset then in force.
const LAST_YEAR: i32 = 2200;

/// One STANDARD or DAYLIGHT block.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Observance {
    daylight: bool,
    /// The first onset, local time in the offset before it (`offset_from`).
    start: NaiveDateTime,
    offset_from: i32,
    offset_to: i32,
    /// RRULEs in calsync's canonical spelling.
    rules: Vec<String>,
    /// Further onsets, local time like `start`.
    rdates: Vec<NaiveDateTime>,
    names: Vec<String>,
}

/// One change of offset: from `at` (UTC seconds) on, `offset` applies.
#[derive(Clone, Copy, Debug)]
struct Transition {
    at: i64,
    before: i32,
    offset: i32,
}

/// A time zone as one feed's VTIMEZONE defines it.
#[derive(Debug)]
pub struct DefinedZone {
    tzid: String,
    observances: Vec<Observance>,
    transitions: OnceLock<Vec<Transition>>,
}

impl PartialEq for DefinedZone {
    fn eq(&self, other: &Self) -> bool {
        self.tzid == other.tzid && self.observances == other.observances
    }
}

impl Eq for DefinedZone {}

impl std::hash::Hash for DefinedZone {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.tzid.hash(state);
        self.observances.hash(state);
    }
}

impl PartialOrd for DefinedZone {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for DefinedZone {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.tzid, &self.observances).cmp(&(&other.tzid, &other.observances))
    }
}

/// Why a VTIMEZONE cannot define a zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    #[error("the VTIMEZONE has no TZID")]
    NoTzid,
    #[error("the VTIMEZONE has no STANDARD or DAYLIGHT observance")]
    NoObservance,
    #[error("an observance lacks or mangles {0}")]
    BadObservance(&'static str),
}

impl DefinedZone {
    /// Reads a VTIMEZONE from its unfolded lines (`BEGIN:VTIMEZONE` … `END:VTIMEZONE`).
    ///
    /// # Errors
    /// [`ZoneError`] when the block does not define a zone exactly (no TZID, no observance, an
    /// observance without a valid DTSTART, TZOFFSETFROM or TZOFFSETTO, or an unreadable RRULE or
    /// RDATE): its events are then withheld, never read in a guessed zone.
    pub fn parse(lines: &[&str]) -> Result<DefinedZone, ZoneError> {
        let mut tzid = None;
        let mut observances = Vec::new();
        let mut current: Option<PartialObservance> = None;
        let mut depth = 0usize;
        for line in lines {
            let Some((name, params, value)) = split(line) else {
                continue;
            };
            let upper = name.to_ascii_uppercase();
            match upper.as_str() {
                "BEGIN" => {
                    depth += 1;
                    if depth == 2 {
                        let kind = value.trim().to_ascii_uppercase();
                        current = match kind.as_str() {
                            "STANDARD" => Some(PartialObservance::new(false)),
                            "DAYLIGHT" => Some(PartialObservance::new(true)),
                            _ => None,
                        };
                    }
                }
                "END" => {
                    if depth == 2
                        && let Some(partial) = current.take()
                    {
                        observances.push(partial.finish()?);
                    }
                    depth = depth.saturating_sub(1);
                }
                _ if depth == 1 && upper == "TZID" => tzid = Some(unescape_text(value)),
                _ if depth == 2 => {
                    if let Some(partial) = current.as_mut() {
                        partial.property(&upper, params, value)?;
                    }
                }
                _ => {}
            }
        }
        let tzid = tzid
            .filter(|t| !t.trim().is_empty())
            .ok_or(ZoneError::NoTzid)?;
        if observances.is_empty() {
            return Err(ZoneError::NoObservance);
        }
        Ok(DefinedZone {
            tzid,
            observances,
            transitions: OnceLock::new(),
        })
    }

    /// A zone known only by name, while a published event's definitions are being read back
    /// (see `model`); it reads every time as UTC and never leaves that code.
    pub(crate) fn placeholder(tzid: &str) -> DefinedZone {
        DefinedZone {
            tzid: tzid.to_string(),
            observances: Vec::new(),
            transitions: OnceLock::new(),
        }
    }

    pub(crate) fn is_placeholder(&self) -> bool {
        self.observances.is_empty()
    }

    /// The TZID, as the feed wrote it.
    pub fn tzid(&self) -> &str {
        &self.tzid
    }

    /// The instant a wall-clock time in this zone stands for. An ambiguous time (a repeated
    /// hour) is the earlier instant; a time a DST gap skips is read with the offset before the
    /// gap (RFC 5545 §3.3.5), as [`crate::model::zoned_to_utc`] does for IANA zones.
    pub fn to_utc(&self, local: NaiveDateTime) -> DateTime<Utc> {
        let t = local.and_utc().timestamp();
        let mut offsets: Vec<i32> = self
            .transitions()
            .iter()
            .flat_map(|tr| [tr.before, tr.offset])
            .collect();
        offsets.sort_unstable();
        offsets.dedup();
        if offsets.is_empty() {
            offsets.push(self.offset_at(t));
        }
        let valid = offsets
            .iter()
            .map(|o| t - i64::from(*o))
            .filter(|u| i64::from(self.offset_at(*u)) == t - u)
            .min();
        let secs = valid.unwrap_or_else(|| t - i64::from(self.offset_at(t - 86_400)));
        DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The wall-clock time in this zone at an instant.
    pub fn local(&self, instant: DateTime<Utc>) -> NaiveDateTime {
        let offset = self.offset_at(instant.timestamp());
        instant.naive_utc() + TimeDelta::seconds(i64::from(offset))
    }

    /// The UTC offset (seconds east) in force at a UTC instant.
    fn offset_at(&self, at: i64) -> i32 {
        let transitions = self.transitions();
        match transitions.partition_point(|tr| tr.at <= at) {
            0 => transitions.first().map(|tr| tr.before).unwrap_or(0),
            n => transitions[n - 1].offset,
        }
    }

    fn transitions(&self) -> &[Transition] {
        self.transitions.get_or_init(|| {
            let stop = chrono::NaiveDate::from_ymd_opt(LAST_YEAR, 12, 31)
                .and_then(|d| d.and_hms_opt(23, 59, 59))
                .unwrap_or(NaiveDateTime::MAX);
            let mut out = Vec::new();
            for o in &self.observances {
                let mut onsets = vec![o.start];
                onsets.extend(o.rdates.iter().copied());
                for text in &o.rules {
                    if let Some(mut rule) = parse_rule(text) {
                        // An UNTIL in UTC is read in the offset before the onset.
                        if let Some(until) = rule.until.as_ref().and_then(|u| {
                            let v = u.to_date_time()?;
                            Some(match v.offset {
                                Some(off) => {
                                    v.date_time - off + TimeDelta::seconds(i64::from(o.offset_from))
                                }
                                None => v.date_time,
                            })
                        }) {
                            rule.until = Some(crate::recurrence::floating_value(until));
                        }
                        if let Ok(list) = expand_rule(&rule, o.start, stop) {
                            onsets.extend(list);
                        }
                    }
                }
                for onset in onsets {
                    out.push(Transition {
                        at: onset.and_utc().timestamp() - i64::from(o.offset_from),
                        before: o.offset_from,
                        offset: o.offset_to,
                    });
                }
            }
            out.sort_by_key(|tr| tr.at);
            out.dedup_by_key(|tr| tr.at);
            out
        })
    }

    /// The canonical VTIMEZONE (unfolded lines, CRLF): TZID and each observance's DTSTART,
    /// offsets, RRULEs, RDATEs and TZNAMEs, in the order the feed gave the observances.
    pub fn vtimezone(&self) -> String {
        let mut out = String::from("BEGIN:VTIMEZONE\r\n");
        let _ = write!(out, "TZID:{}\r\n", escape_text(&self.tzid));
        for o in &self.observances {
            let kind = if o.daylight { "DAYLIGHT" } else { "STANDARD" };
            let _ = write!(out, "BEGIN:{kind}\r\n");
            let _ = write!(out, "DTSTART:{}\r\n", o.start.format("%Y%m%dT%H%M%S"));
            let _ = write!(out, "TZOFFSETFROM:{}\r\n", offset_text(o.offset_from));
            let _ = write!(out, "TZOFFSETTO:{}\r\n", offset_text(o.offset_to));
            for rule in &o.rules {
                let _ = write!(out, "RRULE:{rule}\r\n");
            }
            if !o.rdates.is_empty() {
                let list: Vec<String> = o
                    .rdates
                    .iter()
                    .map(|d| d.format("%Y%m%dT%H%M%S").to_string())
                    .collect();
                let _ = write!(out, "RDATE:{}\r\n", list.join(","));
            }
            for name in &o.names {
                let _ = write!(out, "TZNAME:{}\r\n", escape_text(name));
            }
            let _ = write!(out, "END:{kind}\r\n");
        }
        out.push_str("END:VTIMEZONE\r\n");
        out
    }
}

struct PartialObservance {
    daylight: bool,
    start: Option<NaiveDateTime>,
    offset_from: Option<i32>,
    offset_to: Option<i32>,
    rules: Vec<String>,
    rdates: Vec<NaiveDateTime>,
    names: Vec<String>,
}

impl PartialObservance {
    fn new(daylight: bool) -> Self {
        PartialObservance {
            daylight,
            start: None,
            offset_from: None,
            offset_to: None,
            rules: Vec::new(),
            rdates: Vec::new(),
            names: Vec::new(),
        }
    }

    fn property(&mut self, name: &str, _params: &str, value: &str) -> Result<(), ZoneError> {
        match name {
            "DTSTART" => {
                self.start = Some(local_time(value).ok_or(ZoneError::BadObservance("DTSTART"))?)
            }
            "TZOFFSETFROM" => {
                self.offset_from =
                    Some(parse_offset(value).ok_or(ZoneError::BadObservance("TZOFFSETFROM"))?)
            }
            "TZOFFSETTO" => {
                self.offset_to =
                    Some(parse_offset(value).ok_or(ZoneError::BadObservance("TZOFFSETTO"))?)
            }
            "RRULE" => {
                let rule = parse_rule(value).ok_or(ZoneError::BadObservance("RRULE"))?;
                self.rules.push(normalize_rule(&rule));
            }
            "RDATE" => {
                for v in value.split(',') {
                    self.rdates
                        .push(local_time(v).ok_or(ZoneError::BadObservance("RDATE"))?);
                }
            }
            "TZNAME" => self.names.push(unescape_text(value)),
            _ => {}
        }
        Ok(())
    }

    fn finish(self) -> Result<Observance, ZoneError> {
        Ok(Observance {
            daylight: self.daylight,
            start: self.start.ok_or(ZoneError::BadObservance("DTSTART"))?,
            offset_from: self
                .offset_from
                .ok_or(ZoneError::BadObservance("TZOFFSETFROM"))?,
            offset_to: self
                .offset_to
                .ok_or(ZoneError::BadObservance("TZOFFSETTO"))?,
            rules: self.rules,
            rdates: self.rdates,
            names: self.names,
        })
    }
}

/// `NAME;params:value` → (NAME, params, value), the value after the first colon outside quotes.
fn split(line: &str) -> Option<(&str, &str, &str)> {
    let name_end = line.find([';', ':'])?;
    let mut quoted = false;
    for (i, c) in line[name_end..].char_indices() {
        match c {
            '"' => quoted = !quoted,
            ':' if !quoted => {
                let at = name_end + i;
                return Some((
                    line[..name_end].trim(),
                    &line[name_end..at],
                    &line[at + 1..],
                ));
            }
            _ => {}
        }
    }
    None
}

/// A local DATE-TIME (`19701025T030000`); a trailing `Z` is not local and is refused.
fn local_time(value: &str) -> Option<NaiveDateTime> {
    let v = value.trim();
    if v.len() != 15 || !v.is_ascii() || v.as_bytes()[8] != b'T' {
        return None;
    }
    NaiveDateTime::parse_from_str(v, "%Y%m%dT%H%M%S").ok()
}

/// `+0100`, `-0330`, `+013045` → seconds east of UTC.
fn parse_offset(value: &str) -> Option<i32> {
    let v = value.trim();
    let (sign, digits) = match v.as_bytes().first()? {
        b'+' => (1, &v[1..]),
        b'-' => (-1, &v[1..]),
        _ => return None,
    };
    if !(digits.len() == 4 || digits.len() == 6) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i32 = digits[0..2].parse().ok()?;
    let m: i32 = digits[2..4].parse().ok()?;
    let s: i32 = if digits.len() == 6 {
        digits[4..6].parse().ok()?
    } else {
        0
    };
    (m < 60 && s < 60).then_some(sign * (h * 3600 + m * 60 + s))
}

fn offset_text(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    let (h, m, s) = (a / 3600, a % 3600 / 60, a % 60);
    if s == 0 {
        format!("{sign}{h:02}{m:02}")
    } else {
        format!("{sign}{h:02}{m:02}{s:02}")
    }
}

/// RFC 5545 TEXT unescaping (`\\ \; \, \n \N`); any other backslash stays as written.
pub(crate) fn unescape_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('\\' | ';' | ',') => out.push(chars.next().unwrap_or('\\')),
            Some('n' | 'N') => {
                chars.next();
                out.push('\n');
            }
            _ => out.push('\\'),
        }
    }
    out
}

/// RFC 5545 TEXT escaping, the inverse of [`unescape_text`]; line breaks become `\n`.
pub(crate) fn escape_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(text: &str) -> DefinedZone {
        let lines: Vec<&str> = text.lines().collect();
        DefinedZone::parse(&lines).unwrap()
    }

    /// khal's name for Berlin time, with its own DST rules: no IANA name stands for it.
    const KHAL: &str = "BEGIN:VTIMEZONE\nTZID:Western/Central Europe\nX-LIC-NOTE:kept out\nBEGIN:STANDARD\nDTSTART:19701025T030000\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\nTZNAME:CET\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0100\nEND:STANDARD\nBEGIN:DAYLIGHT\nDTSTART:19700329T020000\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\nTZNAME:CEST\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0200\nEND:DAYLIGHT\nEND:VTIMEZONE";

    fn local(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap()
    }

    #[test]
    fn wall_clock_times_follow_the_defined_dst_rules() {
        let z = zone(KHAL);
        let cases = [
            // Winter, summer, the repeated hour (earlier instant), the skipped hour (moved on).
            ("2021-11-01T16:00:00", "2021-11-01T15:00:00+00:00"),
            ("2021-07-01T16:00:00", "2021-07-01T14:00:00+00:00"),
            ("2021-10-31T02:30:00", "2021-10-31T00:30:00+00:00"),
            ("2021-03-28T02:30:00", "2021-03-28T01:30:00+00:00"),
            // Before the first onset: the offset before it (the DAYLIGHT's TZOFFSETFROM).
            ("1960-01-01T12:00:00", "1960-01-01T11:00:00+00:00"),
        ];
        for (wall, utc) in cases {
            assert_eq!(z.to_utc(local(wall)).to_rfc3339(), utc, "{wall}");
        }
        let instant = DateTime::parse_from_rfc3339("2021-07-01T14:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(z.local(instant), local("2021-07-01T16:00:00"));
    }

    #[test]
    fn the_canonical_text_reads_back_equal_and_keeps_nothing_else() {
        let z = zone(KHAL);
        let text = z.vtimezone();
        assert!(!text.contains("X-LIC-NOTE"));
        assert!(text.contains("TZID:Western/Central Europe\r\n"));
        let again = zone(&text);
        assert_eq!(again, z);
        assert_eq!(again.vtimezone(), text);
    }

    #[test]
    fn rdate_onsets_and_offsets_with_seconds() {
        let z = zone(
            "BEGIN:VTIMEZONE\nTZID:Old\\, odd\nBEGIN:STANDARD\nDTSTART:19000101T000000\nTZOFFSETFROM:+001730\nTZOFFSETTO:+0100\nRDATE:19500601T000000\nEND:STANDARD\nEND:VTIMEZONE",
        );
        assert_eq!(z.tzid(), "Old, odd");
        assert_eq!(
            z.to_utc(local("1930-01-01T12:00:00")).to_rfc3339(),
            "1930-01-01T11:00:00+00:00"
        );
        assert!(z.vtimezone().contains("TZOFFSETFROM:+001730\r\n"));
    }

    #[test]
    fn what_does_not_define_a_zone_is_an_error() {
        let cases = [
            (
                "BEGIN:VTIMEZONE\nBEGIN:STANDARD\nDTSTART:19700101T000000\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0100\nEND:STANDARD\nEND:VTIMEZONE",
                ZoneError::NoTzid,
            ),
            ("BEGIN:VTIMEZONE\nTZID:\nEND:VTIMEZONE", ZoneError::NoTzid),
            (
                "BEGIN:VTIMEZONE\nTZID:X\nEND:VTIMEZONE",
                ZoneError::NoObservance,
            ),
            (
                "BEGIN:VTIMEZONE\nTZID:X\nBEGIN:STANDARD\nDTSTART:19700101T000000\nTZOFFSETTO:+0100\nEND:STANDARD\nEND:VTIMEZONE",
                ZoneError::BadObservance("TZOFFSETFROM"),
            ),
            (
                "BEGIN:VTIMEZONE\nTZID:X\nBEGIN:STANDARD\nDTSTART:19700101T0000\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0100\nEND:STANDARD\nEND:VTIMEZONE",
                ZoneError::BadObservance("DTSTART"),
            ),
            (
                "BEGIN:VTIMEZONE\nTZID:X\nBEGIN:STANDARD\nDTSTART:19700101T000000\nTZOFFSETFROM:+1\nTZOFFSETTO:+0100\nEND:STANDARD\nEND:VTIMEZONE",
                ZoneError::BadObservance("TZOFFSETFROM"),
            ),
        ];
        for (text, want) in cases {
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(DefinedZone::parse(&lines).unwrap_err(), want, "{text}");
        }
    }
}
