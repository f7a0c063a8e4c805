//! No input makes calsync panic: property tests (proptest) over the configuration parser and
//! the iCalendar parser, with the steps that run on what they return (the window and
//! retention horizon of every pair; the publishing decision, recurrence expansion and
//! rendering of every event read).
//!
//! The inputs are generated from the formats' own vocabulary — every key calsync knows and
//! some it does not, huge, negative and odd values, every property a feed may carry with
//! hostile values — and from mangled real feeds and arbitrary bytes, for a bounded number of
//! cases per property (a few seconds in all; `PROPTEST_CASES=4000` for a longer hunt). A
//! failing case is shrunk and printed, and proptest keeps its seed under
//! `tests/proptest-regressions/` so that it runs first next time: commit that file.

use calsync::config::{Environment, KINDS};
use calsync::ical::Published;
use calsync::policy::{self, Decision, Field, RecurrenceMode, Rules, Visibility, Window};
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use std::path::Path;

/// 256 cases per property (`PROPTEST_CASES` asks for more, for a longer hunt).
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    }
}

// ------------------------------------------------------------------------------------------
// The configuration.

/// Every key calsync knows, and a few it does not.
fn keys() -> Vec<String> {
    let mut keys: Vec<String> = [
        "state",
        "audit_key_file",
        "metrics_file",
        "name",
        "past_days",
        "future_days",
        "retention_days",
        "recurrence",
        "fields",
        "exclude_categories",
        "max_delete_percent",
        "max_delete_min",
        "stale_after_minutes",
        "retries",
        "backoff_ms",
        "timeout_seconds",
        "deadline_seconds",
        "concurrency",
        "keep_runs",
        "keep_metrics_days",
        "stale_fail_factor",
        "failure_window_runs",
        "failure_warn_percent",
        "failure_fail_percent",
        "cursor_warn_days",
        "kind",
        "password",
        "secret",
        "typo_key",
        "",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for kind in KINDS {
        keys.extend(kind.keys.iter().map(|k| k.to_string()));
    }
    keys
}

fn toml_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "0",
            "-1",
            "1",
            "64",
            "65",
            "100",
            "101",
            "3650",
            "3651",
            "36500",
            "86400",
            "4294967295",
            "4294967296",
            "9223372036854775807",
            "-9223372036854775808",
            "99999999999999999999",
            "1e308",
            "-0.0",
            "nan",
            "inf",
            "true",
            "false",
            "1979-05-27T07:32:00Z",
            "1979-05-27",
            "07:32:00",
        ])
        .prop_map(String::from),
        prop::sample::select(vec![
            "ics",
            "caldav",
            "graph",
            "google",
            "preserve",
            "expand",
            "explode",
            "title",
            "attendees",
            "public",
            "private",
            "https://dav.example.org/c/",
            "http://127.0.0.1:9/f.ics",
            "http://example.org/f.ics",
            "https://u:p@example.org/",
            "ftp://x/",
            "not a url",
            "feed.ics",
            "/nonexistent/x",
            "secret",
            "HOME",
            "",
            "Parish One",
            "parish",
            "{tenant}",
            "../../etc/passwd",
            "\u{0}",
            "\u{7}bell",
            "😀",
        ])
        .prop_map(|s| format!("{s:?}")),
        "[ -~]{0,12}".prop_map(|s| format!("{s:?}")),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec((prop::sample::select(keys()), inner), 0..3).prop_map(|v| {
                let body: Vec<String> = v.iter().map(|(k, x)| format!("{k:?} = {x}")).collect();
                format!("{{ {} }}", body.join(", "))
            }),
        ]
    })
}

fn assignment() -> impl Strategy<Value = String> {
    (prop::sample::select(keys()), toml_value()).prop_map(|(k, v)| {
        if k.is_empty() {
            format!("\"\" = {v}")
        } else {
            format!("{k} = {v}")
        }
    })
}

fn header() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "[net]",
        "[history]",
        "[health]",
        "[[pair]]",
        "[pair.source]",
        "[pair.target]",
        "[pair]",
        "[[pair.source]]",
        "[other]",
        "[[pair]",
    ])
    .prop_map(String::from)
}

/// A configuration text: lines of assignments and table headers in any order.
fn config_text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![3 => assignment(), 1 => header()], 0..24)
        .prop_map(|lines| lines.join("\n"))
}

/// A config that works, to be mangled.
const GOOD: &str = "state = \"calsync.db\"\n[net]\nretries = 3\nconcurrency = 4\n[health]\nstale_fail_factor = 4\n\
[[pair]]\nname = \"parish\"\npast_days = 30\nfuture_days = 365\nretention_days = 180\nrecurrence = \"expand\"\n\
fields = [\"title\", \"location\"]\nexclude_categories = [\"Staff only\"]\n[pair.source]\nkind = \"caldav\"\n\
url = \"https://dav.example.org/c/\"\nusername = \"u\"\npassword_env = \"PW\"\nconcurrency = 2\n\
[pair.target]\nkind = \"ics\"\npath = \"public.ics\"\nname = \"Public\"\n";

/// A text with some bytes replaced, inserted or cut.
fn mangled(base: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len();
    prop::collection::vec((0..len, 0u8..4, any::<u8>()), 1..12).prop_map(move |edits| {
        let mut bytes = base.to_vec();
        for (at, what, byte) in edits {
            let at = at.min(bytes.len());
            match what {
                0 if at < bytes.len() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                2 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => bytes.truncate(at),
            }
        }
        bytes
    })
}

fn now() -> DateTime<Utc> {
    "2026-11-29T10:00:00Z".parse().unwrap()
}

/// Parses a config text, and runs what every command derives from a good one; whether it
/// parsed.
fn check_config(text: &str) -> bool {
    let dir = std::env::temp_dir();
    let env = Environment {
        credentials_directory: Some(dir.clone()),
        state_directory: None,
        vars: vec![("PW".into(), "pw".into()), ("HOME".into(), "{}".into())],
    };
    let Ok(settings) = calsync::config::parse(&dir.join("calsync.toml"), text, None, &env) else {
        return false;
    };
    let _ =
        std::time::Instant::now() + std::time::Duration::from_secs(settings.net.deadline_seconds);
    let _ = std::time::Duration::from_millis(settings.net.backoff_ms)
        * 2u32.pow(settings.net.retries.min(31));
    for pair in &settings.pairs {
        let _ = Window::around(now(), pair.window.past_days, pair.window.future_days);
        let _ = calsync::commands::cleanup::retention_horizon(
            now(),
            pair.retention_days,
            pair.window.past_days,
        );
    }
    true
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_config_parser_never_panics_on_generated_configs(text in config_text()) {
        check_config(&text);
    }

    #[test]
    fn the_config_parser_never_panics_on_a_mangled_good_config(bytes in mangled(GOOD.as_bytes())) {
        check_config(&String::from_utf8_lossy(&bytes));
    }
}

// ------------------------------------------------------------------------------------------
// iCalendar.

fn moment() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        ":20261201T100000Z",
        ":20261201T100000",
        ";VALUE=DATE:20261201",
        ";VALUE=DATE:20260229",
        ";TZID=Europe/Berlin:20261201T100000",
        ";TZID=W. Europe Standard Time:20261201T100000",
        ";TZID=\"(UTC+01:00) Amsterdam, Berlin\":20261201T100000",
        ";TZID=/mozilla.org/20050126_1/Europe/Berlin:20261201T100000",
        ";TZID=Mars/Olympus:20261201T100000",
        ";TZID=Custom:20261201T100000",
        ":T1300Z",
        ":99991231T235959Z",
        ":00010101T000000Z",
        ":20261301T250000Z",
        ":2026",
        ":",
        ";VALUE=PERIOD:20261201T100000Z/PT1H",
        ";VALUE=PERIOD:20261201T100000Z/20261201T090000Z",
        ":20261201T100000Z,20261202T100000Z,garbage",
    ])
    .prop_map(String::from)
}

fn rrule() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        prop::sample::select(vec![
            "FREQ=DAILY",
            "FREQ=WEEKLY",
            "FREQ=MONTHLY",
            "FREQ=YEARLY",
            "FREQ=HOURLY",
            "FREQ=MINUTELY",
            "FREQ=SECONDLY",
            "FREQ=FORTNIGHTLY",
            "BYDAY=MO,WE,FR",
            "BYDAY=-1SU",
            "BYDAY=5TH",
            "BYDAY=+53MO",
            "BYMONTHDAY=31",
            "BYMONTHDAY=-1",
            "BYMONTHDAY=0",
            "BYMONTH=2",
            "BYMONTH=13",
            "BYSETPOS=-1",
            "BYSETPOS=400",
            "BYYEARDAY=366",
            "BYWEEKNO=53",
            "BYHOUR=25",
            "WKST=SU",
            "UNTIL=20270101T000000Z",
            "UNTIL=20270101",
            "UNTIL=garbage",
            "RSCALE=GREGORIAN",
            "X-NAME=1",
            "",
        ])
        .prop_map(String::from),
        (
            prop::sample::select(vec!["COUNT", "INTERVAL"]),
            any::<i64>()
        )
            .prop_map(|(k, n)| format!("{k}={n}")),
        (
            prop::sample::select(vec!["COUNT", "INTERVAL"]),
            0i64..100_000
        )
            .prop_map(|(k, n)| format!("{k}={n}")),
    ];
    prop::collection::vec(part, 0..5).prop_map(|parts| parts.join(";"))
}

fn property() -> impl Strategy<Value = String> {
    prop_oneof![
        moment().prop_map(|m| format!("DTSTART{m}")),
        moment().prop_map(|m| format!("DTEND{m}")),
        moment().prop_map(|m| format!("RECURRENCE-ID{m}")),
        moment().prop_map(|m| format!("RECURRENCE-ID;RANGE=THISANDFUTURE{m}")),
        moment().prop_map(|m| format!("EXDATE{m}")),
        moment().prop_map(|m| format!("RDATE{m}")),
        rrule().prop_map(|r| format!("RRULE:{r}")),
        rrule().prop_map(|r| format!("EXRULE:{r}")),
        prop::sample::select(vec![
            "DURATION:PT1H",
            "DURATION:P1000000D",
            "DURATION:-PT1H",
            "DURATION:P",
            "CLASS:PUBLIC",
            "CLASS:PRIVATE",
            "CLASS:CONFIDENTIAL",
            "CLASS:x-weird",
            "CLASS:",
            "STATUS:CANCELLED",
            "STATUS:TENTATIVE",
            "SEQUENCE:99999999999",
            "SEQUENCE:-1",
            "UID:a@x",
            "UID:b@x",
            "UID:",
            "SUMMARY:Choir \\, practice\\",
            "SUMMARY:\u{7}\u{0}",
            "LOCATION:https://teams.microsoft.com/l/meetup-join/abc",
            "CATEGORIES:Staff only,",
            "DESCRIPTION:Join: https://zoom.us/j/1?pwd=secret\\n-----\\nbye",
            "ATTENDEE;CN=J. Doe:mailto:j.doe@example.org",
            "X-MICROSOFT-CDO-BUSYSTATUS:BUSY",
            "BEGIN:VALARM",
            "END:VALARM",
            "DTSTAMP:20260101T000000Z",
            "DTSTAMP:garbage",
            "X-CALSYNC-TAG:0123456789abcdef.00",
            ";:",
            "NOCOLON",
        ])
        .prop_map(String::from),
    ]
}

fn vevent() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["a@x", "b@x", "c@x"]),
        prop::collection::vec(property(), 0..10),
    )
        .prop_map(|(uid, props)| {
            format!(
                "BEGIN:VEVENT\r\nUID:{uid}\r\n{}\r\nEND:VEVENT\r\n",
                props.join("\r\n")
            )
        })
}

fn calendar() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::option::of(prop::sample::select(vec![
            "X-WR-TIMEZONE:Europe/Berlin",
            "X-WR-TIMEZONE:Nowhere/Land",
            "PRODID:-//calsync//calsync//EN",
        ])),
        prop::bool::ANY,
        prop::collection::vec(vevent(), 0..6),
        prop::bool::ANY,
    )
        .prop_map(|(header, zone, events, end)| {
            let mut text = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n");
            if let Some(h) = header {
                text.push_str(h);
                text.push_str("\r\n");
            }
            if zone {
                text.push_str(
                    "BEGIN:VTIMEZONE\r\nTZID:Custom\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n\
                     TZOFFSETFROM:+0130\r\nTZOFFSETTO:+0130\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n",
                );
            }
            for e in events {
                text.push_str(&e);
            }
            if end {
                text.push_str("END:VCALENDAR\r\n");
            }
            text.into_bytes()
        })
}

/// Reads a feed as sync, validate and a target read do, and runs the policy, recurrence
/// expansion (both modes) and rendering on every event read.
fn check_feed(bytes: &[u8]) {
    let _ = calsync::ical::outline(bytes);
    let _ = calsync::ical::parse_published(bytes);
    let Ok(feed) = calsync::ical::parse_feed(bytes) else {
        return;
    };
    let window = Window::around(now(), 30, 365);
    for recurrence in [RecurrenceMode::Preserve, RecurrenceMode::Expand] {
        let rules = Rules {
            fields: Field::ALL.iter().copied().collect(),
            exclude_categories: vec!["Staff only".into()],
            recurrence,
            default_visibility: Visibility::Private,
            max_occurrences: 1000,
        };
        for event in &feed.events {
            if let Decision::Publish { items, .. } =
                policy::decide("parish", event, &rules, &window)
            {
                for item in items {
                    let _ = calsync::ical::render_resource(&Published {
                        event: item.event,
                        dtstamp: now(),
                        tag: "t".into(),
                    });
                }
            }
        }
    }
}

const FIXTURES: &[&[u8]] = &[
    include_bytes!("fixtures/google-export.ics"),
    include_bytes!("fixtures/outlook-export.ics"),
    include_bytes!("fixtures/outlook-display-names.ics"),
    include_bytes!("fixtures/folding-unicode.ics"),
];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_ical_parser_never_panics_on_generated_feeds(bytes in calendar()) {
        check_feed(&bytes);
    }

    #[test]
    fn the_ical_parser_never_panics_on_mangled_real_feeds(
        bytes in prop::sample::select(FIXTURES.to_vec()).prop_flat_map(mangled)
    ) {
        check_feed(&bytes);
    }

    #[test]
    fn the_ical_parser_never_panics_on_arbitrary_bytes(
        tail in prop::collection::vec(any::<u8>(), 0..600)
    ) {
        let mut bytes = b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n".to_vec();
        bytes.extend(tail);
        check_feed(&bytes);
        check_feed(&bytes[bytes.len().min(33)..]);
    }
}

#[test]
fn the_mangling_starts_from_a_good_config_and_real_feeds() {
    assert!(check_config(GOOD), "the good config does not parse");
    for bytes in FIXTURES {
        assert!(calsync::ical::parse_feed(bytes).is_ok());
    }
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .is_dir()
    );
}
