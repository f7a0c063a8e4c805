//! The common event model: what every source provider reads into, and what every target
//! provider writes from.
//!
//! Two shapes live here. [`SourceEvent`] is what a source said, raw enough that the policy can
//! judge it (the privacy marking is kept as the provider spelled it, so that "fail closed" is
//! decided in one place, `policy`). [`PublicEvent`] is what may be published: only the chosen
//! fields, a derived UID, no trace of the source's identifiers. Its canonical JSON form is what
//! the state file stores and what the content hash is computed over.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

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
/// named IANA zone, or a floating wall-clock time.
///
/// Its text form (`2026-05-01`, `2026-05-01T10:00:00Z`, `2026-05-01T10:00:00[Europe/Berlin]`,
/// `2026-05-01T10:00:00`) is what it serialises to, so the canonical JSON stays readable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Moment {
    Date(NaiveDate),
    Utc(NaiveDateTime),
    Zoned(NaiveDateTime, chrono_tz::Tz),
    Floating(NaiveDateTime),
}

/// Moments sort by their wall-clock (or UTC) reading, then kind and zone name: a stable order
/// for lists in the canonical form, not a comparison of instants (use [`Moment::to_utc`]).
impl Ord for Moment {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        fn rank(m: &Moment) -> (u8, &'static str) {
            match m {
                Moment::Date(_) => (0, ""),
                Moment::Utc(_) => (1, ""),
                Moment::Zoned(_, tz) => (2, tz.name()),
                Moment::Floating(_) => (3, ""),
            }
        }
        self.naive()
            .cmp(&other.naive())
            .then_with(|| rank(self).cmp(&rank(other)))
    }
}

impl PartialOrd for Moment {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Moment {
    /// The wall-clock (or UTC) date-time, midnight for a date.
    pub fn naive(&self) -> NaiveDateTime {
        match self {
            Moment::Date(d) => d.and_time(NaiveTime::MIN),
            Moment::Utc(t) | Moment::Zoned(t, _) | Moment::Floating(t) => *t,
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
        }
    }
}

/// A text form of [`Moment`] that could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("not a moment: {0:?}")]
pub struct BadMoment(String);

impl FromStr for Moment {
    type Err = BadMoment;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
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
            let tz: chrono_tz::Tz = zone.parse().map_err(|_| bad())?;
            return parse(t).map(|t| Moment::Zoned(t, tz)).map_err(|_| bad());
        }
        parse(s).map(Moment::Floating).map_err(|_| bad())
    }
}

impl Serialize for Moment {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Moment {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
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

/// The recurrence of a series: RRULE values (without the `RRULE:` prefix), RDATEs, EXDATEs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recurrence {
    pub rules: Vec<String>,
    pub rdates: Vec<Moment>,
    pub exdates: Vec<Moment>,
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
/// sorted by the policy) is stored in the state file and hashed to detect changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl PublicEvent {
    pub fn is_series(&self) -> bool {
        !self.rules.is_empty() || !self.rdates.is_empty()
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
        };
        assert_eq!(
            e.canonical_json(),
            r#"{"uid":"abc@calsync","start":"2026-05-01T10:00:00[Europe/Berlin]","end":"2026-05-01T11:00:00[Europe/Berlin]","title":"Busy"}"#
        );
        let back: PublicEvent = serde_json::from_str(&e.canonical_json()).unwrap();
        assert_eq!(back, e);
    }
}
