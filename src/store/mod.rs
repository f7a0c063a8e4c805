//! The state file: one SQLite database (WAL) holding everything calsync remembers between runs.
//!
//! What lives here: sync cursors per pair, the mapping (item key → target id, etag, content
//! hash, published body), the staging area of the current run, write-ahead intents, run
//! history, per-run API metrics, circuit breakers, cached tokens and calendar ids, and the
//! audit chain. The file is created 0600; its schema is versioned (`PRAGMA user_version`) and
//! migrated forward; a file that is not a calsync state file, is corrupt, or has a newer
//! schema is refused (exit 78) and left exactly as it was.
//!
//! A state file is recognised by calsync's own SQLite `application_id` ([`APPLICATION_ID`]),
//! set when the file is created. Files written by calsync before it set one are recognised
//! by their schema instead: no application id, a `user_version` this build knows, and
//! exactly the tables, columns and indexes that calsync's migrations make at that version.
//! Such a file gets the id on its first open for writing; anything else — another program's
//! database, whatever its `user_version` — is refused before a single byte is written.
//!
//! calsync creates the state file, never a missing folder (systemd's `StateDirectory=` makes
//! the default one): a folder that does not exist, a path that names a folder, and a file or
//! folder calsync may not write are configuration problems (78) naming the path.
//!
//! Cost, chosen for calendars of 100,000 events on a small machine (DESIGN.md, Cost):
//! - every statement run once per event is served by an index on its whole key
//!   (`mapping::per_event`, held to it by a test with `EXPLAIN QUERY PLAN`);
//! - the page cache is 32 MiB (`cache_size = -32768`), against SQLite's 2 MiB default: the
//!   mapping of 100,000 events with their published bodies is about 150 MB, and a run touches
//!   it page by page, so a cache that holds the B-trees' inner pages and the current stretch
//!   of leaves turns most of those reads into memory reads; it is a ceiling, not an
//!   allocation (a small calendar uses what it needs);
//! - transactions are one per staged page of a source (200–500 items) and two per batch of
//!   writes (128): large enough that commits (WAL appends, `synchronous = NORMAL`, no fsync
//!   per commit) are a small part of a run, small enough that a stop or a crash loses at
//!   most one page of staging and never an outcome;
//! - the staging area of the previous run is emptied whole (a `DELETE` without `WHERE`, which
//!   frees its pages at once) when it holds only this pair's rows, instead of row by row with
//!   its index entries;
//! - the integrity of the whole file is not checked on open (that reads every page): damage
//!   shows on the page that is read, as the same "damaged" error (78).

mod audit;
mod mapping;
mod runs;

pub use audit::{AuditEntry, AuditKey, ChainCheck, ChainHead};
pub use mapping::{MappedRow, PairState, StagedItem};
pub use runs::RunRecord;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Problems with the state file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Not a database, corrupt, or written by a newer calsync: refused, untouched (78).
    #[error("state file {}: {problem}", path.display())]
    Unusable { path: PathBuf, problem: String },
    /// Another run holds the state file (75).
    #[error("state file {} is in use by another calsync run (lock {})", path.display(), lock.display())]
    Locked { path: PathBuf, lock: PathBuf },
    /// The state file does not exist (report commands do not create it).
    #[error("state file {} does not exist yet (no sync has run)", path.display())]
    Missing { path: PathBuf },
    /// An I/O or SQLite failure while using a good file.
    #[error("state file {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("state file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The schema, one migration per version. Version N is reached by running `MIGRATIONS[N-1]`.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE pair_state (
        pair TEXT PRIMARY KEY,
        cursor TEXT,
        cursor_day TEXT,
        last_good_sync INTEGER
    );
    CREATE TABLE mapping (
        pair TEXT NOT NULL,
        item_key TEXT NOT NULL,
        source_key TEXT NOT NULL,
        target_id TEXT NOT NULL,
        etag TEXT,
        hash TEXT NOT NULL,
        body TEXT NOT NULL,
        zones TEXT NOT NULL DEFAULT '',
        ends_at INTEGER,
        dtstamp INTEGER NOT NULL,
        PRIMARY KEY (pair, item_key)
    ) WITHOUT ROWID;
    CREATE INDEX mapping_by_source ON mapping (pair, source_key);
    CREATE TABLE staged_item (
        pair TEXT NOT NULL,
        item_key TEXT NOT NULL,
        source_key TEXT NOT NULL,
        hash TEXT NOT NULL,
        body TEXT NOT NULL,
        zones TEXT NOT NULL DEFAULT '',
        ends_at INTEGER,
        PRIMARY KEY (pair, item_key)
    ) WITHOUT ROWID;
    CREATE TABLE staged_source (
        pair TEXT NOT NULL,
        source_key TEXT NOT NULL,
        outcome TEXT NOT NULL,
        PRIMARY KEY (pair, source_key)
    ) WITHOUT ROWID;
    CREATE TABLE intent (
        id INTEGER PRIMARY KEY,
        pair TEXT NOT NULL,
        run_id TEXT NOT NULL,
        item_key TEXT NOT NULL,
        action TEXT NOT NULL,
        target_id TEXT,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE tombstone (
        pair TEXT NOT NULL,
        item_key TEXT NOT NULL,
        target_id TEXT NOT NULL,
        deleted_at INTEGER NOT NULL,
        PRIMARY KEY (pair, item_key)
    ) WITHOUT ROWID;
    CREATE TABLE run (
        run_id TEXT NOT NULL,
        pair TEXT NOT NULL,
        command TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        outcome TEXT NOT NULL DEFAULT 'running',
        exit_code INTEGER,
        read_kind TEXT,
        created INTEGER NOT NULL DEFAULT 0,
        updated INTEGER NOT NULL DEFAULT 0,
        deleted INTEGER NOT NULL DEFAULT 0,
        unchanged INTEGER NOT NULL DEFAULT 0,
        withheld INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        guard_withheld INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        PRIMARY KEY (run_id, pair)
    );
    CREATE INDEX run_by_start ON run (started_at);
    CREATE TABLE api_call (
        run_id TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        method TEXT NOT NULL,
        status INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        latency_ms INTEGER NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE INDEX api_call_by_time ON api_call (at);
    CREATE TABLE breaker (
        endpoint TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        failures INTEGER NOT NULL,
        opened_at INTEGER
    );
    CREATE TABLE cache (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        kind TEXT NOT NULL,
        pair TEXT,
        detail TEXT NOT NULL,
        mac TEXT NOT NULL
    );
    "#,
    // 2: nothing read the tombstones; a source outcome drops its staged items through an
    // index (it was a scan per staged source: a quadratic first sync).
    r#"
    DROP TABLE tombstone;
    CREATE INDEX staged_item_by_source ON staged_item (pair, source_key);
    "#,
    // 3: withdrawals (events the source made private, cancelled or excluded) are counted
    // apart from the deletions the guard judges.
    r#"
    ALTER TABLE run ADD COLUMN withdrawn INTEGER NOT NULL DEFAULT 0;
    "#,
    // 4: an intent is settled per item; without this index every settlement scanned them.
    r#"
    CREATE INDEX intent_by_item ON intent (pair, item_key);
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// calsync's SQLite `application_id`: "CSYN" in ASCII, as SQLite suggests ids be chosen.
pub const APPLICATION_ID: i32 = 0x4353_594E;

/// What a database file turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Identity {
    /// No schema at all: a file calsync just created, or an empty one.
    Empty,
    /// calsync's application id, at this schema version.
    Ours(i64),
    /// Written by a calsync from before the application id: recognised by its schema.
    Legacy(i64),
}

/// An open state file.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// Holds the state file's run lock until dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl StoreError {
    /// The exit code this error ends a command (or a pair's run) with: the one map from
    /// state-file problems to exit codes. A file that cannot be used as it is (not calsync's,
    /// damaged, newer, missing where one must exist) is a configuration problem (78); a file
    /// in use is "try later" (75), and so is an I/O or SQLite failure on a good file.
    pub fn exit_code(&self) -> i32 {
        match self {
            StoreError::Unusable { .. } | StoreError::Missing { .. } => crate::exit::CONFIG,
            StoreError::Locked { .. } | StoreError::Sqlite { .. } | StoreError::Io { .. } => {
                crate::exit::TEMPFAIL
            }
        }
    }
}

impl Store {
    /// Opens the state file, creating it (0600) and its schema when missing, migrating an
    /// older schema forward. The folder must exist: calsync never creates it.
    ///
    /// # Errors
    /// [`StoreError::Unusable`] for a path that cannot hold a state file (a missing folder, a
    /// folder, no permission to write) and for a file that is not a good calsync state file
    /// (left as it was); other variants for I/O failures.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        check_location(path)?;
        if path.exists() {
            // SQLite would quietly open a write-protected file read-only and fail on the
            // first write; say what is wrong instead.
            if let Err(e) = OpenOptions::new().read(true).write(true).open(path) {
                return Err(refused(path, "cannot be opened for writing", &e));
            }
        } else {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| refused(path, "cannot be created", &e))?;
        }
        // Identified without writing anything: a foreign file stays byte-identical.
        let identity = identify_file(path)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| unusable(path, &e))?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
        };
        let again = store.identify()?;
        if again != identity {
            return Err(StoreError::Unusable {
                path: path.to_path_buf(),
                problem: "changed while it was being opened; is another program writing it?".into(),
            });
        }
        store.migrate(identity)?;
        Ok(store)
    }

    /// Opens an existing state file for reading only (report commands never create one).
    ///
    /// # Errors
    /// [`StoreError::Missing`] when there is none; [`StoreError::Unusable`] as for [`open`](Self::open).
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        Store::open(path)
    }

    /// A state that lives in memory only, for report commands that must not create a state
    /// file but hand providers a place for their caches.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn in_memory() -> Result<Store, StoreError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|e| unusable(&path, &e))?;
        let store = Store { conn, path };
        store.migrate(Identity::Empty)?;
        Ok(store)
    }

    /// A copy in memory of the state file at `path` (an empty state when there is none), for
    /// a dry run: it runs the normal path against the copy, and nothing on disk changes — no
    /// file, lock, WAL or journal is created, and the copy is dropped at the end.
    ///
    /// A file is read as it stands on disk (`immutable`) unless a write-ahead log beside it
    /// shows a run in progress or one that ended hard; then it is read through that log
    /// (read-only: the log and its index exist already, nothing new is made).
    ///
    /// # Errors
    /// [`StoreError::Unusable`] as for [`open`](Self::open); SQLite failures.
    pub fn snapshot(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            check_location(path)?;
            let mut store = Store::in_memory()?;
            store.path = path.to_path_buf();
            return Ok(store);
        }
        check_location(path)?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let immutable = !Path::new(&wal).exists();
        let uri = format!(
            "file:{}?mode=ro{}",
            uri_path(path),
            if immutable { "&immutable=1" } else { "" }
        );
        let disk = Connection::open_with_flags(
            &uri,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| unusable(path, &e))?;
        let mut memory = Connection::open_in_memory().map_err(|e| unusable(path, &e))?;
        {
            let backup = rusqlite::backup::Backup::new(&disk, &mut memory)
                .map_err(|e| unusable(path, &e))?;
            backup
                .run_to_completion(256, std::time::Duration::ZERO, None)
                .map_err(|e| unusable(path, &e))?;
        }
        drop(disk);
        let store = Store {
            conn: memory,
            path: path.to_path_buf(),
        };
        let identity = store.identify()?;
        store.migrate(identity)?;
        Ok(store)
    }

    /// Takes the run lock of the state file at `path` (a `.lock` file beside the file the
    /// path really names: a symlink or another spelling of the path takes the same lock).
    ///
    /// # Errors
    /// [`StoreError::Locked`] at once when another run holds it; [`StoreError::Unusable`]
    /// when the path cannot hold a state file.
    pub fn lock(path: &Path) -> Result<RunLock, StoreError> {
        check_location(path)?;
        let mut lock_path = crate::fsutil::real_path(path).into_os_string();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                    refused(
                        path,
                        &format!("its lock {} cannot be created", lock_path.display()),
                        &e,
                    )
                }
                _ => StoreError::Io {
                    path: lock_path.clone(),
                    source: e,
                },
            })?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
                path: path.to_path_buf(),
                lock: lock_path,
            }),
            Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Io {
                path: lock_path,
                source,
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the open database is (reads only).
    fn identify(&self) -> Result<Identity, StoreError> {
        identify(&self.conn, &self.path)
    }

    /// Brings a database of a known identity to this build's schema, with calsync's
    /// application id.
    fn migrate(&self, identity: Identity) -> Result<(), StoreError> {
        let version = match identity {
            Identity::Empty => 0,
            Identity::Ours(v) | Identity::Legacy(v) => v,
        };
        self.conn
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA cache_size = -32768;",
            )
            .map_err(|e| self.sql(e))?;
        if matches!(identity, Identity::Legacy(_)) {
            self.conn
                .pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(|e| self.sql(e))?;
            log::info!(event = "state.marked", path = self.path.display().to_string().as_str(), schema = version;
                       "state file of an earlier calsync: marked with calsync's application id");
        }
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let target = i as i64 + 1;
            let tx = self.conn.unchecked_transaction().map_err(|e| self.sql(e))?;
            tx.execute_batch(migration).map_err(|e| self.sql(e))?;
            tx.pragma_update(None, "user_version", target)
                .map_err(|e| self.sql(e))?;
            // Set with the first schema, in its transaction: a state file never exists
            // without its identity.
            tx.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(|e| self.sql(e))?;
            tx.commit().map_err(|e| self.sql(e))?;
        }
        Ok(())
    }

    /// A SQLite failure on this file. Damage found while using it (a corrupt page, a file
    /// that turned out not to be a database) is the file's fault, not a passing one: it is
    /// [`StoreError::Unusable`] (78), whenever it shows.
    pub(crate) fn sql(&self, source: rusqlite::Error) -> StoreError {
        match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
                unusable(&self.path, &source)
            }
            _ => StoreError::Sqlite {
                path: self.path.clone(),
                source,
            },
        }
    }

    /// A value from the `meta` table.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// Sets a value in the `meta` table.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// A cached value that has not expired (`now` in Unix seconds).
    ///
    /// # Errors
    /// SQLite failures.
    pub fn cached(&self, key: &str, now: i64) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT value FROM cache WHERE key = ?1 AND expires_at > ?2",
                rusqlite::params![key, now],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// Caches a value until `expires_at` (Unix seconds).
    ///
    /// # Errors
    /// SQLite failures.
    pub fn cache(&self, key: &str, value: &str, expires_at: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO cache (key, value, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                rusqlite::params![key, value, expires_at],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// Forgets cached values that expired before `now` (Unix seconds); how many.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn forget_expired(&self, now: i64) -> Result<usize, StoreError> {
        self.conn
            .execute("DELETE FROM cache WHERE expires_at <= ?1", [now])
            .map_err(|e| self.sql(e))
    }

    /// Runs `f` inside one transaction (committed when it returns `Ok`).
    ///
    /// # Errors
    /// What `f` returns, or SQLite failures.
    pub fn transaction<T>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.sql(e))?;
        match f(self) {
            Ok(v) => {
                self.conn.execute_batch("COMMIT").map_err(|e| self.sql(e))?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// Refuses a path that cannot hold a state file, naming what is wrong: the path is a folder,
/// or its folder does not exist (calsync never creates it) or is not a folder.
fn check_location(path: &Path) -> Result<(), StoreError> {
    let refuse = |problem: String| {
        Err(StoreError::Unusable {
            path: path.to_path_buf(),
            problem,
        })
    };
    if path.is_dir() {
        return refuse(format!(
            "is a folder, not a file: name the state file in it, e.g. {}",
            path.join("calsync.db").display()
        ));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => refuse(format!("{} is not a folder", dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => refuse(format!(
            "the folder {} does not exist; calsync creates the state file but never its \
             folder (systemd's StateDirectory= makes the default one): create it, or choose \
             another path",
            dir.display()
        )),
        Err(e) => refuse(format!("the folder {} cannot be read: {e}", dir.display())),
    }
}

/// A state path calsync may not create or write: a configuration problem (78) when it is a
/// matter of permissions, else an I/O failure.
fn refused(path: &Path, what: &str, e: &std::io::Error) -> StoreError {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
            StoreError::Unusable {
                path: path.to_path_buf(),
                problem: format!(
                    "{what}: {e}; give the user calsync runs as write access to it and its \
                     folder, or choose another path"
                ),
            }
        }
        _ => StoreError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(e.kind(), format!("{what}: {e}")),
        },
    }
}

/// The SQLite header's application id (offset 68) and user version (offset 60).
const HEADER_LEN: usize = 100;

/// Identifies the file at `path` without writing to it. The header decides when it can: a
/// file that is not SQLite, or carries another program's application id, is refused without
/// SQLite ever opening it. A file without an application id is opened read-only to look at
/// its schema (the header may lag behind a write-ahead log, which SQLite reads).
fn identify_file(path: &Path) -> Result<Identity, StoreError> {
    use std::io::Read;
    let mut header = Vec::with_capacity(HEADER_LEN);
    File::open(path)
        .and_then(|f| f.take(HEADER_LEN as u64).read_to_end(&mut header))
        .map_err(|e| refused(path, "cannot be read", &e))?;
    if header.is_empty() {
        return Ok(Identity::Empty);
    }
    if header.len() < HEADER_LEN || !header.starts_with(b"SQLite format 3\0") {
        return Err(StoreError::Unusable {
            path: path.to_path_buf(),
            problem:
                "not a SQLite database (corrupt, or another file); move it aside to start afresh"
                    .into(),
        });
    }
    let application_id = i32::from_be_bytes(header[68..72].try_into().expect("4 bytes"));
    if application_id != 0 && application_id != APPLICATION_ID {
        return Err(foreign(path, application_id));
    }
    let uri = format!("file:{}?mode=ro", uri_path(path));
    let conn = Connection::open_with_flags(
        &uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| unusable(path, &e))?;
    identify(&conn, path)
}

fn foreign(path: &Path, application_id: i32) -> StoreError {
    StoreError::Unusable {
        path: path.to_path_buf(),
        problem: format!(
            "not a calsync state file: a SQLite database of another program (application_id \
             {application_id:#010x}); it is left as it is: point --state or `state` at \
             calsync's own file"
        ),
    }
}

/// What the database behind `conn` is, by its application id, user version and schema.
fn identify(conn: &Connection, path: &Path) -> Result<Identity, StoreError> {
    let read = |pragma: &str| -> Result<i64, StoreError> {
        conn.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
            .map_err(|e| unusable(path, &e))
    };
    let application_id = read("application_id")? as i32;
    let version = read("user_version")?;
    // No `PRAGMA quick_check` here: it reads every page, and at 100,000 events that was a
    // second of every run (three opens). Damage shows as SQLITE_CORRUPT on the page that is
    // read, which `Store::sql` turns into the same "damaged" error (78).
    if application_id != 0 && application_id != APPLICATION_ID {
        return Err(foreign(path, application_id));
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::Unusable {
            path: path.to_path_buf(),
            problem: format!(
                "written by a newer calsync (schema {version}, this build knows {SCHEMA_VERSION}); upgrade calsync"
            ),
        });
    }
    if application_id == APPLICATION_ID {
        return Ok(Identity::Ours(version));
    }
    let signature = schema_signature(conn).map_err(|e| unusable(path, &e))?;
    if signature.is_empty() && version == 0 {
        return Ok(Identity::Empty);
    }
    if version >= 1 && signature == expected_signature(version) {
        return Ok(Identity::Legacy(version));
    }
    Err(StoreError::Unusable {
        path: path.to_path_buf(),
        problem: format!(
            "a SQLite database, but not a calsync state file (no calsync application id, and \
             its tables are not calsync's; user_version {version}); it is left as it is: point \
             --state or `state` at calsync's own file"
        ),
    })
}

/// The schema as a comparable list: every table with its columns (name, type, not null,
/// primary key) and every index with its table and columns; SQLite's own objects left out.
fn schema_signature(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut objects = conn.prepare(
        "SELECT type, name, tbl_name FROM sqlite_master \
         WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name",
    )?;
    let rows: Vec<(String, String, String)> = objects
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (kind, name, table) in rows {
        let columns: Vec<String> = if kind == "table" {
            conn.prepare("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1)")?
                .query_map([&name], |r| {
                    Ok(format!(
                        "{} {} {} {}",
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?
        } else if kind == "index" {
            conn.prepare("SELECT name FROM pragma_index_info(?1)")?
                .query_map([&name], |r| r.get::<_, Option<String>>(0))?
                .map(|c| c.map(Option::unwrap_or_default))
                .collect::<rusqlite::Result<_>>()?
        } else {
            Vec::new()
        };
        out.push(format!("{kind} {name} on {table}: {}", columns.join(", ")));
    }
    Ok(out)
}

/// The schema calsync's migrations make at `version` (built in memory, once per call).
fn expected_signature(version: i64) -> Vec<String> {
    let conn = Connection::open_in_memory().expect("an in-memory database");
    for migration in MIGRATIONS.iter().take(version.max(0) as usize) {
        conn.execute_batch(migration)
            .expect("calsync's own migrations apply");
    }
    schema_signature(&conn).expect("reading an in-memory schema")
}

/// A path as the path part of an SQLite `file:` URI (RFC 3986 percent-encoding of what
/// would end or change the path: `%`, `?`, `#`, and bytes outside printable ASCII).
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = String::new();
    for &b in absolute.as_os_str().as_bytes() {
        match b {
            b'%' | b'?' | b'#' => out.push_str(&format!("%{b:02X}")),
            0x21..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Access tokens live in the cache table until they expire. A failure to keep one costs a
/// token request next run, nothing more: it is logged, not raised.
impl crate::net::oauth::TokenCache for Store {
    fn load_token(&self, key: &str, now: i64) -> Option<crate::net::oauth::AccessToken> {
        let row: Option<(String, i64)> = self
            .conn
            .query_row(
                "SELECT value, expires_at FROM cache WHERE key = ?1 AND expires_at > ?2",
                rusqlite::params![key, now],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .ok()
            .flatten();
        row.map(|(value, expires_at)| crate::net::oauth::AccessToken { value, expires_at })
    }

    fn save_token(&self, key: &str, token: &crate::net::oauth::AccessToken) {
        if let Err(e) = self.cache(key, &token.value, token.expires_at) {
            log::warn!(event = "state.error"; "cannot keep an access token: {e}");
        }
    }
}

fn unusable(path: &Path, e: &rusqlite::Error) -> StoreError {
    let problem = match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => {
            "not a SQLite database (corrupt, or another file); move it aside to start afresh"
                .to_string()
        }
        Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
            "the database is damaged; restore it from a backup or move it aside".to_string()
        }
        Some(rusqlite::ErrorCode::CannotOpen) | Some(rusqlite::ErrorCode::PermissionDenied) => {
            format!("cannot be opened: {e}")
        }
        _ => format!("cannot be used: {e}"),
    };
    StoreError::Unusable {
        path: path.to_path_buf(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn expired_cache_entries_are_forgotten_and_live_ones_kept() {
        let s = Store::in_memory().unwrap();
        s.cache("old", "a", 100).unwrap();
        s.cache("live", "b", 300).unwrap();
        assert_eq!(s.forget_expired(200).unwrap(), 1);
        assert_eq!(s.cached("live", 200).unwrap().as_deref(), Some("b"));
        assert_eq!(s.cached("old", 0).unwrap(), None);
    }

    #[test]
    fn an_in_memory_state_has_the_schema_and_no_file() {
        let s = Store::in_memory().unwrap();
        assert_eq!(s.mapped_count("p").unwrap(), 0);
        s.set_meta("k", "v").unwrap();
        assert_eq!(s.meta("k").unwrap().as_deref(), Some("v"));
        assert!(!std::path::Path::new(":memory:").exists());
    }

    #[test]
    fn a_new_state_file_is_private_and_current() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calsync.db");
        let store = Store::open(&path).unwrap();
        let id: i32 = store
            .conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .unwrap();
        assert_eq!(id, APPLICATION_ID);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let v: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(store);
        Store::open(&path).expect("reopens");
    }

    #[test]
    fn damage_found_while_reading_is_the_files_fault() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let root: i64 = {
            let s = Store::open(&path).unwrap();
            s.upsert_mapping(
                "p",
                &MappedRow {
                    item_key: "k".into(),
                    source_key: "k".into(),
                    target_id: "t".into(),
                    etag: None,
                    hash: "h".into(),
                    body: "{}".into(),
                    zones: String::new(),
                    ends_at: None,
                    dtstamp: 1,
                },
            )
            .unwrap();
            s.conn
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                .unwrap();
            s.conn
                .query_row(
                    "SELECT rootpage FROM sqlite_master WHERE name = 'mapping'",
                    [],
                    |r| r.get(0),
                )
                .unwrap()
        };
        // The mapping's page gets a page type SQLite does not know.
        let mut bytes = std::fs::read(&path).unwrap();
        let page = 4096 * (root as usize - 1);
        bytes[page] = 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let s = Store::open(&path).unwrap();
        let err = s.mapped("p", "k").unwrap_err();
        assert!(matches!(err, StoreError::Unusable { .. }), "{err:?}");
        assert_eq!(err.exit_code(), crate::exit::CONFIG);
        assert!(err.to_string().contains("damaged"), "{err}");
    }

    #[test]
    fn garbage_and_newer_files_are_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.db");
        let bytes = b"this is not a database, but somebody's notes\n".repeat(200);
        std::fs::write(&garbage, &bytes).unwrap();
        let err = Store::open(&garbage).unwrap_err();
        assert!(matches!(err, StoreError::Unusable { .. }), "{err}");
        assert_eq!(std::fs::read(&garbage).unwrap(), bytes);

        let newer = dir.path().join("newer.db");
        drop(Store::open(&newer).unwrap());
        {
            let c = Connection::open(&newer).unwrap();
            c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
        }
        let before = std::fs::read(&newer).unwrap();
        let err = Store::open(&newer).unwrap_err();
        assert!(err.to_string().contains("newer calsync"), "{err}");
        assert_eq!(std::fs::read(&newer).unwrap(), before);

        let foreign = dir.path().join("foreign.db");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        assert!(
            Store::open(&foreign)
                .unwrap_err()
                .to_string()
                .contains("not a calsync")
        );
    }

    #[test]
    fn a_missing_folder_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/calsync.db");
        let err = Store::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Unusable { .. }), "{err}");
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(Store::lock(&path).is_err());
        assert!(!dir.path().join("sub").exists());
    }

    #[test]
    fn the_expected_schema_is_what_the_migrations_make() {
        let s = Store::in_memory().unwrap();
        assert_eq!(
            schema_signature(&s.conn).unwrap(),
            expected_signature(SCHEMA_VERSION)
        );
        assert_ne!(expected_signature(1), expected_signature(2));
        assert!(expected_signature(0).is_empty());
    }

    #[test]
    fn the_run_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calsync.db");
        let held = Store::lock(&path).unwrap();
        assert!(matches!(Store::lock(&path), Err(StoreError::Locked { .. })));
        drop(held);
        Store::lock(&path).expect("free again");
    }
}
