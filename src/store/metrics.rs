//! What the metrics file reads from the state file beyond runs and mappings: the circuit
//! breakers' persisted state. Read-only; the breaker itself (src/net) owns the writes.

use super::{Store, StoreError};

/// One endpoint's breaker as stored in the `breaker` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerRow {
    /// `scheme://host:port`.
    pub endpoint: String,
    /// As stored (`closed`, `open`, `half_open`; case as the writer chose).
    pub state: String,
    /// Consecutive failures counted towards opening.
    pub failures: i64,
}

impl Store {
    /// Every endpoint's breaker, by endpoint.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn breaker_rows(&self) -> Result<Vec<BreakerRow>, StoreError> {
        let mut st = self
            .conn()
            .prepare("SELECT endpoint, state, failures FROM breaker ORDER BY endpoint")
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(BreakerRow {
                    endpoint: r.get(0)?,
                    state: r.get(1)?,
                    failures: r.get(2)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_rows_are_read_in_endpoint_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        assert!(store.breaker_rows().unwrap().is_empty());
        store
            .conn()
            .execute_batch(
                "INSERT INTO breaker (endpoint, state, failures, opened_at) VALUES
                 ('https://z.example:443', 'OPEN', 5, 1700000000),
                 ('https://a.example:443', 'CLOSED', 0, NULL);",
            )
            .unwrap();
        let rows = store.breaker_rows().unwrap();
        assert_eq!(
            rows,
            [
                BreakerRow {
                    endpoint: "https://a.example:443".into(),
                    state: "CLOSED".into(),
                    failures: 0
                },
                BreakerRow {
                    endpoint: "https://z.example:443".into(),
                    state: "OPEN".into(),
                    failures: 5
                },
            ]
        );
    }
}
