//! The `ics` provider: a feed (URL or file) as a source, a file as a target.
//!
//! As a source, a URL is fetched with `If-None-Match` / `If-Modified-Since` from the last
//! answer, so an unchanged feed costs one request and no body; servers that ignore those
//! headers are caught by the content hash. A feed cut short (fewer bytes than announced, a
//! dropped connection, no `END:VCALENDAR`) is a failed read, never a shorter calendar.
//!
//! As a target, the whole file is rendered from the published set and replaced atomically
//! (temp file in the same folder, fsync, rename, fsync of the folder). The output order is
//! stable and DTSTAMPs change only with content, so an unchanged calendar renders
//! byte-identical and the file is then not touched at all.

use super::{
    Applied, OwnedEvent, PageSink, ProviderError, PublishedSet, ReadEnd, Source, SourcePage,
    Target, Write, WriteError,
};
use crate::config::{IcsLocation, IcsSettings};
use crate::hashing::sha256_hex;
use crate::net::{Auth, Http, Request};
use crate::plan::ReadKind;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Items handed to the engine per page (bounds the staging transaction, not memory: a feed
/// is one document).
const PAGE: usize = 500;

/// What the source remembers between runs.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FeedCursor {
    /// SHA-256 of the feed's bytes.
    hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_modified: Option<String>,
}

/// An .ics feed read from a URL or a file.
pub struct IcsSource {
    settings: IcsSettings,
    http: Http,
}

impl IcsSource {
    pub fn new(settings: IcsSettings, http: Http) -> Self {
        IcsSource { settings, http }
    }

    /// The feed's bytes, or `None` when the server says it has not changed (304).
    fn fetch(
        &self,
        cursor: Option<&FeedCursor>,
    ) -> Result<Option<(Vec<u8>, FeedCursor)>, ProviderError> {
        match &self.settings.location {
            IcsLocation::Path(path) => {
                let bytes = std::fs::read(path).map_err(|e| ProviderError::Failed {
                    what: format!("feed {}", path.display()),
                    detail: format!("cannot read: {e}"),
                })?;
                let hash = sha256_hex(&bytes);
                Ok(Some((
                    bytes,
                    FeedCursor {
                        hash,
                        etag: None,
                        last_modified: None,
                    },
                )))
            }
            IcsLocation::Url(url) => {
                let mut req = Request::get(url.clone()).header("Accept", "text/calendar");
                if let Some(c) = cursor {
                    if let Some(etag) = &c.etag {
                        req = req.header("If-None-Match", etag.clone());
                    }
                    if let Some(lm) = &c.last_modified {
                        req = req.header("If-Modified-Since", lm.clone());
                    }
                }
                if let (Some(user), Some(password)) =
                    (&self.settings.username, &self.settings.password)
                {
                    req = req.auth(Auth::Basic {
                        user: user.clone(),
                        password: password.expose().to_string(),
                    });
                }
                let resp = self
                    .http
                    .send(&req)
                    .map_err(|e| ProviderError::from_net(e, "reading the feed"))?;
                if resp.status == 304 {
                    return Ok(None);
                }
                let cursor = FeedCursor {
                    hash: sha256_hex(&resp.body),
                    etag: resp.header("etag").map(str::to_string),
                    last_modified: resp.header("last-modified").map(str::to_string),
                };
                Ok(Some((resp.body, cursor)))
            }
        }
    }

    fn describe(&self) -> String {
        match &self.settings.location {
            IcsLocation::Path(p) => format!("feed {}", p.display()),
            IcsLocation::Url(u) => format!("feed {}", crate::mask::mask_url(u)),
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
        let Some((bytes, next)) = self.fetch(previous.as_ref())? else {
            return Ok(ReadEnd {
                kind: ReadKind::Unchanged,
                cursor: cursor.map(str::to_string),
            });
        };
        let encoded = serde_json::to_string(&next).expect("cursors serialise");
        if previous.as_ref().is_some_and(|p| p.hash == next.hash) {
            // The server ignored the conditional headers, or it is a file: same bytes.
            return Ok(ReadEnd {
                kind: ReadKind::Unchanged,
                cursor: Some(encoded),
            });
        }
        let feed = crate::ical::parse_feed(&bytes).map_err(|e| ProviderError::Failed {
            what: self.describe(),
            detail: e.to_string(),
        })?;
        let mut skipped: Vec<(Option<crate::model::SourceKey>, String)> = feed
            .skipped
            .into_iter()
            .map(|s| (s.key, s.reason.to_string()))
            .collect();
        let mut events = feed.events.into_iter().peekable();
        if events.peek().is_none() {
            sink(SourcePage {
                events: vec![],
                removed: vec![],
                skipped: std::mem::take(&mut skipped),
            })?;
        }
        while events.peek().is_some() {
            let page: Vec<_> = events.by_ref().take(PAGE).collect();
            sink(SourcePage {
                events: page,
                removed: vec![],
                skipped: std::mem::take(&mut skipped),
            })?;
        }
        Ok(ReadEnd {
            kind: ReadKind::Full,
            cursor: Some(encoded),
        })
    }
}

/// An .ics file calsync writes whole.
pub struct IcsTarget {
    path: PathBuf,
    name: Option<String>,
}

impl IcsTarget {
    /// # Errors
    /// A target that is not a file path.
    pub fn new(settings: IcsSettings, pair: &str) -> Result<Self, ProviderError> {
        match settings.location {
            IcsLocation::Path(path) => Ok(IcsTarget {
                path,
                name: settings.name.or_else(|| Some(pair.to_string())),
            }),
            IcsLocation::Url(_) => Err(ProviderError::Config(format!(
                "pair '{pair}': an ics target must be a path"
            ))),
        }
    }

    fn failed(&self, detail: impl std::fmt::Display) -> ProviderError {
        ProviderError::Failed {
            what: format!("target {}", self.path.display()),
            detail: detail.to_string(),
        }
    }

    fn render(&self, published: &dyn PublishedSet) -> Result<Vec<u8>, ProviderError> {
        let zones = published.zones()?;
        let mut out = Vec::new();
        let mut writer = crate::ical::CalendarWriter::new(&mut out, self.name.as_deref(), &zones)
            .map_err(|e| self.failed(e))?;
        published.for_each(&mut |item| writer.item(&item).map_err(|e| self.failed(e)))?;
        writer.finish().map_err(|e| self.failed(e))?;
        Ok(out)
    }
}

impl Target for IcsTarget {
    fn prepare(&mut self) -> Result<(), ProviderError> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(self.failed(format!("the folder {} does not exist", dir.display())));
        }
        Ok(())
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

    fn finish(&mut self, published: &dyn PublishedSet, dry_run: bool) -> Result<(), ProviderError> {
        let bytes = self.render(published)?;
        if std::fs::read(&self.path).is_ok_and(|old| old == bytes) {
            return Ok(());
        }
        if dry_run {
            return Ok(());
        }
        replace_file(&self.path, &bytes).map_err(|e| self.failed(e))
    }

    fn list_owned(&mut self) -> Result<Vec<OwnedEvent>, ProviderError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(self.failed(format!("cannot read: {e}"))),
        };
        crate::ical::parse_published(&bytes)
            .map_err(|e| self.failed(e))
            .map(|list| {
                list.into_iter()
                    .map(|(tag, event)| OwnedEvent {
                        target_id: event.uid.clone(),
                        tag,
                        etag: None,
                        event,
                        exposure: super::Exposure::default(),
                    })
                    .collect()
            })
    }
}

/// Replaces `path` with `bytes` atomically: a temp file in the same folder, fsync, rename,
/// fsync of the folder. An existing file's permissions are kept; a new one is 0644 (it is
/// meant to be served).
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "calendar.ics".into());
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o644);
    let mut suffix = [0u8; 6];
    let _ = getrandom::fill(&mut suffix);
    let tmp = dir.join(format!(
        ".{file_name}.{}.tmp",
        suffix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_keeps_its_mode_and_leaves_no_temp_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("public.ics");
        replace_file(&path, b"one").unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        replace_file(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
