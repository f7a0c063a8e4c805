//! The state file's edges on the real binary: its identity (calsync's SQLite application id,
//! and how a file of an earlier calsync without one is still recognised), paths that cannot
//! hold it (a missing folder, a folder, no permission), the run lock by real path, and the
//! warning about a state or secret file others can read.

mod support;

use calsync::exit;
use calsync::store::APPLICATION_ID;
use rusqlite::Connection;
use std::os::unix::fs::PermissionsExt;
use support::cli::{Cli, Run};
use support::ics::{feed, timed};

const PAIR: &str = "[[pair]]\nname = \"parish\"\n[pair.source]\nkind = \"ics\"\npath = \"feed.ics\"\n[pair.target]\nkind = \"ics\"\npath = \"public.ics\"\n";

fn ready() -> Cli {
    let cli = Cli::new();
    cli.write("feed.ics", feed(&[timed("a@x", "Open day", 3, "")]));
    cli.write("calsync.toml", format!("state = \"calsync.db\"\n{PAIR}"));
    cli
}

fn pragma(path: &std::path::Path, name: &str) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
        .unwrap()
}

/// The files in the temp folder besides the config and the feed.
fn created(cli: &Cli) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cli.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !["calsync.toml", "feed.ics", "state"].contains(&n.as_str()))
        .collect();
    names.sort();
    names
}

fn refused(run: &Run, path: &str, words: &str) {
    assert_eq!(run.code, exit::CONFIG, "{}{}", run.stdout, run.stderr);
    let line = run.event("state.unusable");
    assert!(
        line.msg.contains(path),
        "the path is not named: {}",
        line.msg
    );
    assert!(line.msg.contains(words), "{words:?} not in {}", line.msg);
}

#[test]
fn another_programs_database_is_refused_and_left_byte_identical() {
    let cli = ready();
    let foreign = cli.path("calsync.db");
    // What the newcomer had: an application's SQLite file at user_version 1.
    {
        let c = Connection::open(&foreign).unwrap();
        c.execute_batch(
            "PRAGMA user_version = 1;
             CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT);
             INSERT INTO notes (text) VALUES ('buy candles'), ('call the organist');",
        )
        .unwrap();
    }
    let bytes = std::fs::read(&foreign).unwrap();
    for args in [&["sync"][..], &["sync", "--dry-run"], &["cleanup"]] {
        let run = cli.run(args);
        refused(&run, "calsync.db", "not a calsync state file");
        assert_eq!(
            std::fs::read(&foreign).unwrap(),
            bytes,
            "{args:?} changed it"
        );
        assert!(!cli.path("calsync.db-wal").exists(), "{args:?} made it WAL");
    }
    assert!(!cli.path("public.ics").exists());
    assert_eq!(created(&cli), ["calsync.db", "calsync.db.lock"]);

    // Another program's application id, even over calsync's very schema.
    let other = cli.path("other.db");
    let fresh = ready();
    assert_eq!(fresh.run(&["sync"]).code, exit::OK);
    std::fs::copy(fresh.path("calsync.db"), &other).unwrap();
    {
        let c = Connection::open(&other).unwrap();
        c.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA application_id = 252006674;")
            .unwrap();
    }
    let bytes = std::fs::read(&other).unwrap();
    let run = cli.run(&["sync", "--state", other.to_str().unwrap()]);
    refused(
        &run,
        "other.db",
        "another program (application_id 0x0f055112)",
    );
    assert_eq!(std::fs::read(&other).unwrap(), bytes);
}

#[test]
fn a_new_state_file_carries_calsyncs_application_id() {
    let cli = ready();
    assert_eq!(cli.run(&["sync"]).code, exit::OK);
    assert_eq!(
        pragma(&cli.path("calsync.db"), "application_id"),
        i64::from(APPLICATION_ID)
    );
}

#[test]
fn a_state_file_of_an_earlier_calsync_is_recognised_by_its_schema_and_marked() {
    let cli = ready();
    assert_eq!(cli.run(&["sync"]).code, exit::OK);
    let state = cli.path("calsync.db");
    // As calsync wrote it before it set an application id: schema 1 (with the tombstones
    // migration 2 drops, without what migrations 2-4 add), no id.
    {
        let c = Connection::open(&state).unwrap();
        c.execute_batch(
            "DROP INDEX intent_by_item;
             ALTER TABLE run DROP COLUMN withdrawn;
             DROP INDEX staged_item_by_source;
             CREATE TABLE tombstone (
                 pair TEXT NOT NULL,
                 item_key TEXT NOT NULL,
                 target_id TEXT NOT NULL,
                 deleted_at INTEGER NOT NULL,
                 PRIMARY KEY (pair, item_key)
             ) WITHOUT ROWID;
             PRAGMA user_version = 1;
             PRAGMA application_id = 0;",
        )
        .unwrap();
    }
    assert_eq!(pragma(&state, "application_id"), 0);

    // A dry run reads it, and leaves it as it is.
    let bytes = std::fs::read(&state).unwrap();
    let dry = cli.run(&["sync", "--dry-run"]);
    assert_eq!(dry.code, exit::OK, "{}", dry.stdout);
    assert_eq!(std::fs::read(&state).unwrap(), bytes);

    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::OK, "{}", run.stdout);
    assert!(run.has_event("state.marked"), "{}", run.stdout);
    assert_eq!(pragma(&state, "application_id"), i64::from(APPLICATION_ID));
    assert_eq!(
        pragma(&state, "user_version"),
        calsync::store::SCHEMA_VERSION
    );
    // The mapping survived: nothing to create again.
    let finished = run.event("pair.finished");
    assert_eq!(finished.num("created"), 0);
    assert_eq!(finished.num("unchanged"), 1);

    // One table more than calsync ever made, and it is not calsync's.
    {
        let c = Connection::open(&state).unwrap();
        c.execute_batch("PRAGMA application_id = 0; CREATE TABLE extra (x);")
            .unwrap();
    }
    refused(
        &cli.run(&["sync"]),
        "calsync.db",
        "not a calsync state file",
    );
}

#[test]
fn a_state_path_in_a_missing_folder_or_naming_a_folder_is_78_and_creates_nothing() {
    let cli = ready();
    let missing = cli.path("nowhere/calsync.db");
    for args in [&["sync"][..], &["sync", "--dry-run"], &["cleanup"]] {
        let mut all = args.to_vec();
        all.extend(["--state", missing.to_str().unwrap()]);
        let run = cli.run(&all);
        refused(&run, "nowhere/calsync.db", "the folder");
        assert!(run.event("state.unusable").msg.contains("does not exist"));
    }
    assert!(!cli.path("nowhere").exists(), "the folder was created");
    assert_eq!(
        created(&cli),
        Vec::<String>::new(),
        "no state, no audit key"
    );

    std::fs::create_dir(cli.path("folder")).unwrap();
    let run = cli.run(&["sync", "--state", cli.path("folder").to_str().unwrap()]);
    refused(&run, "folder", "is a folder, not a file");
    assert_eq!(std::fs::read_dir(cli.path("folder")).unwrap().count(), 0);
    assert!(!cli.path("public.ics").exists());
}

#[test]
fn a_state_path_calsync_may_not_write_is_78() {
    let cli = ready();
    std::fs::create_dir(cli.path("locked")).unwrap();
    std::fs::set_permissions(cli.path("locked"), std::fs::Permissions::from_mode(0o555)).unwrap();
    // The target is written to a folder the unprivileged user may write.
    std::fs::create_dir(cli.path("www")).unwrap();
    std::fs::set_permissions(cli.path("www"), std::fs::Permissions::from_mode(0o777)).unwrap();
    cli.write(
        "calsync.toml",
        PAIR.replace("path = \"public.ics\"", "path = \"www/public.ics\""),
    );
    for f in ["calsync.toml", "feed.ics"] {
        std::fs::set_permissions(cli.path(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let in_locked = cli.path("locked/calsync.db");
    let run = cli.run_unprivileged(&["sync", "--state", in_locked.to_str().unwrap()]);
    refused(&run, "locked/calsync.db", "Permission denied");
    assert!(!in_locked.exists());

    // A state file that exists but may not be written (the folder may be).
    std::fs::create_dir(cli.path("open")).unwrap();
    std::fs::set_permissions(cli.path("open"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let read_only = cli.path("open/calsync.db");
    std::fs::write(&read_only, b"").unwrap();
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o444)).unwrap();
    let run = cli.run_unprivileged(&["sync", "--state", read_only.to_str().unwrap()]);
    refused(&run, "open/calsync.db", "cannot be opened for writing");
    assert_eq!(std::fs::read(&read_only).unwrap(), b"");
    assert!(!cli.path("www/public.ics").exists());
}

#[test]
fn a_symlink_or_another_spelling_of_the_state_file_takes_the_same_lock() {
    let cli = ready();
    std::fs::create_dir(cli.path("sub")).unwrap();
    assert_eq!(cli.run(&["sync"]).code, exit::OK);
    std::os::unix::fs::symlink(cli.path("calsync.db"), cli.path("alias.db")).unwrap();
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(cli.path("calsync.db.lock"))
        .unwrap();
    lock.try_lock().expect("the test takes the lock");
    for spelling in ["alias.db", "./calsync.db", "sub/../calsync.db"] {
        let run = cli.run(&["sync", "--state", spelling]);
        assert_eq!(run.code, exit::TEMPFAIL, "{spelling}: {}", run.stdout);
        assert!(run.has_event("state.locked"), "{spelling}");
    }
    drop(lock);
    let run = cli.run(&["sync", "--state", "alias.db"]);
    assert_eq!(run.code, exit::OK, "{}", run.stdout);
    assert!(
        std::fs::symlink_metadata(cli.path("alias.db"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(!cli.path("alias.db.lock").exists());
}
