//! Tests of the test kit itself (`tests/support/`).
//!
//! Later tests conclude "calsync retried", "calsync deleted nothing after a cut-short read" from
//! what these servers did; that is only sound if each fault does exactly what it says. So each
//! one is proven here with a plain reqwest client (or a raw socket where the wire matters), and
//! Radicale is proven to start, store, list and stop.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use reqwest::blocking::Client;
use support::http::{Response, TestServer};
use support::proxy::{Fault, FaultProxy, Matching};
use support::radicale::{Radicale, locate_binary};

/// A client like calsync's: blocking, pooled, never routed through a system proxy.
fn client() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("building a reqwest client")
}

/// A backend that echoes method, path and body, for proxy tests.
fn echo_server() -> TestServer {
    TestServer::start(|request| {
        Response::text(
            200,
            &format!(
                "{} {} {}",
                request.method,
                request.path,
                String::from_utf8_lossy(&request.body)
            ),
        )
    })
}

const EVENT: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync tests//EN\r\n\
BEGIN:VEVENT\r\nUID:testkit-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\n\
DTEND:20260105T110000Z\r\nSUMMARY:Choir rehearsal\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

#[test]
fn test_server_keeps_one_connection_alive_and_records_each_request() {
    let server = echo_server();
    let client = client();
    for page in 0..3 {
        let answer = client
            .get(format!("{}/items?page={page}", server.url()))
            .header("X-Probe", format!("p{page}"))
            .send()
            .expect("GET to the test server");
        assert_eq!(answer.status().as_u16(), 200);
        assert_eq!(
            answer.text().expect("reading the answer"),
            format!("GET /items?page={page} ")
        );
    }
    let answer = client
        .post(format!("{}/upload", server.url()))
        .body("hello")
        .send()
        .expect("POST to the test server");
    assert_eq!(
        answer.text().expect("reading the answer"),
        "POST /upload hello"
    );

    assert_eq!(server.connections(), 1, "keep-alive reuses the connection");
    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    assert_eq!(server.count_method("GET"), 3);
    assert_eq!(requests[1].path, "/items?page=1");
    assert_eq!(requests[1].path_only(), "/items");
    assert_eq!(requests[1].query(), Some("page=1"));
    assert_eq!(
        requests[1].header("x-probe"),
        Some("p1"),
        "lookup ignores case"
    );
    assert_eq!(requests[3].method, "POST");
    assert_eq!(requests[3].body, b"hello");
    assert!(requests.windows(2).all(|w| w[0].arrived <= w[1].arrived));

    server.clear();
    assert_eq!(server.count(), 0);
}

#[test]
fn test_server_answers_requests_on_concurrent_connections() {
    const IN_FLIGHT: usize = 4;
    // Each request waits (bounded) until all four are inside the handler at once, which can only
    // happen when the server serves connections concurrently.
    let inside = Arc::new((Mutex::new(0usize), Condvar::new()));
    let server = {
        let inside = Arc::clone(&inside);
        TestServer::start(move |_| {
            let (count, all_in) = &*inside;
            let mut count = count.lock().expect("the counter lock");
            *count += 1;
            all_in.notify_all();
            let (count, timeout) = all_in
                .wait_timeout_while(count, Duration::from_secs(5), |n| *n < IN_FLIGHT)
                .expect("the counter lock");
            if timeout.timed_out() {
                Response::text(504, &format!("only {} in flight", *count))
            } else {
                Response::text(200, "together")
            }
        })
    };
    let client = client();
    let statuses: Vec<u16> = thread::scope(|scope| {
        let workers: Vec<_> = (0..IN_FLIGHT)
            .map(|i| {
                let (client, url) = (&client, format!("{}/put/{i}", server.url()));
                scope.spawn(move || {
                    client
                        .put(url)
                        .body("x")
                        .send()
                        .map(|a| a.status().as_u16())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a client thread").expect("a PUT"))
            .collect()
    });
    assert_eq!(statuses, [200; IN_FLIGHT]);
    assert_eq!(server.count_method("PUT"), IN_FLIGHT);
    assert!(server.connections() >= IN_FLIGHT);
}

/// Sends a chunked PUT that waits for `100 Continue` over a raw socket, as curl does for large
/// uploads; returns the whole final answer.
fn put_chunked_after_100_continue(addr: std::net::SocketAddr) -> String {
    let mut socket = TcpStream::connect(addr).expect("connecting");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("setting a read timeout");
    socket
        .write_all(
            b"PUT /cal/x.ics HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\
              Expect: 100-continue\r\nConnection: close\r\n\r\n",
        )
        .expect("sending the head");
    let mut reader = BufReader::new(socket.try_clone().expect("cloning the socket"));
    let mut interim = String::new();
    reader
        .read_line(&mut interim)
        .expect("reading the interim answer");
    assert_eq!(interim, "HTTP/1.1 100 Continue\r\n");
    interim.clear();
    reader.read_line(&mut interim).expect("reading its end");
    assert_eq!(interim, "\r\n");

    socket
        .write_all(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n")
        .expect("sending the chunks");
    let mut answer = String::new();
    reader
        .read_to_string(&mut answer)
        .expect("reading the answer up to the close");
    answer
}

#[test]
fn test_server_reads_a_chunked_body_sent_after_100_continue() {
    let server = echo_server();
    let answer = put_chunked_after_100_continue(server.addr());
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("PUT /cal/x.ics hello world"), "{answer}");
    assert_eq!(server.requests()[0].body, b"hello world");
}

#[test]
fn proxy_forwards_a_chunked_body_as_chunked() {
    let backend = echo_server();
    let proxy = FaultProxy::start(&backend.url());
    let proxy_addr = proxy
        .url()
        .trim_start_matches("http://")
        .parse()
        .expect("the proxy URL names an address");
    let answer = put_chunked_after_100_continue(proxy_addr);
    assert!(answer.ends_with("PUT /cal/x.ics hello world"), "{answer}");
    let put = &backend.requests()[0];
    assert_eq!(put.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(put.body, b"hello world");
}

#[test]
fn raw_response_reaches_the_client_as_written() {
    let server =
        TestServer::start(|_| Response::raw("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"));
    let answer = client()
        .get(server.url())
        .send()
        .expect("the head arrives whole");
    assert_eq!(answer.content_length(), Some(10));
    assert!(answer.bytes().is_err(), "7 bytes of the body never come");
}

#[test]
fn proxy_passes_a_put_with_its_body_and_a_304_through_unchanged() {
    let backend = TestServer::start(|request| match request.method.as_str() {
        "PUT" => Response::new(201).header("ETag", "\"v1\""),
        "GET" if request.header("If-None-Match") == Some("\"v1\"") => {
            Response::new(304).header("ETag", "\"v1\"")
        }
        _ => Response::text(500, "unexpected request"),
    });
    let proxy = FaultProxy::start(&backend.url());
    let client = client();

    let created = client
        .put(format!("{}/cal/event.ics", proxy.url()))
        .header("Content-Type", "text/calendar")
        .header("If-None-Match", "*")
        .body(EVENT)
        .send()
        .expect("PUT through the proxy");
    assert_eq!(created.status().as_u16(), 201);
    assert_eq!(created.headers()["ETag"], "\"v1\"");
    let unchanged = client
        .get(format!("{}/cal/event.ics", proxy.url()))
        .header("If-None-Match", "\"v1\"")
        .send()
        .expect("conditional GET through the proxy");
    assert_eq!(unchanged.status().as_u16(), 304);
    assert_eq!(unchanged.headers()["ETag"], "\"v1\"");

    let put = &backend.requests()[0];
    assert_eq!(put.method, "PUT");
    assert_eq!(put.path, "/cal/event.ics");
    assert_eq!(put.body_text(), EVENT);
    assert_eq!(put.header("If-None-Match"), Some("*"));
    assert_eq!(put.header("Content-Type"), Some("text/calendar"));
    assert_eq!(
        put.header("Host"),
        Some(backend.addr().to_string().as_str())
    );

    let exchanges = proxy.requests();
    let statuses: Vec<_> = exchanges.iter().map(|e| e.status).collect();
    assert_eq!(statuses, [Some(201), Some(304)]);
    assert!(exchanges.iter().all(|e| e.forwarded && e.fault.is_none()));
    assert!(exchanges[0].request_bytes > EVENT.len());
    assert_eq!(proxy.count_method("PUT"), 1);
    assert_eq!(
        proxy.counts_by_method().into_iter().collect::<Vec<_>>(),
        [("GET".to_string(), 1), ("PUT".to_string(), 1)]
    );
}

#[test]
fn dropped_request_is_a_connection_error_and_never_reaches_the_backend() {
    let backend = echo_server();
    let proxy = FaultProxy::start(&backend.url());
    proxy.inject(Fault::Drop, 1, Matching::any());

    let error = client()
        .get(format!("{}/feed.ics", proxy.url()))
        .send()
        .expect_err("a dropped connection is an error");
    assert!(error.is_request() || error.is_connect(), "{error:?}");
    assert_eq!(backend.count(), 0);
    let dropped = &proxy.requests()[0];
    assert_eq!(
        (dropped.status, dropped.forwarded, dropped.fault.clone()),
        (None, false, Some(Fault::Drop))
    );

    assert_eq!(proxy.pending_faults(), 0);
    let answer = client()
        .get(format!("{}/feed.ics", proxy.url()))
        .send()
        .expect("the fault was used up");
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(backend.count(), 1);
}

#[test]
fn lost_response_reaches_the_backend_but_not_the_client() {
    let backend = echo_server();
    let proxy = FaultProxy::start(&backend.url());
    proxy.inject(Fault::LoseResponse, 1, Matching::any());

    let error = client()
        .put(format!("{}/cal/e.ics", proxy.url()))
        .body("BEGIN:VCALENDAR")
        .send()
        .expect_err("the answer is lost");
    assert!(error.is_request(), "{error:?}");
    assert_eq!(backend.count_method("PUT"), 1, "the write happened");
    let lost = &proxy.requests()[0];
    assert_eq!((lost.status, lost.forwarded), (None, true));
}

#[test]
fn truncated_body_is_shorter_than_its_content_length() {
    let backend = TestServer::start(|_| Response::ics(200, &"X".repeat(1000)));
    let proxy = FaultProxy::start(&backend.url());
    proxy.inject(Fault::Truncate { keep_bytes: 100 }, 1, Matching::any());

    let answer = client()
        .get(format!("{}/feed.ics", proxy.url()))
        .send()
        .expect("the head arrives whole");
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(answer.content_length(), Some(1000));
    let error = answer.bytes().expect_err("the body is cut short");
    assert!(error.is_body() || error.is_decode(), "{error:?}");

    let truncated = &proxy.requests()[0];
    assert_eq!((truncated.status, truncated.forwarded), (Some(200), true));
    let head_len = truncated.response_bytes - 100;
    assert!(head_len > 0 && head_len < 200, "{truncated:?}");
}

#[test]
fn status_fault_answers_429_with_retry_after_without_forwarding() {
    let backend = echo_server();
    let proxy = FaultProxy::start(&backend.url());
    proxy.inject(Fault::retry_after(429, 2), 1, Matching::any());
    let client = client();

    let throttled = client
        .get(format!("{}/events", proxy.url()))
        .send()
        .expect("an answer from the proxy");
    assert_eq!(throttled.status().as_u16(), 429);
    assert_eq!(throttled.headers()["Retry-After"], "2");
    assert_eq!(backend.count(), 0, "the 429 came from the proxy alone");
    let exchange = &proxy.requests()[0];
    assert_eq!((exchange.status, exchange.forwarded), (Some(429), false));

    let answer = client
        .get(format!("{}/events", proxy.url()))
        .send()
        .expect("the same keep-alive connection goes on");
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(backend.count(), 1);
}

#[test]
fn delay_fault_holds_the_request_before_forwarding() {
    const DELAY: Duration = Duration::from_millis(300);
    let backend = echo_server();
    let proxy = FaultProxy::start(&backend.url());
    proxy.inject(Fault::Delay(DELAY), 1, Matching::any());

    let answer = client()
        .get(format!("{}/slow", proxy.url()))
        .send()
        .expect("a delayed answer");
    assert_eq!(answer.status().as_u16(), 200);

    let delayed = &proxy.requests()[0];
    assert_eq!(delayed.fault, Some(Fault::Delay(DELAY)));
    assert!(delayed.duration() >= DELAY, "{delayed:?}");
    let reached_backend = backend.requests()[0].arrived;
    assert!(reached_backend.duration_since(delayed.arrived) >= DELAY);
}

#[test]
fn faults_apply_to_matching_requests_in_queue_order() {
    let backend = echo_server();
    let proxy = FaultProxy::start(&backend.url());
    proxy.inject(Fault::status(503), 2, Matching::any().method("PUT"));
    proxy.inject(Fault::status(500), 1, Matching::any().path_containing("/b"));
    let client = client();
    let send = |method: &str, path: &str| {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        client
            .request(method, format!("{}{path}", proxy.url()))
            .send()
            .expect("an answer")
            .status()
            .as_u16()
    };

    let statuses = [
        send("GET", "/a"),
        send("GET", "/b"),
        send("PUT", "/b"),
        send("PUT", "/c"),
        send("PUT", "/b"),
        send("GET", "/b"),
    ];
    assert_eq!(statuses, [200, 500, 503, 503, 200, 200]);
    assert_eq!(proxy.pending_faults(), 0);
    assert_eq!(backend.count(), 3);
    assert_eq!(proxy.count(), 6);
}

#[test]
fn radicale_stores_lists_and_deletes_and_is_gone_after_drop() {
    let radicale = Radicale::start();
    let url = radicale.mkcalendar("public");
    assert_eq!(url, format!("{}/test/public/", radicale.url()));

    let etag = radicale.put("public", "one.ics", EVENT);
    let second = EVENT.replace("testkit-1", "testkit-2");
    radicale.put("public", "two.ics", &second);
    let stored = radicale.list("public");
    let hrefs: Vec<_> = stored.iter().map(|o| o.href.as_str()).collect();
    assert_eq!(hrefs, ["/test/public/one.ics", "/test/public/two.ics"]);
    assert_eq!(stored[0].etag, etag);
    assert!(stored[0].ics.contains("SUMMARY:Choir rehearsal"));
    assert!(stored[1].ics.contains("UID:testkit-2"));

    radicale.delete("public", "one.ics");
    assert_eq!(radicale.get("public", "one.ics"), None);
    assert_eq!(radicale.list("public").len(), 1);

    let pid = radicale.pid().to_string();
    let storage = radicale.storage_dir();
    assert!(storage.is_dir());
    drop(radicale);
    let alive = Command::new("kill")
        .args(["-0", &pid])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("running kill -0");
    assert!(!alive.success(), "Radicale {pid} still runs after drop");
    assert!(!storage.exists(), "its folder is removed");
}

#[test]
fn proxy_in_front_of_radicale_passes_multistatus_and_preconditions() {
    let radicale = Radicale::start();
    radicale.mkcalendar("public");
    let etag = radicale.put("public", "one.ics", EVENT);
    let proxy = FaultProxy::start(&radicale.url());
    let client = client();
    let auth = |request: reqwest::blocking::RequestBuilder| {
        request.basic_auth(radicale.user(), Some(radicale.password()))
    };
    let propfind = reqwest::Method::from_bytes(b"PROPFIND").expect("a method");

    let listing = auth(client.request(propfind, format!("{}/test/public/", proxy.url())))
        .header("Depth", "1")
        .header("Content-Type", "application/xml")
        .body(r#"<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getetag/></prop></propfind>"#)
        .send()
        .expect("PROPFIND through the proxy");
    assert_eq!(listing.status().as_u16(), 207);
    let listing = listing.text().expect("reading the multistatus");
    assert!(listing.contains(&etag), "{listing}");

    let refused = auth(client.put(format!("{}/test/public/one.ics", proxy.url())))
        .header("If-None-Match", "*")
        .body(EVENT)
        .send()
        .expect("PUT through the proxy");
    assert_eq!(refused.status().as_u16(), 412);
    let updated = auth(client.put(format!("{}/test/public/one.ics", proxy.url())))
        .header("If-Match", etag.as_str())
        .body(EVENT.replace("Choir", "Organ"))
        .send()
        .expect("PUT through the proxy");
    assert!(updated.status().is_success(), "{updated:?}");
    assert_ne!(updated.headers()["ETag"], etag.as_str());
    assert!(
        radicale.list("public")[0]
            .ics
            .contains("SUMMARY:Organ rehearsal")
    );
    assert_eq!(proxy.count_method("PUT"), 2);
}

#[test]
fn missing_radicale_names_the_test_command() {
    let nowhere = tempfile::tempdir().expect("a temp folder");
    let from_env = locate_binary(
        Some(nowhere.path().join("radicale").into_os_string()),
        nowhere.path(),
    )
    .expect_err("no binary there");
    assert!(from_env.contains("CALSYNC_TEST_RADICALE"), "{from_env}");
    assert!(from_env.contains("scripts/test.sh"), "{from_env}");
    let default = locate_binary(None, nowhere.path()).expect_err("no venv there");
    assert!(default.contains(".venv-test/bin/radicale"), "{default}");
    assert!(default.contains("scripts/test.sh"), "{default}");
}
