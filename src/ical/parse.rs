//! Feed text → [`SourceEvent`]s: VEVENTs grouped by UID into a master and its overrides.
//!
//! Fail closed: an item that cannot be read exactly is left out whole and reported in
//! [`Feed::skipped`] (a series whose override cannot be read is left out with it, since that
//! override may be what made an instance private). Values are read by their grammar
//! (`values`), zones as DESIGN decides (`zones`), and the privacy marking is taken from the
//! raw text, as written, for `policy` to judge.
//!
//! What DESIGN decides beyond RFC 5545, here:
//! - One event held twice (two VEVENTs with one UID and no RECURRENCE-ID, or one
//!   RECURRENCE-ID twice: an iTIP stream, a feed that appends versions) is one item: the copy
//!   with the highest SEQUENCE (then the latest DTSTAMP, then the last in the feed) wins, and
//!   it carries the markings of every copy, so that `policy` publishes it only when every
//!   copy is public. A copy that cannot be read withholds the item.
//! - Floating times in a feed that names `X-WR-TIMEZONE` are read in that zone.
//! - An override with `RANGE=THISANDFUTURE` splits its series there: the instances before it
//!   stay with the master, it and every later one form a series of their own (shifted as the
//!   override moved its instance, with its fields).

use super::feed_bytes::FeedBytes;
use super::lines::{self, Block, RawProperty};
use super::values::{self, Time};
use super::zones::{Zone, Zones};
use super::{Feed, GroupSeen, IcalError, SkipReason, Skipped};
use crate::hashing::sha256_hex;
use crate::model::{
    Details, Marking, Moment, Override, Period, PublicDetails, PublicEvent, PublicOverride,
    Recurrence, SourceEvent, SourceKey,
};
use crate::recurrence::{in_series_form, validate};
use chrono::{NaiveDateTime, TimeDelta};
use std::collections::{HashMap, HashSet};

/// Reads a whole feed, or one CalDAV resource (a VCALENDAR with one UID's master and
/// overrides). Only VEVENTs are read; VTODO, VJOURNAL and VFREEBUSY are ignored.
///
/// Keys: the UID; an override whose master is not in the feed stands alone as
/// `UID#<recurrence id>` (the [`Moment`] text form); the part of a series from a
/// `RANGE=THISANDFUTURE` override on is `UID#<recurrence id>/future`; a VEVENT without UID
/// gets `nouid:` and the SHA-256 of its unfolded text, stable while it is unchanged.
///
/// # Errors
/// [`IcalError`] when the bytes are not a calendar, are cut short, or nest components wrongly.
/// Problems of single events are not errors: they land in [`Feed::skipped`].
pub fn parse_feed(bytes: &[u8]) -> Result<Feed, IcalError> {
    let mut all = Feed::default();
    read_feed(&bytes, usize::MAX, &|_, _| None, |page| {
        all.events.extend(page.events);
        all.skipped.extend(page.skipped);
        Ok::<(), std::convert::Infallible>(())
    })
    .map_err(|e| match e {
        FeedError::Ical(e) => e,
        FeedError::Read(e) => unreachable!("bytes in memory cannot fail to read: {e}"),
        FeedError::Sink(never) => match never {},
    })?;
    Ok(all)
}

/// One VEVENT of a group: where it lies in the feed, and its place among the feed's VEVENTs.
struct Member {
    range: std::ops::Range<usize>,
    index: usize,
}

/// Why [`read_feed`] stopped: the feed, or what the sink returned.
#[derive(Debug)]
pub enum FeedError<E> {
    Ical(IcalError),
    /// The feed's bytes could not be read (a file's I/O error, or it changed while read).
    Read(std::io::Error),
    Sink(E),
}

/// Reads a feed a page at a time: its items (as [`parse_feed`] reads them) are handed to
/// `sink` in pages of about `page` items, each page read from the feed's bytes when it is
/// its turn, so what a read holds at once is an index of where each event lies (offsets and
/// UIDs) and one page — not the whole calendar parsed, and for a file
/// ([`super::FeedFile`]) not its bytes either. The structure of the whole feed is checked first, in one streaming pass: a
/// feed that is cut short or out of order is an error before any page is handed over.
///
/// `known` is asked, per group of VEVENTs (one UID), whether a group with that id and that
/// byte digest was read before, and what items it gave: when it answers, the group is not
/// read again and its items are reported in [`Feed::unchanged`]. (The caller keeps those
/// answers only for as long as reading the same bytes must give the same items.) Every group
/// read or passed over is reported in [`Feed::seen`] — except one that had an item that
/// could not be read, which is read (and reported skipped) every time.
///
/// # Errors
/// [`FeedError::Ical`] as [`parse_feed`]; [`FeedError::Read`] when the bytes cannot be read;
/// [`FeedError::Sink`] with what `sink` returned.
pub fn read_feed<E>(
    bytes: &dyn FeedBytes,
    page: usize,
    known: &dyn Fn(&str, u64) -> Option<Vec<SourceKey>>,
    mut sink: impl FnMut(Feed) -> Result<(), E>,
) -> Result<(), FeedError<E>> {
    let scan = lines::scan(&mut *bytes.reader().map_err(FeedError::Read)?)
        .map_err(FeedError::Read)?
        .map_err(FeedError::Ical)?;
    let zone_texts: Vec<String> = scan
        .spans
        .iter()
        .filter(|(kind, _)| kind == "VTIMEZONE")
        .map(|(_, range)| bytes.range(range.clone()).map(|b| span_block(&b)))
        .collect::<Result<_, _>>()
        .map_err(FeedError::Read)?;
    let zone_cals: Vec<lines::Calendar<'_>> = zone_texts
        .iter()
        .filter_map(|text| lines::components(text).ok())
        .collect();
    let zones = Zones::new(
        zone_cals
            .iter()
            .flat_map(|c| c.blocks.iter())
            .filter(|b| b.kind == "VTIMEZONE"),
    );
    let properties: Vec<&str> = scan.properties.iter().map(String::as_str).collect();
    let ctx = Context {
        floating: floating_zone(&properties, &zones),
        zones,
    };

    // Group the VEVENTs by UID (a VEVENT without one by the hash of its text), in the order
    // each group first appears.
    let mut groups: Vec<(String, bool, Vec<Member>)> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let vevents = scan.spans.iter().filter(|(kind, _)| kind == "VEVENT");
    for (index, ((_, range), uid_line)) in vevents.zip(&scan.uids).enumerate() {
        let uid = uid_line
            .as_deref()
            .and_then(|line| lines::raw_property(line, false))
            .map(|(_, raw)| values::text(raw.value).trim().to_string())
            .filter(|u| !u.is_empty());
        let (id, has_uid) = match uid {
            Some(uid) => (uid, true),
            None => {
                let text = span_block(&bytes.range(range.clone()).map_err(FeedError::Read)?);
                let key = lines::components(&text)
                    .ok()
                    .and_then(|c| c.blocks.into_iter().next())
                    .map(|b| sha256_hex(b.text().as_bytes()))
                    .unwrap_or_default();
                (format!("nouid:{key}"), false)
            }
        };
        let at = *by_id.entry(id.clone()).or_insert_with(|| {
            groups.push((id, has_uid, Vec::new()));
            groups.len() - 1
        });
        groups[at].2.push(Member {
            range: range.clone(),
            index,
        });
    }
    drop(by_id);

    let mut keys = HashSet::new();
    let mut feed = Feed::default();
    let page = page.max(1);
    let mut pending = 0usize;
    for (id, has_uid, members) in groups {
        let texts = members
            .iter()
            .map(|m| bytes.range(m.range.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(FeedError::Read)?;
        let digest = short_hash(&texts.iter().map(AsRef::as_ref).collect::<Vec<_>>());
        if let Some(known_keys) = known(&id, digest) {
            feed.unchanged.extend(known_keys.iter().cloned());
            feed.seen.push(GroupSeen {
                id_hash: id_hash(&id),
                digest,
                regular: known_keys.len() == 1 && known_keys[0].0 == id,
                keys: known_keys,
            });
        } else {
            let (events_before, skipped_before) = (feed.events.len(), feed.skipped.len());
            let hash = id_hash(&id);
            let own = SourceKey(id.clone());
            let members = members
                .iter()
                .zip(&texts)
                .map(|(m, text)| (span_block(text), m.index))
                .collect();
            read_group(&ctx, id, has_uid, members, &mut feed, &mut keys);
            if feed.skipped.len() == skipped_before {
                let produced: Vec<SourceKey> = feed.events[events_before..]
                    .iter()
                    .map(|e| e.key.clone())
                    .collect();
                feed.seen.push(GroupSeen {
                    id_hash: hash,
                    digest,
                    regular: produced.len() == 1 && produced[0] == own,
                    keys: produced,
                });
            }
        }
        pending += 1;
        if pending >= page {
            pending = 0;
            sink(std::mem::take(&mut feed)).map_err(FeedError::Sink)?;
        }
    }
    if !feed.events.is_empty() || !feed.skipped.is_empty() || !feed.unchanged.is_empty() {
        sink(feed).map_err(FeedError::Sink)?;
    }
    Ok(())
}

/// The 64-bit hash a group's id is remembered by.
pub fn id_hash(id: &str) -> u64 {
    short_hash(&[id.as_bytes()])
}

/// A 64-bit digest of some byte slices (the first 8 bytes of their SHA-256, slices kept
/// apart): enough to tell a group changed, stable across builds.
fn short_hash(parts: &[&[u8]]) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// One component's bytes as a calendar of its own, unfolded (what [`lines::components`] reads).
fn span_block(bytes: &[u8]) -> String {
    let mut text = String::from("BEGIN:VCALENDAR\r\n");
    text.push_str(&lines::unfold(bytes));
    text.push_str("\r\nEND:VCALENDAR\r\n");
    text
}

/// Reads one group of VEVENTs (each as [`span_block`] made it, with its index among the
/// feed's VEVENTs) and resolves it into `feed`.
fn read_group(
    ctx: &Context,
    id: String,
    has_uid: bool,
    members: Vec<(String, usize)>,
    feed: &mut Feed,
    keys: &mut HashSet<String>,
) {
    {
        let mut vevents = Vec::with_capacity(members.len());
        for (text, index) in members {
            let Ok(cal) = lines::components(&text) else {
                continue;
            };
            if let Some(block) = cal.blocks.iter().find(|b| b.kind == "VEVENT") {
                vevents.push(read_vevent(block, ctx, index));
            }
        }
        Group {
            id,
            has_uid,
            members: vevents,
        }
        .resolve(feed, keys);
    }
}

/// What reading one VEVENT needs from the rest of the feed.
struct Context {
    zones: Zones,
    /// The zone of floating times (`X-WR-TIMEZONE`): `Err(name)` when the feed names one that
    /// cannot be resolved, so floating times cannot be read.
    floating: Option<Result<Zone, String>>,
}

/// The first `X-WR-TIMEZONE` of the calendar, resolved.
fn floating_zone(properties: &[&str], zones: &Zones) -> Option<Result<Zone, String>> {
    let name = properties.iter().find_map(|line| {
        let (name, raw) = lines::raw_property(line, false)?;
        name.eq_ignore_ascii_case("X-WR-TIMEZONE")
            .then(|| values::text(raw.value).trim().to_string())
    })?;
    if name.is_empty() {
        return None;
    }
    Some(zones.resolve(&name).ok_or(name))
}

/// A published item read back from a target: what calsync wrote, or what someone made of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBack {
    /// `X-CALSYNC-TAG` of the master, when it carries one (events without are not calsync's).
    pub tag: Option<String>,
    /// The item in the published shape (UID as the target holds it).
    pub event: PublicEvent,
    /// `CLASS` of the master and every override, as written (`None`: absent).
    pub classes: Vec<Option<String>>,
    /// Properties that calsync never publishes but the target's item carries (ATTENDEE,
    /// ORGANIZER, VALARM…): a sign it was edited or is not calsync's.
    pub foreign: Vec<String>,
    /// The master's `DTSTAMP` (Unix seconds), when it is a UTC date-time.
    pub dtstamp: Option<i64>,
}

/// Properties and components calsync never writes into a target.
const NEVER_PUBLISHED: &[&str] = &["ATTENDEE", "ORGANIZER", "ATTACH", "CONTACT", "BEGIN:VALARM"];

/// Reads a target (a whole file, or one CalDAV resource) back into the published shape, with
/// each item's tag, classes and any property calsync would never have written.
///
/// # Errors
/// As [`parse_feed`].
pub fn parse_published(bytes: &[u8]) -> Result<Vec<ReadBack>, IcalError> {
    let text = lines::unfold(bytes);
    let blocks = lines::components(&text)
        .map_err(|e| e.in_feed(bytes))?
        .blocks;
    let mut tags: HashMap<String, String> = HashMap::new();
    let mut stamps: HashMap<String, i64> = HashMap::new();
    let mut foreign: HashMap<String, Vec<String>> = HashMap::new();
    for block in blocks.iter().filter(|b| b.kind == "VEVENT") {
        let Some(uid) = block
            .raw_values("UID")
            .first()
            .map(|u| u.trim().to_string())
        else {
            continue;
        };
        if block.raw_values("RECURRENCE-ID").is_empty()
            && let Some(tag) = block.raw_values("X-CALSYNC-TAG").first()
        {
            tags.insert(uid.clone(), tag.trim().to_string());
        }
        if block.raw_values("RECURRENCE-ID").is_empty()
            && let Some(stamp) = block.raw_values("DTSTAMP").first().and_then(|v| {
                chrono::NaiveDateTime::parse_from_str(v.trim(), "%Y%m%dT%H%M%SZ").ok()
            })
        {
            stamps.insert(uid.clone(), stamp.and_utc().timestamp());
        }
        for name in NEVER_PUBLISHED {
            let present = match name.strip_prefix("BEGIN:") {
                Some(kind) => block
                    .lines
                    .iter()
                    .any(|l| l.trim().eq_ignore_ascii_case(&format!("BEGIN:{kind}"))),
                None => !block.raw_values(name).is_empty(),
            };
            if present {
                let list = foreign.entry(uid.clone()).or_default();
                let name = name.trim_start_matches("BEGIN:").to_string();
                if !list.contains(&name) {
                    list.push(name);
                }
            }
        }
    }
    let feed = parse_feed(bytes)?;
    Ok(feed
        .events
        .into_iter()
        .map(|e| {
            let uid = e.key.0.split('#').next().unwrap_or_default().to_string();
            let class = |d: &Details| match &d.marking {
                Marking::Class(c) => c.clone(),
                _ => None,
            };
            let mut classes = vec![class(&e.main)];
            classes.extend(e.overrides.iter().map(|o| class(&o.details)));
            ReadBack {
                tag: tags.get(&uid).cloned(),
                dtstamp: stamps.get(&uid).copied(),
                foreign: foreign.remove(&uid).unwrap_or_default(),
                classes,
                event: to_public(&uid, &e),
            }
        })
        .collect())
}

fn public_details(d: &Details) -> PublicDetails {
    PublicDetails {
        start: d.start.clone(),
        end: d.end.clone(),
        title: d.title.clone().unwrap_or_default(),
        location: d.location.clone(),
        description: d.description.clone(),
        categories: d.categories.clone(),
    }
}

fn to_public(uid: &str, e: &SourceEvent) -> PublicEvent {
    let rec = e.recurrence.clone().unwrap_or_default();
    let mut overrides: Vec<PublicOverride> = e
        .overrides
        .iter()
        .map(|o| PublicOverride {
            recurrence_id: o.recurrence_id.clone(),
            details: public_details(&o.details),
        })
        .collect();
    overrides.sort_by(|a, b| a.recurrence_id.cmp(&b.recurrence_id));
    let mut rdates = rec.rdates;
    rdates.sort();
    let mut exdates = rec.exdates;
    exdates.sort();
    let mut periods = rec.periods;
    periods.sort();
    PublicEvent {
        uid: uid.to_string(),
        details: public_details(&e.main),
        rules: rec.rules,
        rdates,
        exdates,
        overrides,
        periods,
    }
}

/// The VEVENTs sharing one UID (or one `nouid:` hash), in feed order.
struct Group {
    id: String,
    has_uid: bool,
    members: Vec<Vevent>,
}

/// One VEVENT as read; reading problems are kept so the whole group can be judged.
struct Vevent {
    /// `None` for a master; the instance it overrides (and whether `RANGE=THISANDFUTURE`).
    recurrence_id: Option<Result<(Moment, bool), SkipReason>>,
    body: Result<Body, SkipReason>,
    /// For choosing among copies of one event.
    sequence: i64,
    dtstamp: Option<NaiveDateTime>,
    index: usize,
}

#[derive(Clone)]
struct Body {
    details: Details,
    recurrence: Option<Recurrence>,
}

impl Group {
    fn resolve(self, feed: &mut Feed, keys: &mut HashSet<String>) {
        let key = SourceKey(self.id.clone());
        let (masters, overrides): (Vec<Vevent>, Vec<Vevent>) = self
            .members
            .into_iter()
            .partition(|v| v.recurrence_id.is_none() || !self.has_uid);
        if masters.is_empty() {
            resolve_orphans(&self.id, overrides, feed, keys);
            return;
        }
        let result =
            one_copy(masters).and_then(|master| build_series(key.clone(), master, overrides));
        match result {
            Ok(events) => {
                for event in events {
                    push_event(event, feed, keys);
                }
            }
            Err(reason) => feed.skipped.push(Skipped {
                key: Some(key),
                reason,
            }),
        }
    }
}

/// The copies of one event (one VEVENT, or several with one UID and one RECURRENCE-ID) as
/// one: the winner by SEQUENCE, DTSTAMP and feed order, carrying every copy's marking.
fn one_copy(mut copies: Vec<Vevent>) -> Result<Vevent, SkipReason> {
    if copies.len() == 1 {
        return Ok(copies.remove(0));
    }
    let mut bodies = Vec::with_capacity(copies.len());
    for c in &copies {
        match &c.body {
            Ok(b) => bodies.push(b.details.clone()),
            Err(reason) => return Err(reason.clone()),
        }
    }
    let winner = copies
        .iter()
        .enumerate()
        .max_by_key(|(_, c)| (c.sequence, c.dtstamp, c.index))
        .map(|(i, _)| i)
        .unwrap_or(0);
    let mut chosen = copies.swap_remove(winner);
    if let Ok(body) = chosen.body.as_mut() {
        body.details.marking = combined_marking(&bodies);
        body.details.cancelled = bodies.iter().any(|d| d.cancelled);
    }
    Ok(chosen)
}

/// One marking for several copies: theirs when every copy is marked alike or public (absent
/// or `PUBLIC`); otherwise every written value joined, which `policy` never reads as public.
fn combined_marking(copies: &[Details]) -> Marking {
    let classes: Vec<Option<String>> = copies
        .iter()
        .map(|d| match &d.marking {
            Marking::Class(c) => c.clone(),
            _ => Some(String::new()),
        })
        .collect();
    let public = |c: &Option<String>| {
        c.as_deref()
            .is_none_or(|v| v.trim().eq_ignore_ascii_case("PUBLIC"))
    };
    if classes.iter().all(|c| *c == classes[0]) || classes.iter().all(public) {
        return copies
            .last()
            .map(|d| d.marking.clone())
            .unwrap_or(Marking::Class(None));
    }
    let mut written: Vec<String> = Vec::new();
    for c in classes.into_iter().flatten() {
        if !written.contains(&c) {
            written.push(c);
        }
    }
    Marking::Class(Some(written.join(",")))
}

/// A master and its overrides as one item, or as several when a `RANGE=THISANDFUTURE`
/// override splits it; or the reason the item is left out.
fn build_series(
    key: SourceKey,
    master: Vevent,
    overrides: Vec<Vevent>,
) -> Result<Vec<SourceEvent>, SkipReason> {
    let master_sequence = master.sequence;
    let body = master.body?;
    let start = body.details.start.clone();
    // Copies of one instance are one override (see `one_copy`).
    // (instance in the series' form, the wall-clock time as written, THISANDFUTURE, copies)
    let mut by_instance: Vec<(Moment, NaiveDateTime, bool, Vec<Vevent>)> = Vec::new();
    for o in overrides {
        let Some(rid) = o.recurrence_id.clone() else {
            continue;
        };
        let (written, this_and_future) = rid?;
        let rid = in_series_form(&written, &start);
        match by_instance.iter_mut().find(|(r, _, _, _)| *r == rid) {
            Some((_, _, taf, list)) => {
                *taf |= this_and_future;
                list.push(o);
            }
            None => by_instance.push((rid, written.naive(), this_and_future, vec![o])),
        }
    }
    // An override names an instance of the series. One that names none by its instant but
    // one by its wall-clock time as written (Google writes a RECURRENCE-ID in another TZID
    // than the series') is that instance, as recurring-ical-events reads it too. One that
    // names none at all still stands for itself (its instance was moved before the rule
    // changed), unless it is a stale version of the series: a rule of its own and a lower
    // SEQUENCE than the master (recurring-ical-events issue 253).
    let ids = match &body.recurrence {
        Some(rec) if !by_instance.is_empty() => {
            let stop = by_instance
                .iter()
                .map(|(r, w, _, _)| r.naive().max(*w))
                .max()
                .unwrap_or_else(|| start.naive());
            Some(
                crate::recurrence::instance_starts(&start, rec, stop)
                    .map_err(|_| SkipReason::InvalidRecurrence)?,
            )
        }
        _ => None,
    };
    let mut plain: Vec<Override> = Vec::new();
    let mut futures: Vec<(Moment, Details)> = Vec::new();
    for (rid, written, this_and_future, copies) in by_instance {
        let copy = one_copy(copies)?;
        let stale = copy.sequence < master_sequence;
        let own = copy.body?;
        let details = own.details;
        let rid = match &ids {
            None => rid,
            Some(ids) if ids.contains(&rid.naive()) => rid,
            Some(ids) if ids.contains(&written) => crate::recurrence::in_frame(&start, written),
            // Later instances it may have made private would be published.
            Some(_) if this_and_future => return Err(SkipReason::ThisAndFuture),
            Some(_) if stale && own.recurrence.is_some() => continue,
            Some(_) => rid,
        };
        if plain.iter().any(|o| o.recurrence_id == rid) || futures.iter().any(|(r, _)| *r == rid) {
            // Two spellings of one instance: which holds is unknowable.
            return Err(SkipReason::InvalidTime("RECURRENCE-ID"));
        }
        if this_and_future && body.recurrence.is_some() {
            futures.push((rid, details));
        } else {
            plain.push(Override {
                recurrence_id: rid,
                details,
            });
        }
    }
    plain.sort_by(|a, b| a.recurrence_id.cmp(&b.recurrence_id));
    let whole = SourceEvent {
        key,
        main: body.details,
        recurrence: body.recurrence,
        overrides: plain,
    };
    if futures.is_empty() {
        return Ok(vec![whole]);
    }
    super::split::split_series(whole, futures)
}

/// Overrides whose master is not in the feed: each is an event of its own (copies of one
/// instance as one). An override names one instance: recurrence properties on it (Lotus
/// Notes lists a series' later instances as RDATEs of a `THISANDFUTURE` override) do not
/// make it a series, since the series they belong to is not in the feed.
fn resolve_orphans(uid: &str, orphans: Vec<Vevent>, feed: &mut Feed, keys: &mut HashSet<String>) {
    let mut by_instance: Vec<(String, Vec<Vevent>)> = Vec::new();
    for o in orphans {
        let rid = match &o.recurrence_id {
            Some(Ok((rid, _))) => rid.to_string(),
            Some(Err(reason)) => {
                feed.skipped.push(Skipped {
                    key: Some(SourceKey(uid.to_string())),
                    reason: reason.clone(),
                });
                continue;
            }
            None => continue,
        };
        match by_instance.iter_mut().find(|(r, _)| *r == rid) {
            Some((_, list)) => list.push(o),
            None => by_instance.push((rid, vec![o])),
        }
    }
    for (rid, copies) in by_instance {
        let key = SourceKey(format!("{uid}#{rid}"));
        match one_copy(copies).and_then(|o| o.body) {
            Ok(body) => push_event(
                SourceEvent {
                    key,
                    main: body.details,
                    recurrence: None,
                    overrides: Vec::new(),
                },
                feed,
                keys,
            ),
            Err(reason) => feed.skipped.push(Skipped {
                key: Some(key),
                reason,
            }),
        }
    }
}

/// Adds an event unless its key is taken (two identical VEVENTs without UID: one event):
/// keys must be unique in a feed.
fn push_event(event: SourceEvent, feed: &mut Feed, keys: &mut HashSet<String>) {
    if keys.insert(event.key.0.clone()) {
        feed.events.push(event);
    }
}

/// Reads one VEVENT block: what the model needs, by the values' grammar.
fn read_vevent(block: &Block<'_>, ctx: &Context, index: usize) -> Vevent {
    let recurrence_id = match single(block, "RECURRENCE-ID") {
        Ok(None) => None,
        Ok(Some(p)) => Some(moment_of(&p, "RECURRENCE-ID", ctx).map(|rid| {
            let this_and_future = p
                .param("RANGE")
                .is_some_and(|r| r.trim().eq_ignore_ascii_case("THISANDFUTURE"));
            (rid, this_and_future)
        })),
        Err(reason) => Some(Err(reason)),
    };
    let fallback_start = match &recurrence_id {
        Some(Ok((rid, _))) => Some(rid.clone()),
        _ => None,
    };
    let body = read_body(block, ctx, fallback_start);
    let sequence = block
        .raw_values("SEQUENCE")
        .iter()
        .filter_map(|v| v.trim().parse::<i64>().ok())
        .max()
        .unwrap_or(0);
    let dtstamp = block
        .raw_values("DTSTAMP")
        .iter()
        .filter_map(|v| match values::time(v) {
            Some(Time::DateTime(t, true)) => Some(t),
            _ => None,
        })
        .max();
    Vevent {
        recurrence_id,
        body,
        sequence,
        dtstamp,
        index,
    }
}

/// The one property `name` (a DTSTART, DTEND, DURATION or RECURRENCE-ID): given twice with
/// different values, which holds is unknowable and the event is withheld.
fn single<'a>(
    block: &'a Block<'a>,
    name: &'static str,
) -> Result<Option<RawProperty<'a>>, SkipReason> {
    let mut all = block.props(name, true).into_iter();
    let first = all.next();
    for other in all {
        if Some(&other) != first.as_ref() {
            return Err(SkipReason::InvalidTime(name));
        }
    }
    Ok(first)
}

fn read_body(
    block: &Block<'_>,
    ctx: &Context,
    fallback_start: Option<Moment>,
) -> Result<Body, SkipReason> {
    let start = match single(block, "DTSTART")? {
        Some(p) => moment_of(&p, "DTSTART", ctx)?,
        None => fallback_start.ok_or(SkipReason::MissingStart)?,
    };
    let end = match (single(block, "DTEND")?, single(block, "DURATION")?) {
        // RFC 5545 allows one of them; both are read only when they agree.
        (Some(e), Some(d)) => {
            let end = moment_of(&e, "DTEND", ctx)?;
            let d = values::duration(d.value).ok_or(SkipReason::InvalidTime("DURATION"))?;
            if end_after(&start, d)? != end {
                return Err(SkipReason::InvalidTime("DURATION"));
            }
            Some(end)
        }
        (Some(p), None) => Some(moment_of(&p, "DTEND", ctx)?),
        (None, Some(p)) => {
            let d = values::duration(p.value).ok_or(SkipReason::InvalidTime("DURATION"))?;
            Some(end_after(&start, d)?)
        }
        (None, None) => None,
    };

    let class = block.raw_values("CLASS");
    let marking = Marking::Class(match class.len() {
        0 => None,
        // Two CLASS properties: kept together, which no policy reads as PUBLIC.
        _ => Some(class.join(",")),
    });
    let cancelled = block
        .raw_values("STATUS")
        .iter()
        .any(|s| s.trim().eq_ignore_ascii_case("CANCELLED"));

    let categories = block
        .props("CATEGORIES", false)
        .iter()
        .flat_map(|p| values::text_list(p.value))
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect();

    let recurrence = read_recurrence(block, ctx, &start)?;
    Ok(Body {
        details: Details {
            start,
            end,
            title: text_of(block, "SUMMARY"),
            location: text_of(block, "LOCATION"),
            description: text_of(block, "DESCRIPTION"),
            categories,
            marking,
            cancelled,
        },
        recurrence,
    })
}

/// The first property `name` as TEXT, unescaped exactly; `None` when absent or blank.
fn text_of(block: &Block<'_>, name: &str) -> Option<String> {
    block
        .props(name, false)
        .first()
        .map(|p| values::text(p.value))
        .filter(|t| !t.trim().is_empty())
}

/// RRULE, EXRULE, RDATE and EXDATE of a master; RDATE/EXDATE put in DTSTART's type and zone.
fn read_recurrence(
    block: &Block<'_>,
    ctx: &Context,
    start: &Moment,
) -> Result<Option<Recurrence>, SkipReason> {
    let mut rec = Recurrence::default();
    let mut exrules = Vec::new();
    for (name, list) in [("RRULE", &mut rec.rules), ("EXRULE", &mut exrules)] {
        for p in block.props(name, false) {
            if let Some(rule) = values::rule(p.value).map_err(|_| SkipReason::InvalidRecurrence)? {
                list.push(rule);
            }
        }
    }
    for p in block.props("RDATE", true) {
        for value in list_of(&p, "RDATE", ctx, true)? {
            match value {
                ListValue::Moment(m) => rec.rdates.push(in_series_form(&m, start)),
                ListValue::Period(s, e) => {
                    if start.is_date() {
                        // A period has times; an all-day series cannot hold one exactly.
                        return Err(SkipReason::InvalidTime("RDATE"));
                    }
                    rec.periods.push(Period {
                        start: in_series_form(&s, start),
                        end: e,
                    })
                }
            }
        }
    }
    for p in block.props("EXDATE", true) {
        for value in list_of(&p, "EXDATE", ctx, false)? {
            if let ListValue::Moment(m) = value {
                rec.exdates.push(in_series_form(&m, start));
            }
        }
    }
    rec.exrules = exrules;
    if rec == Recurrence::default() {
        return Ok(None);
    }
    validate(start, &rec).map_err(|_| SkipReason::InvalidRecurrence)?;
    Ok(Some(rec))
}

/// One value of an RDATE or EXDATE list.
enum ListValue {
    Moment(Moment),
    /// A period: start and (exclusive) end, both in the property's zone.
    Period(Moment, Moment),
}

/// All values of an RDATE/EXDATE property; periods only where `periods` (RDATE).
fn list_of(
    p: &RawProperty<'_>,
    prop: &'static str,
    ctx: &Context,
    periods: bool,
) -> Result<Vec<ListValue>, SkipReason> {
    let invalid = || SkipReason::InvalidTime(prop);
    if p.malformed {
        return Err(invalid());
    }
    let value_type = value_type(p)?;
    let tzid = tzid(p, prop)?;
    p.value
        .split(',')
        .map(|item| {
            let is_period = item.contains('/');
            if value_type.as_deref() == Some("PERIOD") || is_period {
                if !periods || !matches!(value_type.as_deref(), None | Some("PERIOD")) {
                    return Err(invalid());
                }
                let (a, b) = item.split_once('/').ok_or_else(invalid)?;
                let start = match values::time(a) {
                    Some(t @ Time::DateTime(..)) => to_moment(t, tzid, ctx)?,
                    _ => return Err(invalid()),
                };
                let end = match values::time(b) {
                    Some(t @ Time::DateTime(_, utc)) => {
                        if utc != matches!(start, Moment::Utc(_)) {
                            return Err(invalid());
                        }
                        to_moment(t, tzid, ctx)?
                    }
                    Some(Time::Date(_)) => return Err(invalid()),
                    None => end_after(&start, values::duration(b).ok_or_else(invalid)?)?,
                };
                return Ok(ListValue::Period(start, end));
            }
            let t = values::time(item).ok_or_else(invalid)?;
            check_type(value_type.as_deref(), t).ok_or_else(invalid)?;
            Ok(ListValue::Moment(to_moment(t, tzid, ctx)?))
        })
        .collect()
}

/// The VALUE parameter, upper-cased; given twice, the value is unreadable.
fn value_type(p: &RawProperty<'_>) -> Result<Option<String>, SkipReason> {
    match p.params.iter().filter(|(n, _)| n == "VALUE").count() {
        0 => Ok(None),
        1 => Ok(p.param("VALUE").map(|v| v.trim().to_ascii_uppercase())),
        _ => Err(SkipReason::InvalidTime("VALUE")),
    }
}

/// The TZID parameter as written (an unquoted Outlook TZID keeps its commas); given twice,
/// the value is unreadable.
fn tzid<'a>(p: &'a RawProperty<'a>, prop: &'static str) -> Result<Option<&'a str>, SkipReason> {
    match p.params.iter().filter(|(n, _)| n == "TZID").count() {
        0 => Ok(None),
        1 => Ok(p.param("TZID")),
        _ => Err(SkipReason::InvalidTime(prop)),
    }
}

/// A value's form agrees with its VALUE type (none given: the form decides).
fn check_type(value_type: Option<&str>, t: Time) -> Option<()> {
    match (value_type, t) {
        (None, _) | (Some("DATE"), Time::Date(_)) | (Some("DATE-TIME"), Time::DateTime(..)) => {
            Some(())
        }
        _ => None,
    }
}

/// A single date or date-time property as a [`Moment`].
fn moment_of(p: &RawProperty<'_>, prop: &'static str, ctx: &Context) -> Result<Moment, SkipReason> {
    let invalid = || SkipReason::InvalidTime(prop);
    if p.malformed {
        return Err(invalid());
    }
    let t = values::time(p.value).ok_or_else(invalid)?;
    check_type(value_type(p)?.as_deref(), t).ok_or_else(invalid)?;
    to_moment(t, tzid(p, prop)?, ctx)
}

/// A value in its zone: a DATE is a date whatever TZID it carries (a zone means nothing to
/// a day; Google writes `DTSTART;TZID=…:20041225`); `Z` wins over a TZID; a TZID must
/// resolve; a floating time takes the feed's `X-WR-TIMEZONE` when it names one.
fn to_moment(t: Time, tzid: Option<&str>, ctx: &Context) -> Result<Moment, SkipReason> {
    match t {
        Time::Date(d) => Ok(Moment::Date(d)),
        Time::DateTime(t, true) => Ok(Moment::Utc(t)),
        Time::DateTime(t, false) => match tzid {
            Some(id) => ctx
                .zones
                .resolve(id)
                .map(|zone| in_zone(t, zone))
                .ok_or_else(|| SkipReason::UnknownTimeZone(id.to_string())),
            None => match &ctx.floating {
                None => Ok(Moment::Floating(t)),
                Some(Ok(zone)) => Ok(in_zone(t, zone.clone())),
                Some(Err(name)) => Err(SkipReason::UnknownTimeZone(name.clone())),
            },
        },
    }
}

fn in_zone(t: NaiveDateTime, zone: Zone) -> Moment {
    match zone {
        Zone::Iana(tz) => Moment::Zoned(t, tz),
        Zone::Defined(z) => Moment::Defined(t, z),
    }
}

/// DTSTART + DURATION. For an all-day start the duration is rounded up to whole days.
fn end_after(start: &Moment, d: TimeDelta) -> Result<Moment, SkipReason> {
    let invalid = || SkipReason::InvalidTime("DURATION");
    let later = |t: &NaiveDateTime| t.checked_add_signed(d).ok_or_else(invalid);
    Ok(match start {
        Moment::Date(day) => {
            let days = u64::try_from((d.num_seconds() + 86_399) / 86_400).map_err(|_| invalid())?;
            Moment::Date(
                day.checked_add_days(chrono::Days::new(days))
                    .ok_or_else(invalid)?,
            )
        }
        Moment::Utc(t) => Moment::Utc(later(t)?),
        Moment::Zoned(t, tz) => Moment::Zoned(later(t)?, *tz),
        Moment::Floating(t) => Moment::Floating(later(t)?),
        Moment::Defined(t, z) => Moment::Defined(later(t)?, z.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const DEMO: &[u8] = include_bytes!("../../examples/demo-source.ics");
    const OUTLOOK: &[u8] = include_bytes!("../../tests/fixtures/outlook-export.ics");
    const OUTLOOK_NAMES: &[u8] = include_bytes!("../../tests/fixtures/outlook-display-names.ics");
    const GOOGLE: &[u8] = include_bytes!("../../tests/fixtures/google-export.ics");
    const UNICODE: &[u8] = include_bytes!("../../tests/fixtures/folding-unicode.ics");
    const BARE_LF: &[u8] = include_bytes!("../../tests/fixtures/bare-lf.ics");
    const TRUNCATED: &[u8] = include_bytes!("../../tests/fixtures/truncated.ics");

    /// A calendar around some VEVENT (and VTIMEZONE) text.
    fn feed(body: &str) -> Feed {
        parse_feed(format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{body}END:VCALENDAR\r\n").as_bytes())
            .unwrap()
    }

    fn event(feed: &Feed, key: &str) -> SourceEvent {
        feed.events
            .iter()
            .find(|e| e.key.0 == key)
            .unwrap_or_else(|| panic!("no event {key}"))
            .clone()
    }

    fn class(d: &Details) -> Option<&str> {
        match &d.marking {
            Marking::Class(c) => c.as_deref(),
            other => panic!("not a CLASS marking: {other:?}"),
        }
    }

    /// One line per event: key | start | end | class | cancelled | title.
    fn summary(feed: &Feed) -> Vec<String> {
        feed.events
            .iter()
            .map(|e| {
                let d = &e.main;
                format!(
                    "{} | {} | {} | {} | {} | {}",
                    e.key,
                    d.start,
                    d.end.as_ref().map(|m| m.to_string()).unwrap_or("-".into()),
                    class(d).unwrap_or("-"),
                    if d.cancelled { "cancelled" } else { "-" },
                    d.title.as_deref().unwrap_or("-"),
                )
            })
            .collect()
    }

    #[test]
    fn fixtures_parse_to_the_right_events() {
        let cases: &[(&str, &[u8], &[&str])] = &[
            (
                "demo",
                DEMO,
                &[
                    "advent-concert-2026@st-martin.example.org | 2026-12-06T17:00:00[Europe/Berlin] | 2026-12-06T18:30:00[Europe/Berlin] | PUBLIC | - | Advent concert of the school choirs",
                    "christmas-eve-2026@st-martin.example.org | 2026-12-24T16:00:00[Europe/Berlin] | 2026-12-24T17:00:00[Europe/Berlin] | - | - | Christmas Eve family service with nativity play",
                    "hr-2026-12-03-salary@st-martin.example.org | 2026-12-03T14:00:00[Europe/Berlin] | 2026-12-03T15:00:00[Europe/Berlin] | PRIVATE | - | Salary review with J. Doe",
                    "pastoral-2026-12-10-miller@st-martin.example.org | 2026-12-10T16:00:00[Europe/Berlin] | 2026-12-10T17:00:00[Europe/Berlin] | CONFIDENTIAL | - | Counselling session K. Miller",
                    "staff-2026-12-16-secret-santa@st-martin.example.org | 2026-12-16T13:30:00[Europe/Berlin] | 2026-12-16T14:00:00[Europe/Berlin] | X-STAFF | - | Staff room: Secret Santa draw",
                    "private-2027-01-13-doctor@st-martin.example.org | 2027-01-13T08:30:00[Europe/Berlin] | 2027-01-13T09:30:00[Europe/Berlin] | private | - | Doctor appointment P. Novak",
                    "choir-rehearsal-2026@st-martin.example.org | 2026-12-03T19:00:00[Europe/Berlin] | 2026-12-03T20:30:00[Europe/Berlin] | PUBLIC | - | Parish choir rehearsal",
                    "cafe-2027-01-17@st-martin.example.org | 2027-01-17T14:30:00[Europe/Berlin] | 2027-01-17T17:00:00[Europe/Berlin] | PUBLIC | cancelled | Parish café after the service",
                    "epiphany-2027@st-martin.example.org | 2027-01-06 | 2027-01-07 | - | - | Epiphany – carol singers visit the parish",
                    "school-holidays-christmas-2026@st-martin.example.org | 2026-12-21 | 2027-01-02 | PUBLIC | - | Christmas holidays (school closed)",
                    "confirmation-retreat-2027@st-martin.example.org | 2027-03-12 | 2027-03-15 | - | - | Confirmation retreat at Marienthal",
                    "council-2027-01-20@st-martin.example.org | 2027-01-20T19:30:00[Europe/Berlin] | 2027-01-20T21:30:00[Europe/Berlin] | PUBLIC | - | Parish council meeting",
                    "bible-study-2027-02-03@st-martin.example.org | 2027-02-03T20:00:00[Europe/Berlin] | 2027-02-03T21:15:00[Europe/Berlin] | PUBLIC | - | Online Bible study: the Gospel of Mark",
                    "summer-fete-2027@st-martin.example.org | 2027-06-13T11:00:00[Europe/Berlin] | 2027-06-13T18:00:00[Europe/Berlin] | - | - | Summer fete of parish and school",
                ],
            ),
            (
                "outlook (Windows zone names)",
                OUTLOOK,
                &[
                    "040000008200E00074C5B7101A82E00800000000A0F3B0C1D2E4DA01000000000000000010000000E1D2C3B4A5968778695A4B3C2D1E0F10 | 2026-12-02T07:30:00[Europe/Berlin] | 2026-12-02T08:15:00[Europe/Berlin] | PUBLIC | - | Dienstbesprechung Kollegium",
                    "040000008200E00074C5B7101A82E00800000000B1C2D3E4F5A6DA01000000000000000010000000AABBCCDDEEFF00112233445566778899 | 2026-12-08T15:00:00[Europe/Berlin] | 2026-12-08T15:30:00[Europe/Berlin] | PRIVATE | - | Elterngespräch Familie Yılmaz",
                    "040000008200E00074C5B7101A82E00800000000C2D3E4F5A6B7DA01000000000000000010000000FFEEDDCCBBAA99887766554433221100 | 2027-01-23 | 2027-01-24 | PUBLIC | - | Tag der offenen Tür",
                    "040000008200E00074C5B7101A82E00800000000D3E4F5A6B7C8DA01000000000000000010000000123456789ABCDEF0123456789ABCDEF0 | 2026-12-15T14:00:00[UTC] | 2026-12-15T15:00:00[UTC] | PUBLIC | - | Austauschprojekt Lyon – Abstimmung",
                ],
            ),
            (
                "outlook ((UTC+01:00) display names)",
                OUTLOOK_NAMES,
                &[
                    "040000008200E00074C5B7101A82E00800000000E4F5A6B7C8D9DA01000000000000000010000000ABCDEF0123456789ABCDEF0123456789 | 2027-04-29T09:00:00[Europe/Berlin] | 2027-04-29T12:00:00[Europe/Berlin] | PUBLIC | - | Sportfest der Unterstufe",
                    "040000008200E00074C5B7101A82E00800000000F5A6B7C8D9E0DA01000000000000000010000000BCDEF0123456789ABCDEF0123456789A | 2026-12-14T19:00:00[Europe/Berlin] | 2026-12-14T20:00:00[Europe/Berlin] | PUBLIC | - | Weihnachtskonzert der Bläserklasse",
                    "040000008200E00074C5B7101A82E00800000000A6B7C8D9E0F1DA01000000000000000010000000CDEF0123456789ABCDEF0123456789AB | 2026-12-09T09:30:00[Europe/Berlin] | 2026-12-09T10:00:00[Europe/Berlin] | CONFIDENTIAL | - | Personalgespräch Frau Becker",
                ],
            ),
            (
                "google",
                GOOGLE,
                &[
                    "5k3j9h2g1f0e9d8c7b6a5z4y3x@google.com | 2026-12-07T18:00:00Z | 2026-12-07T19:30:00Z | - | - | Krippenspiel-Probe",
                    "7q6p5o4n3m2l1k0j9i8h7g6f5e@google.com | 2026-12-01T10:00:00[Europe/Berlin] | 2026-12-01T11:30:00[Europe/Berlin] | - | - | Seniorencafé",
                    "3a2b1c0d9e8f7g6h5i4j3k2l1m@google.com | 2026-12-26 | 2026-12-27 | - | - | 2. Weihnachtstag – Festgottesdienst 10 Uhr",
                    "0z9y8x7w6v5u4t3s2r1q0p9o8n@google.com | 2026-12-11T09:00:00Z | 2026-12-11T10:00:00Z | PRIVATE | - | Trauergespräch Familie Hoffmann",
                ],
            ),
            (
                "folded unicode",
                UNICODE,
                &[
                    "unicode-1@musikschule.example.de | 2026-12-05T15:00:00[Europe/Berlin] | 2026-12-05T16:30:00[Europe/Berlin] | PUBLIC | - | Weihnachtsvorspiel der Klavierklasse: Grüße aus Köln, Straßburg & Zürich 🎄🎹",
                    "unicode-2@musikschule.example.de | 2027-02-15 | - | - | - | Ωδείο Αθηνών – Gastkonzert 🎻 mit einem sehr langen Titel, der über mehrere Zeilen gefaltet werden muss (äöü ÄÖÜ ß €)",
                ],
            ),
            (
                "bare LF",
                BARE_LF,
                &[
                    "elternsprechtag-2027@grundschule.example.de | 2027-02-18T14:00:00[Europe/Berlin] | 2027-02-18T18:00:00[Europe/Berlin] | public | - | Elternsprechtag",
                    "lesenacht-2027@grundschule.example.de | 2027-03-05T17:00:00Z | 2027-03-06T08:00:00Z | - | - | Lesenacht der dritten Klassen",
                ],
            ),
        ];
        for (name, bytes, want) in cases {
            let feed = parse_feed(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(summary(&feed), *want, "{name}");
            assert_eq!(feed.skipped, vec![], "{name}");
        }
    }

    #[test]
    fn series_and_overrides_are_grouped_by_uid() {
        let demo = parse_feed(DEMO).unwrap();
        let choir = event(&demo, "choir-rehearsal-2026@st-martin.example.org");
        let rec = choir.recurrence.clone().unwrap();
        assert_eq!(
            rec.rules,
            vec!["FREQ=WEEKLY;UNTIL=20270624T170000Z;BYDAY=TH"]
        );
        let exdates: Vec<String> = rec.exdates.iter().map(|m| m.to_string()).collect();
        assert_eq!(
            exdates,
            vec![
                "2026-12-24T19:00:00[Europe/Berlin]",
                "2026-12-31T19:00:00[Europe/Berlin]"
            ]
        );
        let overrides: Vec<(String, String, Option<&str>, &str)> = choir
            .overrides
            .iter()
            .map(|o| {
                (
                    o.recurrence_id.to_string(),
                    o.details.start.to_string(),
                    class(&o.details),
                    o.details.title.as_deref().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            overrides,
            vec![
                (
                    "2027-02-11T19:00:00[Europe/Berlin]".to_string(),
                    "2027-02-11T19:00:00[Europe/Berlin]".to_string(),
                    Some("PRIVATE"),
                    "Choir board: disciplinary talk with M. Weber"
                ),
                (
                    "2027-04-08T19:00:00[Europe/Berlin]".to_string(),
                    "2027-04-09T18:00:00[Europe/Berlin]".to_string(),
                    Some("PUBLIC"),
                    "Parish choir rehearsal (moved to Friday after Easter)"
                ),
            ]
        );

        let google = parse_feed(GOOGLE).unwrap();
        let cafe = event(&google, "7q6p5o4n3m2l1k0j9i8h7g6f5e@google.com");
        assert_eq!(cafe.overrides.len(), 2);
        assert!(cafe.overrides[1].details.cancelled, "a cancelled instance");
        let outlook = parse_feed(OUTLOOK).unwrap();
        let staff = &outlook.events[0];
        assert_eq!(
            staff.overrides[0].recurrence_id.to_string(),
            "2027-01-20T07:30:00[Europe/Berlin]"
        );
        // Only top-level VEVENTs become events: the VTODO and the VALARM do not.
        assert!(!summary(&demo).iter().any(|l| l.contains("todo-candles")));
    }

    #[test]
    fn text_is_unescaped_and_categories_collected() {
        let unicode = parse_feed(UNICODE).unwrap();
        let e = &unicode.events[0].main;
        assert_eq!(
            e.location.as_deref(),
            Some("Großer Saal; Eingang über den Hof")
        );
        assert_eq!(
            e.description.as_deref(),
            Some(
                "Programm:\n1. J. S. Bach – Präludium C-Dur\n2. Ελληνικά τραγούδια: «Καλήν εσπέραν άρχοντες»\n3. Überraschung 🎁\n\nBackslash: C:\\Noten\\Bach; Komma, Semikolon; Ende.\nZeile nach großem N."
            )
        );
        assert_eq!(
            e.categories,
            vec!["Konzert", "Schüler,innen", "Μουσική", "Weihnachten"]
        );
        let f = feed(
            "BEGIN:VEVENT\r\nUID:c\r\nDTSTART:20261201T100000Z\r\nCATEGORIES: Music , ,Parish\r\nCATEGORIES:\r\nEND:VEVENT\r\n",
        );
        assert_eq!(f.events[0].main.categories, vec!["Music", "Parish"]);
    }

    #[test]
    fn truncated_or_foreign_input_is_an_error() {
        let cases: &[(&[u8], &str)] = &[
            (TRUNCATED, "truncated"),
            (b"", "not an iCalendar"),
            (
                b"<!DOCTYPE html><html>Service unavailable</html>",
                "not an iCalendar",
            ),
            (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n", "truncated"),
        ];
        for (bytes, want) in cases {
            let err = parse_feed(bytes).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn class_is_kept_as_written() {
        let cases: &[(&str, Option<&str>)] = &[
            ("CLASS:PUBLIC\r\n", Some("PUBLIC")),
            ("", None),
            ("class:private\r\n", Some("private")),
            ("CLASS:Confidential\r\n", Some("Confidential")),
            ("CLASS:X-STAFF\r\n", Some("X-STAFF")),
            ("CLASS:PUBLIC\r\nCLASS:PRIVATE\r\n", Some("PUBLIC,PRIVATE")),
            // A VALARM's CLASS is not the event's.
            (
                "BEGIN:VALARM\r\nCLASS:PUBLIC\r\nACTION:DISPLAY\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\n",
                None,
            ),
        ];
        for (lines, want) in cases {
            let f = feed(&format!(
                "BEGIN:VEVENT\r\nUID:x\r\nDTSTART:20261201T100000Z\r\n{lines}END:VEVENT\r\n"
            ));
            assert_eq!(class(&f.events[0].main), *want, "{lines:?}");
        }
    }

    #[test]
    fn status_cancelled_is_case_insensitive() {
        for (status, want) in [
            ("STATUS:CANCELLED", true),
            ("status:Cancelled", true),
            ("STATUS:CONFIRMED", false),
            ("STATUS:TENTATIVE", false),
        ] {
            let f = feed(&format!(
                "BEGIN:VEVENT\r\nUID:x\r\nDTSTART:20261201T100000Z\r\n{status}\r\nEND:VEVENT\r\n"
            ));
            assert_eq!(f.events[0].main.cancelled, want, "{status}");
        }
    }

    #[test]
    fn times_map_to_moments() {
        const FIXED: &str = "BEGIN:VTIMEZONE\r\nTZID:Custom Plus Two\r\nBEGIN:STANDARD\r\nDTSTART:16010101T000000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0200\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n";
        // (properties, start, end)
        let cases: &[(&str, &str, &str)] = &[
            ("DTSTART;VALUE=DATE:20261224\r\n", "2026-12-24", "-"),
            (
                "DTSTART:20261224\r\nDTEND:20261226\r\n",
                "2026-12-24",
                "2026-12-26",
            ),
            (
                "DTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z\r\n",
                "2026-12-01T10:00:00Z",
                "2026-12-01T11:00:00Z",
            ),
            ("DTSTART:20261201T100000\r\n", "2026-12-01T10:00:00", "-"),
            (
                "DTSTART;TZID=Europe/Vienna:20261201T100000\r\nDURATION:PT1H30M\r\n",
                "2026-12-01T10:00:00[Europe/Vienna]",
                "2026-12-01T11:30:00[Europe/Vienna]",
            ),
            (
                "DTSTART;VALUE=DATE:20261201\r\nDURATION:P2D\r\n",
                "2026-12-01",
                "2026-12-03",
            ),
            (
                "DTSTART;VALUE=DATE:20261201\r\nDURATION:PT1H\r\n",
                "2026-12-01",
                "2026-12-02",
            ),
            (
                "DTSTART;TZID=W. Europe Standard Time:20261201T100000\r\n",
                "2026-12-01T10:00:00[Europe/Berlin]",
                "-",
            ),
            (
                "DTSTART;TZID=/mozilla.org/20050126_1/Europe/Paris:20261201T100000\r\n",
                "2026-12-01T10:00:00[Europe/Paris]",
                "-",
            ),
            // A TZID with Z: the Z wins.
            (
                "DTSTART;TZID=Europe/Berlin:20261201T100000Z\r\n",
                "2026-12-01T10:00:00Z",
                "-",
            ),
            // A TZID nothing maps: the feed's own VTIMEZONE, under its TZID.
            (
                "DTSTART;TZID=Custom Plus Two:20261201T100000\r\n",
                "2026-12-01T10:00:00[Custom Plus Two]",
                "-",
            ),
            // An IANA name in another letter case.
            (
                "DTSTART;TZID=europe/vienna:20261201T100000\r\n",
                "2026-12-01T10:00:00[Europe/Vienna]",
                "-",
            ),
            // A DATE is a date, whatever TZID it carries; blanks around a value are no value.
            (
                "DTSTART;TZID=America/Los_Angeles:20261224\r\nDURATION:PT86400S\r\n",
                "2026-12-24",
                "2026-12-25",
            ),
            (
                "DTSTART:20261201T100000Z \r\nDTEND:20261201T110000Z\r\nDURATION:PT1H\r\n",
                "2026-12-01T10:00:00Z",
                "2026-12-01T11:00:00Z",
            ),
        ];
        for (props, start, end) in cases {
            let f = feed(&format!(
                "{FIXED}BEGIN:VEVENT\r\nUID:t\r\n{props}END:VEVENT\r\n"
            ));
            assert_eq!(f.skipped, vec![], "{props:?}");
            let d = &f.events[0].main;
            let got_end = d.end.as_ref().map(|m| m.to_string()).unwrap_or("-".into());
            assert_eq!(
                (d.start.to_string(), got_end),
                (start.to_string(), end.to_string()),
                "{props:?}"
            );
        }
    }

    #[test]
    fn unreadable_events_are_skipped_with_ids_only() {
        let cases: &[(&str, SkipReason)] = &[
            ("SUMMARY:Secret\r\n", SkipReason::MissingStart),
            (
                "DTSTART:20270230T100000Z\r\nSUMMARY:Secret\r\n",
                SkipReason::InvalidTime("DTSTART"),
            ),
            (
                "DTSTART:20261201T100000Z\r\nDTEND:soon\r\nSUMMARY:Secret\r\n",
                SkipReason::InvalidTime("DTEND"),
            ),
            (
                "DTSTART:20261201T100000Z\r\nDURATION:-PT1H\r\n",
                SkipReason::InvalidTime("DURATION"),
            ),
            // Never read as UTC.
            (
                "DTSTART;TZID=Mars/Olympus_Mons:20261201T100000\r\nSUMMARY:Secret\r\n",
                SkipReason::UnknownTimeZone("Mars/Olympus_Mons".into()),
            ),
            // calcard guesses Etc/GMT-3 from the label; nothing defines it, so: unknown.
            (
                "DTSTART;TZID=\"(UTC+03:00) Elsewhere\":20261201T100000\r\n",
                SkipReason::UnknownTimeZone("(UTC+03:00) Elsewhere".into()),
            ),
            // Date-times that cannot be read exactly.
            (
                "DTSTART:19970901T130000Z\r\nDTEND:19970901T1300Z\r\nSUMMARY:Secret\r\n",
                SkipReason::InvalidTime("DTEND"),
            ),
            (
                "DTSTART;VALUE=DATE-TIME:20031114T170000\r\nDTEND;VALUE=DATE-TIME:20031114T18300\r\n",
                SkipReason::InvalidTime("DTEND"),
            ),
            (
                "DTSTART;;VALUE=DATE-TIME:20140409T093000\r\n",
                SkipReason::InvalidTime("DTSTART"),
            ),
            (
                "DTSTART;VALUE=DATE-TIME:20061007\r\n",
                SkipReason::InvalidTime("DTSTART"),
            ),
            (
                "DTSTART:20140829T080000Z\r\nDTSTART:20140829T100000Z\r\n",
                SkipReason::InvalidTime("DTSTART"),
            ),
            (
                "DTSTART;VALUE=DATE:20190310\r\nDTEND;VALUE=DATE:20190311\r\nDURATION:PT0S\r\n",
                SkipReason::InvalidTime("DURATION"),
            ),
            (
                "DTSTART;TZID=:20150826T090000\r\n",
                SkipReason::UnknownTimeZone(String::new()),
            ),
            (
                "DTSTART:19970101T180000Z\r\nRDATE;VALUE=PERIOD:19970101/19970102\r\n",
                SkipReason::InvalidTime("RDATE"),
            ),
            // Rules that cannot be read exactly are never repaired.
            (
                "DTSTART:20261201T100000Z\r\nRRULE:FREQ=DAILY;UNTL=20270101\r\n",
                SkipReason::InvalidRecurrence,
            ),
            (
                "DTSTART;VALUE=DATE:20231002\r\nRRULE:FREQ=WEEKLY;UNTIL=20240331;COUNT=-1;INTERVAL=4;BYDAY=MO\r\n",
                SkipReason::InvalidRecurrence,
            ),
            (
                "DTSTART:20261201T100000Z\r\nRRULE:FREQ=SOMETIMES\r\n",
                SkipReason::InvalidRecurrence,
            ),
            (
                "DTSTART:20261201T100000Z\r\nRRULE:FREQ=MONTHLY;BYMONTHDAY=40\r\n",
                SkipReason::InvalidRecurrence,
            ),
            (
                "DTSTART:20261201T100000Z\r\nRRULE:FREQ=DAILY\r\nEXRULE:FREQ=WEEKLY;FOO=1\r\n",
                SkipReason::InvalidRecurrence,
            ),
            (
                "DTSTART:20261201T100000Z\r\nRRULE:FREQ=DAILY\r\nEXDATE:tomorrow\r\n",
                SkipReason::InvalidTime("EXDATE"),
            ),
        ];
        const NOWHERE: &str = "BEGIN:VTIMEZONE\r\nTZID:(UTC+01:00) Nowhere\r\nBEGIN:STANDARD\r\nDTSTART:16011028T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:16010325T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n";
        for (props, reason) in cases {
            let f = feed(&format!(
                "{NOWHERE}BEGIN:VEVENT\r\nUID:bad-1\r\n{props}END:VEVENT\r\n"
            ));
            assert!(f.events.is_empty(), "{props:?}");
            assert_eq!(
                f.skipped,
                vec![Skipped {
                    key: Some(SourceKey("bad-1".into())),
                    reason: reason.clone()
                }],
                "{props:?}"
            );
            assert!(!reason.to_string().contains("Secret"));
        }
    }

    const MASTER: &str = "BEGIN:VEVENT\r\nUID:s\r\nDTSTART;TZID=Europe/Berlin:20261203T190000\r\nRRULE:FREQ=WEEKLY\r\nSUMMARY:Choir\r\nEND:VEVENT\r\n";

    fn override_of(rid: &str, extra: &str) -> String {
        format!(
            "BEGIN:VEVENT\r\nUID:s\r\nRECURRENCE-ID{rid}\r\nDTSTART;TZID=Europe/Berlin:20261210T200000\r\n{extra}END:VEVENT\r\n"
        )
    }

    #[test]
    fn a_series_is_kept_or_left_out_whole() {
        // An override in UTC is put in the master's zone.
        let f = feed(&format!(
            "{}{MASTER}",
            override_of(":20261210T180000Z", "CLASS:PRIVATE\r\n")
        ));
        assert_eq!(f.events.len(), 1);
        assert_eq!(
            f.events[0].overrides[0].recurrence_id.to_string(),
            "2026-12-10T19:00:00[Europe/Berlin]"
        );

        let left_out: &[(String, SkipReason)] = &[
            (
                override_of(";TZID=Mars/Base:20261210T190000", ""),
                SkipReason::UnknownTimeZone("Mars/Base".into()),
            ),
            (
                override_of(";TZID=Europe/Berlin:20261210T190000", "DTEND:never\r\n"),
                SkipReason::InvalidTime("DTEND"),
            ),
        ];
        for (overrides, reason) in left_out {
            let f = feed(&format!("{MASTER}{overrides}"));
            assert!(f.events.is_empty(), "{reason}");
            assert_eq!(
                f.skipped,
                vec![Skipped {
                    key: Some(SourceKey("s".into())),
                    reason: reason.clone()
                }]
            );
        }
    }

    #[test]
    fn keys_for_duplicates_orphans_and_missing_uids() {
        // An override whose master is not in the feed stands alone.
        let f = feed(&override_of(";TZID=Europe/Berlin:20261210T190000", ""));
        assert_eq!(f.events[0].key.0, "s#2026-12-10T19:00:00[Europe/Berlin]");
        assert!(f.events[0].recurrence.is_none());

        // No UID: a hash of the text, stable while the text is.
        let nouid = "BEGIN:VEVENT\r\nDTSTART:20261201T100000Z\r\nSUMMARY:Walk\r\nEND:VEVENT\r\n";
        let a = feed(nouid);
        let b = parse_feed(
            format!(
                "BEGIN:VCALENDAR\n{}END:VCALENDAR\n",
                nouid.replace("\r\n", "\n")
            )
            .as_bytes(),
        )
        .unwrap();
        let c = feed(&nouid.replace("Walk", "Run"));
        assert!(a.events[0].key.0.starts_with("nouid:"));
        assert_eq!(a.events[0].key.0.len(), "nouid:".len() + 64);
        assert_eq!(
            a.events[0].key, b.events[0].key,
            "line ends do not change the key"
        );
        assert_ne!(a.events[0].key, c.events[0].key);
        // Two identical VEVENTs without UID are one event.
        let two = feed(&format!("{nouid}{nouid}"));
        assert_eq!(two.events.len(), 1);
        assert_eq!(two.skipped, vec![]);
    }

    #[test]
    fn copies_of_one_event_are_one_item_marked_by_every_copy() {
        use crate::policy::{Visibility, is_public};
        let copy = |seq: &str, stamp: &str, class: &str, title: &str| {
            format!(
                "BEGIN:VEVENT\r\nUID:d\r\nSEQUENCE:{seq}\r\nDTSTAMP:{stamp}\r\nDTSTART:20261201T100000Z\r\n{class}SUMMARY:{title}\r\nEND:VEVENT\r\n"
            )
        };
        // (copies, title that wins, published as public)
        let cases = [
            (
                vec![
                    copy("0", "20261101T000000Z", "CLASS:PUBLIC\r\n", "A"),
                    copy("1", "20261101T000000Z", "CLASS:PRIVATE\r\n", "B"),
                ],
                "B",
                false,
            ),
            (
                vec![
                    copy("1", "20261101T000000Z", "CLASS:PRIVATE\r\n", "A"),
                    copy("0", "20261101T000000Z", "", "B"),
                ],
                "A",
                false,
            ),
            (
                vec![
                    copy("1", "20261101T000000Z", "", "A"),
                    copy("1", "20261102T000000Z", "CLASS:PUBLIC\r\n", "B"),
                ],
                "B",
                true,
            ),
            (
                vec![
                    copy("1", "20261102T000000Z", "", "A"),
                    copy("1", "20261102T000000Z", "", "B"),
                ],
                "B",
                true,
            ),
            (
                vec![
                    copy("3", "20261101T000000Z", "", "A"),
                    copy("1", "20261109T000000Z", "STATUS:CANCELLED\r\n", "B"),
                ],
                "A",
                false,
            ),
        ];
        for (copies, title, public) in cases {
            let f = feed(&copies.concat());
            assert_eq!(f.events.len(), 1);
            assert_eq!(f.skipped, vec![]);
            let main = &f.events[0].main;
            assert_eq!(main.title.as_deref(), Some(title));
            assert_eq!(
                is_public(&main.marking, Visibility::Private) && !main.cancelled,
                public,
                "{copies:?}"
            );
        }
    }

    #[test]
    fn thisandfuture_splits_the_series_where_it_applies() {
        let f = feed(
            "BEGIN:VEVENT\r\nUID:t\r\nDTSTART:20261201T120000Z\r\nDTEND:20261201T140000Z\r\nRRULE:FREQ=DAILY;INTERVAL=2;UNTIL=20261220T120000Z\r\nRDATE:20261210T090000Z\r\nEXDATE:20261213T120000Z\r\nSUMMARY:Original\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nUID:t\r\nRECURRENCE-ID;RANGE=THISANDFUTURE:20261209T120000Z\r\nDTSTART:20261209T150000Z\r\nDTEND:20261209T160000Z\r\nSUMMARY:Later\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nUID:t\r\nRECURRENCE-ID:20261211T120000Z\r\nDTSTART:20261211T170000Z\r\nSUMMARY:Single\r\nEND:VEVENT\r\n",
        );
        assert_eq!(f.skipped, vec![]);
        let shown: Vec<String> = f
            .events
            .iter()
            .map(|e| {
                let rec = e.recurrence.clone().unwrap_or_default();
                format!(
                    "{} {} {} {:?} rdate {:?} exdate {:?} overrides {:?}",
                    e.key,
                    e.main.start,
                    e.main.title.as_deref().unwrap_or(""),
                    rec.rules,
                    rec.rdates.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
                    rec.exdates
                        .iter()
                        .map(|m| m.to_string())
                        .collect::<Vec<_>>(),
                    e.overrides
                        .iter()
                        .map(|o| o.recurrence_id.to_string())
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                "t 2026-12-01T12:00:00Z Original [\"FREQ=DAILY;UNTIL=20261207T120000Z;INTERVAL=2\"] rdate [] exdate [] overrides []",
                // Moved by +3 h: the rule, the RDATE, the EXDATE and the single override with it.
                "t#2026-12-09T12:00:00Z/future 2026-12-09T15:00:00Z Later [\"FREQ=DAILY;UNTIL=20261219T150000Z;INTERVAL=2\"] rdate [\"2026-12-10T12:00:00Z\"] exdate [\"2026-12-13T15:00:00Z\"] overrides [\"2026-12-11T15:00:00Z\"]",
            ]
        );
        // A moved part whose rule depends on the day cannot be split exactly: withheld.
        let f = feed(
            "BEGIN:VEVENT\r\nUID:w\r\nDTSTART:20261201T120000Z\r\nRRULE:FREQ=WEEKLY;BYDAY=TU,TH\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nUID:w\r\nRECURRENCE-ID;RANGE=THISANDFUTURE:20261208T120000Z\r\nDTSTART:20261209T120000Z\r\nEND:VEVENT\r\n",
        );
        assert!(f.events.is_empty());
        assert_eq!(f.skipped[0].reason, SkipReason::ThisAndFuture);
    }

    #[test]
    fn floating_times_take_the_x_wr_timezone() {
        let calendar = |wr: &str| {
            parse_feed(
                format!(
                    "BEGIN:VCALENDAR\r\n{wr}BEGIN:VEVENT\r\nUID:x\r\nDTSTART:20261201T100000\r\nDTEND:20261201T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
                )
                .as_bytes(),
            )
            .unwrap()
        };
        let f = calendar("X-WR-TIMEZONE:Europe/Vienna\r\n");
        assert_eq!(
            f.events[0].main.start.to_string(),
            "2026-12-01T10:00:00[Europe/Vienna]"
        );
        assert_eq!(
            f.events[0].main.end.as_ref().unwrap().to_string(),
            "2026-12-01T10:00:00Z"
        );
        assert_eq!(
            calendar("").events[0].main.start.to_string(),
            "2026-12-01T10:00:00"
        );
        let f = calendar("X-WR-TIMEZONE:Mars/Base\r\n");
        assert_eq!(
            f.skipped[0].reason,
            SkipReason::UnknownTimeZone("Mars/Base".into())
        );
    }

    #[test]
    fn empty_rules_are_none_and_exrules_are_kept() {
        let f = feed(
            "BEGIN:VEVENT\r\nUID:e\r\nDTSTART;VALUE=DATE:20261225\r\nRRULE:\r\nEND:VEVENT\r\n",
        );
        assert_eq!(f.events[0].recurrence, None);
        let f = feed(
            "BEGIN:VEVENT\r\nUID:e\r\nDTSTART:20261201T100000Z\r\nRRULE:FREQ=DAILY\r\nEXRULE:FREQ=WEEKLY\r\nEND:VEVENT\r\n",
        );
        assert_eq!(
            f.events[0].recurrence.as_ref().unwrap().exrules,
            vec!["FREQ=WEEKLY"]
        );
    }

    #[test]
    fn rdate_and_exdate_lists_take_the_series_form() {
        let f = feed(
            "BEGIN:VEVENT\r\nUID:r\r\nDTSTART;TZID=Europe/Berlin:20261201T100000\r\nRRULE:FREQ=DAILY;COUNT=10\r\n\
             EXDATE;TZID=Europe/Berlin:20261202T100000,20261203T100000\r\nEXDATE:20261204T090000Z\r\n\
             RDATE;VALUE=DATE:20261224\r\nRDATE;VALUE=PERIOD:20261225T090000Z/20261225T100000Z\r\nEND:VEVENT\r\n",
        );
        let rec = f.events[0].recurrence.clone().unwrap();
        let text = |v: &[Moment]| v.iter().map(|m| m.to_string()).collect::<Vec<_>>();
        assert_eq!(
            text(&rec.exdates),
            vec![
                "2026-12-02T10:00:00[Europe/Berlin]",
                "2026-12-03T10:00:00[Europe/Berlin]",
                "2026-12-04T10:00:00[Europe/Berlin]"
            ]
        );
        assert_eq!(
            text(&rec.rdates),
            vec!["2026-12-24T10:00:00[Europe/Berlin]"]
        );
        // A period keeps its own end.
        assert_eq!(
            rec.periods
                .iter()
                .map(|p| format!("{}/{}", p.start, p.end))
                .collect::<Vec<_>>(),
            vec!["2026-12-25T10:00:00[Europe/Berlin]/2026-12-25T10:00:00Z"]
        );
    }

    #[test]
    fn unquoted_tzid_with_commas_is_joined_again() {
        let f = feed(
            "BEGIN:VTIMEZONE\r\nTZID:Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna\r\nBEGIN:STANDARD\r\nDTSTART:16011028T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n\
             BEGIN:VEVENT\r\nUID:u\r\nDTSTART;TZID=Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna:20261214T190000\r\nEND:VEVENT\r\n",
        );
        assert_eq!(f.skipped, vec![]);
        assert_eq!(
            f.events[0].main.start.to_string(),
            "2026-12-14T19:00:00[Europe/Berlin]"
        );
    }

    #[test]
    fn demo_series_keeps_local_time_across_dst_and_drops_exdates() {
        use crate::recurrence::instances;
        let demo = parse_feed(DEMO).unwrap();
        let choir = event(&demo, "choir-rehearsal-2026@st-martin.example.org");
        let utc = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        let all = instances(
            &choir.main.start,
            &choir.main.effective_end(),
            choir.recurrence.as_ref().unwrap(),
            utc("2026-11-29T00:00:00Z"),
            utc("2027-11-29T00:00:00Z"),
            1000,
        )
        .unwrap();
        let starts: Vec<String> = all.iter().map(|i| i.start.to_string()).collect();
        // Thursdays 3 Dec 2026 .. 24 Jun 2027 (UNTIL inclusive) without 24 and 31 Dec.
        assert_eq!(starts.len(), 30 - 2);
        assert_eq!(
            starts.first().unwrap(),
            "2026-12-03T19:00:00[Europe/Berlin]"
        );
        assert_eq!(starts.last().unwrap(), "2027-06-24T19:00:00[Europe/Berlin]");
        assert!(
            !starts
                .iter()
                .any(|s| s.starts_with("2026-12-24") || s.starts_with("2026-12-31"))
        );
        let around_dst: Vec<(String, String)> = all
            .iter()
            .filter(|i| {
                i.start.naive().date().to_string().starts_with("2027-03-25")
                    || i.start.naive().date().to_string().starts_with("2027-04-01")
            })
            .map(|i| (i.start.to_string(), i.start.to_utc().to_rfc3339()))
            .collect();
        assert_eq!(
            around_dst,
            vec![
                (
                    "2027-03-25T19:00:00[Europe/Berlin]".to_string(),
                    "2027-03-25T18:00:00+00:00".to_string()
                ),
                (
                    "2027-04-01T19:00:00[Europe/Berlin]".to_string(),
                    "2027-04-01T17:00:00+00:00".to_string()
                ),
            ]
        );
        // Each override names an instance of the series.
        for o in &choir.overrides {
            assert!(all.iter().any(|i| i.recurrence_id == o.recurrence_id));
        }
    }
}
