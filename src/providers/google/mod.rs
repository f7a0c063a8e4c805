//! The `google` provider (Google Calendar API v3): a calendar as a source and as a target,
//! reached with a service account's key (RS256 JWT bearer grant, optionally acting for a user
//! by domain-wide delegation).
//!
//! This file holds what both sides share: the service-account key ([`ServiceAccount`]), the
//! client of one calendar ([`Client`]: the run's [`Http`], the token source, the calendar's
//! URLs) and how Google's answers map onto [`ProviderError`]. `wire` maps event resources to
//! and from the model without I/O; `source` reads (`events.list`, windowed, then by sync
//! token); `target` writes (client-chosen ids derived from the tag, several in flight).
//!
//! Errors (Google's error guide): a 401, or a 403 that is not a rate limit, is "credentials
//! refused" (77); so is a 404 for the calendar itself, which is how Google answers for a
//! calendar not shared with the account. 403 `rateLimitExceeded`/`userRateLimitExceeded` and
//! 429 are retried by `net`; 403 `quotaExceeded` (Google's anti-abuse limit) is not retried
//! and stops the run's writes (75: try later); 403 `forbiddenForNonOrganizer` fails its one
//! write (1). Retries, backoff and timeouts are `net`'s: nothing here loops on a failure.

mod source;
mod target;
mod wire;

pub use source::GoogleSource;
pub use target::GoogleTarget;

use super::{Context, ProviderError};
use crate::config::GoogleSettings;
use crate::mask::mask_emails;
use crate::net::oauth::{Grant, SigningKey, TokenSource};
use crate::net::{NetError, Request, Response};
use serde::Deserialize;
use serde_json::Value;

/// The scope asked for, on both sides: what a Workspace admin grants for domain-wide
/// delegation ("https://www.googleapis.com/auth/calendar").
const SCOPE: &str = "https://www.googleapis.com/auth/calendar";
/// Google's token endpoint, when the key file names none.
const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// Items per `events.list` page: Google's maximum, so a calendar of a thousand events is one
/// request.
const PAGE_SIZE: &str = "2500";

/// The fields of a service-account key file calsync uses.
#[derive(Deserialize)]
pub struct ServiceAccount {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: String,
    private_key: String,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &mask_emails(&self.client_email))
            .field("private_key", &"***")
            .finish()
    }
}

impl ServiceAccount {
    /// Reads a service-account key file's JSON. The message names what is wrong, never a
    /// value from the file.
    ///
    /// # Errors
    /// Not JSON, not a service-account key, a field missing, or a `private_key` that is not
    /// an RSA private key in PEM form.
    pub fn parse(json: &str) -> Result<(ServiceAccount, SigningKey), String> {
        let account: ServiceAccount = serde_json::from_str(json).map_err(|e| {
            if e.is_data() {
                "not a Google service-account key: client_email and private_key are required"
                    .to_string()
            } else {
                "not a Google service-account key: the file is not JSON".to_string()
            }
        })?;
        if account
            .kind
            .as_deref()
            .is_some_and(|k| k != "service_account")
        {
            return Err(
                "not a Google service-account key: its \"type\" is not \"service_account\"".into(),
            );
        }
        if account.client_email.trim().is_empty() {
            return Err("not a Google service-account key: client_email is empty".into());
        }
        let key = SigningKey::from_rsa_pem(&account.private_key)
            .map_err(|_| "its private_key is not an RSA private key in PEM form".to_string())?;
        Ok((account, key))
    }
}

/// The client of one Google calendar. Safe to share between write workers.
struct Client {
    tokens: TokenSource,
    /// `…/calendar/v3/calendars/{calendarId}` (the id percent-encoded).
    calendar_url: String,
    /// The calendar id, masked, for messages.
    calendar: String,
    /// The service account, masked, for messages.
    account: String,
}

impl Client {
    /// Reads the key and sets up the token source (the cached token, if any, is used).
    ///
    /// # Errors
    /// [`ProviderError::Config`] for a key that cannot be used (78, naming the key).
    fn new(
        settings: &GoogleSettings,
        ctx: &Context<'_>,
        side: &str,
    ) -> Result<Client, ProviderError> {
        let at = format!(
            "{}: pair '{}'.{side}.service_account",
            ctx.settings.path.display(),
            ctx.pair.name
        );
        let (account, key) = ServiceAccount::parse(settings.service_account.expose())
            .map_err(|e| ProviderError::Config(format!("{at}: {e}")))?;
        let token_url = match (&settings.token_url, &account.token_uri) {
            (Some(url), _) => url.clone(),
            (None, Some(uri)) => {
                // The key file is configuration too: its token_uri obeys the URL rule.
                crate::net::check_learned_url(uri, uri).map_err(|e| {
                    ProviderError::Config(format!("{at}: the key file's token_uri: {e}"))
                })?;
                uri.clone()
            }
            (None, None) => DEFAULT_TOKEN_URL.to_string(),
        };
        let grant = Grant::JwtBearer {
            issuer: account.client_email.clone(),
            subject: settings.subject.clone(),
            scope: SCOPE.to_string(),
            key,
            key_id: account.private_key_id.clone(),
        };
        let tokens = TokenSource::new(&token_url, grant, ctx.http.clone(), ctx.store);
        Ok(Client {
            tokens,
            calendar_url: format!(
                "{}/calendars/{}",
                settings.base_url.trim_end_matches('/'),
                encode_segment(&settings.calendar_id)
            ),
            calendar: mask_emails(&settings.calendar_id),
            account: mask_emails(&account.client_email),
        })
    }

    fn events_url(&self) -> String {
        format!("{}/events", self.calendar_url)
    }

    fn event_url(&self, id: &str) -> String {
        format!("{}/events/{}", self.calendar_url, encode_segment(id))
    }

    /// Sends with a bearer token (one fresh token and one more try on a 401).
    fn send(&self, req: &Request) -> Result<Response, NetError> {
        self.tokens.send(req)
    }

    /// A GET with query parameters, its JSON answer.
    fn get_json(&self, url: &str, query: &[(&str, &str)]) -> Result<Value, NetError> {
        let resp =
            self.send(&Request::get(with_query(url, query)).header("Accept", "application/json"))?;
        Ok(serde_json::from_slice(&resp.body).unwrap_or(Value::Null))
    }

    /// A calendar-level failure: a 404 for the calendar means it is not there or not shared
    /// with the account (Google does not tell the two apart): credentials refused.
    fn calendar_error(&self, e: NetError, what: &str) -> ProviderError {
        if e.status() == Some(404) {
            return ProviderError::Auth {
                endpoint: e.endpoint().to_string(),
                detail: format!(
                    "{what}: HTTP 404: the calendar {} does not exist or is not shared with {} \
                     (share it with \"Make changes to events\", or set subject for domain-wide delegation)",
                    self.calendar, self.account
                ),
            };
        }
        classify(e, what)
    }
}

/// Google's answer as a [`ProviderError`]: quota answers that must not be hammered are told
/// apart from refused credentials (see the module doc).
fn classify(e: NetError, what: &str) -> ProviderError {
    let reason = match &e {
        NetError::Status {
            status: 403,
            reason,
            ..
        } => reason.clone(),
        _ => None,
    };
    match reason.as_deref() {
        Some("quotaExceeded") => ProviderError::Transient {
            endpoint: e.endpoint().to_string(),
            detail: format!(
                "{what}: {e}: Google's calendar usage limit was reached; calsync stops writing and tries again next run"
            ),
        },
        Some("forbiddenForNonOrganizer") => ProviderError::Failed {
            what: what.to_string(),
            detail: format!("{e}: only the organizer may change this event"),
        },
        _ => ProviderError::from_net(e, what),
    }
}

/// Whether an answer is Google's anti-abuse quota (after which no write is sent in this run).
fn is_quota(e: &NetError) -> bool {
    matches!(e, NetError::Status { status: 403, reason: Some(r), .. } if r == "quotaExceeded")
}

/// `url` with query parameters, encoded (sync and page tokens hold `+`, `/` and `=`).
fn with_query(url: &str, query: &[(&str, &str)]) -> String {
    if query.is_empty() {
        return url.to_string();
    }
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            u.query_pairs_mut().extend_pairs(query);
            u.to_string()
        }
        Err(_) => url.to_string(),
    }
}

/// Percent-encodes a path segment (calendar ids hold `@`, event ids are plain).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_cannot_be_used_are_named_without_their_content() {
        let pem = include_str!("../../../tests/fixtures/google-sa-key.pem");
        let good = serde_json::json!({
            "type": "service_account", "client_email": "a@b.iam.gserviceaccount.com",
            "private_key": pem, "private_key_id": "k1", "token_uri": "https://oauth2.googleapis.com/token",
        });
        assert!(ServiceAccount::parse(&good.to_string()).is_ok());
        let mut other = good.clone();
        other["type"] = "authorized_user".into();
        let mut bad_key = good.clone();
        bad_key["private_key"] =
            "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n".into();
        let mut no_email = good.clone();
        no_email.as_object_mut().unwrap().remove("client_email");
        for (text, want) in [
            ("{not json".to_string(), "not JSON"),
            (other.to_string(), "\"type\""),
            (bad_key.to_string(), "private_key is not an RSA"),
            (
                no_email.to_string(),
                "client_email and private_key are required",
            ),
        ] {
            let e = ServiceAccount::parse(&text).unwrap_err();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("BEGIN"), "{e}");
        }
    }

    #[test]
    fn tokens_and_ids_are_encoded() {
        assert_eq!(
            with_query("http://h/e", &[("syncToken", "CP+a/b=")]),
            "http://h/e?syncToken=CP%2Ba%2Fb%3D"
        );
        assert_eq!(
            encode_segment("c_x@group.calendar.google.com"),
            "c_x%40group.calendar.google.com"
        );
    }
}
