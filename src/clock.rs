//! The run's clock. Every command fixes "now" once, at its start, and derives the window and
//! every timestamp it compares from it; this is where that instant comes from.
//!
//! `CALSYNC_NOW` (RFC 3339, e.g. `2026-05-01T08:00:00Z`) replaces the real time for that
//! instant, so a test or an operator replaying a report ("what did the 08:00 run see?") gets
//! the window of that moment. Log timestamps, run history and HTTP timing keep the real
//! clock: they say when things happened, not which window was used.

use chrono::{DateTime, Utc};

/// The environment variable that pins the run's "now".
pub const NOW_VAR: &str = "CALSYNC_NOW";

/// The instant a run treats as now: `CALSYNC_NOW` when set, else the real time.
///
/// # Errors
/// A `CALSYNC_NOW` that is not an RFC 3339 date-time (a usage error: the run would otherwise
/// use a window nobody asked for).
pub fn run_now() -> Result<DateTime<Utc>, String> {
    match std::env::var(NOW_VAR) {
        Ok(value) if !value.trim().is_empty() => parse(&value),
        _ => Ok(Utc::now()),
    }
}

fn parse(value: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{NOW_VAR}={value:?} is not an RFC 3339 date-time ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_now_is_read_as_rfc3339() {
        assert_eq!(
            parse("2026-05-01T10:00:00+02:00").unwrap().to_rfc3339(),
            "2026-05-01T08:00:00+00:00"
        );
        assert!(parse("yesterday").unwrap_err().contains(NOW_VAR));
    }
}
