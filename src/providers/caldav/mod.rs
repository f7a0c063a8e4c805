//! The `caldav` provider (RFC 4791, RFC 6578): a calendar collection as a source and as a
//! target. Nextcloud, Fastmail, iCloud, mailbox.org and Radicale speak it.
//!
//! This file holds what both sides share: the client of one account ([`Dav`]: the run's
//! [`Http`] and the account's Basic credentials) and discovery, which turns the configured
//! `url` (a calendar's own URL, or a server / principal / calendar-home URL with `calendar =
//! "<name>"`) into a [`Collection`], cached in the state file for an hour so that a run with
//! nothing to do costs one request per calendar. `xml` builds bodies and parses answers without I/O;
//! `source` reads (sync-collection, or ctag/etag listing where the server lacks it);
//! `target` writes (PUT/DELETE with preconditions, several in flight).
//!
//! Retries, backoff and timeouts are `net`'s: nothing here loops on a failure.

mod source;
mod target;
mod xml;

pub use source::CaldavSource;
pub use target::CaldavTarget;

use super::ProviderError;
use crate::config::CaldavSettings;
use crate::mask::mask_url;
use crate::net::{Auth, Http, NetError, Request, Response};
use serde::{Deserialize, Serialize};
use xml::{DavResponse, Multistatus};

/// How long a resolved collection URL is trusted (DESIGN.md, State: cached calendar ids).
const COLLECTION_CACHE_SECONDS: i64 = 3600;

/// The client of one CalDAV account. Cheap to clone; safe to share between write workers.
#[derive(Clone)]
struct Dav {
    http: Http,
    auth: Auth,
}

impl Dav {
    fn new(settings: &CaldavSettings, http: Http) -> Dav {
        let auth = match &settings.username {
            Some(user) => Auth::Basic {
                user: user.clone(),
                password: settings
                    .password
                    .as_ref()
                    .map(|p| p.expose().to_string())
                    .unwrap_or_default(),
            },
            None => Auth::None,
        };
        Dav { http, auth }
    }

    /// A request with the account's credentials.
    fn request(&self, method: &str, url: &str) -> Request {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a WebDAV method name");
        Request::new(method, url).auth(self.auth.clone())
    }

    /// A PROPFIND or REPORT with an XML body.
    fn xml_request(
        &self,
        method: &str,
        url: &str,
        depth: &str,
        body: impl Into<Vec<u8>>,
    ) -> Request {
        self.request(method, url)
            .header("Depth", depth)
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(body)
    }

    fn send(&self, req: &Request) -> Result<Response, NetError> {
        self.http.send(req)
    }

    /// Sends a PROPFIND/REPORT and reads its multistatus answer.
    ///
    /// # Errors
    /// [`ProviderError`] by cause; an answer that is not a multistatus is `Failed`.
    fn multistatus(&self, req: &Request, what: &str) -> Result<Multistatus, ProviderError> {
        let resp = self
            .send(req)
            .map_err(|e| ProviderError::from_net(e, what))?;
        parse_answer(&resp, &req.url, what)
    }
}

/// The multistatus of a 2xx answer.
fn parse_answer(resp: &Response, url: &str, what: &str) -> Result<Multistatus, ProviderError> {
    xml::parse_multistatus(&resp.body).map_err(|e| ProviderError::Failed {
        what: format!("{what} ({})", mask_url(url)),
        detail: format!("HTTP {}: {e}", resp.status),
    })
}

/// A calendar collection, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Collection {
    /// Absolute URL ending in `/`.
    url: String,
    /// It has a `DAV:sync-token`: changes are read with sync-collection (RFC 6578).
    sync: bool,
}

impl Collection {
    /// The collection's path, decoded (how hrefs are compared).
    fn path(&self) -> String {
        xml::href_path(&self.url)
    }

    /// The absolute URL of an href the server gave (or of a member's name).
    fn join(&self, href: &str) -> String {
        join(&self.url, href)
    }

    /// True when `href` names the collection itself.
    fn is_self(&self, href: &str) -> bool {
        xml::href_path(href).trim_end_matches('/') == self.path().trim_end_matches('/')
    }
}

/// An href the server named during discovery, resolved against the URL it came from and
/// held to the configured-URL rule (DESIGN.md, "Trust nothing a remote says"): a discovery
/// answer that names `http://` on another host, or hands an `https://` account down to
/// `http://`, is refused before any request (and any password) goes there. Another `https://`
/// origin is allowed: iCloud keeps calendars on other hosts than its discovery host.
///
/// # Errors
/// [`ProviderError::Failed`] naming the refused origin.
fn learned(base: &str, href: &str) -> Result<String, ProviderError> {
    let url = join(base, href);
    crate::net::check_learned_url(base, &url)
        .map_err(|e| ProviderError::from_net(e, "CalDAV discovery"))?;
    Ok(url)
}

/// `href` resolved against `base` (hrefs are usually absolute paths).
fn join(base: &str, href: &str) -> String {
    reqwest::Url::parse(base)
        .and_then(|b| b.join(href))
        .map(|u| u.to_string())
        .unwrap_or_else(|_| href.to_string())
}

/// The collection `settings` names, from the state file's cache when it is younger than an
/// hour, else discovered and cached; and whether it was discovered just now (then it is known
/// to exist and the credentials to work).
///
/// # Errors
/// [`ProviderError::Config`] when the URL is not a calendar and no `calendar` name picks one,
/// or the name matches no calendar or several; others by cause.
fn resolve(
    settings: &CaldavSettings,
    dav: &Dav,
    ctx: &super::Context<'_>,
) -> Result<(Collection, bool), ProviderError> {
    let store = ctx.store;
    let key = format!(
        "caldav.collection.{}",
        crate::hashing::sha256_hex(
            format!(
                "{}\0{}\0{}",
                settings.url,
                settings.calendar.as_deref().unwrap_or(""),
                settings.username.as_deref().unwrap_or("")
            )
            .as_bytes()
        )
    );
    let now = ctx.now.timestamp();
    // A cached URL is held to the same rule as a fresh one (it may predate the rule).
    if let Some(cached) = store.cached(&key, now)?
        && let Ok(collection) = serde_json::from_str::<Collection>(&cached)
        && crate::net::check_learned_url(&settings.url, &collection.url).is_ok()
    {
        return Ok((collection, false));
    }
    let collection = discover(settings, dav)?;
    let json = serde_json::to_string(&collection).expect("a collection serialises");
    store.cache(&key, &json, now + COLLECTION_CACHE_SECONDS)?;
    log::info!(event = "caldav.discovered", url = mask_url(&collection.url).as_str(),
               sync_collection = collection.sync; "CalDAV calendar collection resolved");
    Ok((collection, true))
}

/// Finds the calendar collection: the URL itself when it is one (and no name is given), else
/// the calendar of that name under the account's calendar home (RFC 4791 §6.2.1, RFC 5397).
fn discover(settings: &CaldavSettings, dav: &Dav) -> Result<Collection, ProviderError> {
    let url = settings.url.as_str();
    let what = "CalDAV discovery";
    let here = dav.multistatus(
        &dav.xml_request("PROPFIND", url, "0", xml::PROPFIND_DISCOVER),
        what,
    )?;
    let me = response_for(&here, url).cloned().unwrap_or_default();
    let Some(name) = &settings.calendar else {
        if me.props.calendar {
            return Ok(Collection {
                url: url.to_string(),
                sync: me.props.sync_token.is_some(),
            });
        }
        let hint = home_of(dav, url, &me)
            .and_then(|home| calendars(dav, &home))
            .map(|cals| names_of(&cals))
            .unwrap_or_default();
        return Err(ProviderError::Config(format!(
            "{} is not a calendar collection: set url to a calendar's own URL, or add calendar = \"<name>\"{}",
            mask_url(url),
            if hint.is_empty() {
                String::new()
            } else {
                format!(" (calendars found: {hint})")
            }
        )));
    };
    let home = home_of(dav, url, &me)?;
    let cals = calendars(dav, &home)?;
    let by_name =
        |matches: &dyn Fn(&Collection, &DavResponse) -> bool| -> Vec<(Collection, DavResponse)> {
            cals.iter()
                .filter(|(c, r)| matches(c, r))
                .cloned()
                .collect()
        };
    let mut found = by_name(&|_, r| r.props.displayname.as_deref() == Some(name.as_str()));
    if found.is_empty() {
        // A calendar without a display name is known by the last segment of its path.
        found = by_name(&|c, _| last_segment(&c.url) == *name);
    }
    match found.len() {
        1 => Ok(found.remove(0).0),
        0 => Err(ProviderError::Config(format!(
            "no calendar named \"{name}\" under {} (calendars found: {})",
            mask_url(&home),
            if cals.is_empty() {
                "none".into()
            } else {
                names_of(&cals)
            }
        ))),
        n => Err(ProviderError::Config(format!(
            "{n} calendars are named \"{name}\" under {}: set url to the one meant",
            mask_url(&home)
        ))),
    }
}

/// The response about `url` in a Depth 0 answer (servers may answer with a canonical href).
fn response_for<'a>(m: &'a Multistatus, url: &str) -> Option<&'a DavResponse> {
    let path = xml::href_path(url);
    m.responses
        .iter()
        .find(|r| xml::href_path(&r.href).trim_end_matches('/') == path.trim_end_matches('/'))
        .or_else(|| m.responses.first())
}

/// The calendar home for a URL: its own `calendar-home-set`, its principal's, or the URL
/// itself when it names neither (a home, or any collection holding calendars).
fn home_of(dav: &Dav, url: &str, me: &DavResponse) -> Result<String, ProviderError> {
    if let Some(home) = &me.props.calendar_home_set {
        return learned(url, home);
    }
    let Some(principal) = &me.props.current_user_principal else {
        return Ok(url.to_string());
    };
    let principal = learned(url, principal)?;
    let answer = dav.multistatus(
        &dav.xml_request("PROPFIND", &principal, "0", xml::PROPFIND_DISCOVER),
        "CalDAV discovery (principal)",
    )?;
    match response_for(&answer, &principal).and_then(|r| r.props.calendar_home_set.clone()) {
        Some(home) => learned(&principal, &home),
        None => Err(ProviderError::Config(format!(
            "the principal {} names no calendar-home-set: set url to the calendar's own URL",
            mask_url(&principal)
        ))),
    }
}

/// The event calendars directly under `home`.
fn calendars(dav: &Dav, home: &str) -> Result<Vec<(Collection, DavResponse)>, ProviderError> {
    let answer = dav.multistatus(
        &dav.xml_request("PROPFIND", home, "1", xml::PROPFIND_CALENDARS),
        "CalDAV discovery (calendar home)",
    )?;
    answer
        .responses
        .into_iter()
        .filter(|r| r.props.calendar)
        .filter(|r| {
            r.props
                .components
                .as_ref()
                .is_none_or(|c| c.iter().any(|c| c == "VEVENT"))
        })
        .map(|r| {
            let mut url = learned(home, &r.href)?;
            if !url.ends_with('/') {
                url.push('/');
            }
            Ok((
                Collection {
                    url,
                    sync: r.props.sync_token.is_some(),
                },
                r,
            ))
        })
        .collect()
}

fn last_segment(url: &str) -> String {
    xml::href_path(url)
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn names_of(cals: &[(Collection, DavResponse)]) -> String {
    cals.iter()
        .map(|(c, r)| {
            format!(
                "\"{}\"",
                r.props
                    .displayname
                    .clone()
                    .unwrap_or_else(|| last_segment(&c.url))
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
