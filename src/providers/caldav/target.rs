//! CalDAV as a target. Each published item is one resource, named from (pair, item key) by
//! `hashing::resource_name`, holding `ical::render_resource` (derived UID, `CLASS:PUBLIC`,
//! `X-CALSYNC-TAG`).
//!
//! Every write is conditional, so nothing is overwritten blindly and nothing is created
//! twice: a create is `PUT If-None-Match: *`, an update `PUT If-Match: <etag>`, a delete
//! `DELETE If-Match: <etag>`. A failed precondition (412) is settled by reading the resource:
//! - create, and the resource exists: a run that crashed or lost the answer made it. Ours
//!   (our tag) → done, rewritten with `If-Match` when its content differs; not ours →
//!   conflict.
//! - update, and the etag moved: ours and already what we want → done; else someone changed
//!   it → conflict, left as it is. Gone → created again.
//! - delete, and the etag moved: gone → done; ours and still holding only what calsync writes
//!   → deleted with its new etag; else conflict.
//!
//! calsync touches only resources it created: under the names it derives, or where the
//! mapping recorded them (its own writes, or events found in the target under its tag), and
//! after a failed precondition only those still carrying its tag. A batch of writes runs with
//! `concurrency` requests in flight.

use super::xml;
use super::{Collection, Dav};
use crate::config::CaldavSettings;
use crate::ical::{Published, ReadBack};
use crate::mask::mask_url;
use crate::model::{ItemKey, Marking, PublicEvent};
use crate::net::NetError;
use crate::policy;
use crate::providers::{
    Applied, Context, OwnedEvent, ProviderError, Target, Write, WriteError, pool,
};

/// What a conditional request came to.
enum Cond<T> {
    Done(T),
    /// 412: the precondition failed.
    Failed,
    /// 404: there is nothing at that URL.
    Missing,
}

/// How a PUT is made conditional.
#[derive(Clone, Copy)]
enum Precondition<'a> {
    /// `If-None-Match: *`: only if nothing is there.
    Absent,
    /// `If-Match: <etag>`: only if it is still that version.
    Matches(&'a str),
}

/// A resource as read back.
struct Found {
    etag: Option<String>,
    /// The one item it holds, when it holds exactly one that can be read.
    item: Option<ReadBack>,
}

impl Found {
    fn is_ours(&self, tag: &str) -> bool {
        self.item.as_ref().and_then(|i| i.tag.as_deref()) == Some(tag)
    }

    /// It carries a tag of this pair (some item's, maybe one the source no longer has).
    fn is_pairs(&self, pair: &str) -> bool {
        self.item
            .as_ref()
            .and_then(|i| i.tag.as_deref())
            .is_some_and(|t| crate::hashing::is_pair_tag(pair, t))
    }

    /// It holds nothing calsync would not write: every CLASS explicitly public, no attendee,
    /// organizer, alarm or attachment.
    fn is_pristine(&self) -> bool {
        self.item.as_ref().is_some_and(|i| {
            i.foreign.is_empty()
                && i.classes
                    .iter()
                    .all(|c| policy::is_marked_public(&Marking::Class(c.clone())))
        })
    }

    /// It is pristine and publishes exactly `event`.
    fn holds(&self, event: &PublicEvent) -> bool {
        self.is_pristine() && self.item.as_ref().is_some_and(|i| i.event == *event)
    }
}

/// A calendar collection written as a target.
pub struct CaldavTarget {
    dav: Dav,
    collection: Collection,
    /// The collection was seen to exist, with these credentials, in this run.
    checked: bool,
    pair: String,
    concurrency: usize,
}

impl CaldavTarget {
    /// Resolves the collection (cached for an hour in the state file).
    ///
    /// # Errors
    /// Discovery's errors, by cause.
    pub fn new(settings: &CaldavSettings, ctx: &Context<'_>) -> Result<Self, ProviderError> {
        let dav = Dav::new(settings, ctx.http.clone());
        let (collection, checked) = super::resolve(settings, &dav, ctx)?;
        Ok(CaldavTarget {
            dav,
            collection,
            checked,
            pair: ctx.pair.name.clone(),
            concurrency: settings.concurrency.max(1),
        })
    }

    fn url_of(&self, item: &ItemKey) -> String {
        self.collection
            .join(&crate::hashing::resource_name(&self.pair, item))
    }

    // --------------------------------------------------------------------------------------
    // Requests.

    /// PUT `body` under `precondition`; the etag the resource has afterwards. A server that
    /// altered the body sends no (strong) ETag (RFC 4791 §5.3.4): its etag is read back.
    fn put(
        &self,
        url: &str,
        body: &str,
        precondition: Precondition<'_>,
    ) -> Result<Cond<Option<String>>, WriteError> {
        let req = self
            .dav
            .request("PUT", url)
            .header("Content-Type", "text/calendar; charset=utf-8");
        let req = match precondition {
            Precondition::Absent => req.header("If-None-Match", "*"),
            Precondition::Matches(etag) => req.header("If-Match", etag),
        }
        .body(body.as_bytes().to_vec());
        match self.dav.send(&req) {
            Ok(resp) => match resp.header("etag") {
                Some(etag) if !etag.starts_with("W/") => Ok(Cond::Done(Some(etag.to_string()))),
                _ => Ok(Cond::Done(self.etag_of(url)?)),
            },
            Err(e) => conditional(e, "PUT"),
        }
    }

    fn delete(&self, url: &str, etag: &str) -> Result<Cond<()>, WriteError> {
        let req = self.dav.request("DELETE", url).header("If-Match", etag);
        match self.dav.send(&req) {
            Ok(_) => Ok(Cond::Done(())),
            Err(e) => conditional(e, "DELETE"),
        }
    }

    /// The resource at `url`, or `None` when there is none.
    fn fetch(&self, url: &str) -> Result<Option<Found>, WriteError> {
        // Uncompressed: some front-ends rewrite the ETag of a compressed answer (Apache's
        // mod_deflate appends "-gzip"), and this one is sent back in If-Match.
        let req = self
            .dav
            .request("GET", url)
            .header("Accept", "text/calendar")
            .header("Accept-Encoding", "identity");
        let resp = match self.dav.send(&req) {
            Ok(resp) => resp,
            Err(NetError::Status {
                status: 404 | 410, ..
            }) => return Ok(None),
            Err(e) => return Err(failed(e, "GET")),
        };
        let etag = match resp.header("etag") {
            Some(e) if !e.starts_with("W/") => Some(e.to_string()),
            _ => self.etag_of(url)?,
        };
        let item = crate::ical::parse_published(&resp.body)
            .ok()
            .filter(|items| items.len() == 1)
            .and_then(|mut items| items.pop());
        Ok(Some(Found { etag, item }))
    }

    fn etag_of(&self, url: &str) -> Result<Option<String>, WriteError> {
        let answer = self
            .dav
            .multistatus(
                &self
                    .dav
                    .xml_request("PROPFIND", url, "0", xml::PROPFIND_ETAG),
                "reading an etag",
            )
            .map_err(WriteError::Failed)?;
        Ok(super::response_for(&answer, url).and_then(|r| r.props.etag.clone()))
    }

    // --------------------------------------------------------------------------------------
    // Writes.

    fn write(&self, write: &Write) -> Result<Applied, WriteError> {
        match write {
            // The resource name is derived from the tag and created with If-None-Match, so a
            // create whose outcome is unknown settles itself: nothing to look up first.
            Write::Create {
                item,
                event,
                tag,
                dtstamp,
                outcome_unknown: _,
            } => {
                let url = self.url_of(item);
                let body = render(event, tag, *dtstamp)?;
                match self.put(&url, &body, Precondition::Absent)? {
                    Cond::Done(etag) => Ok(applied(&url, etag)),
                    Cond::Failed => self.settle(&url, &body, tag, event, true),
                    Cond::Missing => Err(no_collection(&url)),
                }
            }
            Write::Update {
                item,
                etag,
                event,
                tag,
                dtstamp,
                ..
            } => {
                let url = self.url_of(item);
                let body = render(event, tag, *dtstamp)?;
                let Some(etag) = etag else {
                    // No version known to condition on: settle it like a create that found
                    // something there.
                    return self.settle(&url, &body, tag, event, true);
                };
                match self.put(&url, &body, Precondition::Matches(etag))? {
                    Cond::Done(etag) => Ok(applied(&url, etag)),
                    // QUIRK: Radicale answers 412, not 404, to If-Match on a resource that
                    // is gone; reading it tells the two apart.
                    Cond::Failed | Cond::Missing => self.settle(&url, &body, tag, event, false),
                }
            }
            Write::Delete {
                target_id, etag, ..
            } => {
                // Where the mapping says the resource is: an orphan found in the target (a
                // tag no source item has any more) is known only by its id.
                let url = self.collection.join(target_id);
                let gone = Applied {
                    target_id: target_id.clone(),
                    etag: None,
                };
                let first = match etag {
                    Some(etag) => self.delete(&url, etag)?,
                    None => Cond::Failed,
                };
                match first {
                    Cond::Done(()) | Cond::Missing => Ok(gone),
                    Cond::Failed => match self.fetch(&url)? {
                        None => Ok(gone),
                        Some(found) if found.is_pairs(&self.pair) && found.is_pristine() => {
                            match self.delete(&url, found.etag.as_deref().unwrap_or("*"))? {
                                Cond::Done(()) | Cond::Missing => Ok(gone),
                                Cond::Failed => Err(conflict(&url)),
                            }
                        }
                        Some(_) => Err(conflict(&url)),
                    },
                }
            }
        }
    }

    /// After a failed precondition: read what is there and decide (see the module doc).
    /// `rewrite_ours`: a resource of ours with other content is rewritten (a create found
    /// its own earlier attempt) rather than left as a conflict (an update found a change).
    fn settle(
        &self,
        url: &str,
        body: &str,
        tag: &str,
        event: &PublicEvent,
        rewrite_ours: bool,
    ) -> Result<Applied, WriteError> {
        match self.fetch(url)? {
            None => match self.put(url, body, Precondition::Absent)? {
                Cond::Done(etag) => Ok(applied(url, etag)),
                // QUIRK: Radicale answers 412, not 413, to a resource larger than its
                // max_resource_size, so "exists" and "refused" look alike; nothing is there.
                Cond::Failed => Err(WriteError::Failed(ProviderError::Failed {
                    what: format!("PUT {}", mask_url(url)),
                    detail: "the server refused the resource (HTTP 412) although none exists there; it may be too large for the server".into(),
                })),
                Cond::Missing => Err(no_collection(url)),
            },
            Some(found) if found.is_ours(tag) && found.holds(event) => Ok(applied(url, found.etag)),
            Some(found) if found.is_ours(tag) && rewrite_ours => {
                let Some(etag) = found.etag.as_deref() else {
                    return Err(conflict(url));
                };
                match self.put(url, body, Precondition::Matches(etag))? {
                    Cond::Done(etag) => Ok(applied(url, etag)),
                    Cond::Failed | Cond::Missing => Err(conflict(url)),
                }
            }
            Some(_) => Err(conflict(url)),
        }
    }
}

impl Target for CaldavTarget {
    fn prepare(&mut self) -> Result<(), ProviderError> {
        // One cheap request, even when nothing is to be written: a calendar deleted or
        // credentials revoked show in this run (and in `health`), not at the next change.
        if self.checked {
            return Ok(());
        }
        let req = self
            .dav
            .xml_request("PROPFIND", &self.collection.url, "0", xml::PROPFIND_CTAG);
        match self.dav.send(&req) {
            Ok(_) => {
                self.checked = true;
                Ok(())
            }
            Err(NetError::Status { status: 404, .. }) => Err(ProviderError::Failed {
                what: format!("CalDAV target {}", mask_url(&self.collection.url)),
                detail: "HTTP 404: the calendar collection does not exist (any more)".into(),
            }),
            Err(e) => Err(ProviderError::from_net(e, "checking the target calendar")),
        }
    }

    fn apply(&mut self, writes: &[Write]) -> Vec<Result<Applied, WriteError>> {
        let this = &*self;
        pool::apply_writes(writes, this.concurrency, |w| this.write(w))
    }

    fn list_owned(&mut self) -> Result<Vec<OwnedEvent>, ProviderError> {
        let answer = self.dav.multistatus(
            &self.dav.xml_request(
                "REPORT",
                &self.collection.url,
                "1",
                xml::CALENDAR_QUERY_EVENTS,
            ),
            "calendar-query",
        )?;
        let mut owned = Vec::new();
        for r in answer.responses {
            let Some(data) = r.props.calendar_data else {
                continue;
            };
            let target_id = xml::href_path(&r.href);
            // A resource calsync cannot read is not one it wrote. One that holds an event
            // twice lists it twice, for validate's duplicate check.
            let Ok(items) = super::super::owned_copies(data.as_bytes(), |item| {
                Some(OwnedEvent {
                    target_id: target_id.clone(),
                    tag: item.tag?,
                    etag: r.props.etag.clone(),
                    markings: item.classes.into_iter().map(Marking::Class).collect(),
                    foreign: item.foreign,
                    dtstamp: item.dtstamp,
                    event: item.event,
                })
            }) else {
                continue;
            };
            owned.extend(items);
        }
        Ok(owned)
    }
}

fn render(
    event: &PublicEvent,
    tag: &str,
    dtstamp: chrono::DateTime<chrono::Utc>,
) -> Result<String, WriteError> {
    crate::ical::render_resource(&Published {
        event: event.clone(),
        dtstamp,
        tag: tag.to_string(),
    })
    .map_err(|e| {
        WriteError::Failed(ProviderError::Failed {
            what: format!("rendering {}", event.uid),
            detail: e.to_string(),
        })
    })
}

/// A conflict, named by its resource so the operator can find it in the target.
fn conflict(url: &str) -> WriteError {
    log::warn!(event = "caldav.conflict", resource = xml::href_path(url).as_str();
               "the resource changed in the target since calsync wrote it: left as it is");
    WriteError::Conflict
}

fn applied(url: &str, etag: Option<String>) -> Applied {
    Applied {
        target_id: xml::href_path(url),
        etag,
    }
}

/// A PUT answered 404: the collection itself is not there.
fn no_collection(url: &str) -> WriteError {
    WriteError::Failed(ProviderError::Failed {
        what: format!("PUT {}", mask_url(url)),
        detail: "HTTP 404: the calendar collection does not exist (any more)".into(),
    })
}

fn failed(e: NetError, what: &str) -> WriteError {
    WriteError::Failed(ProviderError::from_net(e, what))
}

/// 412 and 404 are answers a conditional write expects; anything else failed.
fn conditional<T>(e: NetError, what: &str) -> Result<Cond<T>, WriteError> {
    match e.status() {
        Some(412) => Ok(Cond::Failed),
        Some(404) => Ok(Cond::Missing),
        _ => Err(failed(e, what)),
    }
}
