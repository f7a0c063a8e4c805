//! `POST /$batch` (JSON batching): up to 20 items, each run through the same handlers as a
//! direct call, answered in a shuffled order that is fixed per seed.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};

use super::{Call, Headers, Kind, Query, Reply, Route, State, concurrency_refusal};

/// The most items one batch may hold.
const MAX_ITEMS: usize = 20;

/// One item of a batch request.
struct Item {
    id: String,
    method: String,
    url: String,
    headers: Map<String, Value>,
    body: Option<Value>,
    depends_on: Vec<String>,
}

/// An item url as a full Graph path (`/v1.0/…`, query included).
fn item_path(url: &str) -> String {
    format!("/v1.0/{}", url.trim_start_matches('/'))
}

/// The users (mailboxes) a batch body's items name, for the concurrency cap.
pub fn item_users(body: &[u8]) -> Vec<String> {
    let Ok(batch) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let urls = batch["requests"].as_array().into_iter().flatten();
    urls.filter_map(|item| item["url"].as_str())
        .filter_map(|url| {
            let path = item_path(url);
            let path = path.split('?').next().unwrap_or("");
            Route::parse(path).user().map(str::to_string)
        })
        .collect()
}

fn malformed(message: &str) -> Reply {
    Reply::error(400, "BadRequest", message)
}

/// Reads the items; anything malformed fails the whole batch, as Graph does.
fn parse_items(body: &Map<String, Value>) -> Result<Vec<Item>, Reply> {
    let requests = body
        .get("requests")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("Invalid batch payload format: 'requests' is missing."))?;
    if requests.is_empty() {
        return Err(malformed("Invalid batch payload format: no requests."));
    }
    if requests.len() > MAX_ITEMS {
        return Err(malformed(&format!(
            "Number of batch request steps exceeds the maximum of {MAX_ITEMS}."
        )));
    }
    let mut items = Vec::new();
    for request in requests {
        let text = |name: &str| {
            request[name]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| {
                    malformed(&format!(
                        "Invalid batch payload format: each request needs a string '{name}'."
                    ))
                })
        };
        let depends_on = match &request["dependsOn"] {
            Value::Null => Vec::new(),
            Value::Array(ids) => ids
                .iter()
                .map(|id| id.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| malformed("dependsOn must list request ids."))?,
            _ => return Err(malformed("dependsOn must be an array.")),
        };
        let headers = match &request["headers"] {
            Value::Null => Map::new(),
            Value::Object(headers) => headers.clone(),
            _ => return Err(malformed("headers must be an object.")),
        };
        items.push(Item {
            id: text("id")?,
            method: text("method")?.to_ascii_uppercase(),
            url: text("url")?,
            headers,
            body: request.get("body").cloned(),
            depends_on,
        });
    }
    let mut ids = HashSet::new();
    if !items.iter().all(|i| ids.insert(i.id.to_lowercase())) {
        return Err(malformed("Batch request contains duplicate request ids."));
    }
    for item in &items {
        for dependency in &item.depends_on {
            let known = ids.contains(&dependency.to_lowercase());
            if !known || dependency.eq_ignore_ascii_case(&item.id) {
                return Err(malformed(&format!(
                    "Request {} depends on '{dependency}', which is not another request of the batch.",
                    item.id
                )));
            }
        }
    }
    Ok(items)
}

/// An order that runs every item after its dependencies; `None` on a cycle.
fn run_order(items: &[Item]) -> Option<Vec<usize>> {
    let index: HashMap<String, usize> = items
        .iter()
        .enumerate()
        .map(|(i, item)| (item.id.to_lowercase(), i))
        .collect();
    let mut done = vec![false; items.len()];
    let mut order = Vec::new();
    while order.len() < items.len() {
        let next = (0..items.len()).find(|&i| {
            !done[i]
                && items[i]
                    .depends_on
                    .iter()
                    .all(|d| done[index[&d.to_lowercase()]])
        })?;
        done[next] = true;
        order.push(next);
    }
    Some(order)
}

/// A deterministic shuffle (xorshift64*), so a seed fixes the order responses come in.
fn shuffle<T>(values: &mut [T], seed: u64) {
    let mut state = seed | 1;
    for i in (1..values.len()).rev() {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let random = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        values.swap(i, (random % (i as u64 + 1)) as usize);
    }
}

fn item_response(id: &str, reply: &Reply) -> Value {
    let mut headers: Map<String, Value> = reply
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), json!(v)))
        .collect();
    let mut response = json!({"id": id, "status": reply.status});
    if let Some(body) = &reply.body {
        headers.insert("Content-Type".into(), json!(reply.content_type));
        response["body"] = body.clone();
    }
    response["headers"] = Value::Object(headers);
    response
}

impl State {
    /// Serves a batch envelope; `refused` are the mailboxes that had no free slot.
    pub(super) fn batch(&mut self, call: &Call, refused: &HashSet<String>) -> Reply {
        self.run_batch(call, refused)
            .unwrap_or_else(|refusal| refusal)
    }

    fn run_batch(&mut self, call: &Call, refused: &HashSet<String>) -> Result<Reply, Reply> {
        call.query.allow_only(&[])?;
        let items = parse_items(&call.json_body()?)?;
        let order = run_order(&items)
            .ok_or_else(|| malformed("The dependsOn of the batch requests form a cycle."))?;
        let mut statuses: HashMap<String, u16> = HashMap::new();
        let mut responses = Vec::new();
        for index in order {
            let item = &items[index];
            self.count_item(item);
            let dependency_failed = item
                .depends_on
                .iter()
                .any(|d| statuses.get(&d.to_lowercase()).is_some_and(|s| *s >= 400));
            let reply = if dependency_failed {
                Reply::error(
                    424,
                    "FailedDependency",
                    "A request this one depends on failed.",
                )
            } else {
                self.run_item(item, call, refused)
            };
            statuses.insert(item.id.to_lowercase(), reply.status);
            responses.push(item_response(&item.id, &reply));
        }
        self.batches += 1;
        let seed = self.knobs.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.batches;
        shuffle(&mut responses, seed);
        Ok(Reply::json(200, json!({"responses": responses})))
    }

    /// Counts an item under [`Kind::BatchItem`] and its own kind.
    fn count_item(&mut self, item: &Item) {
        let path = item_path(&item.url);
        let (path_only, query) = path.split_once('?').unwrap_or((&path, ""));
        self.count(
            Route::parse(path_only).kind(&item.method, Some(query)),
            false,
        );
        self.count(Kind::BatchItem, false);
    }

    /// Runs one item through the same handler a direct call reaches.
    fn run_item(&mut self, item: &Item, call: &Call, refused: &HashSet<String>) -> Reply {
        let path = item_path(&item.url);
        let (path_only, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path.as_str(), None),
        };
        let route = Route::parse(path_only);
        if item.url.contains("://") {
            return malformed("A batch request url must be relative, e.g. /users/{id}/events.");
        }
        if matches!(route, Route::Batch | Route::Token { .. } | Route::NotGraph) {
            return malformed("This url cannot be used inside a batch.");
        }
        let mut headers = Headers::new();
        for (name, value) in &item.headers {
            let Some(value) = value.as_str() else {
                return malformed("Batch request header values must be strings.");
            };
            headers.append(name.clone(), value);
        }
        if item.body.is_some() && !headers.contains("Content-Type") {
            return malformed("A Content-Type header is required when a request has a body.");
        }
        if route
            .user()
            .is_some_and(|user| refused.contains(&self.slot_key(user)))
        {
            return concurrency_refusal();
        }
        let is_write = matches!(item.method.as_str(), "POST" | "PATCH" | "PUT" | "DELETE");
        if is_write && self.batch_throttle.0 > 0 {
            self.batch_throttle.0 -= 1;
            return Reply::throttled(
                "TooManyRequests",
                "Too many requests, retry later.",
                self.batch_throttle.1,
            );
        }
        let query = match Query::parse(query) {
            Ok(query) => query,
            Err(refusal) => return refusal,
        };
        let body = item
            .body
            .as_ref()
            .map(|b| b.to_string().into_bytes())
            .unwrap_or_default();
        let item_call = Call {
            method: &item.method,
            path: path_only.to_string(),
            query,
            headers: &headers,
            body: &body,
            base: call.base,
        };
        self.graph(&route, &item_call)
    }
}
