//! The errors that end a command before it can report anything itself, and the one place
//! they become exit codes. A new variant cannot compile without a code.

use crate::config::ConfigError;
use crate::exit;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable (78).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The command line asked for something that does not exist, e.g. an unknown pair (64).
    #[error("{0}")]
    Usage(String),
    /// The state file is unusable, missing, or locked.
    #[error(transparent)]
    State(#[from] StoreError),
    /// The audit key cannot be read or created (a configuration problem: 78).
    #[error("{0}")]
    AuditKey(String),
    /// The machine cannot do what is needed (e.g. no TLS roots, no randomness) (75).
    #[error("{0}")]
    Setup(String),
}

impl Error {
    /// The exit code this error ends the process with.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) => exit::CONFIG,
            Error::Usage(_) => exit::USAGE,
            Error::State(e) => e.exit_code(),
            Error::AuditKey(_) => exit::CONFIG,
            Error::Setup(_) => exit::TEMPFAIL,
        }
    }

    /// The stable event name of the error's log line.
    pub fn event(&self) -> &'static str {
        match self {
            Error::Config(_) => "config.invalid",
            Error::Usage(_) => "usage.invalid",
            Error::State(StoreError::Locked { .. }) => "state.locked",
            Error::State(_) => "state.unusable",
            Error::AuditKey(_) => "audit.key_invalid",
            Error::Setup(_) => "setup.failed",
        }
    }
}
