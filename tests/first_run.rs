//! What a newcomer meets first, on the real binary: the bundled demo runs clean and its
//! summaries add up (`pair.finished`, `sync.finished`, the metrics file, `history`).

mod support;

use calsync::exit;
use serde_json::Value;
use std::path::PathBuf;
use support::cli::{Cli, LogLine, Run};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of `examples/` in a temp folder, as a fresh clone has it.
fn demo() -> Cli {
    let cli = Cli::new();
    for name in ["demo.toml", "demo-source.ics"] {
        std::fs::copy(
            repo().join("examples").join(name),
            cli.path("examples").join(name).tap_mkdir(),
        )
        .unwrap();
    }
    std::fs::create_dir_all(cli.path("examples/out")).unwrap();
    cli
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(self.parent().unwrap()).unwrap();
        self
    }
}

fn run_demo(cli: &Cli, args: &[&str]) -> Run {
    let mut all = vec!["--config", "examples/demo.toml"];
    all.extend_from_slice(args);
    cli.run_raw(&all)
}

/// The lines above `info`, less the one-time note that the audit key was created.
fn complaints(run: &Run) -> Vec<String> {
    run.log()
        .into_iter()
        .filter(|l| l.level != "info" && l.level != "debug")
        .filter(|l| l.event.as_deref() != Some("audit.key_created"))
        .map(|l| format!("{:?}: {}", l.event, l.msg))
        .collect()
}

/// `withheld` and its parts `withheld_<part>` of a summary line.
fn assert_parts_sum(line: &LogLine) {
    let parts: u64 = line
        .fields
        .iter()
        .filter(|(k, _)| k.starts_with("withheld_"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    let names: Vec<&String> = line
        .fields
        .keys()
        .filter(|k| k.starts_with("withheld_"))
        .collect();
    assert_eq!(names.len(), 6, "{:?}: parts {names:?}", line.event);
    assert_eq!(
        line.num("withheld"),
        parts,
        "{:?}: {:?}",
        line.event,
        line.fields
    );
}

#[test]
fn the_demo_runs_clean_and_its_summaries_add_up() {
    let cli = demo();
    // With a metrics file, so its numbers are checked too.
    let config = std::fs::read_to_string(cli.path("examples/demo.toml")).unwrap();
    cli.write(
        "examples/demo.toml",
        config.replace(
            "state = \"out/calsync.db\"\n",
            "state = \"out/calsync.db\"\nmetrics_file = \"out/calsync.prom\"\n",
        ),
    );
    let first = run_demo(&cli, &["sync"]);
    assert_eq!(first.code, exit::OK, "{}", first.stdout);
    assert_eq!(
        complaints(&first),
        Vec::<String>::new(),
        "the demo's sync complains"
    );
    let pair = first.event("pair.finished");
    assert!(pair.num("withheld") > 0, "the demo withholds nothing?");
    assert_parts_sum(&pair);
    assert_parts_sum(&first.event("sync.finished"));
    assert!(cli.path("examples/out/public.ics").exists());

    // The metrics file: the reasons add up to the withheld count.
    let prom = std::fs::read_to_string(cli.path("examples/out/calsync.prom")).unwrap();
    let sample = |prefix: &str| -> f64 {
        prom.lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    let whole = sample("calsync_pair_last_run_events{pair=\"demo\",result=\"withheld\"}");
    let parts = sample("calsync_pair_last_run_withheld_events{pair=\"demo\",");
    assert_eq!(whole, pair.num("withheld") as f64, "{prom}");
    assert_eq!(parts, whole, "{prom}");

    let again = run_demo(&cli, &["sync"]);
    assert_eq!(again.code, exit::OK);
    assert_eq!(
        complaints(&again),
        Vec::<String>::new(),
        "the second sync complains"
    );
    let dry = run_demo(&cli, &["sync", "--dry-run"]);
    assert_eq!(dry.code, exit::OK);
    let cleanup = run_demo(&cli, &["cleanup"]);
    assert_eq!(cleanup.code, exit::OK, "{}", cleanup.stdout);
    assert_eq!(
        complaints(&cleanup),
        Vec::<String>::new(),
        "cleanup warns about the demo's settings"
    );

    // history: every total is the sum of its parts.
    let history = run_demo(&cli, &["history", "--format", "json"]);
    assert_eq!(history.code, exit::OK, "{}", history.stderr);
    let doc: Value = serde_json::from_str(&history.stdout).unwrap();
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    let s = &doc["summary"];
    assert_eq!(n(s, "runs"), 3, "two syncs and a cleanup: {s}");
    assert_eq!(
        n(s, "runs"),
        n(s, "ok") + n(s, "failed") + n(s, "running") + n(s, "dry_run"),
        "{s}"
    );
    for period in [&doc["trend"]["current"], &doc["trend"]["previous"]] {
        assert_eq!(
            n(period, "runs"),
            n(period, "ok") + n(period, "failed") + n(period, "other")
        );
    }
    for hour in doc["hourly"].as_array().unwrap() {
        assert_eq!(
            n(hour, "runs"),
            n(hour, "ok") + n(hour, "failed") + n(hour, "other")
        );
    }
}

/// Runs calsync on a terminal (a pseudo-terminal from util-linux's `script`), as a person
/// at a shell would, and returns what the terminal showed, line ends normalised.
fn on_a_terminal(cli: &Cli, args: &[&str]) -> (i32, String) {
    let mut command = String::from(env!("CARGO_BIN_EXE_calsync"));
    for a in args {
        command.push(' ');
        command.push_str(a);
    }
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(cli.dir())
        .env_remove("RUST_LOG")
        .env_remove("CALSYNC_CONFIG")
        .env_remove("CALSYNC_STATE")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running script (util-linux)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n"),
    )
}

#[test]
fn report_commands_on_a_terminal_show_the_table_first_and_plain_notes_after_it() {
    let cli = demo();
    assert_eq!(run_demo(&cli, &["sync"]).code, exit::OK);
    let published = cli.path("examples/out/public.ics");
    let text = std::fs::read_to_string(&published).unwrap();
    std::fs::write(&published, text.replacen("SUMMARY:", "SUMMARY:Hacked ", 1)).unwrap();

    let (code, shown) = on_a_terminal(&cli, &["--config", "examples/demo.toml", "validate"]);
    assert_eq!(code, exit::FAILED, "{shown}");
    assert!(!shown.contains("{\""), "JSON on a terminal:\n{shown}");
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines[0], "calsync validate: fail", "{shown}");
    let table_end = lines
        .iter()
        .position(|l| l.starts_with("demo  fields_equal"))
        .expect("the table");
    let note = lines
        .iter()
        .position(|l| *l == "warning: check failed (pair demo, check fields_equal, events 1)")
        .unwrap_or_else(|| panic!("no plain note:\n{shown}"));
    assert!(note > table_end, "the note is above the table:\n{shown}");

    // What stops a report command reads as one plain line too.
    let (code, shown) = on_a_terminal(&cli, &["--config", "nowhere.toml", "history"]);
    assert_eq!(code, exit::CONFIG, "{shown}");
    assert!(shown.trim().starts_with("error: nowhere.toml"), "{shown}");
    assert!(!shown.contains("{\""), "{shown}");

    // Not on a terminal: the report is JSON and the log lines JSON, as before.
    let piped = run_demo(&cli, &["validate"]);
    assert_eq!(piped.code, exit::FAILED);
    let _: Value = serde_json::from_str(&piped.stdout).expect("a JSON report");
    assert!(
        piped
            .stderr_log()
            .iter()
            .any(|l| l.event.as_deref() == Some("validate.failed_check"))
    );
}
