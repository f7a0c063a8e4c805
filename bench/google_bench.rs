//! The Google provider's benchmark (run by `bench/google.sh` and `bench/scale.sh`, not by the
//! test suite): the release calsync against `GoogleFake` with a fixed latency per HTTP request,
//! google→ics and ics→google, the first sync, a no-op sync and a sync after 1 % of the events
//! changed, of N events. Prints a Markdown table (the fakes' part of the scale table,
//! `bench/measure.rs`): wall, CPU and peak RSS, requests by kind, requests per change, and the
//! ratio of the wall time to the lower bound ceil(requests / in flight) × RTT, or for a read
//! the pages that follow one another, whichever is larger.
//!
//!   google-bench <calsync binary> [events=1000] [rtt_ms=50] [concurrency=4] [--no-header]
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
use std::time::Duration;
use support::google_fake::{CALENDAR_ID, GoogleFake, Kind};

#[path = "measure.rs"]
mod measure;
use measure::{HEADER, Row, run_calsync};

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

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--no-header").collect();
    let header = std::env::args().count() == args.len();
    let calsync = Path::new(
        args.get(1)
            .expect("usage: google-bench <calsync> [events] [rtt_ms] [concurrency] [--no-header]"),
    );
    let n: usize = args.get(2).map_or(1000, |a| a.parse().expect("events"));
    let rtt: u64 = args.get(3).map_or(50, |a| a.parse().expect("rtt_ms"));
    let concurrency: usize = args.get(4).map_or(4, |a| a.parse().expect("concurrency"));
    let mut rows = Vec::new();
    google_to_ics(calsync, n, rtt, &mut rows);
    ics_to_google(calsync, n, rtt, concurrency, &mut rows);
    if header {
        println!("{HEADER}");
    }
    for r in rows {
        println!("{}", r.markdown());
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
#[allow(clippy::too_many_arguments)]
fn run(
    calsync: &Path,
    dir: &Path,
    fake: &GoogleFake,
    path: &str,
    events: usize,
    rtt: u64,
    run: &'static str,
    changes: usize,
    in_flight: usize,
    reads: bool,
) -> Row {
    fake.clear_calls();
    let m = run_calsync(calsync, dir, &[]);
    let by_kind = KINDS
        .iter()
        .map(|k| (k, fake.count(*k)))
        .filter(|(_, c)| *c > 0)
        .map(|(k, c)| format!("{k:?} {c}"))
        .collect::<Vec<_>>()
        .join(", ");
    // A read's pages come one after the other (each page's token arrives with it), behind the
    // access token.
    let chain = if reads {
        fake.count(Kind::Token) + fake.count(Kind::Calendar) + fake.count(Kind::List)
    } else {
        0
    };
    Row {
        path: path.to_string(),
        events,
        rtt_ms: rtt,
        run,
        m,
        requests: fake.http_count(),
        by_kind,
        changes,
        chain,
        in_flight,
    }
}

/// Every hundredth event (at least one): the 1 % changed for the update run.
fn picked(n: usize) -> Vec<usize> {
    let k = (n / 100).max(1);
    (0..n).step_by((n / k).max(1)).take(k).collect()
}

fn google_to_ics(calsync: &Path, n: usize, rtt: u64, rows: &mut Vec<Row>) {
    let fake = GoogleFake::start();
    let mut ids = Vec::new();
    for i in 0..n {
        let d = day(1 + (i % 300) as i64).format("%Y-%m-%d").to_string();
        let e = fake.seed_event(
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
        ids.push(e["id"].as_str().expect("an event id").to_string());
    }
    let public = (0..n).filter(|i| i % 10 < 8).count();
    fake.set_latency(Duration::from_millis(rtt));
    let dir = tempfile::tempdir().expect("a temp folder");
    fake.write_key_file(dir.path(), "sa.json");
    config(
        dir.path(),
        &google(&fake, ""),
        "kind = \"ics\"\npath = \"public.ics\"\n",
    );
    let p = "google→ics";
    rows.push(run(
        calsync,
        dir.path(),
        &fake,
        p,
        n,
        rtt,
        "first",
        public,
        1,
        true,
    ));
    rows.push(run(
        calsync,
        dir.path(),
        &fake,
        p,
        n,
        rtt,
        "noop",
        0,
        1,
        true,
    ));
    // Every hundredth event is public (i % 10 == 0).
    let changed = picked(n);
    for &i in &changed {
        fake.seed_patch(
            CALENDAR_ID,
            &ids[i],
            json!({"summary": format!("Event {i} (updated)")}),
        );
    }
    rows.push(run(
        calsync,
        dir.path(),
        &fake,
        p,
        n,
        rtt,
        "update",
        changed.len(),
        1,
        true,
    ));
}

fn feed(n: usize, changed: &[usize]) -> String {
    let mut feed = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\n");
    for i in 0..n {
        let d = day(1 + (i % 300) as i64).format("%Y%m%d").to_string();
        let u = if changed.contains(&i) {
            " (updated)"
        } else {
            ""
        };
        feed.push_str(&format!(
            "BEGIN:VEVENT\r\nUID:e{i}@bench\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{d}T090000Z\r\nDTEND:{d}T100000Z\r\n\
             SUMMARY:Event {i}{u}\r\nLOCATION:Hall\r\nDESCRIPTION:A public event of the benchmark calendar.\r\nEND:VEVENT\r\n"
        ));
    }
    feed.push_str("END:VCALENDAR\r\n");
    feed
}

fn ics_to_google(calsync: &Path, n: usize, rtt: u64, concurrency: usize, rows: &mut Vec<Row>) {
    let fake = GoogleFake::start();
    fake.set_latency(Duration::from_millis(rtt));
    let dir = tempfile::tempdir().expect("a temp folder");
    fake.write_key_file(dir.path(), "sa.json");
    std::fs::write(dir.path().join("feed.ics"), feed(n, &[])).expect("writing the feed");
    config(
        dir.path(),
        "kind = \"ics\"\npath = \"feed.ics\"\n",
        &google(&fake, &format!("concurrency = {concurrency}")),
    );
    let p = "ics→google";
    let c = concurrency;
    rows.push(run(
        calsync,
        dir.path(),
        &fake,
        p,
        n,
        rtt,
        "first",
        n,
        c,
        false,
    ));
    rows.push(run(
        calsync,
        dir.path(),
        &fake,
        p,
        n,
        rtt,
        "noop",
        0,
        c,
        false,
    ));
    let changed = picked(n);
    std::fs::write(dir.path().join("feed.ics"), feed(n, &changed)).expect("writing the feed");
    rows.push(run(
        calsync,
        dir.path(),
        &fake,
        p,
        n,
        rtt,
        "update",
        changed.len(),
        c,
        false,
    ));
}
