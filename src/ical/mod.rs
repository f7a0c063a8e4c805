//! iCalendar text: reading feeds and CalDAV resources into the model, writing published
//! events back out.
//!
//! calcard does part of the iCalendar work (Windows and `(UTC+01:00) …` zone names, RRULE
//! parsing and expansion, VTIMEZONE generation for IANA zones, folding and escaping on
//! write). What must be exact is ours (DESIGN "Reading real calendars"): unfolding on bytes,
//! refusing truncated feeds with a position and no content, values read by their grammar
//! (`values`: dates, times, durations, rules, TEXT with its escapes), zones a feed defines
//! itself (`zones`, [`crate::vzone`]), the privacy marking exactly as written, grouping of
//! series, overrides and copies of one event by UID, `RANGE=THISANDFUTURE` splits (`split`),
//! and deterministic, streaming output.
//!
//! Nothing here decides what may be published (that is `policy`), and nothing here does I/O
//! beyond writing to the `Write` it is given.

mod feed_bytes;
mod lines;
mod parse;
mod render;
mod split;
mod values;
mod zones;

pub use feed_bytes::{FeedBytes, FeedFile};
pub use parse::{FeedError, ReadBack, id_hash, parse_feed, parse_published, read_feed};
pub use render::{CalendarWriter, render_calendar, render_resource, zones_of};

use crate::model::{PublicEvent, SourceEvent, SourceKey};
use std::fmt;

/// What a feed (or one CalDAV resource) holds: the events read, and those left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Feed {
    pub events: Vec<SourceEvent>,
    pub skipped: Vec<Skipped>,
    /// Items not read again because their group of VEVENTs is byte-identical to one read
    /// before (see [`read_feed`]): what they gave then stands.
    pub unchanged: Vec<SourceKey>,
    /// Every group of VEVENTs read or passed over, to be remembered for the next read.
    pub seen: Vec<GroupSeen>,
}

/// A group of VEVENTs (one UID's master and overrides) as a reader remembers it: a hash of
/// its UID, a digest of its bytes, and the source items it gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSeen {
    pub id_hash: u64,
    pub digest: u64,
    pub keys: Vec<SourceKey>,
    /// It gave exactly one item, keyed by its own id (the common case, remembered compactly).
    pub regular: bool,
}

/// An item of the feed that could not be read faithfully and is left out (fail closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The key the item would have had, when it can be told.
    pub key: Option<SourceKey>,
    pub reason: SkipReason,
}

/// Why an item was left out. Its text names properties and zone ids, never event text, so it
/// can go to logs as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The VEVENT has no DTSTART (and, for an override, no RECURRENCE-ID to stand in).
    MissingStart,
    /// A date or time property that does not hold a valid date or time.
    InvalidTime(&'static str),
    /// A TZID that no IANA zone stands for and the feed does not define (or an
    /// `X-WR-TIMEZONE` that names no zone, for floating times). Never read as UTC: the time
    /// would be wrong.
    UnknownTimeZone(String),
    /// An RRULE (or EXRULE) that cannot be read exactly; the series' instances are unknowable.
    InvalidRecurrence,
    /// A `RANGE=THISANDFUTURE` override where the series cannot be split exactly (see
    /// `split`); reading it as one instance could publish later instances it made private.
    ThisAndFuture,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::MissingStart => f.write_str("no DTSTART"),
            SkipReason::InvalidTime(prop) => write!(f, "invalid {prop}"),
            SkipReason::UnknownTimeZone(tzid) => write!(f, "unknown time zone {tzid:?}"),
            SkipReason::InvalidRecurrence => f.write_str("invalid recurrence rule"),
            SkipReason::ThisAndFuture => {
                f.write_str("RANGE=THISANDFUTURE override that cannot split its series exactly")
            }
        }
    }
}

/// A feed that cannot be read at all. Any of these fails the read: nothing is deleted.
///
/// Each names where in the feed (line and column of the feed's own lines, 1-based), never
/// what the feed says there: a feed's bytes may be private and never reach a log.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IcalError {
    #[error("not an iCalendar feed (no BEGIN:VCALENDAR) at line {line}, column {column}")]
    NotACalendar { line: usize, column: usize },
    #[error("truncated iCalendar feed (no END:VCALENDAR) after line {line}, column {column}")]
    Truncated { line: usize, column: usize },
    #[error(
        "unparsable iCalendar feed: a component ends out of order at line {line}, column {column}"
    )]
    Unbalanced { line: usize, column: usize },
}

impl IcalError {
    /// The same error with its line counted in the feed's own (folded) lines.
    pub(crate) fn in_feed(self, bytes: &[u8]) -> IcalError {
        let at = |line| lines::physical_line(bytes, line);
        match self {
            IcalError::NotACalendar { line, column } => IcalError::NotACalendar {
                line: at(line),
                column,
            },
            IcalError::Truncated { line, column } => IcalError::Truncated {
                line: at(line),
                column,
            },
            IcalError::Unbalanced { line, column } => IcalError::Unbalanced {
                line: at(line),
                column,
            },
        }
    }
}

/// One item to write: the published event (with its overrides), its DTSTAMP, and the tag
/// that marks it as calsync's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub event: PublicEvent,
    /// Changes only when the content does, so an unchanged calendar writes byte-identical.
    pub dtstamp: chrono::DateTime<chrono::Utc>,
    pub tag: String,
}

/// What a calendar text is made of, read without interpreting any event: its `PRODID` and
/// the identifying properties of each VEVENT. For telling whose file it is and for spotting
/// a component written twice, which reading events (one per UID) cannot show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outline {
    pub prodid: Option<String>,
    pub vevents: Vec<VeventIds>,
}

/// The raw `UID`, `RECURRENCE-ID` and `X-CALSYNC-TAG` of one VEVENT (trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VeventIds {
    pub uid: Option<String>,
    pub recurrence_id: Option<String>,
    pub tag: Option<String>,
}

/// The [`Outline`] of a calendar text.
///
/// # Errors
/// Not a calendar, or cut short.
pub fn outline(bytes: &[u8]) -> Result<Outline, IcalError> {
    let text = lines::unfold(bytes);
    let blocks = lines::components(&text)?.blocks;
    let first = |block: &lines::Block<'_>, name: &str| {
        block.raw_values(name).first().map(|v| v.trim().to_string())
    };
    let prodid = text
        .lines()
        .filter_map(lines::split_property)
        .find(|(name, _)| name.eq_ignore_ascii_case("PRODID"))
        .map(|(_, value)| value.trim().to_string());
    Ok(Outline {
        prodid,
        vevents: blocks
            .iter()
            .filter(|b| b.kind == "VEVENT")
            .map(|b| VeventIds {
                uid: first(b, "UID"),
                recurrence_id: first(b, "RECURRENCE-ID"),
                tag: first(b, "X-CALSYNC-TAG"),
            })
            .collect(),
    })
}
