//! The `graph` provider: a Microsoft 365 (Exchange Online) calendar through Microsoft Graph
//! v1.0, as a source and as a target.
//!
//! This file holds what both sides share: the client of one mailbox ([`Graph`]: the run's
//! [`Http`], an app-only token from `net::oauth`, the mailbox in every path), and the
//! resolution of the configured calendar (a name, an id, or the default) to its id, cached in
//! the state file for an hour. `wire` turns Graph JSON into the model and back without I/O;
//! `batch` sends JSON `$batch` requests (20 items, every item's status read, throttled items
//! sent again alone); `source` reads `calendarView/delta`; `target` writes.
//!
//! Every call asks for times in UTC (`Prefer: outlook.timezone="UTC"`): the provider converts
//! them into each event's own zone itself, so nothing depends on a zone Graph might not know.
//! The mailbox address sits in every URL; log lines and errors name it masked
//! (`o***@example.org`). Retries, backoff and the breaker are `net`'s; nothing here loops on
//! a failure, except the documented re-send of throttled batch items.

mod batch;
mod source;
mod target;
mod wire;

pub use source::GraphSource;
pub use target::GraphTarget;

use super::{Context, ProviderError};
use crate::config::{CalendarRef, GraphCredential, GraphSettings};
use crate::mask::mask_emails;
use crate::net::oauth::{Grant, SigningKey, TokenSource, certificate_thumbprint};
use crate::net::{NetError, Request, Response, check_learned_url};
use std::sync::Arc;

/// The scope of app-only Graph tokens: the Application permissions an admin granted.
const SCOPE: &str = "https://graph.microsoft.com/.default";
/// How long a resolved calendar id is trusted (DESIGN.md, State: cached calendar ids).
const CALENDAR_CACHE_SECONDS: i64 = 3600;
/// Asked on every call: times in UTC, converted by [`wire`] into each event's zone.
const PREFER_UTC: &str = "outlook.timezone=\"UTC\"";

/// The property set of calsync's extended properties (a GUID of its own, so no other
/// program's property can be mistaken for ours).
const PROPERTY_SET: &str = "{21809c20-3942-4097-b872-cc44a6c2d171}";

/// The id of the single-value extended property that carries calsync's tag.
fn tag_property() -> String {
    format!("String {PROPERTY_SET} Name calsyncKey")
}

/// The id of the property that keeps a series' rule as published: Graph holds a pattern,
/// and one pattern has several RRULE spellings (`BYDAY` implied or written, `UNTIL` as a
/// date or an instant). Read back only where it gives the instances Graph's pattern gives.
fn rule_property() -> String {
    format!("String {PROPERTY_SET} Name calsyncRule")
}

/// The id of the property that marks one event of an item written expanded (a series Graph
/// cannot hold as a series): its value is the item's tag.
fn part_property() -> String {
    format!("String {PROPERTY_SET} Name calsyncPartOf")
}

/// The client of one mailbox. Cheap to clone; shared by concurrent batch writers.
#[derive(Clone)]
struct Graph {
    tokens: Arc<TokenSource>,
    /// `…/v1.0`, no trailing `/`.
    base: String,
    /// `…/v1.0/users/{user}` with the user percent-encoded.
    mailbox: String,
    /// The mailbox as configured, masked: what logs and errors name.
    masked: String,
    /// Batches in flight at once: `[net] concurrency`, at most Outlook's four.
    in_flight: usize,
}

impl Graph {
    /// The client for `settings`, its token cached in the run's state file.
    ///
    /// # Errors
    /// [`ProviderError::Config`] when the certificate or key cannot be read.
    fn new(settings: &GraphSettings, ctx: &Context<'_>) -> Result<Graph, ProviderError> {
        let grant = match &settings.credential {
            GraphCredential::Secret(secret) => Grant::ClientSecret {
                client_id: settings.client_id.clone(),
                secret: secret.clone(),
                scope: SCOPE.into(),
            },
            GraphCredential::Certificate { certificate, key } => {
                let config = ctx.settings.path.display();
                let pair = &ctx.pair.name;
                let thumbprint = certificate_thumbprint(certificate).map_err(|e| {
                    ProviderError::Config(format!(
                        "{config}: pair '{pair}': client_certificate_file: {e}"
                    ))
                })?;
                let key = SigningKey::from_rsa_pem(key.expose()).map_err(|e| {
                    ProviderError::Config(format!("{config}: pair '{pair}': client_key_file: {e}"))
                })?;
                Grant::ClientAssertion {
                    client_id: settings.client_id.clone(),
                    scope: SCOPE.into(),
                    key,
                    thumbprint,
                }
            }
        };
        let tokens = TokenSource::new(&settings.token_url, grant, ctx.http.clone(), ctx.store);
        let base = settings.base_url.trim_end_matches('/').to_string();
        Ok(Graph {
            tokens: Arc::new(tokens),
            mailbox: format!("{base}/users/{}", path_segment(&settings.user)),
            base,
            masked: mask_emails(&settings.user),
            in_flight: ctx.settings.net.concurrency.clamp(1, batch::IN_FLIGHT),
        })
    }

    /// A request with Graph's usual headers (JSON, times in UTC).
    fn request(&self, method: reqwest::Method, url: impl Into<String>) -> Request {
        Request::new(method, url)
            .header("Accept", "application/json")
            .header("Prefer", PREFER_UTC)
    }

    fn get(&self, url: impl Into<String>) -> Request {
        self.request(reqwest::Method::GET, url)
    }

    /// A GET with more preferences besides UTC (one `Prefer` header).
    fn get_preferring(&self, url: impl Into<String>, extra: &str) -> Request {
        Request::new(reqwest::Method::GET, url)
            .header("Accept", "application/json")
            .header("Prefer", format!("{PREFER_UTC}, {extra}"))
    }

    /// Sends with a bearer token (a 401 gets one fresh token).
    fn send(&self, req: &Request) -> Result<Response, NetError> {
        self.tokens.send(req)
    }

    /// Sends and reads a JSON object.
    ///
    /// # Errors
    /// [`ProviderError`] by cause; an answer that is not a JSON object is `Failed`.
    fn json(&self, req: &Request, what: &str) -> Result<serde_json::Value, ProviderError> {
        let resp = self
            .send(req)
            .map_err(|e| ProviderError::from_net(e, &self.what(what)))?;
        parse_object(&resp.body).ok_or_else(|| ProviderError::Failed {
            what: self.what(what),
            detail: format!("HTTP {}: the answer is not a JSON object", resp.status),
        })
    }

    /// Reads every page of a collection (`value` arrays linked by `@odata.nextLink`); each
    /// next link must pass the learned-URL rule before it is followed.
    ///
    /// # Errors
    /// [`ProviderError`] by cause; a page cut short fails the whole listing.
    fn list(&self, first: Request, what: &str) -> Result<Vec<serde_json::Value>, ProviderError> {
        let mut out = Vec::new();
        let mut req = first;
        loop {
            let page = self.json(&req, what)?;
            let Some(values) = page.get("value").and_then(|v| v.as_array()) else {
                return Err(ProviderError::Failed {
                    what: self.what(what),
                    detail: "a page without a value array".into(),
                });
            };
            out.extend(values.iter().cloned());
            match page.get("@odata.nextLink").and_then(|l| l.as_str()) {
                Some(next) => {
                    self.check_link(&req.url, next, what)?;
                    let mut following = req.clone();
                    following.url = next.to_string();
                    req = following;
                }
                None => return Ok(out),
            }
        }
    }

    /// A link Graph handed out must obey the URL rule before calsync follows it.
    fn check_link(&self, from: &str, link: &str, what: &str) -> Result<(), ProviderError> {
        check_learned_url(from, link).map_err(|e| ProviderError::from_net(e, &self.what(what)))
    }

    /// Keeps a token fetched in this run in the state file (called from the thread that owns
    /// the store).
    fn save_token(&self, store: &crate::store::Store) {
        self.tokens.save(store);
    }

    /// Names an operation for an error line, with the mailbox masked.
    fn what(&self, what: &str) -> String {
        format!("Graph {what} (mailbox {})", self.masked)
    }
}

/// A path segment, percent-encoded (a UPN's `@` stays readable, as Graph's own examples
/// write it).
fn path_segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A query value, percent-encoded.
fn query_value(text: &str) -> String {
    let mut url = reqwest::Url::parse("x:/").expect("a base URL");
    url.query_pairs_mut().append_pair("v", text);
    url.query()
        .unwrap_or("")
        .trim_start_matches("v=")
        .to_string()
}

fn parse_object(body: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .filter(|v| v.is_object())
}

/// Graph's error code (`error.code`) of a failed answer.
fn error_code(e: &NetError) -> Option<String> {
    match e {
        NetError::Status { response, .. } => parse_object(&response.body)
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string)),
        _ => None,
    }
}

/// The calendar `settings` names, as an id: from the state file's cache when it is younger
/// than an hour, else resolved and cached; and whether it was resolved just now (then the
/// calendar is known to exist and the credentials to work).
///
/// # Errors
/// [`ProviderError::Config`] when no calendar or several have the name; others by cause.
fn resolve_calendar(
    graph: &Graph,
    settings: &GraphSettings,
    ctx: &Context<'_>,
) -> Result<(String, bool), ProviderError> {
    let reference = match &settings.calendar {
        CalendarRef::Id(id) => format!("id\0{id}"),
        CalendarRef::Named(name) => format!("name\0{name}"),
        CalendarRef::Default => "default".to_string(),
    };
    let key = format!(
        "graph.calendar.{}",
        crate::hashing::sha256_hex(
            format!("{}\0{}\0{reference}", settings.base_url, settings.user).as_bytes()
        )
    );
    let now = ctx.now.timestamp();
    if let Some(id) = ctx.store.cached(&key, now)? {
        return Ok((id, false));
    }
    let id = match &settings.calendar {
        CalendarRef::Id(id) => {
            let url = format!("{}/calendars/{}", graph.mailbox, path_segment(id));
            calendar_id(
                graph.json(&graph.get(url), "calendar")?,
                &graph.what("calendar"),
            )?
        }
        CalendarRef::Default => {
            let url = format!("{}/calendar", graph.mailbox);
            calendar_id(
                graph.json(&graph.get(url), "default calendar")?,
                &graph.what("default calendar"),
            )?
        }
        CalendarRef::Named(name) => {
            let url = format!(
                "{}/calendars?$filter={}&$top=100",
                graph.mailbox,
                query_value(&format!("name eq '{}'", name.replace('\'', "''")))
            );
            let found = graph.list(graph.get(url), "calendar list")?;
            // Exchange compares names without case; so does this.
            let ids: Vec<String> = found
                .iter()
                .filter(|c| {
                    c["name"]
                        .as_str()
                        .is_some_and(|n| n.to_lowercase() == name.to_lowercase())
                })
                .filter_map(|c| c["id"].as_str().map(str::to_string))
                .collect();
            match ids.as_slice() {
                [id] => id.clone(),
                [] => {
                    return Err(ProviderError::Config(format!(
                        "{}: pair '{}': no calendar named \"{name}\" in mailbox {}",
                        ctx.settings.path.display(),
                        ctx.pair.name,
                        graph.masked
                    )));
                }
                several => {
                    return Err(ProviderError::Config(format!(
                        "{}: pair '{}': {} calendars are named \"{name}\" in mailbox {} (ids {}): set calendar_id to the one meant",
                        ctx.settings.path.display(),
                        ctx.pair.name,
                        several.len(),
                        graph.masked,
                        several.join(", ")
                    )));
                }
            }
        }
    };
    ctx.store.cache(&key, &id, now + CALENDAR_CACHE_SECONDS)?;
    log::info!(event = "graph.calendar_resolved", mailbox = graph.masked.as_str();
               "Graph calendar resolved");
    Ok((id, true))
}

fn calendar_id(v: serde_json::Value, what: &str) -> Result<String, ProviderError> {
    v["id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .ok_or_else(|| ProviderError::Failed {
            what: what.to_string(),
            detail: "the calendar has no id".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_queries_are_encoded() {
        assert_eq!(path_segment("office@example.org"), "office@example.org");
        assert_eq!(path_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(query_value("name eq 'A&B'"), "name+eq+%27A%26B%27");
    }
}
