//! Audit entries the writing commands append besides their own run entry (DESIGN.md, Audit
//! log): authentication outcomes. (Breaker transitions are appended where the breakers are
//! saved, `Session::flush_breakers`.) Details are ids, counts and masked addresses; never a
//! secret.
//!
//! Authentication is judged from how a pair's run ended: refused credentials (77) are
//! appended every time; a success is appended when it is the pair's first, or the first
//! after a refusal, so a run every five minutes does not fill the log with successes.

use super::Session;
use crate::config::Pair;
use crate::exit;
use crate::mask::mask_emails;

/// The `meta` key remembering a pair's last authentication outcome.
fn auth_key(pair: &str) -> String {
    format!("auth_state:{pair}")
}

/// How many sides of the pair authenticate (a secret is configured for them).
pub fn credential_sides(pair: &Pair) -> usize {
    [&pair.source, &pair.target]
        .iter()
        .filter(|side| side.has_credentials())
        .count()
}

/// What a pair's run says about its credentials: refused (77), accepted (it got as far as
/// reading or writing: 0 or 1), or nothing known (it never reached the remote's answer).
fn auth_outcome(exit_code: i32) -> Option<bool> {
    match exit_code {
        exit::NOPERM => Some(false),
        exit::OK | exit::FAILED => Some(true),
        _ => None,
    }
}

/// Appends `auth.failed` for refused credentials, and `auth.succeeded` for a pair's first
/// accepted ones (or the first after a refusal). Pairs without credentials append nothing.
pub fn auth(session: &Session, pair: &Pair, exit_code: i32, error: Option<&str>) {
    if credential_sides(pair) == 0 {
        return;
    }
    let Some(accepted) = auth_outcome(exit_code) else {
        return;
    };
    let key = auth_key(&pair.name);
    let previous = session.store.meta(&key).ok().flatten();
    let now = if accepted { "ok" } else { "refused" };
    if accepted && previous.as_deref() == Some("ok") {
        return;
    }
    let detail = if accepted {
        serde_json::json!({
            "source": pair.source.kind(),
            "target": pair.target.kind(),
            "previous": previous,
        })
    } else {
        serde_json::json!({
            "source": pair.source.kind(),
            "target": pair.target.kind(),
            "error": error.map(mask_emails),
        })
    };
    let kind = if accepted {
        "auth.succeeded"
    } else {
        "auth.failed"
    };
    session.audit(kind, Some(&pair.name), detail);
    if let Err(e) = session.store.set_meta(&key, now) {
        log::error!(event = "state.error", pair = pair.name.as_str(); "{e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_runs_that_reached_the_remote_tell_about_credentials() {
        assert_eq!(auth_outcome(exit::NOPERM), Some(false));
        assert_eq!(auth_outcome(exit::OK), Some(true));
        assert_eq!(auth_outcome(exit::FAILED), Some(true));
        for code in [
            exit::TEMPFAIL,
            exit::UNAVAILABLE,
            exit::CONFIG,
            exit::TERMINATED,
        ] {
            assert_eq!(auth_outcome(code), None, "{code}");
        }
    }
}
