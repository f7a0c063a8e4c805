//! Reading what calsync published with an independent parser (the `icalendar` crate, not
//! calsync's own), and writing source feeds whose dates sit around today.

use chrono::{Duration, NaiveDate, Utc};

/// One property: `(NAME, [(PARAM, value)], value)`.
pub type Prop = (String, Vec<(String, String)>, String);

/// One component (VEVENT, VTIMEZONE…) as the independent parser read it.
#[derive(Debug, Clone)]
pub struct Component {
    pub name: String,
    /// In file order, TEXT unescaped.
    pub props: Vec<Prop>,
    pub children: Vec<Component>,
}

impl Component {
    /// The first value of a property.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, _, v)| v.as_str())
    }

    /// Every value of a property.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.props
            .iter()
            .filter(|(n, _, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, _, v)| v.as_str())
            .collect()
    }

    pub fn param(&self, name: &str, param: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, ps, _)| ps.iter().find(|(p, _)| p.eq_ignore_ascii_case(param)))
            .map(|(_, v)| v.as_str())
    }

    pub fn summary(&self) -> &str {
        self.get("SUMMARY").unwrap_or("")
    }
}

/// A parsed calendar file.
#[derive(Debug, Clone)]
pub struct Calendar {
    pub props: Vec<(String, String)>,
    pub components: Vec<Component>,
}

impl Calendar {
    pub fn events(&self) -> Vec<&Component> {
        self.components
            .iter()
            .filter(|c| c.name == "VEVENT")
            .collect()
    }

    /// Master events (no RECURRENCE-ID).
    pub fn masters(&self) -> Vec<&Component> {
        self.events()
            .into_iter()
            .filter(|e| e.get("RECURRENCE-ID").is_none())
            .collect()
    }

    pub fn summaries(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| e.summary().to_string())
            .collect()
    }
}

fn convert(c: &icalendar::parser::Component<'_>) -> Component {
    Component {
        name: c.name.as_str().to_ascii_uppercase(),
        props: c
            .properties
            .iter()
            .map(|p| {
                let name = p.name.as_str().to_ascii_uppercase();
                let is_text = matches!(
                    name.as_str(),
                    "SUMMARY"
                        | "DESCRIPTION"
                        | "LOCATION"
                        | "CATEGORIES"
                        | "COMMENT"
                        | "X-WR-CALNAME"
                );
                let val = if is_text {
                    p.val.clone().unescape_text().as_str().to_string()
                } else {
                    p.val.as_str().to_string()
                };
                (
                    name,
                    p.params
                        .iter()
                        .map(|pa| {
                            (
                                pa.key.as_str().to_ascii_uppercase(),
                                pa.val
                                    .as_ref()
                                    .map(|v| v.as_str().to_string())
                                    .unwrap_or_default(),
                            )
                        })
                        .collect(),
                    val,
                )
            })
            .collect(),
        children: c.components.iter().map(convert).collect(),
    }
}

/// Parses a calendar file with the `icalendar` crate; panics (failing the test) when it
/// cannot, or when the file breaks the wire rules calsync promises (CRLF, ≤ 75 octets a line).
pub fn parse(text: &str) -> Calendar {
    for (i, line) in text.split("\r\n").enumerate() {
        assert!(
            !line.contains('\n'),
            "line {i} ends with a bare LF: {line:?}"
        );
        assert!(
            line.len() <= 75,
            "line {i} is longer than 75 octets: {line:?}"
        );
    }
    assert!(
        text.ends_with("END:VCALENDAR\r\n"),
        "the file does not end with END:VCALENDAR CRLF"
    );
    let unfolded = icalendar::parser::unfold(text);
    let cal = icalendar::parser::read_calendar(&unfolded)
        .unwrap_or_else(|e| panic!("the independent parser rejects the file: {e}\n{text}"));
    Calendar {
        props: cal
            .properties
            .iter()
            .map(|p| (p.name.as_str().to_string(), p.val.as_str().to_string()))
            .collect(),
        components: cal.components.iter().map(convert).collect(),
    }
}

/// A date `days` from today (UTC).
pub fn day(days: i64) -> NaiveDate {
    (Utc::now() + Duration::days(days)).date_naive()
}

/// `YYYYMMDD` of a day from today.
pub fn ymd(days: i64) -> String {
    day(days).format("%Y%m%d").to_string()
}

/// Wraps VEVENT bodies into a VCALENDAR with a Europe/Berlin VTIMEZONE, CRLF line ends.
pub fn feed(events: &[String]) -> String {
    let mut out = String::from(
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//Test//calsync tests//EN\nBEGIN:VTIMEZONE\nTZID:Europe/Berlin\n\
         BEGIN:DAYLIGHT\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0200\nTZNAME:CEST\nDTSTART:19700329T020000\n\
         RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\nEND:DAYLIGHT\nBEGIN:STANDARD\nTZOFFSETFROM:+0200\n\
         TZOFFSETTO:+0100\nTZNAME:CET\nDTSTART:19701025T030000\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\n\
         END:STANDARD\nEND:VTIMEZONE\n",
    );
    for e in events {
        out.push_str("BEGIN:VEVENT\n");
        out.push_str(e.trim());
        out.push_str("\nEND:VEVENT\n");
    }
    out.push_str("END:VCALENDAR\n");
    out.replace('\n', "\r\n")
}

/// A timed event `days` from today, 19:00–21:00 Berlin time, with extra lines.
pub fn timed(uid: &str, summary: &str, days: i64, extra: &str) -> String {
    format!(
        "UID:{uid}\nDTSTAMP:20260101T000000Z\nDTSTART;TZID=Europe/Berlin:{d}T190000\n\
         DTEND;TZID=Europe/Berlin:{d}T210000\nSUMMARY:{summary}\n{extra}",
        d = ymd(days)
    )
}
