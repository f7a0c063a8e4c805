//! Unattended runs meet 429s, 5xx, dropped connections and SIGTERM. None of it may produce a
//! duplicate, a lost event, a deletion or a silent failure. Times are asserted on what the
//! fault proxy recorded, never on wall-clock budgets; the breaker's clock is moved by editing
//! the state file, as another five minutes would.

mod support;

use calsync::exit;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use support::cli::{Cli, finish, signal};
use support::http::{Request, Response, TestServer};
use support::ics::{self, feed, timed};
use support::proxy::{Fault, FaultProxy, Matching};

fn events(n: i64) -> String {
    feed(
        &(0..n)
            .map(|i| timed(&format!("e{i}@x"), &format!("Public event {i}"), 2 + i, ""))
            .collect::<Vec<_>>(),
    )
}

fn config(url: &str, retries: u32) -> String {
    format!(
        "state = \"calsync.db\"\n[net]\nretries = {retries}\nbackoff_ms = 50\n\n[[pair]]\nname = \"parish\"\n\
         [pair.source]\nkind = \"ics\"\nurl = \"{url}/feed.ics\"\n[pair.target]\nkind = \"ics\"\npath = \"public.ics\"\n"
    )
}

#[test]
fn retry_after_is_honoured() {
    let body = events(3);
    let server = TestServer::start(move |_: &Request| Response::ics(200, &body));
    let proxy = FaultProxy::start(&server.url());
    proxy.inject(Fault::retry_after(429, 1), 1, Matching::any());
    proxy.inject(Fault::retry_after(503, 2), 1, Matching::any());
    let cli = Cli::new();
    cli.write("calsync.toml", config(&proxy.url(), 3));
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::OK, "{}", run.stdout);
    let seen = proxy.requests();
    assert_eq!(seen.len(), 3, "two refusals, then the answer");
    let gap = |a: usize, b: usize| seen[b].arrived.duration_since(seen[a].completed);
    // Retry-After is a floor; the tolerance only allows for the proxy's own bookkeeping.
    assert!(
        gap(0, 1) >= Duration::from_millis(950),
        "retried after {:?}",
        gap(0, 1)
    );
    assert!(
        gap(1, 2) >= Duration::from_millis(1950),
        "retried after {:?}",
        gap(1, 2)
    );
    let retries: Vec<_> = run
        .log()
        .into_iter()
        .filter(|l| l.event.as_deref() == Some("http.retry"))
        .collect();
    assert_eq!(
        retries.iter().map(|l| l.num("wait_ms")).collect::<Vec<_>>(),
        [1000, 2000]
    );
    assert_eq!(
        retries.iter().map(|l| l.num("status")).collect::<Vec<_>>(),
        [429, 503]
    );
}

#[test]
fn other_client_errors_are_not_retried() {
    let server = TestServer::start(|_: &Request| Response::text(403, "forbidden"));
    let cli = Cli::new();
    cli.write("calsync.toml", config(&server.url(), 3));
    let run = cli.run(&["sync"]);
    assert_eq!(
        run.code,
        exit::NOPERM,
        "403 is credentials refused: {}",
        run.stdout
    );
    assert_eq!(server.count(), 1);
    let server = TestServer::start(|_: &Request| Response::text(410, "gone"));
    cli.write("calsync.toml", config(&server.url(), 3));
    assert_eq!(cli.run(&["sync"]).code, exit::FAILED);
    assert_eq!(server.count(), 1);
}

#[test]
fn dropped_connections_are_retried_then_fail_without_deleting() {
    let body = events(12);
    let server = TestServer::start(move |_: &Request| Response::ics(200, &body));
    let proxy = FaultProxy::start(&server.url());
    let cli = Cli::new();
    cli.write("calsync.toml", config(&proxy.url(), 2));
    assert_eq!(cli.run(&["sync"]).code, exit::OK);
    let before = cli.read("public.ics");
    proxy.clear();
    proxy.inject(Fault::Drop, 3, Matching::any());
    let run = cli.run(&["sync", "--full"]);
    assert_eq!(run.code, exit::TEMPFAIL, "{}", run.stdout);
    assert_eq!(proxy.count(), 3, "the first try and two retries");
    assert_eq!(cli.read("public.ics"), before);
    assert_eq!(run.event("sync.finished").num("deleted"), 0);
}

fn set_breaker_opened_at(cli: &Cli, seconds_ago: i64) {
    let db = rusqlite::Connection::open(cli.path("calsync.db")).unwrap();
    let n = db
        .execute(
            "UPDATE breaker SET opened_at = opened_at - ?1 WHERE state = 'open'",
            [seconds_ago],
        )
        .unwrap();
    assert_eq!(n, 1, "one open breaker");
}

#[test]
fn the_breaker_opens_after_five_failures_refuses_then_probes() {
    let healthy = Arc::new(AtomicBool::new(false));
    let flag = healthy.clone();
    let body = events(3);
    let server = TestServer::start(move |_: &Request| {
        if flag.load(Ordering::SeqCst) {
            Response::ics(200, &body)
        } else {
            Response::text(500, "down")
        }
    });
    let cli = Cli::new();
    cli.write("calsync.toml", config(&server.url(), 0));
    for run_no in 1..=5 {
        let run = cli.run(&["sync"]);
        assert_eq!(run.code, exit::TEMPFAIL, "run {run_no}");
        assert_eq!(run.has_event("breaker.opened"), run_no == 5, "run {run_no}");
    }
    assert_eq!(server.count(), 5);

    // Open: the endpoint is not called at all.
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::UNAVAILABLE, "{}", run.stdout);
    assert_eq!(server.count(), 5);

    // Five minutes later one probe goes out; it fails, so the breaker opens again.
    set_breaker_opened_at(&cli, 301);
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::TEMPFAIL);
    assert!(run.has_event("breaker.half_open") && run.has_event("breaker.opened"));
    assert_eq!(server.count(), 6);
    assert_eq!(cli.run(&["sync"]).code, exit::UNAVAILABLE);
    assert_eq!(server.count(), 6);

    // Another cooldown, and the endpoint is back: the probe closes the breaker.
    healthy.store(true, Ordering::SeqCst);
    set_breaker_opened_at(&cli, 301);
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::OK, "{}", run.stdout);
    assert!(run.has_event("breaker.closed"));
    assert_eq!(ics::parse(&cli.read("public.ics")).events().len(), 3);

    // Transitions are in the audit chain.
    let db = rusqlite::Connection::open(cli.path("calsync.db")).unwrap();
    let kinds: i64 = db
        .query_row(
            "SELECT count(*) FROM audit WHERE kind = 'breaker'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kinds, 5, "opened, half-open, opened, half-open, closed");
}

#[test]
fn a_plain_client_error_does_not_count_toward_the_breaker() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let server = TestServer::start(move |_: &Request| {
        // Failures interleaved with a 404: never five in a row.
        if c.fetch_add(1, Ordering::SeqCst) % 3 == 2 {
            Response::text(404, "nope")
        } else {
            Response::text(500, "down")
        }
    });
    let cli = Cli::new();
    cli.write("calsync.toml", config(&server.url(), 0));
    for _ in 0..9 {
        assert_ne!(cli.run(&["sync"]).code, exit::UNAVAILABLE);
    }
    assert_eq!(server.count(), 9);
}

/// A feed server whose first answer waits until the test lets it go.
struct GatedFeed {
    server: TestServer,
    gate: Arc<(Mutex<bool>, Condvar)>,
}

impl GatedFeed {
    fn start(body: String) -> GatedFeed {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let g = gate.clone();
        let server = TestServer::start(move |_: &Request| {
            let (lock, cv) = &*g;
            let open = cv
                .wait_timeout_while(lock.lock().unwrap(), Duration::from_secs(30), |open| !*open)
                .unwrap();
            assert!(*open.0, "the test never opened the gate");
            Response::ics(200, &body)
        });
        GatedFeed { server, gate }
    }

    fn open(&self) {
        *self.gate.0.lock().unwrap() = true;
        self.gate.1.notify_all();
    }

    /// Waits (bounded) until a request has arrived.
    fn wait_for_request(&self) {
        for _ in 0..1000 {
            if self.server.count() > 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("calsync never asked for the feed");
    }
}

#[test]
fn sigterm_mid_run_exits_143_records_the_run_and_the_next_run_converges() {
    for (name, code) in [("TERM", exit::TERMINATED), ("INT", exit::INTERRUPTED)] {
        let feed = GatedFeed::start(events(5));
        let cli = Cli::new();
        cli.write("calsync.toml", config(&feed.server.url(), 0));
        let child = cli.spawn(&["sync"]);
        feed.wait_for_request();
        signal(&child, name);
        feed.open();
        let run = finish(child);
        assert_eq!(run.code, code, "SIG{name}: {}{}", run.stdout, run.stderr);
        assert_eq!(
            run.event("pair.finished").str("outcome"),
            Some("interrupted")
        );
        assert_eq!(run.event("sync.finished").num("exit_code"), code as u64);
        let db = rusqlite::Connection::open(cli.path("calsync.db")).unwrap();
        let outcome: String = db
            .query_row("SELECT outcome FROM run", [], |r| r.get(0))
            .unwrap();
        assert_eq!(outcome, "interrupted");
        drop(db);

        let run = cli.run(&["sync"]);
        assert_eq!(run.code, exit::OK, "{}", run.stdout);
        assert_eq!(ics::parse(&cli.read("public.ics")).events().len(), 5);
    }
}

#[test]
fn a_lost_state_file_is_rebuilt_from_the_tags_without_duplicates() {
    let body = Arc::new(Mutex::new(events(12)));
    let b = body.clone();
    let server = TestServer::start(move |_: &Request| Response::ics(200, &b.lock().unwrap()));
    let cli = Cli::new();
    cli.write("calsync.toml", config(&server.url(), 0));
    assert_eq!(cli.run(&["sync"]).code, exit::OK);
    // As if published long ago: a rebuilt mapping must keep these DTSTAMPs, not stamp "now".
    let published = regex::Regex::new(r"DTSTAMP:\d{8}T\d{6}Z")
        .unwrap()
        .replace_all(&cli.read("public.ics"), "DTSTAMP:20200101T000000Z")
        .into_owned();
    cli.write("public.ics", &published);

    // The state file is lost; the source is unchanged: nothing is written.
    for f in ["calsync.db", "calsync.db-wal", "calsync.db-shm"] {
        let _ = std::fs::remove_file(cli.path(f));
    }
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::OK, "{}", run.stdout);
    let rebuilt = run.event("state.rebuilt");
    assert_eq!((rebuilt.num("adopted"), rebuilt.num("orphans")), (12, 0));
    let s = run.event("sync.finished");
    assert_eq!(
        (s.num("created"), s.num("updated"), s.num("deleted")),
        (0, 0, 0)
    );
    assert_eq!(cli.read("public.ics"), published);

    // Lost again, and meanwhile an event was deleted at the source: its orphan goes.
    for f in ["calsync.db", "calsync.db-wal", "calsync.db-shm"] {
        let _ = std::fs::remove_file(cli.path(f));
    }
    *body.lock().unwrap() = feed(
        &(0..11)
            .map(|i| timed(&format!("e{i}@x"), &format!("Public event {i}"), 2 + i, ""))
            .collect::<Vec<_>>(),
    );
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::OK, "{}", run.stdout);
    assert_eq!(run.event("state.rebuilt").num("orphans"), 1);
    assert_eq!(run.event("sync.finished").num("deleted"), 1);
    let cal = ics::parse(&cli.read("public.ics"));
    assert_eq!(cal.events().len(), 11);
    let mut uids: Vec<&str> = cal.events().iter().map(|e| e.get("UID").unwrap()).collect();
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), 11, "no duplicates");
}
