//! TZID → time zone, for the TZIDs one feed uses (DESIGN "Reading real calendars").
//!
//! A TZID is mapped to an IANA zone when it names one (in any letter case), a Windows zone,
//! an `X-LIC-LOCATION` (or Exchange's `X-MICROSOFT-CDO-TZID`) of its VTIMEZONE, a globally
//! unique path (`/mozilla.org/…/Europe/Paris`, `/freeassociation.sourceforge.net/…`) or an
//! Outlook "(UTC±hh:mm) City" label (accents and all: `(UTC-03:00) Brasília`); calcard knows
//! the Windows names and labels. Otherwise the feed's own VTIMEZONE is used as written, as a
//! [`DefinedZone`]. A TZID neither mappable nor defined resolves to nothing and its events
//! are withheld: never read as UTC, and never as the fixed offset calcard guesses from an
//! unknown label (`(UTC+01:00) Somewhere` may well keep DST).

use super::lines::Block;
use crate::vzone::DefinedZone;
use calcard::common::timezone::Tz as CalTz;
use calcard::icalendar::ICalendar;
use calcard::icalendar::timezone::TzResolver;
use calcard::{Entry, Parser};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

/// What a TZID stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Zone {
    Iana(chrono_tz::Tz),
    Defined(Arc<DefinedZone>),
}

/// The zones of one feed.
pub(super) struct Zones {
    resolver: TzResolver<String>,
    /// The feed's own definitions, by TZID (the first VTIMEZONE of a TZID counts).
    defined: HashMap<String, Arc<DefinedZone>>,
}

impl Zones {
    /// Reads the feed's VTIMEZONE blocks.
    pub fn new<'a>(timezones: impl Iterator<Item = &'a Block<'a>>) -> Zones {
        let mut text = String::from("BEGIN:VCALENDAR\r\n");
        let mut defined = HashMap::new();
        for block in timezones {
            text.push_str(&block.text());
            if let Ok(zone) = DefinedZone::parse(&block.lines) {
                defined
                    .entry(zone.tzid().to_string())
                    .or_insert_with(|| Arc::new(zone));
            }
        }
        text.push_str("END:VCALENDAR\r\n");
        let ical = match Parser::new(&text).entry() {
            Entry::ICalendar(ical) => ical,
            _ => ICalendar::default(),
        };
        Zones {
            resolver: ical.build_owned_tz_resolver(),
            defined,
        }
    }

    /// The zone a TZID stands for, or `None` when it cannot be told exactly.
    pub fn resolve(&self, tzid: &str) -> Option<Zone> {
        if let Some(tz) = iana(tzid).or_else(|| unique_path(tzid)) {
            return Some(Zone::Iana(tz));
        }
        let named = |name: &str| match self.resolver.resolve(name) {
            Some(CalTz::Tz(tz)) if !is_fixed(tz) => Some(tz),
            _ => None,
        };
        if let Some(tz) = named(tzid).or_else(|| named(&fold_accents(tzid))) {
            return Some(Zone::Iana(tz));
        }
        self.defined.get(tzid).cloned().map(Zone::Defined)
    }
}

/// An IANA name, in any letter case (`Europe/lisbon`).
fn iana(name: &str) -> Option<chrono_tz::Tz> {
    let name = name.trim();
    chrono_tz::Tz::from_str(name).ok().or_else(|| {
        chrono_tz::TZ_VARIANTS
            .iter()
            .find(|tz| tz.name().eq_ignore_ascii_case(name))
            .copied()
    })
}

/// A globally unique TZID (RFC 5545 §3.2.19: a leading `/`) whose path ends in an IANA
/// name: `/mozilla.org/20050126_1/Europe/Paris`, `/freeassociation.sourceforge.net/Tzfile/
/// Europe/Ljubljana`, `/freeassociation.sourceforge.net/Europe/Berlin`.
fn unique_path(tzid: &str) -> Option<chrono_tz::Tz> {
    let path = tzid.trim().strip_prefix('/')?;
    path.match_indices('/')
        .map(|(i, _)| &path[i + 1..])
        .map(|rest| {
            rest.strip_prefix("Tzfile/")
                .or_else(|| rest.strip_prefix("SystemV/"))
                .unwrap_or(rest)
        })
        .find_map(iana)
}

/// `Etc/…` and UTC-like zones: what calcard guesses from an unknown label's offset.
fn is_fixed(tz: chrono_tz::Tz) -> bool {
    let name = tz.name();
    name.starts_with("Etc/") || matches!(name, "UTC" | "GMT" | "UCT" | "Zulu" | "Universal")
}

/// Latin letters without their accents, for Outlook labels written in another language's
/// spelling than calcard's table (`Brasília` → `Brasilia`, `Bogotá` → `Bogota`).
fn fold_accents(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' => 'a',
            'Á' | 'À' | 'Â' | 'Ä' | 'Ã' | 'Å' => 'A',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'É' | 'È' | 'Ê' | 'Ë' => 'E',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'Í' | 'Ì' | 'Î' | 'Ï' => 'I',
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' => 'o',
            'Ó' | 'Ò' | 'Ô' | 'Ö' | 'Õ' => 'O',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'Ú' | 'Ù' | 'Û' | 'Ü' => 'U',
            'ç' => 'c',
            'Ç' => 'C',
            'ñ' => 'n',
            'Ñ' => 'N',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ical::lines;

    fn zones(vtimezones: &str) -> Zones {
        let text = format!("BEGIN:VCALENDAR\n{vtimezones}END:VCALENDAR\n");
        let cal = lines::components(&text).unwrap();
        Zones::new(cal.blocks.iter())
    }

    const CUSTOM_FIXED: &str = "BEGIN:VTIMEZONE\nTZID:Custom Plus Two\nBEGIN:STANDARD\nDTSTART:16010101T000000\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0200\nEND:STANDARD\nEND:VTIMEZONE\n";
    const UNKNOWN_DST: &str = "BEGIN:VTIMEZONE\nTZID:(UTC+01:00) Nowhere Land\nBEGIN:STANDARD\nDTSTART:16011028T030000\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0100\nEND:STANDARD\nBEGIN:DAYLIGHT\nDTSTART:16010325T020000\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0200\nEND:DAYLIGHT\nEND:VTIMEZONE\n";
    const ODD_NAME_WITH_LOCATION: &str = "BEGIN:VTIMEZONE\nTZID:Office Time\nX-LIC-LOCATION:Europe/Vienna\nBEGIN:STANDARD\nDTSTART:19701025T030000\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0100\nEND:STANDARD\nEND:VTIMEZONE\n";

    #[test]
    fn resolution_cases() {
        let z = zones(&format!(
            "{CUSTOM_FIXED}{UNKNOWN_DST}{ODD_NAME_WITH_LOCATION}"
        ));
        // (tzid, IANA name, or "defined" for the feed's own VTIMEZONE, or None)
        let cases: &[(&str, Option<&str>)] = &[
            ("Europe/Berlin", Some("Europe/Berlin")),
            ("Europe/lisbon", Some("Europe/Lisbon")),
            ("W. Europe Standard Time", Some("Europe/Berlin")),
            (
                "(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna",
                Some("Europe/Berlin"),
            ),
            ("(UTC-03:00) Brasília", Some("America/Sao_Paulo")),
            ("/mozilla.org/20050126_1/Europe/Paris", Some("Europe/Paris")),
            (
                "/freeassociation.sourceforge.net/Europe/Berlin",
                Some("Europe/Berlin"),
            ),
            (
                "/freeassociation.sourceforge.net/Tzfile/Europe/Ljubljana",
                Some("Europe/Ljubljana"),
            ),
            ("Office Time", Some("Europe/Vienna")),
            // Nothing names these: the feed's own VTIMEZONE, as written.
            ("Custom Plus Two", Some("defined")),
            ("(UTC+01:00) Nowhere Land", Some("defined")),
            // Neither mappable nor defined: never a fixed-offset guess.
            ("(UTC+03:00) Somewhere", None),
            ("Mars/Olympus_Mons", None),
            ("", None),
        ];
        for (tzid, want) in cases {
            let got = z.resolve(tzid).map(|zone| match zone {
                Zone::Iana(tz) => tz.name().to_string(),
                Zone::Defined(d) => {
                    assert_eq!(d.tzid(), *tzid);
                    "defined".to_string()
                }
            });
            assert_eq!(got.as_deref(), *want, "{tzid}");
        }
    }

    #[test]
    fn accents_fold_to_ascii() {
        assert_eq!(
            fold_accents("(UTC-05:00) Bogotá, Lima"),
            "(UTC-05:00) Bogota, Lima"
        );
    }
}
