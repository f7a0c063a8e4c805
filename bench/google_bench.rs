//! The Google provider's benchmark (run by `bench/google.sh`, not by the test suite): the
//! release calsync against `GoogleFake` with a fixed latency per HTTP request, google→ics and
//! ics→google, initial and no-op sync of N events. Prints a Markdown table: wall time,
//! requests by kind, and the ratio of the wall time to the latency lower bound
//! ceil(requests / in-flight) × RTT.
//!
//!   google-bench <calsync binary> [events=1000] [rtt_ms=50] [concurrency=4]
//!
//! Talks to 127.0.0.1 only; every server stops when the program ends.

/// The parts of the test kit used here: `GoogleFake` on its `TestServer`.
#[path = "../tests/support"]
mod support {
    #![allow(dead_code)]
    pub mod google_fake;
    pub mod http;
}

use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::google_fake::{CALENDAR_ID, GoogleFake, Kind};

const KINDS: [Kind; 9] = [
    Kind::Token,
    Kind::Calendar,
    Kind::List,
    Kind::Instances,
    Kind::Get,
    Kind::Insert,
    Kind::Update,
    Kind::Delete,
    Kind::Batch,
];

struct Row {
    scenario: &'static str,
    phase: &'static str,
    wall: Duration,
    requests: usize,
    by_kind: String,
    in_flight: usize,
    ok: bool,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let calsync = args
        .get(1)
        .expect("usage: google-bench <calsync> [events] [rtt_ms] [concurrency]");
    let n: usize = args.get(2).map_or(1000, |a| a.parse().expect("events"));
    let rtt: u64 = args.get(3).map_or(50, |a| a.parse().expect("rtt_ms"));
    let concurrency: usize = args.get(4).map_or(4, |a| a.parse().expect("concurrency"));
    let mut rows = Vec::new();
    google_to_ics(calsync, n, rtt, &mut rows);
    ics_to_google(calsync, n, rtt, concurrency, &mut rows);
    println!(
        "| scenario | N | phase | exit ok | wall s | requests | by kind | in flight | lower bound s | wall / bound |"
    );
    println!("|---|---:|---|---|---:|---:|---|---:|---:|---:|");
    for r in rows {
        let bound = r.requests.div_ceil(r.in_flight) as f64 * rtt as f64 / 1000.0;
        println!(
            "| {} | {n} | {} | {} | {:.2} | {} | {} | {} | {:.2} | {:.2}× |",
            r.scenario,
            r.phase,
            if r.ok { "yes" } else { "NO" },
            r.wall.as_secs_f64(),
            r.requests,
            r.by_kind,
            r.in_flight,
            bound,
            r.wall.as_secs_f64() / bound.max(f64::EPSILON),
        );
    }
}

fn day(days: i64) -> chrono::NaiveDate {
    (chrono::Utc::now() + chrono::Duration::days(days)).date_naive()
}

fn config(dir: &Path, source: &str, target: &str) {
    std::fs::write(
        dir.join("calsync.toml"),
        format!("state = \"calsync.db\"\n\n[[pair]]\nname = \"bench\"\n\n[pair.source]\n{source}\n[pair.target]\n{target}\n"),
    )
    .expect("writing the config");
}

fn google(fake: &GoogleFake, extra: &str) -> String {
    format!(
        "kind = \"google\"\nservice_account_file = \"sa.json\"\ncalendar_id = \"{CALENDAR_ID}\"\nbase_url = \"{}\"\n{extra}\n",
        fake.api_base()
    )
}

/// Runs `calsync sync` in `dir`, timed, and counts the fake's requests.
fn run(
    calsync: &str,
    dir: &Path,
    fake: &GoogleFake,
    scenario: &'static str,
    phase: &'static str,
    in_flight: usize,
) -> Row {
    fake.clear_calls();
    let started = Instant::now();
    let out = Command::new(calsync)
        .args(["--config", "calsync.toml", "sync"])
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("running calsync");
    let wall = started.elapsed();
    let by_kind = KINDS
        .iter()
        .map(|k| (k, fake.count(*k)))
        .filter(|(_, c)| *c > 0)
        .map(|(k, c)| format!("{k:?} {c}"))
        .collect::<Vec<_>>()
        .join(", ");
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    }
    Row {
        scenario,
        phase,
        wall,
        requests: fake.http_count(),
        by_kind,
        in_flight,
        ok: out.status.success(),
    }
}

fn google_to_ics(calsync: &str, n: usize, rtt: u64, rows: &mut Vec<Row>) {
    let fake = GoogleFake::start();
    for i in 0..n {
        let d = day(1 + (i % 300) as i64).format("%Y-%m-%d").to_string();
        fake.seed_event(
            CALENDAR_ID,
            json!({
                "summary": format!("Event {i}"),
                "visibility": if i % 10 < 8 { "public" } else { "private" },
                "description": "A public event of the benchmark calendar.",
                "location": "Hall",
                "start": {"dateTime": format!("{d}T10:00:00"), "timeZone": "Europe/Berlin"},
                "end": {"dateTime": format!("{d}T11:00:00"), "timeZone": "Europe/Berlin"},
            }),
        );
    }
    fake.set_latency(Duration::from_millis(rtt));
    let dir = tempfile::tempdir().expect("a temp folder");
    fake.write_key_file(dir.path(), "sa.json");
    config(
        dir.path(),
        &google(&fake, ""),
        "kind = \"ics\"\npath = \"public.ics\"\n",
    );
    rows.push(run(calsync, dir.path(), &fake, "google→ics", "initial", 1));
    rows.push(run(calsync, dir.path(), &fake, "google→ics", "no-op", 1));
}

fn ics_to_google(calsync: &str, n: usize, rtt: u64, concurrency: usize, rows: &mut Vec<Row>) {
    let fake = GoogleFake::start();
    fake.set_latency(Duration::from_millis(rtt));
    let dir = tempfile::tempdir().expect("a temp folder");
    fake.write_key_file(dir.path(), "sa.json");
    let mut feed = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\n");
    for i in 0..n {
        let d = day(1 + (i % 300) as i64).format("%Y%m%d").to_string();
        feed.push_str(&format!(
            "BEGIN:VEVENT\r\nUID:e{i}@bench\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{d}T090000Z\r\nDTEND:{d}T100000Z\r\n\
             SUMMARY:Event {i}\r\nLOCATION:Hall\r\nDESCRIPTION:A public event of the benchmark calendar.\r\nEND:VEVENT\r\n"
        ));
    }
    feed.push_str("END:VCALENDAR\r\n");
    std::fs::write(dir.path().join("feed.ics"), feed).expect("writing the feed");
    config(
        dir.path(),
        "kind = \"ics\"\npath = \"feed.ics\"\n",
        &google(&fake, &format!("concurrency = {concurrency}")),
    );
    rows.push(run(
        calsync,
        dir.path(),
        &fake,
        "ics→google",
        "initial",
        concurrency,
    ));
    rows.push(run(
        calsync,
        dir.path(),
        &fake,
        "ics→google",
        "no-op",
        concurrency,
    ));
}
