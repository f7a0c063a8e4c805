//! JSON batching (`POST /$batch`): many Graph calls, 20 to a request, at most four requests
//! in flight per mailbox (Outlook's documented concurrency), every item's status read.
//!
//! An answer of 200 says nothing about its items: each carries its own status, in any
//! order. Items answered 429 or 5xx (throttled one by one inside a successful batch) are
//! sent again, alone — in a new batch of just those items — after the largest `Retry-After`
//! among them (else the backoff), as often as the run's retry policy allows; the others are
//! never sent twice. Every other status goes back to the caller to judge (404 on a delete is
//! "gone", 412 a conflict, 424 a failed dependency). A batch whose envelope fails (after
//! `net`'s own retries) fails all its items with that error.

use super::Graph;
use crate::net::{Request, parse_retry_after};
use crate::providers::{ProviderError, pool};
use serde_json::{Value, json};
use std::time::Duration;

/// The most items one batch may hold (Graph refuses more with 400).
pub const MAX_ITEMS: usize = 20;
/// The most batches in flight at once: Outlook serves four requests per app and mailbox at a
/// time (a lower `[net] concurrency` lowers it).
pub const IN_FLIGHT: usize = 4;
/// The longest wait for a throttled item: past it, the run fails the write (and the next
/// run tries again) rather than sleeping through its deadline.
const MAX_WAIT: Duration = Duration::from_secs(120);

/// One Graph call to put in a batch.
#[derive(Debug, Clone)]
pub struct Op {
    pub method: &'static str,
    /// Absolute (`…/v1.0/users/…`): made relative to the batch endpoint when sent.
    pub url: String,
    pub body: Option<Value>,
    /// Ask for bodies as plain text (reading back what calsync wrote).
    pub text_body: bool,
}

impl Op {
    pub fn get(url: impl Into<String>) -> Op {
        Op {
            method: "GET",
            url: url.into(),
            body: None,
            text_body: false,
        }
    }

    pub fn delete(url: impl Into<String>) -> Op {
        Op {
            method: "DELETE",
            url: url.into(),
            body: None,
            text_body: false,
        }
    }

    pub fn with_body(method: &'static str, url: impl Into<String>, body: Value) -> Op {
        Op {
            method,
            url: url.into(),
            body: Some(body),
            text_body: false,
        }
    }
}

/// An item's answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Graph's error code, if the body is an error.
    pub fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }
}

/// What became of one item.
pub type ItemResult = Result<Reply, ProviderError>;

/// Runs `ops` as batches; one result per op, in order.
pub fn run(graph: &Graph, ops: &[Op], retries: u32, backoff: Duration) -> Vec<ItemResult> {
    let mut results: Vec<Option<ItemResult>> = ops.iter().map(|_| None).collect();
    let mut pending: Vec<usize> = (0..ops.len()).collect();
    let mut attempt = 0u32;
    loop {
        let groups: Vec<Vec<usize>> = pending.chunks(MAX_ITEMS).map(<[usize]>::to_vec).collect();
        let answers = pool::run(
            &groups,
            graph.in_flight,
            |group| send(graph, ops, group),
            |answer| {
                answer
                    .iter()
                    .any(|(_, r)| matches!(r, Err(e) if e.ends_the_pair()))
            },
            |group| {
                group
                    .iter()
                    .map(|i| (*i, Err(not_attempted())))
                    .collect::<Vec<_>>()
            },
        );
        let mut again = Vec::new();
        let mut wait: Option<Duration> = None;
        for (index, result) in answers.into_iter().flatten() {
            match result {
                Ok((reply, retry_after)) if retryable(reply.status) && attempt < retries => {
                    if let Some(after) = retry_after {
                        wait = Some(wait.map_or(after, |w| w.max(after)));
                    }
                    again.push(index);
                    results[index] = Some(Ok(reply));
                }
                Ok((reply, _)) if retryable(reply.status) => {
                    results[index] = Some(Err(ProviderError::Transient {
                        endpoint: crate::net::endpoint_of(&graph.base),
                        detail: format!(
                            "a batch item was answered HTTP {}{} after {} retries",
                            reply.status,
                            reply.code().map(|c| format!(" ({c})")).unwrap_or_default(),
                            retries
                        ),
                    }))
                }
                Ok((reply, _)) => results[index] = Some(Ok(reply)),
                Err(e) => results[index] = Some(Err(e)),
            }
        }
        if again.is_empty() {
            break;
        }
        attempt += 1;
        let wait = wait
            .unwrap_or_else(|| {
                crate::net::backoff_delay(&crate::net::RetryPolicy { retries, backoff }, attempt)
            })
            .min(MAX_WAIT);
        log::info!(event = "graph.batch_retry", items = again.len() as u64, attempt = attempt,
                   wait_ms = wait.as_millis() as u64;
                   "batch items throttled: sending them again, alone");
        if crate::interrupt::requested() {
            for i in again {
                results[i] = Some(Err(ProviderError::Interrupted));
            }
            break;
        }
        std::thread::sleep(wait);
        pending = again;
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(not_attempted())))
        .collect()
}

fn retryable(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

fn not_attempted() -> ProviderError {
    ProviderError::Failed {
        what: "Graph batch item".into(),
        detail: "not attempted: an earlier failure ended the pair's writes".into(),
    }
}

type Answer = Vec<(usize, Result<(Reply, Option<Duration>), ProviderError>)>;

/// Sends one batch of the ops at `group`; each item's reply and `Retry-After`.
fn send(graph: &Graph, ops: &[Op], group: &[usize]) -> Answer {
    let items: Vec<Value> = group
        .iter()
        .enumerate()
        .map(|(n, &i)| {
            let op = &ops[i];
            let prefer = if op.text_body {
                format!("{}, outlook.body-content-type=\"text\"", super::PREFER_UTC)
            } else {
                super::PREFER_UTC.to_string()
            };
            let mut headers = json!({"Prefer": prefer});
            if op.body.is_some() {
                headers["Content-Type"] = json!("application/json");
            }
            let mut item = json!({
                "id": (n + 1).to_string(),
                "method": op.method,
                "url": op.url.strip_prefix(&graph.base).unwrap_or(&op.url),
                "headers": headers,
            });
            if let Some(body) = &op.body {
                item["body"] = body.clone();
            }
            item
        })
        .collect();
    let body = json!({"requests": items}).to_string();
    let req = Request::new(reqwest::Method::POST, format!("{}/$batch", graph.base))
        .header("Accept", "application/json")
        .header("Content-Type", "application/json")
        .header("Prefer", super::PREFER_UTC)
        .body(body);
    let fail_all = |e: ProviderError| -> Answer {
        let detail = e.to_string();
        group
            .iter()
            .map(|&i| {
                (
                    i,
                    Err(match &e {
                        ProviderError::Auth { endpoint, .. } => ProviderError::Auth {
                            endpoint: endpoint.clone(),
                            detail: detail.clone(),
                        },
                        ProviderError::Transient { endpoint, .. } => ProviderError::Transient {
                            endpoint: endpoint.clone(),
                            detail: detail.clone(),
                        },
                        ProviderError::BreakerOpen { endpoint } => ProviderError::BreakerOpen {
                            endpoint: endpoint.clone(),
                        },
                        ProviderError::Interrupted => ProviderError::Interrupted,
                        _ => ProviderError::Failed {
                            what: graph.what("batch"),
                            detail: detail.clone(),
                        },
                    }),
                )
            })
            .collect()
    };
    let resp = match graph.send(&req) {
        Ok(resp) => resp,
        Err(e) => return fail_all(ProviderError::from_net(e, &graph.what("batch"))),
    };
    let parsed = super::parse_object(&resp.body);
    let Some(responses) = parsed.as_ref().and_then(|v| v["responses"].as_array()) else {
        return fail_all(ProviderError::Transient {
            endpoint: crate::net::endpoint_of(&graph.base),
            detail: "the batch answer holds no responses".into(),
        });
    };
    group
        .iter()
        .enumerate()
        .map(|(n, &i)| {
            let id = (n + 1).to_string();
            let found = responses.iter().find(|r| {
                r["id"]
                    .as_str()
                    .is_some_and(|r| r.eq_ignore_ascii_case(&id))
            });
            let result = match found.and_then(|r| r["status"].as_u64().map(|s| (r, s))) {
                Some((r, status)) => {
                    let retry_after = r["headers"]
                        .as_object()
                        .and_then(|h| {
                            h.iter()
                                .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                                .and_then(|(_, v)| v.as_str())
                        })
                        .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
                    Ok((
                        Reply {
                            status: status as u16,
                            body: r.get("body").cloned().unwrap_or(Value::Null),
                        },
                        retry_after,
                    ))
                }
                None => Err(ProviderError::Transient {
                    endpoint: crate::net::endpoint_of(&graph.base),
                    detail: "the batch answer left an item out".into(),
                }),
            };
            (i, result)
        })
        .collect()
}

/// The error of an item answered with a failure the caller does not handle itself.
pub fn item_error(graph: &Graph, what: &str, reply: &Reply) -> ProviderError {
    let detail = format!(
        "HTTP {}{}",
        reply.status,
        reply.code().map(|c| format!(" ({c})")).unwrap_or_default()
    );
    match reply.status {
        401 => ProviderError::Auth {
            endpoint: crate::net::endpoint_of(&graph.base),
            detail: format!("{}: {detail}", graph.what(what)),
        },
        403 if !matches!(
            reply.code(),
            Some("ApplicationThrottled" | "TooManyRequests")
        ) =>
        {
            ProviderError::Auth {
                endpoint: crate::net::endpoint_of(&graph.base),
                detail: format!("{}: {detail}", graph.what(what)),
            }
        }
        s if retryable(s) => ProviderError::Transient {
            endpoint: crate::net::endpoint_of(&graph.base),
            detail: format!("{}: {detail}", graph.what(what)),
        },
        _ => ProviderError::Failed {
            what: graph.what(what),
            detail,
        },
    }
}
