//! The command line, as clap definitions. Help text lives here, on the fields; the man pages
//! and shell completions are generated from these definitions (`calsync generate`), so they
//! never drift from `--help`.

use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Where the configuration is looked for when neither `--config` nor `CALSYNC_CONFIG` is set.
pub const DEFAULT_CONFIG: &str = "/etc/calsync/calsync.toml";

/// Publish the public events of a calendar into another calendar.
///
/// calsync reads a source calendar (Microsoft 365, Google Calendar, a CalDAV calendar such as
/// Nextcloud's, or an .ics feed), keeps only what may be shown to the public, and mirrors that
/// into a target calendar (Microsoft 365, Google Calendar, CalDAV, or an .ics file for a
/// website). It runs once per invocation, from a systemd timer or cron,
/// remembers everything in one SQLite file and writes JSON lines on stdout.
#[derive(Debug, Parser)]
#[command(
    name = "calsync",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Exit codes: 0 ok, 1 some events failed or a check failed, 64 usage, \
69 circuit breaker open, 75 locked or transient failure, 77 credentials refused, 78 configuration \
or state file unusable, 130/143 interrupted. `health` uses Nagios codes 0/1/2/3."
)]
pub struct Args {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes, before or after the command name.
#[derive(Debug, Clone, ClapArgs)]
pub struct GlobalArgs {
    /// The configuration file (TOML).
    #[arg(
        long,
        global = true,
        env = "CALSYNC_CONFIG",
        value_name = "PATH",
        default_value = DEFAULT_CONFIG
    )]
    pub config: PathBuf,

    /// The state file (SQLite); overrides the configuration's `state`. calsync creates the
    /// file, never its folder.
    #[arg(long, global = true, env = "CALSYNC_STATE", value_name = "PATH")]
    pub state: Option<PathBuf>,

    /// Only this pair (repeatable; default: every pair in the configuration).
    #[arg(long = "pair", global = true, value_name = "NAME")]
    pub pairs: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// One pass per pair: read the source's changes, keep what is public, update the target.
    ///
    /// Exit codes: 0 ok; 1 some events failed, a source could not be read for a reason
    /// retrying cannot fix, or the deletion guard withheld deletions; 69 a circuit breaker is
    /// open; 75 another run holds the state file, or a remote kept failing; 77 credentials
    /// refused; 78 configuration or state file unusable. With several pairs, the most severe.
    Sync(SyncArgs),
    /// Remove calsync's own target events that ended before the retention horizon, and prune
    /// history and metrics.
    ///
    /// The horizon is now minus `retention_days` (or --retention-days), never inside the sync
    /// window. Only events the mapping holds and the target lists under their own tag are
    /// removed. Exit codes as for sync.
    Cleanup(CleanupArgs),
    /// Read source and target and check that the target is exactly what should be published.
    ///
    /// Checks: counts_match, no_private_event, all_public, none_older_than_cutoff,
    /// no_duplicates, series_intact, fields_equal. Events are named by id, never by title.
    /// Exit codes: 0 every check passed, 1 a check failed.
    Validate(ReportArgs),
    /// Check configuration, state, credentials, connectivity and freshness (Nagios exit codes).
    ///
    /// JSON in the IETF health check response format. Thresholds: each pair's
    /// `stale_after_minutes` and the `[health]` table. Exit codes: 0 pass, 1 warn, 2 fail, 3
    /// unknown (the configuration or the state file is unusable).
    Health(HealthArgs),
    /// Show the last runs: outcomes, counts, durations and trends.
    ///
    /// Success rate, duration p50/p95/p99, hourly breakdown, this period against the one
    /// before, and API requests and latency per endpoint. Exit code 0.
    History(HistoryArgs),
    /// Recompute the audit log's HMAC chain and name the first bad entry.
    ///
    /// Exit codes: 0 intact, 1 broken (changed, inserted, deleted or reordered entries; with
    /// --expect-head, a chain cut short or rewritten).
    AuditVerify(AuditVerifyArgs),
    /// Write man pages or shell completions (for packaging).
    #[command(hide = true, subcommand)]
    Generate(GenerateCommand),
}

#[derive(Debug, Clone, ClapArgs)]
pub struct SyncArgs {
    /// Plan and report every create, update and delete (`plan.action`, by item and target
    /// id), but change nothing: no target write, and no state file, lock, audit key or
    /// metrics file created or touched (the state is read into memory and dropped).
    #[arg(long)]
    pub dry_run: bool,
    /// Ignore the stored sync cursors and read the whole source again.
    #[arg(long)]
    pub full: bool,
    /// Apply deletions even when the deletion guard would withhold them (use once, on purpose).
    #[arg(long)]
    pub allow_mass_delete: bool,
}

#[derive(Debug, Clone, ClapArgs)]
pub struct CleanupArgs {
    /// Keep events that ended within this many days, 0 to 36,500 (default: each pair's
    /// `retention_days`).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=crate::config::RETENTION_DAYS_MAX))]
    pub retention_days: Option<u32>,
    /// Report what would be removed (`plan.action`), remove nothing, and change no file
    /// (the state is read into memory and dropped).
    #[arg(long)]
    pub dry_run: bool,
}

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A readable table.
    Text,
    /// One JSON document.
    Json,
}

#[derive(Debug, Clone, ClapArgs)]
pub struct ReportArgs {
    /// Output format (default: text on a terminal, JSON otherwise).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

#[derive(Debug, Clone, ClapArgs)]
pub struct HealthArgs {
    /// Skip the checks that contact the source and target (auth, connectivity, calendars).
    #[arg(long)]
    pub offline: bool,
    /// Output format (default: text on a terminal, JSON otherwise).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

#[derive(Debug, Clone, ClapArgs)]
pub struct HistoryArgs {
    /// How many runs to list.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
    /// Only runs started on or after this date (YYYY-MM-DD) or time (RFC 3339).
    #[arg(long, value_name = "D")]
    pub since: Option<String>,
    /// Output format (default: text on a terminal, JSON otherwise).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

#[derive(Debug, Clone, ClapArgs)]
pub struct AuditVerifyArgs {
    /// Output format (default: text on a terminal, JSON otherwise).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// The chain head last seen elsewhere (as logged by every run), `SEQ:MAC`; a chain that
    /// no longer reaches it was truncated.
    #[arg(long, value_name = "SEQ:MAC")]
    pub expect_head: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Write man pages (calsync.1 and one per command) into DIR.
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Write the completion script for SHELL into DIR.
    Completions {
        #[arg(value_enum, value_name = "SHELL")]
        shell: Shell,
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// Shells completions are generated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn global_options_go_before_or_after_the_command() {
        let before = Args::try_parse_from(["calsync", "--pair", "a", "sync", "--dry-run"]).unwrap();
        let after = Args::try_parse_from(["calsync", "sync", "--dry-run", "--pair", "a"]).unwrap();
        assert_eq!(before.global.pairs, vec!["a"]);
        assert_eq!(after.global.pairs, vec!["a"]);
        assert!(matches!(
            after.command,
            Command::Sync(SyncArgs { dry_run: true, .. })
        ));
    }
}
