//! The common event model: what every source provider reads into, and what every target
//! provider writes from.
//!
//! Two shapes live here. [`SourceEvent`] is what a source said, raw enough that the policy can
//! judge it (the privacy marking is kept as the provider spelled it, so that "fail closed" is
//! decided in one place, `policy`). [`PublicEvent`] is what may be published: only the chosen
//! fields, a derived UID, no trace of the source's identifiers. Its canonical JSON form is what
//! the state file stores and what the content hash is computed over.

use crate::vzone::DefinedZone;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The key a source gives one of its items (a single event, or a whole series with its
/// overridden instances). Stable across runs; never published.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SourceKey(pub String);

impl fmt::Display for SourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key of one item calsync publishes: the source key with `preserve`, or the source key
/// and one occurrence with `expand`. The mapping, the tag and the target UID are derived from it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemKey(pub String);

impl ItemKey {
    /// The item key of a whole source item (recurrence preserved).
    pub fn whole(source: &SourceKey) -> ItemKey {
        ItemKey(source.0.clone())
    }

    /// The item key of one expanded occurrence of a source item.
    pub fn occurrence(source: &SourceKey, recurrence_id: &Moment) -> ItemKey {
        ItemKey(format!("{}#{}", source.0, recurrence_id))
    }
}

impl fmt::Display for ItemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A moment as a calendar states it: a date (all-day), a UTC instant, a wall-clock time in a
/// named IANA zone, a floating wall-clock time, or a wall-clock time in a zone only the source
/// defines (its VTIMEZONE, when no IANA name stands for the TZID).
///
/// Its text form (`2026-05-01`, `2026-05-01T10:00:00Z`, `2026-05-01T10:00:00[Europe/Berlin]`,
/// `2026-05-01T10:00:00`) is what it serialises to, so the canonical JSON stays readable. A
/// [`Moment::Defined`] writes its TZID in the brackets; the definition travels once per event,
/// in the `zones` table of [`PublicEvent`]'s canonical JSON.
///
/// Every kind but a date and a floating time is an instant: [`Moment::to_utc`] gives it, also
/// for a defined zone (through its DST rules). A provider that cannot hold a defined zone
/// (Graph, Google) writes `to_utc()` (or converts it into an IANA zone of its choice).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Moment {
    Date(NaiveDate),
    Utc(NaiveDateTime),
    Zoned(NaiveDateTime, chrono_tz::Tz),
    Floating(NaiveDateTime),
    Defined(NaiveDateTime, Arc<DefinedZone>),
}

/// Moments sort by their wall-clock (or UTC) reading, then kind and zone name: a stable order
/// for lists in the canonical form, not a comparison of instants (use [`Moment::to_utc`]).
impl Ord for Moment {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        fn rank(m: &Moment) -> (u8, &str) {
            match m {
                Moment::Date(_) => (0, ""),
                Moment::Utc(_) => (1, ""),
                Moment::Zoned(_, tz) => (2, tz.name()),
                Moment::Floating(_) => (3, ""),
                Moment::Defined(_, zone) => (4, zone.tzid()),
            }
        }
        self.naive()
            .cmp(&other.naive())
            .then_with(|| rank(self).cmp(&rank(other)))
            .then_with(|| match (self, other) {
                (Moment::Defined(_, a), Moment::Defined(_, b)) => a.cmp(b),
                _ => std::cmp::Ordering::Equal,
            })
    }
}

impl PartialOrd for Moment {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Moment {
    /// True for an all-day (DATE) value.
    pub fn is_date(&self) -> bool {
        matches!(self, Moment::Date(_))
    }

    /// The wall-clock (or UTC) date-time, midnight for a date.
    pub fn naive(&self) -> NaiveDateTime {
        match self {
            Moment::Date(d) => d.and_time(NaiveTime::MIN),
            Moment::Utc(t) | Moment::Zoned(t, _) | Moment::Floating(t) | Moment::Defined(t, _) => {
                *t
            }
        }
    }

    /// The instant this moment stands for. Dates and floating times have no zone; they are
    /// read as UTC, which is close enough for deciding whether an event lies in the window
    /// (the window is days wide). A wall-clock time that does not exist (skipped by a DST
    /// change) is moved forward by the gap, as RFC 5545 §3.3.5 says.
    pub fn to_utc(&self) -> DateTime<Utc> {
        match self {
            Moment::Date(_) | Moment::Floating(_) | Moment::Utc(_) => {
                Utc.from_utc_datetime(&self.naive())
            }
            Moment::Zoned(t, tz) => zoned_to_utc(*t, *tz),
            Moment::Defined(t, zone) => zone.to_utc(*t),
        }
    }

    /// The zone a feed defined that this moment is in, if any.
    pub fn defined_zone(&self) -> Option<&Arc<DefinedZone>> {
        match self {
            Moment::Defined(_, zone) => Some(zone),
            _ => None,
        }
    }
}

/// Resolves a wall-clock time in a zone: the earlier instant when ambiguous (the first pass
/// through a repeated hour), shifted forward over a gap when the time does not exist.
pub fn zoned_to_utc(t: NaiveDateTime, tz: chrono_tz::Tz) -> DateTime<Utc> {
    use chrono::LocalResult;
    match tz.from_local_datetime(&t) {
        LocalResult::Single(dt) => dt.with_timezone(&Utc),
        LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
        LocalResult::None => {
            // In a gap: the offset before the gap applies (RFC 5545 §3.3.5), so the instant is
            // the wall time read with the earlier offset.
            let probe = t - chrono::Duration::hours(3);
            let before = tz
                .from_local_datetime(&probe)
                .earliest()
                .map(|dt| dt.offset().fix())
                .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("zero offset"));
            Utc.from_utc_datetime(&(t - before))
        }
    }
}

use chrono::Offset;

impl fmt::Display for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Moment::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            Moment::Utc(t) => write!(f, "{}Z", t.format("%Y-%m-%dT%H:%M:%S")),
            Moment::Zoned(t, tz) => write!(f, "{}[{}]", t.format("%Y-%m-%dT%H:%M:%S"), tz.name()),
            Moment::Floating(t) => write!(f, "{}", t.format("%Y-%m-%dT%H:%M:%S")),
            Moment::Defined(t, zone) => {
                write!(f, "{}[{}]", t.format("%Y-%m-%dT%H:%M:%S"), zone.tzid())
            }
        }
    }
}

/// A text form of [`Moment`] that could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("not a moment: {0:?}")]
pub struct BadMoment(String);

impl FromStr for Moment {
    type Err = BadMoment;

    /// Reads the text form; a zone in brackets must be an IANA name (a defined zone can only
    /// be read back with its definition, by [`PublicEvent`]'s deserialisation).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Moment::parse_text(s, |_| None)
    }
}

impl Moment {
    /// The text form, with `defined` giving the zone for a TZID that is not an IANA name.
    fn parse_text(
        s: &str,
        defined: impl Fn(&str) -> Option<Arc<DefinedZone>>,
    ) -> Result<Moment, BadMoment> {
        let bad = || BadMoment(s.to_string());
        if s.len() == 10 {
            return NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(Moment::Date)
                .map_err(|_| bad());
        }
        let parse = |t: &str| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S");
        if let Some(t) = s.strip_suffix('Z') {
            return parse(t).map(Moment::Utc).map_err(|_| bad());
        }
        if let Some((t, zone)) = s.strip_suffix(']').and_then(|r| r.split_once('[')) {
            let t = parse(t).map_err(|_| bad())?;
            if let Ok(tz) = zone.parse::<chrono_tz::Tz>() {
                return Ok(Moment::Zoned(t, tz));
            }
            return defined(zone).map(|z| Moment::Defined(t, z)).ok_or_else(bad);
        }
        parse(s).map(Moment::Floating).map_err(|_| bad())
    }
}

impl Serialize for Moment {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A moment in a defined zone deserialises with a placeholder for its zone, which
/// [`PublicEvent`]'s deserialisation replaces by the definition from the event's `zones`
/// table (and refuses the event when the table lacks it).
impl<'de> Deserialize<'de> for Moment {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Moment::parse_text(&s, |tzid| Some(Arc::new(DefinedZone::placeholder(tzid))))
            .map_err(serde::de::Error::custom)
    }
}

/// An RDATE given as a PERIOD: an extra instance with its own end.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    pub start: Moment,
    /// Exclusive end, in the start's type and zone.
    pub end: Moment,
}

/// How the source marked an event's privacy, spelled as the provider spells it. `None` means
/// the field was absent. The policy decides what each value means; nothing else may.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Marking {
    /// iCalendar `CLASS` (absent = PUBLIC).
    Class(Option<String>),
    /// Microsoft Graph `sensitivity`.
    Sensitivity(Option<String>),
    /// Google Calendar `visibility` (absent = "default").
    Visibility(Option<String>),
}

/// What one event (or one overridden instance) says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Details {
    pub start: Moment,
    /// Exclusive end; `None` means none was given (one day for a date, zero length otherwise).
    pub end: Option<Moment>,
    pub title: Option<String>,
    pub location: Option<String>,
    pub description: Option<String>,
    pub categories: Vec<String>,
    pub marking: Marking,
    pub cancelled: bool,
}

impl Details {
    /// The exclusive end as a moment, filling in RFC 5545's defaults.
    pub fn effective_end(&self) -> Moment {
        match (&self.end, &self.start) {
            (Some(end), _) => end.clone(),
            (None, Moment::Date(d)) => Moment::Date(d.succ_opt().unwrap_or(*d)),
            (None, start) => start.clone(),
        }
    }
}

/// The recurrence of a series: RRULE values (without the `RRULE:` prefix), RDATEs (a
/// date or date-time, lasting as long as the master), RDATE periods (each with its own end)
/// and EXDATEs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recurrence {
    pub rules: Vec<String>,
    pub rdates: Vec<Moment>,
    pub exdates: Vec<Moment>,
    pub periods: Vec<Period>,
    /// EXRULE values (canonical spelling): their occurrences are removed from the series.
    /// RFC 5545 dropped EXRULE and many clients ignore it, so `policy` publishes what it
    /// removes as EXDATEs.
    pub exrules: Vec<String>,
}

/// One instance of a series that differs from the rule (RECURRENCE-ID).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    /// The original start of the instance, in the series' DTSTART type and zone.
    pub recurrence_id: Moment,
    pub details: Details,
}

/// One item as a source holds it: a single event, or a series master with its overrides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceEvent {
    pub key: SourceKey,
    pub main: Details,
    pub recurrence: Option<Recurrence>,
    pub overrides: Vec<Override>,
}

impl SourceEvent {
    pub fn is_series(&self) -> bool {
        self.recurrence.is_some()
    }
}

/// The fields of an event as published. Only the fields the pair chose are filled in; the
/// title is `Busy` when the title was not chosen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicDetails {
    pub start: Moment,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Moment>,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
}

/// An overridden instance as published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicOverride {
    pub recurrence_id: Moment,
    #[serde(flatten)]
    pub details: PublicDetails,
}

/// What calsync publishes for one item. Its canonical JSON (field order as declared, lists
/// sorted by the policy, then a `zones` table with the canonical VTIMEZONE of each zone the
/// feed defined that a moment uses) is stored in the state file and hashed to detect changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "CanonicalEvent", try_from = "CanonicalEvent")]
pub struct PublicEvent {
    /// Derived from the pair and the item key; never the source's UID.
    pub uid: String,
    #[serde(flatten)]
    pub details: PublicDetails,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rdates: Vec<Moment>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exdates: Vec<Moment>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<PublicOverride>,
    /// RDATEs given as periods (each instance with its own end).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub periods: Vec<Period>,
}

/// [`PublicEvent`] as its canonical JSON holds it: the same fields and the definitions of the
/// zones its moments use that the source defined itself (TZID → canonical VTIMEZONE).
#[derive(Serialize, Deserialize)]
struct CanonicalEvent {
    uid: String,
    #[serde(flatten)]
    details: PublicDetails,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    rules: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    rdates: Vec<Moment>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    exdates: Vec<Moment>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    overrides: Vec<PublicOverride>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    periods: Vec<Period>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    zones: BTreeMap<String, String>,
}

impl From<PublicEvent> for CanonicalEvent {
    fn from(e: PublicEvent) -> Self {
        let zones = e
            .defined_zones()
            .into_iter()
            .map(|z| (z.tzid().to_string(), z.vtimezone()))
            .collect();
        CanonicalEvent {
            uid: e.uid,
            details: e.details,
            rules: e.rules,
            rdates: e.rdates,
            exdates: e.exdates,
            overrides: e.overrides,
            periods: e.periods,
            zones,
        }
    }
}

/// A canonical event whose moment names a defined zone its table does not define.
#[derive(Debug, thiserror::Error)]
#[error("time zone {0:?} is used but not defined")]
pub struct UndefinedZone(String);

impl TryFrom<CanonicalEvent> for PublicEvent {
    type Error = String;

    fn try_from(c: CanonicalEvent) -> Result<Self, Self::Error> {
        let mut defined: BTreeMap<String, Arc<DefinedZone>> = BTreeMap::new();
        for (tzid, text) in &c.zones {
            let lines: Vec<&str> = text.lines().collect();
            let zone = DefinedZone::parse(&lines).map_err(|e| format!("zone {tzid:?}: {e}"))?;
            defined.insert(tzid.clone(), Arc::new(zone));
        }
        let mut event = PublicEvent {
            uid: c.uid,
            details: c.details,
            rules: c.rules,
            rdates: c.rdates,
            exdates: c.exdates,
            overrides: c.overrides,
            periods: c.periods,
        };
        let mut missing = None;
        event.for_each_moment_mut(&mut |m| {
            if let Moment::Defined(t, zone) = m
                && zone.is_placeholder()
            {
                match defined.get(zone.tzid()) {
                    Some(def) => *m = Moment::Defined(*t, def.clone()),
                    None => missing = Some(zone.tzid().to_string()),
                }
            }
        });
        match missing {
            Some(tzid) => Err(UndefinedZone(tzid).to_string()),
            None => Ok(event),
        }
    }
}

impl PublicEvent {
    pub fn is_series(&self) -> bool {
        !self.rules.is_empty() || !self.rdates.is_empty() || !self.periods.is_empty()
    }

    /// Every moment of the event: start and end, RDATEs, periods, EXDATEs, each override's
    /// RECURRENCE-ID, start and end.
    pub fn moments(&self) -> Vec<&Moment> {
        fn details(d: &PublicDetails) -> impl Iterator<Item = &Moment> {
            std::iter::once(&d.start).chain(d.end.as_ref())
        }
        let mut out: Vec<&Moment> = details(&self.details).collect();
        out.extend(&self.rdates);
        out.extend(self.periods.iter().flat_map(|p| [&p.start, &p.end]));
        out.extend(&self.exdates);
        for o in &self.overrides {
            out.push(&o.recurrence_id);
            out.extend(details(&o.details));
        }
        out
    }

    fn for_each_moment_mut(&mut self, f: &mut dyn FnMut(&mut Moment)) {
        fn details(d: &mut PublicDetails, f: &mut dyn FnMut(&mut Moment)) {
            f(&mut d.start);
            if let Some(end) = d.end.as_mut() {
                f(end);
            }
        }
        details(&mut self.details, f);
        self.rdates.iter_mut().for_each(&mut *f);
        for p in &mut self.periods {
            f(&mut p.start);
            f(&mut p.end);
        }
        self.exdates.iter_mut().for_each(&mut *f);
        for o in &mut self.overrides {
            f(&mut o.recurrence_id);
            details(&mut o.details, f);
        }
    }

    /// The zones the source defined that the event's moments use, sorted, each once.
    pub fn defined_zones(&self) -> Vec<Arc<DefinedZone>> {
        let mut zones: Vec<Arc<DefinedZone>> = self
            .moments()
            .into_iter()
            .filter_map(|m| m.defined_zone().cloned())
            .collect();
        zones.sort();
        zones.dedup();
        zones
    }

    /// The canonical JSON form: what is stored and hashed.
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(self).expect("a PublicEvent always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moment_text_round_trips() {
        for s in [
            "2026-05-01",
            "2026-05-01T10:00:00Z",
            "2026-05-01T10:00:00[Europe/Berlin]",
            "2026-05-01T10:00:00",
        ] {
            let m: Moment = s.parse().unwrap();
            assert_eq!(m.to_string(), s);
        }
        assert!(
            "2026-05-01T10:00:00[Mars/Olympus]"
                .parse::<Moment>()
                .is_err()
        );
    }

    #[test]
    fn zoned_time_in_dst_gap_moves_forward() {
        // 02:30 on 2026-03-29 does not exist in Berlin; it is read with the offset before (+1).
        let t = NaiveDate::from_ymd_opt(2026, 3, 29)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        let m = Moment::Zoned(t, chrono_tz::Europe::Berlin);
        assert_eq!(m.to_utc().to_rfc3339(), "2026-03-29T01:30:00+00:00");
    }

    #[test]
    fn date_without_end_lasts_one_day() {
        let d = Details {
            start: "2026-05-01".parse().unwrap(),
            end: None,
            title: None,
            location: None,
            description: None,
            categories: vec![],
            marking: Marking::Class(None),
            cancelled: false,
        };
        assert_eq!(d.effective_end().to_string(), "2026-05-02");
    }

    #[test]
    fn a_defined_zone_travels_once_in_the_canonical_json() {
        let lines: Vec<&str> = "BEGIN:VTIMEZONE\nTZID:Office\nBEGIN:STANDARD\nDTSTART:19700101T000000\nTZOFFSETFROM:+0300\nTZOFFSETTO:+0300\nEND:STANDARD\nEND:VTIMEZONE"
            .lines()
            .collect();
        let zone = Arc::new(DefinedZone::parse(&lines).unwrap());
        let at = |s: &str| {
            Moment::Defined(
                NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap(),
                zone.clone(),
            )
        };
        let e = PublicEvent {
            uid: "u".into(),
            details: PublicDetails {
                start: at("2026-05-01T10:00:00"),
                end: Some(at("2026-05-01T11:00:00")),
                title: "Busy".into(),
                location: None,
                description: None,
                categories: vec![],
            },
            rules: vec!["FREQ=DAILY".into()],
            rdates: vec![],
            exdates: vec![at("2026-05-02T10:00:00")],
            overrides: vec![],
            periods: vec![],
        };
        let json = e.canonical_json();
        assert!(
            json.contains(r#""start":"2026-05-01T10:00:00[Office]""#),
            "{json}"
        );
        assert_eq!(json.matches("BEGIN:VTIMEZONE").count(), 1, "{json}");
        let back: PublicEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
        assert_eq!(
            back.details.start.to_utc().to_rfc3339(),
            "2026-05-01T07:00:00+00:00"
        );
        assert_eq!(back.canonical_json(), json);
        // A moment in a zone the table does not define is refused, never read as UTC.
        let without = json.split(r#","zones""#).next().unwrap().to_string() + "}";
        assert!(
            serde_json::from_str::<PublicEvent>(&without).is_err(),
            "{without}"
        );
    }

    #[test]
    fn canonical_json_is_stable_and_omits_unchosen_fields() {
        let e = PublicEvent {
            uid: "abc@calsync".into(),
            details: PublicDetails {
                start: "2026-05-01T10:00:00[Europe/Berlin]".parse().unwrap(),
                end: Some("2026-05-01T11:00:00[Europe/Berlin]".parse().unwrap()),
                title: "Busy".into(),
                location: None,
                description: None,
                categories: vec![],
            },
            rules: vec![],
            rdates: vec![],
            exdates: vec![],
            overrides: vec![],
            periods: vec![],
        };
        assert_eq!(
            e.canonical_json(),
            r#"{"uid":"abc@calsync","start":"2026-05-01T10:00:00[Europe/Berlin]","end":"2026-05-01T11:00:00[Europe/Berlin]","title":"Busy"}"#
        );
        let back: PublicEvent = serde_json::from_str(&e.canonical_json()).unwrap();
        assert_eq!(back, e);
    }
}
