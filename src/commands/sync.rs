//! `calsync sync`: one pass per pair, a summary line last.

use super::Session;
use crate::cli::{GlobalArgs, SyncArgs};
use crate::engine::{Engine, SyncOptions};
use crate::error::Error;
use crate::exit;

/// Runs `sync`; returns the most severe pair outcome.
///
/// # Errors
/// What stops the run before any pair runs (config, usage, lock, state).
pub fn run(global: &GlobalArgs, args: &SyncArgs) -> Result<i32, Error> {
    let started = std::time::Instant::now();
    let now = crate::clock::run_now().map_err(Error::Usage)?;
    let (session, pairs) = Session::open(global, args.dry_run)?;
    log::info!(event = "sync.started", pairs = pairs.join(",").as_str(), dry_run = args.dry_run,
               full = args.full, version = env!("CARGO_PKG_VERSION"); "sync started");
    session.audit_config_change();
    let engine = Engine {
        settings: &session.settings,
        store: &session.store,
        http: &session.http,
        run_id: &session.run_id,
        now,
    };
    let opts = SyncOptions {
        dry_run: args.dry_run,
        full: args.full,
        allow_mass_delete: args.allow_mass_delete,
    };
    let mut reports = Vec::new();
    for name in &pairs {
        if crate::interrupt::requested() {
            break;
        }
        let pair = session.pair(name);
        let report = engine.sync_pair(pair, opts);
        {
            session.audit(
                "sync",
                Some(&report.pair),
                serde_json::json!({
                    "outcome": report.outcome,
                    "exit_code": report.exit_code,
                    "read": report.read_kind.map(|k| k.as_str()),
                    "created": report.counts.created,
                    "updated": report.counts.updated,
                    "deleted": report.counts.deleted,
                    "failed": report.counts.failed,
                    "withheld": report.counts.withheld,
                    "withheld_instances": report.counts.withheld_instances,
                    "guard_withheld": report.counts.guard_withheld,
                    "withdrawn": report.counts.withdrawn,
                }),
            );
            super::audit_log::auth(&session, pair, report.exit_code, report.error.as_deref());
        }
        reports.push(report);
    }
    if crate::interrupt::requested() && reports.len() < pairs.len() {
        log::warn!(event = "sync.interrupted", left = (pairs.len() - reports.len()) as u64; "stop requested: remaining pairs not run");
    }
    session.flush_breakers();
    let calls = session.flush_metrics_and_calls();
    session.log_chain_head();
    let mut code = exit::most_severe(reports.iter().map(|r| r.exit_code));
    if let Some(stopped) = crate::interrupt::exit_code() {
        code = exit::most_severe([code, stopped]);
    }
    // A dry run leaves monitoring alone: it changed nothing a dashboard should show.
    if !session.dry_run {
        let elapsed = started.elapsed();
        crate::metrics::export(
            &session.settings,
            &session.store,
            &reports,
            &calls,
            code,
            elapsed,
        );
    }
    let sum = |f: fn(&crate::engine::PairReport) -> u64| reports.iter().map(f).sum::<u64>();
    log::info!(
        event = "sync.finished",
        outcome = if code == exit::OK { "ok" } else { "failed" },
        exit_code = code,
        pairs = reports.len() as u64,
        pairs_failed = reports.iter().filter(|r| r.exit_code != exit::OK).count() as u64,
        created = sum(|r| r.counts.created),
        updated = sum(|r| r.counts.updated),
        deleted = sum(|r| r.counts.deleted),
        unchanged = sum(|r| r.counts.unchanged),
        withheld = sum(|r| r.counts.withheld_total()),
        withheld_not_public = sum(|r| r.counts.withheld_part("not_public")),
        withheld_cancelled = sum(|r| r.counts.withheld_part("cancelled")),
        withheld_excluded = sum(|r| r.counts.withheld_part("excluded")),
        withheld_out_of_window = sum(|r| r.counts.withheld_part("out_of_window")),
        withheld_invalid = sum(|r| r.counts.withheld_part("invalid")),
        withheld_instances = sum(|r| r.counts.withheld_part("instances")),
        skipped = sum(|r| r.counts.skipped),
        failed = sum(|r| r.counts.failed),
        guard_withheld = sum(|r| r.counts.guard_withheld),
        withdrawn = sum(|r| r.counts.withdrawn),
        dry_run = args.dry_run,
        duration_ms = started.elapsed().as_millis() as u64;
        "sync finished"
    );
    Ok(code)
}
