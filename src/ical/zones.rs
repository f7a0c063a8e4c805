//! TZID → IANA zone, for the TZIDs one feed uses.
//!
//! calcard resolves names (IANA, Windows `W. Europe Standard Time`, `(UTC+01:00) Amsterdam, …`
//! display names, `/mozilla.org/…/Europe/Berlin`) and VTIMEZONEs (by TZID, X-LIC-LOCATION,
//! X-MICROSOFT-CDO-TZID). Two checks are ours, because a wrong zone publishes a wrong time:
//! calcard reads an unknown `(UTC+01:00) Somewhere` label as the fixed zone `Etc/GMT-1`, which
//! is an hour off all summer if that place keeps DST, so such a fixed guess is accepted only
//! when the feed's VTIMEZONE (or the label) agrees on the offset; and a TZID nothing resolves
//! is accepted only when its VTIMEZONE is one fixed whole-hour offset (as `Etc/GMT±N`).

use super::lines::Block;
use calcard::common::timezone::Tz as CalTz;
use calcard::icalendar::timezone::TzResolver;
use calcard::icalendar::{ICalendar, ICalendarComponentType, ICalendarProperty, ICalendarValue};
use calcard::{Entry, Parser};
use chrono::{Offset, TimeZone};
use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

/// The zones of one feed.
pub(super) struct Zones {
    resolver: TzResolver<String>,
    /// The UTC offsets (seconds) each VTIMEZONE of the feed observes, by TZID.
    offsets: HashMap<String, BTreeSet<i32>>,
}

impl Zones {
    /// Reads the feed's VTIMEZONE blocks.
    pub fn new<'a>(timezones: impl Iterator<Item = &'a Block<'a>>) -> Zones {
        let mut text = String::from("BEGIN:VCALENDAR\r\n");
        for block in timezones {
            text.push_str(&block.text());
        }
        text.push_str("END:VCALENDAR\r\n");
        let ical = match Parser::new(&text).entry() {
            Entry::ICalendar(ical) => ical,
            _ => ICalendar::default(),
        };
        Zones {
            resolver: ical.build_owned_tz_resolver(),
            offsets: observed_offsets(&ical),
        }
    }

    /// The IANA zone a TZID stands for, or `None` when it cannot be told safely.
    pub fn resolve(&self, tzid: &str) -> Option<chrono_tz::Tz> {
        let guess = match self.resolver.resolve(tzid) {
            Some(CalTz::Tz(tz)) => Some(tz),
            Some(CalTz::Fixed(offset)) => etc_zone(offset.local_minus_utc()),
            Some(CalTz::Floating) | None => None,
        };
        match guess {
            Some(tz) if chrono_tz::Tz::from_str(tzid).is_ok() => Some(tz),
            Some(tz) => match fixed_offset(tz) {
                // A fixed zone guessed from a label: only when nothing contradicts it.
                Some(offset) => {
                    let agrees = match self.offsets.get(tzid) {
                        Some(observed) => observed.iter().all(|o| *o == offset),
                        None => label_offset(tzid).is_none_or(|o| o == offset),
                    };
                    agrees.then_some(tz)
                }
                None => Some(tz),
            },
            None => match self.offsets.get(tzid) {
                Some(observed) if observed.len() == 1 => {
                    observed.first().and_then(|o| etc_zone(*o))
                }
                _ => None,
            },
        }
    }
}

/// TZOFFSETFROM/TZOFFSETTO values of each VTIMEZONE's observances.
fn observed_offsets(ical: &ICalendar) -> HashMap<String, BTreeSet<i32>> {
    let mut out = HashMap::new();
    for tz in ical.timezones() {
        let Some(tzid) = tz
            .entries
            .iter()
            .find_map(|e| match (&e.name, e.values.first()) {
                (ICalendarProperty::Tzid, Some(ICalendarValue::Text(id))) => Some(id.clone()),
                _ => None,
            })
        else {
            continue;
        };
        let mut offsets = BTreeSet::new();
        for id in &tz.component_ids {
            let Some(observance) = ical.components.get(*id as usize) else {
                continue;
            };
            if !matches!(
                observance.component_type,
                ICalendarComponentType::Standard | ICalendarComponentType::Daylight
            ) {
                continue;
            }
            for entry in &observance.entries {
                if !matches!(
                    entry.name,
                    ICalendarProperty::Tzoffsetfrom | ICalendarProperty::Tzoffsetto
                ) {
                    continue;
                }
                if let Some(ICalendarValue::PartialDateTime(dt)) = entry.values.first()
                    && let Some(hours) = dt.tz_hour
                {
                    let secs = i32::from(hours) * 3600 + i32::from(dt.tz_minute.unwrap_or(0)) * 60;
                    offsets.insert(if dt.tz_minus { -secs } else { secs });
                }
            }
        }
        out.insert(tzid, offsets);
    }
    out
}

/// The `Etc/GMT±N` zone for a whole-hour offset east of UTC (POSIX signs are inverted).
fn etc_zone(offset_secs: i32) -> Option<chrono_tz::Tz> {
    if offset_secs % 3600 != 0 {
        return None;
    }
    let hours = offset_secs / 3600;
    let name = match hours {
        0 => "Etc/UTC".to_string(),
        h if h > 0 => format!("Etc/GMT-{h}"),
        h => format!("Etc/GMT+{}", -h),
    };
    chrono_tz::Tz::from_str(&name).ok()
}

/// The offset of a zone that has only one: `Etc/…` zones and UTC.
fn fixed_offset(tz: chrono_tz::Tz) -> Option<i32> {
    let name = tz.name();
    if !(name.starts_with("Etc/") || matches!(name, "UTC" | "GMT" | "UCT" | "Zulu" | "Universal")) {
        return None;
    }
    let probe = chrono::NaiveDate::from_ymd_opt(2000, 1, 1)?.and_time(chrono::NaiveTime::MIN);
    Some(tz.offset_from_utc_datetime(&probe).fix().local_minus_utc())
}

/// The offset an Outlook display name states: `(UTC+05:30) Chennai…` → 19800.
fn label_offset(tzid: &str) -> Option<i32> {
    let rest = tzid.trim_start().strip_prefix('(')?;
    let rest = rest
        .strip_prefix("UTC")
        .or_else(|| rest.strip_prefix("GMT"))?;
    let (inner, _) = rest.split_once(')')?;
    let inner = inner.trim();
    if inner.is_empty() {
        return Some(0);
    }
    let (sign, digits) = match inner.as_bytes().first()? {
        b'+' => (1, &inner[1..]),
        b'-' => (-1, &inner[1..]),
        _ => return None,
    };
    let (h, m) = digits.split_once(':').unwrap_or((digits, "0"));
    let h: i32 = h.trim().parse().ok()?;
    let m: i32 = m.trim().parse().ok()?;
    Some(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ical::lines;

    fn zones(vtimezones: &str) -> Zones {
        let text = format!("BEGIN:VCALENDAR\n{vtimezones}END:VCALENDAR\n");
        let blocks = lines::components(&text).unwrap();
        Zones::new(blocks.iter())
    }

    const CUSTOM_FIXED: &str = "BEGIN:VTIMEZONE\nTZID:Custom Plus Two\nBEGIN:STANDARD\nDTSTART:16010101T000000\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0200\nEND:STANDARD\nEND:VTIMEZONE\n";
    const UNKNOWN_DST: &str = "BEGIN:VTIMEZONE\nTZID:(UTC+01:00) Nowhere Land\nBEGIN:STANDARD\nDTSTART:16011028T030000\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0100\nEND:STANDARD\nBEGIN:DAYLIGHT\nDTSTART:16010325T020000\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0200\nEND:DAYLIGHT\nEND:VTIMEZONE\n";
    const ODD_NAME_WITH_LOCATION: &str = "BEGIN:VTIMEZONE\nTZID:Office Time\nX-LIC-LOCATION:Europe/Vienna\nBEGIN:STANDARD\nDTSTART:19701025T030000\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0100\nEND:STANDARD\nEND:VTIMEZONE\n";

    #[test]
    fn resolution_cases() {
        let z = zones(&format!(
            "{CUSTOM_FIXED}{UNKNOWN_DST}{ODD_NAME_WITH_LOCATION}"
        ));
        let cases: &[(&str, Option<&str>)] = &[
            ("Europe/Berlin", Some("Europe/Berlin")),
            ("W. Europe Standard Time", Some("Europe/Berlin")),
            (
                "(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna",
                Some("Europe/Berlin"),
            ),
            ("/mozilla.org/20050126_1/Europe/Paris", Some("Europe/Paris")),
            ("Office Time", Some("Europe/Vienna")),
            ("Custom Plus Two", Some("Etc/GMT-2")),
            // calcard would say Etc/GMT-1; the feed's VTIMEZONE keeps DST, so: unknown.
            ("(UTC+01:00) Nowhere Land", None),
            // No VTIMEZONE: the label's offset must match calcard's fixed guess.
            ("(UTC+03:00) Somewhere", Some("Etc/GMT-3")),
            ("(UTC+05:45) Somewhere Else", None),
            ("Mars/Olympus_Mons", None),
        ];
        for (tzid, want) in cases {
            assert_eq!(z.resolve(tzid).map(|tz| tz.name()), *want, "{tzid}");
        }
    }

    #[test]
    fn label_offsets() {
        assert_eq!(label_offset("(UTC+05:30) Chennai"), Some(19800));
        assert_eq!(label_offset("(UTC-03:00) Brasilia"), Some(-10800));
        assert_eq!(label_offset("(UTC) Coordinated Universal Time"), Some(0));
        assert_eq!(label_offset("Europe/Berlin"), None);
    }
}
