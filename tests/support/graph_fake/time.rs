//! Times as Graph writes them, the zones the fake knows, and the expansion of a
//! `patternedRecurrence` into occurrence starts.
//!
//! Graph's `dateTimeTimeZone` is a wall-clock time without offset (`2026-05-01T10:00:00.0000000`)
//! plus a zone name, Windows (`W. Europe Standard Time`) or IANA. The fake keeps what was written
//! and converts through UTC instants, so a window check or a `Prefer: outlook.timezone` never
//! depends on the zone an event was written in.

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use serde_json::{Value, json};

/// The Windows zone names the fake understands, with the IANA zone each stands for (the CLDR
/// "001" mapping). Graph accepts many more; a test that needs one adds it here.
const WINDOWS_ZONES: &[(&str, &str)] = &[
    ("UTC", "UTC"),
    ("GMT Standard Time", "Europe/London"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("E. Europe Standard Time", "Europe/Chisinau"),
    ("FLE Standard Time", "Europe/Kiev"),
    ("Eastern Standard Time", "America/New_York"),
    ("Central Standard Time", "America/Chicago"),
    ("Mountain Standard Time", "America/Denver"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("India Standard Time", "Asia/Kolkata"),
    ("China Standard Time", "Asia/Shanghai"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
];

/// A zone as a client named it (echoed back in `timeZone`) and what it means.
#[derive(Clone, Debug, PartialEq)]
pub struct Zone {
    pub label: String,
    pub tz: Tz,
}

impl Zone {
    pub fn utc() -> Zone {
        Zone {
            label: "UTC".to_string(),
            tz: Tz::UTC,
        }
    }

    /// A Windows name from the table, or an IANA name; `None` for anything else.
    pub fn named(name: &str) -> Option<Zone> {
        let name = name.trim();
        let tz = WINDOWS_ZONES
            .iter()
            .find(|(windows, _)| windows.eq_ignore_ascii_case(name))
            .map(|(_, iana)| iana.parse::<Tz>().expect("the table names IANA zones"))
            .or_else(|| name.parse::<Tz>().ok())?;
        Some(Zone {
            label: name.to_string(),
            tz,
        })
    }

    /// The instant a wall-clock time of this zone stands for. A time in a spring-forward gap
    /// means the time an hour later, as Outlook moves it.
    pub fn to_utc(&self, local: NaiveDateTime) -> DateTime<Utc> {
        self.tz
            .from_local_datetime(&local)
            .earliest()
            .or_else(|| {
                self.tz
                    .from_local_datetime(&(local + Duration::hours(1)))
                    .earliest()
            })
            .expect("a wall-clock time an hour after a gap exists")
            .with_timezone(&Utc)
    }

    pub fn local(&self, instant: DateTime<Utc>) -> NaiveDateTime {
        instant.with_timezone(&self.tz).naive_local()
    }
}

/// Parses Graph's `dateTime`: no offset, optional fraction (up to 7 digits in Graph's own output).
pub fn parse_wall(text: &str) -> Option<NaiveDateTime> {
    if text.ends_with('Z') || text.contains('+') || text.rfind('-').is_some_and(|i| i > 10) {
        return None;
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok()
}

/// Parses a `startDateTime`/`endDateTime` query value: ISO 8601 with an offset, or without one
/// (then UTC, as Graph reads it).
pub fn parse_query_instant(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| parse_wall(text).map(|naive| naive.and_utc()))
}

/// `2026-05-01T10:00:00.0000000`: Graph's seven fractional digits.
pub fn format_wall(local: NaiveDateTime) -> String {
    format!(
        "{}.{:07}",
        local.format("%Y-%m-%dT%H:%M:%S"),
        local.nanosecond() / 100
    )
}

/// A `DateTimeOffset` as Graph writes it (`…Z`, seven fractional digits).
pub fn format_instant(instant: DateTime<Utc>) -> String {
    format!("{}Z", format_wall(instant.naive_utc()))
}

/// `originalStart`: Graph writes it without fraction.
pub fn format_original_start(instant: DateTime<Utc>) -> String {
    instant.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A `dateTimeTimeZone` object for `instant` shown in `zone`.
pub fn date_time_time_zone(instant: DateTime<Utc>, zone: &Zone) -> Value {
    json!({"dateTime": format_wall(zone.local(instant)), "timeZone": zone.label})
}

/// How a series repeats (`recurrencePattern`).
#[derive(Clone, Debug)]
pub struct Pattern {
    pub kind: String,
    pub interval: u32,
    pub days_of_week: Vec<Weekday>,
    pub first_day_of_week: Weekday,
    pub day_of_month: u32,
    pub month: u32,
    /// 0 = first … 3 = fourth, -1 = last.
    pub index: i32,
}

/// When a series ends (`recurrenceRange`).
#[derive(Clone, Debug)]
pub struct Range {
    pub start: NaiveDate,
    pub end: Option<NaiveDate>,
    pub count: Option<u32>,
    pub zone: Option<Zone>,
}

/// Everything needed to list a series' occurrences.
#[derive(Clone, Debug)]
pub struct Series {
    pub pattern: Pattern,
    pub range: Range,
    /// Where dates are counted (the range's `recurrenceTimeZone`, else the start's zone).
    pub zone: Zone,
    pub time_of_day: chrono::NaiveTime,
    pub duration: Duration,
}

/// Days of expansion at most, so a `noEnd` series or a far window cannot loop for long.
const MAX_EXPANSION_DAYS: i64 = 366 * 40;

fn weekday(name: &str) -> Option<Weekday> {
    const DAYS: [(&str, Weekday); 7] = [
        ("sunday", Weekday::Sun),
        ("monday", Weekday::Mon),
        ("tuesday", Weekday::Tue),
        ("wednesday", Weekday::Wed),
        ("thursday", Weekday::Thu),
        ("friday", Weekday::Fri),
        ("saturday", Weekday::Sat),
    ];
    DAYS.iter().find(|(n, _)| *n == name).map(|(_, d)| *d)
}

fn week_index(name: &str) -> Option<i32> {
    ["first", "second", "third", "fourth", "last"]
        .iter()
        .position(|n| *n == name)
        .map(|i| if i == 4 { -1 } else { i as i32 })
}

fn positive(value: Option<&Value>, name: &str, default: u64) -> Result<u32, String> {
    match value {
        None | Some(Value::Null) => Ok(default as u32),
        Some(v) => v
            .as_u64()
            .filter(|n| *n <= u32::MAX as u64)
            .map(|n| n as u32)
            .ok_or_else(|| format!("'{name}' must be a non-negative integer")),
    }
}

fn date(value: Option<&Value>, name: &str) -> Result<Option<NaiveDate>, String> {
    match value.and_then(Value::as_str) {
        None | Some("0001-01-01") => Ok(None),
        Some(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| format!("'{name}' is not a date: {text:?}")),
    }
}

/// Reads and checks a `patternedRecurrence` against the documented required members of each
/// pattern and range type.
pub fn parse_recurrence(value: &Value) -> Result<(Pattern, Range), String> {
    let pattern = value.get("pattern").ok_or("recurrence needs a pattern")?;
    let range = value.get("range").ok_or("recurrence needs a range")?;
    let kind = pattern
        .get("type")
        .and_then(Value::as_str)
        .ok_or("pattern needs a type")?
        .to_string();
    let days_of_week = match pattern.get("daysOfWeek") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(days)) => days
            .iter()
            .map(|d| d.as_str().and_then(weekday))
            .collect::<Option<Vec<_>>>()
            .ok_or("daysOfWeek holds an unknown day")?,
        Some(_) => return Err("daysOfWeek must be an array".into()),
    };
    let first_day_of_week = match pattern.get("firstDayOfWeek").and_then(Value::as_str) {
        None => Weekday::Sun,
        Some(name) => weekday(name).ok_or("firstDayOfWeek is not a day")?,
    };
    let index = match pattern.get("index").and_then(Value::as_str) {
        None => 0,
        Some(name) => week_index(name).ok_or("index must be first…fourth or last")?,
    };
    let parsed = Pattern {
        interval: positive(pattern.get("interval"), "interval", 1)?.max(1),
        day_of_month: positive(pattern.get("dayOfMonth"), "dayOfMonth", 0)?,
        month: positive(pattern.get("month"), "month", 0)?,
        kind,
        days_of_week,
        first_day_of_week,
        index,
    };
    let needs = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!("a {} pattern needs {what}", parsed.kind))
        }
    };
    let has_days = !parsed.days_of_week.is_empty();
    let has_day = (1..=31).contains(&parsed.day_of_month);
    let has_month = (1..=12).contains(&parsed.month);
    match parsed.kind.as_str() {
        "daily" => {}
        "weekly" | "relativeMonthly" => needs(has_days, "daysOfWeek")?,
        "absoluteMonthly" => needs(has_day, "dayOfMonth")?,
        "absoluteYearly" => needs(has_day && has_month, "dayOfMonth and month")?,
        "relativeYearly" => needs(has_days && has_month, "daysOfWeek and month")?,
        other => return Err(format!("unknown pattern type {other:?}")),
    }
    let range_kind = range.get("type").and_then(Value::as_str).unwrap_or("");
    let start = date(range.get("startDate"), "startDate")?.ok_or("range needs a startDate")?;
    let zone = match range.get("recurrenceTimeZone").and_then(Value::as_str) {
        None | Some("") => None,
        Some(name) => Some(Zone::named(name).ok_or(format!("unknown zone {name:?}"))?),
    };
    let mut parsed_range = Range {
        start,
        end: None,
        count: None,
        zone,
    };
    match range_kind {
        "noEnd" => {}
        "endDate" => {
            parsed_range.end =
                Some(date(range.get("endDate"), "endDate")?.ok_or("endDate range needs endDate")?)
        }
        "numbered" => {
            let count = positive(range.get("numberOfOccurrences"), "numberOfOccurrences", 0)?;
            if count == 0 {
                return Err("a numbered range needs numberOfOccurrences".into());
            }
            parsed_range.count = Some(count);
        }
        other => return Err(format!("unknown range type {other:?}")),
    }
    Ok((parsed, parsed_range))
}

/// The recurrence with every member Graph reports filled in (Graph echoes defaults such as
/// `"index": "first"` and `"endDate": "0001-01-01"`).
pub fn normalized_recurrence(value: &Value) -> Value {
    let pattern = &value["pattern"];
    let range = &value["range"];
    let text = |v: &Value, default: &str| v.as_str().unwrap_or(default).to_string();
    let number = |v: &Value, default: u64| v.as_u64().unwrap_or(default);
    json!({
        "pattern": {
            "type": text(&pattern["type"], ""),
            "interval": number(&pattern["interval"], 1),
            "month": number(&pattern["month"], 0),
            "dayOfMonth": number(&pattern["dayOfMonth"], 0),
            "daysOfWeek": pattern.get("daysOfWeek").cloned().filter(Value::is_array).unwrap_or(json!([])),
            "firstDayOfWeek": text(&pattern["firstDayOfWeek"], "sunday"),
            "index": text(&pattern["index"], "first"),
        },
        "range": {
            "type": text(&range["type"], ""),
            "startDate": text(&range["startDate"], "0001-01-01"),
            "endDate": text(&range["endDate"], "0001-01-01"),
            "recurrenceTimeZone": text(&range["recurrenceTimeZone"], ""),
            "numberOfOccurrences": number(&range["numberOfOccurrences"], 0),
        },
    })
}

impl Series {
    fn months_since_start(&self, day: NaiveDate) -> i64 {
        let months = |d: NaiveDate| d.year() as i64 * 12 + d.month0() as i64;
        months(day) - months(self.range.start)
    }

    /// The `index`-th day of the month (of `day`) whose weekday is in `daysOfWeek`.
    fn is_relative_day(&self, day: NaiveDate) -> bool {
        let first = day.with_day(1).expect("day 1 exists");
        let candidates: Vec<NaiveDate> = first
            .iter_days()
            .take_while(|d| d.month() == first.month())
            .filter(|d| self.pattern.days_of_week.contains(&d.weekday()))
            .collect();
        let chosen = if self.pattern.index < 0 {
            candidates.last()
        } else {
            candidates.get(self.pattern.index as usize)
        };
        chosen == Some(&day)
    }

    /// Whether the pattern puts an occurrence on `day` (range limits aside).
    fn matches(&self, day: NaiveDate) -> bool {
        let p = &self.pattern;
        let interval = p.interval as i64;
        match p.kind.as_str() {
            "daily" => (day - self.range.start).num_days() % interval == 0,
            "weekly" => {
                let week_start = |d: NaiveDate| {
                    let back = (d.weekday().num_days_from_sunday() + 7
                        - p.first_day_of_week.num_days_from_sunday())
                        % 7;
                    d - Duration::days(back as i64)
                };
                let weeks = (week_start(day) - week_start(self.range.start)).num_days() / 7;
                p.days_of_week.contains(&day.weekday()) && weeks % interval == 0
            }
            "absoluteMonthly" => {
                day.day() == p.day_of_month && self.months_since_start(day) % interval == 0
            }
            "relativeMonthly" => {
                self.months_since_start(day) % interval == 0 && self.is_relative_day(day)
            }
            "absoluteYearly" => {
                day.month() == p.month
                    && day.day() == p.day_of_month
                    && (day.year() - self.range.start.year()) as i64 % interval == 0
            }
            "relativeYearly" => {
                day.month() == p.month
                    && (day.year() - self.range.start.year()) as i64 % interval == 0
                    && self.is_relative_day(day)
            }
            _ => false,
        }
    }

    /// The start of the occurrence on `day`.
    pub fn start_on(&self, day: NaiveDate) -> DateTime<Utc> {
        self.zone.to_utc(day.and_time(self.time_of_day))
    }

    /// Occurrence starts (UTC) of the series, in order, whose occurrence overlaps
    /// `[from, to)`. Numbered ranges count from the range start, so the window does not
    /// change which occurrences exist.
    pub fn starts_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut found = Vec::new();
        let mut counted = 0;
        for offset in 0..MAX_EXPANSION_DAYS {
            let day = self.range.start + Duration::days(offset);
            if self.range.end.is_some_and(|end| day > end)
                || self.range.count.is_some_and(|count| counted >= count)
            {
                break;
            }
            if !self.matches(day) {
                continue;
            }
            counted += 1;
            let start = self.start_on(day);
            if start >= to {
                break;
            }
            if overlaps(start, start + self.duration, from, to) {
                found.push(start);
            }
        }
        found
    }

    /// Whether `start` is one of the series' occurrence starts. Only a numbered range needs
    /// the expansion from its start; otherwise the day of `start` decides.
    pub fn has_occurrence_at(&self, start: DateTime<Utc>) -> bool {
        if self.range.count.is_some() {
            return self
                .starts_between(start, start + Duration::seconds(1))
                .contains(&start);
        }
        let day = self.zone.local(start).date();
        day >= self.range.start
            && self.range.end.is_none_or(|end| day <= end)
            && self.matches(day)
            && self.start_on(day) == start
    }
}

/// Whether an item `[start, end)` shows in a view `[from, to)`; an item of no length shows when
/// it starts inside the view.
pub fn overlaps(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> bool {
    start < to && (end > from || (start == end && start >= from))
}
