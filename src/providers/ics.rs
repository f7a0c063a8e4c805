//! The `ics` provider: a feed (URL or file) as a source, a file as a target.
//!
//! As a source, a URL is fetched with `If-None-Match` / `If-Modified-Since` from the last
//! answer, so an unchanged feed costs one request and no body; servers that ignore those
//! headers are caught by the content hash. A feed cut short (fewer bytes than announced, a
//! dropped connection, no `END:VCALENDAR`) is a failed read, never a shorter calendar. A file
//! is never held whole: it is hashed in pieces (unchanged, the read ends there), scanned, and
//! read group by group through the one open file; rewritten in place meanwhile, the read fails.
//!
//! As a target, the whole file is rendered from the published set and replaced atomically
//! (temp file in the same folder, fsync, rename, fsync of the folder). The output order is
//! stable and DTSTAMPs change only with content, so an unchanged calendar renders
//! byte-identical and the file is then not touched at all. A file that exists but was not
//! written by calsync for this pair is never overwritten (the pair fails, naming it); a
//! symlink is written through to the file it names, which is replaced in its own folder.
//!
//! Logs name a feed by the pair, the key and the URL's origin only: a private iCal address
//! carries its secret in the path.

use super::{
    Applied, OwnedEvent, PageSink, ProviderError, PublishedSet, ReadEnd, Source, SourcePage,
    Target, Write, WriteError,
};
use crate::config::{IcsLocation, IcsSettings, Secret};
use crate::fsutil::{AtomicFile, HashingWriter, file_sha256};
use crate::hashing::sha256_hex;
use crate::model::Marking;
use crate::model::SourceKey;
use crate::net::{Auth, Http, Request};
use crate::plan::ReadKind;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Items handed to the engine per page: what one staging transaction holds, and (with an
/// index of where the feed's events lie) what a read holds in memory at once.
const PAGE: usize = 500;

/// What the source remembers between runs.
///
/// Besides what tells a feed unchanged as a whole, it remembers each group of VEVENTs (one
/// UID) by a digest of its bytes and the items it gave, so that when 1 % of a 100,000-event
/// feed changes, 1 % is read again: a group whose bytes are the same gives the same items
/// (reported unchanged). That holds only for the same publishing rules and the same window,
/// so the memory carries a fingerprint of the rules and lives in the cursor, which the engine
/// keeps only after everything it covers was applied and uses only on the day it was made
/// (the window moves daily).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FeedCursor {
    /// SHA-256 of the feed's bytes.
    hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_modified: Option<String>,
    /// What shaped the items the groups gave (rules, window, calsync's version).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    rules: String,
    /// The groups that gave one item keyed by their own UID: base64 of `(id hash, digest)`
    /// pairs, 16 bytes each, sorted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    groups: String,
    /// The other groups (a series split by THISANDFUTURE, overrides without their master):
    /// id hash, digest, the items they gave.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    split: Vec<(u64, u64, Vec<String>)>,
}

/// The groups a cursor remembers, ready for lookups.
#[derive(Default)]
struct Remembered {
    regular: Vec<(u64, u64)>,
    split: std::collections::HashMap<u64, (u64, Vec<String>)>,
}

impl Remembered {
    fn of(cursor: &FeedCursor, rules: &str) -> Remembered {
        use base64::Engine as _;
        if cursor.rules != rules {
            return Remembered::default();
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&cursor.groups)
            .unwrap_or_default();
        let regular = bytes
            .chunks_exact(16)
            .map(|c| {
                (
                    u64::from_be_bytes(c[..8].try_into().expect("8 bytes")),
                    u64::from_be_bytes(c[8..].try_into().expect("8 bytes")),
                )
            })
            .collect();
        let split = cursor
            .split
            .iter()
            .map(|(h, d, keys)| (*h, (*d, keys.clone())))
            .collect();
        Remembered { regular, split }
    }

    /// The items a group with this id and digest gave last time, if it was read then.
    fn known(&self, id: &str, digest: u64) -> Option<Vec<SourceKey>> {
        let hash = crate::ical::id_hash(id);
        if let Some((d, keys)) = self.split.get(&hash) {
            return (*d == digest).then(|| keys.iter().cloned().map(SourceKey).collect());
        }
        let at = self.regular.binary_search_by_key(&hash, |(h, _)| *h).ok()?;
        (self.regular[at].1 == digest).then(|| vec![SourceKey(id.to_string())])
    }

    /// The memory of the groups just read, for the next cursor.
    fn store(seen: Vec<crate::ical::GroupSeen>, cursor: &mut FeedCursor) {
        use base64::Engine as _;
        let mut regular: Vec<(u64, u64)> = Vec::new();
        for g in seen {
            if g.regular {
                regular.push((g.id_hash, g.digest));
            } else {
                cursor.split.push((
                    g.id_hash,
                    g.digest,
                    g.keys.into_iter().map(|k| k.0).collect(),
                ));
            }
        }
        regular.sort_unstable();
        // One id twice would make lookups ambiguous: such ids are not remembered.
        let mut packed = Vec::with_capacity(regular.len() * 16);
        for (i, (h, d)) in regular.iter().enumerate() {
            let dup =
                (i > 0 && regular[i - 1].0 == *h) || regular.get(i + 1).is_some_and(|n| n.0 == *h);
            if !dup {
                packed.extend_from_slice(&h.to_be_bytes());
                packed.extend_from_slice(&d.to_be_bytes());
            }
        }
        cursor.groups = base64::engine::general_purpose::STANDARD.encode(packed);
    }
}

/// An .ics feed read from a URL or a file.
pub struct IcsSource {
    settings: IcsSettings,
    http: Http,
    pair: String,
    /// A fingerprint of what decides which items a group of VEVENTs gives and how the policy
    /// reads them (see [`FeedCursor`]).
    rules: String,
}

impl IcsSource {
    pub fn new(settings: IcsSettings, ctx: &super::Context<'_>) -> Self {
        let pair = ctx.pair;
        let rules = sha256_hex(
            format!(
                "{}\0{:?}\0{:?}",
                env!("CARGO_PKG_VERSION"),
                pair.rules,
                pair.window
            )
            .as_bytes(),
        );
        IcsSource {
            settings,
            http: ctx.http.clone(),
            pair: pair.name.clone(),
            rules,
        }
    }

    /// The feed's body, or `None` when the server says it has not changed (304).
    fn fetch(
        &self,
        url: &Secret,
        cursor: Option<&FeedCursor>,
    ) -> Result<Option<(Vec<u8>, FeedCursor)>, ProviderError> {
        let mut req = Request::get(url.expose()).header("Accept", "text/calendar");
        if let Some(c) = cursor {
            if let Some(etag) = &c.etag {
                req = req.header("If-None-Match", etag.clone());
            }
            if let Some(lm) = &c.last_modified {
                req = req.header("If-Modified-Since", lm.clone());
            }
        }
        if let (Some(user), Some(password)) = (&self.settings.username, &self.settings.password) {
            req = req.auth(Auth::Basic {
                user: user.clone(),
                password: password.expose().to_string(),
            });
        }
        let resp = self
            .http
            .send(&req)
            .map_err(|e| ProviderError::from_net(e, &self.describe()))?;
        if resp.status == 304 {
            return Ok(None);
        }
        let cursor = FeedCursor {
            hash: sha256_hex(&resp.body),
            etag: resp.header("etag").map(str::to_string),
            last_modified: resp.header("last-modified").map(str::to_string),
            ..Default::default()
        };
        Ok(Some((resp.body, cursor)))
    }

    fn cannot_read(&self, e: impl std::fmt::Display) -> ProviderError {
        ProviderError::Failed {
            what: self.describe(),
            detail: format!("cannot read: {e}"),
        }
    }

    /// The feed as logs may name it: the pair, the key, and a path or the URL's origin (a
    /// private iCal address carries its secret in the path and query).
    fn describe(&self) -> String {
        match &self.settings.location {
            IcsLocation::Path(p) => format!("pair '{}': source.path {}", self.pair, p.display()),
            IcsLocation::Url(u) => format!(
                "pair '{}': source.url (feed at {})",
                self.pair,
                crate::net::endpoint_of(u.expose())
            ),
        }
    }
}

impl Source for IcsSource {
    fn read(
        &mut self,
        cursor: Option<&str>,
        sink: &mut PageSink<'_>,
    ) -> Result<ReadEnd, ProviderError> {
        let previous: Option<FeedCursor> = cursor.and_then(|c| serde_json::from_str(c).ok());
        let unchanged = || ReadEnd {
            kind: ReadKind::Unchanged,
            cursor: cursor.map(str::to_string),
        };
        match &self.settings.location {
            IcsLocation::Path(path) => {
                // A file is never held whole: hashed in pieces (an unchanged one ends the read
                // there), then scanned, then read group by group through the same open file.
                let file = std::fs::File::open(path).map_err(|e| self.cannot_read(e))?;
                let stamp = |f: &std::fs::File| {
                    f.metadata()
                        .map(|m| (m.len(), m.modified().ok()))
                        .map_err(|e| self.cannot_read(e))
                };
                let before = stamp(&file)?;
                let hash = crate::fsutil::read_sha256(&file).map_err(|e| self.cannot_read(e))?;
                if previous.as_ref().is_some_and(|p| p.hash == hash) {
                    return Ok(unchanged());
                }
                let next = FeedCursor {
                    hash,
                    ..Default::default()
                };
                let end =
                    self.read_pages(&crate::ical::FeedFile(&file), previous.as_ref(), next, sink)?;
                if stamp(&file)? != before {
                    // Rewritten in place while it was read: what was read may mix two
                    // versions. The run fails (nothing is planned or deleted) and the next
                    // one reads the file again.
                    return Err(self.cannot_read(
                        "the file changed while it was read; it is read again on the next run",
                    ));
                }
                Ok(end)
            }
            IcsLocation::Url(url) => {
                let Some((body, next)) = self.fetch(url, previous.as_ref())? else {
                    return Ok(unchanged());
                };
                if let Some(prev) = previous.as_ref().filter(|p| p.hash == next.hash) {
                    // The server ignored the conditional headers: same bytes, same memory.
                    let kept = FeedCursor {
                        rules: prev.rules.clone(),
                        groups: prev.groups.clone(),
                        split: prev.split.clone(),
                        ..next
                    };
                    return Ok(ReadEnd {
                        kind: ReadKind::Unchanged,
                        cursor: Some(serde_json::to_string(&kept).expect("cursors serialise")),
                    });
                }
                self.read_pages(&body.as_slice(), previous.as_ref(), next, sink)
            }
        }
    }
}

impl IcsSource {
    /// Reads the feed page by page into `sink`: what is held at once is an index of where
    /// its events lie and one page, not the whole calendar parsed (nor, for a file, its
    /// bytes). The feed's structure is checked whole before the first page.
    fn read_pages(
        &self,
        bytes: &dyn crate::ical::FeedBytes,
        previous: Option<&FeedCursor>,
        next: FeedCursor,
        sink: &mut PageSink<'_>,
    ) -> Result<ReadEnd, ProviderError> {
        let remembered = previous
            .map(|p| Remembered::of(p, &self.rules))
            .unwrap_or_default();
        let mut seen = Vec::new();
        let known = |id: &str, digest: u64| remembered.known(id, digest);
        crate::ical::read_feed(bytes, PAGE, &known, |feed: crate::ical::Feed| {
            seen.extend(feed.seen);
            sink(SourcePage {
                events: feed.events,
                removed: vec![],
                skipped: feed
                    .skipped
                    .into_iter()
                    .map(|s| (s.key, s.reason.to_string()))
                    .collect(),
                unchanged: feed.unchanged,
            })
        })
        .map_err(|e| match e {
            crate::ical::FeedError::Ical(e) => ProviderError::Failed {
                what: self.describe(),
                detail: e.to_string(),
            },
            crate::ical::FeedError::Read(e) => self.cannot_read(e),
            crate::ical::FeedError::Sink(e) => e,
        })?;
        let mut next = FeedCursor {
            rules: self.rules.clone(),
            ..next
        };
        Remembered::store(seen, &mut next);
        Ok(ReadEnd {
            kind: ReadKind::Full,
            cursor: Some(serde_json::to_string(&next).expect("cursors serialise")),
        })
    }
}

/// An .ics file calsync writes whole.
pub struct IcsTarget<'a> {
    path: PathBuf,
    name: Option<String>,
    pair: String,
    /// Where the record of the last file written lives (see [`Written`]).
    store: &'a crate::store::Store,
}

/// What calsync remembers of the file it last wrote: enough to tell, without reading 90 MB,
/// that the file is still exactly that one (same inode, size and modification time) and that
/// rendering again would give the same bytes (same content generation of the published set
/// and the same renderer). Kept in the state file's cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Written {
    ino: u64,
    len: u64,
    mtime_ns: i128,
    digest: String,
    /// calsync's version and the calendar name: what else shapes the bytes.
    renderer: String,
}

impl<'a> IcsTarget<'a> {
    /// # Errors
    /// A target that is not a file path.
    pub fn new(settings: IcsSettings, ctx: &super::Context<'a>) -> Result<Self, ProviderError> {
        let pair = &ctx.pair.name;
        match settings.location {
            IcsLocation::Path(path) => Ok(IcsTarget {
                path,
                name: settings.name.or_else(|| Some(pair.to_string())),
                pair: pair.to_string(),
                store: ctx.store,
            }),
            IcsLocation::Url(_) => Err(ProviderError::Config(format!(
                "pair '{pair}': an ics target must be a path"
            ))),
        }
    }

    fn record_key(&self) -> String {
        format!(
            "ics.written.{}",
            sha256_hex(
                format!(
                    "{}\0{}",
                    self.pair,
                    crate::fsutil::real_path(&self.path).display()
                )
                .as_bytes()
            )
        )
    }

    fn renderer(&self) -> String {
        format!(
            "{}\0{}",
            env!("CARGO_PKG_VERSION"),
            self.name.as_deref().unwrap_or("")
        )
    }

    /// The file as it is on disk now (`None` when there is none).
    fn on_disk(&self) -> Option<(u64, u64, i128)> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&self.path).ok()?;
        Some((
            m.ino(),
            m.len(),
            i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        ))
    }

    /// The record of the file calsync last wrote, when the file on disk is still that file.
    fn still_written(&self) -> Option<Written> {
        let record: Written = self
            .store
            .cached(&self.record_key(), i64::MIN)
            .ok()
            .flatten()
            .and_then(|json| serde_json::from_str(&json).ok())?;
        let (ino, len, mtime_ns) = self.on_disk()?;
        (record.ino == ino && record.len == len && record.mtime_ns == mtime_ns).then_some(record)
    }

    fn remember(&self, digest: &str) {
        let Some((ino, len, mtime_ns)) = self.on_disk() else {
            return;
        };
        let record = Written {
            ino,
            len,
            mtime_ns,
            digest: digest.to_string(),
            renderer: self.renderer(),
        };
        let json = serde_json::to_string(&record).expect("a record serialises");
        if let Err(e) = self.store.cache(&self.record_key(), &json, i64::MAX) {
            log::warn!(event = "state.error", pair = self.pair.as_str(); "{e}");
        }
    }

    fn failed(&self, detail: impl std::fmt::Display) -> ProviderError {
        ProviderError::Failed {
            what: format!("pair '{}': target.path {}", self.pair, self.path.display()),
            detail: detail.to_string(),
        }
    }

    /// Refuses a file at the target path that calsync did not write for this pair: its
    /// PRODID is not calsync's, or one of its events does not carry this pair's tag, or it
    /// is not iCalendar at all. An empty file, and a calsync file with no event, hold nothing
    /// to lose and are taken as this pair's.
    fn check_ours(&self) -> Result<(), ProviderError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.failed(format!("cannot read: {e}"))),
        };
        if bytes.is_empty() {
            return Ok(());
        }
        let why = match crate::ical::outline(&bytes) {
            Err(_) => Some("it is not an iCalendar file".to_string()),
            Ok(o)
                if !o
                    .prodid
                    .as_deref()
                    .is_some_and(|p| p.starts_with("-//calsync//")) =>
            {
                Some(format!(
                    "it was not written by calsync ({} events)",
                    o.vevents.len()
                ))
            }
            Ok(o) => {
                // The tag is on a series' master; its overrides belong to it by UID.
                let tagged: std::collections::HashSet<&str> = o
                    .vevents
                    .iter()
                    .filter(|v| v.recurrence_id.is_none())
                    .filter(|v| {
                        v.tag
                            .as_deref()
                            .is_some_and(|t| crate::hashing::is_pair_tag(&self.pair, t))
                    })
                    .filter_map(|v| v.uid.as_deref())
                    .collect();
                let foreign = o
                    .vevents
                    .iter()
                    .filter(|v| !v.uid.as_deref().is_some_and(|u| tagged.contains(u)))
                    .count();
                (foreign > 0).then(|| {
                    format!(
                        "{foreign} of its {} events were not written by calsync for this pair",
                        o.vevents.len()
                    )
                })
            }
        };
        match why {
            None => Ok(()),
            Some(why) => Err(self.failed(format!(
                "the file exists and {why}; it is left as it is: move it aside or choose \
                 another path"
            ))),
        }
    }

    /// Renders the whole published set into `out`; returns the SHA-256 and size written.
    ///
    /// Reading the items from the state file and rendering them are about equal halves of
    /// writing a large calendar (at 100,000 events, most of an update run), so a second
    /// thread renders while this one reads; a bounded channel keeps memory flat.
    fn render(
        &self,
        published: &dyn PublishedSet,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<(String, u64), ProviderError> {
        let zones: Vec<chrono_tz::Tz> = published
            .zones()?
            .iter()
            .filter_map(|z| z.parse().ok())
            .collect();
        let name = self.name.as_deref();
        let (items, received) = std::sync::mpsc::sync_channel::<crate::ical::Published>(256);
        std::thread::scope(|scope| {
            let renderer = scope.spawn(move || -> std::io::Result<(String, u64)> {
                let mut hashing = HashingWriter::new(std::io::BufWriter::new(out));
                {
                    let mut writer = crate::ical::CalendarWriter::new(&mut hashing, name, &zones)?;
                    for item in received {
                        writer.item(&item)?;
                    }
                    writer.finish()?;
                }
                let (_, digest, size) = hashing.finish()?;
                Ok((digest, size))
            });
            // A send fails only when the renderer stopped on an error, reported below.
            let read = published.for_each(&mut |item| {
                items
                    .send(item)
                    .map_err(|_| self.failed("the renderer stopped"))
            });
            drop(items); // the end of the set: the renderer finishes the calendar
            let rendered = renderer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            match (read, rendered) {
                (_, Err(e)) => Err(self.failed(e)),
                (Err(e), Ok(_)) => Err(e),
                (Ok(()), Ok(done)) => Ok(done),
            }
        })
    }
}

impl Target for IcsTarget<'_> {
    fn prepare(&mut self) -> Result<(), ProviderError> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(self.failed(format!("the folder {} does not exist", dir.display())));
        }
        if self.still_written().is_some() {
            // Exactly the file calsync wrote last: ours, without reading it.
            return Ok(());
        }
        self.check_ours()
    }

    fn apply(&mut self, writes: &[Write]) -> Vec<Result<Applied, WriteError>> {
        // The file is rendered whole in `finish`; a write only changes what it will contain.
        writes
            .iter()
            .map(|w| {
                Ok(match w {
                    Write::Create { event, .. } | Write::Update { event, .. } => Applied {
                        target_id: event.uid.clone(),
                        etag: None,
                    },
                    Write::Delete { target_id, .. } => Applied {
                        target_id: target_id.clone(),
                        etag: None,
                    },
                })
            })
            .collect()
    }

    fn preview(&mut self, published: &dyn PublishedSet) -> Result<(), ProviderError> {
        let existing =
            file_sha256(&self.path).map_err(|e| self.failed(format!("cannot read: {e}")))?;
        let (digest, _) = self.render(published, &mut std::io::sink())?;
        if existing.as_deref() != Some(digest.as_str()) {
            log::info!(event = "target.would_write", path = self.path.display().to_string().as_str();
                       "the published calendar would change");
        }
        Ok(())
    }

    fn finish(&mut self, published: &dyn PublishedSet) -> Result<(), ProviderError> {
        if !published.changed()
            && self
                .still_written()
                .is_some_and(|r| r.renderer == self.renderer())
        {
            // Nothing changed in what is published, and the file is the one calsync wrote
            // from it: rendering would give the same bytes. (A no-op run at 100,000 events
            // would otherwise render and hash 90 MB.)
            log::debug!(event = "target.unchanged", pair = self.pair.as_str();
                        "nothing published changed and the file is as calsync wrote it");
            return Ok(());
        }
        // The file as calsync wrote it has the digest recorded then; only another file is read.
        let existing = match self.still_written() {
            Some(record) => Some(record.digest),
            None => {
                file_sha256(&self.path).map_err(|e| self.failed(format!("cannot read: {e}")))?
            }
        };
        let mut file = AtomicFile::create(&self.path, 0o644)
            .map_err(|e| self.failed(format!("cannot write beside it: {e}")))?;
        let (digest, size) = self.render(published, &mut file)?;
        if existing.as_deref() == Some(digest.as_str()) {
            // Byte-identical: leave the file (and its mtime, which web caches key on) alone.
            drop(file);
            self.remember(&digest);
            return Ok(());
        }
        file.commit().map_err(|e| self.failed(e))?;
        self.remember(&digest);
        log::info!(event = "target.written", path = self.path.display().to_string().as_str(),
                   bytes = size; "published calendar written");
        Ok(())
    }

    fn list_owned(&mut self) -> Result<Vec<OwnedEvent>, ProviderError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(self.failed(format!("cannot read: {e}"))),
        };
        if bytes.is_empty() {
            // A placeholder (see `check_ours`): nothing in it is calsync's.
            return Ok(vec![]);
        }
        super::owned_copies(&bytes, |r| {
            let tag = r
                .tag
                .filter(|t| crate::hashing::is_pair_tag(&self.pair, t))?;
            Some(OwnedEvent {
                target_id: r.event.uid.clone(),
                tag,
                etag: None,
                markings: r.classes.into_iter().map(Marking::Class).collect(),
                foreign: r.foreign,
                dtstamp: r.dtstamp,
                event: r.event,
            })
        })
        .map_err(|e| self.failed(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Environment, Settings};
    use std::io::Write as _;

    fn settings(dir: &Path) -> Settings {
        let config = format!(
            "[[pair]]\nname = \"parish\"\n[pair.source]\nkind = \"ics\"\npath = \"{}\"\n\
             [pair.target]\nkind = \"ics\"\npath = \"{}\"\n",
            dir.join("feed.ics").display(),
            dir.join("out.ics").display()
        );
        crate::config::parse(
            &dir.join("calsync.toml"),
            &config,
            None,
            &Environment::default(),
        )
        .unwrap()
    }

    fn feed(n: usize) -> String {
        let mut text = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n");
        for i in 0..n {
            text.push_str(&format!(
                "BEGIN:VEVENT\r\nUID:e{i}\r\nDTSTAMP:20260101T000000Z\r\n\
                 DTSTART:20260601T100000Z\r\nSUMMARY:Event {i}\r\nEND:VEVENT\r\n"
            ));
        }
        text.push_str("END:VCALENDAR\r\n");
        text
    }

    /// A feed file is read through one open file, not held whole: rewritten in place while it
    /// is read, the read fails (so nothing is planned or deleted) instead of mixing versions;
    /// read whole again, it gives every event.
    #[test]
    fn a_feed_file_rewritten_while_it_is_read_fails_the_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feed.ics");
        std::fs::write(&path, feed(1200)).unwrap();
        let settings = settings(dir.path());
        let http = Http::new(&settings.net).unwrap();
        let store = crate::store::Store::in_memory().unwrap();
        let now = "2026-05-01T00:00:00Z".parse().unwrap();
        let ctx = super::super::Context::new(&settings, &settings.pairs[0], &http, &store, now);
        let mut source = super::super::build_source(&ctx).unwrap();

        let mut pages = 0;
        let mut rewrite = |_page: SourcePage| {
            pages += 1;
            if pages == 1 {
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .unwrap();
                f.write_all(b"X-LATE:1\r\n").unwrap();
            }
            Ok(())
        };
        let err = source.read(None, &mut rewrite).unwrap_err().to_string();
        assert!(pages > 1, "the feed is read in pages");
        assert!(err.contains("changed while it was read"), "{err}");
        assert!(err.contains("source.path"), "{err}");

        let mut events = 0;
        let mut count = |page: SourcePage| {
            events += page.events.len();
            Ok(())
        };
        let end = source.read(None, &mut count).unwrap();
        assert_eq!(events, 1200);
        assert_eq!(end.kind, ReadKind::Full);
    }
}
