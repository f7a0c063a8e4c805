//! `--dry-run` means what its help says: plan, report every create, update and delete by id,
//! and change nothing — no target write, no state file, lock or audit key created, no cursor,
//! mapping, history, API-call record, breaker state or pruning written. The whole folder is
//! snapshotted (names and bytes) before and after.

mod support;

use std::collections::BTreeMap;
use support::cli::{Cli, Run};
use support::ics::{feed, timed};

fn config() -> String {
    "state = \"state/calsync.db\"\n\n[[pair]]\nname = \"parish\"\n\
     [pair.source]\nkind = \"ics\"\npath = \"feed.ics\"\n\n\
     [pair.target]\nkind = \"ics\"\npath = \"public.ics\"\n"
        .to_string()
}

/// Every file under the folder, by relative path, with its bytes.
fn snapshot(cli: &Cli) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(cli.dir(), cli.dir(), &mut out);
    out
}

/// The `plan.action` lines of a run as (action, item) pairs, sorted.
fn actions(run: &Run) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = run
        .log()
        .iter()
        .filter(|l| l.event.as_deref() == Some("plan.action"))
        .map(|l| {
            (
                l.str("action").unwrap().to_string(),
                l.str("item").unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn events(titles: &[(&str, &str)]) -> String {
    feed(
        &titles
            .iter()
            .enumerate()
            .map(|(i, (uid, title))| timed(uid, title, 3 + i as i64, ""))
            .collect::<Vec<_>>(),
    )
}

#[test]
fn a_dry_run_on_a_machine_that_never_synced_leaves_no_file_behind() {
    let cli = Cli::new();
    cli.write("calsync.toml", config());
    cli.write("feed.ics", events(&[("a@x", "Alpha"), ("b@x", "Beta")]));
    std::fs::create_dir(cli.path("state")).unwrap();
    let before = snapshot(&cli);

    let run = cli.run(&["sync", "--dry-run"]);
    assert_eq!(run.code, calsync::exit::OK, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        actions(&run),
        [
            ("create".to_string(), "a@x".to_string()),
            ("create".to_string(), "b@x".to_string())
        ]
    );
    assert_eq!(run.event("sync.finished").num("created"), 2);
    assert_eq!(snapshot(&cli), before, "the dry run left something behind");
    assert!(
        std::fs::read_dir(cli.path("state"))
            .unwrap()
            .next()
            .is_none(),
        "no state file, lock, WAL or audit key"
    );
}

#[test]
fn a_dry_run_reports_creates_updates_and_deletes_and_changes_no_byte() {
    let cli = Cli::new();
    cli.write("calsync.toml", config());
    cli.write(
        "feed.ics",
        events(&[("a@x", "Alpha"), ("b@x", "Beta"), ("c@x", "Gamma")]),
    );
    let first = cli.run(&["sync"]);
    assert_eq!(first.code, calsync::exit::OK, "{}", first.stdout);

    // Beta renamed, Gamma gone, Delta new.
    cli.write(
        "feed.ics",
        events(&[("a@x", "Alpha"), ("b@x", "Beta renamed"), ("d@x", "Delta")]),
    );
    let before = snapshot(&cli);
    assert!(before.contains_key("state/calsync.db"));
    assert!(
        before.keys().any(|k| k.ends_with(".key")),
        "{:?}",
        before.keys()
    );

    let run = cli.run(&["sync", "--dry-run"]);
    assert_eq!(run.code, calsync::exit::OK, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        actions(&run),
        [
            ("create".to_string(), "d@x".to_string()),
            ("delete".to_string(), "c@x".to_string()),
            ("update".to_string(), "b@x".to_string()),
        ]
    );
    // Updates and deletes name the target's id too.
    let update = run
        .log()
        .into_iter()
        .find(|l| l.str("action") == Some("update"))
        .unwrap();
    assert!(
        update
            .str("target_id")
            .is_some_and(|t| t.ends_with("@calsync"))
    );
    assert!(run.has_event("target.would_write"));
    let finished = run.event("pair.finished");
    assert_eq!(
        (
            finished.num("created"),
            finished.num("updated"),
            finished.num("deleted")
        ),
        (1, 1, 1)
    );
    assert_eq!(finished.str("outcome"), Some("dry_run"));
    assert_eq!(snapshot(&cli), before, "the dry run changed a byte");

    // The real run then does exactly what the dry run said.
    let real = cli.run(&["sync"]);
    assert_eq!(real.code, calsync::exit::OK);
    let done = real.event("pair.finished");
    assert_eq!(
        (
            done.num("created"),
            done.num("updated"),
            done.num("deleted")
        ),
        (1, 1, 1)
    );
}

#[test]
fn a_dry_run_does_not_wait_for_nor_take_the_run_lock() {
    let cli = Cli::new();
    cli.write("calsync.toml", config());
    cli.write("feed.ics", events(&[("a@x", "Alpha")]));
    assert_eq!(cli.run(&["sync"]).code, calsync::exit::OK);
    // Another run holds the lock (a file lock held by this test process).
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(cli.path("state/calsync.db.lock"))
        .unwrap();
    lock.try_lock().unwrap();
    assert_eq!(cli.run(&["sync"]).code, calsync::exit::TEMPFAIL);
    let dry = cli.run(&["sync", "--dry-run"]);
    assert_eq!(dry.code, calsync::exit::OK, "{}{}", dry.stdout, dry.stderr);
}
