//! kill -9 at any instant: a run killed anywhere during an initial sync into a real Radicale
//! is followed by runs that converge to exactly the expected events, none twice — also when
//! responses are lost on the way back and when the state file is lost as well.
//!
//! The kill instants are pseudo-random but fixed (seeded), and defined by progress rather than
//! time: "after the k-th PUT reached the server", so the test exercises the same points on a
//! fast or a slow machine.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::cli::{Cli, finish, signal};
use support::ics::{feed, timed};
use support::proxy::{Fault, FaultProxy, Matching};
use support::radicale::Radicale;

const EVENTS: i64 = 240;

/// The source: `EVENTS` public events and a few private ones.
fn source() -> String {
    let mut events: Vec<String> = (0..EVENTS)
        .map(|i| {
            timed(
                &format!("ev{i}@intranet"),
                &format!("Public event {i}"),
                1 + i % 300,
                "",
            )
        })
        .collect();
    for i in 0..10 {
        events.push(timed(
            &format!("private{i}@intranet"),
            &format!("Private {i}"),
            5 + i,
            "CLASS:PRIVATE",
        ));
    }
    feed(&events)
}

/// A small deterministic generator for the kill points (no dependency on `rand`).
fn kill_points(seed: u64, count: usize, max: usize) -> Vec<usize> {
    let mut x = seed;
    let mut points: BTreeSet<usize> = BTreeSet::new();
    while points.len() < count {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        points.insert((x >> 33) as usize % max);
    }
    points.into_iter().collect()
}

struct Setup {
    radicale: Radicale,
    proxy: FaultProxy,
    cli: Cli,
}

fn setup() -> Setup {
    let radicale = Radicale::start();
    radicale.mkcalendar("public");
    let proxy = FaultProxy::start(&radicale.url());
    let mut cli = Cli::new();
    cli.env("RADICALE_PASSWORD", radicale.password());
    cli.write("feed.ics", source());
    cli.write(
        "calsync.toml",
        format!(
            "state = \"calsync.db\"\n[net]\nretries = 2\nbackoff_ms = 20\n\n[[pair]]\nname = \"parish\"\n\
             [pair.source]\nkind = \"ics\"\npath = \"feed.ics\"\n[pair.target]\nkind = \"caldav\"\n\
             url = \"{}/{}/public/\"\nusername = \"{}\"\npassword_env = \"RADICALE_PASSWORD\"\n",
            proxy.url(),
            radicale.user(),
            radicale.user()
        ),
    );
    Setup {
        radicale,
        proxy,
        cli,
    }
}

/// Starts a sync and SIGKILLs it once `puts` PUTs (counted since the proxy started) reached
/// the server, or lets it end if it finishes first. Returns whether it was killed.
fn sync_killed_after(s: &Setup, puts: usize) -> bool {
    let child = s.cli.spawn(&["sync"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut child = child;
    loop {
        if child.try_wait().expect("waiting").is_some() {
            let run = finish(child);
            assert!(
                run.code == 0 || run.code == 1,
                "a run ended badly: {}{}",
                run.stdout,
                run.stderr
            );
            return false;
        }
        if s.proxy.count_method("PUT") >= puts {
            signal(&child, "KILL");
            let run = finish(child);
            assert_eq!(run.code, 137, "killed by SIGKILL");
            return true;
        }
        assert!(
            Instant::now() < deadline,
            "the sync neither progressed nor ended"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The target holds exactly one resource per public source event, each ours, none twice.
fn assert_exact(s: &Setup, when: &str) {
    let objects = s.radicale.list("public");
    let mut summaries = BTreeSet::new();
    let mut uids = BTreeSet::new();
    for o in &objects {
        let cal = support::ics::parse(&o.ics);
        for e in cal.events() {
            assert!(
                uids.insert(e.get("UID").unwrap().to_string()),
                "{when}: a UID twice"
            );
            assert!(
                summaries.insert(e.summary().to_string()),
                "{when}: {} twice",
                e.summary()
            );
            assert!(
                e.get("X-CALSYNC-TAG").is_some(),
                "{when}: an event without tag"
            );
            assert!(
                !e.summary().starts_with("Private"),
                "{when}: a private event leaked"
            );
        }
    }
    let want: BTreeSet<String> = (0..EVENTS).map(|i| format!("Public event {i}")).collect();
    assert_eq!(
        summaries, want,
        "{when}: the target is not exactly the public events"
    );
    assert_eq!(objects.len(), EVENTS as usize, "{when}: resources");
}

#[test]
fn killed_anywhere_the_next_runs_converge_without_duplicates() {
    let s = setup();
    // Kill points: before any write (during the read and planning), then at seeded PUT counts.
    let mut killed = 0;
    if sync_killed_after(&s, 0) {
        killed += 1;
    }
    for (i, p) in kill_points(20261129, 8, EVENTS as usize)
        .into_iter()
        .enumerate()
    {
        // Some responses get lost on the way back: the server did the write, calsync never
        // learns it, and must not create a second copy.
        if i % 3 == 1 {
            s.proxy
                .inject(Fault::LoseResponse, 2, Matching::any().method("PUT"));
        }
        if sync_killed_after(&s, s.proxy.count_method("PUT") + p / 4 + 1) {
            killed += 1;
        }
    }
    assert!(killed >= 5, "only {killed} runs were killed mid-sync");
    s.proxy.clear_faults();
    let run = s.cli.run(&["sync"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_exact(&s, "after the kills");

    // A run with nothing to do writes nothing.
    let writes = |s: &Setup| s.proxy.count_method("PUT") + s.proxy.count_method("DELETE");
    let before = writes(&s);
    let run = s.cli.run(&["sync"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(writes(&s), before, "a no-op run wrote");

    // The state file is lost: the mapping is rebuilt from the tags, nothing is duplicated.
    for f in ["calsync.db", "calsync.db-wal", "calsync.db-shm"] {
        let _ = std::fs::remove_file(s.cli.path(f));
    }
    let puts = s.proxy.count_method("PUT");
    let run = s.cli.run(&["sync"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.event("state.rebuilt").num("adopted"), EVENTS as u64);
    assert_eq!(
        s.proxy.count_method("PUT"),
        puts,
        "nothing rewritten after the rebuild"
    );
    assert_exact(&s, "after losing the state file");
}

#[test]
fn killed_runs_without_a_state_file_still_converge() {
    let s = setup();
    for p in kill_points(7, 4, EVENTS as usize) {
        // Each killed run also loses its state file: only the tags in the target remain.
        sync_killed_after(&s, s.proxy.count_method("PUT") + p / 3 + 1);
        for f in ["calsync.db", "calsync.db-wal", "calsync.db-shm"] {
            let _ = std::fs::remove_file(s.cli.path(f));
        }
    }
    let run = s.cli.run(&["sync"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_exact(&s, "after kills and lost state files");
}
