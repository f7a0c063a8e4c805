//! Run history and per-run API metrics, for `history`, `health` and the metrics file.

use super::{Store, StoreError};
use crate::net::ApiCall;
use rusqlite::params;

/// One pair's part of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunRecord {
    pub run_id: String,
    pub pair: String,
    /// `sync` or `cleanup`.
    pub command: String,
    /// Unix milliseconds.
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// `running`, `ok`, `failed`, `interrupted`, `dry_run`.
    pub outcome: String,
    pub exit_code: Option<i32>,
    /// `full`, `delta`, `unchanged` (how the source was read).
    pub read_kind: Option<String>,
    pub created: i64,
    pub updated: i64,
    pub deleted: i64,
    pub unchanged: i64,
    pub withheld: i64,
    pub skipped: i64,
    pub failed: i64,
    /// Deletions the guard withheld.
    pub guard_withheld: i64,
    /// Deletions of events the source withdrew (private, cancelled, excluded).
    pub withdrawn: i64,
    /// The error that ended the pair's run, if any (ids only, never event text).
    pub error: Option<String>,
}

impl Store {
    /// The circuit breakers remembered from earlier runs.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn breakers(&self) -> Result<Vec<(String, crate::net::breaker::Breaker)>, StoreError> {
        use crate::net::breaker::{Breaker, State};
        let mut st = self
            .conn()
            .prepare("SELECT endpoint, state, failures, opened_at FROM breaker ORDER BY endpoint")
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map([], |r| {
                let state: String = r.get(1)?;
                Ok((
                    r.get::<_, String>(0)?,
                    Breaker {
                        // An unknown state is read as open: refusing is the safe side.
                        state: State::parse(&state).unwrap_or(State::Open),
                        failures: r.get(2)?,
                        opened_at: r.get(3)?,
                    },
                ))
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }

    /// Saves the circuit breakers.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn save_breakers(
        &self,
        breakers: &[(String, crate::net::breaker::Breaker)],
    ) -> Result<(), StoreError> {
        self.transaction(|s| {
            for (endpoint, b) in breakers {
                s.conn()
                    .execute(
                        "INSERT INTO breaker (endpoint, state, failures, opened_at) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (endpoint) DO UPDATE SET state = excluded.state,
                           failures = excluded.failures, opened_at = excluded.opened_at",
                        params![endpoint, b.state.as_str(), b.failures, b.opened_at],
                    )
                    .map_err(|e| s.sql(e))?;
            }
            Ok(())
        })
    }

    /// Records the start of a pair's run.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn start_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO run (run_id, pair, command, started_at, outcome) VALUES (?1, ?2, ?3, ?4, 'running')",
                params![run.run_id, run.pair, run.command, run.started_at],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// Records how a pair's run ended.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn finish_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE run SET finished_at = ?3, outcome = ?4, exit_code = ?5, read_kind = ?6,
                   created = ?7, updated = ?8, deleted = ?9, unchanged = ?10, withheld = ?11,
                   skipped = ?12, failed = ?13, guard_withheld = ?14, error = ?15,
                   withdrawn = ?16
                 WHERE run_id = ?1 AND pair = ?2",
                params![
                    run.run_id,
                    run.pair,
                    run.finished_at,
                    run.outcome,
                    run.exit_code,
                    run.read_kind,
                    run.created,
                    run.updated,
                    run.deleted,
                    run.unchanged,
                    run.withheld,
                    run.skipped,
                    run.failed,
                    run.guard_withheld,
                    run.error,
                    run.withdrawn
                ],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// The most recent runs, newest first; only those started at or after `since` (Unix ms).
    ///
    /// # Errors
    /// SQLite failures.
    pub fn recent_runs(
        &self,
        limit: usize,
        since: Option<i64>,
        pair: Option<&str>,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let mut st = self
            .conn()
            .prepare(
                "SELECT run_id, pair, command, started_at, finished_at, outcome, exit_code, read_kind,
                        created, updated, deleted, unchanged, withheld, skipped, failed,
                        guard_withheld, error, withdrawn
                 FROM run WHERE started_at >= ?1 AND (?2 IS NULL OR pair = ?2)
                 ORDER BY started_at DESC, pair LIMIT ?3",
            )
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map(
                params![since.unwrap_or(i64::MIN), pair, limit as i64],
                |r| {
                    Ok(RunRecord {
                        run_id: r.get(0)?,
                        pair: r.get(1)?,
                        command: r.get(2)?,
                        started_at: r.get(3)?,
                        finished_at: r.get(4)?,
                        outcome: r.get(5)?,
                        exit_code: r.get(6)?,
                        read_kind: r.get(7)?,
                        created: r.get(8)?,
                        updated: r.get(9)?,
                        deleted: r.get(10)?,
                        unchanged: r.get(11)?,
                        withheld: r.get(12)?,
                        skipped: r.get(13)?,
                        failed: r.get(14)?,
                        guard_withheld: r.get(15)?,
                        error: r.get(16)?,
                        withdrawn: r.get(17)?,
                    })
                },
            )
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }

    /// Records HTTP attempts of a run.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn record_api_calls(&self, run_id: &str, calls: &[ApiCall]) -> Result<(), StoreError> {
        self.transaction(|s| {
            let mut st = s
                .conn()
                .prepare_cached(
                    "INSERT INTO api_call (run_id, endpoint, method, status, attempt, latency_ms, at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(|e| s.sql(e))?;
            for c in calls {
                st.execute(params![
                    run_id,
                    c.endpoint,
                    c.method,
                    c.status,
                    c.attempt,
                    c.latency_ms,
                    c.at
                ])
                .map_err(|e| s.sql(e))?;
            }
            Ok(())
        })
    }

    /// API calls at or after `since` (Unix ms).
    ///
    /// # Errors
    /// SQLite failures.
    pub fn api_calls_since(&self, since: i64) -> Result<Vec<ApiCall>, StoreError> {
        let mut st = self
            .conn()
            .prepare(
                "SELECT endpoint, method, status, attempt, latency_ms, at FROM api_call
                 WHERE at >= ?1 ORDER BY at",
            )
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map([since], |r| {
                Ok(ApiCall {
                    endpoint: r.get(0)?,
                    method: r.get(1)?,
                    status: r.get(2)?,
                    attempt: r.get(3)?,
                    latency_ms: r.get(4)?,
                    at: r.get(5)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }

    /// Keeps the newest `keep_runs` runs and the API calls of the last `keep_ms`
    /// milliseconds before `now`; returns how many rows went.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn prune_history(&self, keep_runs: u32, now: i64, keep_ms: i64) -> Result<u64, StoreError> {
        self.transaction(|s| {
            let runs = s
                .conn()
                .execute(
                    "DELETE FROM run WHERE run_id NOT IN (
                        SELECT run_id FROM (SELECT DISTINCT run_id, max(started_at) AS t FROM run
                                            GROUP BY run_id ORDER BY t DESC LIMIT ?1))",
                    [keep_runs],
                )
                .map_err(|e| s.sql(e))?;
            let calls = s
                .conn()
                .execute("DELETE FROM api_call WHERE at < ?1", [now - keep_ms])
                .map_err(|e| s.sql(e))?;
            Ok((runs + calls) as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_recorded_listed_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.db")).unwrap();
        for i in 0..5 {
            let mut r = RunRecord {
                run_id: format!("r{i}"),
                pair: "p".into(),
                command: "sync".into(),
                started_at: 1000 * i,
                ..Default::default()
            };
            s.start_run(&r).unwrap();
            r.outcome = "ok".into();
            r.created = i;
            s.finish_run(&r).unwrap();
        }
        let recent = s.recent_runs(2, None, None).unwrap();
        assert_eq!(
            recent.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
            ["r4", "r3"]
        );
        assert_eq!(recent[0].created, 4);
        assert_eq!(s.recent_runs(10, Some(3000), None).unwrap().len(), 2);
        s.prune_history(3, 10_000, 1000).unwrap();
        assert_eq!(s.recent_runs(10, None, None).unwrap().len(), 3);
    }
}
