//! One sync pass for one pair: read, policy, plan, guard, intent, apply, commit, record.
//!
//! Plumbing only; the decisions live in `policy` (what may be published), `plan` (what to
//! write) and `plan::guard` (whether deletions may go ahead). The order matters for safety:
//! a read that fails ends the pass before anything is planned, so nothing is deleted; every
//! write is preceded by an intent row and followed, per batch, by one transaction that
//! records its outcome; the source cursor advances only after everything it covers was
//! applied (not after a failed write, a tripped guard or an interruption).

use crate::config::{Pair, Settings};
use crate::exit;
use crate::hashing;
use crate::ical::Published;
use crate::model::{ItemKey, PublicEvent};
use crate::net::Http;
use crate::plan::SourceOutcome;
use crate::plan::{self, Action, Guard, ReadKind};
use crate::policy::{self, Decision, Window, Withheld};
use crate::providers::dry_run::DryRun;
use crate::providers::{
    self, Context, ProviderError, PublishedSet, ReadEnd, Source, SourcePage, Target, Write,
    WriteError,
};
use crate::store::{MappedRow, RunRecord, StagedItem, Store, StoreError};
use chrono::{DateTime, TimeZone, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// Writes prepared and recorded together: one intent transaction before, one outcome
/// transaction after. Large enough that the pause between batches (the last writes of one
/// finishing before the next starts) is rare; small enough that an interrupted run stops soon.
const BATCH: usize = 128;

/// Makes a pair's source and target from its context.
pub type BuildProviders<'b> = dyn for<'c> FnMut(
        &Context<'c>,
    ) -> Result<(Box<dyn Source + 'c>, Box<dyn Target + 'c>), ProviderError>
    + 'b;

/// How a pass was asked to run.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncOptions {
    pub dry_run: bool,
    pub full: bool,
    pub allow_mass_delete: bool,
}

/// What one pair's pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
    pub unchanged: u64,
    /// Published items kept after they ended before the window.
    pub kept_past: u64,
    /// Source items not published, by reason.
    pub withheld: BTreeMap<&'static str, u64>,
    /// Overridden instances withheld from published series.
    pub withheld_instances: u64,
    /// Source items that could not be read.
    pub skipped: u64,
    /// Writes that did not take effect.
    pub failed: u64,
    /// Deletions withheld by the guard.
    pub guard_withheld: u64,
    /// Deletions of events the source withdrew explicitly (private, cancelled, excluded);
    /// part of `deleted`.
    pub withdrawn: u64,
    /// Source items read.
    pub read: u64,
    /// Of those, items the source listed as exactly what they were when last read (not read
    /// again; what was decided of them stands).
    pub read_unchanged: u64,
}

impl Counts {
    /// Every item withheld: the sum of [`WITHHELD_PARTS`].
    pub fn withheld_total(&self) -> u64 {
        self.withheld.values().sum::<u64>() + self.withheld_instances
    }

    /// One part of `withheld`: a reason's count (`not_public`, …), or `instances`.
    pub fn withheld_part(&self, part: &str) -> u64 {
        if part == "instances" {
            return self.withheld_instances;
        }
        self.withheld.get(part).copied().unwrap_or(0)
    }
}

/// The parts `withheld` is the sum of, as summaries name them (`withheld_<part>`): each
/// reason an item is withheld for, and single occurrences cut out of a published series.
pub const WITHHELD_PARTS: [&str; 6] = [
    "not_public",
    "cancelled",
    "excluded",
    "out_of_window",
    "invalid",
    "instances",
];

/// How one pair's pass ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairReport {
    pub pair: String,
    pub exit_code: i32,
    pub outcome: &'static str,
    pub read_kind: Option<ReadKind>,
    pub counts: Counts,
    /// One line, ids only.
    pub error: Option<String>,
}

/// Runs passes for the pairs of one invocation.
pub struct Engine<'a> {
    pub settings: &'a Settings,
    /// The state file, or for a dry run a copy of it in memory (`Store::snapshot`).
    pub store: &'a Store,
    pub http: &'a Http,
    pub run_id: &'a str,
    /// Fixed at the start of the run: the window and every timestamp derive from it.
    pub now: DateTime<Utc>,
}

impl Engine<'_> {
    /// One pass for one pair. Never panics on remote or input problems: every failure ends
    /// in the report's exit code.
    pub fn sync_pair(&self, pair: &Pair, opts: SyncOptions) -> PairReport {
        self.sync_pair_with(pair, opts, &mut |ctx| {
            Ok((providers::build_source(ctx)?, providers::build_target(ctx)?))
        })
    }

    /// [`sync_pair`](Self::sync_pair) with the providers `build` makes (tests hand in fakes).
    pub fn sync_pair_with(
        &self,
        pair: &Pair,
        opts: SyncOptions,
        build: &mut BuildProviders<'_>,
    ) -> PairReport {
        let started = Utc::now();
        let mut record = RunRecord {
            run_id: self.run_id.to_string(),
            pair: pair.name.clone(),
            command: "sync".into(),
            started_at: started.timestamp_millis(),
            ..Default::default()
        };
        if let Err(e) = self.store.start_run(&record) {
            return self.failed_early(pair, ProviderError::State(e));
        }
        log::info!(event = "pair.started", pair = pair.name.as_str(), source = pair.source.kind(),
                   target = pair.target.kind(), dry_run = opts.dry_run; "sync of pair started");
        let mut counts = Counts::default();
        let result = self.run_pass(pair, opts, build, &mut counts);
        let (exit_code, outcome, read_kind, error) = match result {
            Ok(done) => (
                done.exit_code,
                done.outcome,
                Some(done.read_kind),
                done.error,
            ),
            Err(e) => {
                let code = e.exit_code();
                let outcome = if matches!(e, ProviderError::Interrupted) {
                    "interrupted"
                } else {
                    "failed"
                };
                log::error!(event = "pair.failed", pair = pair.name.as_str(), exit_code = code;
                            "{e}");
                (code, outcome, None, Some(e.to_string()))
            }
        };
        let outcome = if opts.dry_run && exit_code == exit::OK {
            "dry_run"
        } else {
            outcome
        };
        let finished = Utc::now();
        {
            record.finished_at = Some(finished.timestamp_millis());
            record.outcome = outcome.to_string();
            record.exit_code = Some(exit_code);
            record.read_kind = read_kind.map(|k| k.as_str().to_string());
            record.created = counts.created as i64;
            record.updated = counts.updated as i64;
            record.deleted = counts.deleted as i64;
            record.unchanged = counts.unchanged as i64;
            record.withheld = counts.withheld_total() as i64;
            record.skipped = counts.skipped as i64;
            record.failed = counts.failed as i64;
            record.guard_withheld = counts.guard_withheld as i64;
            record.withdrawn = counts.withdrawn as i64;
            record.error = error.clone();
            if let Err(e) = self.store.finish_run(&record) {
                log::error!(event = "state.error", pair = pair.name.as_str(); "{e}");
            }
            if exit_code == exit::OK
                && let Err(e) = self
                    .store
                    .set_last_good_sync(&pair.name, finished.timestamp())
            {
                log::error!(event = "state.error", pair = pair.name.as_str(); "{e}");
            }
        }
        log::info!(
            event = "pair.finished",
            pair = pair.name.as_str(),
            outcome = outcome,
            exit_code = exit_code,
            read = read_kind.map(ReadKind::as_str).unwrap_or("none"),
            source_items = counts.read,
            source_unchanged = counts.read_unchanged,
            created = counts.created,
            updated = counts.updated,
            deleted = counts.deleted,
            unchanged = counts.unchanged,
            kept_past = counts.kept_past,
            withheld = counts.withheld_total(),
            withheld_not_public = counts.withheld_part("not_public"),
            withheld_cancelled = counts.withheld_part("cancelled"),
            withheld_excluded = counts.withheld_part("excluded"),
            withheld_out_of_window = counts.withheld_part("out_of_window"),
            withheld_invalid = counts.withheld_part("invalid"),
            withheld_instances = counts.withheld_part("instances"),
            skipped = counts.skipped,
            failed = counts.failed,
            guard_withheld = counts.guard_withheld,
            withdrawn = counts.withdrawn,
            duration_ms = (finished - started).num_milliseconds().max(0) as u64;
            "sync of pair finished"
        );
        PairReport {
            pair: pair.name.clone(),
            exit_code,
            outcome,
            read_kind,
            counts,
            error,
        }
    }

    fn failed_early(&self, pair: &Pair, e: ProviderError) -> PairReport {
        log::error!(event = "pair.failed", pair = pair.name.as_str(), exit_code = e.exit_code(); "{e}");
        PairReport {
            pair: pair.name.clone(),
            exit_code: e.exit_code(),
            outcome: "failed",
            read_kind: None,
            counts: Counts::default(),
            error: Some(e.to_string()),
        }
    }

    fn run_pass(
        &self,
        pair: &Pair,
        opts: SyncOptions,
        build: &mut BuildProviders<'_>,
        counts: &mut Counts,
    ) -> Result<PassEnd, ProviderError> {
        let ctx = Context::new(self.settings, pair, self.http, self.store, self.now);
        let (mut source, mut target) = build(&ctx)?;
        if opts.dry_run {
            target = Box::new(DryRun::new(target, &pair.name));
        }
        target.prepare()?;

        // A run that ended between an intent and its outcome left creates whose outcome is
        // unknown: they are sent again marked so (a target whose ids the server assigns looks
        // for them by tag first). Planning from the mapping converges for the rest.
        let pending = self.store.pending_intents(&pair.name)?;
        let uncertain: BTreeSet<String> = pending
            .iter()
            .filter(|(_, action, _)| action == "create")
            .map(|(item, _, _)| item.clone())
            .collect();
        if !pending.is_empty() {
            log::warn!(event = "intents.pending", pair = pair.name.as_str(), count = pending.len() as u64,
                       creates = uncertain.len() as u64;
                       "a previous run ended with writes in flight; converging");
            self.store.transaction(|s| {
                for (item, _, _) in &pending {
                    s.clear_intent(&pair.name, item)?;
                }
                Ok(())
            })?;
        }

        let state = self.store.pair_state(&pair.name)?;
        let today = self.now.format("%Y-%m-%d").to_string();
        let cursor = match (&state.cursor, opts.full) {
            (Some(c), false) if state.cursor_day.as_deref() == Some(today.as_str()) => {
                Some(c.as_str())
            }
            _ => None,
        };
        let window = ctx.window;

        // Read and stage. A failed read returns here: nothing planned, nothing deleted.
        self.store.clear_staging(&pair.name)?;
        let end: ReadEnd = {
            let shaped_by_window = |event: &PublicEvent| target.depends_on_window(event);
            let mut sink =
                |page: SourcePage| self.stage_page(pair, &window, &shaped_by_window, page, counts);
            source.read(cursor, &mut sink)?
        };
        let read_kind = end.kind;

        let adopted = if read_kind == ReadKind::Full && self.store.mapped_count(&pair.name)? == 0 {
            self.adopt(pair, target.as_mut(), None)?
        } else {
            self.sweep_uncertain(pair, target.as_mut(), &uncertain)?
        };
        let mapped = self.store.mapped_count(&pair.name)?;
        // A source that said "nothing changed" (and no write of an earlier run left in doubt)
        // plans nothing: every mapped item stays. This keeps a no-op run from reading the
        // whole mapping.
        let mut plan = if read_kind == ReadKind::Unchanged && !adopted {
            plan::Plan {
                unchanged: mapped,
                ..Default::default()
            }
        } else {
            let rows = self.store.plan_rows(&pair.name)?;
            plan::plan(&rows, read_kind, window.from.timestamp())
        };
        counts.unchanged = plan.unchanged;
        counts.kept_past = plan.kept_past;
        let source_empty =
            read_kind == ReadKind::Full && self.store.staged_source_count(&pair.name)? == 0;

        let mut exit_code = exit::OK;
        let mut advance_cursor = true;
        let mut error = None;
        if let Guard::Tripped {
            deletes,
            mapped,
            source_empty,
        } = plan::guard(&plan, mapped, source_empty, pair.guard)
        {
            if opts.allow_mass_delete {
                log::warn!(event = "guard.overridden", pair = pair.name.as_str(), deletes = deletes,
                           mapped = mapped; "deletion guard overridden by --allow-mass-delete");
            } else {
                counts.guard_withheld = plan.withhold_deletions();
                exit_code = exit::FAILED;
                advance_cursor = false;
                error = Some(format!(
                    "deletion guard tripped: {deletes} of {mapped} published events would be deleted (withdrawals, which go ahead, not counted)"
                ));
                log::error!(
                    event = "guard.tripped",
                    pair = pair.name.as_str(),
                    deletes = deletes,
                    mapped = mapped,
                    percent = (deletes * 100).checked_div(mapped).unwrap_or(0),
                    max_delete_percent = pair.guard.max_delete_percent,
                    max_delete_min = pair.guard.max_delete_min,
                    source_empty = source_empty;
                    "deletions withheld: the plan would delete too much; run `sync --allow-mass-delete` once if this is meant"
                );
            }
        }

        let interrupted = self.apply(pair, target.as_mut(), &plan.actions, &uncertain, counts)?;
        let published = StoredPublished {
            store: self.store,
            pair: &pair.name,
            changed: adopted || counts.created + counts.updated + counts.deleted > 0,
        };
        target.finish(&published)?;

        if interrupted {
            return Err(ProviderError::Interrupted);
        }
        if counts.failed > 0 {
            exit_code = exit_code.max(exit::FAILED);
            advance_cursor = false;
            error.get_or_insert_with(|| format!("{} writes failed", counts.failed));
        }
        if advance_cursor {
            self.store
                .set_cursor(&pair.name, end.cursor.as_deref(), Some(&today))?;
        }
        Ok(PassEnd {
            exit_code,
            outcome: outcome_of(exit_code),
            read_kind,
            error,
        })
    }

    /// Creates whose outcome is unknown, for items the source no longer wants (or that are
    /// already mapped), may have left an event in the target that nothing maps: find them
    /// by their tags and map them, so the plan deletes what is no longer wanted. Costs one
    /// listing of the target, only after a run that ended hard.
    fn sweep_uncertain(
        &self,
        pair: &Pair,
        target: &mut dyn Target,
        uncertain: &BTreeSet<String>,
    ) -> Result<bool, ProviderError> {
        let mut lost = BTreeSet::new();
        for item in uncertain {
            let staged = self.store.staged_item(&pair.name, item)?.is_some();
            let mapped = self.store.mapped(&pair.name, item)?.is_some();
            if !staged && !mapped {
                lost.insert(hashing::item_tag(&pair.name, &ItemKey(item.clone())));
            }
        }
        if lost.is_empty() {
            return Ok(false);
        }
        self.adopt(pair, target, Some(&lost))
    }

    /// Rebuilds a lost (or never made) mapping from the tags in the target, so that a new
    /// state file neither duplicates what is published nor leaves events nobody deletes. An
    /// owned event whose tag matches an item read now is adopted (kept when its content is
    /// what would be published, else updated); one that matches nothing is an orphan, mapped
    /// so the plan deletes it (the deletion guard still applies). With `only`, just the
    /// events carrying one of those tags are looked at. Returns whether anything was mapped.
    fn adopt(
        &self,
        pair: &Pair,
        target: &mut dyn Target,
        only: Option<&BTreeSet<String>>,
    ) -> Result<bool, ProviderError> {
        let owned: Vec<_> = target
            .list_owned()?
            .into_iter()
            .filter(|o| hashing::is_pair_tag(&pair.name, &o.tag))
            .filter(|o| only.is_none_or(|tags| tags.contains(&o.tag)))
            .collect();
        if owned.is_empty() {
            return Ok(false);
        }
        let staged: std::collections::HashMap<String, StagedItem> = self
            .store
            .staged_items(&pair.name)?
            .into_iter()
            .map(|i| {
                (
                    hashing::item_tag(&pair.name, &ItemKey(i.item_key.clone())),
                    i,
                )
            })
            .collect();
        let now = self.now.timestamp();
        let (mut adopted, mut orphans) = (0u64, 0u64);
        self.store.transaction(|s| {
            for o in &owned {
                let body = o.event.canonical_json();
                let row = match staged.get(&o.tag) {
                    Some(item) => {
                        adopted += 1;
                        MappedRow {
                            item_key: item.item_key.clone(),
                            source_key: item.source_key.clone(),
                            target_id: o.target_id.clone(),
                            etag: o.etag.clone(),
                            // Same content: nothing to write; else a hash no staging has.
                            hash: if body == item.body {
                                item.hash.clone()
                            } else {
                                format!("adopted:{}", hashing::sha256_hex(body.as_bytes()))
                            },
                            body,
                            zones: item.zones.clone(),
                            ends_at: item.ends_at,
                            // Kept: an unchanged event must render byte-identical.
                            dtstamp: o.dtstamp.unwrap_or(now),
                        }
                    }
                    None => {
                        orphans += 1;
                        let key = format!("orphan:{}", o.tag);
                        MappedRow {
                            item_key: key.clone(),
                            source_key: key,
                            target_id: o.target_id.clone(),
                            etag: o.etag.clone(),
                            hash: "orphan".into(),
                            zones: zones_of(&o.event),
                            body,
                            ends_at: None,
                            dtstamp: now,
                        }
                    }
                };
                s.upsert_mapping(&pair.name, &row)?;
            }
            Ok(())
        })?;
        log::warn!(event = "state.rebuilt", pair = pair.name.as_str(), adopted = adopted, orphans = orphans;
                   "no mapping in the state file: rebuilt it from the tags in the target");
        Ok(true)
    }

    /// Runs the policy on one page and stages its decisions, in one transaction.
    fn stage_page(
        &self,
        pair: &Pair,
        window: &Window,
        shaped_by_window: &dyn Fn(&PublicEvent) -> bool,
        page: SourcePage,
        counts: &mut Counts,
    ) -> Result<(), ProviderError> {
        if crate::interrupt::requested() {
            return Err(ProviderError::Interrupted);
        }
        for (key, reason) in &page.skipped {
            counts.skipped += 1;
            log::warn!(event = "event.skipped", pair = pair.name.as_str(),
                       source_key = key.as_ref().map(|k| k.0.as_str()).unwrap_or("(none)"),
                       reason = reason.as_str(); "source event skipped: it cannot be read faithfully");
        }
        self.store.transaction(|s| {
            for key in &page.removed {
                s.stage_source(&pair.name, &key.0, SourceOutcome::Removed)?;
            }
            for key in &page.unchanged {
                counts.read += 1;
                counts.read_unchanged += 1;
                s.stage_source(&pair.name, &key.0, SourceOutcome::Unchanged)?;
            }
            for event in &page.events {
                counts.read += 1;
                match policy::decide(&pair.name, event, &pair.rules, window) {
                    Decision::Publish {
                        items,
                        withheld_instances,
                        capped,
                    } => {
                        counts.withheld_instances += withheld_instances as u64;
                        if capped > 0 {
                            log::warn!(event = "series.capped", pair = pair.name.as_str(),
                                       source_key = event.key.0.as_str(),
                                       mirrored = items.len() as u64, left_out = capped as u64,
                                       max_occurrences = pair.rules.max_occurrences as u64;
                                       "series has more occurrences in the window than max_occurrences: the earliest are mirrored");
                        }
                        s.stage_source(&pair.name, &event.key.0, SourceOutcome::Publish)?;
                        for item in items {
                            let window_dependent = shaped_by_window(&item.event);
                            let mut item = staged(event, item);
                            if window_dependent {
                                // What the target holds of it depends on the window: a new
                                // day's window makes it differ from what is mapped.
                                item.hash = hashing::sha256_hex(
                                    format!("{}\0{}", item.hash, self.now.format("%Y-%m-%d"))
                                        .as_bytes(),
                                );
                            }
                            // Unchanged content is not written, so its body need not be
                            // staged: an update of 1 % of 100,000 events stages 1,000
                            // bodies, not 100,000.
                            if s.mapped_hash(&pair.name, &item.item_key)?.as_deref()
                                == Some(item.hash.as_str())
                            {
                                item.body.clear();
                            }
                            s.stage_item(&pair.name, &item)?;
                        }
                    }
                    Decision::Withhold(reason) => {
                        *counts.withheld.entry(reason.as_str()).or_default() += 1;
                        if reason == Withheld::NotPublic {
                            log::debug!(event = "event.withheld", pair = pair.name.as_str(),
                                        source_key = event.key.0.as_str(), reason = reason.as_str();
                                        "source event withheld");
                        }
                        let outcome = if reason.is_withdrawal(&event.main, &pair.rules) {
                            SourceOutcome::Withdraw
                        } else {
                            SourceOutcome::Withhold
                        };
                        s.stage_source(&pair.name, &event.key.0, outcome)?;
                    }
                    Decision::Past => {
                        s.stage_source(&pair.name, &event.key.0, SourceOutcome::Past)?
                    }
                }
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Applies the plan in batches. Returns whether it stopped early because a stop was asked.
    fn apply(
        &self,
        pair: &Pair,
        target: &mut dyn Target,
        actions: &[Action],
        uncertain: &BTreeSet<String>,
        counts: &mut Counts,
    ) -> Result<bool, ProviderError> {
        let progress = progress_bar(actions.len() as u64);
        for batch in actions.chunks(BATCH) {
            if crate::interrupt::requested() {
                log::warn!(event = "sync.interrupted", pair = pair.name.as_str(),
                           left = (actions.len() as u64).saturating_sub(counts.created + counts.updated + counts.deleted + counts.failed);
                           "stop requested: no new writes");
                return Ok(true);
            }
            let dtstamp = Utc
                .timestamp_opt(self.now.timestamp(), 0)
                .single()
                .unwrap_or(self.now);
            let mut writes = Vec::with_capacity(batch.len());
            let mut bodies = Vec::with_capacity(batch.len());
            let withdrawals: Vec<bool> = batch
                .iter()
                .map(|a| {
                    matches!(
                        a,
                        Action::Delete {
                            withdrawn: true,
                            ..
                        }
                    )
                })
                .collect();
            for action in batch {
                let item = ItemKey(action.item_key().to_string());
                let tag = hashing::item_tag(&pair.name, &item);
                match action {
                    Action::Create { .. } | Action::Update { .. } => {
                        let staged =
                            self.store
                                .staged_item(&pair.name, &item.0)?
                                .ok_or_else(|| {
                                    ProviderError::State(StoreError::Missing {
                                        path: self.store.path().to_path_buf(),
                                    })
                                })?;
                        let event: PublicEvent =
                            serde_json::from_str(&staged.body).map_err(|e| {
                                ProviderError::Failed {
                                    what: format!("staged item {}", item.0),
                                    detail: e.to_string(),
                                }
                            })?;
                        writes.push(match action {
                            Action::Update {
                                target_id, etag, ..
                            } => Write::Update {
                                item,
                                target_id: target_id.clone(),
                                etag: etag.clone(),
                                event,
                                tag,
                                dtstamp,
                            },
                            _ => Write::Create {
                                outcome_unknown: uncertain.contains(&item.0),
                                item,
                                event,
                                tag,
                                dtstamp,
                            },
                        });
                        bodies.push(Some(staged));
                    }
                    Action::Delete {
                        target_id, etag, ..
                    } => {
                        writes.push(Write::Delete {
                            item,
                            target_id: target_id.clone(),
                            etag: etag.clone(),
                        });
                        bodies.push(None);
                    }
                }
            }
            let prepared: Vec<Prepared> = writes
                .into_iter()
                .zip(bodies)
                .zip(withdrawals)
                .map(|((write, staged), withdrawn)| Prepared {
                    write,
                    staged,
                    withdrawn,
                })
                .collect();
            let mut tally = Tally::default();
            let written = write_batch(
                self.store,
                self.run_id,
                self.now,
                &pair.name,
                target,
                &prepared,
                &mut tally,
            );
            counts.created += tally.created;
            counts.updated += tally.updated;
            counts.deleted += tally.deleted;
            counts.withdrawn += tally.withdrawn;
            counts.failed += tally.failed;
            if let Some(p) = &progress {
                p.inc(batch.len() as u64);
            }
            written?;
        }
        if let Some(p) = progress {
            p.finish_and_clear();
        }
        Ok(false)
    }
}

/// One write with what the mapping records once it took effect (creates and updates).
pub struct Prepared {
    pub write: Write,
    pub staged: Option<StagedItem>,
    /// A deletion the source asked for explicitly (counted as `withdrawn`).
    pub withdrawn: bool,
}

/// What one batch's writes did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
    /// Deletions that were withdrawals (also counted in `deleted`).
    pub withdrawn: u64,
    pub failed: u64,
}

/// Writes one batch the crash-safe way (DESIGN.md, Crash safety): an intent row per write in
/// one transaction before anything is sent, then the target's answers, then the mapping and
/// the intents settled in one transaction. A write that failed changes nothing in the
/// mapping, so the next run plans it again. Sync and cleanup share this.
///
/// # Errors
/// State file failures, and a failure that ends the pair (credentials refused, breaker open,
/// stop requested) — after the batch's outcomes are recorded.
pub fn write_batch(
    store: &Store,
    run_id: &str,
    now: DateTime<Utc>,
    pair: &str,
    target: &mut dyn Target,
    batch: &[Prepared],
    tally: &mut Tally,
) -> Result<(), ProviderError> {
    let at = now.timestamp();
    store.transaction(|s| {
        for p in batch {
            let (verb, target_id) = match &p.write {
                Write::Create { .. } => ("create", None),
                Write::Update { target_id, .. } => ("update", Some(target_id.as_str())),
                Write::Delete { target_id, .. } => ("delete", Some(target_id.as_str())),
            };
            s.add_intent(pair, run_id, &p.write.item().0, verb, target_id, at)?;
        }
        Ok(())
    })?;
    let writes: Vec<Write> = batch.iter().map(|p| p.write.clone()).collect();
    let results = target.apply(&writes);
    let mut fatal = None;
    store.transaction(|s| {
        for (p, result) in batch.iter().zip(results) {
            let item = &p.write.item().0;
            match (&p.write, result) {
                (Write::Delete { .. }, Ok(_)) => {
                    s.delete_mapping(pair, item)?;
                    tally.deleted += 1;
                    if p.withdrawn {
                        tally.withdrawn += 1;
                        log::info!(event = "event.withdrawn", pair = pair, item = item.as_str();
                                   "removed from the target: the source withdrew it (private, cancelled or excluded)");
                    }
                }
                (Write::Create { .. } | Write::Update { .. }, Ok(applied)) => {
                    let staged = p.staged.as_ref().expect("creates and updates carry a body");
                    s.upsert_mapping(
                        pair,
                        &MappedRow {
                            item_key: item.clone(),
                            source_key: staged.source_key.clone(),
                            target_id: applied.target_id,
                            etag: applied.etag,
                            hash: staged.hash.clone(),
                            body: staged.body.clone(),
                            zones: staged.zones.clone(),
                            ends_at: staged.ends_at,
                            dtstamp: at,
                        },
                    )?;
                    if matches!(p.write, Write::Create { .. }) {
                        tally.created += 1;
                    } else {
                        tally.updated += 1;
                    }
                }
                (_, Err(WriteError::Conflict)) => {
                    tally.failed += 1;
                    log::warn!(event = "write.conflict", pair = pair, item = item.as_str();
                               "the target's event changed since calsync wrote it; left as it is");
                }
                (write, Err(WriteError::Failed(e))) => {
                    tally.failed += 1;
                    log::error!(event = "write.failed", pair = pair, item = item.as_str(),
                                exit_code = e.exit_code(); "{e}");
                    // A create that failed on the way (no answer, a 5xx) may have reached
                    // the target: its intent stays, so the next run sends it marked
                    // "outcome unknown".
                    let may_have_landed = matches!(write, Write::Create { .. })
                        && matches!(e, ProviderError::Transient { .. });
                    if e.ends_the_pair() {
                        fatal.get_or_insert(e);
                    }
                    if may_have_landed {
                        continue;
                    }
                }
            }
            s.clear_intent(pair, item)?;
        }
        Ok(())
    })?;
    match fatal {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
struct PassEnd {
    exit_code: i32,
    outcome: &'static str,
    read_kind: ReadKind,
    error: Option<String>,
}

fn outcome_of(code: i32) -> &'static str {
    if code == exit::OK { "ok" } else { "failed" }
}

/// The staging row of one item to publish.
fn staged(event: &crate::model::SourceEvent, item: policy::Publish) -> StagedItem {
    let body = item.event.canonical_json();
    StagedItem {
        item_key: item.item.0,
        source_key: event.key.0.clone(),
        hash: hashing::sha256_hex(body.as_bytes()),
        zones: zones_of(&item.event),
        body,
        ends_at: item.ends_at.map(|t| t.timestamp()),
    }
}

/// The IANA zones an event uses, comma-separated and sorted.
fn zones_of(event: &PublicEvent) -> String {
    let names: std::collections::BTreeSet<&str> = crate::ical::zones_of(event)
        .iter()
        .map(|tz| tz.name())
        .collect();
    names.into_iter().collect::<Vec<_>>().join(",")
}

/// A progress bar on stderr, only when stderr is a terminal.
fn progress_bar(total: u64) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if total == 0 || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_message("writing");
    Some(bar)
}

/// The published set of a pair, read from the mapping.
pub struct StoredPublished<'a> {
    pub store: &'a Store,
    pub pair: &'a str,
    /// The run changed the mapping (wrote, deleted or adopted something).
    pub changed: bool,
}

impl PublishedSet for StoredPublished<'_> {
    fn changed(&self) -> bool {
        self.changed
    }

    fn zones(&self) -> Result<std::collections::BTreeSet<String>, ProviderError> {
        Ok(self.store.mapped_zones(self.pair)?)
    }

    fn for_each(
        &self,
        f: &mut dyn FnMut(Published) -> Result<(), ProviderError>,
    ) -> Result<(), ProviderError> {
        self.store.for_each_mapped(self.pair, |row: MappedRow| {
            let event: PublicEvent =
                serde_json::from_str(&row.body).map_err(|e| ProviderError::Failed {
                    what: format!("state file mapping {}", row.item_key),
                    detail: e.to_string(),
                })?;
            f(Published {
                event,
                dtstamp: Utc
                    .timestamp_opt(row.dtstamp, 0)
                    .single()
                    .unwrap_or_default(),
                tag: hashing::item_tag(self.pair, &ItemKey(row.item_key)),
            })
        })
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod parts {
    use super::*;

    /// `withheld` is exactly the sum of its parts: every reason the policy withholds for has
    /// a part.
    #[test]
    fn the_withheld_parts_cover_every_reason() {
        // A new reason fails to compile here until it is listed below and has a part.
        let _every = |w: Withheld| match w {
            Withheld::NotPublic
            | Withheld::Cancelled
            | Withheld::Excluded
            | Withheld::OutOfWindow
            | Withheld::Invalid => (),
        };
        for reason in [
            Withheld::NotPublic,
            Withheld::Cancelled,
            Withheld::Excluded,
            Withheld::OutOfWindow,
            Withheld::Invalid,
        ] {
            assert!(WITHHELD_PARTS.contains(&reason.as_str()), "{reason:?}");
        }
    }
}
