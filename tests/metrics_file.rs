//! The metrics file (`metrics_file`) as node_exporter's textfile collector will read it.
//!
//! The real binary syncs, and the file it wrote is checked by `tests/support/promcheck.py`:
//! parsed by the Prometheus project's Python client (not by calsync) and held to the rules
//! the collector and `promtool check metrics` apply (HELP and TYPE per family, no timestamps,
//! escapes, no duplicates). The numbers in it are then compared with what the run logged.
//! `scripts/test.sh` installs the pinned prometheus_client into `.venv-test/`; without it these
//! tests fail and say so, they never skip.

mod support;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::cli::{Cli, Run};
use support::http::{Request, Response, TestServer};
use support::ics::{feed, timed};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Exposition {
    families: BTreeMap<String, Family>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Family {
    #[serde(rename = "type")]
    kind: String,
    help: String,
    samples: Vec<Sample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

impl Exposition {
    /// The value of the one sample of `family` with exactly these labels.
    fn value(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(family, labels).unwrap_or_else(|| {
            panic!(
                "no sample {family}{labels:?} in {:#?}",
                self.families.get(family)
            )
        })
    }

    fn find(&self, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.families
            .get(family)?
            .samples
            .iter()
            .find(|s| s.labels == want)
            .map(|s| s.value)
    }
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CALSYNC_TEST_PYTHON") {
        return p.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-test/bin/python");
    assert!(
        venv.exists(),
        "no Python with prometheus_client to check the metrics file: run scripts/test.sh \
         (it installs the pinned prometheus_client into .venv-test/)"
    );
    venv
}

/// Runs the independent checker on a file: its parse, or its complaints.
fn promcheck(path: &Path) -> Result<Exposition, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/promcheck.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(path)
        .output()
        .expect("running tests/support/promcheck.py");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    match out.status.code() {
        Some(0) => Ok(serde_json::from_slice(&out.stdout).expect("promcheck prints JSON")),
        Some(1) => Err(stderr),
        _ => panic!(
            "the metrics checker could not run ({}): {stderr}",
            out.status
        ),
    }
}

/// Checks calsync's file and the promises that hold for every family it writes.
fn read_metrics(cli: &Cli) -> Exposition {
    let path = cli.path("textfile/calsync.prom");
    let text = std::fs::read_to_string(&path).expect("the metrics file was written");
    let exposition =
        promcheck(&path).unwrap_or_else(|e| panic!("not valid exposition text: {e}\n{text}"));
    for (name, family) in &exposition.families {
        assert!(name.starts_with("calsync_"), "{name}");
        assert_eq!(family.kind, "gauge", "{name}");
        assert!(!family.help.is_empty(), "{name} has no HELP text");
        assert!(!family.samples.is_empty(), "{name} has no samples");
        assert!(family.samples.iter().all(|s| s.name == *name), "{name}");
    }
    // No temp file is left beside it for the collector to trip over.
    let leftovers: Vec<_> = std::fs::read_dir(cli.path("textfile"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "calsync.prom")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    exposition
}

fn now() -> f64 {
    chrono::Utc::now().timestamp() as f64
}

/// A config with `metrics_file` and the given pairs (name, source lines).
fn config(pairs: &[(&str, String)]) -> String {
    let mut text = String::from(
        "state = \"state/calsync.db\"\nmetrics_file = \"textfile/calsync.prom\"\n\n\
         [net]\nretries = 1\nbackoff_ms = 10\n",
    );
    for (name, source) in pairs {
        text.push_str(&format!(
            "\n[[pair]]\nname = \"{name}\"\n[pair.source]\nkind = \"ics\"\n{source}\n\
             [pair.target]\nkind = \"ics\"\npath = \"{name}.ics\"\n"
        ));
    }
    text
}

fn sync(cli: &Cli, args: &[&str]) -> Run {
    let mut all = vec!["sync"];
    all.extend_from_slice(args);
    cli.run(&all)
}

#[test]
fn a_sync_writes_a_strict_metrics_file_with_the_runs_numbers() {
    let body = feed(&[
        timed("open@parish", "Open day", 5, "CLASS:PUBLIC"),
        timed("fete@parish", "Summer fete", 9, ""),
        timed("salary@parish", "Salary review", 6, "CLASS:PRIVATE"),
        timed("gig@parish", "Cancelled gig", 7, "STATUS:CANCELLED"),
    ]);
    let server = TestServer::start(move |_: &Request| Response::ics(200, &body));
    let cli = Cli::new();
    std::fs::create_dir(cli.path("textfile")).unwrap();
    cli.write(
        "calsync.toml",
        config(&[("parish", format!("url = \"{}/feed.ics\"", server.url()))]),
    );
    let before = now();
    let run = sync(&cli, &[]);
    let after = now();
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let finished = run.event("pair.finished");
    let m = read_metrics(&cli);

    let pair = [("pair", "parish")];
    assert_eq!(
        m.value(
            "calsync_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert_eq!(m.value("calsync_last_run_exit_code", &[]), 0.0);
    assert_eq!(m.value("calsync_pair_last_run_exit_code", &pair), 0.0);
    let finished_at = m.value("calsync_last_run_timestamp_seconds", &[]);
    assert!((before..=after).contains(&finished_at), "{finished_at}");
    let last_success = m.value("calsync_pair_last_success_timestamp_seconds", &pair);
    assert!((before..=after).contains(&last_success), "{last_success}");
    let duration = m.value("calsync_last_run_duration_seconds", &[]);
    assert!(
        duration > 0.0 && duration <= after - before + 1.0,
        "{duration}"
    );

    let result = |r: &str| m.value("calsync_pair_last_run_events", &[pair[0], ("result", r)]);
    assert_eq!(result("created"), finished.num("created") as f64);
    assert_eq!(result("created"), 2.0);
    assert_eq!(result("withheld"), finished.num("withheld") as f64);
    assert_eq!(result("failed"), 0.0);
    assert_eq!(result("deleted"), 0.0);
    assert_eq!(
        m.value(
            "calsync_pair_last_run_withheld_events",
            &[pair[0], ("reason", "not_public")]
        ),
        finished.num("withheld_not_public") as f64
    );
    assert_eq!(
        m.value(
            "calsync_pair_last_run_withheld_events",
            &[pair[0], ("reason", "cancelled")]
        ),
        1.0
    );
    assert_eq!(m.value("calsync_pair_published_events", &pair), 2.0);

    let endpoint = server.url().trim_end_matches('/').to_string();
    assert_eq!(
        m.value(
            "calsync_last_run_api_requests",
            &[("endpoint", &endpoint), ("status", "200")]
        ),
        server.count() as f64
    );
    // The endpoint's circuit breaker, saved by the run: closed, nothing counted.
    let breaker = ("endpoint", endpoint.as_str());
    assert_eq!(
        m.value("calsync_breaker_state", &[breaker, ("state", "closed")]),
        1.0
    );
    assert_eq!(
        m.value("calsync_breaker_state", &[breaker, ("state", "open")]),
        0.0
    );
    assert_eq!(
        m.value("calsync_breaker_consecutive_failures", &[breaker]),
        0.0
    );
}

#[test]
fn a_failed_read_shows_its_exit_code_and_statuses() {
    let server = TestServer::start(|_: &Request| Response::text(503, "busy"));
    let cli = Cli::new();
    std::fs::create_dir(cli.path("textfile")).unwrap();
    cli.write(
        "calsync.toml",
        config(&[("parish", format!("url = \"{}/feed.ics\"", server.url()))]),
    );
    let run = sync(&cli, &[]);
    assert_eq!(run.code, calsync::exit::TEMPFAIL, "{}", run.stdout);
    let m = read_metrics(&cli);
    let pair = [("pair", "parish")];
    assert_eq!(
        m.value("calsync_last_run_exit_code", &[]),
        f64::from(calsync::exit::TEMPFAIL)
    );
    assert_eq!(
        m.value("calsync_pair_last_run_exit_code", &pair),
        f64::from(calsync::exit::TEMPFAIL)
    );
    // Never synced well: 0, so `time() - x > threshold` alerts at once.
    assert_eq!(
        m.value("calsync_pair_last_success_timestamp_seconds", &pair),
        0.0
    );
    assert_eq!(m.value("calsync_pair_published_events", &pair), 0.0);
    // One try and one retry, both answered 503.
    let endpoint = server.url().trim_end_matches('/').to_string();
    assert_eq!(server.count(), 2);
    assert_eq!(
        m.value(
            "calsync_last_run_api_requests",
            &[("endpoint", &endpoint), ("status", "503")]
        ),
        2.0
    );
    // One call that still failed after its retry: one failure towards opening the breaker.
    let breaker = ("endpoint", endpoint.as_str());
    assert_eq!(
        m.value("calsync_breaker_consecutive_failures", &[breaker]),
        1.0
    );
    assert_eq!(
        m.value("calsync_breaker_state", &[breaker, ("state", "closed")]),
        1.0
    );
}

#[test]
fn other_pairs_stay_listed_breakers_show_and_a_dry_run_leaves_the_file() {
    let server = TestServer::start(|_: &Request| Response::text(503, "busy"));
    let cli = Cli::new();
    std::fs::create_dir(cli.path("textfile")).unwrap();
    cli.write(
        "calsync.toml",
        config(&[
            ("parish", format!("url = \"{}/feed.ics\"", server.url())),
            ("school", "path = \"missing.ics\"".to_string()),
        ]),
    );
    let first = sync(&cli, &[]);
    assert_eq!(first.code, calsync::exit::TEMPFAIL, "{}", first.stdout);
    let m = read_metrics(&cli);
    assert_eq!(
        m.value("calsync_pair_last_run_exit_code", &[("pair", "school")]),
        f64::from(calsync::exit::FAILED)
    );

    // Breaker rows as the circuit breaker persists them (DESIGN.md: per endpoint, in SQLite).
    let db = rusqlite::Connection::open(cli.path("state/calsync.db")).unwrap();
    db.execute(
        "INSERT INTO breaker (endpoint, state, failures, opened_at) VALUES
         ('https://graph.example.org:443', 'open', 5, 1700000000)",
        [],
    )
    .unwrap();
    drop(db);

    let second = sync(&cli, &["--pair", "parish"]);
    assert_eq!(second.code, calsync::exit::TEMPFAIL, "{}", second.stdout);
    let m = read_metrics(&cli);
    // The pair not run keeps its lasting series, but has no last-run numbers from this run.
    assert_eq!(
        m.value(
            "calsync_pair_last_success_timestamp_seconds",
            &[("pair", "school")]
        ),
        0.0
    );
    assert_eq!(
        m.find("calsync_pair_last_run_exit_code", &[("pair", "school")]),
        None
    );
    assert!(
        m.find("calsync_pair_last_run_exit_code", &[("pair", "parish")])
            .is_some()
    );
    let graph = ("endpoint", "https://graph.example.org:443");
    for (state, want) in [("open", 1.0), ("closed", 0.0), ("half_open", 0.0)] {
        assert_eq!(
            m.value("calsync_breaker_state", &[graph, ("state", state)]),
            want,
            "{state}"
        );
    }
    assert_eq!(
        m.value("calsync_breaker_consecutive_failures", &[graph]),
        5.0
    );

    let written = std::fs::read(cli.path("textfile/calsync.prom")).unwrap();
    let dry = sync(&cli, &["--dry-run"]);
    assert_eq!(dry.code, calsync::exit::TEMPFAIL, "{}", dry.stdout);
    assert_eq!(
        std::fs::read(cli.path("textfile/calsync.prom")).unwrap(),
        written,
        "a dry run must not rewrite the metrics file"
    );
}

/// The checker must not be a rubber stamp: each of these breaks a rule the collector holds.
#[test]
fn the_checker_rejects_what_the_collector_would() {
    let good = "# HELP calsync_x Help.\n# TYPE calsync_x gauge\ncalsync_x{pair=\"a\"} 1\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.prom");
    std::fs::write(&path, good).unwrap();
    promcheck(&path).expect("the good file passes");
    let bad = [
        ("no HELP", "# TYPE calsync_x gauge\ncalsync_x 1\n"),
        ("no TYPE", "# HELP calsync_x Help.\ncalsync_x 1\n"),
        (
            "timestamp",
            "# HELP calsync_x Help.\n# TYPE calsync_x gauge\ncalsync_x 1 1700000000000\n",
        ),
        (
            "bad escape",
            "# HELP calsync_x Help.\n# TYPE calsync_x gauge\ncalsync_x{a=\"\\q\"} 1\n",
        ),
        (
            "duplicate",
            "# HELP calsync_x Help.\n# TYPE calsync_x gauge\ncalsync_x 1\ncalsync_x 2\n",
        ),
        (
            "split family",
            "# HELP calsync_x X.\n# TYPE calsync_x gauge\ncalsync_x{a=\"1\"} 1\n\
             # HELP calsync_y Y.\n# TYPE calsync_y gauge\ncalsync_y 1\ncalsync_x{a=\"2\"} 1\n",
        ),
        (
            "no final newline",
            "# HELP calsync_x Help.\n# TYPE calsync_x gauge\ncalsync_x 1",
        ),
        (
            "not a number",
            "# HELP calsync_x Help.\n# TYPE calsync_x gauge\ncalsync_x one\n",
        ),
    ];
    for (what, text) in bad {
        std::fs::write(&path, text).unwrap();
        assert!(promcheck(&path).is_err(), "{what} passed the checker");
    }
}
