//! The exit codes calsync promises (DESIGN.md, Commands). Tests and code name these constants,
//! never the bare numbers.
//!
//! `sync` and `cleanup` try every pair and exit with the most severe pair outcome, in the
//! order [`severity`] gives: 78 > 77 > 69 > 75 > 1 > 0.

/// Everything went as asked.
pub const OK: i32 = 0;
/// Some events failed, a validate check failed, the deletion guard tripped, a source could not
/// be read for a reason retrying cannot fix, or the audit chain is broken.
pub const FAILED: i32 = 1;
/// The command line was wrong (sysexits EX_USAGE).
pub const USAGE: i32 = 64;
/// A circuit breaker is open: the endpoint was not called (EX_UNAVAILABLE).
pub const UNAVAILABLE: i32 = 69;
/// Another run holds the state file, or a remote failed in a way retrying later may fix
/// (EX_TEMPFAIL).
pub const TEMPFAIL: i32 = 75;
/// Credentials were refused (EX_NOPERM).
pub const NOPERM: i32 = 77;
/// The configuration or the state file is unusable (EX_CONFIG).
pub const CONFIG: i32 = 78;
/// Stopped by SIGINT.
pub const INTERRUPTED: i32 = 130;
/// Stopped by SIGTERM.
pub const TERMINATED: i32 = 143;

/// Nagios-style codes of `health`.
pub mod health {
    pub const PASS: i32 = 0;
    pub const WARN: i32 = 1;
    pub const FAIL: i32 = 2;
    pub const UNKNOWN: i32 = 3;
}

/// How severe an exit code is when several pairs end differently; higher wins.
pub fn severity(code: i32) -> u8 {
    match code {
        OK => 0,
        FAILED => 1,
        TEMPFAIL => 2,
        UNAVAILABLE => 3,
        NOPERM => 4,
        CONFIG => 5,
        // Signals end the whole run; they outrank every pair outcome.
        INTERRUPTED | TERMINATED => 6,
        _ => 1,
    }
}

/// The most severe of several exit codes (0 for none).
pub fn most_severe(codes: impl IntoIterator<Item = i32>) -> i32 {
    codes.into_iter().max_by_key(|c| severity(*c)).unwrap_or(OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_outcomes_combine_in_the_documented_order() {
        let order = [CONFIG, NOPERM, UNAVAILABLE, TEMPFAIL, FAILED, OK];
        for (i, higher) in order.iter().enumerate() {
            for lower in &order[i..] {
                assert_eq!(most_severe([*lower, *higher]), *higher);
                assert_eq!(most_severe([*higher, *lower]), *higher);
            }
        }
        assert_eq!(most_severe([]), OK);
    }
}
