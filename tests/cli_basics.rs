//! The command line's promises that hold before any event moves: usage and config errors and
//! their exit codes, the state file's lock, mode and refusals.

mod support;

use calsync::exit;
use support::cli::Cli;
use support::ics::{feed, timed};

const PAIR: &str = "[[pair]]\nname = \"parish\"\n[pair.source]\nkind = \"ics\"\npath = \"feed.ics\"\n[pair.target]\nkind = \"ics\"\npath = \"public.ics\"\n";

fn ready(config: &str) -> Cli {
    let cli = Cli::new();
    cli.write("feed.ics", feed(&[timed("a@x", "Open day", 3, "")]));
    cli.write("calsync.toml", config);
    cli
}

#[test]
fn config_errors_exit_78_and_name_the_key() {
    let cases: &[(&str, String, &str)] = &[
        ("unknown key", format!("state = \"s.db\"\nretention = 3\n{PAIR}"), "retention"),
        ("unknown pair key", PAIR.replace("name = \"parish\"", "name = \"parish\"\nmax_delete_pct = 5"), "max_delete_pct"),
        ("bad pair name", PAIR.replace("\"parish\"", "\"Parish Hall\""), "pair[0].name"),
        (
            "inline secret",
            PAIR.replace("kind = \"ics\"\npath = \"feed.ics\"", "kind = \"caldav\"\nurl = \"https://dav.example.org/c/\"\nusername = \"u\"\npassword = \"hunter2\""),
            "password_file",
        ),
        (
            "missing secret file",
            PAIR.replace("kind = \"ics\"\npath = \"feed.ics\"", "kind = \"caldav\"\nurl = \"https://dav.example.org/c/\"\nusername = \"u\"\npassword_file = \"nope.txt\""),
            "password_file",
        ),
        ("plain http", PAIR.replace("path = \"feed.ics\"", "url = \"http://intranet.example.org/feed.ics\""), "source.url"),
        ("not toml", "[[pair]\nname=".to_string(), "calsync.toml"),
    ];
    for (what, text, key) in cases {
        let cli = ready(text);
        let run = cli.run(&["sync"]);
        assert_eq!(
            run.code,
            exit::CONFIG,
            "{what}: {}{}",
            run.stdout,
            run.stderr
        );
        let line = run.event("config.invalid");
        assert!(
            line.msg.contains(key),
            "{what}: the key {key:?} is not named in {:?}",
            line.msg
        );
        assert!(
            line.msg.contains("calsync.toml"),
            "{what}: the file is not named"
        );
        assert!(
            !run.all_output().contains("hunter2"),
            "{what}: a secret was echoed"
        );
        assert!(
            !cli.path("s.db").exists() && !cli.path("calsync.db").exists(),
            "{what}: state created"
        );
    }
}

#[test]
fn a_missing_config_file_is_78() {
    let cli = Cli::new();
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::CONFIG);
    assert!(run.event("config.invalid").msg.contains("calsync.toml"));
}

#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    let cli = ready(PAIR);
    assert_eq!(cli.run(&["sync", "--no-such-flag"]).code, exit::USAGE);
    assert_eq!(cli.run(&["frobnicate"]).code, exit::USAGE);
    assert_eq!(cli.run(&[]).code, exit::USAGE);
    let run = cli.run(&["sync", "--pair", "school"]);
    assert_eq!(run.code, exit::USAGE);
    assert!(run.event("usage.invalid").msg.contains("school"));
    let help = cli.run(&["--help"]);
    assert_eq!(help.code, exit::OK);
    assert!(help.stdout.contains("sync"));
    assert_eq!(cli.run(&["--version"]).code, exit::OK);
    // Global options go after the command too.
    let run = cli.run_raw(&[
        "sync",
        "--config",
        cli.path("calsync.toml").to_str().unwrap(),
        "--pair",
        "parish",
    ]);
    assert_eq!(run.code, exit::OK, "{}", run.stdout);
}

#[test]
fn the_state_file_is_private_and_flags_and_env_choose_it() {
    use std::os::unix::fs::PermissionsExt;
    let mut cli = ready(&format!("state = \"from-config.db\"\n{PAIR}"));
    assert_eq!(cli.run(&["sync"]).code, exit::OK);
    let mode = std::fs::metadata(cli.path("from-config.db"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let key = std::fs::metadata(cli.path("audit.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(key, 0o600);
    cli.env("CALSYNC_STATE", cli.path("from-env.db").to_str().unwrap());
    assert_eq!(cli.run(&["sync"]).code, exit::OK);
    assert!(cli.path("from-env.db").exists());
    let flag = cli.path("from-flag.db");
    assert_eq!(
        cli.run(&["sync", "--state", flag.to_str().unwrap()]).code,
        exit::OK
    );
    assert!(flag.exists());
}

#[test]
fn a_second_run_while_one_holds_the_lock_exits_75() {
    let cli = ready(&format!("state = \"calsync.db\"\n{PAIR}"));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(cli.path("calsync.db.lock"))
        .unwrap();
    lock.try_lock().expect("the test takes the lock");
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::TEMPFAIL, "{}", run.stdout);
    assert!(run.has_event("state.locked"));
    assert!(!cli.path("public.ics").exists());
    drop(lock);
    assert_eq!(cli.run(&["sync"]).code, exit::OK);
}

#[test]
fn a_corrupt_state_file_is_78_and_left_untouched() {
    let cli = ready(&format!("state = \"calsync.db\"\n{PAIR}"));
    let garbage = b"SQLite format 3\0 but then the disk ate it ".repeat(100);
    cli.write("calsync.db", &garbage);
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::CONFIG, "{}", run.stdout);
    assert!(run.event("state.unusable").msg.contains("calsync.db"));
    assert_eq!(std::fs::read(cli.path("calsync.db")).unwrap(), garbage);
    assert!(!cli.path("public.ics").exists());
}

#[test]
fn a_pair_that_cannot_reach_its_remote_fails_alone_and_the_others_run() {
    // Nothing listens on port 1: the Microsoft 365 pair cannot get a token.
    let text = format!(
        "state = \"calsync.db\"\n[net]\nretries = 0\n{PAIR}\n[[pair]]\nname = \"office\"\n[pair.source]\nkind = \"graph\"\n\
         tenant_id = \"contoso\"\nclient_id = \"app\"\nclient_secret_env = \"HOME\"\nuser = \"office@example.org\"\n\
         token_url = \"http://127.0.0.1:1/token\"\nbase_url = \"http://127.0.0.1:1/v1.0\"\n\
         [pair.target]\nkind = \"ics\"\npath = \"office.ics\"\n"
    );
    let cli = ready(&text);
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::TEMPFAIL, "{}", run.stdout);
    let failed = run.event("pair.failed");
    assert_eq!(failed.pair.as_deref(), Some("office"));
    assert!(failed.msg.contains("127.0.0.1:1"), "{}", failed.msg);
    assert!(!failed.msg.contains("office@example.org"), "{}", failed.msg);
    assert!(cli.path("public.ics").exists(), "the other pair ran");
}
