//! `POST /batch/calendar/v3` (https://developers.google.com/workspace/calendar/api/guides/batch).
//!
//! The body is `multipart/mixed`; each part has `Content-Type: application/http` (and maybe a
//! `Content-ID`) and holds a whole HTTP request whose target is a path only ("full URLs are not
//! allowed"). The outer request's headers, except its `Content-*` ones, apply to every part
//! unless the part sets its own; so do its query parameters. The answer is `multipart/mixed`
//! with one part per call **in request order**, each an `HTTP/1.1 <status>` response, its
//! `Content-ID` being `<response-` + the request part's id + `>`. At most 1000 calls. Every call
//! is served (and logged, and counted against faults) exactly as a single request would be.

use super::errors::{ApiError, Reply};
use super::wire::{self, ApiRequest};
use super::{Call, Kind, State};
use crate::support::http::{Headers, Request, reason};

/// The documented cap of calls in one batch.
const MAX_CALLS: usize = 1000;

/// One part of the batch: its `Content-ID`, and the call or why it could not be read.
struct Part {
    content_id: Option<String>,
    call: Result<ApiRequest, ApiError>,
}

/// Serves a batch envelope and logs it (as [`Kind::Batch`], before its items).
pub fn handle(state: &mut State, request: &Request) -> Reply {
    let at = state.calls.len();
    state.calls.push(Call {
        kind: Kind::Batch,
        method: request.method.clone(),
        path: request.path_only().to_string(),
        query: wire::parse_query(request.query().unwrap_or("")),
        status: 0,
        in_batch: false,
        body: None,
    });
    let reply = serve(state, request).unwrap_or_else(|e| e.reply());
    state.calls[at].status = reply.status;
    reply
}

fn serve(state: &mut State, request: &Request) -> Result<Reply, ApiError> {
    if request.method != "POST" {
        return Err(ApiError::not_found());
    }
    if let Some(fault) = state.take_fault(Kind::Batch) {
        return Err(fault);
    }
    let boundary = boundary(request.header("Content-Type").unwrap_or("")).ok_or_else(|| {
        ApiError::invalid("fake: a batch body must be multipart/mixed with a boundary")
    })?;
    let body = String::from_utf8_lossy(&request.body);
    let parts = split(&body, &boundary)?
        .into_iter()
        .map(|text| parse_part(text, request))
        .collect::<Vec<_>>();
    if parts.is_empty() {
        return Err(ApiError::invalid("fake: a batch needs at least one call"));
    }
    if parts.len() > MAX_CALLS {
        return Err(ApiError::invalid(format!(
            "fake: a batch holds at most {MAX_CALLS} calls, this one {}",
            parts.len()
        )));
    }
    let mut order: Vec<usize> = (0..parts.len()).collect();
    if state.knobs.reverse_batch_execution {
        order.reverse();
    }
    let mut replies: Vec<Option<Reply>> = vec![None; parts.len()];
    for index in order {
        replies[index] = Some(match &parts[index].call {
            Ok(call) => state.api_call(call, true),
            Err(error) => error.reply(),
        });
    }
    let replies = replies
        .into_iter()
        .map(|r| r.expect("every part was served"));
    Ok(render(&parts, replies, state))
}

/// The `boundary` parameter of a `multipart/mixed` Content-Type (quoted or not).
fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    if !params
        .next()?
        .trim()
        .eq_ignore_ascii_case("multipart/mixed")
    {
        return None;
    }
    params.find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_string())
    })
}

/// The parts between the delimiters; the closing delimiter is required (RFC 2046 §5.1.1).
fn split<'a>(body: &'a str, boundary: &str) -> Result<Vec<&'a str>, ApiError> {
    let delimiter = format!("--{boundary}");
    let mut sections = body.split(delimiter.as_str());
    sections.next(); // the preamble
    let mut parts = Vec::new();
    for section in sections {
        if section.starts_with("--") {
            return Ok(parts);
        }
        let section = section
            .strip_prefix("\r\n")
            .or_else(|| section.strip_prefix('\n'))
            .unwrap_or(section);
        let section = section
            .strip_suffix("\r\n")
            .or_else(|| section.strip_suffix('\n'))
            .unwrap_or(section);
        parts.push(section);
    }
    Err(ApiError::invalid(
        "fake: the multipart body lacks its closing delimiter",
    ))
}

/// Splits a message at its first empty line: head lines, then the rest.
fn split_head(text: &str) -> (Vec<&str>, &str) {
    let (head, rest) = match (text.find("\r\n\r\n"), text.find("\n\n")) {
        (Some(crlf), Some(lf)) if lf < crlf => (&text[..lf], &text[lf + 2..]),
        (Some(crlf), _) => (&text[..crlf], &text[crlf + 4..]),
        (None, Some(lf)) => (&text[..lf], &text[lf + 2..]),
        (None, None) => (text, ""),
    };
    (
        head.lines().map(|l| l.trim_end_matches('\r')).collect(),
        rest,
    )
}

fn parse_headers(lines: &[&str]) -> Headers {
    let mut headers = Headers::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            headers.append(name.trim(), value.trim());
        }
    }
    headers
}

/// One part: its headers, then the call it carries (merged with the outer request).
fn parse_part(text: &str, outer: &Request) -> Part {
    let (part_head, message) = split_head(text);
    let part_headers = parse_headers(&part_head);
    let content_id = part_headers
        .get("Content-ID")
        .map(|id| id.trim_start_matches('<').trim_end_matches('>').to_string());
    let is_http = part_headers
        .get("Content-Type")
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/http"));
    let call = if is_http {
        parse_call(message, outer)
    } else {
        Err(ApiError::invalid(
            "fake: each batch part needs Content-Type: application/http",
        ))
    };
    Part { content_id, call }
}

/// The nested request: `METHOD /path?query [HTTP/1.1]`, headers, body.
fn parse_call(message: &str, outer: &Request) -> Result<ApiRequest, ApiError> {
    let (head, body) = split_head(message);
    let line = head.first().copied().unwrap_or("");
    let mut words = line.split_whitespace();
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return Err(ApiError::invalid(format!(
            "fake: unreadable request line {line:?} in a batch part"
        )));
    };
    if !target.starts_with('/') {
        return Err(ApiError::invalid(
            "fake: full URLs are not allowed in batch requests, only paths",
        ));
    }
    let inner = parse_headers(&head[1..]);
    let body = match inner
        .get("Content-Length")
        .and_then(|n| n.trim().parse::<usize>().ok())
    {
        Some(len) => body.as_bytes()[..len.min(body.len())].to_vec(),
        None => body.trim_end_matches(['\r', '\n']).as_bytes().to_vec(),
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut query = wire::parse_query(query);
    for (name, value) in wire::parse_query(outer.query().unwrap_or("")) {
        if !query.iter().any(|(n, _)| *n == name) {
            query.push((name, value));
        }
    }
    Ok(ApiRequest {
        method: method.to_string(),
        path: path.to_string(),
        query,
        headers: merged_headers(&outer.headers, &inner),
        body,
    })
}

/// The outer headers (not `Content-*`), overridden by the part's own.
fn merged_headers(outer: &Headers, inner: &Headers) -> Headers {
    let mut headers = Headers::new();
    for (name, value) in outer.iter() {
        let content = name.to_ascii_lowercase().starts_with("content-");
        if !content && !inner.contains(name) {
            headers.append(name, value);
        }
    }
    for (name, value) in inner.iter() {
        headers.append(name, value);
    }
    headers
}

/// The multipart answer, one part per call in request order.
fn render(parts: &[Part], replies: impl Iterator<Item = Reply>, state: &mut State) -> Reply {
    let boundary = format!(
        "batch_{}",
        wire::base32hex(&state.clock.next().to_be_bytes(), 13)
    );
    let mut out = String::new();
    for (part, reply) in parts.iter().zip(replies) {
        out.push_str(&format!(
            "--{boundary}\r\nContent-Type: application/http\r\n"
        ));
        if let Some(id) = &part.content_id {
            out.push_str(&format!("Content-ID: <response-{id}>\r\n"));
        }
        out.push_str(&format!(
            "\r\nHTTP/1.1 {} {}\r\n",
            reply.status,
            reason(reply.status)
        ));
        for (name, value) in &reply.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        let body = reply.body.map(|b| b.to_string()).unwrap_or_default();
        if !body.is_empty() {
            out.push_str("Content-Type: application/json; charset=UTF-8\r\n");
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n{body}\r\n", body.len()));
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    let mut reply = Reply::empty(200).with_header(
        "Content-Type",
        format!("multipart/mixed; boundary={boundary}"),
    );
    reply.raw = Some(out.into_bytes());
    reply
}
