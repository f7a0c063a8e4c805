//! CalDAV as a source. One resource is one item: its href (path) is the source key, its
//! text (master and `RECURRENCE-ID` overrides of one UID) is read with `ical::parse_feed`.
//!
//! How a collection is read, cheapest first:
//! - with a sync token: one sync-collection REPORT (RFC 6578) asking for etags and data, so
//!   the changed bodies come in the same answer and a run with nothing changed costs one
//!   request and no body; a removed member (404) is a removed key;
//! - in full (no cursor, `--full`, an expired token): sync-collection from the empty token
//!   for the list of members (etags only), then `calendar-multiget` of them a page at a time;
//! - where the server lacks sync-collection: `getctag` (PROPFIND Depth 0; unchanged →
//!   nothing else), else the Depth 1 etag listing, compared with the last one, and a
//!   multiget of just the changed members; a member no longer listed is removed.
//!
//! Fail closed: an answer cut short or not understood fails the read (nothing is deleted); a
//! truncated sync-collection listing (507 for the collection itself) is continued from the
//! token it returns, never read as complete. A resource that cannot be read faithfully is
//! reported skipped with its key, and also counted removed, so what it published before is
//! withdrawn rather than left standing with content that may have turned private.

use super::xml::{self, DavResponse, Multistatus};
use super::{Collection, Dav, parse_answer};
use crate::config::CaldavSettings;
use crate::mask::mask_url;
use crate::model::SourceKey;
use crate::net::NetError;
use crate::plan::ReadKind;
use crate::providers::{Context, PageSink, ProviderError, ReadEnd, Source, SourcePage};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// Resources fetched per `calendar-multiget`, and items handed to the engine per page: what
/// a read holds in memory at once, beyond the list of members.
const PAGE: usize = 200;

/// What the source remembers between runs: the collection it read (a cursor of another
/// collection is not used) and how to ask it for changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
enum Cursor {
    /// The sync-collection token of the last read.
    Sync { collection: String, token: String },
    /// The ctag and the members' etags (key → etag) of the last listing.
    Etags {
        collection: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ctag: Option<String>,
        etags: BTreeMap<String, String>,
    },
}

impl Cursor {
    fn collection(&self) -> &str {
        match self {
            Cursor::Sync { collection, .. } | Cursor::Etags { collection, .. } => collection,
        }
    }

    fn encode(&self) -> String {
        serde_json::to_string(self).expect("cursors serialise")
    }
}

/// What a sync-collection REPORT came to.
enum SyncAnswer {
    Page(Multistatus),
    /// 403/409 naming `DAV:valid-sync-token`: the token is unknown or expired.
    TokenInvalid,
    /// 403/405/501 without it: the server does not do sync-collection here.
    Unsupported,
}

/// A member of the collection, as listed.
struct Member {
    key: String,
    href: String,
    etag: Option<String>,
}

/// A calendar collection read as a source.
pub struct CaldavSource {
    dav: Dav,
    collection: Collection,
}

impl CaldavSource {
    /// Resolves the collection (cached for an hour in the state file).
    ///
    /// # Errors
    /// Discovery's errors, by cause.
    pub fn new(settings: &CaldavSettings, ctx: &Context<'_>) -> Result<Self, ProviderError> {
        let dav = Dav::new(settings, ctx.http.clone());
        let (collection, _) = super::resolve(settings, &dav, ctx)?;
        Ok(CaldavSource { dav, collection })
    }

    fn what(&self) -> String {
        format!("CalDAV source {}", mask_url(&self.collection.url))
    }

    fn failed(&self, detail: impl Into<String>) -> ProviderError {
        ProviderError::Failed {
            what: self.what(),
            detail: detail.into(),
        }
    }

    // --------------------------------------------------------------------------------------
    // Requests.

    fn sync_report(&mut self, token: &str, with_data: bool) -> Result<SyncAnswer, ProviderError> {
        let req = self.dav.xml_request(
            "REPORT",
            &self.collection.url,
            "0",
            xml::sync_collection(token, with_data),
        );
        match self.dav.send(&req) {
            Ok(resp) => Ok(SyncAnswer::Page(parse_answer(
                &resp,
                &req.url,
                "sync-collection",
            )?)),
            Err(NetError::Status {
                status: status @ (403 | 409),
                response,
                ..
            }) if xml::names_invalid_sync_token(&response.body) => {
                log::debug!(event = "caldav.sync_token_invalid", status = status; "sync token refused");
                Ok(SyncAnswer::TokenInvalid)
            }
            Err(NetError::Status {
                status: status @ (403 | 405 | 501),
                ..
            }) => {
                log::warn!(event = "caldav.sync_unsupported", status = status;
                           "sync-collection refused: reading the calendar by ctag and etags");
                // Not asked again in this run.
                self.collection.sync = false;
                Ok(SyncAnswer::Unsupported)
            }
            Err(e) => Err(ProviderError::from_net(e, "sync-collection")),
        }
    }

    /// The members' etags (PROPFIND Depth 1) and the collection's ctag.
    fn list_etags(&self) -> Result<(Option<String>, Vec<Member>), ProviderError> {
        let answer = self.dav.multistatus(
            &self
                .dav
                .xml_request("PROPFIND", &self.collection.url, "1", xml::PROPFIND_ETAGS),
            "listing the collection",
        )?;
        let mut ctag = None;
        let mut members = Vec::new();
        for r in answer.responses {
            if self.collection.is_self(&r.href) {
                ctag = r.props.ctag;
            } else if !r.props.collection && r.status.is_none_or(|s| (200..300).contains(&s)) {
                members.push(Member {
                    key: xml::href_path(&r.href),
                    href: r.href,
                    etag: r.props.etag,
                });
            }
        }
        Ok((ctag, members))
    }

    fn ctag(&self) -> Result<Option<String>, ProviderError> {
        let answer = self.dav.multistatus(
            &self
                .dav
                .xml_request("PROPFIND", &self.collection.url, "0", xml::PROPFIND_CTAG),
            "reading the collection's ctag",
        )?;
        Ok(super::response_for(&answer, &self.collection.url).and_then(|r| r.props.ctag.clone()))
    }

    /// Fetches members with `calendar-multiget`, a page at a time, handing each page to the
    /// sink. A member the server does not answer for fails the read (it must not pass for
    /// removed); one it answers 404 for was removed meanwhile.
    fn fetch(&self, members: &[Member], sink: &mut PageSink<'_>) -> Result<(), ProviderError> {
        for chunk in members.chunks(PAGE) {
            let body = xml::calendar_multiget(chunk.iter().map(|m| m.href.as_str()));
            let answer = self.dav.multistatus(
                &self
                    .dav
                    .xml_request("REPORT", &self.collection.url, "1", body),
                "calendar-multiget",
            )?;
            let wanted: HashSet<&str> = chunk.iter().map(|m| m.key.as_str()).collect();
            let mut answered = HashSet::new();
            let mut page = SourcePage::default();
            for r in answer.responses {
                let key = xml::href_path(&r.href);
                if !wanted.contains(key.as_str()) || !answered.insert(key.clone()) {
                    continue;
                }
                self.take(key, r, &mut page)?;
            }
            if answered.len() < wanted.len() {
                return Err(self.failed(format!(
                    "calendar-multiget answered for {} of the {} resources asked for",
                    answered.len(),
                    wanted.len()
                )));
            }
            sink(page)?;
        }
        Ok(())
    }

    /// Reads one member's response into the page: an event, a removal, or a skip.
    fn take(
        &self,
        key: String,
        r: DavResponse,
        page: &mut SourcePage,
    ) -> Result<(), ProviderError> {
        match (r.status, r.props.calendar_data) {
            (Some(404), _) => page.removed.push(SourceKey(key)),
            (Some(s), _) if !(200..300).contains(&s) => {
                return Err(self.failed(format!("HTTP {s} for the member {key}")));
            }
            (_, Some(data)) => read_resource(key, &data, page),
            (_, None) => {
                page.skipped.push((
                    Some(SourceKey(key.clone())),
                    "the server sent no calendar data".into(),
                ));
                page.removed.push(SourceKey(key));
            }
        }
        Ok(())
    }

    /// A 507 for the collection itself: the server listed only part (RFC 6578 §3.6).
    fn truncated(&self, page: &Multistatus) -> bool {
        page.responses
            .iter()
            .any(|r| r.status == Some(507) && self.collection.is_self(&r.href))
    }

    // --------------------------------------------------------------------------------------
    // Reads.

    /// Changes since `token`, bodies included. `None`: the token cannot be used (expired, or
    /// the server stopped doing sync-collection) and the caller reads in full.
    fn sync_delta(
        &mut self,
        token: &str,
        sink: &mut PageSink<'_>,
    ) -> Result<Option<ReadEnd>, ProviderError> {
        let mut token = token.to_string();
        let mut changed = false;
        loop {
            let page = match self.sync_report(&token, true)? {
                SyncAnswer::Page(page) => page,
                SyncAnswer::TokenInvalid => {
                    log::warn!(event = "caldav.sync_token_invalid", url = mask_url(&self.collection.url).as_str();
                               "the server no longer knows the sync token: reading the calendar in full");
                    return Ok(None);
                }
                SyncAnswer::Unsupported => return Ok(None),
            };
            let truncated = self.truncated(&page);
            let next = self.next_token(&page, &token, truncated)?;
            let mut out = SourcePage::default();
            let mut without_data = Vec::new();
            for r in page.responses {
                // QUIRK: iCloud lists the collection itself among the changes; a 507 for it
                // marks truncation (handled above). Neither is a member.
                if self.collection.is_self(&r.href) {
                    continue;
                }
                changed = true;
                let key = xml::href_path(&r.href);
                if r.status.is_none() && r.props.calendar_data.is_none() {
                    // A server that ignored calendar-data in sync-collection: fetch it.
                    without_data.push(Member {
                        key,
                        href: r.href,
                        etag: r.props.etag,
                    });
                } else {
                    self.take(key, r, &mut out)?;
                }
            }
            crate::providers::hand_in_pieces(out, PAGE, sink)?;
            self.fetch(&without_data, sink)?;
            if !truncated {
                let cursor = Cursor::Sync {
                    collection: self.collection.url.clone(),
                    token: next,
                };
                return Ok(Some(ReadEnd {
                    kind: if changed {
                        ReadKind::Delta
                    } else {
                        ReadKind::Unchanged
                    },
                    cursor: Some(cursor.encode()),
                }));
            }
            token = next;
        }
    }

    /// The token a sync-collection answer returns. A truncated answer must move the token on,
    /// or continuing would ask for the same part again forever.
    fn next_token(
        &self,
        page: &Multistatus,
        sent: &str,
        truncated: bool,
    ) -> Result<String, ProviderError> {
        match page.sync_token.as_deref() {
            None | Some("") => Err(self.failed("the sync-collection answer carries no sync-token")),
            Some(t) if truncated && t == sent => {
                Err(self
                    .failed("a truncated sync-collection answer did not move the sync token on"))
            }
            Some(t) => Ok(t.to_string()),
        }
    }

    /// Everything: the member list by sync-collection (or, where the server lacks it, by
    /// PROPFIND), then the bodies by multiget.
    fn read_full(&mut self, sink: &mut PageSink<'_>) -> Result<ReadEnd, ProviderError> {
        if self.collection.sync
            && let Some(end) = self.full_by_sync(sink)?
        {
            return Ok(end);
        }
        let (ctag, members) = self.list_etags()?;
        self.fetch(&members, sink)?;
        Ok(ReadEnd {
            kind: ReadKind::Full,
            cursor: Some(
                Cursor::Etags {
                    collection: self.collection.url.clone(),
                    ctag,
                    etags: etag_map(&members),
                }
                .encode(),
            ),
        })
    }

    fn full_by_sync(&mut self, sink: &mut PageSink<'_>) -> Result<Option<ReadEnd>, ProviderError> {
        let mut token = String::new();
        let mut members: BTreeMap<String, String> = BTreeMap::new();
        let mut restarted = false;
        loop {
            let page = match self.sync_report(&token, false)? {
                SyncAnswer::Page(page) => page,
                SyncAnswer::TokenInvalid if token.is_empty() || restarted => {
                    return Err(self.failed("the server refused the sync token of its own listing"));
                }
                SyncAnswer::TokenInvalid => {
                    // The token of our own truncated listing expired at once: start again,
                    // once.
                    restarted = true;
                    token.clear();
                    members.clear();
                    continue;
                }
                SyncAnswer::Unsupported => return Ok(None),
            };
            let truncated = self.truncated(&page);
            let next = self.next_token(&page, &token, truncated)?;
            for r in page.responses {
                if self.collection.is_self(&r.href) {
                    continue;
                }
                let key = xml::href_path(&r.href);
                if r.status == Some(404) {
                    members.remove(&key);
                } else {
                    members.insert(key, r.href);
                }
            }
            token = next;
            if !truncated {
                break;
            }
        }
        let members: Vec<Member> = members
            .into_iter()
            .map(|(key, href)| Member {
                key,
                href,
                etag: None,
            })
            .collect();
        self.fetch(&members, sink)?;
        Ok(Some(ReadEnd {
            kind: ReadKind::Full,
            cursor: Some(
                Cursor::Sync {
                    collection: self.collection.url.clone(),
                    token,
                }
                .encode(),
            ),
        }))
    }

    /// Changes by ctag and etags, for servers without sync-collection.
    fn etag_delta(
        &self,
        ctag: Option<String>,
        etags: BTreeMap<String, String>,
        encoded: &str,
        sink: &mut PageSink<'_>,
    ) -> Result<ReadEnd, ProviderError> {
        if let Some(before) = &ctag
            && self.ctag()?.as_ref() == Some(before)
        {
            return Ok(ReadEnd {
                kind: ReadKind::Unchanged,
                cursor: Some(encoded.to_string()),
            });
        }
        let (ctag, members) = self.list_etags()?;
        let listed: HashSet<&str> = members.iter().map(|m| m.key.as_str()).collect();
        let removed: Vec<SourceKey> = etags
            .keys()
            .filter(|k| !listed.contains(k.as_str()))
            .map(|k| SourceKey(k.clone()))
            .collect();
        let changed: Vec<&Member> = members
            .iter()
            .filter(|m| m.etag.is_none() || etags.get(&m.key) != m.etag.as_ref())
            .collect();
        let kind = if changed.is_empty() && removed.is_empty() {
            ReadKind::Unchanged
        } else {
            ReadKind::Delta
        };
        if !removed.is_empty() {
            sink(SourcePage {
                removed,
                ..SourcePage::default()
            })?;
        }
        let changed: Vec<Member> = changed
            .into_iter()
            .map(|m| Member {
                key: m.key.clone(),
                href: m.href.clone(),
                etag: m.etag.clone(),
            })
            .collect();
        self.fetch(&changed, sink)?;
        Ok(ReadEnd {
            kind,
            cursor: Some(
                Cursor::Etags {
                    collection: self.collection.url.clone(),
                    ctag,
                    etags: etag_map(&members),
                }
                .encode(),
            ),
        })
    }
}

impl Source for CaldavSource {
    fn read(
        &mut self,
        cursor: Option<&str>,
        sink: &mut PageSink<'_>,
    ) -> Result<ReadEnd, ProviderError> {
        let previous = cursor
            .and_then(|c| serde_json::from_str::<Cursor>(c).ok())
            .filter(|c| c.collection() == self.collection.url);
        match previous {
            Some(Cursor::Sync { token, .. }) => match self.sync_delta(&token, sink)? {
                Some(end) => Ok(end),
                None => self.read_full(sink),
            },
            Some(Cursor::Etags { ctag, etags, .. }) => {
                self.etag_delta(ctag, etags, cursor.unwrap_or_default(), sink)
            }
            None => self.read_full(sink),
        }
    }
}

fn etag_map(members: &[Member]) -> BTreeMap<String, String> {
    members
        .iter()
        .filter_map(|m| Some((m.key.clone(), m.etag.clone()?)))
        .collect()
}

/// One resource's text into the page: one item keyed by its href, or — when it cannot be
/// read faithfully — a skip and a removal of the key (fail closed).
fn read_resource(key: String, data: &str, page: &mut SourcePage) {
    let skip = |page: &mut SourcePage, reason: String| {
        page.skipped.push((Some(SourceKey(key.clone())), reason));
        page.removed.push(SourceKey(key.clone()));
    };
    let feed = match crate::ical::parse_feed(data.as_bytes()) {
        Ok(feed) => feed,
        Err(e) => return skip(page, e.to_string()),
    };
    if let Some(s) = feed.skipped.first() {
        return skip(page, s.reason.to_string());
    }
    let mut events = feed.events;
    match events.len() {
        // A task or journal in a mixed collection: nothing to publish.
        0 => page.removed.push(SourceKey(key)),
        1 => {
            let mut event = events.remove(0);
            event.key = SourceKey(key);
            page.events.push(event);
        }
        _ => skip(
            page,
            "the resource holds more than one item (several UIDs, or overrides without their master)".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(body: &str) -> String {
        format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n{body}END:VCALENDAR\r\n")
    }

    #[test]
    fn one_resource_is_one_item_keyed_by_its_href() {
        let mut page = SourcePage::default();
        let text = resource(
            "BEGIN:VEVENT\r\nUID:s@x\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nRRULE:FREQ=DAILY;COUNT=3\r\nSUMMARY:S\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nUID:s@x\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260106T100000Z\r\nDTSTART:20260106T110000Z\r\nSUMMARY:moved\r\nEND:VEVENT\r\n",
        );
        read_resource("/c/s.ics".into(), &text, &mut page);
        assert_eq!(page.events.len(), 1);
        assert_eq!(page.events[0].key.0, "/c/s.ics");
        assert_eq!(page.events[0].overrides.len(), 1);
        assert!(page.removed.is_empty() && page.skipped.is_empty());
    }

    #[test]
    fn unreadable_resources_are_skipped_and_withdrawn() {
        for (what, text) in [
            (
                "two UIDs",
                resource(
                    "BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20260105T100000Z\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:b\r\nDTSTART:20260105T100000Z\r\nEND:VEVENT\r\n",
                ),
            ),
            (
                "no DTSTART",
                resource("BEGIN:VEVENT\r\nUID:a\r\nSUMMARY:x\r\nEND:VEVENT\r\n"),
            ),
            (
                "cut short",
                "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\n".to_string(),
            ),
        ] {
            let mut page = SourcePage::default();
            read_resource("/c/x.ics".into(), &text, &mut page);
            assert!(page.events.is_empty(), "{what}");
            assert_eq!(page.skipped.len(), 1, "{what}");
            assert_eq!(page.skipped[0].0.as_ref().unwrap().0, "/c/x.ics", "{what}");
            assert_eq!(page.removed, [SourceKey("/c/x.ics".into())], "{what}");
        }
        // A task is no event: withdrawn if it ever was one, not a skip.
        let mut page = SourcePage::default();
        read_resource(
            "/c/t.ics".into(),
            &resource("BEGIN:VTODO\r\nUID:t\r\nSUMMARY:x\r\nEND:VTODO\r\n"),
            &mut page,
        );
        assert!(page.events.is_empty() && page.skipped.is_empty());
        assert_eq!(page.removed.len(), 1);
    }

    #[test]
    fn cursors_round_trip_and_name_their_collection() {
        let c = Cursor::Etags {
            collection: "https://h/c/".into(),
            ctag: None,
            etags: BTreeMap::from([("/c/a.ics".into(), "\"1\"".into())]),
        };
        let text = c.encode();
        assert!(text.contains("\"mode\":\"etags\""), "{text}");
        assert_eq!(serde_json::from_str::<Cursor>(&text).unwrap(), c);
        let s = Cursor::Sync {
            collection: "https://h/c/".into(),
            token: "t".into(),
        };
        assert_eq!(serde_json::from_str::<Cursor>(&s.encode()).unwrap(), s);
        assert_eq!(s.collection(), "https://h/c/");
    }

    #[test]
    fn pages_are_handed_in_bounded_pieces() {
        let mut sizes = Vec::new();
        let event = {
            let mut page = SourcePage::default();
            read_resource(
                "/c/a.ics".into(),
                &resource("BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20260105T100000Z\r\nEND:VEVENT\r\n"),
                &mut page,
            );
            page.events.remove(0)
        };
        let page = SourcePage {
            events: vec![event; 2 * PAGE + 1],
            removed: vec![SourceKey("/c/r.ics".into())],
            skipped: vec![],
            unchanged: vec![],
        };
        crate::providers::hand_in_pieces(page, PAGE, &mut |p: SourcePage| {
            sizes.push((p.events.len(), p.removed.len()));
            Ok(())
        })
        .unwrap();
        assert_eq!(sizes, [(PAGE, 1), (PAGE, 0), (1, 0)]);
    }
}
