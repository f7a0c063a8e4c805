//! `calendarView/delta`: rounds of pages, the state tokens that link them, and their expiry.
//!
//! A round is computed when it starts (an initial call, or a call with a delta link): the list
//! of items it will report. Its pages are slices of that list, rendered when asked for, so an
//! event changed mid-round shows its newest state (and is reported again in the next round).
//! The delta link carries a snapshot of the view (id → version) and the write sequence number at
//! the round's start; the next round reports what differs from that snapshot, plus writes to
//! events outside the window since then, as `@removed` (event-delta page).

use std::collections::{HashMap, HashSet};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    CalRef, Call, EventType, Expiry, Mailbox, Reply, State, Target, occurrence_id,
    render_occurrence, render_stored, time, window,
};

/// What a delta link remembers.
#[derive(Clone, Debug)]
pub struct Cursor {
    mailbox: String,
    calendar: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// The path of the round's first call: every link of the round points there.
    path: String,
    /// Item id → version (change key) as the client has seen the view.
    seen: HashMap<String, String>,
    /// The write sequence number the snapshot was taken at.
    seq: u64,
}

/// One item a round reports.
#[derive(Clone, Debug)]
enum Item {
    Event(String),
    Occurrence {
        master: String,
        start: DateTime<Utc>,
    },
    Removed(String),
}

struct Round {
    /// The cursor the round's delta link will carry.
    next: Cursor,
    items: Vec<Item>,
}

#[derive(Clone, Debug)]
enum Link {
    Page {
        round: usize,
        offset: usize,
        empties: usize,
    },
    Delta(Cursor),
}

/// Every round and link issued, and the links expired by the knob.
#[derive(Default)]
pub struct Store {
    rounds: Vec<Round>,
    links: HashMap<String, Link>,
    /// Token → how it fails and the fresh initial path+query for `Location`.
    expired: HashMap<String, (Expiry, String)>,
    minted: u64,
}

impl Store {
    /// Makes every link issued so far fail as `how` says.
    pub fn expire_all(&mut self, how: Expiry) {
        for (token, link) in self.links.drain() {
            let cursor = match &link {
                Link::Page { round, .. } => &self.rounds[*round].next,
                Link::Delta(cursor) => cursor,
            };
            let fresh = format!(
                "{}?startDateTime={}&endDateTime={}",
                cursor.path,
                cursor.from.format("%Y-%m-%dT%H:%M:%SZ"),
                cursor.to.format("%Y-%m-%dT%H:%M:%SZ")
            );
            self.expired.insert(token, (how, fresh));
        }
    }

    fn mint(&mut self, link: Link, seed: u64) -> String {
        self.minted += 1;
        let digest = Sha256::digest(format!("delta/{seed}/{}", self.minted));
        let token = URL_SAFE_NO_PAD.encode(digest);
        self.links.insert(token.clone(), link);
        token
    }
}

/// One entry of the current view: what it is, its id and version, and where it starts.
struct Entry {
    item: Item,
    id: String,
    version: String,
    start: DateTime<Utc>,
}

/// Everything of a calendar the window `[from, to)` shows now, in start order.
fn view(
    mailbox: &Mailbox,
    calendar: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    masters: bool,
) -> Vec<Entry> {
    let mut entries = Vec::new();
    for event in mailbox.events.values().filter(|e| e.calendar == calendar) {
        let entry = |item, start| Entry {
            item,
            id: event.id.clone(),
            version: event.change_key.clone(),
            start,
        };
        if event.event_type != EventType::Master {
            if time::overlaps(event.start(), event.end(), from, to) {
                entries.push(entry(Item::Event(event.id.clone()), event.start()));
            }
            continue;
        }
        let mut shown = false;
        for start in event
            .series()
            .map(|s| s.starts_between(from, to))
            .unwrap_or_default()
        {
            let id = occurrence_id(&event.id, start);
            if mailbox.events.contains_key(&id) || event.removed_occurrences.contains(&start) {
                continue;
            }
            shown = true;
            entries.push(Entry {
                item: Item::Occurrence {
                    master: event.id.clone(),
                    start,
                },
                id,
                version: event.change_key.clone(),
                start,
            });
        }
        // Only with the knob on: a scan of the mailbox per master is too slow for big calendars.
        let exception_shown = || {
            mailbox.events.values().any(|e| {
                e.master.as_deref() == Some(event.id.as_str())
                    && time::overlaps(e.start(), e.end(), from, to)
            })
        };
        if masters && (shown || exception_shown()) {
            entries.push(entry(Item::Event(event.id.clone()), event.start()));
        }
    }
    entries.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
    entries
}

fn removed(id: &str) -> Value {
    json!({"@odata.type": "#microsoft.graph.event", "id": id, "@removed": {"reason": "deleted"}})
}

/// The members a delta occurrence carries (graph-docs-contrib #34, #5602).
const SPARSE: &[&str] = &[
    "@odata.type",
    "@odata.etag",
    "id",
    "type",
    "seriesMasterId",
    "start",
    "end",
];

/// An item as a page shows it now: full, sparse (occurrences) or `@removed` when gone.
fn render(mailbox: &Mailbox, item: &Item, zone: &time::Zone) -> Value {
    match item {
        Item::Removed(id) => removed(id),
        Item::Event(id) => match mailbox.events.get(id) {
            Some(event) => Value::Object(render_stored(mailbox, event, zone)),
            None => removed(id),
        },
        Item::Occurrence { master, start } => {
            let id = occurrence_id(master, *start);
            if let Some(exception) = mailbox.events.get(&id) {
                return Value::Object(render_stored(mailbox, exception, zone));
            }
            match mailbox.find(&id) {
                Some(Target::Occurrence { .. }) => {
                    let mut fields =
                        render_occurrence(mailbox, &mailbox.events[master], *start, zone);
                    fields.retain(|name, _| SPARSE.contains(&name.as_str()));
                    Value::Object(fields)
                }
                _ => removed(&id),
            }
        }
    }
}

/// A token the fake cannot use: not issued, issued for another calendar, or misused.
fn invalid_token(message: &str) -> Reply {
    Reply::error(400, "ErrorInvalidUrlQuery", message)
}

fn expiry_reply(how: Expiry, fresh_url: &str) -> Reply {
    match how {
        Expiry::SyncStateNotFound => Reply::error(
            410,
            "syncStateNotFound",
            "The sync state was not found or has expired. Start a new round.",
        ),
        Expiry::ResyncRequired => Reply::error(
            410,
            "resyncRequired",
            "The sync state is no longer valid. A full resync is required.",
        ),
        Expiry::GoneWithLocation => Reply::error(
            410,
            "syncStateInvalid",
            "The sync state is no longer valid; start again at the Location given.",
        )
        .header("Location", fresh_url),
        Expiry::BadRequest => Reply::error(
            400,
            "syncStateNotFound",
            "The sync state was not found or has expired.",
        ),
    }
}

impl State {
    /// `GET …/calendarView/delta`: an initial call, or a skip or delta link followed.
    pub(super) fn delta(
        &mut self,
        user: &str,
        calendar: &CalRef,
        call: &Call,
    ) -> Result<Reply, Reply> {
        let m = self.mailbox(user)?;
        let calendar = self.calendar_id(m, calendar)?;
        call.query
            .allow_only(&["startdatetime", "enddatetime", "skiptoken", "deltatoken"])?;
        let mailbox = self.mailboxes[m].id.clone();
        let token = match (call.query.get("skiptoken"), call.query.get("deltatoken")) {
            (Some(_), Some(_)) => return Err(invalid_token("Send one state token, not two.")),
            (Some(token), None) | (None, Some(token)) => token.to_string(),
            (None, None) => {
                let (from, to) = window(&call.query)?;
                let cursor = Cursor {
                    mailbox,
                    calendar,
                    from,
                    to,
                    path: call.path.clone(),
                    seen: HashMap::new(),
                    seq: self.seq,
                };
                let round = self.start_round(m, &cursor, false);
                return Ok(self.serve_page(m, round, 0, self.knobs.empty_delta_pages, call));
            }
        };
        if call.query.has("startdatetime") || call.query.has("enddatetime") {
            return Err(invalid_token(
                "A state token already holds the window: follow the link as given, without startDateTime/endDateTime.",
            ));
        }
        if let Some((how, fresh)) = self.delta.expired.get(&token) {
            return Err(expiry_reply(*how, &format!("{}{fresh}", call.base)));
        }
        let link = self
            .delta
            .links
            .get(&token)
            .cloned()
            .ok_or_else(|| invalid_token("The state token is not valid."))?;
        let cursor = match &link {
            Link::Page { round, .. } => &self.delta.rounds[*round].next,
            Link::Delta(cursor) => cursor,
        };
        if cursor.mailbox != mailbox || cursor.calendar != calendar {
            return Err(invalid_token(
                "The state token belongs to another calendar view.",
            ));
        }
        Ok(match link {
            Link::Page {
                round,
                offset,
                empties,
            } => self.serve_page(m, round, offset, empties, call),
            Link::Delta(cursor) => {
                let round = self.start_round(m, &cursor, true);
                self.serve_page(m, round, 0, self.knobs.empty_delta_pages, call)
            }
        })
    }

    /// Computes a round's items against `previous` (the client's snapshot), and the cursor its
    /// delta link will carry. `incremental` is false for an initial round.
    fn start_round(&mut self, m: usize, previous: &Cursor, incremental: bool) -> usize {
        let mailbox = &self.mailboxes[m];
        let entries = view(
            mailbox,
            &previous.calendar,
            previous.from,
            previous.to,
            self.knobs.masters_in_delta,
        );
        let in_view: HashSet<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        let mut items: Vec<Item> = entries
            .iter()
            .filter(|e| !incremental || previous.seen.get(&e.id) != Some(&e.version))
            .map(|e| e.item.clone())
            .collect();
        if incremental {
            let mut gone: Vec<&String> = previous
                .seen
                .keys()
                .filter(|id| !in_view.contains(id.as_str()))
                .collect();
            gone.sort();
            // Writes outside the window since the snapshot are reported as removals too.
            for (_, id) in mailbox.log.iter().filter(|(seq, _)| *seq > previous.seq) {
                if !in_view.contains(id.as_str())
                    && !previous.seen.contains_key(id)
                    && !gone.contains(&id)
                {
                    gone.push(id);
                }
            }
            items.extend(gone.into_iter().map(|id| Item::Removed(id.clone())));
        }
        let next = Cursor {
            seen: entries
                .iter()
                .map(|e| (e.id.clone(), e.version.clone()))
                .collect(),
            seq: self.seq,
            ..previous.clone()
        };
        self.delta.rounds.push(Round { next, items });
        self.delta.rounds.len() - 1
    }

    /// One page of a round: `empties` empty pages first, then slices of the item list; the
    /// last page carries the delta link.
    fn serve_page(
        &mut self,
        m: usize,
        round: usize,
        offset: usize,
        empties: usize,
        call: &Call,
    ) -> Reply {
        let prefer = call.prefer();
        let size = prefer.max_page_size.unwrap_or(self.knobs.page_size);
        let zone = call.zone();
        let items = &self.delta.rounds[round].items;
        let (value, next): (Vec<Value>, Option<Link>) = if empties > 0 {
            let next = Link::Page {
                round,
                offset,
                empties: empties - 1,
            };
            (Vec::new(), Some(next))
        } else {
            let start = offset.min(items.len());
            let end = (start + size).min(items.len());
            let value = items[start..end]
                .iter()
                .map(|item| render(&self.mailboxes[m], item, &zone))
                .collect();
            let next = (end < items.len()).then(|| {
                let replay = self.knobs.delta_replays && end - start >= 2;
                Link::Page {
                    round,
                    offset: if replay { end - 1 } else { end },
                    empties: 0,
                }
            });
            (value, next)
        };
        let seed = self.knobs.seed;
        let path = self.delta.rounds[round].next.path.clone();
        let mut body = json!({
            "@odata.context": format!("{}/v1.0/$metadata#Collection(event)", call.base),
            "value": value,
        });
        match next {
            Some(link) => {
                let token = self.delta.mint(link, seed);
                body["@odata.nextLink"] = json!(format!("{}{path}?$skiptoken={token}", call.base));
            }
            None => {
                let cursor = self.delta.rounds[round].next.clone();
                let token = self.delta.mint(Link::Delta(cursor), seed);
                body["@odata.deltaLink"] =
                    json!(format!("{}{path}?$deltatoken={token}", call.base));
            }
        }
        let mut reply = call.zoned(Reply::json(200, body));
        if let Some(size) = prefer.max_page_size {
            reply = reply.header("Preference-Applied", format!("odata.maxpagesize={size}"));
        }
        reply
    }
}
