//! The Prometheus metrics file (`metrics_file`, DESIGN.md "Metrics for monitoring").
//!
//! calsync is not a daemon, so nothing scrapes it: each `sync` run rewrites one file in the
//! Prometheus text exposition format (0.0.4) for node_exporter's textfile collector. The
//! values describe the run that wrote the file ("last run") and the state that outlives runs
//! (last good sync, events published, breakers); they are gauges, because the file holds one
//! run, not a running total. No sample carries a timestamp (the collector refuses them).
//!
//! [`render`] is pure: a [`Snapshot`] in, exposition text out. [`gather`] reads the state file
//! to fill a snapshot; [`write`] replaces the file atomically (see [`crate::fsutil`]), so the
//! collector never reads half a file. History and per-request timings stay in SQLite for
//! `history`; this file is only what an alert needs.

use crate::config::Settings;
use crate::engine::PairReport;
use crate::net::ApiCall;
use crate::net::breaker::State;
use crate::store::{Store, StoreError};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Every breaker state, each a sample of `calsync_breaker_state` (1 for the current one).
const BREAKER_STATES: [State; 3] = [State::Closed, State::HalfOpen, State::Open];

/// Everything one metrics file says.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The calsync version that wrote the file.
    pub version: String,
    /// Unix seconds when the run finished.
    pub finished_at: i64,
    /// Wall time of the whole run.
    pub duration_seconds: f64,
    /// The run's exit code.
    pub exit_code: i32,
    /// Every configured pair, by name.
    pub pairs: Vec<PairMetrics>,
    /// HTTP attempts of the run (retries included) by (endpoint, status); status 0 is an
    /// attempt that got no answer (connection error, timeout).
    pub requests: BTreeMap<(String, u16), u64>,
    /// The circuit breakers in the state file.
    pub breakers: Vec<BreakerMetrics>,
}

/// One pair: its lasting state, and what this run did with it (`None` when it did not run:
/// not selected with `--pair`, or the run was stopped first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairMetrics {
    pub pair: String,
    /// Unix seconds of the last run of this pair that ended well.
    pub last_success: Option<i64>,
    /// Events calsync has published in the target (its mapping).
    pub published: u64,
    pub last_run: Option<PairRun>,
}

/// What one run did with one pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRun {
    pub exit_code: i32,
    /// Events by what happened to them: `created`, `updated`, `deleted`, `unchanged`,
    /// `withheld`, `failed`, `skipped`, `guard_withheld`, `withdrawn`.
    pub events: Vec<(&'static str, u64)>,
    /// Source items withheld, by reason (`not_public`, `cancelled`, …, and `occurrence` for
    /// single occurrences cut out of a published series).
    pub withheld: Vec<(String, u64)>,
}

/// One endpoint's circuit breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerMetrics {
    pub endpoint: String,
    pub state: State,
    pub consecutive_failures: u64,
}

impl PairRun {
    /// The per-run numbers of a pair's report.
    pub fn from_report(report: &PairReport) -> PairRun {
        let c = &report.counts;
        let mut withheld: Vec<(String, u64)> = c
            .withheld
            .iter()
            .map(|(reason, n)| ((*reason).to_string(), *n))
            .collect();
        if c.withheld_instances > 0 {
            withheld.push(("occurrence".into(), c.withheld_instances));
        }
        PairRun {
            exit_code: report.exit_code,
            events: vec![
                ("created", c.created),
                ("updated", c.updated),
                ("deleted", c.deleted),
                ("unchanged", c.unchanged),
                ("withheld", c.withheld_total()),
                ("failed", c.failed),
                ("skipped", c.skipped),
                ("guard_withheld", c.guard_withheld),
                ("withdrawn", c.withdrawn),
            ],
            withheld,
        }
    }
}

/// HTTP attempts counted by (endpoint, status).
pub fn count_requests(calls: &[ApiCall]) -> BTreeMap<(String, u16), u64> {
    let mut out = BTreeMap::new();
    for call in calls {
        *out.entry((call.endpoint.clone(), call.status)).or_default() += 1;
    }
    out
}

/// One metric family being written: its samples go under one HELP and one TYPE line.
struct Family<'a> {
    name: &'a str,
    help: &'a str,
    samples: Vec<(Vec<(&'a str, String)>, String)>,
}

impl<'a> Family<'a> {
    fn new(name: &'a str, help: &'a str) -> Self {
        Family {
            name,
            help,
            samples: Vec::new(),
        }
    }

    fn sample(&mut self, labels: Vec<(&'a str, String)>, value: impl ToString) {
        self.samples.push((labels, value.to_string()));
    }

    /// Appends the family; one with no samples is left out (collectors differ on empty
    /// families, and it says nothing).
    fn write_to(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, escape_help(self.help));
        let _ = writeln!(out, "# TYPE {} gauge", self.name);
        for (labels, value) in &self.samples {
            out.push_str(self.name);
            if !labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{k}=\"{}\"", escape_label(v));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {value}");
        }
    }
}

/// A label value as the exposition format wants it: `\`, `"` and newline escaped.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text: `\` and newline escaped (quotes may stand as they are).
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A float as Prometheus reads it (Rust's `Display` never uses an exponent and gives `0` for
/// zero, both of which Prometheus accepts).
fn float(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else if v.is_nan() {
        "NaN".into()
    } else if v > 0.0 {
        "+Inf".into()
    } else {
        "-Inf".into()
    }
}

/// The metrics file's text.
pub fn render(s: &Snapshot) -> String {
    let pair = |p: &PairMetrics| vec![("pair", p.pair.clone())];

    let mut build = Family::new(
        "calsync_build_info",
        "The calsync version that wrote this file (always 1).",
    );
    build.sample(vec![("version", s.version.clone())], 1);

    let mut finished = Family::new(
        "calsync_last_run_timestamp_seconds",
        "Unix time the last sync run finished.",
    );
    finished.sample(vec![], s.finished_at);

    let mut duration = Family::new(
        "calsync_last_run_duration_seconds",
        "Wall time of the last sync run.",
    );
    duration.sample(vec![], float(s.duration_seconds));

    let mut exit_code = Family::new(
        "calsync_last_run_exit_code",
        "Exit code of the last sync run (0 ok, 1 failed, 69 breaker open, 75 transient, 77 auth refused, 78 config, 130/143 interrupted).",
    );
    exit_code.sample(vec![], s.exit_code);

    let mut pair_exit = Family::new(
        "calsync_pair_last_run_exit_code",
        "Exit code of the pair in the last sync run that included it.",
    );
    let mut last_success = Family::new(
        "calsync_pair_last_success_timestamp_seconds",
        "Unix time of the pair's last sync that ended well (0: never).",
    );
    let mut published = Family::new(
        "calsync_pair_published_events",
        "Events calsync has published in the pair's target.",
    );
    let mut events = Family::new(
        "calsync_pair_last_run_events",
        "Events of the pair in the last sync run, by result.",
    );
    let mut withheld = Family::new(
        "calsync_pair_last_run_withheld_events",
        "Source events of the pair not published in the last sync run, by reason.",
    );
    let mut pairs: Vec<&PairMetrics> = s.pairs.iter().collect();
    pairs.sort_by(|a, b| a.pair.cmp(&b.pair));
    for p in pairs {
        last_success.sample(pair(p), p.last_success.unwrap_or(0));
        published.sample(pair(p), p.published);
        let Some(run) = &p.last_run else { continue };
        pair_exit.sample(pair(p), run.exit_code);
        for (result, n) in &run.events {
            let mut labels = pair(p);
            labels.push(("result", (*result).to_string()));
            events.sample(labels, n);
        }
        let mut reasons = run.withheld.clone();
        reasons.sort();
        for (reason, n) in reasons {
            let mut labels = pair(p);
            labels.push(("reason", reason));
            withheld.sample(labels, n);
        }
    }

    let mut requests = Family::new(
        "calsync_last_run_api_requests",
        "HTTP attempts of the last sync run (retries included) by endpoint and status; status 0: no answer.",
    );
    for ((endpoint, status), n) in &s.requests {
        requests.sample(
            vec![
                ("endpoint", endpoint.clone()),
                ("status", status.to_string()),
            ],
            n,
        );
    }

    let mut breaker_state = Family::new(
        "calsync_breaker_state",
        "Circuit breaker of an endpoint: 1 for its current state, 0 for the others.",
    );
    let mut breaker_failures = Family::new(
        "calsync_breaker_consecutive_failures",
        "Consecutive failed calls counted by an endpoint's circuit breaker.",
    );
    let mut breakers: Vec<&BreakerMetrics> = s.breakers.iter().collect();
    breakers.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
    for b in breakers {
        for state in BREAKER_STATES {
            breaker_state.sample(
                vec![
                    ("endpoint", b.endpoint.clone()),
                    ("state", state.as_str().to_string()),
                ],
                u8::from(state == b.state),
            );
        }
        breaker_failures.sample(
            vec![("endpoint", b.endpoint.clone())],
            b.consecutive_failures,
        );
    }

    let mut out = String::new();
    for family in [
        &build,
        &finished,
        &duration,
        &exit_code,
        &pair_exit,
        &last_success,
        &published,
        &events,
        &withheld,
        &requests,
        &breaker_state,
        &breaker_failures,
    ] {
        family.write_to(&mut out);
    }
    out
}

/// What the run knows, completed from the state file: every configured pair's last good sync
/// and published count, and the breakers.
///
/// # Errors
/// SQLite failures.
pub fn gather(
    store: &Store,
    pair_names: &[&str],
    reports: &[PairReport],
    calls: &[ApiCall],
    exit_code: i32,
    duration: std::time::Duration,
) -> Result<Snapshot, StoreError> {
    let mut pairs = Vec::new();
    for name in pair_names {
        pairs.push(PairMetrics {
            pair: (*name).to_string(),
            last_success: store.pair_state(name)?.last_good_sync,
            published: store.mapped_count(name)?,
            last_run: reports
                .iter()
                .find(|r| r.pair == *name)
                .map(PairRun::from_report),
        });
    }
    let breakers = store
        .breakers()?
        .into_iter()
        .map(|(endpoint, b)| BreakerMetrics {
            endpoint,
            state: b.state,
            consecutive_failures: u64::from(b.failures),
        })
        .collect();
    Ok(Snapshot {
        version: env!("CARGO_PKG_VERSION").to_string(),
        finished_at: chrono::Utc::now().timestamp(),
        duration_seconds: duration.as_secs_f64(),
        exit_code,
        pairs,
        requests: count_requests(calls),
        breakers,
    })
}

/// Why the metrics file was not written.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics file {}: reading the state file: {source}", path.display())]
    State {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("metrics file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Replaces the metrics file with the snapshot's text (new files 0644: the collector runs as
/// another user).
///
/// # Errors
/// [`MetricsError::Write`]; the old file is then left as it was.
pub fn write(path: &Path, snapshot: &Snapshot) -> Result<(), MetricsError> {
    crate::fsutil::replace_file(path, render(snapshot).as_bytes(), 0o644).map_err(|source| {
        MetricsError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Gathers and writes the metrics file of a `sync` run, when the configuration names one. A
/// failure is logged, not fatal: the calendar was synced, and a stale
/// `calsync_last_run_timestamp_seconds` tells monitoring.
pub fn export(
    settings: &Settings,
    store: &Store,
    reports: &[PairReport],
    calls: &[ApiCall],
    exit_code: i32,
    duration: std::time::Duration,
) {
    let Some(path) = settings.metrics_file.as_deref() else {
        return;
    };
    // Every configured pair, not only those run: a `--pair` run must not make the others'
    // series vanish from the file.
    let pair_names: Vec<&str> = settings.pairs.iter().map(|p| p.name.as_str()).collect();
    let result = gather(store, &pair_names, reports, calls, exit_code, duration)
        .map_err(|source| MetricsError::State {
            path: path.to_path_buf(),
            source,
        })
        .and_then(|snapshot| write(path, &snapshot));
    match result {
        Ok(()) => {
            log::debug!(event = "metrics.written", path = path.display().to_string().as_str();
                              "metrics file written")
        }
        Err(e) => log::error!(event = "metrics.write_failed"; "{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        let mut requests = BTreeMap::new();
        requests.insert(("http://127.0.0.1:8080".to_string(), 200), 3);
        requests.insert(("http://127.0.0.1:8080".to_string(), 0), 1);
        Snapshot {
            version: "0.1.0".into(),
            finished_at: 1_800_000_000,
            duration_seconds: 1.25,
            exit_code: 1,
            pairs: vec![
                PairMetrics {
                    pair: "school".into(),
                    last_success: None,
                    published: 0,
                    last_run: None,
                },
                PairMetrics {
                    pair: "parish".into(),
                    last_success: Some(1_799_999_000),
                    published: 12,
                    last_run: Some(PairRun {
                        exit_code: 1,
                        events: vec![("created", 2), ("failed", 1)],
                        withheld: vec![("occurrence".into(), 1), ("not_public".into(), 4)],
                    }),
                },
            ],
            requests,
            breakers: vec![BreakerMetrics {
                endpoint: "https://graph.microsoft.com:443".into(),
                state: State::Open,
                consecutive_failures: 5,
            }],
        }
    }

    #[test]
    fn renders_every_family_with_help_and_type_in_a_stable_order() {
        let text = render(&snapshot());
        let want = r#"# HELP calsync_build_info The calsync version that wrote this file (always 1).
# TYPE calsync_build_info gauge
calsync_build_info{version="0.1.0"} 1
# HELP calsync_last_run_timestamp_seconds Unix time the last sync run finished.
# TYPE calsync_last_run_timestamp_seconds gauge
calsync_last_run_timestamp_seconds 1800000000
# HELP calsync_last_run_duration_seconds Wall time of the last sync run.
# TYPE calsync_last_run_duration_seconds gauge
calsync_last_run_duration_seconds 1.25
# HELP calsync_last_run_exit_code Exit code of the last sync run (0 ok, 1 failed, 69 breaker open, 75 transient, 77 auth refused, 78 config, 130/143 interrupted).
# TYPE calsync_last_run_exit_code gauge
calsync_last_run_exit_code 1
# HELP calsync_pair_last_run_exit_code Exit code of the pair in the last sync run that included it.
# TYPE calsync_pair_last_run_exit_code gauge
calsync_pair_last_run_exit_code{pair="parish"} 1
# HELP calsync_pair_last_success_timestamp_seconds Unix time of the pair's last sync that ended well (0: never).
# TYPE calsync_pair_last_success_timestamp_seconds gauge
calsync_pair_last_success_timestamp_seconds{pair="parish"} 1799999000
calsync_pair_last_success_timestamp_seconds{pair="school"} 0
# HELP calsync_pair_published_events Events calsync has published in the pair's target.
# TYPE calsync_pair_published_events gauge
calsync_pair_published_events{pair="parish"} 12
calsync_pair_published_events{pair="school"} 0
# HELP calsync_pair_last_run_events Events of the pair in the last sync run, by result.
# TYPE calsync_pair_last_run_events gauge
calsync_pair_last_run_events{pair="parish",result="created"} 2
calsync_pair_last_run_events{pair="parish",result="failed"} 1
# HELP calsync_pair_last_run_withheld_events Source events of the pair not published in the last sync run, by reason.
# TYPE calsync_pair_last_run_withheld_events gauge
calsync_pair_last_run_withheld_events{pair="parish",reason="not_public"} 4
calsync_pair_last_run_withheld_events{pair="parish",reason="occurrence"} 1
# HELP calsync_last_run_api_requests HTTP attempts of the last sync run (retries included) by endpoint and status; status 0: no answer.
# TYPE calsync_last_run_api_requests gauge
calsync_last_run_api_requests{endpoint="http://127.0.0.1:8080",status="0"} 1
calsync_last_run_api_requests{endpoint="http://127.0.0.1:8080",status="200"} 3
# HELP calsync_breaker_state Circuit breaker of an endpoint: 1 for its current state, 0 for the others.
# TYPE calsync_breaker_state gauge
calsync_breaker_state{endpoint="https://graph.microsoft.com:443",state="closed"} 0
calsync_breaker_state{endpoint="https://graph.microsoft.com:443",state="half_open"} 0
calsync_breaker_state{endpoint="https://graph.microsoft.com:443",state="open"} 1
# HELP calsync_breaker_consecutive_failures Consecutive failed calls counted by an endpoint's circuit breaker.
# TYPE calsync_breaker_consecutive_failures gauge
calsync_breaker_consecutive_failures{endpoint="https://graph.microsoft.com:443"} 5
"#;
        assert_eq!(text, want);
    }

    #[test]
    fn families_without_samples_are_left_out() {
        let s = Snapshot {
            pairs: vec![],
            requests: BTreeMap::new(),
            breakers: vec![],
            ..snapshot()
        };
        let text = render(&s);
        for absent in [
            "calsync_pair_",
            "calsync_last_run_api_requests",
            "calsync_breaker_",
        ] {
            assert!(!text.contains(absent), "{absent} in\n{text}");
        }
        assert!(text.contains("calsync_last_run_exit_code 1\n"));
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let cases = [
            ("plain", "plain"),
            ("a\\b", "a\\\\b"),
            ("say \"hi\"", "say \\\"hi\\\""),
            ("two\nlines", "two\\nlines"),
            ("ünïcode", "ünïcode"),
        ];
        for (raw, escaped) in cases {
            assert_eq!(escape_label(raw), escaped, "{raw:?}");
        }
        assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
        let s = Snapshot {
            breakers: vec![BreakerMetrics {
                endpoint: "https://x\"y:443".into(),
                state: State::Closed,
                consecutive_failures: 0,
            }],
            ..snapshot()
        };
        let text = render(&s);
        assert!(
            text.contains(
                "calsync_breaker_state{endpoint=\"https://x\\\"y:443\",state=\"closed\"} 1\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn floats_are_spelled_as_prometheus_reads_them() {
        assert_eq!(float(0.0), "0");
        assert_eq!(float(0.000_001), "0.000001");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(f64::NAN), "NaN");
    }

    #[test]
    fn requests_are_counted_by_endpoint_and_status() {
        let call = |endpoint: &str, status| ApiCall {
            endpoint: endpoint.into(),
            method: "GET".into(),
            status,
            attempt: 1,
            latency_ms: 1,
            at: 0,
        };
        let counted = count_requests(&[
            call("https://a:443", 200),
            call("https://a:443", 200),
            call("https://a:443", 503),
            call("https://b:443", 200),
        ]);
        assert_eq!(counted.get(&("https://a:443".into(), 200)), Some(&2));
        assert_eq!(counted.get(&("https://a:443".into(), 503)), Some(&1));
        assert_eq!(counted.get(&("https://b:443".into(), 200)), Some(&1));
        assert_eq!(counted.len(), 3);
    }

    #[test]
    fn a_write_replaces_the_file_and_a_failed_one_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calsync.prom");
        write(&path, &snapshot()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), render(&snapshot()));
        let missing = dir.path().join("no-such-folder/calsync.prom");
        let err = write(&missing, &snapshot()).unwrap_err();
        assert!(err.to_string().contains("no-such-folder"), "{err}");
    }

    #[test]
    fn gather_reads_pairs_and_breakers_from_the_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        store.set_last_good_sync("parish", 1_700_000_000).unwrap();
        store
            .conn()
            .execute(
                "INSERT INTO breaker (endpoint, state, failures) VALUES ('https://a:443', 'half_open', 5)",
                [],
            )
            .unwrap();
        let report = PairReport {
            pair: "parish".into(),
            exit_code: 0,
            outcome: "ok",
            read_kind: None,
            counts: Default::default(),
            error: None,
        };
        let s = gather(
            &store,
            &["parish", "school"],
            &[report],
            &[],
            0,
            std::time::Duration::from_millis(1500),
        )
        .unwrap();
        assert_eq!(s.pairs[0].last_success, Some(1_700_000_000));
        assert!(s.pairs[0].last_run.is_some());
        assert_eq!(s.pairs[1].last_success, None);
        assert!(s.pairs[1].last_run.is_none());
        assert_eq!(s.duration_seconds, 1.5);
        assert_eq!(
            s.breakers,
            [BreakerMetrics {
                endpoint: "https://a:443".into(),
                state: State::HalfOpen,
                consecutive_failures: 5
            }]
        );
    }
}
