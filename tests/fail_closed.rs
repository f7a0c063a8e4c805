//! Fail closed against hostile remotes and careless configurations (DESIGN.md, "Trust nothing
//! a remote says", "Never mass-delete"), on the real binary: every item an adversarial review
//! broke, with a hostile local server where it needs one.
//!
//! - a CalDAV discovery answer that names a plain-http host (or a cached one) is refused
//!   before any request goes there;
//! - events that turn private are removed however many they are (withdrawals pass the
//!   deletion guard), counted as `withdrawn` in the log, history and metrics;
//! - a gzip bomb is cut off at the size cap, under a memory limit, and deletes nothing; a
//!   config file is capped too;
//! - `recurrence = "expand"` mirrors at most `max_occurrences` per series;
//! - a feed URL with credentials is refused, and a private feed's path reaches neither a
//!   log nor the state file;
//! - redirects: no plain-http hop to another host, no loop (a failure, not "try later"), and
//!   no credentials on a hop to another origin.

mod support;

use calsync::exit;
use std::io::Write;
use support::cli::Cli;
use support::http::{Request, Response, TestServer};
use support::ics::{self, feed, timed};

fn ics_config(source: &str, extra: &str) -> String {
    format!(
        "state = \"calsync.db\"\nmetrics_file = \"calsync.prom\"\n{extra}\n[[pair]]\nname = \"parish\"\n\
         [pair.source]\nkind = \"ics\"\n{source}\n[pair.target]\nkind = \"ics\"\npath = \"public.ics\"\n"
    )
}

fn events(n: i64, private: &[i64]) -> String {
    feed(
        &(0..n)
            .map(|i| {
                let class = if private.contains(&i) {
                    "CLASS:PRIVATE"
                } else {
                    ""
                };
                timed(&format!("e{i}@x"), &format!("Event {i}"), 2 + i, class)
            })
            .collect::<Vec<_>>(),
    )
}

// ---------------------------------------------------------------------------------------
// 1. Cleartext password to another host.

/// A CalDAV server whose discovery names another, plain-http host for the principal.
fn hostile_dav(principal: &'static str) -> TestServer {
    TestServer::start(move |req: &Request| {
        if req.method == "PROPFIND" {
            let body = format!(
                r#"<?xml version="1.0"?><d:multistatus xmlns:d="DAV:"><d:response><d:href>/dav/</d:href>
<d:propstat><d:prop><d:current-user-principal><d:href>{principal}</d:href></d:current-user-principal>
<d:resourcetype><d:collection/></d:resourcetype></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>
</d:response></d:multistatus>"#
            );
            return Response::new(207)
                .header("Content-Type", "application/xml; charset=utf-8")
                .body(body);
        }
        Response::new(404)
    })
}

fn dav_config(url: &str) -> String {
    format!(
        "state = \"calsync.db\"\n[[pair]]\nname = \"parish\"\n[pair.source]\nkind = \"caldav\"\n\
         url = \"{url}/dav/\"\ncalendar = \"Public\"\nusername = \"office\"\npassword_env = \"DAV_PASSWORD\"\n\
         [pair.target]\nkind = \"ics\"\npath = \"public.ics\"\n"
    )
}

#[test]
fn a_discovery_answer_naming_a_plain_http_host_is_refused_before_any_request() {
    let server = hostile_dav("http://calendar.attacker.example:8080/principals/office/");
    let mut cli = Cli::new();
    cli.env("DAV_PASSWORD", "hunter2");
    cli.write("calsync.toml", dav_config(&server.url()));
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::FAILED, "{}{}", run.stdout, run.stderr);
    let failed = run.event("pair.failed");
    assert!(
        failed.msg.contains("http://calendar.attacker.example:8080"),
        "the refused origin is named: {}",
        failed.msg
    );
    assert!(!failed.msg.contains("principals/office"), "{}", failed.msg);
    // Only the one discovery request reached anything; nothing was tried over there.
    assert_eq!(server.count(), 1);
    assert!(!cli.path("public.ics").exists());
}

#[test]
fn a_cached_collection_on_a_plain_http_host_is_not_used() {
    let server = hostile_dav("http://calendar.attacker.example/principals/office/");
    let mut cli = Cli::new();
    cli.env("DAV_PASSWORD", "hunter2");
    cli.write("calsync.toml", dav_config(&server.url()));
    // An earlier version resolved (and cached for an hour) a collection on another host.
    let first = cli.run(&["sync"]);
    assert_eq!(first.code, exit::FAILED);
    let url = format!("{}/dav/", server.url());
    let key = format!(
        "caldav.collection.{}",
        calsync::hashing::sha256_hex(format!("{url}\0Public\0office").as_bytes())
    );
    let db = rusqlite::Connection::open(cli.path("calsync.db")).unwrap();
    db.execute(
        "INSERT INTO cache (key, value, expires_at) VALUES (?1, ?2, ?3)",
        rusqlite::params![
            key,
            r#"{"url":"http://calendar.attacker.example/cal/","sync":true}"#,
            i64::MAX
        ],
    )
    .unwrap();
    drop(db);
    server.clear();
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::FAILED, "{}", run.stdout);
    // Discovery ran again from the configured URL (and was refused again).
    assert_eq!(server.count(), 1);
    assert!(
        run.event("pair.failed")
            .msg
            .contains("calendar.attacker.example")
    );
}

// ---------------------------------------------------------------------------------------
// 2. Events that turn private are removed, however many.

#[test]
fn events_that_turn_private_are_removed_however_many_and_counted_withdrawn() {
    let body = std::sync::Arc::new(std::sync::Mutex::new(events(20, &[])));
    let served = body.clone();
    let server = TestServer::start(move |_| Response::ics(200, &served.lock().unwrap()));
    let cli = Cli::new();
    cli.write(
        "calsync.toml",
        ics_config(&format!("url = \"{}/feed.ics\"", server.url()), ""),
    );
    assert_eq!(cli.run(&["sync"]).code, exit::OK);
    assert_eq!(ics::parse(&cli.read("public.ics")).events().len(), 20);

    // Fifteen of twenty become private: three quarters, far over the guard's 50 %.
    *body.lock().unwrap() = events(20, &(0..15).collect::<Vec<_>>());
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::OK, "{}", run.stdout);
    assert!(!run.has_event("guard.tripped"));
    let published = ics::parse(&cli.read("public.ics"));
    let titles = published.summaries();
    assert_eq!(titles.len(), 5, "{titles:?}");
    assert!(
        titles
            .iter()
            .all(|t| !["Event 0", "Event 14"].contains(&t.as_str()))
    );
    let finished = run.event("pair.finished");
    assert_eq!(finished.num("withdrawn"), 15);
    assert_eq!(finished.num("deleted"), 15);
    assert_eq!(run.event("sync.finished").num("withdrawn"), 15);
    let metrics = cli.read("calsync.prom");
    assert!(
        metrics.contains(r#"calsync_pair_last_run_events{pair="parish",result="withdrawn"} 15"#),
        "{metrics}"
    );
    let history = cli.run(&["history", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&history.stdout).unwrap();
    let last = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["command"] == "sync")
        .unwrap();
    assert_eq!(last["withdrawn"], 15, "{last}");
    // Audited with the count.
    let verify = cli.run(&["audit-verify", "--format", "json"]);
    assert_eq!(verify.code, exit::OK);
}

#[test]
fn absence_is_still_guarded_while_withdrawals_go_ahead() {
    let body = std::sync::Arc::new(std::sync::Mutex::new(events(30, &[])));
    let served = body.clone();
    let server = TestServer::start(move |_| Response::ics(200, &served.lock().unwrap()));
    let cli = Cli::new();
    cli.write(
        "calsync.toml",
        ics_config(&format!("url = \"{}/feed.ics\"", server.url()), ""),
    );
    assert_eq!(cli.run(&["sync"]).code, exit::OK);
    // 10 turn private; of the 20 left, 12 vanish from the feed (more than half): the 12
    // are held back, the 10 withdrawals are not.
    let remaining: Vec<String> = (0..30)
        .filter(|i| !(10..22).contains(i))
        .map(|i| {
            timed(
                &format!("e{i}@x"),
                &format!("Event {i}"),
                2 + i,
                if i < 10 { "CLASS:PRIVATE" } else { "" },
            )
        })
        .collect();
    *body.lock().unwrap() = feed(&remaining);
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::FAILED, "{}", run.stdout);
    let tripped = run.event("guard.tripped");
    assert_eq!((tripped.num("deletes"), tripped.num("mapped")), (12, 20));
    let finished = run.event("pair.finished");
    assert_eq!(finished.num("withdrawn"), 10);
    assert_eq!(finished.num("guard_withheld"), 12);
    let titles = ics::parse(&cli.read("public.ics")).summaries();
    assert_eq!(titles.len(), 20, "{titles:?}");
    assert!(!titles.iter().any(|t| t == "Event 3"));
}

// ---------------------------------------------------------------------------------------
// 4. No bound on a response; no bound on the config file.

/// A gzip stream that inflates to `mib` MiB of zeros in about a KiB per MiB: deflate blocks
/// flushed at byte boundaries repeat exactly once the window is all zeros.
fn gzip_bomb(mib: usize) -> Vec<u8> {
    let zeros = vec![0u8; 1 << 20];
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&zeros).unwrap();
    enc.flush().unwrap();
    let first = enc.get_ref().len();
    enc.write_all(&zeros).unwrap();
    enc.flush().unwrap();
    let second = enc.get_ref()[first..].to_vec();
    enc.write_all(&zeros).unwrap();
    enc.flush().unwrap();
    let third = enc.get_ref()[first + second.len()..].to_vec();
    assert_eq!(second, third, "a zero block compresses the same every time");
    let mut out = enc.get_ref()[..first].to_vec();
    for _ in 1..mib {
        out.extend_from_slice(&second);
    }
    // The trailer (CRC, size) is wrong for the whole, which a reader capped early never sees.
    out.extend_from_slice(&enc.finish().unwrap()[first + 2 * second.len()..]);
    out
}

#[test]
fn a_gzip_bomb_is_cut_off_at_the_cap_under_a_memory_limit_and_deletes_nothing() {
    let good = events(3, &[]);
    let bomb = std::sync::Arc::new(gzip_bomb(1024));
    assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());
    let armed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (b, a) = (bomb.clone(), armed.clone());
    let server = TestServer::start(move |_| {
        if a.load(std::sync::atomic::Ordering::SeqCst) {
            Response::new(200)
                .header("Content-Type", "text/calendar")
                .header("Content-Encoding", "gzip")
                .body(b.as_slice())
        } else {
            Response::ics(200, &good)
        }
    });
    let cli = Cli::new();
    cli.write(
        "calsync.toml",
        ics_config(
            &format!("url = \"{}/feed.ics\"", server.url()),
            "[net]\nmax_response_mib = 8\nretries = 2\nbackoff_ms = 1\n",
        ),
    );
    assert_eq!(cli.run(&["sync"]).code, exit::OK);
    let before = cli.read("public.ics");
    armed.store(true, std::sync::atomic::Ordering::SeqCst);
    server.clear();
    // 1 GiB inflated against 256 MiB of data memory: only a capped read survives.
    let bin = assert_cmd::cargo::cargo_bin("calsync");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -d 262144 && exec '{}' --config '{}' sync",
            bin.display(),
            cli.path("calsync.toml").display()
        ))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(exit::FAILED), "{stdout}");
    assert!(stdout.contains("max_response_mib"), "{stdout}");
    assert_eq!(server.count(), 1, "a refused answer is not asked for again");
    assert_eq!(cli.read("public.ics"), before, "nothing deleted");
}

#[test]
fn a_config_file_is_capped() {
    let cli = Cli::new();
    let run = cli.run_raw(&["--config", "/dev/zero", "sync"]);
    assert_eq!(run.code, exit::CONFIG, "{}{}", run.stdout, run.stderr);
    assert!(run.all_output().contains("KiB"), "{}", run.all_output());
    let mut big = ics_config("path = \"feed.ics\"", "");
    big.push_str(&format!("# {}\n", "x".repeat(2 << 20)));
    cli.write("calsync.toml", big);
    assert_eq!(cli.run(&["sync"]).code, exit::CONFIG);
}

// ---------------------------------------------------------------------------------------
// 5. `expand` floods the target.

#[test]
fn expand_mirrors_at_most_max_occurrences_per_series_and_names_the_series() {
    let series: Vec<String> = (0..10)
        .map(|i| {
            format!(
                "UID:hourly-{i}@x\nDTSTAMP:20260101T000000Z\nDTSTART:{}T0{i}0000Z\nDTEND:{}T0{i}3000Z\n\
                 SUMMARY:Hourly {i}\nRRULE:FREQ=HOURLY",
                ics::ymd(1),
                ics::ymd(1)
            )
        })
        .collect();
    let cli = Cli::new();
    cli.write("feed.ics", feed(&series));
    cli.write(
        "calsync.toml",
        ics_config("path = \"feed.ics\"", "").replace(
            "name = \"parish\"\n",
            "name = \"parish\"\nrecurrence = \"expand\"\nmax_occurrences = 40\n",
        ),
    );
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::OK, "{}", run.stdout);
    assert_eq!(ics::parse(&cli.read("public.ics")).events().len(), 400);
    let capped: Vec<String> = run
        .log()
        .iter()
        .filter(|l| l.event.as_deref() == Some("series.capped"))
        .map(|l| l.str("source_key").unwrap().to_string())
        .collect();
    assert_eq!(capped.len(), 10, "{capped:?}");
    assert!(capped.contains(&"hourly-3@x".to_string()));
    // The default bound is 1,000, and a bound out of range is a configuration error.
    let bad = ics_config("path = \"feed.ics\"", "").replace(
        "name = \"parish\"\n",
        "name = \"parish\"\nmax_occurrences = 0\n",
    );
    cli.write("calsync.toml", bad);
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::CONFIG);
    assert!(run.all_output().contains("max_occurrences"));
}

// ---------------------------------------------------------------------------------------
// 6. Feed secrets in logs and state.

#[test]
fn a_feed_url_with_credentials_is_a_config_error_wherever_it_is_written() {
    let mut cli = Cli::new();
    cli.write(
        "feed-url",
        "https://office:hunter2@calendar.example.org/feed.ics\n",
    );
    cli.env(
        "FEED_URL",
        "https://office:hunter2@calendar.example.org/feed.ics",
    );
    for source in [
        "url = \"https://office:hunter2@calendar.example.org/feed.ics\"",
        "url_file = \"feed-url\"",
        "url_env = \"FEED_URL\"",
    ] {
        cli.write("calsync.toml", ics_config(source, ""));
        let run = cli.run(&["sync"]);
        assert_eq!(run.code, exit::CONFIG, "{source}: {}", run.stdout);
        let out = run.all_output();
        assert!(out.contains("user:password@"), "{source}: {out}");
        assert!(
            !out.contains("hunter2"),
            "{source}: the password is echoed: {out}"
        );
    }
}

#[test]
fn a_private_feed_address_reaches_neither_a_log_nor_the_state_file() {
    const TOKEN: &str = "a9f3c2e7d1b8secret";
    let body = events(3, &[]);
    let missing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let m = missing.clone();
    let server = TestServer::start(move |req| {
        if m.load(std::sync::atomic::Ordering::SeqCst) || !req.path.contains(TOKEN) {
            Response::text(404, "not found")
        } else {
            Response::ics(200, &body)
        }
    });
    let mut cli = Cli::new();
    cli.env("RUST_LOG", "debug");
    cli.env(
        "FEED_URL",
        &format!("{}/private/{TOKEN}/basic.ics?token={TOKEN}", server.url()),
    );
    cli.write("calsync.toml", ics_config("url_env = \"FEED_URL\"", ""));
    let ok = cli.run(&["sync"]);
    assert_eq!(ok.code, exit::OK, "{}", ok.stdout);
    missing.store(true, std::sync::atomic::Ordering::SeqCst);
    let failed = cli.run(&["sync"]);
    assert_eq!(failed.code, exit::FAILED, "{}", failed.stdout);
    // The feed is named by its origin.
    assert!(
        failed.event("pair.failed").msg.contains(&server.url()),
        "{}",
        failed.stdout
    );
    for run in [&ok, &failed] {
        assert!(!run.all_output().contains(TOKEN), "{}", run.all_output());
    }
    let history = cli.run(&["history", "--format", "json"]);
    assert!(!history.all_output().contains(TOKEN));
    let state = std::fs::read(cli.path("calsync.db")).unwrap();
    let wal = std::fs::read(cli.path("calsync.db-wal")).unwrap_or_default();
    for bytes in [&state, &wal] {
        assert!(
            !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
            "the feed's path is in the state file"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 7. Redirects.

#[test]
fn a_redirect_to_plain_http_on_another_host_is_refused_and_deletes_nothing() {
    let body = events(3, &[]);
    let redirect = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r = redirect.clone();
    let server = TestServer::start(move |_| {
        if r.load(std::sync::atomic::Ordering::SeqCst) {
            Response::new(302).header("Location", "http://feeds.attacker.example/feed.ics")
        } else {
            Response::ics(200, &body)
        }
    });
    let cli = Cli::new();
    cli.write(
        "calsync.toml",
        ics_config(&format!("url = \"{}/feed.ics\"", server.url()), ""),
    );
    assert_eq!(cli.run(&["sync"]).code, exit::OK);
    let before = cli.read("public.ics");
    redirect.store(true, std::sync::atomic::Ordering::SeqCst);
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::FAILED, "{}", run.stdout);
    assert!(
        run.event("pair.failed")
            .msg
            .contains("http://feeds.attacker.example:80"),
        "{}",
        run.stdout
    );
    assert_eq!(cli.read("public.ics"), before);
}

#[test]
fn a_redirect_loop_is_a_failure_not_a_transient_error() {
    let server = TestServer::start(|req| {
        Response::new(302).header("Location", format!("{}?again", req.path_only()))
    });
    let cli = Cli::new();
    cli.write(
        "calsync.toml",
        ics_config(
            &format!("url = \"{}/feed.ics\"", server.url()),
            "[net]\nretries = 3\nbackoff_ms = 1\n",
        ),
    );
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::FAILED, "{}", run.stdout);
    assert!(run.event("pair.failed").msg.contains("redirect"));
    // The request and ten redirects; not retried.
    assert_eq!(server.count(), 11);
}

#[test]
fn credentials_do_not_follow_a_redirect_to_another_origin() {
    let body = events(2, &[]);
    let elsewhere = TestServer::start(move |_| Response::ics(200, &body));
    let target = format!("{}/moved.ics", elsewhere.url());
    let home = TestServer::start(move |_| Response::new(301).header("Location", target.clone()));
    let mut cli = Cli::new();
    cli.env("FEED_PASSWORD", "hunter2");
    cli.write(
        "calsync.toml",
        ics_config(
            &format!(
                "url = \"{}/feed.ics\"\nusername = \"office\"\npassword_env = \"FEED_PASSWORD\"",
                home.url()
            ),
            "",
        ),
    );
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::OK, "{}", run.stdout);
    assert!(home.requests()[0].header("authorization").is_some());
    let seen = elsewhere.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("authorization"),
        None,
        "the password went to another origin"
    );
}

// ---------------------------------------------------------------------------------------
// 1 and 7, for links Graph hands out: a next link to plain http on another host.

#[test]
fn a_graph_next_link_to_a_plain_http_host_is_refused_before_it_is_followed() {
    let server = TestServer::start(|req: &Request| {
        let path = req.path_only();
        if path.ends_with("/token") {
            return Response::json(
                200,
                &serde_json::json!({"token_type": "Bearer", "expires_in": 3599, "access_token": "t"}),
            );
        }
        if path.contains("/calendarView/delta") {
            return Response::json(
                200,
                &serde_json::json!({
                    "value": [],
                    "@odata.nextLink": "http://graph.attacker.example/v1.0/users/office@example.org/calendarView/delta?$skiptoken=x"
                }),
            );
        }
        if path.contains("/calendars/") || path.ends_with("/calendar") {
            return Response::json(200, &serde_json::json!({"id": "cal-1", "name": "Public"}));
        }
        Response::json(
            404,
            &serde_json::json!({"error": {"code": "ErrorItemNotFound"}}),
        )
    });
    let mut cli = Cli::new();
    cli.env("GRAPH_SECRET", "s3cret");
    cli.write(
        "calsync.toml",
        format!(
            "state = \"calsync.db\"\n[[pair]]\nname = \"office\"\n[pair.source]\nkind = \"graph\"\n\
             tenant_id = \"contoso\"\nclient_id = \"app\"\nclient_secret_env = \"GRAPH_SECRET\"\n\
             user = \"office@example.org\"\ncalendar_id = \"cal-1\"\n\
             token_url = \"{url}/contoso/oauth2/v2.0/token\"\nbase_url = \"{url}/v1.0\"\n\
             [pair.target]\nkind = \"ics\"\npath = \"public.ics\"\n",
            url = server.url()
        ),
    );
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::FAILED, "{}", run.stdout);
    let failed = run.event("pair.failed");
    assert!(
        failed.msg.contains("http://graph.attacker.example:80"),
        "{}",
        failed.msg
    );
    assert!(
        !run.all_output().contains("skiptoken"),
        "{}",
        run.all_output()
    );
    assert!(!cli.path("public.ics").exists());
}
