//! The configuration's and command line's edges on the real binary: every number has a
//! range, an unknown enum value names its key (with pair and line), a missing secret file
//! names each place looked, a failed feed names its pair and key but never its URL's path,
//! and state or secret files that others can read are warned about.

mod support;

use calsync::config::NUMBERS;
use calsync::exit;
use std::os::unix::fs::PermissionsExt;
use support::cli::{Cli, Run};
use support::http::{Response, TestServer};
use support::ics::{feed, timed};

const SOURCE: &str = "kind = \"ics\"\npath = \"feed.ics\"";
const TARGET: &str = "kind = \"ics\"\npath = \"public.ics\"";
/// A CalDAV side on a loopback port nothing listens on (a dry run is refused at once).
const CALDAV: &str = "kind = \"caldav\"\nurl = \"http://127.0.0.1:9/calendars/office/public/\"";
const NO_RETRIES: &str = "[net]\nretries = 0\nbackoff_ms = 1";

/// A config: top-level `tables`, one pair `parish` with `extra` keys and its two sides.
fn config(tables: &str, extra: &str, source: &str, target: &str) -> String {
    format!(
        "state = \"calsync.db\"\n{tables}\n[[pair]]\nname = \"parish\"\n{extra}\n\
         [pair.source]\n{source}\n[pair.target]\n{target}\n"
    )
}

fn ready(text: &str) -> Cli {
    let cli = Cli::new();
    cli.write("feed.ics", feed(&[timed("a@x", "Open day", 3, "")]));
    cli.write("calsync.toml", text);
    cli
}

fn config_error(run: &Run) -> String {
    assert_eq!(run.code, exit::CONFIG, "{}{}", run.stdout, run.stderr);
    run.event("config.invalid").msg
}

/// The config that writes `key` (a row of the numbers table) as `value`.
fn with_number(key: &str, value: i64) -> String {
    let (table, name) = key.split_once('.').unwrap();
    match table {
        "pair" => match name.split_once('.') {
            Some(("source", k)) => {
                config(NO_RETRIES, "", &format!("{CALDAV}\n{k} = {value}"), TARGET)
            }
            Some(("target", k)) => {
                config(NO_RETRIES, "", SOURCE, &format!("{CALDAV}\n{k} = {value}"))
            }
            _ => config("", &format!("{name} = {value}"), SOURCE, TARGET),
        },
        // The two percents of [health] must also keep their order.
        "health" if name == "failure_warn_percent" => config(
            &format!("[health]\n{name} = {value}\nfailure_fail_percent = 100"),
            "",
            SOURCE,
            TARGET,
        ),
        "health" if name == "failure_fail_percent" => config(
            &format!("[health]\n{name} = {value}\nfailure_warn_percent = 1"),
            "",
            SOURCE,
            TARGET,
        ),
        _ => config(&format!("[{table}]\n{name} = {value}"), "", SOURCE, TARGET),
    }
}

#[test]
fn every_number_out_of_range_is_78_naming_the_key_and_the_range() {
    for row in NUMBERS {
        let (_, name) = row.key.rsplit_once('.').unwrap();
        // The keys whose huge values used to panic (exit 101) get those too.
        let huge = [
            "pair.past_days",
            "pair.future_days",
            "pair.retention_days",
            "net.deadline_seconds",
        ]
        .contains(&row.key);
        let values = if huge {
            vec![row.max + 1, row.min - 1, 99_999_999_999, i64::MAX]
        } else {
            vec![row.max + 1, row.min - 1]
        };
        for value in values {
            let cli = ready(&with_number(row.key, value));
            let msg = config_error(&cli.run(&["sync"]));
            let range = format!(
                "from {} to {}",
                calsync_grouped(row.min),
                calsync_grouped(row.max)
            );
            assert!(
                msg.contains(&format!(".{name}")) || msg.contains(&format!("{name}:")),
                "{} = {value}: the key is not named: {msg}",
                row.key
            );
            assert!(
                msg.contains(&range),
                "{} = {value}: no range in {msg}",
                row.key
            );
            assert!(
                msg.contains("(line "),
                "{} = {value}: no line in {msg}",
                row.key
            );
            assert!(!cli.path("calsync.db").exists());
        }
        // The edges themselves are accepted: the largest runs (a dry run; a CalDAV side's
        // loopback port refuses, which is 75, not 78).
        let cli = ready(&with_number(row.key, row.max));
        let run = cli.run(&["sync", "--dry-run"]);
        assert_ne!(
            run.code,
            exit::CONFIG,
            "{} = {}: {}",
            row.key,
            row.max,
            run.stdout
        );
        assert_ne!(
            run.code, 101,
            "{} = {} panicked: {}",
            row.key, row.max, run.stderr
        );
        let parsed = calsync::config::parse(
            &cli.path("calsync.toml"),
            &with_number(row.key, row.min),
            None,
            &calsync::config::Environment::default(),
        );
        assert!(parsed.is_ok(), "{} = {}: {parsed:?}", row.key, row.min);
    }
    // The pair key is named with its pair.
    let cli = ready(&with_number("pair.past_days", 99_999_999_999));
    let msg = config_error(&cli.run(&["sync"]));
    assert!(
        msg.contains("pair 'parish'.past_days: must be a whole number from 0 to 3,650"),
        "{msg}"
    );
}

fn calsync_grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[test]
fn retention_days_out_of_range_on_the_command_line_is_a_usage_error() {
    let cli = ready(&config("", "", SOURCE, TARGET));
    for value in ["36501", "99999999999", "-1"] {
        let run = cli.run(&["cleanup", &format!("--retention-days={value}")]);
        assert_eq!(run.code, exit::USAGE, "{value}: {}", run.stderr);
        assert!(run.stderr.contains("--retention-days"), "{}", run.stderr);
        assert!(run.stderr.contains("0..=36500"), "{}", run.stderr);
    }
    let run = cli.run(&["cleanup", "--retention-days", "36500"]);
    assert_eq!(run.code, exit::OK, "{}", run.stdout);
}

#[test]
fn an_unknown_enum_value_names_its_key_pair_and_line() {
    let google = "kind = \"google\"\nservice_account_env = \"HOME\"\ncalendar_id = \"c\"";
    let cases: &[(&str, String, &str, &str)] = &[
        (
            "recurrence",
            config("", "recurrence = \"explode\"", SOURCE, TARGET),
            "pair 'parish'.recurrence",
            "'explode'",
        ),
        (
            "fields",
            config("", "fields = [\"title\",\n  \"attendees\"]", SOURCE, TARGET),
            "pair 'parish'.fields",
            "'attendees'",
        ),
        (
            "default_visibility",
            config(
                "",
                "",
                &format!("{google}\ndefault_visibility = \"maybe\""),
                TARGET,
            ),
            "pair 'parish'.source.default_visibility",
            "'maybe'",
        ),
        (
            "kind",
            config("", "", "kind = \"exchange\"", TARGET),
            "pair 'parish'.source.kind",
            "'exchange'",
        ),
    ];
    for (what, text, key, value) in cases {
        let mut cli = ready(text);
        cli.env("HOME", "/root");
        let msg = config_error(&cli.run(&["sync"]));
        assert!(msg.contains(key), "{what}: {key} is not named: {msg}");
        assert!(msg.contains(value), "{what}: {value} is not named: {msg}");
        let line = text
            .lines()
            .position(|l| l.contains(value.trim_matches('\'')))
            .unwrap()
            + 1;
        assert!(
            msg.contains(&format!("line {line}")) || msg.contains(&format!("line {}", line - 1)),
            "{what}: no line {line} in {msg}"
        );
        assert!(!msg.starts_with(&format!("{value}:")), "{what}: {msg}");
    }
}

#[test]
fn a_missing_secret_file_names_each_place_looked() {
    let feed_url = "kind = \"ics\"\nurl = \"https://feeds.example.org/f.ics\"\nusername = \"office\"\npassword_file = \"feed-password\"";
    let mut cli = ready(&config("", "", feed_url, TARGET));
    let msg = config_error(&cli.run(&["sync"]));
    let beside = cli.path("feed-password");
    assert!(msg.contains("pair 'parish'.source.password_file"), "{msg}");
    assert!(msg.contains("$CREDENTIALS_DIRECTORY (not set)"), "{msg}");
    assert!(
        msg.contains(&format!("beside the configuration ({})", beside.display())),
        "{msg}"
    );
    std::fs::create_dir(cli.path("creds")).unwrap();
    let creds = cli.path("creds");
    cli.env("CREDENTIALS_DIRECTORY", creds.to_str().unwrap());
    let msg = config_error(&cli.run(&["sync"]));
    assert!(
        msg.contains(&format!(
            "$CREDENTIALS_DIRECTORY ({})",
            creds.join("feed-password").display()
        )),
        "{msg}"
    );
    assert!(msg.contains("beside the configuration"), "{msg}");
}

#[test]
fn a_failed_feed_is_named_by_pair_key_and_origin_never_by_its_path() {
    let server = TestServer::start(|_| Response::text(404, "not found"));
    let secret_path = "/calendars/private-9f8e7d6c5b4a/basic.ics";
    let url = format!("{}{secret_path}", server.url());
    let mut cli = ready(&config(
        "[net]\nretries = 0\nbackoff_ms = 1",
        "",
        &format!("kind = \"ics\"\nurl = \"{url}\""),
        TARGET,
    ));
    cli.env("RUST_LOG", "debug");
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::FAILED, "{}", run.stdout);
    let failed = run.event("pair.failed");
    for words in ["pair 'parish'", "source.url", &server.url(), "HTTP 404"] {
        assert!(
            failed.msg.contains(words),
            "{words:?} not in {}",
            failed.msg
        );
    }
    assert!(
        !run.all_output().contains("private-9f8e7d6c5b4a"),
        "the feed's path reached the log:\n{}",
        run.all_output()
    );
    assert!(!cli.read("calsync.toml").is_empty());
}

#[test]
fn state_and_secret_files_others_can_read_are_warned_about_every_run_and_by_health() {
    let cli = ready(&format!(
        "audit_key_file = \"audit.key\"\n{}",
        config("", "", SOURCE, TARGET)
    ));
    cli.write("audit.key", [7u8; 32]);
    let chmod = |rel: &str, mode: u32| {
        std::fs::set_permissions(cli.path(rel), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    chmod("audit.key", 0o600);
    let warned = |run: &Run| -> Vec<String> {
        run.log()
            .into_iter()
            .filter(|l| l.event.as_deref() == Some("file.readable_by_others"))
            .map(|l| l.str("path").unwrap().to_string())
            .collect()
    };
    let first = cli.run(&["sync"]);
    assert_eq!(first.code, exit::OK, "{}", first.stdout);
    assert_eq!(warned(&first), Vec::<String>::new());

    chmod("calsync.db", 0o644);
    chmod("audit.key", 0o640);
    for _ in 0..2 {
        let run = cli.run(&["sync"]);
        assert_eq!(run.code, exit::OK);
        let paths = warned(&run);
        assert_eq!(paths.len(), 2, "{}", run.stdout);
        assert!(paths.iter().any(|p| p.ends_with("calsync.db")), "{paths:?}");
        assert!(paths.iter().any(|p| p.ends_with("audit.key")), "{paths:?}");
    }
    let health = cli.run(&["health", "--offline"]);
    assert_eq!(health.code, exit::health::WARN, "{}", health.stdout);
    let doc: serde_json::Value = serde_json::from_str(&health.stdout).unwrap();
    for check in ["state:file", "secrets:file"] {
        assert_eq!(
            doc["checks"][check][0]["status"], "warn",
            "{check}: {doc:#}"
        );
    }
    assert!(
        doc["checks"]["secrets:file"][0]["output"]
            .as_str()
            .unwrap()
            .contains("audit.key")
    );

    chmod("calsync.db", 0o600);
    chmod("audit.key", 0o600);
    assert_eq!(warned(&cli.run(&["sync"])), Vec::<String>::new());
    let doc: serde_json::Value =
        serde_json::from_str(&cli.run(&["health", "--offline"]).stdout).unwrap();
    assert_eq!(doc["checks"]["secrets:file"][0]["status"], "pass");
    assert_eq!(doc["checks"]["state:file"][0]["status"], "pass");
}
