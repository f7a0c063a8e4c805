//! HTTP for every remote provider, in one place: the client (reqwest blocking, rustls),
//! timeouts, the retry policy, and the record of every attempt for the run's API metrics.
//!
//! TLS trusts the system's certificate store — `SSL_CERT_FILE` and `SSL_CERT_DIR` when set,
//! as OpenSSL reads them, else the distribution's bundle — so a server with an
//! organisation's own CA works once that CA is installed. Only on a system whose store holds
//! no certificate at all (a bare container) are the roots built into calsync used instead.
//!
//! Providers describe requests and read answers; they never loop. What is retried (DESIGN.md,
//! Resilience): 5xx, 429, 423, 403 with a rate-limit reason, connection errors, timeouts and
//! bodies cut short — up to `retries` times, exponential backoff from `backoff_ms` with full
//! jitter, a `Retry-After` always honoured, and no retry that would end after the run's one
//! deadline. Everything else is returned at once. An endpoint that answers "too much at
//! once" (423, 429, 503, a rate-limit 403) gets one request at a time for the rest of the run
//! (see `Lane`): retrying alone does not help a server that locks against overlapping writes.

pub mod breaker;
pub mod oauth;
mod retry;

pub use breaker::Breakers;
pub use retry::{RetryPolicy, backoff_delay, parse_retry_after};

use crate::config::NetSettings;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One HTTP attempt, for the per-endpoint metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCall {
    pub endpoint: String,
    pub method: String,
    /// HTTP status, or 0 when no answer came (connection error, timeout).
    pub status: u16,
    pub attempt: u32,
    pub latency_ms: i64,
    /// Unix milliseconds.
    pub at: i64,
}

/// One request, as a provider describes it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: reqwest::Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub auth: Auth,
}

/// How a request authenticates.
#[derive(Clone, Default)]
pub enum Auth {
    #[default]
    None,
    Basic {
        user: String,
        password: String,
    },
    Bearer(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Basic { .. } => f.write_str("Basic(***)"),
            Auth::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

impl Request {
    pub fn new(method: reqwest::Method, url: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            auth: Auth::None,
        }
    }

    pub fn get(url: impl Into<String>) -> Self {
        Request::new(reqwest::Method::GET, url)
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }
}

/// A complete answer (the body was read to its end).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a request did not get a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// An answer whose status is not 2xx/3xx (after retries, when it was retryable).
    #[error("{endpoint}: HTTP {status}{}", reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())]
    Status {
        endpoint: String,
        status: u16,
        /// A short machine reason from the body when one is known (e.g. `rateLimitExceeded`).
        reason: Option<String>,
        response: Box<Response>,
    },
    /// No answer: connection refused or dropped, DNS, TLS, timeout, or a body cut short.
    #[error("{endpoint}: {detail}")]
    Transport { endpoint: String, detail: String },
    /// The circuit breaker for the endpoint is open; it was not called.
    #[error("{endpoint}: circuit breaker open, not called")]
    BreakerOpen { endpoint: String },
    /// The run was asked to stop before the request was sent.
    #[error("{endpoint}: interrupted")]
    Interrupted { endpoint: String },
    /// A token endpoint refused the grant (bad secret or key, app unknown, not allowed).
    #[error("{endpoint}: {detail}")]
    AuthRefused { endpoint: String, detail: String },
    /// calsync refused what the remote asked or sent: a redirect or learned URL that breaks
    /// the URL rule, a redirect loop or chain too long, an answer over the size cap. Not
    /// retried: the same request would get the same refusal.
    #[error("{endpoint}: {detail}")]
    Refused { endpoint: String, detail: String },
}

impl NetError {
    /// The endpoint (scheme://host:port) the error is about.
    pub fn endpoint(&self) -> &str {
        match self {
            NetError::Status { endpoint, .. }
            | NetError::Transport { endpoint, .. }
            | NetError::BreakerOpen { endpoint }
            | NetError::Interrupted { endpoint }
            | NetError::AuthRefused { endpoint, .. }
            | NetError::Refused { endpoint, .. } => endpoint,
        }
    }

    /// A failure that retrying later may fix (exit 75 when it ends a read).
    pub fn is_transient(&self) -> bool {
        match self {
            NetError::Status { status, reason, .. } => {
                retry::is_retryable_status(*status, reason.as_deref())
            }
            NetError::Transport { .. } => true,
            NetError::BreakerOpen { .. }
            | NetError::Interrupted { .. }
            | NetError::AuthRefused { .. }
            | NetError::Refused { .. } => false,
        }
    }

    /// Credentials refused (401, or a 403 that is not a rate limit).
    pub fn is_auth(&self) -> bool {
        match self {
            NetError::AuthRefused { .. } | NetError::Status { status: 401, .. } => true,
            NetError::Status {
                status: 403,
                reason,
                ..
            } => !retry::is_rate_limit_reason(reason.as_deref()),
            _ => false,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            NetError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The most redirects followed for one request (DESIGN.md: a longer chain or a loop fails).
pub const MAX_REDIRECTS: usize = 10;

/// Checks a URL calsync learned from a remote (a redirect, a CalDAV discovery href, a Graph
/// or Google next link) against the URL it came from: the configured-URL rule (`https://`,
/// or `http://` to a loopback host) holds for it too, and an `https://` origin never hands
/// calsync down to `http://`.
///
/// # Errors
/// [`NetError::Refused`] naming the learned URL's origin.
pub fn check_learned_url(from: &str, learned: &str) -> Result<(), NetError> {
    let refused = |detail: String| NetError::Refused {
        endpoint: endpoint_of(from),
        detail,
    };
    let url = reqwest::Url::parse(learned)
        .map_err(|_| refused("the remote named a URL that cannot be read".into()))?;
    let origin = endpoint_of(learned);
    match url.scheme() {
        "https" => Ok(()),
        "http" if !is_loopback(&url) => Err(refused(format!(
            "refused {origin}: plain http:// is allowed to loopback hosts only"
        ))),
        "http" if from.starts_with("https:") => Err(refused(format!(
            "refused {origin}: a remote reached over https:// may not send calsync to http://"
        ))),
        "http" => Ok(()),
        other => Err(refused(format!(
            "refused {origin}: the scheme '{other}' is not supported"
        ))),
    }
}

/// Whether a URL's host is a loopback address (or `localhost`).
pub fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The endpoint of a URL as the breaker and the metrics name it: `scheme://host:port`.
pub fn endpoint_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}:{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port_or_known_default().unwrap_or(0)
        ),
        Err(_) => "invalid-url".to_string(),
    }
}

/// The HTTP client of one run, shared by its providers (cheap to clone).
#[derive(Clone)]
pub struct Http {
    client: reqwest::blocking::Client,
    policy: RetryPolicy,
    max_response_bytes: u64,
    deadline: Instant,
    calls: Arc<Mutex<Vec<ApiCall>>>,
    breakers: Breakers,
    /// One lane per endpoint: how requests to it may overlap (see [`Lane`]).
    lanes: Arc<Mutex<HashMap<String, Arc<Lane>>>>,
}

/// Requests to one endpoint share its lane. Until the endpoint asks to slow down
/// ([`retry::asks_to_slow_down`]) they overlap freely (each holds the lane's lock shared);
/// from then on, for the rest of the run, each holds it alone — waiting for those still in
/// flight — so that whatever the write pool's concurrency, that server gets one request at a
/// time. (A server that serialises writes behind one lock answers 423 to every write that
/// overlaps another; more in flight only makes more of them, until retries run out.)
#[derive(Default)]
struct Lane {
    slow: std::sync::atomic::AtomicBool,
    lock: std::sync::RwLock<()>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("policy", &self.policy)
            .finish()
    }
}

impl Http {
    /// A client for one run, with the run's deadline starting now.
    ///
    /// # Errors
    /// When the TLS stack cannot be set up.
    pub fn new(net: &NetSettings) -> Result<Http, String> {
        let timeout = Duration::from_secs(net.timeout_seconds);
        let client = reqwest::blocking::Client::builder()
            .tls_built_in_native_certs(true)
            .tls_built_in_webpki_certs(!system_has_roots())
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(concat!("calsync/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(net.concurrency.max(4))
            .redirect(redirect_policy())
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(Http {
            client,
            policy: RetryPolicy {
                retries: net.retries,
                backoff: Duration::from_millis(net.backoff_ms),
            },
            max_response_bytes: net.max_response_bytes,
            deadline: Instant::now() + Duration::from_secs(net.deadline_seconds),
            calls: Arc::new(Mutex::new(Vec::new())),
            breakers: Breakers::default(),
            lanes: Arc::default(),
        })
    }

    /// Uses these circuit breakers (loaded from the state file) for every call.
    pub fn with_breakers(mut self, breakers: Breakers) -> Self {
        self.breakers = breakers;
        self
    }

    /// The run's circuit breakers.
    pub fn breakers(&self) -> &Breakers {
        &self.breakers
    }

    /// Every attempt made so far (drained: each call is returned once).
    pub fn take_calls(&self) -> Vec<ApiCall> {
        std::mem::take(&mut *self.calls.lock().expect("metrics lock"))
    }

    /// Sends a request, retrying per the policy, and reads the whole answer.
    ///
    /// # Errors
    /// [`NetError`] once retrying is over or not allowed.
    pub fn send(&self, req: &Request) -> Result<Response, NetError> {
        let endpoint = endpoint_of(&req.url);
        if crate::interrupt::requested() {
            return Err(NetError::Interrupted { endpoint });
        }
        if !self
            .breakers
            .admit(&endpoint, chrono::Utc::now().timestamp())
        {
            return Err(NetError::BreakerOpen { endpoint });
        }
        let result = self.send_with_retries(req, &endpoint);
        match &result {
            Ok(_) => self
                .breakers
                .record(&endpoint, false, chrono::Utc::now().timestamp()),
            Err(NetError::Interrupted { .. } | NetError::BreakerOpen { .. }) => {}
            Err(e) => {
                self.breakers
                    .record(&endpoint, e.is_transient(), chrono::Utc::now().timestamp())
            }
        }
        result
    }

    fn send_with_retries(&self, req: &Request, endpoint: &str) -> Result<Response, NetError> {
        let endpoint = endpoint.to_string();
        let mut attempt: u32 = 0;
        loop {
            if crate::interrupt::requested() {
                return Err(NetError::Interrupted { endpoint });
            }
            attempt += 1;
            let lane = self.lane(&endpoint);
            let started = Instant::now();
            let result = {
                use std::sync::PoisonError;
                if lane.slow.load(std::sync::atomic::Ordering::SeqCst) {
                    let _alone = lane.lock.write().unwrap_or_else(PoisonError::into_inner);
                    self.attempt(req, &endpoint)
                } else {
                    let _shared = lane.lock.read().unwrap_or_else(PoisonError::into_inner);
                    self.attempt(req, &endpoint)
                }
            };
            let latency = started.elapsed();
            if let Err(NetError::Status { status, reason, .. }) = &result
                && retry::asks_to_slow_down(*status, reason.as_deref())
                && !lane.slow.swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                log::info!(
                    event = "http.slow_down",
                    endpoint = endpoint.as_str(),
                    status = *status;
                    "the server asked to slow down: one request at a time to it for the rest of the run"
                );
            }
            self.record(&endpoint, req, &result, attempt, latency);
            let retry_after = match &result {
                Ok(_) => return result,
                Err(e) if !e.is_transient() => return result,
                Err(NetError::Status { response, .. }) => response
                    .header("retry-after")
                    .and_then(|v| parse_retry_after(v, chrono::Utc::now())),
                Err(_) => None,
            };
            if attempt > self.policy.retries {
                return result;
            }
            let wait = retry_after.unwrap_or_else(|| backoff_delay(&self.policy, attempt));
            if Instant::now() + wait > self.deadline {
                log::warn!(
                    event = "http.deadline",
                    endpoint = endpoint.as_str(),
                    wait_ms = wait.as_millis() as u64;
                    "not retrying: the run's deadline would pass"
                );
                return result;
            }
            log::info!(
                event = "http.retry",
                endpoint = endpoint.as_str(),
                method = req.method.as_str(),
                attempt = attempt,
                wait_ms = wait.as_millis() as u64,
                status = result.as_ref().err().and_then(NetError::status).unwrap_or(0);
                "retrying after a transient failure"
            );
            std::thread::sleep(wait);
        }
    }

    /// The lane of an endpoint (made on its first request).
    fn lane(&self, endpoint: &str) -> Arc<Lane> {
        let mut lanes = self.lanes.lock().expect("lanes lock");
        if let Some(lane) = lanes.get(endpoint) {
            return lane.clone();
        }
        let lane = Arc::new(Lane::default());
        lanes.insert(endpoint.to_string(), lane.clone());
        lane
    }

    fn attempt(&self, req: &Request, endpoint: &str) -> Result<Response, NetError> {
        let mut builder = self.client.request(req.method.clone(), &req.url);
        for (name, value) in &req.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder = match &req.auth {
            Auth::None => builder,
            Auth::Basic { user, password } => builder.basic_auth(user, Some(password)),
            Auth::Bearer(token) => builder.bearer_auth(token),
        };
        if let Some(body) = &req.body {
            builder = builder.body(body.clone());
        }
        let transport = |e: reqwest::Error| {
            if e.is_redirect() {
                // Our redirect policy refused it (or the chain was too long): retrying
                // would be refused the same way.
                NetError::Refused {
                    endpoint: endpoint.to_string(),
                    detail: describe_transport_error(&e),
                }
            } else {
                NetError::Transport {
                    endpoint: endpoint.to_string(),
                    detail: describe_transport_error(&e),
                }
            }
        };
        let resp = builder.send().map_err(transport)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let expected_len = resp.content_length();
        let body = self.read_body(resp, endpoint)?;
        if let Some(len) = expected_len
            && (body.len() as u64) < len
        {
            return Err(NetError::Transport {
                endpoint: endpoint.to_string(),
                detail: format!("the answer was cut short: {} of {len} bytes", body.len()),
            });
        }
        let response = Response {
            status,
            headers,
            body: body.to_vec(),
        };
        if status >= 400 {
            let reason = retry::reason_of(&response.body);
            return Err(NetError::Status {
                endpoint: endpoint.to_string(),
                status,
                reason,
                response: Box::new(response),
            });
        }
        Ok(response)
    }

    /// Reads a body to its end, but no further than the size cap (counted after
    /// decompression: a small gzip answer can inflate to gigabytes).
    fn read_body(
        &self,
        resp: reqwest::blocking::Response,
        endpoint: &str,
    ) -> Result<Vec<u8>, NetError> {
        use std::io::Read;
        let cap = self.max_response_bytes;
        let mut body = Vec::new();
        resp.take(cap.saturating_add(1))
            .read_to_end(&mut body)
            .map_err(|e| NetError::Transport {
                endpoint: endpoint.to_string(),
                detail: format!("the answer was cut short: {}", describe_io_error(&e)),
            })?;
        if body.len() as u64 > cap {
            return Err(NetError::Refused {
                endpoint: endpoint.to_string(),
                detail: format!(
                    "the answer is larger than {} MiB ([net] max_response_mib); not read",
                    cap / (1024 * 1024)
                ),
            });
        }
        Ok(body)
    }

    fn record(
        &self,
        endpoint: &str,
        req: &Request,
        result: &Result<Response, NetError>,
        attempt: u32,
        latency: Duration,
    ) {
        let status = match result {
            Ok(r) => r.status,
            Err(e) => e.status().unwrap_or(0),
        };
        // By origin only: a URL's path can be a secret (a private iCal address), and a
        // mailbox (Graph).
        log::debug!(
            event = "http.request",
            method = req.method.as_str(),
            endpoint = endpoint,
            status = status,
            attempt = attempt,
            latency_ms = latency.as_millis() as u64;
            "HTTP request"
        );
        let call = ApiCall {
            endpoint: endpoint.to_string(),
            method: req.method.to_string(),
            status,
            attempt,
            latency_ms: latency.as_millis() as i64,
            at: chrono::Utc::now().timestamp_millis(),
        };
        self.calls.lock().expect("metrics lock").push(call);
    }
}

/// Follows at most [`MAX_REDIRECTS`] redirects, each to a URL that passes
/// [`check_learned_url`] from the one before. (Credentials are not sent on a redirect to
/// another host: reqwest drops `Authorization` there.)
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!(
                "more than {MAX_REDIRECTS} redirects (a loop, or a chain too long)"
            ));
        }
        let from = attempt
            .previous()
            .last()
            .map(|u| u.as_str().to_string())
            .unwrap_or_default();
        match check_learned_url(&from, attempt.url().as_str()) {
            Ok(()) => attempt.follow(),
            Err(e) => {
                let detail = match e {
                    NetError::Refused { detail, .. } => detail,
                    other => other.to_string(),
                };
                attempt.error(format!("redirect {detail}"))
            }
        }
    })
}

/// An I/O error while reading a body, in one line.
fn describe_io_error(e: &std::io::Error) -> String {
    match e.get_ref() {
        Some(inner) => match inner.downcast_ref::<reqwest::Error>() {
            Some(re) => describe_transport_error(re),
            None => inner.to_string(),
        },
        None => e.to_string(),
    }
}

/// Whether the system's certificate store (or `SSL_CERT_FILE` / `SSL_CERT_DIR`) holds any
/// certificate; looked at once per process. Problems reading it (an `SSL_CERT_FILE` that
/// does not exist) are logged as a warning: TLS to servers it should vouch for will fail.
fn system_has_roots() -> bool {
    static ROOTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            log::warn!(event = "tls.roots"; "cannot read the system's certificate store: {e}");
        }
        if found.certs.is_empty() {
            log::warn!(event = "tls.roots";
                       "the system's certificate store holds no certificate: trusting calsync's built-in roots");
        }
        !found.certs.is_empty()
    })
}

/// A transport error in one line, without URLs (they can carry mailbox addresses).
fn describe_transport_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "error reading the answer"
    } else if e.is_redirect() {
        "redirect not followed"
    } else {
        "request failed"
    };
    let mut detail = kind.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() && !detail.contains(&text) {
            detail.push_str(": ");
            detail.push_str(&text);
        }
        source = s.source();
    }
    detail
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A server that serialises writes behind one lock, as Xandikos does: a request that
    /// arrives while another is being handled is answered 423 Locked at once.
    struct LockingServer {
        url: String,
        locked: Arc<AtomicUsize>,
        written: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
        accept: Option<std::thread::JoinHandle<()>>,
    }

    impl LockingServer {
        fn start() -> LockingServer {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let (locked, written) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let stop = Arc::new(AtomicBool::new(false));
            let busy = Arc::new(AtomicUsize::new(0));
            let accept = {
                let (locked, written, stop) = (locked.clone(), written.clone(), stop.clone());
                std::thread::spawn(move || {
                    for stream in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(stream) = stream else { continue };
                        let (locked, written, busy) =
                            (locked.clone(), written.clone(), busy.clone());
                        std::thread::spawn(move || serve(stream, &locked, &written, &busy));
                    }
                })
            };
            LockingServer {
                url,
                locked,
                written,
                stop,
                accept: Some(accept),
            }
        }
    }

    impl Drop for LockingServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
            if let Some(accept) = self.accept.take() {
                let _ = accept.join();
            }
        }
    }

    /// Answers the requests of one connection until the client closes it.
    fn serve(stream: TcpStream, locked: &AtomicUsize, written: &AtomicUsize, busy: &AtomicUsize) {
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        loop {
            let mut length = 0usize;
            let mut line = String::new();
            let mut lines = 0;
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                lines += 1;
                if line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap();
                }
                assert!(lines < 100, "a request head of bounded size");
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            let status = if busy.fetch_add(1, Ordering::SeqCst) > 0 {
                locked.fetch_add(1, Ordering::SeqCst);
                "423 Locked"
            } else {
                // The write itself: long enough that writes sent together overlap.
                std::thread::sleep(Duration::from_millis(10));
                written.fetch_add(1, Ordering::SeqCst);
                "201 Created"
            };
            busy.fetch_sub(1, Ordering::SeqCst);
            let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
            if writer.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    }

    /// A server that answers 423 to writes that overlap gets one request at a time after its
    /// first 423: every write lands within its retries, and the 423s are the few sent before
    /// calsync knew (with four in flight all along, most writes would overlap, and some would
    /// run out of retries).
    #[test]
    fn a_server_that_asks_to_slow_down_gets_one_request_at_a_time() {
        let server = LockingServer::start();
        let settings = crate::config::parse(
            std::path::Path::new("/etc/calsync/calsync.toml"),
            "[net]\nretries = 3\nbackoff_ms = 5\n\n[[pair]]\nname = \"p\"\n[pair.source]\n\
             kind = \"ics\"\npath = \"feed.ics\"\n[pair.target]\nkind = \"ics\"\npath = \"out.ics\"\n",
            None,
            &crate::config::Environment::default(),
        )
        .unwrap();
        let http = Http::new(&settings.net).unwrap();
        let units: Vec<usize> = (0..40).collect();
        let results = crate::providers::pool::run(
            &units,
            4,
            |i| {
                let req = Request::new(reqwest::Method::PUT, format!("{}/e{i}.ics", server.url))
                    .body(b"BEGIN:VCALENDAR".to_vec());
                http.send(&req).map(|r| r.status)
            },
            |_| false,
            |_| unreachable!("nothing stops the pool"),
        );
        let failed: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
        assert!(failed.is_empty(), "{failed:?}");
        assert_eq!(server.written.load(Ordering::SeqCst), 40);
        let locked = server.locked.load(Ordering::SeqCst);
        assert!(
            (1..=8).contains(&locked),
            "{locked} answers 423: only writes sent before the first 423 overlap"
        );
    }
}
