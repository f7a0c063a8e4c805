//! Graph benchmark: graph→ics and ics→graph at N events (default 1,000) against `GraphFake` with a
//! fixed round trip per request (default 50 ms), run through the real calsync binary: the first
//! sync, a no-op sync and a sync after 1 % of the events changed. Prints a Markdown table (the
//! fakes' part of the scale table, `bench/measure.rs`): wall, CPU and peak RSS, requests by
//! kind, requests per change, and the ratio to the lower bound — requests / 4 in flight × RTT,
//! or for a read the delta pages that follow one another, whichever is larger. A
//! `harness = false` bench target, so `cargo test` never runs it: `bench/graph.sh` and
//! `bench/scale.sh` do (`cargo bench --bench graph -- [events] [rtt_ms] [--no-header]`).

#[path = "../tests/support/mod.rs"]
mod support;

use serde_json::json;
use std::path::Path;
use std::time::Duration;
use support::graph_fake::{self, GraphFake, Kind};

const USER: &str = "office@example.org";

#[path = "measure.rs"]
mod measure;
use measure::{HEADER, Measured, Row, run_calsync};

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

const KINDS: [(&str, Kind); 7] = [
    ("token", Kind::Token),
    ("calendars", Kind::ListCalendars),
    ("calendar", Kind::GetCalendar),
    ("delta", Kind::Delta),
    ("batch", Kind::Batch),
    ("tag query", Kind::TagQuery),
    ("instances", Kind::Instances),
];

fn by_kind(fake: &GraphFake) -> String {
    KINDS
        .iter()
        .map(|(name, k)| (name, fake.count_direct(*k)))
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{n} {name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One timed run against the fake, its requests counted from zero.
#[allow(clippy::too_many_arguments)]
fn measured_run(
    calsync: &Path,
    dir: &Path,
    fake: &GraphFake,
    now: Option<&str>,
    path: &str,
    events: usize,
    rtt: Duration,
    run: &'static str,
    changes: usize,
    reads: bool,
) -> Row {
    fake.reset_counts();
    let before = fake.requests().len();
    let mut env = vec![("GRAPH_SECRET", graph_fake::CLIENT_SECRET)];
    if let Some(now) = now {
        env.push(("CALSYNC_NOW", now));
    }
    let m: Measured = run_calsync(calsync, dir, &env);
    let requests = fake.requests().len() - before;
    // A read's delta pages come one after the other (each next link arrives with its page),
    // behind the token and the calendar look-up.
    let chain = if reads {
        fake.count_direct(Kind::Token)
            + fake.count_direct(Kind::ListCalendars)
            + fake.count_direct(Kind::GetCalendar)
            + fake.count_direct(Kind::Delta)
    } else {
        0
    };
    Row {
        path: path.to_string(),
        events,
        rtt_ms: rtt.as_millis() as u64,
        run,
        m,
        requests,
        by_kind: by_kind(fake),
        changes,
        chain,
        in_flight: 4,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench`; the numbers are the arguments that parse.
    let numbers: Vec<u64> = args.iter().skip(1).filter_map(|a| a.parse().ok()).collect();
    let header = !args.iter().any(|a| a == "--no-header");
    let calsync = std::path::PathBuf::from(env!("CARGO_BIN_EXE_calsync"));
    let events = numbers.first().copied().unwrap_or(1000) as usize;
    let rtt = Duration::from_millis(numbers.get(1).copied().unwrap_or(50));
    let changed = (events / 100).max(1);
    let mut rows = Vec::new();

    // graph → ics: the events in the source mailbox (85 % public, 5 % weekly series of 10).
    {
        let fake = GraphFake::start();
        fake.add_mailbox(USER);
        let calendar = fake.add_calendar(USER, "Public");
        let mut ids = Vec::new();
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
            ids.push(fake.seed_event(USER, &calendar, event));
        }
        let public = (0..events).filter(|i| i % 20 > 2).count();
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
        let path = "graph→ics";
        rows.push(measured_run(
            &calsync,
            dir.path(),
            &fake,
            now,
            path,
            events,
            rtt,
            "first",
            public,
            true,
        ));
        rows.push(measured_run(
            &calsync,
            dir.path(),
            &fake,
            now,
            path,
            events,
            rtt,
            "noop",
            0,
            true,
        ));
        // 1 %: the subject of that many public single events (i % 20 ≥ 4), spread over the calendar.
        let singles: Vec<usize> = (0..events).filter(|i| i % 20 >= 4).collect();
        let step = (singles.len() / changed).max(1);
        for &i in singles.iter().step_by(step).take(changed) {
            fake.update_event(
                USER,
                &ids[i],
                json!({"subject": format!("Event {i} (updated)")}),
            );
        }
        rows.push(measured_run(
            &calsync,
            dir.path(),
            &fake,
            now,
            path,
            events,
            rtt,
            "update",
            changed,
            true,
        ));
    }

    // ics → graph: a feed of the events (85 % public, 5 % weekly series).
    {
        let fake = GraphFake::start();
        fake.add_mailbox(USER);
        fake.add_calendar(USER, "Public");
        let dir = tempfile::tempdir().expect("a temp folder");
        std::fs::write(dir.path().join("feed.ics"), feed(events, &[])).unwrap();
        std::fs::write(
            dir.path().join("calsync.toml"),
            format!(
                "state = \"calsync.db\"\n[[pair]]\nname = \"bench\"\n[pair.source]\nkind = \"ics\"\npath = \"feed.ics\"\n[pair.target]\n{}",
                graph_side(&fake)
            ),
        )
        .unwrap();
        fake.set_latency(rtt);
        let public = (0..events).filter(|i| i % 20 > 2).count();
        let path = "ics→graph";
        rows.push(measured_run(
            &calsync,
            dir.path(),
            &fake,
            None,
            path,
            events,
            rtt,
            "first",
            public,
            false,
        ));
        rows.push(measured_run(
            &calsync,
            dir.path(),
            &fake,
            None,
            path,
            events,
            rtt,
            "noop",
            0,
            false,
        ));
        let singles: Vec<usize> = (0..events).filter(|i| i % 20 >= 4).collect();
        let step = (singles.len() / changed).max(1);
        let picked: Vec<usize> = singles
            .iter()
            .step_by(step)
            .take(changed)
            .copied()
            .collect();
        std::fs::write(dir.path().join("feed.ics"), feed(events, &picked)).unwrap();
        rows.push(measured_run(
            &calsync,
            dir.path(),
            &fake,
            None,
            path,
            events,
            rtt,
            "update",
            picked.len(),
            false,
        ));
    }

    if header {
        println!("{HEADER}");
    }
    for r in rows {
        println!("{}", r.markdown());
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

/// A feed of `n` timed events around today, 85 % public; the events in `changed` carry
/// " (updated)" in their summary.
fn feed(n: usize, changed: &[usize]) -> String {
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
             DTEND:{d}T190000Z\r\nSUMMARY:Event {i}{u}\r\n{class}{rrule}END:VEVENT\r\n",
            d = day.format("%Y%m%d"),
            u = if changed.contains(&i) {
                " (updated)"
            } else {
                ""
            }
        ));
    }
    out.push_str("END:VCALENDAR\r\n");
    out
}
