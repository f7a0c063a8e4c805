//! The operator's commands on the real binary: `validate`, `health`, `history`,
//! `audit-verify` and `cleanup`, with state files on disk, an .ics source and target, and
//! loopback only.
//!
//! Reports are read as the JSON document they print when stdout is not a terminal; tampering
//! and known histories are written into the state file directly with rusqlite; the published
//! file is read back with the independent parser of the test kit.

mod support;

use calsync::exit;
use calsync::hashing::{item_tag, target_uid};
use calsync::model::ItemKey;
use rusqlite::Connection;
use serde_json::Value;
use support::cli::{Cli, Run};
use support::http::{Response, TestServer};
use support::ics::{self, feed, timed, ymd};

/// A title that must never appear in anything calsync prints.
const PRIVATE_TITLE: &str = "Salary review with J. Doe";

fn config(pairs: &str) -> String {
    format!("state = \"calsync.db\"\n\n[net]\nretries = 0\nbackoff_ms = 1\n\n{pairs}")
}

fn pair(name: &str, extra: &str, source: &str, target: &str) -> String {
    format!(
        "[[pair]]\nname = \"{name}\"\n{extra}\n[pair.source]\nkind = \"ics\"\n{source}\n\
         [pair.target]\nkind = \"ics\"\npath = \"{target}\"\n\n"
    )
}

/// A parish feed around today: two public events, a weekly series with a private
/// occurrence, and a private event.
fn parish_feed() -> String {
    let start = ymd(7);
    let private = ymd(14);
    feed(&[
        timed(
            "council@intranet",
            "Parish council",
            10,
            "CLASS:PUBLIC\nLOCATION:Parish hall",
        ),
        timed("openday@intranet", "Open day", 20, "CATEGORIES:Community"),
        format!(
            "UID:choir@intranet\nDTSTAMP:20260101T000000Z\nDTSTART;TZID=Europe/Berlin:{start}T180000\n\
             DTEND;TZID=Europe/Berlin:{start}T193000\nRRULE:FREQ=WEEKLY;COUNT=6\nSUMMARY:Choir rehearsal"
        ),
        format!(
            "UID:choir@intranet\nDTSTAMP:20260101T000000Z\nRECURRENCE-ID;TZID=Europe/Berlin:{private}T180000\n\
             DTSTART;TZID=Europe/Berlin:{private}T180000\nDTEND;TZID=Europe/Berlin:{private}T193000\n\
             SUMMARY:Counselling K. Miller\nCLASS:PRIVATE"
        ),
        timed("salary@intranet", PRIVATE_TITLE, 5, "CLASS:PRIVATE"),
    ])
}

fn parish() -> Cli {
    let cli = Cli::new();
    cli.write("feed.ics", parish_feed());
    cli.write(
        "calsync.toml",
        config(&pair("parish", "", "path = \"feed.ics\"", "public.ics")),
    );
    cli
}

/// The report a command printed (stdout is a pipe here, so it is JSON).
fn report(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        )
    })
}

fn uid(pair: &str, key: &str) -> String {
    target_uid(pair, &ItemKey(key.to_string()))
}

fn db(cli: &Cli) -> Connection {
    Connection::open(cli.path("calsync.db")).expect("opening the state file")
}

fn count(cli: &Cli, sql: &str) -> i64 {
    db(cli)
        .query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Folds a content line at 75 octets, as RFC 5545 wants.
fn fold(line: &str) -> String {
    let mut out = String::new();
    let mut width = 0;
    for c in line.chars() {
        if width + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out.push_str("\r\n");
    out
}

/// The VEVENT of the published file that contains `needle`, as written.
fn vevent_with(text: &str, needle: &str) -> String {
    let at = text.find(needle).expect("the event is published");
    let start = text[..at].rfind("BEGIN:VEVENT").expect("its BEGIN");
    let end = at + text[at..].find("END:VEVENT\r\n").expect("its END") + "END:VEVENT\r\n".len();
    text[start..end].to_string()
}

/// A VEVENT with its UID replaced (unfolded, changed, folded again).
fn with_uid(vevent: &str, uid: &str) -> String {
    vevent
        .replace("\r\n ", "")
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| {
            if l.starts_with("UID:") {
                fold(&format!("UID:{uid}"))
            } else {
                fold(l)
            }
        })
        .collect()
}

fn before_end(text: &str, insert: &str) -> String {
    text.replacen("END:VCALENDAR", &format!("{insert}END:VCALENDAR"), 1)
}

// ------------------------------------------------------------------------------------------
// validate

/// The failed checks of a validate report, each with its ids.
fn failing(doc: &Value) -> Vec<(String, Vec<String>)> {
    doc["checks"]
        .as_array()
        .expect("a list of checks")
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| {
            let mut ids: Vec<String> = c["ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(|i| i.as_str().expect("an id").to_string())
                .collect();
            ids.sort();
            (c["name"].as_str().expect("a name").to_string(), ids)
        })
        .collect()
}

#[test]
fn validate_passes_a_faithful_target_and_names_the_check_each_fault_breaks() {
    let cli = parish();
    let sync = cli.run(&["sync"]);
    assert_eq!(sync.code, exit::OK, "{}{}", sync.stdout, sync.stderr);
    let good = cli.read("public.ics");

    let run = cli.run(&["validate"]);
    assert_eq!(run.code, exit::OK, "{}{}", run.stdout, run.stderr);
    let doc = report(&run);
    assert_eq!(doc["status"], "pass");
    let names: Vec<&str> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "counts_match",
            "no_private_event",
            "all_public",
            "none_older_than_cutoff",
            "no_duplicates",
            "series_intact",
            "fields_equal"
        ]
    );
    assert!(
        doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["pair"] == "parish")
    );
    assert_eq!(doc["checks"][0]["detail"]["expected"], 3);
    assert_eq!(doc["checks"][5]["detail"]["series"], 1);
    run.stderr_log();

    const COPY: &str = "copy-of-council@calsync";
    let council = uid("parish", "council@intranet");
    let salary = uid("parish", "salary@intranet");
    let injected_private = format!(
        "BEGIN:VEVENT\r\n{}DTSTAMP:20260101T000000Z\r\nDTSTART:{d}T100000Z\r\nDTEND:{d}T110000Z\r\n\
         SUMMARY:Busy\r\nCLASS:PUBLIC\r\n{}END:VEVENT\r\n",
        fold(&format!("UID:{salary}")),
        fold(&format!(
            "X-CALSYNC-TAG:{}",
            item_tag("parish", &ItemKey("salary@intranet".into()))
        )),
        d = ymd(5)
    );
    /// What was done to the target, the target, and the checks that must fail with their ids.
    type Case<'a> = (&'a str, String, Vec<(&'a str, Vec<&'a str>)>);
    let cases: Vec<Case> = vec![
        (
            "a published title altered in the target",
            good.replace("SUMMARY:Parish council", "SUMMARY:Parish council moved"),
            vec![("fields_equal", vec![council.as_str()])],
        ),
        (
            "a duplicate injected (another UID, the same tag)",
            before_end(
                &good,
                &with_uid(&vevent_with(&good, "SUMMARY:Parish council"), COPY),
            ),
            vec![
                ("counts_match", vec![COPY]),
                ("no_duplicates", vec![council.as_str(), COPY]),
            ],
        ),
        (
            "a private event injected",
            before_end(&good, &injected_private),
            vec![
                ("counts_match", vec![salary.as_str()]),
                ("no_private_event", vec![salary.as_str()]),
            ],
        ),
    ];
    for (what, target, want) in &cases {
        cli.write("public.ics", target);
        let run = cli.run(&["validate", "--format", "json"]);
        assert_eq!(run.code, exit::FAILED, "{what}: {}", run.stdout);
        let doc = report(&run);
        assert_eq!(doc["status"], "fail", "{what}");
        let want: Vec<(String, Vec<String>)> = want
            .iter()
            .map(|(n, ids)| (n.to_string(), ids.iter().map(|s| s.to_string()).collect()))
            .collect();
        assert_eq!(failing(&doc), want, "{what}");
        assert_eq!(
            &cli.read("public.ics"),
            target,
            "{what}: validate only reads"
        );
        assert!(
            !run.all_output().contains(PRIVATE_TITLE) && !run.all_output().contains("Counselling"),
            "{what}: a private title was printed"
        );
        let failed = run
            .stderr_log()
            .into_iter()
            .filter(|l| l.event.as_deref() == Some("validate.failed_check"))
            .count();
        assert_eq!(failed, want.len(), "{what}");
    }
    // Each failing validate left an audit entry naming its checks; the chain still holds.
    let details: Vec<String> = db(&cli)
        .prepare("SELECT detail FROM audit WHERE kind = 'validate.failed' ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(details.len(), 3);
    assert!(details[2].contains("no_private_event"), "{}", details[2]);
    assert_eq!(cli.run(&["audit-verify"]).code, exit::OK);

    // Syncing repairs the target; validate passes again.
    cli.write("public.ics", &good);
    assert_eq!(cli.run(&["validate"]).code, exit::OK);
}

// ------------------------------------------------------------------------------------------
// health

fn health_status<'a>(doc: &'a Value, check: &str) -> &'a str {
    doc["checks"][check][0]["status"]
        .as_str()
        .unwrap_or_else(|| panic!("no check {check} in {doc:#}"))
}

#[test]
fn health_warns_before_the_first_sync_and_creates_nothing_then_passes_then_goes_stale() {
    let cli = parish();
    let run = cli.run(&["health"]);
    assert_eq!(run.code, exit::health::WARN, "{}{}", run.stdout, run.stderr);
    let doc = report(&run);
    assert_eq!(doc["status"], "warn");
    assert_eq!(doc["nagios"]["state"], "WARNING");
    assert_eq!(health_status(&doc, "parish:lastGoodSync"), "warn");
    assert_eq!(health_status(&doc, "state:file"), "warn");
    assert_eq!(health_status(&doc, "parish:source:calendar"), "pass");
    for created in ["calsync.db", "calsync.db.lock", "audit.key", "public.ics"] {
        assert!(!cli.path(created).exists(), "health created {created}");
    }

    assert_eq!(cli.run(&["sync"]).code, exit::OK);
    let run = cli.run(&["health"]);
    assert_eq!(run.code, exit::health::PASS, "{}", run.stdout);
    let doc = report(&run);
    assert_eq!(doc["status"], "pass");
    assert_eq!(doc["nagios"]["code"], 0);
    for (name, entries) in doc["checks"].as_object().unwrap() {
        assert_eq!(entries[0]["status"], "pass", "{name}: {entries}");
        assert!(entries[0]["time"].as_str().is_some(), "{name}");
    }
    let fresh = &doc["checks"]["parish:lastGoodSync"][0];
    assert_eq!(fresh["observedUnit"], "min");
    assert_eq!(fresh["observedValue"], 0);
    assert_eq!(fresh["componentId"], "parish");
    for name in [
        "config",
        "state:file",
        "audit:key",
        "parish:breaker",
        "parish:failureRate",
        "parish:cursorAge",
        "parish:target:calendar",
    ] {
        assert!(doc["checks"].get(name).is_some(), "no {name} in {doc:#}");
    }

    // A last good sync longer ago than stale_after_minutes (60) warns; more than four times
    // that fails.
    let now = chrono::Utc::now().timestamp();
    for (minutes_ago, code) in [(90, exit::health::WARN), (300, exit::health::FAIL)] {
        db(&cli)
            .execute(
                "UPDATE pair_state SET last_good_sync = ?1 WHERE pair = 'parish'",
                [now - minutes_ago * 60],
            )
            .unwrap();
        let run = cli.run(&["health", "--offline"]);
        assert_eq!(run.code, code, "{minutes_ago} min: {}", run.stdout);
        let doc = report(&run);
        let fresh = &doc["checks"]["parish:lastGoodSync"][0];
        assert_eq!(fresh["observedValue"], minutes_ago, "{minutes_ago}");
    }
}

#[test]
fn health_fails_when_the_source_cannot_be_reached_and_offline_does_not_try() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let cli = Cli::new();
    cli.write(
        "calsync.toml",
        config(&pair(
            "parish",
            "",
            &format!("url = \"http://127.0.0.1:{port}/feed.ics\""),
            "public.ics",
        )),
    );
    let run = cli.run(&["health"]);
    assert_eq!(run.code, exit::health::FAIL, "{}{}", run.stdout, run.stderr);
    let doc = report(&run);
    assert_eq!(doc["status"], "fail");
    assert_eq!(doc["nagios"]["state"], "CRITICAL");
    assert_eq!(health_status(&doc, "parish:source:connectivity"), "fail");
    assert!(
        doc["checks"]["parish:source:connectivity"][0]["output"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{port}")),
        "{doc:#}"
    );
    assert!(
        doc["output"]
            .as_str()
            .unwrap()
            .contains("parish:source:connectivity")
    );

    let run = cli.run(&["health", "--offline"]);
    assert_eq!(run.code, exit::health::WARN, "{}", run.stdout);
    let doc = report(&run);
    assert!(
        doc["checks"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.contains(":source:") && !k.contains(":target:")),
        "--offline contacted a side: {doc:#}"
    );
}

#[test]
fn health_is_unknown_when_the_state_file_is_unreadable_and_leaves_it_alone() {
    let cli = parish();
    let garbage: Vec<u8> = b"not a calsync state file\n".repeat(200);
    cli.write("calsync.db", &garbage);
    let run = cli.run(&["health"]);
    assert_eq!(
        run.code,
        exit::health::UNKNOWN,
        "{}{}",
        run.stdout,
        run.stderr
    );
    let doc = report(&run);
    assert_eq!(doc["nagios"]["state"], "UNKNOWN");
    assert_eq!(health_status(&doc, "state:file"), "fail");
    assert_eq!(std::fs::read(cli.path("calsync.db")).unwrap(), garbage);

    cli.write("calsync.toml", "[[pair]\nname=");
    let run = cli.run(&["health"]);
    assert_eq!(
        run.code,
        exit::health::UNKNOWN,
        "an unusable config: {}",
        run.stdout
    );
    assert_eq!(health_status(&report(&run), "config"), "fail");
}

// ------------------------------------------------------------------------------------------
// history

fn insert_run(
    db: &Connection,
    run_id: &str,
    pair: &str,
    started_at: i64,
    duration_ms: i64,
    outcome: &str,
) {
    db.execute(
        "INSERT INTO run (run_id, pair, command, started_at, finished_at, outcome, exit_code, created)
         VALUES (?1, ?2, 'sync', ?3, ?4, ?5, ?6, 1)",
        rusqlite::params![
            run_id,
            pair,
            started_at,
            started_at + duration_ms,
            outcome,
            if outcome == "ok" { 0 } else { 1 }
        ],
    )
    .unwrap();
}

#[test]
fn history_numbers_match_a_known_set_of_runs() {
    let cli = Cli::new();
    cli.write(
        "calsync.toml",
        config(&format!(
            "{}{}",
            pair("parish", "", "path = \"feed.ics\"", "public.ics"),
            pair("school", "", "path = \"school-feed.ics\"", "school.ics")
        )),
    );
    drop(calsync::store::Store::open(&cli.path("calsync.db")).unwrap());
    let now = chrono::Utc::now().timestamp_millis();
    let minute = 60_000;
    {
        let db = db(&cli);
        // This day: 20 runs, 100 ms to 2000 ms, the 5th and 15th failed.
        for i in 0..20i64 {
            let outcome = if i == 4 || i == 14 { "failed" } else { "ok" };
            insert_run(
                &db,
                &format!("r{i:02}"),
                "parish",
                now - (20 - i) * 30 * minute,
                (i + 1) * 100,
                outcome,
            );
        }
        // The day before: 4 slow runs, 2 failed.
        for (i, (ms, outcome)) in [
            (5000, "ok"),
            (6000, "failed"),
            (7000, "ok"),
            (8000, "failed"),
        ]
        .iter()
        .enumerate()
        {
            insert_run(
                &db,
                &format!("old{i}"),
                "parish",
                now - 30 * 60 * minute - i as i64 * 10 * minute,
                *ms,
                outcome,
            );
        }
        // Another pair's runs, left out by --pair parish.
        for i in 0..3 {
            insert_run(
                &db,
                &format!("s{i}"),
                "school",
                now - (i + 1) * 45 * minute,
                60_000,
                "failed",
            );
        }
        // API calls of the feed endpoint: latencies 1..=100 ms, three retried 503s.
        for i in 1..=100i64 {
            let (status, attempt) = if i > 97 { (503, 2) } else { (200, 1) };
            db.execute(
                "INSERT INTO api_call (run_id, endpoint, method, status, attempt, latency_ms, at)
                 VALUES ('r00', 'http://127.0.0.1:9', 'GET', ?1, ?2, ?3, ?4)",
                rusqlite::params![status, attempt, i, now - 60 * minute],
            )
            .unwrap();
        }
    }

    let run = cli.run(&["history", "--pair", "parish"]);
    assert_eq!(run.code, exit::OK, "{}{}", run.stdout, run.stderr);
    let doc = report(&run);
    let s = &doc["summary"];
    assert_eq!(
        (s["runs"].as_u64(), s["ok"].as_u64(), s["failed"].as_u64()),
        (Some(24), Some(20), Some(4))
    );
    assert_eq!(s["success_rate"], 83.3);
    // Nearest rank over 24 durations: 100…2000 (20), 5000, 6000, 7000, 8000.
    assert_eq!(
        s["duration_ms"],
        serde_json::json!({"p50": 1200, "p95": 7000, "p99": 8000})
    );
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 20, "the default limit");
    assert_eq!(runs[0]["run_id"], "r19", "newest first");
    assert_eq!(runs[0]["duration_ms"], 2000);
    let t = &doc["trend"];
    assert_eq!(
        (
            t["current"]["runs"].as_u64(),
            t["previous"]["runs"].as_u64()
        ),
        (Some(20), Some(4))
    );
    assert_eq!(t["current"]["success_rate"], 90.0);
    assert_eq!(t["previous"]["success_rate"], 50.0);
    assert_eq!(t["success_rate_change"], 40.0);
    let hourly_runs: u64 = doc["hourly"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["runs"].as_u64().unwrap())
        .sum();
    assert_eq!(hourly_runs, 24);
    let e = &doc["endpoints"];
    assert_eq!(
        e.as_array().unwrap().len(),
        0,
        "--pair parish: the endpoint is not the parish's"
    );

    let run = cli.run(&["history"]);
    let doc = report(&run);
    assert_eq!(doc["summary"]["runs"], 27, "every pair without --pair");
    let e = &doc["endpoints"][0];
    assert_eq!(e["endpoint"], "http://127.0.0.1:9");
    assert_eq!(
        (e["requests"].as_u64(), e["retries"].as_u64()),
        (Some(100), Some(3))
    );
    assert_eq!(e["statuses"], serde_json::json!({"2xx": 97, "5xx": 3}));
    assert_eq!(
        e["latency_ms"],
        serde_json::json!({"p50": 50, "p95": 95, "p99": 99})
    );

    let since = chrono::DateTime::from_timestamp_millis(now - 24 * 60 * minute)
        .unwrap()
        .to_rfc3339();
    let run = cli.run(&[
        "history", "--pair", "parish", "--since", &since, "--limit", "5",
    ]);
    let doc = report(&run);
    assert_eq!(doc["runs"].as_array().unwrap().len(), 5);
    assert_eq!(doc["summary"]["runs"], 20);
    assert_eq!(doc["summary"]["success_rate"], 90.0);
    assert_eq!(
        doc["summary"]["duration_ms"],
        serde_json::json!({"p50": 1000, "p95": 1900, "p99": 2000})
    );

    let run = cli.run(&["history", "--format", "text"]);
    assert_eq!(run.code, exit::OK);
    assert!(
        run.stdout.starts_with("RUNS (newest 20 of 27)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("83.3%") || run.stdout.contains("SUMMARY"),
        "{}",
        run.stdout
    );
    assert_eq!(
        cli.run(&["history", "--since", "yesterday"]).code,
        exit::USAGE
    );
}

#[test]
fn history_without_a_state_file_is_empty_and_creates_none() {
    let cli = parish();
    let run = cli.run(&["history"]);
    assert_eq!(run.code, exit::OK, "{}", run.stderr);
    let doc = report(&run);
    assert_eq!(doc["summary"]["runs"], 0);
    assert!(!cli.path("calsync.db").exists());
}

// ------------------------------------------------------------------------------------------
// audit-verify

/// A parish after five syncs: six audit entries (the config, then one per run). Returns the
/// head the last run logged.
fn audited() -> (Cli, String) {
    let cli = parish();
    let mut head = String::new();
    for _ in 0..5 {
        let run = cli.run(&["sync"]);
        assert_eq!(run.code, exit::OK, "{}", run.stdout);
        head = run.event("audit.head").str("head").unwrap().to_string();
    }
    (cli, head)
}

/// A copy of a folder's config, feed, state file and audit key.
fn copy_of(from: &Cli) -> Cli {
    let to = Cli::new();
    for name in ["calsync.toml", "feed.ics", "calsync.db", "audit.key"] {
        std::fs::copy(from.path(name), to.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(
        !from.path("calsync.db-wal").exists()
            || std::fs::metadata(from.path("calsync.db-wal"))
                .unwrap()
                .len()
                == 0
    );
    to
}

#[test]
fn audit_verify_passes_an_untouched_chain_up_to_the_logged_head() {
    let (cli, head) = audited();
    assert!(head.starts_with("6:"), "{head}");
    let run = cli.run(&["audit-verify"]);
    assert_eq!(run.code, exit::OK, "{}{}", run.stdout, run.stderr);
    let doc = report(&run);
    assert_eq!(doc["status"], "intact");
    assert_eq!(doc["entries"], 6);
    assert_eq!(doc["head"], head.as_str());
    assert_eq!(doc["first_bad"], Value::Null);
    let logged = run
        .stderr_log()
        .into_iter()
        .find(|l| l.event.as_deref() == Some("audit.head"))
        .expect("audit-verify logs the head");
    assert_eq!(logged.str("head"), Some(head.as_str()));
    assert_eq!(
        cli.run(&["audit-verify", "--expect-head", &head]).code,
        exit::OK
    );
    assert_eq!(
        cli.run(&["audit-verify", "--expect-head", "6:xyz"]).code,
        exit::USAGE
    );
    let kinds: Vec<String> = db(&cli)
        .prepare("SELECT kind FROM audit ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        kinds,
        ["config.changed", "sync", "sync", "sync", "sync", "sync"]
    );
}

#[test]
fn audit_verify_names_the_first_bad_entry_of_each_tamper() {
    let (base, head) = audited();
    let cases: &[(&str, &str, bool, i64)] = &[
        (
            "edit",
            "UPDATE audit SET detail = replace(detail, '\"created\":', '\"created\":1') WHERE seq = 3",
            false,
            3,
        ),
        (
            "insert",
            "UPDATE audit SET seq = seq + 100 WHERE seq >= 4; UPDATE audit SET seq = seq - 99 WHERE seq >= 104;
             INSERT INTO audit (seq, ts, kind, pair, detail, mac)
               SELECT 4, ts, kind, pair, detail, mac FROM audit WHERE seq = 3",
            false,
            4,
        ),
        ("delete", "DELETE FROM audit WHERE seq = 3", false, 4),
        (
            "reorder",
            "UPDATE audit SET seq = -1 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 4;
             UPDATE audit SET seq = 4 WHERE seq = -1",
            false,
            2,
        ),
        ("truncation", "DELETE FROM audit WHERE seq >= 5", true, 5),
    ];
    for (what, sql, expect_head, bad) in cases {
        let cli = copy_of(&base);
        db(&cli).execute_batch(sql).unwrap();
        if *expect_head {
            let run = cli.run(&["audit-verify"]);
            assert_eq!(
                run.code,
                exit::OK,
                "{what}: a cut chain verifies on its own"
            );
        }
        let mut args = vec!["audit-verify"];
        if *expect_head {
            args.extend(["--expect-head", head.as_str()]);
        }
        let run = cli.run(&args);
        assert_eq!(run.code, exit::FAILED, "{what}: {}", run.stdout);
        let doc = report(&run);
        assert_eq!(doc["status"], "broken", "{what}");
        assert_eq!(doc["first_bad"]["seq"], *bad, "{what}: {doc:#}");
        let text = cli.run(&[&args[..], &["--format", "text"]].concat());
        assert!(
            text.stdout.contains("first bad entry") && text.stdout.contains(&bad.to_string()),
            "{what}: {}",
            text.stdout
        );
    }
}

#[test]
fn refused_credentials_are_audited_each_time_and_success_once_after() {
    let feed_text = parish_feed();
    let server = TestServer::start(move |request| {
        // Basic feed:s3cret-right
        if request.header("Authorization") == Some("Basic ZmVlZDpzM2NyZXQtcmlnaHQ=") {
            Response::ics(200, &feed_text)
        } else {
            Response::text(401, "Unauthorized")
        }
    });
    let cli = Cli::new();
    cli.write(
        "calsync.toml",
        config(&pair(
            "parish",
            "",
            &format!(
                "url = \"{}/feed.ics\"\nusername = \"feed\"\npassword_file = \"feed-password\"",
                server.url()
            ),
            "public.ics",
        )),
    );
    let auth_entries = |cli: &Cli| -> Vec<(String, String)> {
        db(cli)
            .prepare("SELECT kind, detail FROM audit WHERE kind LIKE 'auth.%' ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    cli.write("feed-password", "s3cret-wrong\n");
    for _ in 0..2 {
        let run = cli.run(&["sync"]);
        assert_eq!(run.code, exit::NOPERM, "{}", run.stdout);
    }
    cli.write("feed-password", "s3cret-right\n");
    for _ in 0..2 {
        let run = cli.run(&["sync"]);
        assert_eq!(run.code, exit::OK, "{}", run.stdout);
    }
    let entries = auth_entries(&cli);
    let kinds: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["auth.failed", "auth.failed", "auth.succeeded"]);
    assert!(entries[0].1.contains("401"), "{}", entries[0].1);
    let all: String = db(&cli)
        .prepare("SELECT detail FROM audit")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        !all.contains("s3cret"),
        "a secret reached the audit log: {all}"
    );
    assert_eq!(cli.run(&["audit-verify"]).code, exit::OK);
}

// ------------------------------------------------------------------------------------------
// cleanup

/// Events ended 50, 40, 32 and 5 days ago, one to come, and a weekly series without end.
fn aging_feed() -> String {
    feed(&[
        timed("camp@intranet", "Summer camp", -50, ""),
        timed("harvest@intranet", "Harvest thanks", -40, ""),
        timed("recital@intranet", "Organ recital", -32, ""),
        timed("youth@intranet", "Youth evening", -5, ""),
        timed("fair@intranet", "Advent fair", 10, ""),
        format!(
            "UID:mass@intranet\nDTSTAMP:20260101T000000Z\nDTSTART;TZID=Europe/Berlin:{d}T100000\n\
             DTEND;TZID=Europe/Berlin:{d}T110000\nRRULE:FREQ=WEEKLY\nSUMMARY:Sunday mass",
            d = ymd(-60)
        ),
    ])
}

/// Both pairs publish the same feed; `window` is the pair keys in force.
fn aging_config(window: &str) -> String {
    config(&format!(
        "{}{}",
        pair("parish", window, "path = \"feed.ics\"", "public.ics"),
        pair("school", window, "path = \"feed.ics\"", "school.ics")
    ))
}

/// What a cleanup may change: the published files, and the state's tables.
fn snapshot(cli: &Cli) -> (String, String, Vec<String>) {
    let db = db(cli);
    let mut tables = Vec::new();
    for sql in [
        "SELECT pair || ' ' || item_key || ' ' || target_id FROM mapping ORDER BY pair, item_key",
        "SELECT run_id || ' ' || pair || ' ' || command || ' ' || outcome FROM run ORDER BY started_at, pair",
        "SELECT seq || ' ' || kind FROM audit ORDER BY seq",
        "SELECT count(*) || ' api calls' FROM api_call",
    ] {
        let rows: Vec<String> = db
            .prepare(sql)
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        tables.push(rows.join("\n"));
    }
    (cli.read("public.ics"), cli.read("school.ics"), tables)
}

#[test]
fn cleanup_removes_exactly_the_expired_own_events_and_dry_run_changes_nothing() {
    let cli = Cli::new();
    cli.write("feed.ics", aging_feed());
    // Published while the window reached 90 days back…
    cli.write("calsync.toml", aging_config("past_days = 90"));
    let sync = cli.run(&["sync"]);
    assert_eq!(sync.code, exit::OK, "{}{}", sync.stdout, sync.stderr);
    assert_eq!(sync.event("sync.finished").num("created"), 12);
    // …then the window narrowed to 30 days and retention set to 35: the events that ended
    // 40 and 50 days ago are past the horizon, the one of 32 days ago is kept past the window.
    cli.write(
        "calsync.toml",
        aging_config("past_days = 30\nretention_days = 35"),
    );
    let expired = [
        uid("parish", "camp@intranet"),
        uid("parish", "harvest@intranet"),
    ];
    let kept: Vec<String> = [
        "fair@intranet",
        "mass@intranet",
        "recital@intranet",
        "youth@intranet",
    ]
    .iter()
    .map(|k| uid("parish", k))
    .collect();

    let run = cli.run(&["validate", "--pair", "parish"]);
    assert_eq!(run.code, exit::FAILED, "{}", run.stdout);
    let mut want = expired.to_vec();
    want.sort();
    assert_eq!(
        failing(&report(&run)),
        [("none_older_than_cutoff".to_string(), want)]
    );

    let before = snapshot(&cli);
    let dry = cli.run(&["cleanup", "--pair", "parish", "--dry-run"]);
    assert_eq!(dry.code, exit::OK, "{}{}", dry.stdout, dry.stderr);
    let mut would: Vec<String> = dry
        .log()
        .into_iter()
        .filter(|l| l.event.as_deref() == Some("plan.action"))
        .map(|l| l.str("item").unwrap().to_string())
        .collect();
    would.sort();
    assert_eq!(would, ["camp@intranet", "harvest@intranet"]);
    assert_eq!(dry.event("cleanup.finished").num("removed"), 2);
    assert_eq!(snapshot(&cli), before, "--dry-run changed something");

    let run = cli.run(&["cleanup", "--pair", "parish"]);
    assert_eq!(run.code, exit::OK, "{}{}", run.stdout, run.stderr);
    let finished = run.event("pair.finished");
    assert_eq!(finished.pair.as_deref(), Some("parish"));
    assert_eq!((finished.num("expired"), finished.num("removed")), (2, 2));
    assert_eq!((finished.num("not_ours"), finished.num("failed")), (0, 0));
    let log = run.log();
    assert_eq!(
        log.last().unwrap().event.as_deref(),
        Some("cleanup.finished")
    );
    assert!(run.has_event("history.pruned"));
    assert!(!run.all_output().contains("Summer camp") && !run.all_output().contains("Harvest"));

    // Exactly the expired events are gone from the published file.
    let cal = ics::parse(&cli.read("public.ics"));
    let mut uids: Vec<String> = cal
        .masters()
        .iter()
        .map(|e| e.get("UID").unwrap().to_string())
        .collect();
    uids.sort();
    let mut want = kept.clone();
    want.sort();
    assert_eq!(uids, want);
    // The other pair was not selected: its file and mapping are as they were.
    assert_eq!(cli.read("school.ics"), before.1);
    assert_eq!(
        count(&cli, "SELECT count(*) FROM mapping WHERE pair = 'school'"),
        6
    );
    assert_eq!(
        count(&cli, "SELECT count(*) FROM mapping WHERE pair = 'parish'"),
        4
    );
    assert_eq!(
        count(
            &cli,
            "SELECT count(*) FROM run WHERE command = 'cleanup' AND outcome = 'ok' AND deleted = 2"
        ),
        1
    );
    assert_eq!(
        count(
            &cli,
            "SELECT count(*) FROM audit WHERE kind = 'cleanup' AND detail LIKE '%\"removed\":2%'"
        ),
        1
    );
    assert_eq!(cli.run(&["audit-verify"]).code, exit::OK);
    assert_eq!(cli.run(&["validate", "--pair", "parish"]).code, exit::OK);

    // Sync does not bring them back, and a second cleanup finds nothing to do.
    let sync = cli.run(&["sync", "--pair", "parish"]);
    assert_eq!(sync.code, exit::OK, "{}", sync.stdout);
    assert_eq!(sync.event("sync.finished").num("created"), 0);
    let again = cli.run(&["cleanup", "--pair", "parish"]);
    assert_eq!(again.event("pair.finished").num("removed"), 0);
    assert_eq!(ics::parse(&cli.read("public.ics")).masters().len(), 4);
}
