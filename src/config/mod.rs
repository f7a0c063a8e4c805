//! The configuration file: TOML in, checked [`Settings`] out.
//!
//! Everything is checked before any pair runs: an unknown key (a typo must never silently
//! disable a rule), a bad pair name, a plain `http://` URL to anything but loopback, a secret
//! written inline, a secret file that cannot be read. Each problem is one [`ConfigError`]
//! naming the file, the key and what is wrong (exit 78). Secrets are read here, once, from a
//! file (looked up in `$CREDENTIALS_DIRECTORY` first, then beside the config) or from the
//! environment, and never printed.
//!
//! This file holds the file as a whole: the top-level tables, pairs, secrets, paths and
//! URLs. What each provider kind takes is `endpoint`'s one table.

mod endpoint;
mod locate;
mod numbers;

pub use crate::plan::GuardLimits;
use crate::policy::{Field, RecurrenceMode, Rules, Visibility};
pub use endpoint::{
    CaldavSettings, CalendarRef, Endpoint, GoogleSettings, GraphCredential, GraphSettings,
    IcsLocation, IcsSettings, KINDS, Kind, Side,
};
pub use numbers::{NUMBERS, Number, RETENTION_DAYS_MAX};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration problem: which file, which key, what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}: {key}: {problem}", file.display())]
pub struct ConfigError {
    pub file: PathBuf,
    pub key: String,
    pub problem: String,
}

impl ConfigError {
    fn new(file: &Path, key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            key: key.into(),
            problem: problem.into(),
        }
    }
}

// ------------------------------------------------------------------------------------------
// The file as written (raw). Every table denies unknown keys.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state: Option<PathBuf>,
    audit_key_file: Option<String>,
    metrics_file: Option<PathBuf>,
    #[serde(default)]
    net: RawNet,
    #[serde(default)]
    history: RawHistory,
    #[serde(default)]
    health: RawHealth,
    #[serde(default)]
    pair: Vec<RawPair>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNet {
    #[serde(default = "defaults::retries")]
    retries: i64,
    #[serde(default = "defaults::backoff_ms")]
    backoff_ms: i64,
    #[serde(default = "defaults::timeout_seconds")]
    timeout_seconds: i64,
    #[serde(default = "defaults::deadline_seconds")]
    deadline_seconds: i64,
    #[serde(default = "defaults::concurrency")]
    concurrency: i64,
    #[serde(default = "defaults::max_response_mib")]
    max_response_mib: i64,
}

impl Default for RawNet {
    fn default() -> Self {
        RawNet {
            retries: defaults::retries(),
            backoff_ms: defaults::backoff_ms(),
            timeout_seconds: defaults::timeout_seconds(),
            deadline_seconds: defaults::deadline_seconds(),
            concurrency: defaults::concurrency(),
            max_response_mib: defaults::max_response_mib(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHistory {
    #[serde(default = "defaults::keep_runs")]
    keep_runs: i64,
    #[serde(default = "defaults::keep_metrics_days")]
    keep_metrics_days: i64,
}

impl Default for RawHistory {
    fn default() -> Self {
        RawHistory {
            keep_runs: defaults::keep_runs(),
            keep_metrics_days: defaults::keep_metrics_days(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    #[serde(default = "defaults::stale_fail_factor")]
    stale_fail_factor: i64,
    #[serde(default = "defaults::failure_window_runs")]
    failure_window_runs: i64,
    #[serde(default = "defaults::failure_warn_percent")]
    failure_warn_percent: i64,
    #[serde(default = "defaults::failure_fail_percent")]
    failure_fail_percent: i64,
    #[serde(default = "defaults::cursor_warn_days")]
    cursor_warn_days: i64,
}

impl Default for RawHealth {
    fn default() -> Self {
        RawHealth {
            stale_fail_factor: defaults::stale_fail_factor(),
            failure_window_runs: defaults::failure_window_runs(),
            failure_warn_percent: defaults::failure_warn_percent(),
            failure_fail_percent: defaults::failure_fail_percent(),
            cursor_warn_days: defaults::cursor_warn_days(),
        }
    }
}

/// Checks the `[health]` table.
fn health_settings(ctx: &Ctx<'_>, raw: &RawHealth) -> Result<HealthSettings, ConfigError> {
    let settings = HealthSettings {
        stale_fail_factor: ctx.number("health", "stale_fail_factor", raw.stale_fail_factor)?,
        failure_window_runs: ctx.number(
            "health",
            "failure_window_runs",
            raw.failure_window_runs,
        )?,
        failure_warn_percent: ctx.number(
            "health",
            "failure_warn_percent",
            raw.failure_warn_percent,
        )?,
        failure_fail_percent: ctx.number(
            "health",
            "failure_fail_percent",
            raw.failure_fail_percent,
        )?,
        cursor_warn_days: ctx.number("health", "cursor_warn_days", raw.cursor_warn_days)?,
    };
    if settings.failure_warn_percent > settings.failure_fail_percent {
        return Err(ctx.err(
            "health.failure_warn_percent",
            "must not be above health.failure_fail_percent",
        ));
    }
    Ok(settings)
}

/// Defaults, from the one table of numbers.
mod defaults {
    use super::numbers::default_of;
    pub fn retries() -> i64 {
        default_of("net.retries")
    }
    pub fn backoff_ms() -> i64 {
        default_of("net.backoff_ms")
    }
    pub fn timeout_seconds() -> i64 {
        default_of("net.timeout_seconds")
    }
    pub fn deadline_seconds() -> i64 {
        default_of("net.deadline_seconds")
    }
    pub fn concurrency() -> i64 {
        default_of("net.concurrency")
    }
    pub fn max_response_mib() -> i64 {
        default_of("net.max_response_mib")
    }
    pub fn max_occurrences() -> i64 {
        default_of("pair.max_occurrences")
    }
    pub fn keep_runs() -> i64 {
        default_of("history.keep_runs")
    }
    pub fn keep_metrics_days() -> i64 {
        default_of("history.keep_metrics_days")
    }
    pub fn past_days() -> i64 {
        default_of("pair.past_days")
    }
    pub fn future_days() -> i64 {
        default_of("pair.future_days")
    }
    pub fn retention_days() -> i64 {
        default_of("pair.retention_days")
    }
    pub fn max_delete_percent() -> i64 {
        default_of("pair.max_delete_percent")
    }
    pub fn max_delete_min() -> i64 {
        default_of("pair.max_delete_min")
    }
    pub fn stale_after_minutes() -> i64 {
        default_of("pair.stale_after_minutes")
    }
    pub fn stale_fail_factor() -> i64 {
        default_of("health.stale_fail_factor")
    }
    pub fn failure_window_runs() -> i64 {
        default_of("health.failure_window_runs")
    }
    pub fn failure_warn_percent() -> i64 {
        default_of("health.failure_warn_percent")
    }
    pub fn failure_fail_percent() -> i64 {
        default_of("health.failure_fail_percent")
    }
    pub fn cursor_warn_days() -> i64 {
        default_of("health.cursor_warn_days")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPair {
    name: String,
    #[serde(default = "defaults::past_days")]
    past_days: i64,
    #[serde(default = "defaults::future_days")]
    future_days: i64,
    #[serde(default = "defaults::retention_days")]
    retention_days: i64,
    #[serde(default)]
    recurrence: RecurrenceMode,
    fields: Option<Vec<Field>>,
    #[serde(default)]
    exclude_categories: Vec<String>,
    #[serde(default = "defaults::max_delete_percent")]
    max_delete_percent: i64,
    #[serde(default = "defaults::max_delete_min")]
    max_delete_min: i64,
    #[serde(default = "defaults::stale_after_minutes")]
    stale_after_minutes: i64,
    #[serde(default = "defaults::max_occurrences")]
    max_occurrences: i64,
    source: toml::Table,
    target: toml::Table,
}

/// Keys that would hold a secret inline; each has a `_file` / `_env` form instead.
const INLINE_SECRETS: &[&str] = &[
    "client_secret",
    "password",
    "service_account",
    "private_key",
    "token",
    "secret",
    "api_key",
    "audit_key",
];

// ------------------------------------------------------------------------------------------
// The checked settings.

/// A secret value. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Network behaviour shared by every remote provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetSettings {
    /// Retries after the first attempt, for retryable failures.
    pub retries: u32,
    /// First backoff; it doubles per retry (full jitter).
    pub backoff_ms: u64,
    /// Connect and read timeout per request.
    pub timeout_seconds: u64,
    /// One deadline for the whole run: no retry starts after it.
    pub deadline_seconds: u64,
    /// Writes in flight at once, per target (default 4).
    pub concurrency: usize,
    /// The most bytes one response body may have after decompression; a bigger one is a
    /// failed read (DESIGN.md, "Trust nothing a remote says").
    pub max_response_bytes: u64,
}

impl Default for NetSettings {
    fn default() -> Self {
        // The table's defaults are in range, so these conversions never fail.
        let value = |n: i64| u64::try_from(n).unwrap_or(0);
        NetSettings {
            retries: value(defaults::retries()) as u32,
            backoff_ms: value(defaults::backoff_ms()),
            timeout_seconds: value(defaults::timeout_seconds()),
            deadline_seconds: value(defaults::deadline_seconds()),
            concurrency: value(defaults::concurrency()) as usize,
            max_response_bytes: value(defaults::max_response_mib()) * 1024 * 1024,
        }
    }
}

/// How much history the state file keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySettings {
    pub keep_runs: u32,
    pub keep_metrics_days: u32,
}

/// The thresholds of `health` (DESIGN.md, Commands): when a check warns and when it fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    /// A pair fails when its last good sync is older than this many times its
    /// `stale_after_minutes` (it warns from once that).
    pub stale_fail_factor: u32,
    /// How many of a pair's latest runs the failure rate is taken over.
    pub failure_window_runs: u32,
    /// The failure rate (percent) from which a pair warns.
    pub failure_warn_percent: u32,
    /// The failure rate (percent) from which a pair fails.
    pub failure_fail_percent: u32,
    /// A source cursor made this many days ago or earlier warns: no pass has completed
    /// since (a cursor is used only on the day it was made).
    pub cursor_warn_days: u32,
}

/// The publishing window in days around now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowDays {
    pub past_days: u32,
    pub future_days: u32,
}

/// One source → target pair, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub name: String,
    pub window: WindowDays,
    pub retention_days: u32,
    pub rules: Rules,
    pub guard: GuardLimits,
    pub stale_after_minutes: u32,
    pub source: Endpoint,
    pub target: Endpoint,
}

/// A file a secret was read from, by the key that named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFile {
    /// `pair 'parish'.source.password_file`, `audit_key_file`.
    pub key: String,
    pub path: PathBuf,
}

impl Settings {
    /// The state file and secret files that others than their owner may read (DESIGN:
    /// warned about on every run and by `health`), as (what, path, mode).
    pub fn readable_by_others(&self) -> Vec<(String, PathBuf, u32)> {
        let mut out = Vec::new();
        if let Some(mode) = crate::fsutil::readable_by_others(&self.state) {
            out.push(("state file".to_string(), self.state.clone(), mode));
        }
        for f in &self.secret_files {
            if let Some(mode) = crate::fsutil::readable_by_others(&f.path) {
                out.push((format!("secret file of {}", f.key), f.path.clone(), mode));
            }
        }
        out
    }
}

/// The whole configuration, checked, with the state path resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The configuration file this came from.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes (the audit log records when it changes).
    pub config_hash: String,
    pub state: PathBuf,
    pub audit_key_file: Option<PathBuf>,
    /// Every file a secret was read from (and the audit key), by key.
    pub secret_files: Vec<SecretFile>,
    pub metrics_file: Option<PathBuf>,
    pub net: NetSettings,
    pub history: HistorySettings,
    pub health: HealthSettings,
    pub pairs: Vec<Pair>,
}

impl Settings {
    /// The pairs selected by `--pair` (all when none is given).
    ///
    /// # Errors
    /// A name that is not in the configuration (a usage error).
    pub fn select_pairs(&self, names: &[String]) -> Result<Vec<&Pair>, String> {
        if names.is_empty() {
            return Ok(self.pairs.iter().collect());
        }
        let mut out = Vec::new();
        for name in names {
            match self.pairs.iter().find(|p| &p.name == name) {
                Some(p) if !out.iter().any(|q: &&Pair| q.name == p.name) => out.push(p),
                Some(_) => {}
                None => {
                    let known: Vec<&str> = self.pairs.iter().map(|p| p.name.as_str()).collect();
                    return Err(format!(
                        "no pair named '{name}' in {} (pairs: {})",
                        self.path.display(),
                        known.join(", ")
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// Where secrets and the state live; passed in so tests need not touch the process environment.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`).
    pub credentials_directory: Option<PathBuf>,
    /// `$STATE_DIRECTORY` (systemd `StateDirectory=`).
    pub state_directory: Option<PathBuf>,
    /// Looks up an environment variable (for `*_env` secrets).
    pub vars: Vec<(String, String)>,
}

impl Environment {
    /// The real process environment.
    pub fn from_process() -> Self {
        Environment {
            credentials_directory: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
            state_directory: std::env::var_os("STATE_DIRECTORY")
                .map(|v| {
                    // systemd may list several directories separated by ':'; the first is ours.
                    let s = v.to_string_lossy().into_owned();
                    PathBuf::from(s.split(':').next().unwrap_or_default())
                })
                .filter(|p| !p.as_os_str().is_empty()),
            vars: std::env::vars().collect(),
        }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The largest configuration file read (DESIGN.md: 1 MiB). A real one is a few KiB; anything
/// bigger is a mistake (`--config /dev/zero`) that must not eat the machine's memory.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Reads at most `cap` bytes of a file; a longer file (or a device that never ends) is an
/// error, not a truncated read.
fn read_capped(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(cap + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(std::io::Error::other(format!(
            "larger than {} KiB; a configuration is a few KiB",
            cap / 1024
        )));
    }
    Ok(bytes)
}

/// Reads and checks the configuration file. `state_override` is `--state` / `CALSYNC_STATE`.
///
/// # Errors
/// The first problem found, naming the file and key.
pub fn load(
    path: &Path,
    state_override: Option<&Path>,
    env: &Environment,
) -> Result<Settings, ConfigError> {
    let bytes = read_capped(path, MAX_CONFIG_BYTES).map_err(|e| {
        ConfigError::new(
            path,
            "(file)",
            format!("cannot read the configuration: {e}"),
        )
    })?;
    let text = String::from_utf8(bytes.clone())
        .map_err(|_| ConfigError::new(path, "(file)", "not valid UTF-8"))?;
    let settings = parse(path, &text, state_override, env)?;
    Ok(Settings {
        config_hash: crate::hashing::sha256_hex(&bytes),
        ..settings
    })
}

/// Parses and checks configuration text (what [`load`] does after reading the file).
///
/// # Errors
/// The first problem found, naming the file and key.
pub fn parse(
    path: &Path,
    text: &str,
    state_override: Option<&Path>,
    env: &Environment,
) -> Result<Settings, ConfigError> {
    parse_text(path, text, state_override, env).map_err(|mut e| {
        if !e.problem.contains("(line ")
            && let Some(line) = locate::line_of_key(text, &e.key)
        {
            e.problem.push_str(&format!(" (line {line})"));
        }
        e
    })
}

fn parse_text(
    path: &Path,
    text: &str,
    state_override: Option<&Path>,
    env: &Environment,
) -> Result<Settings, ConfigError> {
    let doc: toml::Table = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let ctx = Ctx {
        path,
        base,
        env,
        secret_files: Default::default(),
    };
    // A secret written inline is named first, whatever else is wrong: it is the one mistake
    // that has already exposed something.
    find_inline_secret(&ctx, &doc)?;
    let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;

    let net = NetSettings {
        retries: ctx.number("net", "retries", raw.net.retries)?,
        backoff_ms: ctx.number("net", "backoff_ms", raw.net.backoff_ms)?,
        timeout_seconds: ctx.number("net", "timeout_seconds", raw.net.timeout_seconds)?,
        deadline_seconds: ctx.number("net", "deadline_seconds", raw.net.deadline_seconds)?,
        concurrency: ctx.number("net", "concurrency", raw.net.concurrency)?,
        max_response_bytes: ctx.number::<u64>(
            "net",
            "max_response_mib",
            raw.net.max_response_mib,
        )? * 1024
            * 1024,
    };
    let history = HistorySettings {
        keep_runs: ctx.number("history", "keep_runs", raw.history.keep_runs)?,
        keep_metrics_days: ctx.number(
            "history",
            "keep_metrics_days",
            raw.history.keep_metrics_days,
        )?,
    };
    let health = health_settings(&ctx, &raw.health)?;

    if raw.pair.is_empty() {
        return Err(ctx.err("pair", "no [[pair]] is configured"));
    }
    let mut names = BTreeSet::new();
    let mut pairs = Vec::new();
    for (i, rp) in raw.pair.into_iter().enumerate() {
        let at = format!("pair[{i}]");
        let pair = ctx.pair(&at, rp, net.concurrency)?;
        if !names.insert(pair.name.clone()) {
            return Err(ctx.err(
                format!("{at}.name"),
                format!("the pair name '{}' is used twice", pair.name),
            ));
        }
        pairs.push(pair);
    }
    // A file target is written whole by its pair: two pairs on one file would erase each
    // other. One file is one real path, whatever the spelling (a symlink, `./`, `..`).
    for (i, a) in pairs.iter().enumerate() {
        for b in &pairs[i + 1..] {
            if let (Endpoint::Ics(x), Endpoint::Ics(y)) = (&a.target, &b.target)
                && let (IcsLocation::Path(px), IcsLocation::Path(py)) = (&x.location, &y.location)
                && crate::fsutil::real_path(px) == crate::fsutil::real_path(py)
            {
                return Err(ctx.err(
                    format!("pair '{}'.target.path", b.name),
                    format!("the pairs '{}' and '{}' write the same file; each file target needs its own pair", a.name, b.name),
                ));
            }
        }
    }

    let state = match (state_override, raw.state) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(p)) => ctx.beside(&p),
        (None, None) => match &env.state_directory {
            Some(dir) => dir.join("calsync.db"),
            None => PathBuf::from("calsync.db"),
        },
    };
    let audit_key_file = raw
        .audit_key_file
        .as_deref()
        .map(|name| ctx.locate_file(name));
    let mut secret_files = ctx.secret_files.take();
    if let Some(path) = &audit_key_file {
        secret_files.push(SecretFile {
            key: "audit_key_file".into(),
            path: path.clone(),
        });
    }

    Ok(Settings {
        path: path.to_path_buf(),
        config_hash: crate::hashing::sha256_hex(text.as_bytes()),
        state,
        audit_key_file,
        secret_files,
        metrics_file: raw.metrics_file.map(|p| ctx.beside(&p)),
        net,
        history,
        health,
        pairs,
    })
}

/// Turns a TOML or serde error into one line naming the key and the line it is on. A value
/// serde refuses (an unknown enum value, a wrong type) is named by the key it is written
/// under — `pair 'parish'.recurrence`, not the value.
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    // serde says "unknown field `x`" and "unknown variant `x`"; our users write keys and
    // values.
    let message = e
        .message()
        .trim()
        .replace("unknown field", "unknown key")
        .replace("unknown variant", "unknown value")
        .replace('`', "'");
    let offset = e.span().map(|span| span.start.min(text.len()));
    let located = offset.and_then(|at| locate::key_at(text, at));
    let line = located
        .as_ref()
        .map(|(_, line)| *line)
        .or_else(|| offset.map(|at| locate::line_of(text, at)));
    let key = match &located {
        Some((path, _)) => path.clone(),
        None => extract_key(&message).unwrap_or_else(|| "(syntax)".to_string()),
    };
    let problem = match line {
        Some(line) => format!("{message} (line {line})"),
        None => message,
    };
    let last = key.rsplit('.').next().unwrap_or(&key);
    let problem = if INLINE_SECRETS.contains(&last) {
        format!(
            "secrets never stand in the configuration: use {last}_file (a file, looked up in \
             $CREDENTIALS_DIRECTORY first) or {last}_env (an environment variable) — {problem}"
        )
    } else {
        problem
    };
    ConfigError::new(path, key, problem)
}

/// The key named in a message such as "unknown key 'foo', expected …".
fn extract_key(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown key '")?;
    let len = rest.find('\'')?;
    Some(rest[..len].to_string())
}

struct Ctx<'a> {
    path: &'a Path,
    base: &'a Path,
    env: &'a Environment,
    /// The secret files read, by key (for the warning about ones others can read).
    secret_files: std::cell::RefCell<Vec<SecretFile>>,
}

impl Ctx<'_> {
    fn err(&self, key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        ConfigError::new(self.path, key, problem)
    }

    /// A number of a top-level table (`net`, `history`, `health`), checked against its row
    /// of [`NUMBERS`].
    fn number<T: TryFrom<i64>>(
        &self,
        table: &str,
        key: &str,
        value: i64,
    ) -> Result<T, ConfigError> {
        self.number_at(table, table, key, value)
    }

    /// A number written at `at` (`pair 'parish'`), whose row is `<table>.<key>`.
    fn number_at<T: TryFrom<i64>>(
        &self,
        at: &str,
        table: &str,
        key: &str,
        value: i64,
    ) -> Result<T, ConfigError> {
        numbers::number(&format!("{table}.{key}"))
            .check(value)
            .map_err(|problem| self.err(format!("{at}.{key}"), problem))
    }

    /// A path written in the config, relative to the config's folder.
    fn beside(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// A file named in the config: a relative name is looked up in `$CREDENTIALS_DIRECTORY`
    /// first, then beside the config.
    fn locate_file(&self, name: &str) -> PathBuf {
        let p = Path::new(name);
        if p.is_absolute() {
            return p.to_path_buf();
        }
        if let Some(dir) = &self.env.credentials_directory {
            let candidate = dir.join(p);
            if candidate.exists() {
                return candidate;
            }
        }
        self.base.join(p)
    }

    /// Why a file named `name` (found at `path`) could not be read: for a relative name that
    /// was nowhere, each place looked, in order.
    fn not_read(&self, name: &str, path: &Path, e: &std::io::Error) -> String {
        if Path::new(name).is_absolute() || e.kind() != std::io::ErrorKind::NotFound {
            return format!("cannot read the secret file {}: {e}", path.display());
        }
        let credentials = match &self.env.credentials_directory {
            Some(dir) => format!("$CREDENTIALS_DIRECTORY ({})", dir.join(name).display()),
            None => "$CREDENTIALS_DIRECTORY (not set)".to_string(),
        };
        format!(
            "cannot find the secret file '{name}': looked in {credentials}, then beside the \
             configuration ({})",
            self.base.join(name).display()
        )
    }

    /// Reads a secret given as `<stem>_file` or `<stem>_env` (exactly one must be set when
    /// `required`).
    fn secret(
        &self,
        at: &str,
        stem: &str,
        file: Option<&str>,
        env: Option<&str>,
        required: bool,
    ) -> Result<Option<Secret>, ConfigError> {
        match (file, env) {
            (Some(_), Some(_)) => Err(self.err(
                format!("{at}.{stem}_file"),
                format!("set either {stem}_file or {stem}_env, not both"),
            )),
            (Some(name), None) => {
                let path = self.locate_file(name);
                let bytes = std::fs::read(&path).map_err(|e| {
                    self.err(format!("{at}.{stem}_file"), self.not_read(name, &path, &e))
                })?;
                self.secret_files.borrow_mut().push(SecretFile {
                    key: format!("{at}.{stem}_file"),
                    path: path.clone(),
                });
                let text = String::from_utf8(bytes).map_err(|_| {
                    self.err(
                        format!("{at}.{stem}_file"),
                        format!("the secret file {} is not UTF-8 text", path.display()),
                    )
                })?;
                Ok(Some(Secret(strip_one_newline(text))))
            }
            (None, Some(var)) => match self.env.var(var) {
                Some(v) if !v.is_empty() => Ok(Some(Secret(v.to_string()))),
                _ => Err(self.err(
                    format!("{at}.{stem}_env"),
                    format!("the environment variable {var} is not set"),
                )),
            },
            (None, None) if required => Err(self.err(
                format!("{at}.{stem}_file"),
                format!("a {stem} is required: set {stem}_file or {stem}_env"),
            )),
            (None, None) => Ok(None),
        }
    }

    fn url(&self, key: &str, url: &str) -> Result<String, ConfigError> {
        check_url(url).map_err(|problem| self.err(key, problem))?;
        Ok(url.trim_end_matches('/').to_string())
    }

    fn pair(&self, at: &str, rp: RawPair, concurrency: usize) -> Result<Pair, ConfigError> {
        if rp.name.is_empty()
            || !rp
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(self.err(
                format!("{at}.name"),
                format!(
                    "'{}' is not a valid pair name: use lowercase letters, digits, '_' and '-'",
                    rp.name
                ),
            ));
        }
        let at = format!("pair '{}'", rp.name);
        let number = |key: &str, value: i64| self.number_at(&at, "pair", key, value);
        let window = WindowDays {
            past_days: number("past_days", rp.past_days)?,
            future_days: number("future_days", rp.future_days)?,
        };
        let retention_days = number("retention_days", rp.retention_days)?;
        let guard = GuardLimits {
            max_delete_percent: number("max_delete_percent", rp.max_delete_percent)?,
            max_delete_min: number("max_delete_min", rp.max_delete_min)?,
        };
        let stale_after_minutes = number("stale_after_minutes", rp.stale_after_minutes)?;
        let max_occurrences: usize =
            self.number_at(&at, "pair", "max_occurrences", rp.max_occurrences)?;
        let fields = match rp.fields {
            None => Field::ALL.iter().copied().collect(),
            Some(list) => list.into_iter().collect(),
        };
        let source = endpoint::parse(
            self,
            &format!("{at}.source"),
            rp.source,
            Side::Source,
            concurrency,
        )?;
        let target = endpoint::parse(
            self,
            &format!("{at}.target"),
            rp.target,
            Side::Target,
            concurrency,
        )?;
        let default_visibility = match &source {
            Endpoint::Google(g) => g.default_visibility,
            _ => Visibility::Private,
        };
        Ok(Pair {
            name: rp.name,
            window,
            retention_days,
            rules: Rules {
                fields,
                exclude_categories: rp.exclude_categories,
                recurrence: rp.recurrence,
                default_visibility,
                max_occurrences,
            },
            guard,
            stale_after_minutes,
            source,
            target,
        })
    }
}

/// The first secret written inline in a pair's side, as an error pointing to the `_file` and
/// `_env` forms (the value itself is never echoed).
fn find_inline_secret(ctx: &Ctx<'_>, doc: &toml::Table) -> Result<(), ConfigError> {
    let Some(toml::Value::Array(pairs)) = doc.get("pair") else {
        return Ok(());
    };
    for (i, pair) in pairs.iter().enumerate() {
        let name = pair
            .get("name")
            .and_then(toml::Value::as_str)
            .map(|n| format!("pair '{n}'"))
            .unwrap_or_else(|| format!("pair[{i}]"));
        for side in ["source", "target"] {
            let Some(table) = pair.get(side).and_then(toml::Value::as_table) else {
                continue;
            };
            if let Some(key) = table.keys().find(|k| INLINE_SECRETS.contains(&k.as_str())) {
                return Err(ctx.err(
                    format!("{name}.{side}.{key}"),
                    format!(
                        "secrets never stand in the configuration: use {key}_file (a file, \
                         looked up in $CREDENTIALS_DIRECTORY first) or {key}_env (an \
                         environment variable)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A secret read from a file loses one trailing newline (`\n` or `\r\n`), nothing else.
fn strip_one_newline(mut s: String) -> String {
    if s.ends_with("\r\n") {
        s.truncate(s.len() - 2);
    } else if s.ends_with('\n') {
        s.truncate(s.len() - 1);
    }
    s
}

/// Accepts `https://` anywhere and `http://` only to a loopback host.
fn check_url(url: &str) -> Result<(), String> {
    // The URL itself is never echoed: it can be a secret (a private iCal address) or hold
    // credentials.
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "a URL must not carry credentials (user:password@): use username and \
                    password_file or password_env"
                .into(),
        );
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            if crate::net::is_loopback(&parsed) {
                Ok(())
            } else {
                Err(format!(
                    "plain http:// is refused except to loopback hosts; use https:// for '{}'",
                    parsed.host_str().unwrap_or("")
                ))
            }
        }
        other => Err(format!(
            "the scheme '{other}' is not supported; use https://"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[pair]]
name = "parish"
[pair.source]
kind = "ics"
path = "feed.ics"
[pair.target]
kind = "ics"
path = "out.ics"
"#;

    fn parse_text(text: &str) -> Result<Settings, ConfigError> {
        parse(
            Path::new("/etc/calsync/calsync.toml"),
            text,
            None,
            &Environment::default(),
        )
    }

    #[test]
    fn defaults_follow_the_design() {
        let s = parse_text(MINIMAL).unwrap();
        let p = &s.pairs[0];
        assert_eq!(
            p.window,
            WindowDays {
                past_days: 30,
                future_days: 365
            }
        );
        assert_eq!(p.retention_days, 180);
        assert_eq!(
            p.guard,
            GuardLimits {
                max_delete_percent: 50,
                max_delete_min: 10
            }
        );
        assert_eq!(p.stale_after_minutes, 60);
        assert_eq!(p.rules.recurrence, RecurrenceMode::Preserve);
        assert_eq!(p.rules.fields.len(), 4);
        assert_eq!(s.state, PathBuf::from("calsync.db"));
        assert_eq!(
            p.source,
            Endpoint::Ics(IcsSettings {
                location: IcsLocation::Path("/etc/calsync/feed.ics".into()),
                name: None,
                username: None,
                password: None
            })
        );
    }

    #[test]
    fn health_thresholds_default_and_are_checked() {
        let s = parse_text(MINIMAL).unwrap();
        assert_eq!(
            s.health,
            HealthSettings {
                stale_fail_factor: 4,
                failure_window_runs: 10,
                failure_warn_percent: 25,
                failure_fail_percent: 75,
                cursor_warn_days: 2,
            }
        );
        let set = parse_text(&format!(
            "[health]\nstale_fail_factor = 2\ncursor_warn_days = 3\n{MINIMAL}"
        ))
        .unwrap();
        assert_eq!(set.health.stale_fail_factor, 2);
        assert_eq!(set.health.cursor_warn_days, 3);
        let cases: &[(&str, &str)] = &[
            ("stale_fail_factor = 0", "health.stale_fail_factor"),
            ("failure_window_runs = 0", "health.failure_window_runs"),
            ("failure_warn_percent = 0", "health.failure_warn_percent"),
            ("failure_fail_percent = 101", "health.failure_fail_percent"),
            (
                "failure_warn_percent = 80\nfailure_fail_percent = 50",
                "health.failure_warn_percent",
            ),
            ("cursor_warn_days = 0", "health.cursor_warn_days"),
            ("stale_after_minutes = 5", "stale_after_minutes"),
        ];
        for (snippet, key) in cases {
            let err = parse_text(&format!("[health]\n{snippet}\n{MINIMAL}")).expect_err(snippet);
            assert!(
                err.key == *key || err.to_string().contains(key),
                "{snippet}: expected {key} in {err}"
            );
        }
    }

    #[test]
    fn state_precedence_is_flag_then_config_then_state_directory() {
        let env = Environment {
            state_directory: Some("/var/lib/calsync".into()),
            ..Default::default()
        };
        let path = Path::new("/etc/calsync/calsync.toml");
        let s = parse(path, MINIMAL, None, &env).unwrap();
        assert_eq!(s.state, PathBuf::from("/var/lib/calsync/calsync.db"));
        let with_state = format!("state = \"/srv/x.db\"\n{MINIMAL}");
        let s = parse(path, &with_state, None, &env).unwrap();
        assert_eq!(s.state, PathBuf::from("/srv/x.db"));
        let s = parse(path, &with_state, Some(Path::new("/tmp/y.db")), &env).unwrap();
        assert_eq!(s.state, PathBuf::from("/tmp/y.db"));
    }

    /// Each bad snippet is a 78 naming the key.
    #[test]
    fn bad_snippets_name_their_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("unknown top-level key", "stat = \"x\"\n", "stat"),
            (
                "unknown pair key",
                "[[pair]]\nname=\"a\"\nexclude_categorie=[]\n",
                "exclude_categorie",
            ),
            (
                "bad pair name",
                "[[pair]]\nname=\"Parish One\"\n[pair.source]\nkind=\"ics\"\npath=\"f\"\n[pair.target]\nkind=\"ics\"\npath=\"o\"\n",
                "pair[0].name",
            ),
            (
                "inline secret",
                "[[pair]]\nname=\"a\"\n[pair.source]\nkind=\"caldav\"\nurl=\"https://x/\"\npassword=\"hunter2\"\n",
                "password",
            ),
            (
                "unknown kind",
                "[[pair]]\nname=\"a\"\n[pair.source]\nkind=\"exchange\"\n[pair.target]\nkind=\"ics\"\npath=\"o\"\n",
                "pair 'a'.source.kind",
            ),
            (
                "key of another kind",
                "[[pair]]\nname=\"a\"\n[pair.source]\nkind=\"ics\"\npath=\"f\"\ntenant_id=\"t\"\n[pair.target]\nkind=\"ics\"\npath=\"o\"\n",
                "pair 'a'.source.tenant_id",
            ),
            (
                "plain http",
                "[[pair]]\nname=\"a\"\n[pair.source]\nkind=\"ics\"\nurl=\"http://example.org/f.ics\"\n[pair.target]\nkind=\"ics\"\npath=\"o\"\n",
                "pair 'a'.source.url",
            ),
            (
                "missing secret file",
                "[[pair]]\nname=\"a\"\n[pair.source]\nkind=\"caldav\"\nurl=\"https://x/\"\nusername=\"u\"\npassword_file=\"/nonexistent/pw\"\n[pair.target]\nkind=\"ics\"\npath=\"o\"\n",
                "pair 'a'.source.password_file",
            ),
            (
                "unset secret env",
                "[[pair]]\nname=\"a\"\n[pair.source]\nkind=\"caldav\"\nurl=\"https://x/\"\nusername=\"u\"\npassword_env=\"CALSYNC_TEST_UNSET_VAR\"\n[pair.target]\nkind=\"ics\"\npath=\"o\"\n",
                "pair 'a'.source.password_env",
            ),
            (
                "ics target url",
                "[[pair]]\nname=\"a\"\n[pair.source]\nkind=\"ics\"\npath=\"f\"\n[pair.target]\nkind=\"ics\"\nurl=\"https://x/f.ics\"\n",
                "pair 'a'.target.url",
            ),
            (
                "duplicate names",
                "[[pair]]\nname=\"a\"\n[pair.source]\nkind=\"ics\"\npath=\"f\"\n[pair.target]\nkind=\"ics\"\npath=\"o\"\n[[pair]]\nname=\"a\"\n[pair.source]\nkind=\"ics\"\npath=\"f\"\n[pair.target]\nkind=\"ics\"\npath=\"o\"\n",
                "pair[1].name",
            ),
            (
                "bad percent",
                "[[pair]]\nname=\"a\"\nmax_delete_percent=150\n[pair.source]\nkind=\"ics\"\npath=\"f\"\n[pair.target]\nkind=\"ics\"\npath=\"o\"\n",
                "pair 'a'.max_delete_percent",
            ),
            (
                "bad field",
                "[[pair]]\nname=\"a\"\nfields=[\"title\",\"attendees\"]\n[pair.source]\nkind=\"ics\"\npath=\"f\"\n[pair.target]\nkind=\"ics\"\npath=\"o\"\n",
                "attendees",
            ),
            (
                "bad recurrence",
                "[[pair]]\nname=\"a\"\nrecurrence=\"explode\"\n[pair.source]\nkind=\"ics\"\npath=\"f\"\n[pair.target]\nkind=\"ics\"\npath=\"o\"\n",
                "explode",
            ),
            (
                "visibility on target",
                "[[pair]]\nname=\"a\"\n[pair.source]\nkind=\"ics\"\npath=\"f\"\n[pair.target]\nkind=\"google\"\nservice_account_env=\"HOME\"\ncalendar_id=\"c\"\ndefault_visibility=\"public\"\n",
                "pair 'a'.target.default_visibility",
            ),
            ("no pairs", "", "pair"),
            (
                "two pairs, one file",
                "[[pair]]\nname=\"a\"\n[pair.source]\nkind=\"ics\"\npath=\"f\"\n[pair.target]\nkind=\"ics\"\npath=\"o\"\n[[pair]]\nname=\"b\"\n[pair.source]\nkind=\"ics\"\npath=\"g\"\n[pair.target]\nkind=\"ics\"\npath=\"o\"\n",
                "pair 'b'.target.path",
            ),
        ];
        let env = Environment {
            vars: vec![("HOME".into(), "/root".into())],
            ..Default::default()
        };
        for (what, text, key) in cases {
            let err =
                parse(Path::new("/etc/calsync/calsync.toml"), text, None, &env).expect_err(what);
            assert!(
                err.key == *key || err.to_string().contains(key),
                "{what}: expected key {key:?} in {err}"
            );
            assert!(
                err.to_string().starts_with("/etc/calsync/calsync.toml: "),
                "{what}: {err}"
            );
        }
    }

    #[test]
    fn inline_secret_error_points_to_file_and_env_forms() {
        let err = parse_text(
            "[[pair]]\nname=\"a\"\n[pair.source]\nkind=\"graph\"\nclient_secret=\"s3cret\"\n",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("client_secret_file"), "{text}");
        assert!(
            !text.contains("s3cret"),
            "the secret itself is never echoed: {text}"
        );
    }

    #[test]
    fn secrets_come_from_credentials_directory_first_and_lose_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("creds");
        std::fs::create_dir(&creds).unwrap();
        std::fs::write(creds.join("pw"), "from-creds\n\n").unwrap();
        std::fs::write(dir.path().join("pw"), "beside-config\r\n").unwrap();
        let text = "[[pair]]\nname=\"a\"\n[pair.source]\nkind=\"caldav\"\nurl=\"https://dav.example.org/c/\"\nusername=\"u\"\npassword_file=\"pw\"\n[pair.target]\nkind=\"ics\"\npath=\"o\"\n";
        let cfg = dir.path().join("calsync.toml");
        let mut env = Environment {
            credentials_directory: Some(creds.clone()),
            ..Default::default()
        };
        let s = parse(&cfg, text, None, &env).unwrap();
        let Endpoint::Caldav(c) = &s.pairs[0].source else {
            panic!()
        };
        assert_eq!(c.password.as_ref().unwrap().expose(), "from-creds\n");
        env.credentials_directory = None;
        let s = parse(&cfg, text, None, &env).unwrap();
        let Endpoint::Caldav(c) = &s.pairs[0].source else {
            panic!()
        };
        assert_eq!(c.password.as_ref().unwrap().expose(), "beside-config");
        assert_eq!(format!("{:?}", c.password), "Some(Secret(***))");
    }

    #[test]
    fn loopback_http_is_allowed_and_graph_token_url_takes_the_tenant() {
        for ok in [
            "http://127.0.0.1:8080/x",
            "http://localhost/x",
            "http://[::1]:9/x",
            "https://example.org/",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.org/",
            "http://10.0.0.1/",
            "ftp://127.0.0.1/",
            "not a url",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        let text = "[[pair]]\nname=\"a\"\n[pair.source]\nkind=\"graph\"\ntenant_id=\"contoso\"\nclient_id=\"c\"\nclient_secret_env=\"HOME\"\nuser=\"office@example.org\"\ncalendar=\"Public\"\n[pair.target]\nkind=\"ics\"\npath=\"o\"\n";
        let env = Environment {
            vars: vec![("HOME".into(), "x".into())],
            ..Default::default()
        };
        let s = parse(Path::new("/c.toml"), text, None, &env).unwrap();
        let Endpoint::Graph(g) = &s.pairs[0].source else {
            panic!()
        };
        assert_eq!(
            g.token_url,
            "https://login.microsoftonline.com/contoso/oauth2/v2.0/token"
        );
        assert_eq!(g.calendar, CalendarRef::Named("Public".into()));
    }

    #[test]
    fn pair_selection_rejects_unknown_names() {
        let s = parse_text(MINIMAL).unwrap();
        assert_eq!(s.select_pairs(&[]).unwrap().len(), 1);
        assert_eq!(s.select_pairs(&["parish".into()]).unwrap().len(), 1);
        assert!(
            s.select_pairs(&["school".into()])
                .unwrap_err()
                .contains("school")
        );
    }
}
