//! One file per command; each builds what it needs and prints its output. The shared start of
//! `sync` and `cleanup` (config, lock, state file, audit key, HTTP client, run id) is here.

pub mod audit_log;
pub mod audit_verify;
pub mod cleanup;
pub mod generate;
pub mod health;
pub mod history;
pub mod report;
pub mod sync;
pub mod validate;

use crate::cli::{Args, Command, GlobalArgs};
use crate::config::{self, Environment, Settings};
use crate::error::Error;
use crate::logging::{self, Stream};
use crate::net::ApiCall;
use crate::net::Http;
use crate::store::{AuditKey, ChainHead, RunLock, Store};

/// Runs the parsed command line; returns the exit code of a command that ran to its end.
///
/// # Errors
/// [`Error`] for what stops a command before it can report (config, state, usage).
pub fn run(args: Args) -> Result<i32, Error> {
    match &args.command {
        Command::Sync(a) => {
            logging::init(Stream::Stdout);
            sync::run(&args.global, a)
        }
        Command::Cleanup(a) => {
            logging::init(Stream::Stdout);
            cleanup::run(&args.global, a)
        }
        Command::Validate(a) => {
            logging::init_report(report::wants_json(a.format));
            validate::run(&args.global, a)
        }
        Command::Health(a) => {
            logging::init_report(report::wants_json(a.format));
            health::run(&args.global, a)
        }
        Command::History(a) => {
            logging::init_report(report::wants_json(a.format));
            history::run(&args.global, a)
        }
        Command::AuditVerify(a) => {
            logging::init_report(report::wants_json(a.format));
            audit_verify::run(&args.global, a)
        }
        Command::Generate(g) => generate::run(g),
    }
}

/// What a writing command (`sync`, `cleanup`) holds for its whole run.
///
/// A dry run holds the same, with a copy of the state file in memory instead of the file
/// (`Store::snapshot`), no lock and no audit key: it runs the normal path, and everything it
/// would remember — cursors, mapping, history, API calls, breakers, the audit chain — goes to
/// the copy, which is dropped at the end. Nothing is created on disk.
pub struct Session {
    pub settings: Settings,
    pub store: Store,
    /// `None` in a dry run: nothing is appended to the audit chain.
    pub audit_key: Option<AuditKey>,
    pub http: Http,
    pub run_id: String,
    pub dry_run: bool,
    _lock: Option<RunLock>,
}

impl Session {
    /// Loads the config, takes the state file's lock, opens the state file and the audit
    /// key, sets up HTTP, and names the run. A dry run takes no lock and copies the state
    /// file into memory instead.
    ///
    /// # Errors
    /// Config (78), unknown pair (64), locked (75), unusable state (78).
    pub fn open(global: &GlobalArgs, dry_run: bool) -> Result<(Session, Vec<String>), Error> {
        // Named first, so every line of the run carries the id, errors included.
        let run_id = new_run_id();
        logging::set_run_id(&run_id);
        let settings = config::load(
            &global.config,
            global.state.as_deref(),
            &Environment::from_process(),
        )?;
        let selected: Vec<String> = settings
            .select_pairs(&global.pairs)
            .map_err(Error::Usage)?
            .into_iter()
            .map(|p| p.name.clone())
            .collect();
        let (lock, store, audit_key) = if dry_run {
            (None, Store::snapshot(&settings.state)?, None)
        } else {
            let lock = Store::lock(&settings.state)?;
            let store = Store::open(&settings.state)?;
            let (audit_key, created) =
                AuditKey::load_or_create(settings.audit_key_file.as_deref(), &settings.state)
                    .map_err(Error::AuditKey)?;
            if created {
                log::warn!(event = "audit.key_created", path = audit_key.path.display().to_string().as_str();
                           "created a new audit key beside the state file; keep a copy, or set audit_key_file");
            }
            (Some(lock), store, Some(audit_key))
        };
        warn_readable_by_others(&settings);
        let breakers = crate::net::Breakers::load(store.breakers()?);
        let http = Http::new(&settings.net)
            .map_err(Error::Setup)?
            .with_breakers(breakers);
        Ok((
            Session {
                settings,
                store,
                audit_key,
                http,
                run_id,
                dry_run,
                _lock: lock,
            },
            selected,
        ))
    }

    /// A selected pair by name (selection was checked when the session opened).
    pub fn pair(&self, name: &str) -> &crate::config::Pair {
        self.settings
            .pairs
            .iter()
            .find(|p| p.name == name)
            .expect("selected pairs exist")
    }

    /// Appends an audit entry (not in a dry run); a failure is logged, never fatal to the
    /// run.
    pub fn audit(
        &self,
        kind: &str,
        pair: Option<&str>,
        detail: serde_json::Value,
    ) -> Option<ChainHead> {
        let key = self.audit_key.as_ref()?;
        let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        match self.store.append_audit(key, &ts, kind, pair, &detail) {
            Ok(head) => Some(head),
            Err(e) => {
                log::error!(event = "audit.append_failed", kind = kind; "{e}");
                None
            }
        }
    }

    /// Records in the audit log when the configuration changed since the last run.
    pub fn audit_config_change(&self) {
        let previous = self.store.meta("config_hash").ok().flatten();
        let current = &self.settings.config_hash;
        if previous.as_deref() != Some(current.as_str()) {
            self.audit(
                "config.changed",
                None,
                serde_json::json!({ "from": previous, "to": current, "file": self.settings.path.display().to_string() }),
            );
            if let Err(e) = self.store.set_meta("config_hash", current) {
                log::error!(event = "state.error"; "{e}");
            }
        }
    }

    /// Logs the audit chain's head so an external copy (journald) can catch truncation.
    pub fn log_chain_head(&self) {
        if let Ok(Some(head)) = self.store.audit_head() {
            log::info!(event = "audit.head", seq = head.seq, mac = head.mac.as_str(), head = head.to_string().as_str();
                       "audit chain head");
        }
    }

    /// Saves the circuit breakers, and logs and audits each state change of the run.
    pub fn flush_breakers(&self) {
        for (endpoint, t) in self.http.breakers().take_transitions() {
            let endpoint = crate::mask::mask_url(&endpoint);
            let event = match t.to {
                crate::net::breaker::State::Open => "breaker.opened",
                crate::net::breaker::State::HalfOpen => "breaker.half_open",
                crate::net::breaker::State::Closed => "breaker.closed",
            };
            log::warn!(event = event, endpoint = endpoint.as_str(), from = t.from.as_str(), to = t.to.as_str();
                       "circuit breaker {} → {}", t.from.as_str(), t.to.as_str());
            self.audit(
                "breaker",
                None,
                serde_json::json!({ "endpoint": endpoint, "from": t.from.as_str(), "to": t.to.as_str() }),
            );
        }
        if let Err(e) = self.store.save_breakers(&self.http.breakers().snapshot()) {
            log::error!(event = "state.error"; "{e}");
        }
    }

    /// Stores the HTTP attempts of the run and prunes old history; returns how many rows of
    /// history and metrics were pruned.
    pub fn flush_metrics(&self) -> u64 {
        self.store_calls_and_prune(&self.http.take_calls())
    }

    /// Like [`flush_metrics`](Self::flush_metrics), and hands the run's HTTP attempts back
    /// (for the metrics file).
    pub fn flush_metrics_and_calls(&self) -> Vec<ApiCall> {
        let calls = self.http.take_calls();
        self.store_calls_and_prune(&calls);
        calls
    }

    fn store_calls_and_prune(&self, calls: &[ApiCall]) -> u64 {
        if let Err(e) = self.store.record_api_calls(&self.run_id, calls) {
            log::error!(event = "state.error"; "{e}");
        }
        let keep_ms = i64::from(self.settings.history.keep_metrics_days) * 86_400_000;
        match self.store.prune_history(
            self.settings.history.keep_runs,
            chrono::Utc::now().timestamp_millis(),
            keep_ms,
        ) {
            Ok(pruned) => pruned,
            Err(e) => {
                log::error!(event = "state.error"; "{e}");
                0
            }
        }
    }
}

/// Warns, on every run, about the state file and each secret file that others than their
/// owner may read: they hold tokens, published bodies, passwords and keys.
pub fn warn_readable_by_others(settings: &Settings) {
    for (what, path, mode) in settings.readable_by_others() {
        log::warn!(event = "file.readable_by_others", path = path.display().to_string().as_str(),
                   mode = format!("{mode:04o}").as_str();
                   "the {what} {} is readable by others (mode {mode:04o}); make it its owner's alone: chmod 0600 {}",
                   path.display(), path.display());
    }
}

/// A run id: 16 hex digits, random.
pub fn new_run_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        bytes = (nanos ^ u64::from(std::process::id())).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
