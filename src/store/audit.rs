//! The audit chain: security-relevant events, each sealed with
//! `mac = HMAC-SHA256(key, prev_mac ‖ canonical entry)`, so a changed, inserted, deleted or
//! reordered entry breaks the chain at a sequence number `audit-verify` can name.
//!
//! The key is the raw bytes of a file (at least 32). When the configuration names none, a
//! key of 32 random bytes is created beside the state file (0600) on first use.

use super::{Store, StoreError};
use hmac::{Hmac, Mac};
use rusqlite::{OptionalExtension, params};
use sha2::Sha256;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The key that seals the audit chain. Its `Debug` never shows it.
pub struct AuditKey {
    bytes: Vec<u8>,
    /// Where it was read from.
    pub path: PathBuf,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey({})", self.path.display())
    }
}

/// The least key length accepted.
pub const MIN_KEY_BYTES: usize = 32;

impl AuditKey {
    /// Reads the configured key file, or (when none is configured) the default key beside
    /// the state file, creating it when missing. Returns the key and whether it was created.
    ///
    /// # Errors
    /// A key file that cannot be read or is shorter than 32 bytes (a configuration problem).
    pub fn load_or_create(
        configured: Option<&Path>,
        state_path: &Path,
    ) -> Result<(AuditKey, bool), String> {
        if let Some(path) = configured {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("audit_key_file {}: cannot read: {e}", path.display()))?;
            if bytes.len() < MIN_KEY_BYTES {
                return Err(format!(
                    "audit_key_file {}: {} bytes; the key must be at least {MIN_KEY_BYTES} random bytes",
                    path.display(),
                    bytes.len()
                ));
            }
            return Ok((
                AuditKey {
                    bytes,
                    path: path.to_path_buf(),
                },
                false,
            ));
        }
        let path = Self::default_path(state_path);
        match std::fs::read(&path) {
            Ok(bytes) if bytes.len() >= MIN_KEY_BYTES => Ok((AuditKey { bytes, path }, false)),
            Ok(bytes) => Err(format!(
                "audit key {}: {} bytes; the key must be at least {MIN_KEY_BYTES} random bytes",
                path.display(),
                bytes.len()
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = vec![0u8; MIN_KEY_BYTES];
                getrandom::fill(&mut bytes)
                    .map_err(|e| format!("audit key {}: no randomness: {e}", path.display()))?;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| format!("audit key {}: cannot create: {e}", path.display()))?;
                file.write_all(&bytes)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| format!("audit key {}: cannot write: {e}", path.display()))?;
                Ok((AuditKey { bytes, path }, true))
            }
            Err(e) => Err(format!("audit key {}: cannot read: {e}", path.display())),
        }
    }

    /// Reads the configured key, or the default key beside the state file, without creating
    /// one (report commands create nothing). `None` when no key is configured and the default
    /// one does not exist yet.
    ///
    /// # Errors
    /// A key file that cannot be read or is shorter than 32 bytes.
    pub fn load_existing(
        configured: Option<&Path>,
        state_path: &Path,
    ) -> Result<Option<AuditKey>, String> {
        let default = Self::default_path(state_path);
        if configured.is_none() && !default.exists() {
            return Ok(None);
        }
        Self::load_or_create(configured, state_path).map(|(key, _)| Some(key))
    }

    /// Where the default key lives: beside the state file.
    pub fn default_path(state_path: &Path) -> PathBuf {
        state_path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join("audit.key")
    }

    #[cfg(test)]
    pub fn for_tests(bytes: &[u8]) -> AuditKey {
        AuditKey {
            bytes: bytes.to_vec(),
            path: PathBuf::from("(test)"),
        }
    }

    fn seal(&self, prev_mac: &str, canonical: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.bytes).expect("HMAC takes keys of any length");
        mac.update(prev_mac.as_bytes());
        mac.update(canonical.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// One audit entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: i64,
    pub ts: String,
    pub kind: String,
    pub pair: Option<String>,
    /// Canonical JSON (keys sorted): counts, ids, hashes — never titles or secrets.
    pub detail: String,
    pub mac: String,
}

impl AuditEntry {
    /// The text the MAC covers.
    fn canonical(seq: i64, ts: &str, kind: &str, pair: Option<&str>, detail: &str) -> String {
        serde_json::to_string(&(seq, ts, kind, pair, detail)).expect("tuples serialise")
    }
}

/// The last entry of the chain, as logged by every run (`SEQ:MAC`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub mac: String,
}

impl std::fmt::Display for ChainHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.mac)
    }
}

impl std::str::FromStr for ChainHead {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (seq, mac) = s
            .split_once(':')
            .ok_or_else(|| format!("'{s}' is not SEQ:MAC"))?;
        let seq = seq
            .parse()
            .map_err(|_| format!("'{seq}' is not a sequence number"))?;
        if mac.len() != 64 || !mac.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("'{mac}' is not a MAC (64 hex digits)"));
        }
        Ok(ChainHead {
            seq,
            mac: mac.to_ascii_lowercase(),
        })
    }
}

/// What recomputing the chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainCheck {
    /// Entries read.
    pub entries: u64,
    /// The last entry (none for an empty chain).
    pub head: Option<ChainHead>,
    /// The first entry that does not verify, and why.
    pub first_bad: Option<(i64, String)>,
}

impl Store {
    /// Appends an entry to the audit chain and returns the new head.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn append_audit(
        &self,
        key: &AuditKey,
        ts: &str,
        kind: &str,
        pair: Option<&str>,
        detail: &serde_json::Value,
    ) -> Result<ChainHead, StoreError> {
        let detail = serde_json::to_string(detail).expect("JSON values serialise");
        self.transaction(|s| {
            let prev: Option<(i64, String)> = s
                .conn()
                .query_row(
                    "SELECT seq, mac FROM audit ORDER BY seq DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(|e| s.sql(e))?;
            let (seq, prev_mac) = match prev {
                Some((seq, mac)) => (seq + 1, mac),
                None => (1, String::new()),
            };
            let mac = key.seal(
                &prev_mac,
                &AuditEntry::canonical(seq, ts, kind, pair, &detail),
            );
            s.conn()
                .execute(
                    "INSERT INTO audit (seq, ts, kind, pair, detail, mac) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![seq, ts, kind, pair, detail, mac],
                )
                .map_err(|e| s.sql(e))?;
            Ok(ChainHead { seq, mac })
        })
    }

    /// The chain's last entry.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn audit_head(&self) -> Result<Option<ChainHead>, StoreError> {
        self.conn()
            .query_row(
                "SELECT seq, mac FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| {
                    Ok(ChainHead {
                        seq: r.get(0)?,
                        mac: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// Entries in stored order (by sequence number).
    ///
    /// # Errors
    /// SQLite failures.
    pub fn audit_entries(&self) -> Result<Vec<AuditEntry>, StoreError> {
        let mut st = self
            .conn()
            .prepare("SELECT seq, ts, kind, pair, detail, mac FROM audit ORDER BY seq")
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(AuditEntry {
                    seq: r.get(0)?,
                    ts: r.get(1)?,
                    kind: r.get(2)?,
                    pair: r.get(3)?,
                    detail: r.get(4)?,
                    mac: r.get(5)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }

    /// Recomputes the chain from the first entry and names the first that does not verify.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn verify_audit(&self, key: &AuditKey) -> Result<ChainCheck, StoreError> {
        let entries = self.audit_entries()?;
        let mut prev_mac = String::new();
        let mut first_bad = None;
        for (expected_seq, e) in (1..).zip(entries.iter()) {
            if e.seq != expected_seq {
                first_bad = Some((
                    e.seq,
                    format!(
                        "sequence {} follows {}: entries are missing",
                        e.seq,
                        expected_seq - 1
                    ),
                ));
                break;
            }
            let want = key.seal(
                &prev_mac,
                &AuditEntry::canonical(e.seq, &e.ts, &e.kind, e.pair.as_deref(), &e.detail),
            );
            if want != e.mac {
                first_bad = Some((
                    e.seq,
                    "its MAC does not match: the entry, or one before it, was changed, inserted or moved"
                        .to_string(),
                ));
                break;
            }
            prev_mac = e.mac.clone();
        }
        Ok(ChainCheck {
            entries: entries.len() as u64,
            head: entries.last().map(|e| ChainHead {
                seq: e.seq,
                mac: e.mac.clone(),
            }),
            first_bad,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(n: i64) -> (tempfile::TempDir, Store, AuditKey) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.db")).unwrap();
        let key = AuditKey::for_tests(&[7u8; 32]);
        for i in 1..=n {
            s.append_audit(
                &key,
                &format!("2026-11-29T00:00:{i:02}Z"),
                "sync",
                Some("p"),
                &json!({"created": i}),
            )
            .unwrap();
        }
        (dir, s, key)
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let (_d, s, key) = chain(5);
        let check = s.verify_audit(&key).unwrap();
        assert_eq!(check.first_bad, None);
        assert_eq!(check.entries, 5);
        assert_eq!(check.head.unwrap().seq, 5);
    }

    #[test]
    fn each_tamper_names_the_first_bad_entry() {
        let cases: &[(&str, &str, i64)] = &[
            (
                "edit",
                "UPDATE audit SET detail = '{\"created\":99}' WHERE seq = 3",
                3,
            ),
            ("delete", "DELETE FROM audit WHERE seq = 2", 3),
            (
                "reorder",
                "UPDATE audit SET seq = -1 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 4; UPDATE audit SET seq = 4 WHERE seq = -1",
                2,
            ),
            (
                "insert",
                "UPDATE audit SET seq = seq + 100 WHERE seq >= 3; UPDATE audit SET seq = seq - 99 WHERE seq >= 103; INSERT INTO audit VALUES (3, '2026-11-29T00:00:00Z', 'sync', 'p', '{}', 'ab')",
                3,
            ),
        ];
        for (what, sql, bad) in cases {
            let (_d, s, key) = chain(5);
            s.conn().execute_batch(sql).unwrap();
            let check = s.verify_audit(&key).unwrap();
            assert_eq!(
                check.first_bad.as_ref().map(|b| b.0),
                Some(*bad),
                "{what}: {check:?}"
            );
        }
    }

    #[test]
    fn a_wrong_key_fails_at_the_first_entry_and_heads_parse() {
        let (_d, s, _key) = chain(2);
        let check = s.verify_audit(&AuditKey::for_tests(&[8u8; 32])).unwrap();
        assert_eq!(check.first_bad.unwrap().0, 1);
        let head = s.audit_head().unwrap().unwrap();
        assert_eq!(head.to_string().parse::<ChainHead>().unwrap(), head);
        assert!("3:xyz".parse::<ChainHead>().is_err());
    }

    #[test]
    fn the_default_key_is_created_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("calsync.db");
        let (k1, created) = AuditKey::load_or_create(None, &state).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&k1.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (k2, created) = AuditKey::load_or_create(None, &state).unwrap();
        assert!(!created);
        assert_eq!(k1.bytes, k2.bytes);
        let elsewhere = dir.path().join("sub/calsync.db");
        assert!(AuditKey::load_existing(None, &elsewhere).unwrap().is_none());
        assert!(!AuditKey::default_path(&elsewhere).exists());
        assert!(AuditKey::load_existing(None, &state).unwrap().is_some());
        let short = dir.path().join("short.key");
        std::fs::write(&short, b"too short").unwrap();
        assert!(
            AuditKey::load_or_create(Some(&short), &state)
                .unwrap_err()
                .contains("at least 32")
        );
    }
}
