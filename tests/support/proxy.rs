//! `FaultProxy`: a reverse proxy on `127.0.0.1:0` that breaks the network on purpose.
//!
//! Put it between calsync and any loopback backend (a [`TestServer`](super::http::TestServer),
//! [`Radicale`](super::radicale::Radicale), a fake) to test what DESIGN.md promises under
//! failure: retries and `Retry-After`, the breaker, the deletion guard after a cut-short read,
//! idempotent creates after a lost response. Faults wait in a queue: [`FaultProxy::inject`] says
//! "the next N requests matching this filter get this fault"; the first queued rule that matches
//! a request (and has uses left) applies to it, everything else passes through.
//!
//! Passing through is byte-faithful apart from the `Host` header, which names the backend: the
//! request line, the other header fields in order, the body as framed (chunked stays chunked),
//! and the backend's answer as it came (status line, headers, `ETag`, 207 multistatus, 304).
//! Each request goes to the backend on a fresh connection (Radicale's server closes after every
//! answer anyway); the client keeps its keep-alive connection to the proxy where the answer
//! allows it.
//!
//! Every exchange is recorded (method, path, status the client got, arrival and completion
//! instants, bytes both ways), so tests assert on what happened, not on wall-clock budgets.
//! Dropping the proxy stops it, like the `TestServer`.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::http::{
    Background, Connection, Framing, Head, Headers, lock, read_body, read_head, reason,
    request_framing, response_framing, wants_close,
};

/// How long the proxy waits to connect to the backend.
const BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the proxy waits on a backend read or write; a bound, not an expectation.
const BACKEND_IO_TIMEOUT: Duration = Duration::from_secs(60);

/// What happens to a request the fault queue picks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Close the client's connection without answering; the backend never sees the request.
    Drop,
    /// Forward the request, then close the client's connection without answering: the backend
    /// did the write, the client never learns it (a lost response).
    LoseResponse,
    /// Wait this long, then forward as usual.
    Delay(Duration),
    /// Answer this status (with these headers and body) without forwarding.
    Status {
        code: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Forward, then send the backend's real head (its `Content-Length` counts the full body)
    /// but only the first `keep_bytes` bytes of the body as framed, and close.
    Truncate { keep_bytes: usize },
}

impl Fault {
    /// Answer `code` with an empty body, without forwarding.
    pub fn status(code: u16) -> Fault {
        Fault::Status {
            code,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Answer `code` (429, 503) with `Retry-After: seconds`, without forwarding.
    pub fn retry_after(code: u16, seconds: u64) -> Fault {
        Fault::Status {
            code,
            headers: vec![("Retry-After".to_string(), seconds.to_string())],
            body: Vec::new(),
        }
    }
}

/// Which requests a queued fault applies to: all of them, or those of a method and/or whose
/// path (query included) contains a substring.
#[derive(Clone, Debug, Default)]
pub struct Matching {
    method: Option<String>,
    path_contains: Option<String>,
}

impl Matching {
    /// Every request.
    pub fn any() -> Matching {
        Matching::default()
    }

    /// Only requests of this method (case-insensitive).
    pub fn method(mut self, method: &str) -> Matching {
        self.method = Some(method.to_string());
        self
    }

    /// Only requests whose path and query contain `part`.
    pub fn path_containing(mut self, part: &str) -> Matching {
        self.path_contains = Some(part.to_string());
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p))
    }
}

#[derive(Debug)]
struct QueuedFault {
    fault: Fault,
    remaining: usize,
    matching: Matching,
}

/// One request that went through the proxy, and what became of it.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub method: String,
    /// Path and query, as the client sent them.
    pub path: String,
    pub request_headers: Headers,
    /// The fault the queue applied, if any.
    pub fault: Option<Fault>,
    /// True when the request reached the backend.
    pub forwarded: bool,
    /// The status the client was sent; `None` when it got no answer (`Drop`, `LoseResponse`).
    pub status: Option<u16>,
    /// When the proxy had read the request's head.
    pub arrived: Instant,
    /// When the proxy had its answer ready and began to send it (or to close the connection
    /// instead); the record is visible from then on, before the client has the answer.
    pub completed: Instant,
    /// Request bytes as received from the client (head and framed body).
    pub request_bytes: usize,
    /// Response bytes written to the client.
    pub response_bytes: usize,
}

impl Exchange {
    /// How long the request stayed in the proxy, injected delay included.
    pub fn duration(&self) -> Duration {
        self.completed.duration_since(self.arrived)
    }
}

struct Shared {
    backend: SocketAddr,
    /// The `Host` value the backend expects.
    backend_host: String,
    faults: Mutex<Vec<QueuedFault>>,
    exchanges: Mutex<Vec<Exchange>>,
}

/// A recording, fault-injecting reverse proxy in front of one loopback backend.
pub struct FaultProxy {
    shared: Arc<Shared>,
    background: Background,
}

impl FaultProxy {
    /// Starts a proxy for `backend_url` (`http://127.0.0.1:PORT`, any path is ignored: the
    /// proxy's paths are the backend's paths). Panics on anything but a loopback http URL.
    pub fn start(backend_url: &str) -> FaultProxy {
        let url = reqwest::Url::parse(backend_url)
            .unwrap_or_else(|e| panic!("FaultProxy backend {backend_url:?} is not a URL: {e}"));
        assert_eq!(
            url.scheme(),
            "http",
            "FaultProxy forwards plain http only: {backend_url}"
        );
        let host = url.host_str().expect("an http URL has a host");
        assert!(
            matches!(host, "127.0.0.1" | "localhost" | "[::1]"),
            "tests talk to loopback only, not {host}"
        );
        let port = url.port_or_known_default().expect("an http URL has a port");
        let backend = (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .unwrap_or_else(|| panic!("resolving the FaultProxy backend {host}:{port}"));
        let shared = Arc::new(Shared {
            backend,
            backend_host: format!("{host}:{port}"),
            faults: Mutex::new(Vec::new()),
            exchanges: Mutex::new(Vec::new()),
        });
        let background = {
            let shared = Arc::clone(&shared);
            Background::spawn("fault-proxy", move |stream, connection| {
                serve_client(stream, connection, &shared);
            })
        };
        FaultProxy { shared, background }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash: use it where the backend's URL went.
    pub fn url(&self) -> String {
        format!("http://{}", self.background.addr)
    }

    /// Queues `fault` for the next `times` requests that `matching` selects.
    pub fn inject(&self, fault: Fault, times: usize, matching: Matching) {
        if times > 0 {
            lock(&self.shared.faults).push(QueuedFault {
                fault,
                remaining: times,
                matching,
            });
        }
    }

    /// How many fault applications are still queued (0 once every injected fault has fired).
    pub fn pending_faults(&self) -> usize {
        lock(&self.shared.faults).iter().map(|f| f.remaining).sum()
    }

    /// Forgets the queued faults.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Every finished exchange, in arrival order.
    pub fn requests(&self) -> Vec<Exchange> {
        let mut exchanges = lock(&self.shared.exchanges).clone();
        exchanges.sort_by_key(|e| e.arrived);
        exchanges
    }

    /// How many requests went through (finished), faulted or not.
    pub fn count(&self) -> usize {
        lock(&self.shared.exchanges).len()
    }

    /// How many requests of `method` went through.
    pub fn count_method(&self, method: &str) -> usize {
        lock(&self.shared.exchanges)
            .iter()
            .filter(|e| e.method.eq_ignore_ascii_case(method))
            .count()
    }

    /// Requests by method, e.g. `{"PROPFIND": 1, "PUT": 20}`.
    pub fn counts_by_method(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for exchange in lock(&self.shared.exchanges).iter() {
            *counts.entry(exchange.method.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Forgets the recorded exchanges (queued faults stay).
    pub fn clear(&self) {
        lock(&self.shared.exchanges).clear();
    }
}

impl Shared {
    /// Takes one use of the first queued fault that matches the request.
    fn take_fault(&self, method: &str, path: &str) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        let index = faults
            .iter()
            .position(|f| f.remaining > 0 && f.matching.matches(method, path))?;
        let queued = &mut faults[index];
        queued.remaining -= 1;
        let fault = queued.fault.clone();
        if queued.remaining == 0 {
            faults.remove(index);
        }
        Some(fault)
    }
}

/// The backend's answer to one forwarded request.
struct BackendAnswer {
    head: Head,
    status: u16,
    /// The body as framed on the wire.
    body: Vec<u8>,
    /// The client connection must close after this answer.
    close: bool,
}

/// Serves one client connection: request by request, fault or forward, record.
fn serve_client(stream: TcpStream, connection: &Connection, shared: &Shared) {
    let Ok(mut client) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let head = match read_head(&mut reader) {
            Ok(Some(head)) => head,
            Ok(None) | Err(_) => return,
        };
        let arrived = Instant::now();
        let mut parts = head.start_line.splitn(3, ' ');
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let version = parts.next().unwrap_or("").to_string();
        if version == "HTTP/1.1"
            && head.headers.has_token("Expect", "100-continue")
            && client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err()
        {
            return;
        }
        let Ok(body) = request_framing(&head.headers).and_then(|f| read_body(&mut reader, f))
        else {
            return;
        };
        let fault = shared.take_fault(&method, &path);
        let mut exchange = Exchange {
            method,
            path,
            request_headers: head.headers.clone(),
            fault: fault.clone(),
            forwarded: false,
            status: None,
            arrived,
            completed: arrived,
            request_bytes: head.raw.len() + body.raw.len(),
            response_bytes: 0,
        };
        let client_close = wants_close(&version, &head.headers);
        // What to send back, and whether the connection may stay open afterwards.
        let (answer, keep_open) = match &fault {
            Some(Fault::Drop) => (Vec::new(), false),
            Some(Fault::Status {
                code,
                headers,
                body,
            }) => {
                exchange.status = Some(*code);
                (
                    status_answer(*code, headers, body, client_close),
                    !client_close,
                )
            }
            _ => {
                // A proxy dropped during the delay just goes away.
                if let Some(Fault::Delay(delay)) = &fault
                    && !connection.stop.sleep(*delay)
                {
                    return;
                }
                let forwarded = forward(shared, connection, &exchange.method, &head, &body.raw);
                exchange.forwarded = forwarded.is_ok();
                let backend = forwarded.unwrap_or_else(|e| bad_gateway(shared.backend, &e));
                let mut bytes = backend.head.raw;
                match &fault {
                    // The backend answered; the client gets nothing but a closed connection.
                    Some(Fault::LoseResponse) => (Vec::new(), false),
                    Some(Fault::Truncate { keep_bytes }) => {
                        exchange.status = Some(backend.status);
                        let kept = backend.body.len().min(*keep_bytes);
                        bytes.extend_from_slice(&backend.body[..kept]);
                        (bytes, false)
                    }
                    _ => {
                        exchange.status = Some(backend.status);
                        bytes.extend_from_slice(&backend.body);
                        (bytes, !backend.close && !client_close)
                    }
                }
            }
        };
        exchange.response_bytes = answer.len();
        // Recorded before the client can see the answer, so a test that reads the record right
        // after its request returned always finds it.
        exchange.completed = Instant::now();
        lock(&shared.exchanges).push(exchange);
        let written = client.write_all(&answer).and_then(|()| client.flush());
        if written.is_err() || !keep_open {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Sends the request to the backend on a fresh connection and reads its whole answer.
fn forward(
    shared: &Shared,
    connection: &Connection,
    method: &str,
    head: &Head,
    raw_body: &[u8],
) -> io::Result<BackendAnswer> {
    let backend = TcpStream::connect_timeout(&shared.backend, BACKEND_CONNECT_TIMEOUT)?;
    connection.track(&backend);
    backend.set_read_timeout(Some(BACKEND_IO_TIMEOUT))?;
    backend.set_write_timeout(Some(BACKEND_IO_TIMEOUT))?;
    let mut request = format!("{}\r\n", head.start_line);
    for (name, value) in head.headers.iter() {
        let value = if name.eq_ignore_ascii_case("Host") {
            shared.backend_host.as_str()
        } else {
            value
        };
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !head.headers.contains("Host") {
        request.push_str(&format!("Host: {}\r\n", shared.backend_host));
    }
    request.push_str("\r\n");
    let mut request = request.into_bytes();
    request.extend_from_slice(raw_body);
    (&backend).write_all(&request)?;
    (&backend).flush()?;

    let mut reader = BufReader::new(&backend);
    loop {
        let head = read_head(&mut reader)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "backend closed without answering",
            )
        })?;
        let mut parts = head.start_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("").to_string();
        let status: u16 = parts.next().unwrap_or("").parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line from backend: {:?}", head.start_line),
            )
        })?;
        // The proxy already told the client to go on; a backend's own 100 Continue (or any
        // interim answer) is not the answer.
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let framing = response_framing(method, status, &head.headers)?;
        let body = read_body(&mut reader, framing)?;
        let close = framing == Framing::UntilClose || wants_close(&version, &head.headers);
        return Ok(BackendAnswer {
            head,
            status,
            body: body.raw,
            close,
        });
    }
}

/// The bytes of an injected status answer.
fn status_answer(code: u16, headers: &[(String, String)], body: &[u8], close: bool) -> Vec<u8> {
    let mut text = format!("HTTP/1.1 {code} {}\r\n", reason(code));
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    if close {
        text.push_str("Connection: close\r\n");
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A 502 for a backend that could not be reached or answered garbage, naming why.
fn bad_gateway(backend: SocketAddr, error: &io::Error) -> BackendAnswer {
    let body = format!("fault proxy: backend {backend}: {error}").into_bytes();
    let raw = format!(
        "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    BackendAnswer {
        head: Head {
            start_line: "HTTP/1.1 502 Bad Gateway".to_string(),
            headers: Headers::new(),
            raw: raw.into_bytes(),
        },
        status: 502,
        body,
        close: true,
    }
}
