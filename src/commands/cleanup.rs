//! `calsync cleanup`: removes calsync's own target events that ended before the retention
//! horizon, then prunes run history and API metrics.
//!
//! Only events calsync owns are touched: an event is removed when the mapping holds it, its
//! `ends_at` lies before the horizon (a series without end never does), and the target still
//! lists it under the tag derived from its item key. Everything else in the target — other
//! people's events, another pair's — is left alone. A removal goes through `Target::apply`
//! like sync's deletions (intent row first, outcome and mapping in one transaction after);
//! a target that is one file is rewritten afterwards. Same lock, log lines and exit codes as
//! `sync`; `--dry-run` changes nothing at all.

use super::{Session, audit_log};
use crate::cli::{CleanupArgs, GlobalArgs};
use crate::config::Pair;
use crate::engine::{Prepared, StoredPublished, Tally, write_batch};
use crate::error::Error;
use crate::exit;
use crate::hashing;
use crate::model::ItemKey;
use crate::providers::dry_run::DryRun;
use crate::providers::{self, Context, ProviderError, Write};
use crate::store::{MappedRow, RunRecord, StoreError};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

/// Removals prepared and recorded together (as sync's batches).
const BATCH: usize = 64;

/// The retention horizon: events that ended before it are removed. It is `now −
/// retention_days`, but never later than the start of the sync window (`now − past_days`):
/// an event inside the window would only be published again by the next sync.
pub fn retention_horizon(now: DateTime<Utc>, retention_days: u32, past_days: u32) -> DateTime<Utc> {
    let retention = now - Duration::days(i64::from(retention_days));
    let window_from = now - Duration::days(i64::from(past_days));
    retention.min(window_from)
}

/// Whether a published item has expired: it ends, and before the horizon (Unix seconds).
pub fn expired(ends_at: Option<i64>, horizon: i64) -> bool {
    ends_at.is_some_and(|end| end < horizon)
}

/// Expired items sorted by what the target says of them.
#[derive(Debug, Default)]
pub struct Selection {
    /// Listed in the target under this item's own tag: ours, removed.
    pub removals: Vec<Write>,
    /// Not listed under calsync's tag at all: forgotten, the target is not written.
    pub gone: Vec<MappedRow>,
    /// Listed under another tag (another item's, another pair's): left alone.
    pub not_ours: Vec<MappedRow>,
}

/// Decides, for expired mapped items, which are removed: only those the target lists (by
/// target id) under the tag derived from the item itself. `listed` maps the target ids of
/// the events carrying one of calsync's tags to that tag.
pub fn select_removals(
    pair: &str,
    expired: Vec<MappedRow>,
    listed: &BTreeMap<String, String>,
) -> Selection {
    let mut s = Selection::default();
    for row in expired {
        let item = ItemKey(row.item_key.clone());
        match listed.get(&row.target_id) {
            Some(tag) if *tag == hashing::item_tag(pair, &item) => s.removals.push(Write::Delete {
                item,
                target_id: row.target_id,
                etag: row.etag,
            }),
            Some(_) => s.not_ours.push(row),
            None => s.gone.push(row),
        }
    }
    s
}

/// What one pair's cleanup did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Expired items found in the mapping.
    pub expired: u64,
    /// Removed from the target (or, with `--dry-run`, that would be).
    pub removed: u64,
    /// No longer in the target under calsync's tag: forgotten without a write.
    pub forgotten: u64,
    /// In the target under another tag: not ours to remove, left alone.
    pub not_ours: u64,
    /// Removals that did not take effect.
    pub failed: u64,
}

/// Runs `cleanup`; returns the most severe pair outcome.
///
/// # Errors
/// What stops the run before any pair runs (config, usage, lock, state).
pub fn run(global: &GlobalArgs, args: &CleanupArgs) -> Result<i32, Error> {
    let started = std::time::Instant::now();
    let now = crate::clock::run_now().map_err(Error::Usage)?;
    let (session, pairs) = Session::open(global, args.dry_run)?;
    // Each pair's own retention_days, unless --retention-days overrides it (pair.started
    // names the horizon either way).
    match args.retention_days {
        Some(days) => log::info!(event = "cleanup.started", pairs = pairs.join(",").as_str(),
                                 dry_run = args.dry_run, retention_days = days,
                                 version = env!("CARGO_PKG_VERSION"); "cleanup started"),
        None => log::info!(event = "cleanup.started", pairs = pairs.join(",").as_str(),
                           dry_run = args.dry_run, version = env!("CARGO_PKG_VERSION");
                           "cleanup started"),
    }
    session.audit_config_change();
    let mut results: Vec<(String, i32, Counts)> = Vec::new();
    for name in &pairs {
        if crate::interrupt::requested() {
            break;
        }
        let pair = session.pair(name);
        let retention_days = args.retention_days.unwrap_or(pair.retention_days);
        let (code, counts, error) = cleanup_pair(&session, pair, retention_days, now);
        {
            session.audit(
                "cleanup",
                Some(&pair.name),
                serde_json::json!({
                    "exit_code": code,
                    "retention_days": retention_days,
                    "expired": counts.expired,
                    "removed": counts.removed,
                    "forgotten": counts.forgotten,
                    "not_ours": counts.not_ours,
                    "failed": counts.failed,
                }),
            );
            audit_log::auth(&session, pair, code, error.as_deref());
        }
        results.push((pair.name.clone(), code, counts));
    }
    if crate::interrupt::requested() && results.len() < pairs.len() {
        log::warn!(event = "cleanup.interrupted", left = (pairs.len() - results.len()) as u64;
                   "stop requested: remaining pairs not run");
    }
    session.flush_breakers();
    let history_pruned = session.flush_metrics();
    {
        log::info!(event = "history.pruned", rows = history_pruned,
                   keep_runs = session.settings.history.keep_runs,
                   keep_metrics_days = session.settings.history.keep_metrics_days;
                   "run history and API metrics pruned");
    }
    session.log_chain_head();
    let mut code = exit::most_severe(results.iter().map(|r| r.1));
    if let Some(stopped) = crate::interrupt::exit_code() {
        code = exit::most_severe([code, stopped]);
    }
    let sum = |f: fn(&Counts) -> u64| results.iter().map(|r| f(&r.2)).sum::<u64>();
    log::info!(
        event = "cleanup.finished",
        outcome = if code == exit::OK { "ok" } else { "failed" },
        exit_code = code,
        pairs = results.len() as u64,
        pairs_failed = results.iter().filter(|r| r.1 != exit::OK).count() as u64,
        expired = sum(|c| c.expired),
        removed = sum(|c| c.removed),
        forgotten = sum(|c| c.forgotten),
        not_ours = sum(|c| c.not_ours),
        failed = sum(|c| c.failed),
        history_pruned = history_pruned,
        dry_run = args.dry_run,
        duration_ms = started.elapsed().as_millis() as u64;
        "cleanup finished"
    );
    Ok(code)
}

/// One pair's cleanup, recorded in the run history like a sync: exit code, counts, error.
fn cleanup_pair(
    session: &Session,
    pair: &Pair,
    retention_days: u32,
    now: DateTime<Utc>,
) -> (i32, Counts, Option<String>) {
    let dry_run = session.dry_run;
    let started = Utc::now();
    let horizon = retention_horizon(now, retention_days, pair.window.past_days);
    let mut record = RunRecord {
        run_id: session.run_id.clone(),
        pair: pair.name.clone(),
        command: "cleanup".into(),
        started_at: started.timestamp_millis(),
        ..Default::default()
    };
    if let Err(e) = session.store.start_run(&record) {
        let e = ProviderError::State(e);
        log::error!(event = "pair.failed", pair = pair.name.as_str(), exit_code = e.exit_code(); "{e}");
        return (e.exit_code(), Counts::default(), Some(e.to_string()));
    }
    if retention_days < pair.window.past_days {
        log::warn!(event = "cleanup.horizon_clamped", pair = pair.name.as_str(),
                   retention_days = retention_days, past_days = pair.window.past_days;
                   "retention is shorter than the sync window; events inside the window are kept (sync would publish them again)");
    }
    log::info!(event = "pair.started", pair = pair.name.as_str(), target = pair.target.kind(),
               horizon = horizon.to_rfc3339_opts(chrono::SecondsFormat::Secs, true).as_str(),
               dry_run = dry_run; "cleanup of pair started");
    let mut counts = Counts::default();
    let (code, outcome, error) = match remove_expired(session, pair, horizon, now, &mut counts) {
        Ok(()) if counts.failed > 0 => (
            exit::FAILED,
            "failed",
            Some(format!("{} removals failed", counts.failed)),
        ),
        Ok(()) => (exit::OK, if dry_run { "dry_run" } else { "ok" }, None),
        Err(e) => {
            let code = e.exit_code();
            log::error!(event = "pair.failed", pair = pair.name.as_str(), exit_code = code; "{e}");
            let outcome = if matches!(e, ProviderError::Interrupted) {
                "interrupted"
            } else {
                "failed"
            };
            (code, outcome, Some(e.to_string()))
        }
    };
    let finished = Utc::now();
    {
        record.finished_at = Some(finished.timestamp_millis());
        record.outcome = outcome.to_string();
        record.exit_code = Some(code);
        record.deleted = counts.removed as i64;
        record.failed = counts.failed as i64;
        record.error = error.clone();
        if let Err(e) = session.store.finish_run(&record) {
            log::error!(event = "state.error", pair = pair.name.as_str(); "{e}");
        }
    }
    log::info!(
        event = "pair.finished",
        pair = pair.name.as_str(),
        outcome = outcome,
        exit_code = code,
        expired = counts.expired,
        removed = counts.removed,
        forgotten = counts.forgotten,
        not_ours = counts.not_ours,
        failed = counts.failed,
        duration_ms = (finished - started).num_milliseconds().max(0) as u64;
        "cleanup of pair finished"
    );
    (code, counts, error)
}

fn remove_expired(
    session: &Session,
    pair: &Pair,
    horizon: DateTime<Utc>,
    now: DateTime<Utc>,
    counts: &mut Counts,
) -> Result<(), ProviderError> {
    let store = &session.store;
    let mut candidates: Vec<MappedRow> = Vec::new();
    store.for_each_mapped(&pair.name, |row: MappedRow| {
        if expired(row.ends_at, horizon.timestamp()) {
            candidates.push(row);
        }
        Ok::<_, StoreError>(())
    })?;
    counts.expired = candidates.len() as u64;

    if !candidates.is_empty() {
        let ctx = Context::new(&session.settings, pair, &session.http, store, now);
        let mut target = providers::build_target(&ctx)?;
        if session.dry_run {
            target = Box::new(DryRun::new(target, &pair.name));
        }
        target.prepare()?;
        // The mapping says the item is ours; the target must say so too, under the tag of
        // this very item, before anything is removed.
        let listed: BTreeMap<String, String> = target
            .list_owned()?
            .into_iter()
            .map(|o| (o.target_id, o.tag))
            .collect();
        let Selection {
            removals,
            gone,
            not_ours,
        } = select_removals(&pair.name, candidates, &listed);
        for row in &not_ours {
            log::warn!(event = "cleanup.not_ours", pair = pair.name.as_str(), item = row.item_key.as_str(),
                       target_id = row.target_id.as_str();
                       "the target holds another item under this id; left alone");
        }
        counts.not_ours = not_ours.len() as u64;
        let interrupted = apply(session, pair, target.as_mut(), removals, now, counts)?;
        if !gone.is_empty() {
            store.transaction(|s| {
                for row in &gone {
                    s.delete_mapping(&pair.name, &row.item_key)?;
                    log::info!(event = "cleanup.forgotten", pair = pair.name.as_str(), item = row.item_key.as_str();
                               "no longer in the target; forgotten");
                }
                Ok(())
            })?;
            counts.forgotten = gone.len() as u64;
        }
        if counts.removed + counts.forgotten > 0 {
            let published = StoredPublished {
                store,
                pair: &pair.name,
                changed: true,
            };
            target.finish(&published)?;
        }
        if interrupted {
            return Err(ProviderError::Interrupted);
        }
    }
    Ok(())
}

/// Applies the removals in batches, the way sync writes (intents, then outcomes). Returns
/// whether it stopped early because a stop was asked.
fn apply(
    session: &Session,
    pair: &Pair,
    target: &mut dyn providers::Target,
    removals: Vec<Write>,
    now: DateTime<Utc>,
    counts: &mut Counts,
) -> Result<bool, ProviderError> {
    let prepared: Vec<Prepared> = removals
        .into_iter()
        .map(|write| Prepared {
            write,
            staged: None,
            withdrawn: false,
        })
        .collect();
    for batch in prepared.chunks(BATCH) {
        if crate::interrupt::requested() {
            log::warn!(event = "cleanup.interrupted", pair = pair.name.as_str(); "stop requested: no new removals");
            return Ok(true);
        }
        let mut tally = Tally::default();
        let written = write_batch(
            &session.store,
            &session.run_id,
            now,
            &pair.name,
            target,
            batch,
            &mut tally,
        );
        counts.removed += tally.deleted;
        counts.failed += tally.failed;
        written?;
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_horizon_is_the_retention_but_never_inside_the_window() {
        let now: DateTime<Utc> = "2026-11-29T12:00:00Z".parse().unwrap();
        assert_eq!(
            retention_horizon(now, 180, 30),
            "2026-06-02T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            retention_horizon(now, 7, 30),
            "2026-10-30T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(retention_horizon(now, 0, 0), now);
    }

    #[test]
    fn only_events_the_target_lists_under_the_items_own_tag_are_removed() {
        let row = |key: &str, target_id: &str| MappedRow {
            item_key: key.into(),
            source_key: key.into(),
            target_id: target_id.into(),
            etag: Some("\"1\"".into()),
            hash: String::new(),
            body: String::new(),
            zones: String::new(),
            ends_at: Some(1),
            dtstamp: 1,
        };
        let tag = |key: &str| hashing::item_tag("parish", &ItemKey(key.into()));
        let listed: BTreeMap<String, String> = [
            ("t-ours", tag("ours")),
            // Another item's tag under the id the mapping remembers for "moved".
            ("t-moved", tag("someone-else")),
            // Another pair's event.
            (
                "t-other-pair",
                hashing::item_tag("school", &ItemKey("theirs".into())),
            ),
        ]
        .into_iter()
        .map(|(id, t)| (id.to_string(), t))
        .collect();
        let s = select_removals(
            "parish",
            vec![
                row("ours", "t-ours"),
                row("moved", "t-moved"),
                row("theirs", "t-other-pair"),
                row("gone", "t-gone"),
            ],
            &listed,
        );
        let removed: Vec<(&str, &str)> = s
            .removals
            .iter()
            .map(|w| match w {
                Write::Delete {
                    item, target_id, ..
                } => (item.0.as_str(), target_id.as_str()),
                _ => panic!("only deletions"),
            })
            .collect();
        assert_eq!(removed, [("ours", "t-ours")]);
        let keys = |rows: &[MappedRow]| rows.iter().map(|r| r.item_key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&s.not_ours), ["moved", "theirs"]);
        assert_eq!(keys(&s.gone), ["gone"]);
    }

    #[test]
    fn only_items_that_ended_before_the_horizon_expire() {
        let horizon = 1000;
        assert!(expired(Some(999), horizon));
        assert!(!expired(Some(1000), horizon));
        assert!(!expired(Some(5000), horizon));
        assert!(
            !expired(None, horizon),
            "a series without end never expires"
        );
    }
}
