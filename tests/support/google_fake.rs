//! `GoogleFake`: an in-process, stateful Google Calendar API v3 and Google OAuth token endpoint
//! for service accounts, on a [`TestServer`], for calsync's Google provider tests.
//!
//! It follows Google's documentation (events reference and discovery document, the sync, batch
//! and error guides, the service-account OAuth page) and `../shared/API-NOTES.md` §2. It checks
//! what Google checks and refuses what Google refuses; it never bends to what a client sends.
//!
//! # Implemented
//! - `POST /token` (the key file's `token_uri`): the JWT-bearer grant, verified for real (see
//!   `auth.rs`): RS256 signature with the service account's public key, `iss`, `aud` = the token
//!   URL actually requested (`http://{Host}/token`), `iat`/`exp` (≤ 3600 s apart, not expired,
//!   `iat` not in the future beyond a skew), `scope`, optional `sub`. Answers
//!   `{"access_token","expires_in","token_type":"Bearer"}` or Google's `invalid_grant` /
//!   `invalid_scope` / `unsupported_grant_type` / `unauthorized_client` bodies.
//! - Every API call needs `Authorization: Bearer <live token>` (401 `required` / `authError`,
//!   with `status: UNAUTHENTICATED`); its scopes must cover the method (403
//!   `insufficientPermissions`): `calendar` or `calendar.events`, or their `.readonly` for reads.
//! - `calendars.get` (id, summary, timeZone: a client's access check), `events.list`, `events.get`, `events.insert`, `events.update` (PUT), `events.patch`,
//!   `events.delete`, `events.instances`, under `/calendar/v3/calendars/{calendarId}/…`
//!   (`calendarId` percent-decoded; `primary` = the account's, or the delegated subject's, own).
//! - Incremental sync: `nextSyncToken` on the last page only, `syncToken` with the documented
//!   forbidden parameters (`iCalUID, orderBy, privateExtendedProperty, q, sharedExtendedProperty,
//!   timeMin, timeMax, updatedMin`, and `showDeleted=false`) → 400; changes since the token,
//!   unbounded by the first list's window; deletions as minimal `cancelled` items; 410
//!   `fullSyncRequired` for unknown or invalidated tokens; no change → the same token back.
//! - Series: `recurrence[]` expanded for `singleEvents=true` and `/instances` (the subset in
//!   `recurrence.rs`; anything else → 400 on write); modified and cancelled instances stored as
//!   exceptions with `recurringEventId` + `originalStartTime`; cancelled exceptions of a live
//!   series listed even with `showDeleted` and `singleEvents` both false.
//! - Writes: client ids (base32hex `[a-v0-9]{5,1024}`), 409 `duplicate` also for deleted ids, 412
//!   `conditionNotMet` on `If-Match`, 410 `deleted` on a second DELETE, 404 `notFound`, GET of a
//!   deleted event (`status: cancelled`), PUT drops omitted fields, PATCH merges (`null`
//!   deletes), `etag` changes on every write, `sequence` bumps on time/recurrence/status changes.
//! - `POST /batch/calendar/v3` (`batch.rs`): multipart/mixed, one answer part per call in request
//!   order with `Content-ID: <response-…>`, at most 1000 calls.
//! - Faults on demand ([`Fault`]), a fixed latency per HTTP request, a call log with [`Kind`]s,
//!   inspection of stored events, and seeding helpers that play the human in Google Calendar.
//!
//! # Strict where Google is documented strict
//! Event ids, `start`/`end` presence and shape, time zones (IANA), `timeRangeEmpty`,
//! `maxResults` ≥ 1, RFC 3339 `timeMin`/`timeMax` with offset, `orderBy=startTime` only with
//! `singleEvents`, enum values of `status`/`visibility`/`transparency`/`eventType`/`sendUpdates`,
//! `conferenceData` ignored unless `conferenceDataVersion=1`, read-only fields ignored, and
//! attendees refused (403 `forbiddenForServiceAccounts`) unless the account acts for a user by
//! domain-wide delegation ("Service accounts need to use domain-wide delegation of authority to
//! populate the attendee list").
//!
//! # Decided where the documentation is silent
//! - Unknown top-level body fields are ignored and not stored (Google's JSON API drops them);
//!   unknown query parameters are refused with 400 (fake strictness, so a typo such as
//!   `singleEvent=true` cannot pass silently; [`GoogleFake::set_lenient_query`] relaxes it).
//!   `timeZone`, `maxAttendees`, `alwaysIncludeEmail`, `showHiddenInvitations` are checked and
//!   then ignored (times come in each event's own zone); `q` is a plain substring match.
//! - `maxResults` above 2500 is clamped ("the page size can never be larger than 2500"), not refused.
//! - A calendar the account cannot see answers 404 `notFound`: Google's error guide lists "a
//!   calendar that the user can not access" under 404. [`Access::Refused`] answers 403 instead,
//!   [`Access::Reader`] refuses writes with 403 `requiredAccessLevel`.
//! - The JWT header `kid` is optional (Google's own example header has none); when present it
//!   must be the key file's `private_key_id`, else "Invalid JWT Signature.". The token request
//!   must be form-encoded. The token endpoint takes no injected faults.
//! - A token without a calendar scope is issued (Google issues tokens for any valid scopes) and
//!   refused at the first API call with 403 `insufficientPermissions`.
//! - Sending both `id` and `iCalUID` on insert → 400 (docs: "only one of them should be
//!   supplied"; knob [`GoogleFake::set_reject_id_with_ical_uid`]).
//! - A PUT that omits `status` keeps it: only an explicit `status: confirmed` restores a
//!   cancelled event. Deleting a series cancels its exceptions too. Master changes do not rewrite
//!   existing exceptions. `/instances` of a non-recurring event is 400, of a deleted one 410.
//! - Paging: follow-up pages must repeat the first request's parameters (syncToken included;
//!   `maxResults` may change), else 400; page tokens stay valid, so a retried page works.
//!   A syncToken must be used with the `singleEvents`, `showDeleted`, `eventTypes` and
//!   `showHiddenInvitations` of the list that produced it, else 400. A deleted series with
//!   `singleEvents=true` yields its instances as cancelled items.
//! - Batch: a part that cannot be read (not `application/http`, a full URL) gets its own 400 in
//!   its place; a body without the closing delimiter, no parts or more than 1000 → 400 for all.
//!
//! # Unverified behaviours, as knobs (defaults in brackets)
//! - Restoring a cancelled event by PUT/PATCH `status: confirmed` [allowed] or 403
//!   ([`GoogleFake::set_restore`]).
//! - Instance ids `{masterId}_{YYYYMMDDTHHMMSSZ}` (UTC) / `{masterId}_{YYYYMMDD}` (all-day).
//! - `unauthorized_client` for a refused `sub` [401] ([`GoogleFake::set_unauthorized_client_status`]);
//!   allowed subjects ([`GoogleFake::allow_subject`], none by default).
//! - JWT clock skew [60 s]; token lifetime [3599 s]; extended property limits [key 44, value
//!   1024]; instances expanded per series without `timeMax` [1000]; `sequence` bumps on changes
//!   of start, end, recurrence or status; wording of the syncToken-restriction 400 (reason
//!   `syncTokenWithRequestRestrictions`, as a report quotes it).
//! - Short or empty pages with `nextPageToken` ([`GoogleFake::script_page_sizes`]); sync token
//!   invalidation ([`GoogleFake::invalidate_sync_tokens`]); batch execution order
//!   ([`GoogleFake::set_reverse_batch_execution`]; answers stay in request order).
//!
//! # Observing a client
//! [`GoogleFake::calls`] lists every call (batch items with `in_batch`; the `Token` call's `query`
//! holds the posted form, assertion included, so a test can decode the JWT a client sent);
//! [`GoogleFake::count`] counts them by [`Kind`]; [`GoogleFake::events`] returns what is stored,
//! cancelled events and extended properties included.

mod auth;
mod batch;
mod errors;
mod events;
mod listing;
mod recurrence;
mod wire;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use super::http::{Request, Response, TestServer, lock};
use errors::{ApiError, Reply};
use wire::ApiRequest;

/// The calendar every fake starts with (owner access).
pub const CALENDAR_ID: &str = "c_calsync0fake@group.calendar.google.com";
pub const CLIENT_EMAIL: &str = "calsync-sync@calsync-test.iam.gserviceaccount.com";
pub const CLIENT_ID: &str = "109876543210987654321";
pub const PROJECT_ID: &str = "calsync-test";
pub const PRIVATE_KEY_ID: &str = "3f2b6c1d0e9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c";
pub const SCOPE_CALENDAR: &str = "https://www.googleapis.com/auth/calendar";
/// Who created the events the seeding helpers write (the "human").
pub const SEED_CREATOR: &str = "office@calsync-test.example";
/// The test service account's keys (PKCS#8 private, SPKI public) and an unrelated key.
pub const SA_PRIVATE_KEY_PEM: &str = include_str!("../fixtures/google-sa-key.pem");
pub const SA_PUBLIC_KEY_PEM: &str = include_str!("../fixtures/google-sa-pub.pem");
pub const WRONG_PRIVATE_KEY_PEM: &str = include_str!("../fixtures/wrong-rsa-key.pem");

/// What a request was, for counting (batch items count as their own kind, with `in_batch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Token,
    /// `calendars.get`: the calendar's own metadata (an access check).
    Calendar,
    List,
    Instances,
    Get,
    Insert,
    /// PUT (full replace).
    Update,
    Patch,
    Delete,
    /// The batch envelope itself.
    Batch,
    /// Any path the fake does not serve.
    Other,
}

impl Kind {
    fn is_read(self) -> bool {
        matches!(
            self,
            Kind::Calendar | Kind::List | Kind::Instances | Kind::Get
        )
    }
}

/// What the service account may do with a calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Owner,
    Writer,
    /// Reads work; writes → 403 `requiredAccessLevel`.
    Reader,
    /// Not shared: 404 `notFound`, as Google hides calendars the user cannot access.
    Hidden,
    /// Not shared, answered 403 `forbidden` (knob for the other behaviour reported in the wild).
    Refused,
}

/// Restoring a cancelled event with `status: confirmed` (unverified: reports differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restore {
    Allowed,
    /// 403 `forbidden`.
    Forbidden,
}

/// An error the fake answers on demand, with Google's status, domain, reason and message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 403 `usageLimits`/`rateLimitExceeded`.
    RateLimit403,
    /// 403 `usageLimits`/`userRateLimitExceeded`.
    UserRateLimit403,
    /// 429 `usageLimits`/`rateLimitExceeded`.
    RateLimit429,
    /// 403 `usageLimits`/`quotaExceeded` ("Calendar usage limits exceeded.").
    QuotaExceeded403,
    /// 403 `calendar`/`forbiddenForNonOrganizer`.
    ForbiddenForNonOrganizer403,
    /// 500 `global`/`backendError`.
    BackendError500,
}

impl Fault {
    /// This fault for the next `times` matching API calls.
    pub fn times(self, times: usize) -> Injected {
        Injected {
            fault: self,
            times,
            only: None,
            retry_after: None,
        }
    }

    fn error(self) -> ApiError {
        match self {
            Fault::RateLimit403 => ApiError::new(
                403,
                "usageLimits",
                "rateLimitExceeded",
                "Rate Limit Exceeded",
            ),
            Fault::UserRateLimit403 => ApiError::new(
                403,
                "usageLimits",
                "userRateLimitExceeded",
                "User Rate Limit Exceeded",
            ),
            Fault::RateLimit429 => ApiError::new(
                429,
                "usageLimits",
                "rateLimitExceeded",
                "Rate Limit Exceeded",
            ),
            Fault::QuotaExceeded403 => ApiError::new(
                403,
                "usageLimits",
                "quotaExceeded",
                "Calendar usage limits exceeded.",
            ),
            Fault::ForbiddenForNonOrganizer403 => ApiError::new(
                403,
                "calendar",
                "forbiddenForNonOrganizer",
                "Shared properties can only be changed by the organizer of the event.",
            ),
            Fault::BackendError500 => ApiError::new(500, "global", "backendError", "Backend Error"),
        }
    }
}

/// A queued fault: which, how often, for which calls, with which `Retry-After`.
#[derive(Clone, Debug)]
pub struct Injected {
    fault: Fault,
    times: usize,
    only: Option<Kind>,
    retry_after: Option<u64>,
}

impl Injected {
    /// Only calls of this kind (batch items count by their own kind; `Kind::Batch` fails the
    /// whole envelope).
    pub fn only(mut self, kind: Kind) -> Injected {
        self.only = Some(kind);
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Injected {
        self.retry_after = Some(seconds);
        self
    }
}

/// One call the fake answered: an HTTP request, or one item of a batch.
#[derive(Clone, Debug)]
pub struct Call {
    pub kind: Kind,
    pub method: String,
    /// Path without query, percent-encoding as sent.
    pub path: String,
    /// Decoded query parameters in order.
    pub query: Vec<(String, String)>,
    pub status: u16,
    pub in_batch: bool,
    /// The JSON body, when there was one.
    pub body: Option<Value>,
}

impl Call {
    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The knobs; see the module doc for what each stands for.
#[derive(Clone, Debug)]
struct Knobs {
    token_lifetime: u64,
    clock_skew: i64,
    unauthorized_client_status: u16,
    allowed_subjects: Vec<String>,
    restore: Restore,
    reject_id_with_ical_uid: bool,
    lenient_query: bool,
    max_instances: usize,
    ext_prop_limits: Option<(usize, usize)>,
    reverse_batch_execution: bool,
}

impl Default for Knobs {
    fn default() -> Knobs {
        Knobs {
            token_lifetime: 3599,
            clock_skew: 60,
            unauthorized_client_status: 401,
            allowed_subjects: Vec::new(),
            restore: Restore::Allowed,
            reject_id_with_ical_uid: true,
            lenient_query: false,
            max_instances: 1000,
            ext_prop_limits: Some((44, 1024)),
            reverse_batch_execution: false,
        }
    }
}

/// An issued access token.
#[derive(Clone, Debug)]
struct AccessToken {
    expires: Instant,
    revoked: bool,
    scopes: Vec<String>,
    /// The account, or the delegated subject.
    identity: String,
}

/// One calendar and its events (masters, single events and exceptions, deleted ones included).
#[derive(Clone, Debug)]
struct Calendar {
    id: String,
    summary: String,
    time_zone: Tz,
    access: Access,
    events: BTreeMap<String, Stored>,
}

/// An event as stored: the resource exactly as GET returns it, and when it was made and changed
/// (positions in the fake's change sequence, which sync tokens compare against).
#[derive(Clone, Debug)]
struct Stored {
    resource: Value,
    created: u64,
    changed: u64,
}

/// Monotonic counters: ids, tokens, etags, and the change sequence.
#[derive(Debug, Default)]
struct Clock {
    counter: u64,
    change: u64,
}

impl Clock {
    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// A new position in the change sequence, for a write.
    fn next_change(&mut self) -> u64 {
        self.change += 1;
        self.change
    }

    /// Google's etags are quoted decimal numbers.
    fn next_etag(&mut self) -> String {
        format!("\"{}\"", 3_512_000_000_000_000u64 + self.next() * 1000)
    }

    fn now() -> String {
        Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

/// Everything behind the lock.
struct State {
    knobs: Knobs,
    clock: Clock,
    tokens: HashMap<String, AccessToken>,
    calendars: BTreeMap<String, Calendar>,
    sync_tokens: HashMap<String, listing::SyncCursor>,
    page_cursors: HashMap<String, listing::PageCursor>,
    faults: VecDeque<Injected>,
    page_plan: VecDeque<usize>,
    calls: Vec<Call>,
}

/// What the handler threads share; the latency lives outside the lock so that sleeping never
/// serialises requests.
struct Shared {
    state: Mutex<State>,
    latency_ms: AtomicU64,
}

/// The fake; stops serving when dropped.
pub struct GoogleFake {
    shared: Arc<Shared>,
    server: TestServer,
}

impl GoogleFake {
    /// A fake with the test service account and one empty calendar, [`CALENDAR_ID`] (owner).
    pub fn start() -> GoogleFake {
        let mut state = State {
            knobs: Knobs::default(),
            clock: Clock::default(),
            tokens: HashMap::new(),
            calendars: BTreeMap::new(),
            sync_tokens: HashMap::new(),
            page_cursors: HashMap::new(),
            faults: VecDeque::new(),
            page_plan: VecDeque::new(),
            calls: Vec::new(),
        };
        state.add_calendar(CALENDAR_ID);
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            latency_ms: AtomicU64::new(0),
        });
        let server = {
            let shared = Arc::clone(&shared);
            TestServer::start(move |request| handle(&shared, request))
        };
        GoogleFake { shared, server }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    // ---- addresses and credentials ----

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The `token_uri` the key file names.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.url())
    }

    /// What calsync's `base_url` should be: `http://127.0.0.1:PORT/calendar/v3`.
    pub fn api_base(&self) -> String {
        format!("{}/calendar/v3", self.url())
    }

    pub fn batch_url(&self) -> String {
        format!("{}/batch/calendar/v3", self.url())
    }

    /// `…/calendar/v3/calendars/{id}/events` with the id percent-encoded.
    pub fn events_url(&self, calendar: &str) -> String {
        format!(
            "{}/calendars/{}/events",
            self.api_base(),
            wire::encode_segment(calendar)
        )
    }

    /// The service-account key JSON, as Google's console downloads it, pointing at this fake.
    pub fn key_json(&self) -> Value {
        json!({
            "type": "service_account",
            "project_id": PROJECT_ID,
            "private_key_id": PRIVATE_KEY_ID,
            "private_key": SA_PRIVATE_KEY_PEM,
            "client_email": CLIENT_EMAIL,
            "client_id": CLIENT_ID,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_url(),
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": format!(
                "https://www.googleapis.com/robot/v1/metadata/x509/{}",
                CLIENT_EMAIL.replace('@', "%40")
            ),
            "universe_domain": "googleapis.com",
        })
    }

    /// Writes [`GoogleFake::key_json`] to `dir/name` (mode 0600) and returns its path.
    pub fn write_key_file(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        let text = serde_json::to_string_pretty(&self.key_json()).expect("key JSON serialises");
        std::fs::write(&path, text).expect("writing the service-account key file");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .expect("making the key file private");
        }
        path
    }

    /// A valid assertion for this fake (claims of [`GoogleFake::claims`], signed with the key).
    pub fn assertion(&self) -> String {
        sign_assertion(&self.claims(), SA_PRIVATE_KEY_PEM, Some(PRIVATE_KEY_ID))
    }

    /// The claims a correct client sends now: iss, scope, aud, iat, exp = iat + 3600.
    pub fn claims(&self) -> Value {
        let now = Utc::now().timestamp();
        json!({
            "iss": CLIENT_EMAIL,
            "scope": SCOPE_CALENDAR,
            "aud": self.token_url(),
            "iat": now,
            "exp": now + 3600,
        })
    }

    /// An access token without the JWT exchange, for tests about something else.
    pub fn issue_token(&self) -> String {
        self.state()
            .issue_token(vec![SCOPE_CALENDAR.to_string()], CLIENT_EMAIL.to_string())
    }

    // ---- auth knobs ----

    /// `expires_in` of new tokens, and how long they really live.
    pub fn set_token_lifetime(&self, seconds: u64) {
        self.state().knobs.token_lifetime = seconds;
    }

    /// Every issued token is expired from now on (401 `authError` on use).
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for token in self.state().tokens.values_mut() {
            token.expires = now;
        }
    }

    pub fn revoke_token(&self, token: &str) {
        if let Some(t) = self.state().tokens.get_mut(token) {
            t.revoked = true;
        }
    }

    /// Lets the account act as `subject` (domain-wide delegation); others → `unauthorized_client`.
    pub fn allow_subject(&self, subject: &str) {
        self.state()
            .knobs
            .allowed_subjects
            .push(subject.to_string());
    }

    pub fn set_unauthorized_client_status(&self, status: u16) {
        self.state().knobs.unauthorized_client_status = status;
    }

    /// How far `iat` may lie in the future (and `exp` in the past) before the grant is refused.
    pub fn set_clock_skew(&self, seconds: i64) {
        self.state().knobs.clock_skew = seconds;
    }

    // ---- calendars ----

    /// Adds an empty calendar (owner access, zone UTC).
    pub fn add_calendar(&self, id: &str) {
        self.state().add_calendar(id);
    }

    pub fn set_access(&self, calendar: &str, access: Access) {
        self.state().calendar_mut(calendar).access = access;
    }

    /// The calendar's zone: how all-day events meet `timeMin`/`timeMax`, and how `dateTime`
    /// values without their own `timeZone` are rendered.
    pub fn set_calendar_time_zone(&self, calendar: &str, zone: &str) {
        self.state().calendar_mut(calendar).time_zone = zone.parse().expect("an IANA zone name");
    }

    // ---- behaviour knobs ----

    pub fn set_restore(&self, restore: Restore) {
        self.state().knobs.restore = restore;
    }

    pub fn set_reject_id_with_ical_uid(&self, reject: bool) {
        self.state().knobs.reject_id_with_ical_uid = reject;
    }

    /// Ignore unknown query parameters instead of answering 400.
    pub fn set_lenient_query(&self, lenient: bool) {
        self.state().knobs.lenient_query = lenient;
    }

    /// Key/value length limits of extended properties; `None` = unlimited.
    pub fn set_extended_property_limits(&self, limits: Option<(usize, usize)>) {
        self.state().knobs.ext_prop_limits = limits;
    }

    /// Instances per series when no `timeMax` bounds the expansion.
    pub fn set_max_instances(&self, max: usize) {
        self.state().knobs.max_instances = max;
    }

    /// The next pages served (list, incremental or instances) hold at most these many items
    /// each, in order (0 = an empty page that still has `nextPageToken`); then `maxResults`.
    pub fn script_page_sizes(&self, sizes: &[usize]) {
        self.state().page_plan.extend(sizes.iter().copied());
    }

    /// Every sync token issued so far for `calendar` answers 410 `fullSyncRequired` from now on.
    pub fn invalidate_sync_tokens(&self, calendar: &str) {
        for cursor in self.state().sync_tokens.values_mut() {
            if cursor.calendar == calendar {
                cursor.valid = false;
            }
        }
    }

    /// Execute batch items last to first (answers stay in request order): Google does not
    /// promise an execution order, so a client must not depend on one.
    pub fn set_reverse_batch_execution(&self, reverse: bool) {
        self.state().knobs.reverse_batch_execution = reverse;
    }

    /// Queues a fault; faults apply in queue order to matching calls, after authentication.
    pub fn inject(&self, fault: Injected) {
        self.state().faults.push_back(fault);
    }

    /// A fixed delay before every HTTP request is served (a batch counts once), slept outside
    /// the lock so that concurrent requests overlap as they would over a network.
    pub fn set_latency(&self, latency: Duration) {
        self.shared
            .latency_ms
            .store(latency.as_millis() as u64, Ordering::SeqCst);
    }

    // ---- observation ----

    /// How many calls of `kind` were answered (batch items included).
    pub fn count(&self, kind: Kind) -> usize {
        self.state().calls.iter().filter(|c| c.kind == kind).count()
    }

    /// Every call answered so far, in order (batch items after their envelope's position).
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// The raw HTTP requests, as the [`TestServer`] recorded them.
    pub fn requests(&self) -> Vec<Request> {
        self.server.requests()
    }

    /// How many HTTP requests arrived (a batch is one).
    pub fn http_count(&self) -> usize {
        self.server.count()
    }

    pub fn clear_calls(&self) {
        self.state().calls.clear();
        self.server.clear();
    }

    /// Every stored event of the calendar as GET would return it (cancelled ones and exceptions
    /// included), in creation order.
    pub fn events(&self, calendar: &str) -> Vec<Value> {
        let state = self.state();
        let mut stored: Vec<&Stored> = state.calendar(calendar).events.values().collect();
        stored.sort_by_key(|s| s.created);
        stored.into_iter().map(|s| s.resource.clone()).collect()
    }

    /// The stored events that are not cancelled.
    pub fn live_events(&self, calendar: &str) -> Vec<Value> {
        self.events(calendar)
            .into_iter()
            .filter(|e| e["status"] != "cancelled")
            .collect()
    }

    /// One stored event (or exception) by id.
    pub fn event(&self, calendar: &str, id: &str) -> Option<Value> {
        self.state()
            .calendar(calendar)
            .events
            .get(id)
            .map(|s| s.resource.clone())
    }

    /// The instances of a series as `/instances?showDeleted=true` would list them (the first
    /// `max_instances`), cancelled ones included.
    pub fn instances(&self, calendar: &str, series_id: &str) -> Vec<Value> {
        let state = self.state();
        let cal = state.calendar(calendar);
        events::series_instances(cal, series_id, None, state.knobs.max_instances)
            .unwrap_or_else(|e| panic!("instances of {series_id}: {}", e.message))
    }

    // ---- seeding: the human in Google Calendar ----

    /// Creates an event as a person would in Google Calendar: any field is kept as given
    /// (an unknown `visibility`, `eventType`, `hangoutLink`, `conferenceData`, `attendees`,
    /// `organizer`…); times and `recurrence` must still be valid. Returns the stored event.
    pub fn seed_event(&self, calendar: &str, event: Value) -> Value {
        let mut state = self.state();
        state.calendar(calendar);
        events::insert(
            &mut state,
            calendar,
            event,
            events::Mode::Seed,
            SEED_CREATOR,
        )
        .unwrap_or_else(|e| panic!("seeding an event: {}", e.message))
    }

    /// Merges `patch` into an event or instance (`null` deletes a field); an instance id of a
    /// series (see [`GoogleFake::instance_id`]) turns that instance into a modified exception.
    pub fn seed_patch(&self, calendar: &str, id: &str, patch: Value) -> Value {
        let mut state = self.state();
        state.calendar(calendar);
        events::update(
            &mut state,
            calendar,
            id,
            patch,
            true,
            None,
            events::Mode::Seed,
        )
        .unwrap_or_else(|e| panic!("seeding a patch of {id}: {}", e.message))
    }

    /// Deletes an event (status `cancelled`), or cancels one instance of a series.
    pub fn seed_delete(&self, calendar: &str, id: &str) {
        let mut state = self.state();
        state.calendar(calendar);
        events::delete(&mut state, calendar, id, None)
            .unwrap_or_else(|e| panic!("seeding a delete of {id}: {}", e.message));
    }

    /// The id of the instance of `series_id` that originally starts at `original_start`
    /// (RFC 3339, any offset; or `YYYY-MM-DD` for all-day series).
    pub fn instance_id(&self, series_id: &str, original_start: &str) -> String {
        events::instance_id_for(series_id, original_start)
    }

    /// Patches one instance of a series (own summary, time, visibility…).
    pub fn seed_modify_instance(
        &self,
        calendar: &str,
        series_id: &str,
        original_start: &str,
        patch: Value,
    ) -> Value {
        let id = self.instance_id(series_id, original_start);
        self.seed_patch(calendar, &id, patch)
    }

    /// Cancels one instance of a series.
    pub fn seed_cancel_instance(&self, calendar: &str, series_id: &str, original_start: &str) {
        let id = self.instance_id(series_id, original_start);
        self.seed_delete(calendar, &id);
    }
}

/// Signs `claims` as an RS256 JWT with a PEM (PKCS#8) private key, with `kid` if given.
pub fn sign_assertion(claims: &Value, private_key_pem: &str, kid: Option<&str>) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = kid.map(str::to_string);
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.as_bytes())
        .expect("a PEM RSA private key");
    jsonwebtoken::encode(&header, claims, &key).expect("signing a JWT")
}

impl Calendar {
    /// The `calendar#calendar` resource of `calendars.get`.
    fn resource(&self) -> Value {
        json!({
            "kind": "calendar#calendar",
            "etag": format!("\"c{}\"", self.id.len()),
            "id": self.id,
            "summary": self.summary,
            "timeZone": self.time_zone.name(),
            "conferenceProperties": { "allowedConferenceSolutionTypes": ["hangoutsMeet"] },
        })
    }
}

impl State {
    fn add_calendar(&mut self, id: &str) {
        self.calendars.insert(
            id.to_string(),
            Calendar {
                id: id.to_string(),
                summary: format!("Calendar {id}"),
                time_zone: Tz::UTC,
                access: Access::Owner,
                events: BTreeMap::new(),
            },
        );
    }

    fn calendar(&self, id: &str) -> &Calendar {
        self.calendars
            .get(id)
            .unwrap_or_else(|| panic!("no calendar {id} in the fake"))
    }

    fn calendar_mut(&mut self, id: &str) -> &mut Calendar {
        self.calendars
            .get_mut(id)
            .unwrap_or_else(|| panic!("no calendar {id} in the fake"))
    }

    fn issue_token(&mut self, scopes: Vec<String>, identity: String) -> String {
        let n = self.clock.next();
        let token = format!("ya29.fake-{n:06}-{}", wire::base32hex(&n.to_be_bytes(), 12));
        let expires = Instant::now() + Duration::from_secs(self.knobs.token_lifetime);
        self.tokens.insert(
            token.clone(),
            AccessToken {
                expires,
                revoked: false,
                scopes,
                identity,
            },
        );
        token
    }

    /// The next queued fault for a call of `kind`, if any.
    fn take_fault(&mut self, kind: Kind) -> Option<ApiError> {
        let index = self.faults.iter().position(|f| {
            f.only.is_none_or(|k| k == kind) && (f.only.is_some() || kind != Kind::Batch)
        })?;
        let injected = &mut self.faults[index];
        let mut error = injected.fault.error();
        error.retry_after = injected.retry_after;
        injected.times -= 1;
        if injected.times == 0 {
            self.faults.remove(index);
        }
        Some(error)
    }

    /// The calendar a call names, if the account may see it (and write it, for writes).
    fn visible_calendar(
        &mut self,
        requested: &str,
        identity: &str,
        write: bool,
    ) -> Result<&mut Calendar, ApiError> {
        let id = if requested == "primary" {
            identity
        } else {
            requested
        };
        let calendar = self.calendars.get_mut(id).ok_or_else(ApiError::not_found)?;
        match calendar.access {
            Access::Hidden => Err(ApiError::not_found()),
            Access::Refused => Err(ApiError::forbidden()),
            Access::Reader if write => Err(ApiError::writer_access_required()),
            _ => Ok(calendar),
        }
    }

    /// Answers one API call (a request or a batch item) and logs it.
    fn api_call(&mut self, request: &ApiRequest, in_batch: bool) -> Reply {
        let route = wire::Route::parse(&request.method, &request.path);
        let reply = match self.serve(&route, request) {
            Ok(reply) => wire::apply_fields_mask(reply, request.param("fields")),
            Err(error) => error.reply(),
        };
        self.calls.push(Call {
            kind: route.kind,
            method: request.method.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
            status: reply.status,
            in_batch,
            body: serde_json::from_slice(&request.body).ok(),
        });
        reply
    }

    fn serve(&mut self, route: &wire::Route, request: &ApiRequest) -> Result<Reply, ApiError> {
        let (identity, scopes) = auth::authenticate(self, request.header("Authorization"))?;
        if let Some(fault) = self.take_fault(route.kind) {
            return Err(fault);
        }
        if route.kind == Kind::Other {
            return Err(ApiError::not_found());
        }
        auth::check_scopes(&scopes, route.kind)?;
        wire::check_query(route.kind, &request.query, self.knobs.lenient_query)?;
        let requested = route.calendar.as_deref().unwrap_or("");
        let write = !route.kind.is_read();
        let calendar = self
            .visible_calendar(requested, &identity, write)?
            .id
            .clone();
        let event = route.event.as_deref().unwrap_or("");
        self.serve_event_call(route.kind, &calendar, event, request, &identity)
    }

    fn serve_event_call(
        &mut self,
        kind: Kind,
        calendar: &str,
        event: &str,
        request: &ApiRequest,
        identity: &str,
    ) -> Result<Reply, ApiError> {
        let if_match = request.header("If-Match");
        let delegated = identity != CLIENT_EMAIL;
        match kind {
            Kind::Calendar => Ok(Reply::json(200, self.calendars[calendar].resource())),
            Kind::List => listing::list(self, calendar, request),
            Kind::Instances => listing::instances(self, calendar, event, request),
            Kind::Get => events::get(self, calendar, event, request.header("If-None-Match")),
            Kind::Insert => {
                let mode = events::Mode::api(request, delegated)?;
                let body = wire::json_body(request)?;
                events::insert(self, calendar, body, mode, identity).map(|e| Reply::json(200, e))
            }
            Kind::Update | Kind::Patch => {
                let mode = events::Mode::api(request, delegated)?;
                let body = wire::json_body(request)?;
                events::update(
                    self,
                    calendar,
                    event,
                    body,
                    kind == Kind::Patch,
                    if_match,
                    mode,
                )
                .map(|e| Reply::json(200, e))
            }
            Kind::Delete => {
                events::Mode::api(request, delegated)?;
                events::delete(self, calendar, event, if_match).map(|()| Reply::empty(204))
            }
            Kind::Token | Kind::Batch | Kind::Other => Err(ApiError::not_found()),
        }
    }
}

/// The TestServer handler: latency first (no lock held), then one of the three endpoints.
fn handle(shared: &Shared, request: &Request) -> Response {
    let latency = shared.latency_ms.load(Ordering::SeqCst);
    if latency > 0 {
        thread::sleep(Duration::from_millis(latency));
    }
    let reply = match (request.method.as_str(), request.path_only()) {
        ("POST", "/token") => auth::token_endpoint(&mut lock(&shared.state), request),
        (_, "/batch/calendar/v3") => batch::handle(&mut lock(&shared.state), request),
        _ => {
            let call = ApiRequest::from_request(request);
            lock(&shared.state).api_call(&call, false)
        }
    };
    to_response(reply)
}

fn to_response(reply: Reply) -> Response {
    let mut response = match (&reply.body, reply.raw) {
        (Some(body), _) => Response::json(reply.status, body),
        (None, Some(raw)) => Response::new(reply.status).body(raw),
        (None, None) => Response::new(reply.status),
    };
    for (name, value) in reply.headers {
        response = response.header(&name, value);
    }
    response
}
