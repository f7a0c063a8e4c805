//! Providers turn remote calendars into the common model, behind two small traits: a
//! [`Source`] reads changes, a [`Target`] applies writes. The engine knows nothing else of
//! them. Shared helpers for providers live here ([`pool`] for bounded concurrent writes) and in
//! `net` (HTTP, retries, breakers, OAuth tokens); a provider folder holds only what is
//! particular to its API.
//!
//! # Adding a provider
//! A provider touches exactly these places:
//! 1. a folder `src/providers/<kind>/` with its source and/or target, and one `pub mod <kind>;`
//!    line below;
//! 2. one arm in [`build_source`] and one in [`build_target`];
//! 3. one row in the configuration's kind table, `config::endpoint::KINDS` (its name, its
//!    keys, the function that checks them), with its settings struct and [`Endpoint`] variant;
//! 4. a fake of its remote under `tests/support/` and its tests under `tests/`.
//!
//! What the seam hands every provider, so none of them reaches into the engine:
//! - [`Context`]: the settings, the pair, the run's HTTP client and state file, the run's
//!   `now` and the pair's [`Window`] (no provider calls the clock);
//! - [`Write::Create::outcome_unknown`]: an earlier attempt of this create may have reached
//!   the target; a target whose ids the server assigns looks the event up by its tag first;
//! - [`OwnedEvent::markings`]: what a target reads back of its own events carries the
//!   provider's privacy marking as a [`Marking`], judged only by `policy`;
//! - [`pool`]: one bounded write pool (`concurrency` per pair side);
//! - `net::oauth`: access tokens fetched, cached in the state file, refreshed once on a 401,
//!   a refused grant reported as "auth refused" (77).

pub mod caldav;
pub mod dry_run;
pub mod google;
pub mod graph;
pub mod ics;
pub mod pool;

use crate::config::{Endpoint, Pair, Settings};
use crate::model::{ItemKey, Marking, PublicEvent, SourceEvent, SourceKey};
use crate::net::{Http, NetError};
use crate::plan::ReadKind;
use crate::policy::Window;
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};

/// Why a provider could not do what was asked. Each variant maps to one exit code.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Credentials were refused, or the calendar is not shared with them (77).
    #[error("{endpoint}: credentials refused: {detail}")]
    Auth { endpoint: String, detail: String },
    /// A failure retrying later may fix: connection, timeout, 5xx, 429, a body cut short (75).
    #[error("{endpoint}: {detail}")]
    Transient { endpoint: String, detail: String },
    /// A failure retrying cannot fix: a file missing, an unparsable feed, another 4xx (1).
    #[error("{what}: {detail}")]
    Failed { what: String, detail: String },
    /// The endpoint's circuit breaker is open (69).
    #[error("{endpoint}: circuit breaker open")]
    BreakerOpen { endpoint: String },
    /// The configuration cannot work with this provider (78), e.g. an ambiguous calendar name
    /// or a provider this build does not have.
    #[error("{0}")]
    Config(String),
    /// The run was asked to stop.
    #[error("interrupted")]
    Interrupted,
    /// The state file failed underneath.
    #[error(transparent)]
    State(#[from] StoreError),
}

impl ProviderError {
    /// The exit code this error ends a pair's run with.
    pub fn exit_code(&self) -> i32 {
        use crate::exit;
        match self {
            ProviderError::Auth { .. } => exit::NOPERM,
            ProviderError::Transient { .. } => exit::TEMPFAIL,
            ProviderError::Failed { .. } => exit::FAILED,
            ProviderError::BreakerOpen { .. } => exit::UNAVAILABLE,
            ProviderError::Config(_) => exit::CONFIG,
            ProviderError::Interrupted => crate::interrupt::exit_code().unwrap_or(exit::TERMINATED),
            ProviderError::State(e) => e.exit_code(),
        }
    }

    /// A failure no later call of the run can fix: credentials refused, the breaker open, a
    /// stop asked. Writes not yet sent are not sent, and the pair's run ends.
    pub fn ends_the_pair(&self) -> bool {
        matches!(
            self,
            ProviderError::Auth { .. }
                | ProviderError::BreakerOpen { .. }
                | ProviderError::Interrupted
        )
    }

    /// A failure at the remote's end, for classifying what `net` returned.
    pub fn from_net(e: NetError, what: &str) -> ProviderError {
        if e.is_auth() {
            return ProviderError::Auth {
                endpoint: e.endpoint().to_string(),
                detail: format!("{what}: {e}"),
            };
        }
        match e {
            NetError::BreakerOpen { endpoint } => ProviderError::BreakerOpen { endpoint },
            NetError::Interrupted { .. } => ProviderError::Interrupted,
            e if e.is_transient() => ProviderError::Transient {
                endpoint: e.endpoint().to_string(),
                detail: format!("{what}: {e}"),
            },
            e => ProviderError::Failed {
                what: what.to_string(),
                detail: e.to_string(),
            },
        }
    }
}

/// One page of what a source read: changed or listed items, removed keys, and items it could
/// not read (named by key only).
#[derive(Debug, Default)]
pub struct SourcePage {
    pub events: Vec<SourceEvent>,
    pub removed: Vec<SourceKey>,
    pub skipped: Vec<(Option<SourceKey>, String)>,
    /// Items listed but not read again: the source knows they are exactly what they were
    /// when last read (the same bytes, the same rules, the same day), so what was decided
    /// and published of them stands.
    pub unchanged: Vec<SourceKey>,
}

/// Hands a page to the sink in pieces of at most `size` events (a remote page can be larger
/// than a staging transaction should be); removed, skipped and unchanged keys go with the
/// first piece. Nothing is handed for an empty page.
///
/// # Errors
/// What the sink returns.
pub fn hand_in_pieces(
    mut page: SourcePage,
    size: usize,
    sink: &mut PageSink<'_>,
) -> Result<(), ProviderError> {
    while page.events.len() > size {
        let rest = page.events.split_off(size);
        let first = std::mem::replace(&mut page.events, rest);
        sink(SourcePage {
            events: first,
            removed: std::mem::take(&mut page.removed),
            skipped: std::mem::take(&mut page.skipped),
            unchanged: std::mem::take(&mut page.unchanged),
        })?;
    }
    if !page.events.is_empty()
        || !page.removed.is_empty()
        || !page.skipped.is_empty()
        || !page.unchanged.is_empty()
    {
        sink(page)?;
    }
    Ok(())
}

/// How a read ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadEnd {
    pub kind: ReadKind,
    /// The cursor to store once the read's changes are applied (`None`: keep none).
    pub cursor: Option<String>,
}

/// Where a source hands each page (the engine stages it).
pub type PageSink<'a> = dyn FnMut(SourcePage) -> Result<(), ProviderError> + 'a;

/// A calendar calsync reads.
pub trait Source {
    /// Reads what changed since `cursor` (everything when `None`, or when the cursor has
    /// expired — then the end says `Full`), handing items to `sink` a page at a time.
    ///
    /// A read that fails or is cut short must return an error, never a shorter listing: the
    /// engine deletes nothing after a failed read.
    ///
    /// # Errors
    /// [`ProviderError`] classified by cause.
    fn read(
        &mut self,
        cursor: Option<&str>,
        sink: &mut PageSink<'_>,
    ) -> Result<ReadEnd, ProviderError>;
}

/// One write to a target.
#[derive(Debug, Clone)]
pub enum Write {
    Create {
        item: ItemKey,
        event: PublicEvent,
        tag: String,
        dtstamp: chrono::DateTime<chrono::Utc>,
        /// An earlier attempt of this create may have reached the target (a run ended with
        /// its intent pending, or its answer was lost). A target that derives the event's
        /// name from the tag (CalDAV, Google) may ignore it; one whose ids the server assigns
        /// (Graph) must look the event up by its tag and create only when it is not there.
        outcome_unknown: bool,
    },
    Update {
        item: ItemKey,
        target_id: String,
        etag: Option<String>,
        event: PublicEvent,
        tag: String,
        dtstamp: chrono::DateTime<chrono::Utc>,
    },
    Delete {
        item: ItemKey,
        target_id: String,
        etag: Option<String>,
    },
}

impl Write {
    pub fn item(&self) -> &ItemKey {
        match self {
            Write::Create { item, .. }
            | Write::Update { item, .. }
            | Write::Delete { item, .. } => item,
        }
    }
}

/// A write that took effect: the target's id and version of the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub target_id: String,
    pub etag: Option<String>,
}

/// Why one write did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The target's event changed since calsync last wrote it (a precondition failed): it is
    /// not overwritten blindly.
    #[error("changed in the target since calsync wrote it")]
    Conflict,
    #[error(transparent)]
    Failed(#[from] ProviderError),
}

/// An event in a target that carries calsync's tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedEvent {
    pub target_id: String,
    pub tag: String,
    pub etag: Option<String>,
    /// The privacy marking of the master and each override, as the target holds them
    /// (judged only by `policy`).
    pub markings: Vec<Marking>,
    /// Properties calsync never writes that the target's event carries (ATTENDEE, VALARM…).
    pub foreign: Vec<String>,
    /// The master's DTSTAMP as the target holds it (Unix seconds), if readable.
    pub dtstamp: Option<i64>,
    /// What the target holds, read back into the published shape.
    pub event: PublicEvent,
}

/// Every item published for a pair, for targets that write themselves whole (an .ics file).
pub trait PublishedSet {
    /// Whether this run changed the set (a target that wrote itself from an unchanged set,
    /// and is still as it wrote it, need not write itself again).
    fn changed(&self) -> bool;

    /// The IANA zones the items use.
    ///
    /// # Errors
    /// State file failures.
    fn zones(&self) -> Result<std::collections::BTreeSet<String>, ProviderError>;

    /// Calls `f` with every item, ordered by item key.
    ///
    /// # Errors
    /// State file failures, or what `f` returns.
    fn for_each(
        &self,
        f: &mut dyn FnMut(crate::ical::Published) -> Result<(), ProviderError>,
    ) -> Result<(), ProviderError>;
}

/// A calendar calsync writes.
pub trait Target {
    /// Checks the target can be written (resolves the calendar, checks access).
    ///
    /// # Errors
    /// [`ProviderError`] classified by cause.
    fn prepare(&mut self) -> Result<(), ProviderError>;

    /// Applies writes; one result per write, in order. May run them concurrently.
    fn apply(&mut self, writes: &[Write]) -> Vec<Result<Applied, WriteError>>;

    /// After every batch of a run that wrote or might need to (re)write: a target that is one
    /// file writes itself here from the whole published set. Others do nothing.
    ///
    /// # Errors
    /// [`ProviderError`] classified by cause.
    fn finish(&mut self, _published: &dyn PublishedSet) -> Result<(), ProviderError> {
        Ok(())
    }

    /// What [`finish`](Self::finish) would change, said in the log instead of done (a dry
    /// run). Targets whose `finish` does nothing have nothing to say.
    ///
    /// # Errors
    /// [`ProviderError`] classified by cause.
    fn preview(&mut self, _published: &dyn PublishedSet) -> Result<(), ProviderError> {
        Ok(())
    }

    /// Whether what this target writes for `event` depends on the window (a series it can
    /// only hold as its occurrences in the window, say). Such an item is written anew each
    /// day the window moves, so occurrences entering the window reach the target; every
    /// other item is written only when its content changes.
    fn depends_on_window(&self, _event: &PublicEvent) -> bool {
        false
    }

    /// The events in the target that carry calsync's tag.
    ///
    /// # Errors
    /// [`ProviderError`] classified by cause.
    fn list_owned(&mut self) -> Result<Vec<OwnedEvent>, ProviderError>;
}

/// The events calsync owns in one calendar text (an .ics file, a CalDAV resource): each item
/// read back that `own` accepts, listed once per copy the text holds — a VEVENT written twice
/// (one UID, no RECURRENCE-ID) or an override written twice — so that `validate` sees copies
/// whatever the target kind (reading events keeps one per UID).
///
/// # Errors
/// A text that is not a calendar or is cut short.
pub fn owned_copies(
    bytes: &[u8],
    mut own: impl FnMut(crate::ical::ReadBack) -> Option<OwnedEvent>,
) -> Result<Vec<OwnedEvent>, crate::ical::IcalError> {
    let outline = crate::ical::outline(bytes)?;
    let mut seen: std::collections::HashMap<(&str, Option<&str>), usize> = Default::default();
    for v in &outline.vevents {
        if let Some(uid) = &v.uid {
            *seen
                .entry((uid.as_str(), v.recurrence_id.as_deref()))
                .or_default() += 1;
        }
    }
    let mut out = Vec::new();
    for item in crate::ical::parse_published(bytes)? {
        let extra: usize = seen
            .iter()
            .filter(|((uid, _), _)| *uid == item.event.uid)
            .map(|(_, n)| n.saturating_sub(1))
            .sum();
        let Some(owned) = own(item) else { continue };
        for _ in 0..extra {
            out.push(owned.clone());
        }
        out.push(owned);
    }
    Ok(out)
}

/// What a provider is built with: everything it may know of the run.
pub struct Context<'a> {
    pub settings: &'a Settings,
    pub pair: &'a Pair,
    pub http: &'a Http,
    /// For caches that span runs (resolved calendar URLs/ids, access tokens).
    pub store: &'a Store,
    /// The run's "now", fixed at its start.
    pub now: DateTime<Utc>,
    /// The pair's window around `now`.
    pub window: Window,
}

impl<'a> Context<'a> {
    /// The context of one pair in a run that treats `now` as now.
    pub fn new(
        settings: &'a Settings,
        pair: &'a Pair,
        http: &'a Http,
        store: &'a Store,
        now: DateTime<Utc>,
    ) -> Context<'a> {
        Context {
            settings,
            pair,
            http,
            store,
            now,
            window: Window::around(now, pair.window.past_days, pair.window.future_days),
        }
    }
}

/// Builds the source of a pair.
///
/// # Errors
/// [`ProviderError::Config`] for a source the configuration cannot make work; others by
/// cause (a calendar resolved at build time).
pub fn build_source<'a>(ctx: &Context<'a>) -> Result<Box<dyn Source + 'a>, ProviderError> {
    match &ctx.pair.source {
        Endpoint::Ics(s) => Ok(Box::new(ics::IcsSource::new(s.clone(), ctx))),
        Endpoint::Caldav(s) => Ok(Box::new(caldav::CaldavSource::new(s, ctx)?)),
        Endpoint::Google(s) => Ok(Box::new(google::GoogleSource::new(s, ctx)?)),
        Endpoint::Graph(s) => Ok(Box::new(graph::GraphSource::new(s, ctx)?)),
    }
}

/// Builds the target of a pair.
///
/// # Errors
/// [`ProviderError::Config`] for a target the configuration cannot make work; others by
/// cause.
pub fn build_target<'a>(ctx: &Context<'a>) -> Result<Box<dyn Target + 'a>, ProviderError> {
    match &ctx.pair.target {
        Endpoint::Ics(s) => Ok(Box::new(ics::IcsTarget::new(s.clone(), ctx)?)),
        Endpoint::Caldav(s) => Ok(Box::new(caldav::CaldavTarget::new(s, ctx)?)),
        Endpoint::Google(s) => Ok(Box::new(google::GoogleTarget::new(s, ctx)?)),
        Endpoint::Graph(s) => Ok(Box::new(graph::GraphTarget::new(s, ctx)?)),
    }
}
