//! `TestServer`: a real HTTP/1.1 server on `127.0.0.1:0` for fakes of remote calendars.
//!
//! A test gives it a handler (`Fn(&Request) -> Response`) and points calsync at [`TestServer::url`].
//! Every request is recorded with its arrival time, so a test can assert what calsync sent and how
//! many requests it spent (the cost contract in DESIGN.md is a test, not a hope). The server speaks
//! enough HTTP/1.1 for reqwest's blocking client: keep-alive, one thread per connection (calsync
//! writes with 4 requests in flight), `Content-Length` and chunked request bodies,
//! `Expect: 100-continue`. [`Response::raw`] sends deliberately broken answers.
//!
//! The wire helpers at the bottom ([`read_head`], [`read_body`], [`Framing`]) and the
//! [`Background`] accept loop are shared with `proxy.rs`, which needs the same parsing but raw
//! control over what it writes back.
//!
//! Only loopback: the server binds 127.0.0.1 and nothing else. Dropping it stops the accept loop,
//! closes the listener and every open connection, and waits (bounded) for their threads.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long `Drop` waits for connection threads to notice the shutdown before leaving them.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);
/// A request or response head larger than this is refused: a fake never needs more, and a
/// runaway peer must not eat the test's memory.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Header fields in the order received; names compare case-insensitively, as HTTP says.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Headers {
        Headers(Vec::new())
    }

    /// The first value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Adds a field, keeping any earlier one of the same name.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// Replaces every field of that name by one field.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.0.push((name.to_string(), value.into()));
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// True when a comma-separated header (`Connection`, `Transfer-Encoding`) lists `token`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(n, v)| (n, v)))
            .finish()
    }
}

/// One request as the server received it (a chunked body is already decoded).
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The request target as sent: path and query, e.g. `/v1.0/users/x/events?$top=10`.
    pub path: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    pub headers: Headers,
    pub body: Vec<u8>,
    /// When the server had read the request's head.
    pub arrived: Instant,
}

impl Request {
    /// The first value of a header, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The path without its query.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }

    /// The raw query string (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.path.split_once('?').map(|(_, q)| q)
    }

    /// The body as UTF-8; panics when it is not, since every calsync body is text.
    pub fn body_text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("the request body should be UTF-8 text")
    }

    /// The body parsed as JSON; panics with the body when it is not JSON.
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the request body should be JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// What a handler answers. Build one with [`Response::new`] and friends, then `.header()` and
/// `.body()`; `Content-Length` is added unless the handler set it (or `Transfer-Encoding`).
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
    /// When set, these bytes are written as they are instead of a response, and the connection
    /// is closed afterwards: for answers that are broken on purpose.
    pub raw: Option<Vec<u8>>,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Headers::new(),
            body: Vec::new(),
            raw: None,
        }
    }

    /// 200 with an empty body.
    pub fn ok() -> Response {
        Response::new(200)
    }

    /// `status` with a `text/plain` body.
    pub fn text(status: u16, text: &str) -> Response {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(text)
    }

    /// `status` with a JSON body.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response::new(status)
            .header("Content-Type", "application/json")
            .body(value.to_string())
    }

    /// `status` with an iCalendar body.
    pub fn ics(status: u16, text: &str) -> Response {
        Response::new(status)
            .header("Content-Type", "text/calendar; charset=utf-8")
            .body(text)
    }

    /// Writes `bytes` to the socket verbatim and closes the connection: a truncated body, a
    /// garbage status line, or (with no bytes) a connection closed without an answer.
    pub fn raw(bytes: impl Into<Vec<u8>>) -> Response {
        Response {
            raw: Some(bytes.into()),
            ..Response::new(0)
        }
    }

    /// Closes the connection without answering.
    pub fn close() -> Response {
        Response::raw(Vec::new())
    }

    /// Adds a header (a second one of the same name is kept as well).
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.append(name, value);
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// The bytes to put on the wire for a request of `method`; `close` adds `Connection: close`.
    fn to_bytes(&self, method: &str, close: bool) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        let mut headers = self.headers.clone();
        let body_allowed = status_allows_body(self.status);
        if body_allowed
            && !headers.contains("Content-Length")
            && !headers.contains("Transfer-Encoding")
        {
            headers.append("Content-Length", self.body.len().to_string());
        }
        if close && !headers.has_token("Connection", "close") {
            headers.append("Connection", "close");
        }
        for (name, value) in headers.iter() {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if body_allowed && !method.eq_ignore_ascii_case("HEAD") {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// A loopback HTTP/1.1 server that answers with a handler and records every request.
pub struct TestServer {
    recorded: Arc<Mutex<Vec<Request>>>,
    connections: Arc<AtomicUsize>,
    background: Background,
}

impl TestServer {
    /// Starts serving on a free port of 127.0.0.1.
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> TestServer {
        let handler: Arc<Handler> = Arc::new(handler);
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let background = {
            let recorded = Arc::clone(&recorded);
            let connections = Arc::clone(&connections);
            Background::spawn("test-server", move |stream, _conn| {
                connections.fetch_add(1, Ordering::SeqCst);
                serve_connection(stream, &handler, &recorded);
            })
        };
        TestServer {
            recorded,
            connections,
            background,
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.background.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.background.addr
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.recorded).clone()
    }

    /// How many requests were received.
    pub fn count(&self) -> usize {
        lock(&self.recorded).len()
    }

    /// How many requests of `method` were received.
    pub fn count_method(&self, method: &str) -> usize {
        lock(&self.recorded)
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method))
            .count()
    }

    /// How many TCP connections were accepted (keep-alive keeps this below `count()`).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Forgets the recorded requests (the connection count stays).
    pub fn clear(&self) {
        lock(&self.recorded).clear();
    }
}

/// Answers requests on one connection until the client closes it or asks to.
fn serve_connection(stream: TcpStream, handler: &Arc<Handler>, recorded: &Mutex<Vec<Request>>) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let request = match read_request(&mut reader, &mut writer) {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(e) => {
                // A malformed request gets a 400, so a test sees why rather than a hang.
                let answer = Response::text(400, &format!("test server: {e}"));
                let _ = writer.write_all(&answer.to_bytes("GET", true));
                return;
            }
        };
        lock(recorded).push(request.clone());
        let response = catch_unwind(AssertUnwindSafe(|| handler(&request))).unwrap_or_else(|_| {
            Response::text(500, "test server: the test's handler panicked (see stderr)")
        });
        if let Some(raw) = &response.raw {
            let _ = writer.write_all(raw);
            let _ = writer.flush();
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
        let close = wants_close(&request.version, &request.headers)
            || response.headers.has_token("Connection", "close");
        if writer
            .write_all(&response.to_bytes(&request.method, close))
            .and_then(|()| writer.flush())
            .is_err()
            || close
        {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Reads one request: its head, a `100 Continue` when the client waits for one, its body.
/// `None` when the client closed the connection between requests.
pub fn read_request(
    reader: &mut impl BufRead,
    writer: &mut impl Write,
) -> io::Result<Option<Request>> {
    let Some(head) = read_head(reader)? else {
        return Ok(None);
    };
    let arrived = Instant::now();
    let mut parts = head.start_line.split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(format!("bad request line {:?}", head.start_line)));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(invalid(format!("unsupported version {version:?}")));
    }
    if version == "HTTP/1.1" && head.headers.has_token("Expect", "100-continue") {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        writer.flush()?;
    }
    let body = read_body(reader, request_framing(&head.headers)?)?;
    let request = Request {
        method: method.to_string(),
        path: path.to_string(),
        version: version.to_string(),
        headers: head.headers,
        body: body.decoded,
        arrived,
    };
    Ok(Some(request))
}

/// The start line and header fields of a request or response, and the bytes they came in.
#[derive(Clone, Debug)]
pub struct Head {
    pub start_line: String,
    pub headers: Headers,
    /// Exactly as received, final empty line included.
    pub raw: Vec<u8>,
}

/// Reads a head up to its empty line. `None` on a clean end of stream before the first byte.
pub fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut raw = Vec::new();
    let mut start_line = None;
    let mut headers = Headers::new();
    loop {
        let before = raw.len();
        let read = reader
            .by_ref()
            .take((MAX_HEAD_BYTES + 1 - raw.len()) as u64)
            .read_until(b'\n', &mut raw)?;
        if read == 0 {
            if raw.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a message head",
            ));
        }
        if raw.len() > MAX_HEAD_BYTES {
            return Err(invalid(format!("head longer than {MAX_HEAD_BYTES} bytes")));
        }
        let line = std::str::from_utf8(&raw[before..])
            .map_err(|_| invalid("head is not UTF-8".to_string()))?
            .trim_end_matches(['\r', '\n']);
        match &start_line {
            // Empty lines before a request line are allowed (RFC 9112 §2.2).
            None if line.is_empty() => raw.clear(),
            None => start_line = Some(line.to_string()),
            Some(_) if line.is_empty() => break,
            Some(_) => {
                let (name, value) = line
                    .split_once(':')
                    .ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
                headers.append(name.trim(), value.trim());
            }
        }
    }
    Ok(Some(Head {
        start_line: start_line.expect("the loop only breaks after a start line"),
        headers,
        raw,
    }))
}

/// How a message's body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(usize),
    Chunked,
    /// A response without length: the body runs until the server closes.
    UntilClose,
}

/// The body framing of a request (RFC 9112 §6.3: chunked wins over Content-Length).
pub fn request_framing(headers: &Headers) -> io::Result<Framing> {
    if headers.has_token("Transfer-Encoding", "chunked") {
        return Ok(Framing::Chunked);
    }
    match headers.get("Content-Length") {
        Some(len) => Ok(Framing::Length(parse_length(len)?)),
        None => Ok(Framing::None),
    }
}

/// The body framing of a response to `method` with `status`.
pub fn response_framing(method: &str, status: u16, headers: &Headers) -> io::Result<Framing> {
    if method.eq_ignore_ascii_case("HEAD") || !status_allows_body(status) {
        return Ok(Framing::None);
    }
    if headers.has_token("Transfer-Encoding", "chunked") {
        return Ok(Framing::Chunked);
    }
    match headers.get("Content-Length") {
        Some(len) => Ok(Framing::Length(parse_length(len)?)),
        None => Ok(Framing::UntilClose),
    }
}

/// A body both as its content and as the bytes it took on the wire (chunk framing included).
pub struct Body {
    pub decoded: Vec<u8>,
    pub raw: Vec<u8>,
}

/// Reads a body of the given framing.
pub fn read_body(reader: &mut impl BufRead, framing: Framing) -> io::Result<Body> {
    match framing {
        Framing::None => Ok(Body {
            decoded: Vec::new(),
            raw: Vec::new(),
        }),
        Framing::Length(len) => {
            let mut decoded = vec![0; len];
            reader.read_exact(&mut decoded)?;
            Ok(Body {
                raw: decoded.clone(),
                decoded,
            })
        }
        Framing::UntilClose => {
            let mut decoded = Vec::new();
            reader.read_to_end(&mut decoded)?;
            Ok(Body {
                raw: decoded.clone(),
                decoded,
            })
        }
        Framing::Chunked => read_chunked(reader),
    }
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Body> {
    let mut decoded = Vec::new();
    let mut raw = Vec::new();
    loop {
        let line = read_line(reader, &mut raw)?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| invalid(format!("bad chunk size line {line:?}")))?;
        if size == 0 {
            // Trailer fields, if any, up to the empty line; they are kept in `raw` only.
            while !read_line(reader, &mut raw)?.is_empty() {}
            return Ok(Body { decoded, raw });
        }
        let start = decoded.len();
        decoded.resize(start + size, 0);
        reader.read_exact(&mut decoded[start..])?;
        raw.extend_from_slice(&decoded[start..]);
        if !read_line(reader, &mut raw)?.is_empty() {
            return Err(invalid("chunk data not followed by CRLF".to_string()));
        }
    }
}

/// Reads one CRLF-terminated line, appending its bytes to `raw`; returns it without the CRLF.
fn read_line(reader: &mut impl BufRead, raw: &mut Vec<u8>) -> io::Result<String> {
    let mut line = Vec::new();
    reader
        .by_ref()
        .take(MAX_HEAD_BYTES as u64)
        .read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\n") {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed inside a chunked body",
        ));
    }
    raw.extend_from_slice(&line);
    let text = String::from_utf8(line).map_err(|_| invalid("chunk line is not UTF-8".into()))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

/// True when the connection must close after this exchange, judged by one side's version and
/// headers: HTTP/1.0 closes unless it asks for keep-alive; HTTP/1.1 stays unless it says close.
pub fn wants_close(version: &str, headers: &Headers) -> bool {
    if headers.has_token("Connection", "close") {
        return true;
    }
    version == "HTTP/1.0" && !headers.has_token("Connection", "keep-alive")
}

/// 1xx, 204 and 304 never carry a body.
pub fn status_allows_body(status: u16) -> bool {
    !(100..200).contains(&status) && status != 204 && status != 304
}

/// The standard reason phrase of the statuses fakes use; clients ignore it anyway.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        207 => "Multi-Status",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        412 => "Precondition Failed",
        423 => "Locked",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn parse_length(value: &str) -> io::Result<usize> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(format!("bad Content-Length {value:?}")))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Locks a mutex even when a test thread panicked while holding it: the recorded data is still
/// what the test wants to see in its failure message.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Tells the threads of a [`Background`] server that it is stopping, and lets them sleep in a
/// way that the stop cuts short.
pub struct Stop {
    stopped: Mutex<bool>,
    changed: Condvar,
}

impl Stop {
    fn new() -> Stop {
        Stop {
            stopped: Mutex::new(false),
            changed: Condvar::new(),
        }
    }

    pub fn is_set(&self) -> bool {
        *lock(&self.stopped)
    }

    fn set(&self) {
        *lock(&self.stopped) = true;
        self.changed.notify_all();
    }

    /// Waits `duration` unless the server stops first; true when the full time passed.
    pub fn sleep(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        let mut stopped = lock(&self.stopped);
        while !*stopped {
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            stopped = self
                .changed
                .wait_timeout(stopped, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        false
    }
}

/// What a connection thread gets besides its stream: the stop signal, and a way to register
/// further sockets (a proxy's backend connection) that a stop must close too.
pub struct Connection {
    id: u64,
    pub stop: Arc<Stop>,
    open: Arc<OpenSockets>,
}

impl Connection {
    /// Makes `Drop` of the server shut this socket down as well, so no thread stays blocked
    /// reading it.
    pub fn track(&self, stream: &TcpStream) {
        if let Ok(clone) = stream.try_clone() {
            lock(&self.open.sockets)
                .entry(self.id)
                .or_default()
                .push(clone);
        }
    }
}

/// The sockets of live connections, by connection id, and how many connection threads run.
#[derive(Default)]
struct OpenSockets {
    sockets: Mutex<HashMap<u64, Vec<TcpStream>>>,
    threads: Mutex<usize>,
    thread_ended: Condvar,
}

/// An accept loop on 127.0.0.1:0 that runs `serve` on a thread per connection, and stops it all
/// on `Drop`. The part `TestServer` and `FaultProxy` share.
pub struct Background {
    pub addr: SocketAddr,
    stop: Arc<Stop>,
    open: Arc<OpenSockets>,
    accept_thread: Option<JoinHandle<()>>,
}

impl Background {
    pub fn spawn(
        name: &str,
        serve: impl Fn(TcpStream, &Connection) + Send + Sync + 'static,
    ) -> Background {
        let listener =
            TcpListener::bind("127.0.0.1:0").expect("binding a free port on 127.0.0.1 for a test");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let stop = Arc::new(Stop::new());
        let open = Arc::new(OpenSockets::default());
        let serve = Arc::new(serve);
        let accept_thread = {
            let stop = Arc::clone(&stop);
            let open = Arc::clone(&open);
            let name = name.to_string();
            thread::Builder::new()
                .name(format!("{name}-accept"))
                .spawn(move || accept_loop(&listener, &name, &stop, &open, &serve))
                .expect("spawning a test server's accept thread")
        };
        Background {
            addr,
            stop,
            open,
            accept_thread: Some(accept_thread),
        }
    }
}

fn accept_loop(
    listener: &TcpListener,
    name: &str,
    stop: &Arc<Stop>,
    open: &Arc<OpenSockets>,
    serve: &Arc<impl Fn(TcpStream, &Connection) + Send + Sync + 'static>,
) {
    let mut next_id = 0u64;
    for stream in listener.incoming() {
        // `Drop` wakes this loop with a connection of its own after setting the stop.
        if stop.is_set() {
            return;
        }
        let Ok(stream) = stream else { continue };
        next_id += 1;
        let connection = Connection {
            id: next_id,
            stop: Arc::clone(stop),
            open: Arc::clone(open),
        };
        connection.track(&stream);
        *lock(&open.threads) += 1;
        let serve = Arc::clone(serve);
        let spawned = thread::Builder::new()
            .name(format!("{name}-conn-{next_id}"))
            .spawn(move || {
                serve(stream, &connection);
                lock(&connection.open.sockets).remove(&connection.id);
                *lock(&connection.open.threads) -= 1;
                connection.open.thread_ended.notify_all();
            });
        if spawned.is_err() {
            *lock(&open.threads) -= 1;
            lock(&open.sockets).remove(&next_id);
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.set();
        // Wake the blocking accept; its listener closes when the thread returns.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept_thread) = self.accept_thread.take() {
            let _ = accept_thread.join();
        }
        for sockets in lock(&self.open.sockets).values() {
            for socket in sockets {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        let mut threads = lock(&self.open.threads);
        while *threads > 0 {
            let now = Instant::now();
            if now >= deadline {
                // Not a panic: panicking in Drop while a test already fails would abort.
                eprintln!(
                    "test server on {}: {} connection thread(s) still busy after {:?}; left behind",
                    self.addr, *threads, SHUTDOWN_WAIT
                );
                return;
            }
            threads = self
                .open
                .thread_ended
                .wait_timeout(threads, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}
