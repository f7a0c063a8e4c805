//! Graph benchmark: graph→ics and ics→graph at 1,000 events against `GraphFake` with a fixed
//! round trip per request, run through the real calsync binary. Prints a Markdown table:
//! requests, wall time, and its ratio to the latency lower bound (requests / 4 in flight ×
//! RTT). A `harness = false` bench target, so `cargo test` never runs it: `bench/graph.sh`
//! does (`cargo bench --bench graph -- [events] [rtt_ms]`, the release binary).

#[path = "../tests/support/mod.rs"]
mod support;

use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::graph_fake::{self, GraphFake, Kind};

const USER: &str = "office@example.org";

struct Row {
    scenario: String,
    requests: usize,
    wall: Duration,
    rtt: Duration,
    detail: String,
}

fn graph_side(fake: &GraphFake) -> String {
    format!(
        "kind = \"graph\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_env = \"GRAPH_SECRET\"\n\
         user = \"{USER}\"\ncalendar = \"Public\"\nbase_url = \"{}\"\ntoken_url = \"{}\"\n",
        graph_fake::TENANT,
        graph_fake::CLIENT_ID,
        fake.graph_url(),
        fake.url() + "/{tenant}/oauth2/v2.0/token",
    )
}

fn run(calsync: &Path, dir: &Path, now: Option<&str>) -> Duration {
    let started = Instant::now();
    let mut cmd = Command::new(calsync);
    cmd.args(["--config", "calsync.toml", "sync"])
        .current_dir(dir)
        .env("GRAPH_SECRET", graph_fake::CLIENT_SECRET)
        .stdout(std::process::Stdio::null());
    if let Some(now) = now {
        cmd.env("CALSYNC_NOW", now);
    }
    let status = cmd.status().expect("running calsync");
    let wall = started.elapsed();
    assert!(status.success(), "calsync failed: {status}");
    wall
}

fn counts(fake: &GraphFake) -> (usize, String) {
    let kinds = [
        ("token", Kind::Token),
        ("calendars", Kind::ListCalendars),
        ("calendar", Kind::GetCalendar),
        ("delta", Kind::Delta),
        ("batch", Kind::Batch),
        ("tag query", Kind::TagQuery),
        ("instances", Kind::Instances),
    ];
    let total = fake.requests().len();
    let detail = kinds
        .iter()
        .map(|(name, k)| (name, fake.count_direct(*k)))
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{n} {name}"))
        .collect::<Vec<_>>()
        .join(", ");
    (total, detail)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench`; the numbers are the arguments that parse.
    let numbers: Vec<u64> = args.iter().skip(1).filter_map(|a| a.parse().ok()).collect();
    let calsync = std::path::PathBuf::from(env!("CARGO_BIN_EXE_calsync"));
    let events = numbers.first().copied().unwrap_or(1000) as usize;
    let rtt = Duration::from_millis(numbers.get(1).copied().unwrap_or(50));
    let mut rows = Vec::new();

    // graph → ics: 1,000 events in the source mailbox (85 % public, 5 % series).
    {
        let fake = GraphFake::start();
        fake.add_mailbox(USER);
        let calendar = fake.add_calendar(USER, "Public");
        for i in 0..events {
            let day = 1 + i % 300;
            let start = chrono::NaiveDate::from_ymd_opt(2026, 5, 1).unwrap()
                + chrono::Duration::days(day as i64);
            let sensitivity = match i % 20 {
                0 | 1 => "private",
                2 => "confidential",
                _ => "normal",
            };
            let mut event = json!({
                "subject": format!("Event {i}"), "sensitivity": sensitivity,
                "body": {"contentType": "html", "content": format!("<p>About event {i}</p>")},
                "start": {"dateTime": format!("{start}T19:00:00"), "timeZone": "W. Europe Standard Time"},
                "end": {"dateTime": format!("{start}T20:00:00"), "timeZone": "W. Europe Standard Time"},
            });
            if i % 20 == 3 {
                event["recurrence"] = json!({
                    "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [weekday(start)]},
                    "range": {"type": "numbered", "startDate": start.to_string(), "numberOfOccurrences": 10},
                });
            }
            fake.seed_event(USER, &calendar, event);
        }
        let dir = tempfile::tempdir().expect("a temp folder");
        std::fs::write(
            dir.path().join("calsync.toml"),
            format!(
                "state = \"calsync.db\"\n[[pair]]\nname = \"bench\"\n[pair.source]\n{}[pair.target]\nkind = \"ics\"\npath = \"public.ics\"\n",
                graph_side(&fake)
            ),
        )
        .unwrap();
        fake.set_latency(rtt);
        let now = Some("2026-05-01T06:00:00Z");
        for phase in ["initial", "no-op"] {
            fake.reset_counts();
            let before = fake.requests().len();
            let wall = run(&calsync, dir.path(), now);
            let (total, detail) = counts(&fake);
            rows.push(Row {
                scenario: format!("graph → ics, {events} events, {phase}"),
                requests: total - before,
                wall,
                rtt,
                detail,
            });
        }
    }

    // ics → graph: 1,000 events in a feed (85 % public).
    {
        let fake = GraphFake::start();
        fake.add_mailbox(USER);
        fake.add_calendar(USER, "Public");
        let dir = tempfile::tempdir().expect("a temp folder");
        let feed = feed(events);
        std::fs::write(dir.path().join("feed.ics"), feed).unwrap();
        std::fs::write(
            dir.path().join("calsync.toml"),
            format!(
                "state = \"calsync.db\"\n[[pair]]\nname = \"bench\"\n[pair.source]\nkind = \"ics\"\npath = \"feed.ics\"\n[pair.target]\n{}",
                graph_side(&fake)
            ),
        )
        .unwrap();
        fake.set_latency(rtt);
        for phase in ["initial", "no-op"] {
            fake.reset_counts();
            let before = fake.requests().len();
            let wall = run(&calsync, dir.path(), None);
            let (total, detail) = counts(&fake);
            rows.push(Row {
                scenario: format!("ics → graph, {events} events, {phase}"),
                requests: total - before,
                wall,
                rtt,
                detail,
            });
        }
    }

    println!(
        "| scenario | requests | by kind | wall s | lower bound s (requests / 4 × RTT) | wall / bound |"
    );
    println!("|---|---:|---|---:|---:|---:|");
    for r in rows {
        let bound = r.requests as f64 / 4.0 * r.rtt.as_secs_f64();
        println!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.2}× |",
            r.scenario,
            r.requests,
            r.detail,
            r.wall.as_secs_f64(),
            bound,
            r.wall.as_secs_f64() / bound.max(f64::EPSILON)
        );
    }
}

fn weekday(d: chrono::NaiveDate) -> &'static str {
    use chrono::Datelike;
    [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ][d.weekday().num_days_from_monday() as usize]
}

/// A feed of `n` timed events around today, 85 % public.
fn feed(n: usize) -> String {
    let mut out = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync bench//EN\r\n");
    let today = chrono::Utc::now().date_naive();
    for i in 0..n {
        let day = today + chrono::Duration::days(1 + (i % 300) as i64);
        let class = match i % 20 {
            0 | 1 => "CLASS:PRIVATE\r\n",
            2 => "CLASS:CONFIDENTIAL\r\n",
            _ => "",
        };
        let rrule = if i % 20 == 3 {
            "RRULE:FREQ=WEEKLY;COUNT=10\r\n"
        } else {
            ""
        };
        out.push_str(&format!(
            "BEGIN:VEVENT\r\nUID:ev{i}@bench\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{d}T180000Z\r\n\
             DTEND:{d}T190000Z\r\nSUMMARY:Event {i}\r\n{class}{rrule}END:VEVENT\r\n",
            d = day.format("%Y%m%d")
        ));
    }
    out.push_str("END:VCALENDAR\r\n");
    out
}
