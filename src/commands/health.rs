//! `calsync health`: is publishing working? For monitoring (Nagios exit codes) and people.
//!
//! Checks the configuration, the state file, the audit key, each pair's credentials, and —
//! unless `--offline` — that each side can be reached, accepts the credentials and has its
//! calendar (through the provider traits: a cheap source read with the stored cursor, and
//! `Target::prepare`). From the state file: each endpoint's circuit breaker, the time since
//! the pair's last good sync against its `stale_after_minutes`, the recent failure rate and
//! the age of the source cursor. Thresholds live in `[health]`.
//!
//! The report follows the IETF health check response format (`status`, and `checks` keyed
//! `component:measurement`, each with `status`, `observedValue`, `observedUnit`, `time`,
//! `output`). Exit codes are Nagios': 0 pass, 1 warn, 2 fail, 3 unknown (health could not
//! judge: the configuration or the state file is unusable). Reads only; creates nothing —
//! not the state file, not the audit key.

use super::report::{self, Table};
use crate::cli::{GlobalArgs, HealthArgs};
use crate::config::{self, Endpoint, Environment, HealthSettings, IcsLocation, Pair, Settings};
use crate::error::Error;
use crate::exit::health as nagios;
use crate::mask::mask_emails;
use crate::net::Http;
use crate::net::breaker::{Breaker, State};
use crate::providers::{self, Context, ProviderError};
use crate::store::{AuditKey, RunRecord, Store};
use chrono::{DateTime, NaiveDate, Utc};
use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

/// A check's verdict. Ordered by how it weighs in the roll-up: fail, then unknown, then
/// warn, then pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Warn,
    /// Health could not judge (the configuration or the state file is unusable).
    Unknown,
    Fail,
}

impl Status {
    fn weight(self) -> u8 {
        match self {
            Status::Pass => 0,
            Status::Warn => 1,
            Status::Unknown => 2,
            Status::Fail => 3,
        }
    }

    /// The Nagios exit code.
    pub fn nagios_code(self) -> i32 {
        match self {
            Status::Pass => nagios::PASS,
            Status::Warn => nagios::WARN,
            Status::Fail => nagios::FAIL,
            Status::Unknown => nagios::UNKNOWN,
        }
    }

    pub fn nagios_state(self) -> &'static str {
        match self {
            Status::Pass => "OK",
            Status::Warn => "WARNING",
            Status::Fail => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }

    /// The status word of the health check response format, which knows no "unknown": a
    /// check health could not judge is not healthy, so it reads `fail` there (the Nagios
    /// code and `nagios.state` tell it apart).
    pub fn ietf(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail | Status::Unknown => "fail",
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Unknown => "unknown",
        }
    }
}

/// The overall status of some checks: the weightiest (pass when there are none).
pub fn roll_up(statuses: impl IntoIterator<Item = Status>) -> Status {
    statuses
        .into_iter()
        .max_by_key(|s| s.weight())
        .unwrap_or(Status::Pass)
}

/// One check of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// `component:measurement`, e.g. `parish:lastGoodSync`.
    pub name: String,
    pub component_id: Option<String>,
    pub component_type: &'static str,
    pub status: Status,
    pub observed_value: Option<serde_json::Value>,
    pub observed_unit: Option<&'static str>,
    pub output: Option<String>,
}

impl Check {
    fn system(name: &str, status: Status, output: impl Into<String>) -> Check {
        Check {
            name: name.to_string(),
            component_id: None,
            component_type: "system",
            status,
            observed_value: None,
            observed_unit: None,
            output: Some(mask_emails(&output.into())),
        }
    }

    fn pair(pair: &str, measurement: &str, component_type: &'static str, v: Verdict) -> Check {
        Check {
            name: format!("{pair}:{measurement}"),
            component_id: Some(pair.to_string()),
            component_type,
            status: v.status,
            observed_value: v.value,
            observed_unit: v.unit,
            output: v.output.map(|o| mask_emails(&o)),
        }
    }
}

/// What one measurement found.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub status: Status,
    pub value: Option<serde_json::Value>,
    pub unit: Option<&'static str>,
    pub output: Option<String>,
}

impl Verdict {
    fn new(status: Status, output: impl Into<String>) -> Verdict {
        Verdict {
            status,
            value: None,
            unit: None,
            output: Some(output.into()),
        }
    }

    fn observed(mut self, value: impl Into<serde_json::Value>, unit: &'static str) -> Verdict {
        self.value = Some(value.into());
        self.unit = Some(unit);
        self
    }
}

/// Time since the last good sync (`now` and `last_good` in Unix seconds): warns after
/// `stale_after_minutes` or when there never was one, fails after `factor` times that.
pub fn freshness(
    last_good: Option<i64>,
    now: i64,
    stale_after_minutes: u32,
    factor: u32,
) -> Verdict {
    let Some(last) = last_good else {
        return Verdict::new(Status::Warn, "never synced successfully");
    };
    let minutes = (now - last).max(0) / 60;
    let warn_after = i64::from(stale_after_minutes);
    let fail_after = warn_after * i64::from(factor);
    let at = DateTime::from_timestamp(last, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    let (status, output) = if minutes > fail_after {
        (
            Status::Fail,
            format!("last good sync {at}, more than {fail_after} min ago"),
        )
    } else if minutes > warn_after {
        (
            Status::Warn,
            format!("last good sync {at}, more than {warn_after} min ago"),
        )
    } else {
        (Status::Pass, format!("last good sync {at}"))
    };
    Verdict::new(status, output).observed(minutes, "min")
}

/// The failure rate of a pair's latest runs (newest first; running and dry runs are not
/// counted), in percent.
pub fn failure_rate(runs: &[RunRecord], warn_percent: u32, fail_percent: u32) -> Verdict {
    let counted: Vec<&RunRecord> = runs
        .iter()
        .filter(|r| !matches!(r.outcome.as_str(), "running" | "dry_run"))
        .collect();
    if counted.is_empty() {
        return Verdict::new(Status::Pass, "no runs yet");
    }
    let failed = counted.iter().filter(|r| r.outcome != "ok").count();
    let percent = (failed as f64 * 1000.0 / counted.len() as f64).round() / 10.0;
    let status = if percent >= f64::from(fail_percent) {
        Status::Fail
    } else if percent >= f64::from(warn_percent) {
        Status::Warn
    } else {
        Status::Pass
    };
    Verdict::new(
        status,
        format!("{failed} of the last {} runs failed", counted.len()),
    )
    .observed(percent, "%")
}

/// The age of the source cursor in days (a cursor is used only on the day it was made, so
/// an old one means no pass has completed since).
pub fn cursor_age(cursor_day: Option<&str>, today: NaiveDate, warn_days: u32) -> Verdict {
    let Some(day) = cursor_day else {
        return Verdict::new(Status::Pass, "no cursor kept");
    };
    let Ok(made) = NaiveDate::parse_from_str(day, "%Y-%m-%d") else {
        return Verdict::new(Status::Warn, format!("unreadable cursor day '{day}'"));
    };
    let days = (today - made).num_days().max(0);
    let status = if days >= i64::from(warn_days) {
        Status::Warn
    } else {
        Status::Pass
    };
    Verdict::new(status, format!("cursor made {day}")).observed(days, "d")
}

/// The circuit breakers of a pair's endpoints, as the last run saved them: open fails (sync
/// will not call it, 69), half open warns (the next call is a probe).
pub fn breakers(saved: &[(String, Breaker)], endpoints: &[String]) -> Verdict {
    let mine: Vec<&(String, Breaker)> = saved
        .iter()
        .filter(|(endpoint, _)| endpoints.contains(endpoint))
        .collect();
    let named = |state: State| -> Vec<&str> {
        mine.iter()
            .filter(|(_, b)| b.state == state)
            .map(|(e, _)| e.as_str())
            .collect()
    };
    let (open, half) = (named(State::Open), named(State::HalfOpen));
    let failures = mine.iter().map(|(_, b)| b.failures).max().unwrap_or(0);
    let v = if !open.is_empty() {
        Verdict::new(Status::Fail, format!("open: {}", open.join(", ")))
    } else if !half.is_empty() {
        Verdict::new(Status::Warn, format!("half open: {}", half.join(", ")))
    } else {
        Verdict::new(Status::Pass, "closed")
    };
    v.observed(failures, "consecutive failures")
}

/// How a probe of one side went: three measurements from one call. A remote side names
/// what failed (connecting, the credentials, the calendar); a local file has only the last.
pub fn probe(result: Result<u128, &ProviderError>, remote: bool) -> Vec<(&'static str, Verdict)> {
    let pass = |what: &str| Verdict::new(Status::Pass, what);
    let mut out = Vec::new();
    match result {
        Ok(ms) => {
            if remote {
                out.push(("connectivity", pass("reached").observed(ms as u64, "ms")));
                out.push(("auth", pass("accepted")));
            }
            out.push(("calendar", pass("readable")));
        }
        Err(e @ ProviderError::Transient { .. }) => {
            out.push(("connectivity", Verdict::new(Status::Fail, e.to_string())));
        }
        Err(e @ ProviderError::BreakerOpen { .. }) => {
            out.push(("connectivity", Verdict::new(Status::Fail, e.to_string())));
        }
        Err(e @ ProviderError::Auth { .. }) => {
            out.push(("connectivity", pass("reached")));
            out.push(("auth", Verdict::new(Status::Fail, e.to_string())));
        }
        Err(e) => {
            if remote {
                out.push(("connectivity", pass("reached")));
                out.push(("auth", pass("accepted")));
            }
            out.push(("calendar", Verdict::new(Status::Fail, e.to_string())));
        }
    }
    out
}

/// Runs `health`; returns its Nagios code. Never fails otherwise: what stops it (an unusable
/// configuration, an unknown pair) is reported as UNKNOWN.
///
/// # Errors
/// None in practice; the signature matches the other commands.
pub fn run(global: &GlobalArgs, args: &HealthArgs) -> Result<i32, Error> {
    let now = Utc::now();
    let checks = gather(global, args.offline, now);
    let status = roll_up(checks.iter().map(|c| c.status));
    for c in checks.iter().filter(|c| c.status != Status::Pass) {
        log::warn!(event = "health.check", check = c.name.as_str(), status = c.status.word();
                   "{}", c.output.as_deref().unwrap_or(""));
    }
    log::info!(event = "health.finished", status = status.word(), exit_code = status.nagios_code();
               "health {}", status.nagios_state());
    let document = document(&checks, status, now);
    report::print(report::wants_json(args.format), &document, || {
        text(&checks, status)
    });
    Ok(status.nagios_code())
}

fn gather(global: &GlobalArgs, offline: bool, now: DateTime<Utc>) -> Vec<Check> {
    let mut checks = Vec::new();
    let settings = match config::load(
        &global.config,
        global.state.as_deref(),
        &Environment::from_process(),
    ) {
        Ok(s) => s,
        Err(e) => {
            checks.push(Check::system("config", Status::Unknown, e.to_string()));
            return checks;
        }
    };
    let pairs: Vec<Pair> = match settings.select_pairs(&global.pairs) {
        Ok(p) => p.into_iter().cloned().collect(),
        Err(e) => {
            checks.push(Check::system("config", Status::Unknown, e));
            return checks;
        }
    };
    checks.push(Check::system(
        "config",
        Status::Pass,
        format!(
            "{}, pairs: {}",
            settings.path.display(),
            settings.pairs.len()
        ),
    ));

    let (store, state_check) = open_state(&settings);
    checks.push(state_check);
    checks.push(audit_key(&settings, store.is_some()));
    checks.push(secret_files(&settings));

    // Providers keep caches (tokens, calendar ids) in the state; without a state file they
    // get one in memory, so nothing is created.
    let http = if offline {
        None
    } else {
        match Http::new(&settings.net).and_then(|h| {
            let scratch = Store::in_memory().map_err(|e| e.to_string())?;
            Ok((h, scratch))
        }) {
            Ok(h) => Some(h),
            Err(e) => {
                checks.push(Check::system("network", Status::Unknown, e));
                None
            }
        }
    };
    let breaker_rows = store.as_ref().map(|s| s.breakers());
    for pair in &pairs {
        checks.push(Check::pair(
            &pair.name,
            "credentials",
            "pair",
            credentials(pair),
        ));
        let state = store.as_ref().map(|s| s.pair_state(&pair.name));
        if let Some((http, scratch)) = &http {
            let cursor = match &state {
                Some(Ok(st)) => st.cursor.clone(),
                _ => None,
            };
            let cache = store.as_ref().unwrap_or(scratch);
            checks.extend(probe_pair(
                &settings,
                pair,
                http,
                cache,
                cursor.as_deref(),
                now,
            ));
        }
        let (store, st) = match (&store, state) {
            (Some(store), Some(Ok(st))) => (store, st),
            (Some(_), Some(Err(e))) => {
                checks.push(Check::pair(
                    &pair.name,
                    "lastGoodSync",
                    "pair",
                    Verdict::new(Status::Unknown, e.to_string()),
                ));
                continue;
            }
            // No state file yet: never synced. (An unusable one is reported once, as the
            // `state:file` check.)
            _ => {
                if !settings.state.exists() {
                    checks.push(Check::pair(
                        &pair.name,
                        "lastGoodSync",
                        "pair",
                        Verdict::new(Status::Warn, "never synced (no state file yet)"),
                    ));
                }
                continue;
            }
        };
        checks.push(Check::pair(
            &pair.name,
            "breaker",
            "pair",
            match &breaker_rows {
                Some(Ok(rows)) => breakers(rows, &report::endpoints_of(pair)),
                Some(Err(e)) => Verdict::new(Status::Unknown, e.to_string()),
                None => Verdict::new(Status::Pass, "closed"),
            },
        ));
        checks.push(Check::pair(
            &pair.name,
            "lastGoodSync",
            "pair",
            freshness(
                st.last_good_sync,
                now.timestamp(),
                pair.stale_after_minutes,
                settings.health.stale_fail_factor,
            ),
        ));
        checks.push(Check::pair(
            &pair.name,
            "failureRate",
            "pair",
            recent_failures(store, &pair.name, &settings.health),
        ));
        checks.push(Check::pair(
            &pair.name,
            "cursorAge",
            "pair",
            cursor_age(
                st.cursor_day.as_deref(),
                now.date_naive(),
                settings.health.cursor_warn_days,
            ),
        ));
    }
    checks
}

/// The state file, opened when it exists and is usable; never created.
fn open_state(settings: &Settings) -> (Option<Store>, Check) {
    let path = &settings.state;
    if !path.exists() {
        return (
            None,
            Check::system(
                "state:file",
                Status::Warn,
                format!("{} does not exist yet (no sync has run)", path.display()),
            ),
        );
    }
    match Store::open_existing(path) {
        Ok(store) => {
            let mode = std::fs::metadata(path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0o600);
            let mut check = if mode & 0o077 != 0 {
                Check::system(
                    "state:file",
                    Status::Warn,
                    format!(
                        "{} is readable by others (mode {mode:04o}); calsync creates it 0600",
                        path.display()
                    ),
                )
            } else {
                Check::system("state:file", Status::Pass, path.display().to_string())
            };
            check.observed_value = Some(format!("{mode:04o}").into());
            check.observed_unit = Some("mode");
            (Some(store), check)
        }
        Err(e) => (
            None,
            Check::system("state:file", Status::Unknown, e.to_string()),
        ),
    }
}

fn audit_key(settings: &Settings, state_exists: bool) -> Check {
    match AuditKey::load_existing(settings.audit_key_file.as_deref(), &settings.state) {
        Ok(Some(key)) => Check::system("audit:key", Status::Pass, key.path.display().to_string()),
        Ok(None) if !state_exists => Check::system(
            "audit:key",
            Status::Pass,
            "none yet: the first sync creates it beside the state file",
        ),
        Ok(None) => Check::system(
            "audit:key",
            Status::Warn,
            format!(
                "{} is missing: the audit chain cannot be verified; restore it or set audit_key_file",
                AuditKey::default_path(&settings.state).display()
            ),
        ),
        Err(e) => Check::system("audit:key", Status::Fail, e),
    }
}

/// The files secrets were read from (and the audit key): warns while others than their
/// owner may read one.
fn secret_files(settings: &Settings) -> Check {
    let exposed: Vec<String> = settings
        .secret_files
        .iter()
        .filter_map(|f| {
            crate::fsutil::readable_by_others(&f.path)
                .map(|mode| format!("{} ({}, mode {mode:04o})", f.path.display(), f.key))
        })
        .collect();
    let mut check = if exposed.is_empty() {
        Check::system(
            "secrets:file",
            Status::Pass,
            match settings.secret_files.len() {
                0 => "no secret files".to_string(),
                n => format!("{n} secret files, each readable by its owner only"),
            },
        )
    } else {
        Check::system(
            "secrets:file",
            Status::Warn,
            format!(
                "readable by others: {}; chmod 0600 them",
                exposed.join(", ")
            ),
        )
    };
    check.observed_value = Some(exposed.len().into());
    check.observed_unit = Some("files readable by others");
    check
}

/// The pair's secrets were read with the configuration (it does not load otherwise).
fn credentials(pair: &Pair) -> Verdict {
    let count = super::audit_log::credential_sides(pair);
    let output = if count == 0 {
        "none needed".to_string()
    } else {
        format!("{count} read")
    };
    Verdict::new(Status::Pass, output).observed(count as u64, "secrets")
}

fn is_remote(endpoint: &Endpoint) -> bool {
    !matches!(endpoint, Endpoint::Ics(i) if matches!(i.location, IcsLocation::Path(_)))
}

/// Reaches each side through the provider traits: the source with a read from the stored
/// cursor (an unchanged source answers cheaply), the target with `prepare`.
fn probe_pair(
    settings: &Settings,
    pair: &Pair,
    http: &Http,
    store: &Store,
    cursor: Option<&str>,
    now: DateTime<Utc>,
) -> Vec<Check> {
    let ctx = Context::new(settings, pair, http, store, now);
    let started = Instant::now();
    let source = providers::build_source(&ctx).and_then(|mut source| {
        let mut sink = |_page| Ok(());
        source.read(cursor, &mut sink).map(|_| ())
    });
    let source_ms = started.elapsed().as_millis();
    let started = Instant::now();
    let target = providers::build_target(&ctx).and_then(|mut target| target.prepare());
    let target_ms = started.elapsed().as_millis();
    let mut checks = Vec::new();
    for (side, result, ms, remote) in [
        ("source", source, source_ms, is_remote(&pair.source)),
        ("target", target, target_ms, is_remote(&pair.target)),
    ] {
        for (measurement, verdict) in probe(result.as_ref().map(|_| ms), remote) {
            checks.push(Check::pair(
                &pair.name,
                &format!("{side}:{measurement}"),
                if side == "source" { "source" } else { "target" },
                verdict,
            ));
        }
    }
    checks
}

fn recent_failures(store: &Store, pair: &str, health: &HealthSettings) -> Verdict {
    match store.recent_runs(health.failure_window_runs as usize, None, Some(pair)) {
        Ok(runs) => failure_rate(
            &runs,
            health.failure_warn_percent,
            health.failure_fail_percent,
        ),
        Err(e) => Verdict::new(Status::Unknown, e.to_string()),
    }
}

fn document(checks: &[Check], status: Status, now: DateTime<Utc>) -> serde_json::Value {
    let time = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut map = serde_json::Map::new();
    for c in checks {
        let mut o = serde_json::Map::new();
        if let Some(id) = &c.component_id {
            o.insert("componentId".into(), id.clone().into());
        }
        o.insert("componentType".into(), c.component_type.into());
        if let Some(v) = &c.observed_value {
            o.insert("observedValue".into(), v.clone());
        }
        if let Some(u) = c.observed_unit {
            o.insert("observedUnit".into(), u.into());
        }
        o.insert("status".into(), c.status.ietf().into());
        o.insert("time".into(), time.clone().into());
        if let Some(out) = &c.output {
            o.insert("output".into(), out.clone().into());
        }
        let entry = map
            .entry(c.name.clone())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let serde_json::Value::Array(list) = entry {
            list.push(serde_json::Value::Object(o));
        }
    }
    let troubled: Vec<String> = checks
        .iter()
        .filter(|c| c.status != Status::Pass)
        .map(|c| format!("{}: {}", c.name, c.status.word()))
        .collect();
    let mut doc = serde_json::json!({
        "status": status.ietf(),
        "version": "1",
        "releaseId": env!("CARGO_PKG_VERSION"),
        "serviceId": "calsync",
        "description": "calsync: publishes the public events of a calendar",
        "nagios": { "code": status.nagios_code(), "state": status.nagios_state() },
        "checks": map,
    });
    if !troubled.is_empty() {
        doc["output"] = troubled.join("; ").into();
    }
    doc
}

fn text(checks: &[Check], status: Status) -> String {
    let mut out = format!(
        "calsync health: {} ({})\n",
        status.nagios_state(),
        status.nagios_code()
    );
    let mut t = Table::new(&["CHECK", "STATUS", "OBSERVED", "OUTPUT"]);
    for c in checks {
        let observed = match (&c.observed_value, c.observed_unit) {
            (Some(serde_json::Value::String(v)), Some(u)) => format!("{v} {u}"),
            (Some(v), Some(u)) => format!("{v} {u}"),
            (Some(v), None) => v.to_string(),
            _ => String::new(),
        };
        t.row(vec![
            c.name.clone(),
            c.status.word().into(),
            observed,
            c.output.clone().unwrap_or_default(),
        ]);
    }
    out.push_str(&t.render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roll_up_takes_the_weightiest_and_maps_to_nagios() {
        use Status::*;
        let cases: &[(&[Status], Status, i32)] = &[
            (&[], Pass, 0),
            (&[Pass, Pass], Pass, 0),
            (&[Pass, Warn], Warn, 1),
            (&[Warn, Unknown, Pass], Unknown, 3),
            (&[Unknown, Fail, Warn], Fail, 2),
        ];
        for (statuses, want, code) in cases {
            let got = roll_up(statuses.iter().copied());
            assert_eq!(got, *want, "{statuses:?}");
            assert_eq!(got.nagios_code(), *code);
        }
        assert_eq!(Unknown.ietf(), "fail");
    }

    #[test]
    fn freshness_warns_after_the_stale_time_and_fails_after_the_factor() {
        let now = 1_000_000;
        let cases: &[(Option<i64>, Status, Option<i64>)] = &[
            (None, Status::Warn, None),
            (Some(now - 60 * 60), Status::Pass, Some(60)),
            (Some(now - 61 * 60), Status::Warn, Some(61)),
            (Some(now - 240 * 60), Status::Warn, Some(240)),
            (Some(now - 241 * 60), Status::Fail, Some(241)),
            (Some(now + 30), Status::Pass, Some(0)),
        ];
        for (last, status, minutes) in cases {
            let v = freshness(*last, now, 60, 4);
            assert_eq!(v.status, *status, "{last:?}");
            assert_eq!(v.value.and_then(|v| v.as_i64()), *minutes, "{last:?}");
        }
    }

    #[test]
    fn the_failure_rate_counts_finished_runs_only() {
        let runs = |outcomes: &[&str]| -> Vec<RunRecord> {
            outcomes
                .iter()
                .map(|o| RunRecord {
                    outcome: o.to_string(),
                    ..Default::default()
                })
                .collect()
        };
        let cases: &[(&[&str], Status, Option<f64>)] = &[
            (&[], Status::Pass, None),
            (&["running", "dry_run"], Status::Pass, None),
            (&["ok", "ok", "ok", "failed"], Status::Warn, Some(25.0)),
            (
                &["ok", "ok", "ok", "ok", "failed"],
                Status::Pass,
                Some(20.0),
            ),
            (
                &["failed", "interrupted", "failed", "ok"],
                Status::Fail,
                Some(75.0),
            ),
            (
                &["running", "failed", "ok", "ok", "ok"],
                Status::Warn,
                Some(25.0),
            ),
        ];
        for (outcomes, status, percent) in cases {
            let v = failure_rate(&runs(outcomes), 25, 75);
            assert_eq!(v.status, *status, "{outcomes:?}");
            assert_eq!(v.value.and_then(|v| v.as_f64()), *percent, "{outcomes:?}");
        }
    }

    #[test]
    fn an_old_cursor_warns() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        let age = |day| cursor_age(day, today, 2);
        assert_eq!(age(None).status, Status::Pass);
        assert_eq!(age(Some("2026-11-29")).status, Status::Pass);
        assert_eq!(age(Some("2026-11-28")).status, Status::Pass);
        let old = age(Some("2026-11-27"));
        assert_eq!(old.status, Status::Warn);
        assert_eq!(old.value, Some(2.into()));
        assert_eq!(age(Some("garbage")).status, Status::Warn);
    }

    #[test]
    fn breakers_of_the_pair_fail_when_open_and_warn_half_open() {
        let row = |endpoint: &str, state: State| {
            (
                endpoint.to_string(),
                Breaker {
                    state,
                    failures: 5,
                    opened_at: Some(1),
                },
            )
        };
        let mine = vec!["https://dav.example.org:443".to_string()];
        let rows = [
            row("https://other.example.org:443", State::Open),
            row("https://dav.example.org:443", State::Closed),
        ];
        assert_eq!(breakers(&rows, &mine).status, Status::Pass);
        let rows = [row("https://dav.example.org:443", State::HalfOpen)];
        assert_eq!(breakers(&rows, &mine).status, Status::Warn);
        let rows = [row("https://dav.example.org:443", State::Open)];
        let v = breakers(&rows, &mine);
        assert_eq!(v.status, Status::Fail);
        assert!(v.output.unwrap().contains("dav.example.org"));
        assert_eq!(breakers(&[], &mine).status, Status::Pass);
    }

    #[test]
    fn a_probe_names_what_failed() {
        let names = |result: Result<u128, &ProviderError>, remote| {
            probe(result, remote)
                .into_iter()
                .map(|(m, v)| (m, v.status))
                .collect::<Vec<_>>()
        };
        use Status::*;
        assert_eq!(
            names(Ok(12), true),
            [("connectivity", Pass), ("auth", Pass), ("calendar", Pass)]
        );
        assert_eq!(names(Ok(1), false), [("calendar", Pass)]);
        let down = ProviderError::Transient {
            endpoint: "http://127.0.0.1:9".into(),
            detail: "cannot connect".into(),
        };
        assert_eq!(names(Err(&down), true), [("connectivity", Fail)]);
        let refused = ProviderError::Auth {
            endpoint: "https://x:443".into(),
            detail: "401".into(),
        };
        assert_eq!(
            names(Err(&refused), true),
            [("connectivity", Pass), ("auth", Fail)]
        );
        let missing = ProviderError::Failed {
            what: "feed".into(),
            detail: "HTTP 404".into(),
        };
        assert_eq!(
            names(Err(&missing), true),
            [("connectivity", Pass), ("auth", Pass), ("calendar", Fail)]
        );
        assert_eq!(names(Err(&missing), false), [("calendar", Fail)]);
    }
}
