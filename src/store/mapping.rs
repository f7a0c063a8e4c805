//! Per-pair sync state: cursors, the staging area of the current run, the mapping of items to
//! target events and write-ahead intents.
//!
//! The staging area is why memory stays bounded by a page: a source read writes each page's
//! decisions here, the plan is one ordered query over staging and mapping (keys and hashes
//! only), and bodies are read back one batch at a time when they are written.

use super::{Store, StoreError};
use crate::plan::{PlanRow, SourceOutcome};
use rusqlite::{OptionalExtension, params};
use std::collections::BTreeSet;

/// What calsync remembers of a pair between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PairState {
    /// The source provider's opaque cursor (delta link, sync token, ETag…).
    pub cursor: Option<String>,
    /// The UTC day the cursor's window was set; a cursor from another day is not reused, so
    /// the window moves forward at least daily.
    pub cursor_day: Option<String>,
    /// Unix seconds of the last run that ended well.
    pub last_good_sync: Option<i64>,
}

/// An item the source wants published, as staged in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedItem {
    pub item_key: String,
    pub source_key: String,
    pub hash: String,
    /// The canonical JSON of the public event; empty when the mapping already holds this
    /// very content (same hash): it will not be written, so it is not staged either.
    pub body: String,
    /// IANA zones the event uses, comma-separated.
    pub zones: String,
    pub ends_at: Option<i64>,
}

/// A published item as the mapping holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedRow {
    pub item_key: String,
    pub source_key: String,
    pub target_id: String,
    pub etag: Option<String>,
    pub hash: String,
    pub body: String,
    pub zones: String,
    pub ends_at: Option<i64>,
    /// Unix seconds of the last content change (the published DTSTAMP).
    pub dtstamp: i64,
}

impl Store {
    /// Runs a cached statement that returns no rows.
    fn run_cached(&self, sql: &str, params: impl rusqlite::Params) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(sql)
            .and_then(|mut st| st.execute(params))
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// The pair's remembered state (empty for a pair never synced).
    ///
    /// # Errors
    /// SQLite failures.
    pub fn pair_state(&self, pair: &str) -> Result<PairState, StoreError> {
        self.conn()
            .query_row(
                "SELECT cursor, cursor_day, last_good_sync FROM pair_state WHERE pair = ?1",
                [pair],
                |r| {
                    Ok(PairState {
                        cursor: r.get(0)?,
                        cursor_day: r.get(1)?,
                        last_good_sync: r.get(2)?,
                    })
                },
            )
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(|e| self.sql(e))
    }

    fn ensure_pair(&self, pair: &str) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO pair_state (pair) VALUES (?1) ON CONFLICT (pair) DO NOTHING",
                [pair],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// Stores the source cursor (after the changes it covers are applied).
    ///
    /// # Errors
    /// SQLite failures.
    pub fn set_cursor(
        &self,
        pair: &str,
        cursor: Option<&str>,
        day: Option<&str>,
    ) -> Result<(), StoreError> {
        self.ensure_pair(pair)?;
        self.conn()
            .execute(
                "UPDATE pair_state SET cursor = ?2, cursor_day = ?3 WHERE pair = ?1",
                params![pair, cursor, day],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// Records a run that ended well.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn set_last_good_sync(&self, pair: &str, at: i64) -> Result<(), StoreError> {
        self.ensure_pair(pair)?;
        self.conn()
            .execute(
                "UPDATE pair_state SET last_good_sync = ?2 WHERE pair = ?1",
                params![pair, at],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// Empties the pair's staging area (at the start of a run).
    ///
    /// # Errors
    /// SQLite failures.
    pub fn clear_staging(&self, pair: &str) -> Result<(), StoreError> {
        self.conn()
            .execute_batch("SAVEPOINT clear_staging")
            .map_err(|e| self.sql(e))?;
        // When the staging area holds only this pair's rows (one pair, or the others cleared),
        // a DELETE without WHERE lets SQLite drop the tables' pages whole instead of removing
        // 100,000 rows and their index entries one by one (a third of a 1 % update at 100k).
        // MIN and MAX of the key's first column are two index lookups, not a scan.
        let others = |table: &str| {
            self.conn().query_row(
                &format!(
                    "SELECT (SELECT MIN(pair) FROM {table}) <> ?1 \
                         OR (SELECT MAX(pair) FROM {table}) <> ?1"
                ),
                [pair],
                |r| r.get::<_, Option<bool>>(0).map(|b| b.unwrap_or(false)),
            )
        };
        let clear = |table: &str| {
            others(table).and_then(|shared| {
                if shared {
                    self.conn()
                        .execute(&format!("DELETE FROM {table} WHERE pair = ?1"), [pair])
                } else {
                    self.conn().execute(&format!("DELETE FROM {table}"), [])
                }
            })
        };
        let r = clear("staged_item").and_then(|_| clear("staged_source"));
        self.conn()
            .execute_batch("RELEASE clear_staging")
            .map_err(|e| self.sql(e))?;
        r.map(|_| ()).map_err(|e| self.sql(e))
    }

    /// Stages one item the source wants published (a later staging of the same key wins).
    ///
    /// # Errors
    /// SQLite failures.
    pub fn stage_item(&self, pair: &str, item: &StagedItem) -> Result<(), StoreError> {
        self.run_cached(
            per_event::STAGE_ITEM,
            params![
                pair,
                item.item_key,
                item.source_key,
                item.hash,
                item.body,
                item.zones,
                item.ends_at
            ],
        )
    }

    /// The content hash the mapping holds for an item, if it is published.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn mapped_hash(&self, pair: &str, item_key: &str) -> Result<Option<String>, StoreError> {
        self.conn()
            .prepare_cached(per_event::MAPPED_HASH)
            .and_then(|mut st| {
                st.query_row(params![pair, item_key], |r| r.get(0))
                    .optional()
            })
            .map_err(|e| self.sql(e))
    }

    /// Records the policy's outcome for one source item; a later outcome replaces an earlier
    /// one (delta feeds may repeat an item), and drops items staged for it before.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn stage_source(
        &self,
        pair: &str,
        source_key: &str,
        outcome: SourceOutcome,
    ) -> Result<(), StoreError> {
        self.run_cached(per_event::UNSTAGE_SOURCE_ITEMS, params![pair, source_key])?;
        self.run_cached(
            per_event::STAGE_SOURCE,
            params![pair, source_key, outcome.as_str()],
        )
    }

    /// How many source items this run staged (any outcome).
    ///
    /// # Errors
    /// SQLite failures.
    pub fn staged_source_count(&self, pair: &str) -> Result<u64, StoreError> {
        self.conn()
            .query_row(
                "SELECT count(*) FROM staged_source WHERE pair = ?1",
                [pair],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))
    }

    /// The staged body of an item.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn staged_item(
        &self,
        pair: &str,
        item_key: &str,
    ) -> Result<Option<StagedItem>, StoreError> {
        self.conn()
            .prepare_cached(per_event::STAGED_ITEM)
            .and_then(|mut st| {
                st.query_row(params![pair, item_key], |r| {
                    Ok(StagedItem {
                        item_key: r.get(0)?,
                        source_key: r.get(1)?,
                        hash: r.get(2)?,
                        body: r.get(3)?,
                        zones: r.get(4)?,
                        ends_at: r.get(5)?,
                    })
                })
                .optional()
            })
            .map_err(|e| self.sql(e))
    }

    /// Every staged item of the pair (bodies included), ordered by item key.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn staged_items(&self, pair: &str) -> Result<Vec<StagedItem>, StoreError> {
        let mut st = self
            .conn()
            .prepare(
                "SELECT item_key, source_key, hash, body, zones, ends_at FROM staged_item
                 WHERE pair = ?1 ORDER BY item_key",
            )
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map([pair], |r| {
                Ok(StagedItem {
                    item_key: r.get(0)?,
                    source_key: r.get(1)?,
                    hash: r.get(2)?,
                    body: r.get(3)?,
                    zones: r.get(4)?,
                    ends_at: r.get(5)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }

    /// Every item that is staged or mapped, ordered by item key: the planner's input.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn plan_rows(&self, pair: &str) -> Result<Vec<PlanRow>, StoreError> {
        let mut st = self
            .conn()
            .prepare(
                "SELECT m.item_key, m.source_key, s.hash, s.ends_at, m.target_id, m.etag, m.hash,
                        m.ends_at, t.outcome, 1
                 FROM mapping m
                 LEFT JOIN staged_item s ON s.pair = m.pair AND s.item_key = m.item_key
                 LEFT JOIN staged_source t ON t.pair = m.pair AND t.source_key = m.source_key
                 WHERE m.pair = ?1
                 UNION ALL
                 SELECT s.item_key, s.source_key, s.hash, s.ends_at, NULL, NULL, NULL, NULL,
                        t.outcome, 0
                 FROM staged_item s
                 LEFT JOIN staged_source t ON t.pair = s.pair AND t.source_key = s.source_key
                 WHERE s.pair = ?1 AND NOT EXISTS (
                     SELECT 1 FROM mapping m WHERE m.pair = s.pair AND m.item_key = s.item_key)
                 ORDER BY 1",
            )
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map([pair], |r| {
                let staged_hash: Option<String> = r.get(2)?;
                let is_mapped: i64 = r.get(9)?;
                let outcome: Option<String> = r.get(8)?;
                Ok(PlanRow {
                    item_key: r.get(0)?,
                    source_key: r.get(1)?,
                    staged: match staged_hash {
                        Some(h) => Some((h, r.get(3)?)),
                        None => None,
                    },
                    mapped: if is_mapped == 1 {
                        Some((r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
                    } else {
                        None
                    },
                    source_outcome: outcome.as_deref().and_then(SourceOutcome::parse),
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }

    /// How many items of the pair are published.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn mapped_count(&self, pair: &str) -> Result<u64, StoreError> {
        self.conn()
            .query_row(
                "SELECT count(*) FROM mapping WHERE pair = ?1",
                [pair],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))
    }

    /// One published item.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn mapped(&self, pair: &str, item_key: &str) -> Result<Option<MappedRow>, StoreError> {
        self.conn()
            .prepare_cached(per_event::MAPPED)
            .and_then(|mut st| st.query_row(params![pair, item_key], mapped_row).optional())
            .map_err(|e| self.sql(e))
    }

    /// Records a published item (created or updated).
    ///
    /// # Errors
    /// SQLite failures.
    pub fn upsert_mapping(&self, pair: &str, row: &MappedRow) -> Result<(), StoreError> {
        self.run_cached(
            per_event::UPSERT_MAPPING,
            params![
                pair,
                row.item_key,
                row.source_key,
                row.target_id,
                row.etag,
                row.hash,
                row.body,
                row.zones,
                row.ends_at,
                row.dtstamp
            ],
        )
    }

    /// Forgets a published item (deleted from the target).
    ///
    /// # Errors
    /// SQLite failures.
    pub fn delete_mapping(&self, pair: &str, item_key: &str) -> Result<(), StoreError> {
        self.run_cached(per_event::DELETE_MAPPING, params![pair, item_key])
    }

    /// Calls `f` for every published item of the pair, ordered by item key.
    ///
    /// # Errors
    /// SQLite failures, or what `f` returns.
    pub fn for_each_mapped<E: From<StoreError>>(
        &self,
        pair: &str,
        mut f: impl FnMut(MappedRow) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut st = self
            .conn()
            .prepare(&format!(
                "SELECT {MAPPED_COLUMNS} FROM mapping WHERE pair = ?1 ORDER BY item_key"
            ))
            .map_err(|e| self.sql(e))?;
        let mut rows = st.query([pair]).map_err(|e| self.sql(e))?;
        while let Some(r) = rows.next().map_err(|e| self.sql(e))? {
            f(mapped_row(r).map_err(|e| self.sql(e))?)?;
        }
        Ok(())
    }

    /// The IANA zones used by the pair's published items.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn mapped_zones(&self, pair: &str) -> Result<BTreeSet<String>, StoreError> {
        let mut st = self
            .conn()
            .prepare("SELECT DISTINCT zones FROM mapping WHERE pair = ?1 AND zones != ''")
            .map_err(|e| self.sql(e))?;
        let lists = st
            .query_map([pair], |r| r.get::<_, String>(0))
            .map_err(|e| self.sql(e))?;
        let mut zones = BTreeSet::new();
        for list in lists {
            let list = list.map_err(|e| self.sql(e))?;
            zones.extend(
                list.split(',')
                    .filter(|z| !z.is_empty())
                    .map(str::to_string),
            );
        }
        Ok(zones)
    }

    /// Records the intent to write an item, before the write is sent.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn add_intent(
        &self,
        pair: &str,
        run_id: &str,
        item_key: &str,
        action: &str,
        target_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.run_cached(
            per_event::ADD_INTENT,
            params![pair, run_id, item_key, action, target_id, now],
        )
    }

    /// Drops the intent for an item once its outcome is recorded.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn clear_intent(&self, pair: &str, item_key: &str) -> Result<(), StoreError> {
        self.run_cached(per_event::CLEAR_INTENT, params![pair, item_key])
    }

    /// Intents left behind by a run that did not finish: `(item_key, action, target_id)`.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn pending_intents(
        &self,
        pair: &str,
    ) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        let mut st = self
            .conn()
            .prepare("SELECT item_key, action, target_id FROM intent WHERE pair = ?1 ORDER BY id")
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map([pair], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }
}

const MAPPED_COLUMNS: &str =
    "item_key, source_key, target_id, etag, hash, body, zones, ends_at, dtstamp";

/// The statements a run executes once per event (staging, writing, settling). Each must be
/// served by an index on all of its key columns — one that scans, or searches on `pair`
/// alone, makes a run quadratic in the calendar's size — and `tests::each_per_event_statement_uses_an_index`
/// holds every one of them to that with `EXPLAIN QUERY PLAN`.
pub(crate) mod per_event {
    pub const STAGE_ITEM: &str =
        "INSERT INTO staged_item (pair, item_key, source_key, hash, body, zones, ends_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (pair, item_key) DO UPDATE SET source_key = excluded.source_key,
           hash = excluded.hash, body = excluded.body, zones = excluded.zones,
           ends_at = excluded.ends_at";
    /// QUIRK: SQLite's planner (3.50) prefers the primary key's `pair = ?` prefix over the
    /// two-column index for this DELETE on a WITHOUT ROWID table — a scan of every staged item
    /// of the pair, once per source item: 6 million page reads at 10,000 events. The index is
    /// named explicitly.
    pub const UNSTAGE_SOURCE_ITEMS: &str = "DELETE FROM staged_item INDEXED BY staged_item_by_source WHERE pair = ?1 AND source_key = ?2";
    pub const STAGE_SOURCE: &str =
        "INSERT INTO staged_source (pair, source_key, outcome) VALUES (?1, ?2, ?3)
         ON CONFLICT (pair, source_key) DO UPDATE SET outcome = excluded.outcome";
    pub const STAGED_ITEM: &str =
        "SELECT item_key, source_key, hash, body, zones, ends_at FROM staged_item
         WHERE pair = ?1 AND item_key = ?2";
    pub const MAPPED: &str =
        "SELECT item_key, source_key, target_id, etag, hash, body, zones, ends_at, dtstamp
         FROM mapping WHERE pair = ?1 AND item_key = ?2";
    pub const UPSERT_MAPPING: &str =
        "INSERT INTO mapping (pair, item_key, source_key, target_id, etag, hash, body,
                              zones, ends_at, dtstamp)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (pair, item_key) DO UPDATE SET source_key = excluded.source_key,
           target_id = excluded.target_id, etag = excluded.etag, hash = excluded.hash,
           body = excluded.body, zones = excluded.zones, ends_at = excluded.ends_at,
           dtstamp = excluded.dtstamp";
    pub const DELETE_MAPPING: &str = "DELETE FROM mapping WHERE pair = ?1 AND item_key = ?2";
    pub const MAPPED_HASH: &str = "SELECT hash FROM mapping WHERE pair = ?1 AND item_key = ?2";
    pub const ADD_INTENT: &str =
        "INSERT INTO intent (pair, run_id, item_key, action, target_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    pub const CLEAR_INTENT: &str = "DELETE FROM intent WHERE pair = ?1 AND item_key = ?2";

    /// Every per-event statement, by name.
    #[cfg(test)]
    pub const ALL: &[(&str, &str)] = &[
        ("STAGE_ITEM", STAGE_ITEM),
        ("UNSTAGE_SOURCE_ITEMS", UNSTAGE_SOURCE_ITEMS),
        ("STAGE_SOURCE", STAGE_SOURCE),
        ("STAGED_ITEM", STAGED_ITEM),
        ("MAPPED", MAPPED),
        ("UPSERT_MAPPING", UPSERT_MAPPING),
        ("DELETE_MAPPING", DELETE_MAPPING),
        ("MAPPED_HASH", MAPPED_HASH),
        ("ADD_INTENT", ADD_INTENT),
        ("CLEAR_INTENT", CLEAR_INTENT),
    ];
}

fn mapped_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MappedRow> {
    Ok(MappedRow {
        item_key: r.get(0)?,
        source_key: r.get(1)?,
        target_id: r.get(2)?,
        etag: r.get(3)?,
        hash: r.get(4)?,
        body: r.get(5)?,
        zones: r.get(6)?,
        ends_at: r.get(7)?,
        dtstamp: r.get(8)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(key: &str, source: &str, hash: &str) -> StagedItem {
        StagedItem {
            item_key: key.into(),
            source_key: source.into(),
            hash: hash.into(),
            body: "{}".into(),
            zones: "Europe/Berlin".into(),
            ends_at: Some(100),
        }
    }

    fn mapped(key: &str, source: &str, hash: &str) -> MappedRow {
        MappedRow {
            item_key: key.into(),
            source_key: source.into(),
            target_id: format!("t-{key}"),
            etag: None,
            hash: hash.into(),
            body: "{}".into(),
            zones: String::new(),
            ends_at: Some(50),
            dtstamp: 1,
        }
    }

    /// Every per-event statement is served by an index on its whole key: the plan neither
    /// scans a table nor searches on `pair` alone.
    #[test]
    fn each_per_event_statement_uses_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.db")).unwrap();
        for (name, sql) in per_event::ALL {
            let mut st = s
                .conn()
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let params: Vec<Option<String>> = (0..st.parameter_count()).map(|_| None).collect();
            let plan: Vec<String> = st
                .query_map(rusqlite::params_from_iter(params), |r| {
                    r.get::<_, String>(3)
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            for step in &plan {
                assert!(!step.contains("SCAN"), "{name} scans: {plan:?}");
                assert!(
                    !step.starts_with("SEARCH") || step.contains(" AND "),
                    "{name} searches on one column only: {plan:?}"
                );
            }
        }
    }

    #[test]
    fn plan_rows_join_staging_and_mapping_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.db")).unwrap();
        s.upsert_mapping("p", &mapped("b", "B", "h1")).unwrap();
        s.upsert_mapping("p", &mapped("c", "C", "h2")).unwrap();
        s.upsert_mapping("other", &mapped("z", "Z", "h")).unwrap();
        s.stage_source("p", "A", SourceOutcome::Publish).unwrap();
        s.stage_item("p", &item("a", "A", "h0")).unwrap();
        s.stage_source("p", "B", SourceOutcome::Publish).unwrap();
        s.stage_item("p", &item("b", "B", "h1-new")).unwrap();
        let rows = s.plan_rows("p").unwrap();
        let keys: Vec<&str> = rows.iter().map(|r| r.item_key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert!(rows[0].mapped.is_none() && rows[0].staged.is_some());
        assert_eq!(rows[1].staged.as_ref().unwrap().0, "h1-new");
        assert_eq!(rows[1].mapped.as_ref().unwrap().2, "h1");
        assert_eq!(rows[2].source_outcome, None);
        assert!(rows[2].staged.is_none());
    }

    #[test]
    fn a_later_outcome_for_a_source_replaces_its_staged_items() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.db")).unwrap();
        s.stage_source("p", "A", SourceOutcome::Publish).unwrap();
        s.stage_item("p", &item("a", "A", "h")).unwrap();
        s.stage_source("p", "A", SourceOutcome::Withhold).unwrap();
        let rows = s.plan_rows("p").unwrap();
        assert!(rows.is_empty());
        assert_eq!(s.staged_source_count("p").unwrap(), 1);
        s.clear_staging("p").unwrap();
        assert_eq!(s.staged_source_count("p").unwrap(), 0);
    }

    #[test]
    fn clearing_one_pairs_staging_leaves_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.db")).unwrap();
        for p in ["a", "m", "z"] {
            s.stage_source(p, "S", SourceOutcome::Publish).unwrap();
            s.stage_item(p, &item("i", "S", "h")).unwrap();
        }
        // The middle pair, then the first, then the last: shared tables each time.
        for (cleared, left) in [("m", ["a", "z"]), ("a", ["z", "z"])] {
            s.clear_staging(cleared).unwrap();
            assert_eq!(s.staged_source_count(cleared).unwrap(), 0);
            assert!(s.plan_rows(cleared).unwrap().is_empty());
            for p in left {
                assert_eq!(s.staged_source_count(p).unwrap(), 1, "{p} after {cleared}");
                assert_eq!(s.plan_rows(p).unwrap().len(), 1, "{p} after {cleared}");
            }
        }
        // Alone in the tables: emptied whole.
        s.clear_staging("z").unwrap();
        assert_eq!(s.staged_source_count("z").unwrap(), 0);
        assert!(s.plan_rows("z").unwrap().is_empty());
        s.clear_staging("z").unwrap(); // and an empty area clears too
    }

    #[test]
    fn deleting_forgets_only_that_pair_and_intents_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.db")).unwrap();
        s.upsert_mapping("p", &mapped("b", "B", "h1")).unwrap();
        s.upsert_mapping("q", &mapped("b", "B", "h1")).unwrap();
        s.delete_mapping("p", "b").unwrap();
        assert_eq!(s.mapped_count("p").unwrap(), 0);
        assert_eq!(s.mapped_count("q").unwrap(), 1);
        s.add_intent("p", "run1", "b", "create", None, 5).unwrap();
        assert_eq!(
            s.pending_intents("p").unwrap(),
            vec![("b".into(), "create".into(), None)]
        );
        s.clear_intent("p", "b").unwrap();
        assert!(s.pending_intents("p").unwrap().is_empty());
    }
}
