//! Graph as a target: creates, updates and deletes through JSON `$batch` (see `batch`).
//!
//! Every event calsync creates carries its tag as a single-value extended property, a
//! `transactionId` derived from the tag and the run (so a create re-sent within a run is
//! dropped by Graph), `sensitivity: "normal"`, no attendee (no invitation is ever sent) and
//! no reminder. Graph assigns event ids, so a create whose earlier outcome is unknown (a run
//! that ended hard, an answer lost) is looked up by its tag first and created only when it is
//! not there; an update whose event is gone (404) is looked up the same way.
//!
//! Target ids say what an item was written as: `<id>` a single event, `series:<id>` a series
//! master, `expanded:<tag>` a series Graph cannot hold (several BYDAY positions, RDATEs, an
//! hourly rule…), written as one event per occurrence in the window, each marked with the
//! item's tag in a second property; such an item is found, and deleted, by that tag. It
//! covers the window as it was when written, so it says it depends on the window
//! (`Target::depends_on_window`): the engine writes it anew each day the window moves.
//!
//! A series that fits Graph's patterns is written as a series; its EXDATEs and overridden
//! instances are then made true in the target: the master's instances are listed, the
//! excluded ones deleted, the overridden ones patched (and an exception calsync no longer
//! wants patched back to the series' own content). An instance the series should have but
//! Graph no longer holds (a deleted occurrence cannot be restored) makes the series be
//! written anew. Each write is a small state machine; all writes of an `apply` advance
//! together, so each step of them all goes in as few batches as possible.
//!
//! Ownership (rule 5): only ids from the mapping or found under calsync's tag are touched;
//! `list_owned` reads back the events carrying a tag, with their sensitivity as markings.

use super::batch::{self, ItemResult, Op};
use super::{Graph, part_property, rule_property, tag_property, wire};
use crate::config::GraphSettings;
use crate::model::{Moment, PublicDetails, PublicEvent, PublicOverride, Recurrence};
use crate::providers::{Applied, Context, OwnedEvent, ProviderError, Target, Write, WriteError};
use crate::store::Store;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// How an item is held in Graph.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    Single(String),
    Series(String),
    Expanded(String),
}

impl Held {
    fn parse(target_id: &str) -> Held {
        if let Some(id) = target_id.strip_prefix("series:") {
            Held::Series(id.to_string())
        } else if let Some(tag) = target_id.strip_prefix("expanded:") {
            Held::Expanded(tag.to_string())
        } else {
            Held::Single(target_id.to_string())
        }
    }

    fn target_id(&self) -> String {
        match self {
            Held::Single(id) => id.clone(),
            Held::Series(id) => format!("series:{id}"),
            Held::Expanded(tag) => format!("expanded:{tag}"),
        }
    }
}

/// What a published item becomes in Graph.
enum Shape {
    Single,
    /// A series with its Graph recurrence.
    Series(Value),
    /// One event per instance in the window: (recurrence id, details).
    Expanded(Vec<(Moment, PublicDetails)>),
}

/// Where one write stands.
enum Step {
    /// Look for events under the tag (`parts`: the expanded-part property); `deleting`:
    /// what is found goes, and nothing is written.
    Find {
        parts: bool,
        deleting: bool,
    },
    /// Delete these events (404 is gone), then go on.
    Remove {
        ids: Vec<String>,
        then: Box<Step>,
    },
    Create,
    Patch {
        id: String,
    },
    /// List the master's instances to make EXDATEs and overrides true.
    Instances {
        id: String,
    },
    /// Delete or patch instances; then done.
    Fix {
        id: String,
        ops: Vec<Op>,
    },
    Done,
}

/// One write in progress.
struct Task<'w> {
    write: &'w Write,
    shape: Option<Shape>,
    step: Step,
    result: Option<Result<Applied, WriteError>>,
    /// The series was written anew once already in this write.
    recreated: bool,
}

impl Task<'_> {
    fn fail(&mut self, e: WriteError) {
        self.step = Step::Done;
        self.result = Some(Err(e));
    }

    fn finish(&mut self, applied: Applied) {
        self.step = Step::Done;
        self.result = Some(Ok(applied));
    }
}

/// A Graph calendar written as a target.
pub struct GraphTarget<'a> {
    graph: Graph,
    calendar: String,
    checked: bool,
    store: &'a Store,
    pair: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    retries: u32,
    backoff: std::time::Duration,
}

impl<'a> GraphTarget<'a> {
    /// Resolves the calendar (cached for an hour in the state file).
    ///
    /// # Errors
    /// The resolution's errors, by cause.
    pub fn new(settings: &GraphSettings, ctx: &Context<'a>) -> Result<Self, ProviderError> {
        let graph = Graph::new(settings, ctx)?;
        let resolved = super::resolve_calendar(&graph, settings, ctx);
        graph.save_token(ctx.store);
        let (calendar, checked) = resolved?;
        Ok(GraphTarget {
            graph,
            calendar,
            checked,
            store: ctx.store,
            pair: ctx.pair.name.clone(),
            from: ctx.window.from,
            to: ctx.window.to,
            retries: ctx.settings.net.retries,
            backoff: std::time::Duration::from_millis(ctx.settings.net.backoff_ms),
        })
    }

    fn events_url(&self) -> String {
        format!(
            "{}/calendars/{}/events",
            self.graph.mailbox,
            super::path_segment(&self.calendar)
        )
    }

    fn event_url(&self, id: &str) -> String {
        format!("{}/events/{}", self.graph.mailbox, super::path_segment(id))
    }

    /// `…/events?$filter=` the events carrying `property` (with `value`, when given).
    fn tagged_url(&self, property: &str, value: Option<&str>, expand: bool) -> String {
        let filter = match value {
            Some(v) => format!(
                "singleValueExtendedProperties/Any(ep: ep/id eq '{property}' and ep/value eq '{v}')"
            ),
            None => format!("singleValueExtendedProperties/Any(ep: ep/id eq '{property}')"),
        };
        let mut url = format!(
            "{}?$filter={}&$top=100",
            self.events_url(),
            super::query_value(&filter)
        );
        if expand {
            url.push_str(&format!(
                "&$expand={}",
                super::query_value(&format!(
                    "singleValueExtendedProperties($filter=id eq '{property}')"
                ))
            ));
        }
        url
    }

    /// A `transactionId` from the tag and the run: a create re-sent in this run (a batch
    /// retried after a lost answer) is dropped by Graph; across runs the tag lookup decides.
    fn transaction_id(tag: &str, dtstamp: DateTime<Utc>, part: Option<&Moment>) -> String {
        let digest = crate::hashing::sha256_hex(
            format!(
                "calsync/txn\0{tag}\0{}\0{}",
                dtstamp.timestamp(),
                part.map(|m| m.to_string()).unwrap_or_default()
            )
            .as_bytes(),
        );
        format!(
            "{}-{}-{}-{}-{}",
            &digest[0..8],
            &digest[8..12],
            &digest[12..16],
            &digest[16..20],
            &digest[20..32]
        )
    }

    fn shape(&self, event: &PublicEvent, item: &crate::model::ItemKey) -> Shape {
        if !event.is_series() {
            return Shape::Single;
        }
        if let Some(recurrence) = wire::fit(event, self.from, self.to) {
            // Overrides must name instances the rule has, or they cannot be patched in.
            return Shape::Series(recurrence);
        }
        log::warn!(event = "graph.series_expanded", pair = self.pair.as_str(), item = item.0.as_str();
                   "the series' rule does not fit Graph's recurrence patterns: written as one event per occurrence in the window");
        Shape::Expanded(expand(event, self.from, self.to))
    }

    fn create_ops(&self, task: &Task<'_>) -> Result<Vec<Op>, String> {
        let (Write::Create {
            event,
            tag,
            dtstamp,
            ..
        }
        | Write::Update {
            event,
            tag,
            dtstamp,
            ..
        }) = task.write
        else {
            return Ok(vec![]);
        };
        match task.shape.as_ref().expect("creates have a shape") {
            Shape::Single | Shape::Series(_) => {
                let mut fields = wire::event_fields(&event.details)?;
                if let Some(Shape::Series(recurrence)) = &task.shape {
                    fields.insert("recurrence".into(), recurrence.clone());
                }
                let mut properties = vec![json!({"id": tag_property(), "value": tag})];
                if matches!(task.shape, Some(Shape::Series(_))) {
                    properties
                        .push(json!({"id": rule_property(), "value": event.rules.join("\n")}));
                }
                fields.insert("singleValueExtendedProperties".into(), json!(properties));
                fields.insert(
                    "transactionId".into(),
                    json!(Self::transaction_id(tag, *dtstamp, None)),
                );
                Ok(vec![Op::with_body(
                    "POST",
                    self.events_url(),
                    Value::Object(fields),
                )])
            }
            Shape::Expanded(parts) => parts
                .iter()
                .map(|(rid, details)| {
                    let mut fields = wire::event_fields(details)?;
                    fields.insert(
                        "singleValueExtendedProperties".into(),
                        json!([{"id": part_property(), "value": tag}]),
                    );
                    fields.insert(
                        "transactionId".into(),
                        json!(Self::transaction_id(tag, *dtstamp, Some(rid))),
                    );
                    Ok(Op::with_body(
                        "POST",
                        self.events_url(),
                        Value::Object(fields),
                    ))
                })
                .collect(),
        }
    }

    /// The ops of a task's current step.
    fn ops(&self, task: &mut Task<'_>) -> Vec<Op> {
        match &task.step {
            Step::Done => vec![],
            Step::Find { parts, .. } => {
                let tag = tag_of(task.write);
                let property = if *parts {
                    part_property()
                } else {
                    tag_property()
                };
                vec![Op::get(self.tagged_url(&property, Some(tag), false))]
            }
            Step::Remove { ids, .. } => ids
                .iter()
                .map(|id| Op::delete(self.event_url(id)))
                .collect(),
            Step::Create => match self.create_ops(task) {
                Ok(ops) => ops,
                Err(why) => {
                    task.fail(unwritable(task.write, &why));
                    vec![]
                }
            },
            Step::Patch { id } => {
                let (Write::Update { event, .. } | Write::Create { event, .. }) = task.write else {
                    return vec![];
                };
                match wire::event_fields(&event.details) {
                    Ok(mut fields) => {
                        if let Some(Shape::Series(recurrence)) = &task.shape {
                            fields.insert("recurrence".into(), recurrence.clone());
                        }
                        vec![Op::with_body(
                            "PATCH",
                            self.event_url(id),
                            Value::Object(fields),
                        )]
                    }
                    Err(why) => {
                        task.fail(unwritable(task.write, &why));
                        vec![]
                    }
                }
            }
            Step::Instances { id, .. } => {
                let (from, to) = self.instance_range(task.write);
                vec![Op::get(format!(
                    "{}/instances?startDateTime={}&endDateTime={}&$top=1000",
                    self.event_url(id),
                    from.format("%Y-%m-%dT%H:%M:%SZ"),
                    to.format("%Y-%m-%dT%H:%M:%SZ")
                ))]
            }
            Step::Fix { ops, .. } => ops.clone(),
        }
    }

    /// Where a series' instances are checked: the window, and every EXDATE and override.
    fn instance_range(&self, write: &Write) -> (DateTime<Utc>, DateTime<Utc>) {
        let (mut from, mut to) = (self.from, self.to);
        if let Some(event) = event_of(write) {
            for m in event
                .exdates
                .iter()
                .chain(event.overrides.iter().map(|o| &o.recurrence_id))
            {
                from = from.min(m.to_utc() - Duration::days(1));
                to = to.max(m.to_utc() + Duration::days(1));
            }
        }
        (from, to)
    }

    /// Moves a task on with the replies to its step's ops.
    fn advance(&self, task: &mut Task<'_>, replies: Vec<ItemResult>) {
        let step = std::mem::replace(&mut task.step, Step::Done);
        match step {
            Step::Done => {}
            Step::Fix { id, .. } => {
                for reply in replies {
                    match reply {
                        Ok(r) if r.ok() || r.status == 404 => {}
                        Ok(r) => return task.fail(self.item_failure("series instance", &r)),
                        Err(e) => return task.fail(WriteError::Failed(e)),
                    }
                }
                task.finish(Applied {
                    target_id: Held::Series(id).target_id(),
                    etag: None,
                });
            }
            Step::Find { parts, deleting } => {
                let reply = match first(task, replies) {
                    Some(r) => r,
                    None => return,
                };
                if !reply.ok() {
                    return task.fail(self.item_failure("tag lookup", &reply));
                }
                let ids: Vec<String> = reply.body["value"]
                    .as_array()
                    .map(|v| {
                        v.iter()
                            .filter_map(|e| e["id"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                if deleting {
                    self.remember_expanded(tag_of(task.write), None);
                    task.step = Step::Remove {
                        ids,
                        then: Box::new(Step::Done),
                    };
                    return;
                }
                task.step = match (parts, ids.as_slice()) {
                    (true, []) | (false, []) => Step::Create,
                    // Parts of an expanded item: written anew.
                    (true, _) => Step::Remove {
                        ids,
                        then: Box::new(Step::Create),
                    },
                    // Ours already (an earlier attempt landed): made what it should be; a
                    // second copy (never made by calsync, but possible) is removed.
                    (false, [id, rest @ ..]) => {
                        let found = &reply.body["value"][0];
                        let wanted = event_of(task.write).map(|e| &e.details);
                        let single = matches!(task.shape, Some(Shape::Single));
                        if single && rest.is_empty() && wanted.is_some_and(|w| holds(found, w)) {
                            return task.finish(Applied {
                                target_id: Held::Single(id.clone()).target_id(),
                                etag: found["@odata.etag"].as_str().map(str::to_string),
                            });
                        }
                        let patch = Step::Patch { id: id.clone() };
                        if rest.is_empty() {
                            patch
                        } else {
                            Step::Remove {
                                ids: rest.to_vec(),
                                then: Box::new(patch),
                            }
                        }
                    }
                };
            }
            Step::Remove { then, ids } => {
                for (reply, id) in replies.into_iter().zip(&ids) {
                    match reply {
                        Ok(r) if r.ok() || r.status == 404 => {}
                        Ok(r) => {
                            return task.fail(self.item_failure(&format!("delete of {id}"), &r));
                        }
                        Err(e) => return task.fail(WriteError::Failed(e)),
                    }
                }
                match *then {
                    Step::Done => task.finish(Applied {
                        target_id: match task.write {
                            Write::Delete { target_id, .. } => target_id.clone(),
                            _ => String::new(),
                        },
                        etag: None,
                    }),
                    next => task.step = next,
                }
            }
            Step::Create => {
                let mut ids = Vec::new();
                let mut etag = None;
                for reply in replies {
                    match reply {
                        Ok(r) if r.ok() => {
                            let Some(id) = r.body["id"].as_str() else {
                                return task.fail(self.failure("create", "the answer holds no id"));
                            };
                            ids.push(id.to_string());
                            etag = r.body["@odata.etag"].as_str().map(str::to_string);
                        }
                        Ok(r) => return task.fail(self.item_failure("create", &r)),
                        Err(e) => return task.fail(WriteError::Failed(e)),
                    }
                }
                match task.shape.as_ref().expect("creates have a shape") {
                    Shape::Single => task.finish(Applied {
                        target_id: Held::Single(ids.remove(0)).target_id(),
                        etag,
                    }),
                    Shape::Series(_) => {
                        let id = ids.remove(0);
                        if needs_fixes(task.write) {
                            task.step = Step::Instances { id };
                        } else {
                            task.finish(Applied {
                                target_id: Held::Series(id).target_id(),
                                etag,
                            });
                        }
                    }
                    Shape::Expanded(_) => {
                        let tag = tag_of(task.write).to_string();
                        if let Some(event) = event_of(task.write) {
                            self.remember_expanded(&tag, Some(event));
                        }
                        task.finish(Applied {
                            target_id: Held::Expanded(tag).target_id(),
                            etag: None,
                        })
                    }
                }
            }
            Step::Patch { id } => {
                let Some(reply) = first(task, replies) else {
                    return;
                };
                match reply.status {
                    s if (200..300).contains(&s) => {
                        let etag = reply.body["@odata.etag"].as_str().map(str::to_string);
                        if matches!(task.shape, Some(Shape::Series(_))) {
                            task.step = Step::Instances { id };
                        } else {
                            task.finish(Applied {
                                target_id: Held::Single(id).target_id(),
                                etag,
                            });
                        }
                    }
                    // Changed underneath (Graph answers 412 to a stale version).
                    412 => task.fail(WriteError::Conflict),
                    // Gone: an earlier run may have written it anew; the tag decides.
                    404 => {
                        task.step = Step::Find {
                            parts: false,
                            deleting: false,
                        }
                    }
                    _ => task.fail(self.item_failure("update", &reply)),
                }
            }
            Step::Instances { id } => {
                let Some(reply) = first(task, replies) else {
                    return;
                };
                if !reply.ok() {
                    return task.fail(self.item_failure("series instances", &reply));
                }
                let listed = reply.body["value"].as_array().cloned().unwrap_or_default();
                let event = event_of(task.write).expect("series writes carry an event");
                match instance_fixes(event, &listed, self.instance_range(task.write)) {
                    Fixes::Ops(list) if list.is_empty() => task.finish(Applied {
                        target_id: Held::Series(id).target_id(),
                        etag: None,
                    }),
                    Fixes::Ops(list) => {
                        let ops = list
                            .into_iter()
                            .map(|(instance, body)| match body {
                                Some(body) => {
                                    Op::with_body("PATCH", self.event_url(&instance), body)
                                }
                                None => Op::delete(self.event_url(&instance)),
                            })
                            .collect();
                        task.step = Step::Fix { id, ops };
                    }
                    Fixes::Unwritable(why) => task.fail(unwritable(task.write, &why)),
                    Fixes::Recreate if !task.recreated => {
                        task.recreated = true;
                        task.step = Step::Remove {
                            ids: vec![id],
                            then: Box::new(Step::Create),
                        };
                    }
                    Fixes::Recreate => task.fail(self.failure(
                        "series",
                        "Graph does not hold the instances its own pattern gives",
                    )),
                }
            }
        }
    }

    /// The state file's cache key of what an expanded item was written from.
    fn expanded_key(&self, tag: &str) -> String {
        format!(
            "graph.expanded.{}.{tag}",
            crate::hashing::sha256_hex(self.calendar.as_bytes())
        )
    }

    /// Keeps (or, with `None`, forgets) the published form of an expanded item: its events
    /// hold occurrences, not the rule, so `list_owned` compares them with this form's
    /// occurrences to read the item back as what it is. Kept for ten years; a lost state
    /// file loses it, and the item is then read back as its occurrences and written anew.
    fn remember_expanded(&self, tag: &str, event: Option<&PublicEvent>) {
        let key = self.expanded_key(tag);
        let result = match event {
            Some(e) => self.store.cache(
                &key,
                &e.canonical_json(),
                self.from.timestamp() + 10 * 366 * 86_400,
            ),
            None => self.store.cache(&key, "", 0),
        };
        if let Err(e) = result {
            log::warn!(event = "state.error", pair = self.pair.as_str(); "{e}");
        }
    }

    /// The published form of an expanded item, when its events in the target are exactly
    /// its occurrences in the window.
    fn expanded_as_written(&self, tag: &str, events: &[&Value]) -> Option<PublicEvent> {
        let text = self
            .store
            .cached(&self.expanded_key(tag), self.from.timestamp())
            .ok()??;
        let event: PublicEvent = serde_json::from_str(&text).ok()?;
        let want = expand(&event, self.from, self.to);
        if want.len() != events.len() {
            return None;
        }
        let mut left: Vec<&Value> = events.to_vec();
        for (_, details) in &want {
            let at = left.iter().position(|e| holds(e, details))?;
            left.remove(at);
        }
        Some(event)
    }

    fn failure(&self, what: &str, detail: &str) -> WriteError {
        WriteError::Failed(ProviderError::Failed {
            what: self.graph.what(what),
            detail: detail.to_string(),
        })
    }

    fn item_failure(&self, what: &str, reply: &batch::Reply) -> WriteError {
        WriteError::Failed(batch::item_error(&self.graph, what, reply))
    }
}

impl GraphTarget<'_> {
    /// The first step of a write.
    fn start<'w>(&self, write: &'w Write) -> Task<'w> {
        let mut task = Task {
            write,
            shape: None,
            step: Step::Done,
            result: None,
            recreated: false,
        };
        task.step = match write {
            Write::Create {
                item,
                event,
                outcome_unknown,
                ..
            } => {
                let shape = self.shape(event, item);
                let parts = matches!(shape, Shape::Expanded(_));
                task.shape = Some(shape);
                if *outcome_unknown {
                    Step::Find {
                        parts,
                        deleting: false,
                    }
                } else {
                    Step::Create
                }
            }
            Write::Update {
                item,
                target_id,
                event,
                ..
            } => {
                let shape = self.shape(event, item);
                let step = match (Held::parse(target_id), &shape) {
                    (Held::Single(id), Shape::Single) | (Held::Series(id), Shape::Series(_)) => {
                        Step::Patch { id }
                    }
                    (Held::Single(id) | Held::Series(id), _) => Step::Remove {
                        ids: vec![id],
                        then: Box::new(Step::Create),
                    },
                    (Held::Expanded(_), _) => Step::Find {
                        parts: true,
                        deleting: false,
                    },
                };
                task.shape = Some(shape);
                step
            }
            Write::Delete { target_id, .. } => match Held::parse(target_id) {
                Held::Single(id) | Held::Series(id) => Step::Remove {
                    ids: vec![id],
                    then: Box::new(Step::Done),
                },
                Held::Expanded(_) => Step::Find {
                    parts: true,
                    deleting: true,
                },
            },
        };
        task
    }

    /// Reads back one event (single or master) as published fields.
    fn read_details(event: &Value) -> Option<PublicDetails> {
        let own = wire::own_zone(event).unwrap_or(chrono_tz::Tz::UTC);
        let d = wire::details(event, own).ok()?;
        Some(PublicDetails {
            start: d.start,
            end: d.end,
            title: d.title.unwrap_or_default(),
            location: d.location,
            description: d.description,
            categories: d.categories,
        })
    }

    /// The tag an event carries under `property`.
    fn tag_in(event: &Value, property: &str) -> Option<String> {
        event["singleValueExtendedProperties"]
            .as_array()?
            .iter()
            .find(|p| {
                p["id"]
                    .as_str()
                    .is_some_and(|id| id.eq_ignore_ascii_case(property))
            })
            .and_then(|p| p["value"].as_str())
            .map(str::to_string)
    }
}

impl Target for GraphTarget<'_> {
    /// A series Graph's patterns cannot hold is written as its occurrences in the window: it
    /// must be written again as the window moves.
    fn depends_on_window(&self, event: &PublicEvent) -> bool {
        event.is_series() && wire::fit(event, self.from, self.to).is_none()
    }

    fn prepare(&mut self) -> Result<(), ProviderError> {
        // One cheap request per run: a calendar deleted or access withdrawn shows now (and
        // in `health`), not at the next change.
        if self.checked {
            return Ok(());
        }
        let url = format!(
            "{}/calendars/{}",
            self.graph.mailbox,
            super::path_segment(&self.calendar)
        );
        let result = self.graph.json(&self.graph.get(url), "target calendar");
        self.graph.save_token(self.store);
        result?;
        self.checked = true;
        Ok(())
    }

    fn apply(&mut self, writes: &[Write]) -> Vec<Result<Applied, WriteError>> {
        let mut tasks: Vec<Task<'_>> = writes.iter().map(|w| self.start(w)).collect();
        // Every step ends a write or moves it on; a write takes at most a handful of steps
        // (find, remove, create, instances, fix, and once more after a re-creation).
        for _ in 0..16 {
            let mut ops = Vec::new();
            let mut owners = Vec::new();
            for (n, task) in tasks.iter_mut().enumerate() {
                if task.result.is_some() {
                    continue;
                }
                let list = self.ops(task);
                if list.is_empty() && task.result.is_none() {
                    // A step with nothing to send (an expanded series with no instance in
                    // the window) moves on at once.
                    self.advance(task, Vec::new());
                    continue;
                }
                owners.extend(std::iter::repeat_n(n, list.len()));
                ops.extend(list);
            }
            if ops.is_empty() {
                if tasks.iter().all(|t| t.result.is_some()) {
                    break;
                }
                continue;
            }
            let replies = batch::run(&self.graph, &ops, self.retries, self.backoff);
            let mut by_task: BTreeMap<usize, Vec<ItemResult>> = BTreeMap::new();
            for (owner, reply) in owners.into_iter().zip(replies) {
                by_task.entry(owner).or_default().push(reply);
            }
            let mut fatal = None;
            for (n, replies) in by_task {
                self.advance(&mut tasks[n], replies);
                if let Some(Err(WriteError::Failed(e))) = &tasks[n].result
                    && e.ends_the_pair()
                {
                    fatal.get_or_insert_with(|| e.to_string());
                }
            }
            if fatal.is_some() {
                for task in tasks.iter_mut().filter(|t| t.result.is_none()) {
                    task.fail(crate::providers::pool::not_attempted(task.write.item()));
                }
                break;
            }
        }
        self.graph.save_token(self.store);
        tasks
            .into_iter()
            .map(|t| {
                t.result.unwrap_or_else(|| {
                    Err(WriteError::Failed(ProviderError::Failed {
                        what: format!("write of {}", t.write.item()),
                        detail: "did not finish in the steps allowed".into(),
                    }))
                })
            })
            .collect()
    }

    fn list_owned(&mut self) -> Result<Vec<OwnedEvent>, ProviderError> {
        let text = "outlook.body-content-type=\"text\"";
        let tagged = self.graph.list(
            self.graph
                .get_preferring(self.tagged_url(&tag_property(), None, true), text),
            "tagged events",
        );
        let parts = tagged.and_then(|tagged| {
            self.graph
                .list(
                    self.graph
                        .get_preferring(self.tagged_url(&part_property(), None, true), text),
                    "tagged events",
                )
                .map(|parts| (tagged, parts))
        });
        self.graph.save_token(self.store);
        let (tagged, parts) = parts?;
        let mut owned = Vec::new();
        let mut masters = Vec::new();
        for event in &tagged {
            let (Some(tag), Some(id)) =
                (Self::tag_in(event, &tag_property()), event["id"].as_str())
            else {
                continue;
            };
            if event["type"].as_str() == Some("seriesMaster") {
                masters.push((id.to_string(), tag, event));
                continue;
            }
            let Some(details) = Self::read_details(event) else {
                continue;
            };
            owned.push(OwnedEvent {
                target_id: Held::Single(id.to_string()).target_id(),
                etag: event["@odata.etag"].as_str().map(str::to_string),
                markings: vec![marking(event)],
                foreign: foreign(event),
                dtstamp: None,
                event: PublicEvent {
                    uid: crate::hashing::target_uid_of_tag(&tag),
                    details,
                    rules: vec![],
                    rdates: vec![],
                    periods: Vec::new(),
                    exdates: vec![],
                    overrides: vec![],
                },
                tag,
            });
        }
        let mut ops: Vec<Op> = Vec::new();
        for (id, _, _) in &masters {
            ops.push(Op::get(format!(
                "{}/instances?startDateTime={}&endDateTime={}&$top=1000",
                self.event_url(id),
                self.from.format("%Y-%m-%dT%H:%M:%SZ"),
                self.to.format("%Y-%m-%dT%H:%M:%SZ")
            )));
            ops.push(Op::get(format!(
                "{}?$select=id&$expand={}",
                self.event_url(id),
                super::query_value(&format!(
                    "singleValueExtendedProperties($filter=id eq '{}')",
                    rule_property()
                ))
            )));
        }
        let mut replies = batch::run(&self.graph, &ops, self.retries, self.backoff).into_iter();
        self.graph.save_token(self.store);
        for (id, tag, master) in masters {
            let (Some(instances), Some(written)) = (replies.next(), replies.next()) else {
                break;
            };
            let reply = instances?;
            if !reply.ok() {
                return Err(batch::item_error(&self.graph, "series instances", &reply));
            }
            let written = written?;
            let listed = reply.body["value"].as_array().cloned().unwrap_or_default();
            let Some(details) = Self::read_details(master) else {
                continue;
            };
            let Ok(held) = wire::graph_rule(&master["recurrence"], &details.start, false) else {
                continue;
            };
            let stored = Self::tag_in(&written.body, &rule_property())
                .map(|r| r.split('\n').map(str::to_string).collect::<Vec<_>>());
            let rule = match stored {
                Some(rules) if same_instances(&details, &rules, &held, self.from, self.to) => rules,
                _ => vec![held],
            };
            let mut markings = vec![marking(master)];
            let mut event = PublicEvent {
                uid: crate::hashing::target_uid_of_tag(&tag),
                details,
                rules: rule,
                rdates: vec![],
                periods: Vec::new(),
                exdates: vec![],
                overrides: vec![],
            };
            read_instances(&mut event, &listed, self.from, self.to, &mut markings);
            owned.push(OwnedEvent {
                target_id: Held::Series(id).target_id(),
                etag: master["@odata.etag"].as_str().map(str::to_string),
                markings,
                foreign: foreign(master),
                dtstamp: None,
                event,
                tag,
            });
        }
        // Expanded items: their events grouped by tag, read back as the occurrences they are.
        let mut groups: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for event in &parts {
            if let Some(tag) = Self::tag_in(event, &part_property()) {
                groups.entry(tag).or_default().push(event);
            }
        }
        for (tag, mut events) in groups {
            events.sort_by_key(|e| e["start"]["dateTime"].as_str().unwrap_or("").to_string());
            let Some(details) = Self::read_details(events[0]) else {
                continue;
            };
            let markings = events.iter().map(|e| marking(e)).collect();
            let foreign = events.iter().flat_map(|e| foreign(e)).collect();
            if let Some(event) = self.expanded_as_written(&tag, &events) {
                owned.push(OwnedEvent {
                    target_id: Held::Expanded(tag.clone()).target_id(),
                    etag: None,
                    markings,
                    foreign,
                    dtstamp: None,
                    event,
                    tag,
                });
                continue;
            }
            // Not what was written (or not known): read back as its occurrences, the first
            // as the event and every other one as an extra instance of its own.
            let mut event = PublicEvent {
                uid: crate::hashing::target_uid_of_tag(&tag),
                details,
                rules: vec![],
                rdates: vec![],
                periods: Vec::new(),
                exdates: vec![],
                overrides: vec![],
            };
            for e in &events[1..] {
                if let Some(d) = Self::read_details(e) {
                    event.rdates.push(d.start.clone());
                    event.overrides.push(PublicOverride {
                        recurrence_id: d.start.clone(),
                        details: d,
                    });
                }
            }
            owned.push(OwnedEvent {
                target_id: Held::Expanded(tag.clone()).target_id(),
                etag: None,
                markings,
                foreign,
                dtstamp: None,
                event,
                tag,
            });
        }
        Ok(owned)
    }
}

fn marking(event: &Value) -> crate::model::Marking {
    crate::model::Marking::Sensitivity(event["sensitivity"].as_str().map(str::to_string))
}

/// What an event holds that calsync never writes.
fn foreign(event: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if event["attendees"].as_array().is_some_and(|a| !a.is_empty()) {
        out.push("ATTENDEE".to_string());
    }
    if event["isReminderOn"].as_bool() == Some(true) {
        out.push("VALARM".to_string());
    }
    if event["hasAttachments"].as_bool() == Some(true) {
        out.push("ATTACH".to_string());
    }
    if event["isOnlineMeeting"].as_bool() == Some(true) {
        out.push("ONLINE-MEETING".to_string());
    }
    out
}

/// The zone a series' instances are named in (what its DTSTART is written in).
fn series_zone(start: &Moment) -> chrono_tz::Tz {
    match start {
        Moment::Zoned(_, tz) => *tz,
        _ => chrono_tz::Tz::UTC,
    }
}

/// An instance's original start in the series' form.
fn rid_of(instance: &Value, start: &Moment) -> Option<Moment> {
    let original = instance["originalStart"]
        .as_str()
        .and_then(wire::parse_instant)?;
    Some(crate::recurrence::in_series_form(
        &wire::in_zone(original, series_zone(start)),
        start,
    ))
}

/// Whether the rules written gives the same instances over the window as the rule Graph
/// holds (then they are two spellings of one series).
fn same_instances(
    details: &PublicDetails,
    written: &[String],
    held: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> bool {
    let end = wire::end_of(details);
    let expand = |rules: Vec<String>| {
        crate::recurrence::instances(
            &details.start,
            &end,
            &Recurrence {
                rules,
                rdates: vec![],
                periods: Vec::new(),
                exrules: Vec::new(),
                exdates: vec![],
            },
            from,
            to,
            crate::recurrence::MAX_EXPANSION,
        )
        .ok()
        .map(|list| {
            list.into_iter()
                .map(|i| i.start.to_utc())
                .collect::<Vec<_>>()
        })
    };
    let ours = expand(written.to_vec());
    ours.is_some() && ours == expand(vec![held.to_string()])
}

/// Fills a read-back series' EXDATEs (instances its rule gives that Graph does not list)
/// and overrides (exceptions) from its listed instances.
fn read_instances(
    event: &mut PublicEvent,
    listed: &[Value],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    markings: &mut Vec<crate::model::Marking>,
) {
    let start = event.details.start.clone();
    let rec = Recurrence {
        rules: event.rules.clone(),
        rdates: vec![],
        periods: Vec::new(),
        exrules: Vec::new(),
        exdates: vec![],
    };
    let end = wire::end_of(&event.details);
    let listed_rids: Vec<Moment> = listed.iter().filter_map(|i| rid_of(i, &start)).collect();
    if let Ok(expected) = crate::recurrence::instances(
        &start,
        &end,
        &rec,
        from,
        to,
        crate::recurrence::MAX_EXPANSION,
    ) {
        for i in expected {
            if !listed_rids.contains(&i.recurrence_id) {
                event.exdates.push(i.recurrence_id);
            }
        }
    }
    for i in listed {
        if i["type"].as_str() != Some("exception") {
            continue;
        }
        let (Some(rid), Some(details)) = (rid_of(i, &start), GraphTarget::read_details(i)) else {
            continue;
        };
        markings.push(marking(i));
        event.overrides.push(PublicOverride {
            recurrence_id: rid,
            details,
        });
    }
    event.exdates.sort();
    event
        .overrides
        .sort_by(|a, b| a.recurrence_id.cmp(&b.recurrence_id));
}

/// What making a series' EXDATEs and overrides true takes.
enum Fixes {
    /// (instance id, patch body; `None` deletes it).
    Ops(Vec<(String, Option<Value>)>),
    /// An instance the series should have is gone from Graph: write the series anew.
    Recreate,
    Unwritable(String),
}

/// Compares an instance Graph lists with the details it should have.
fn holds(instance: &Value, want: &PublicDetails) -> bool {
    let Some(have) = GraphTarget::read_details(instance) else {
        return false;
    };
    let text = |s: Option<&str>| {
        s.map(|t| t.trim().replace("\r\n", "\n"))
            .filter(|t| !t.is_empty())
    };
    let cats = |d: &PublicDetails| {
        let mut c = d.categories.clone();
        c.sort();
        c
    };
    have.title.trim() == want.title.trim()
        && text(have.location.as_deref()) == text(want.location.as_deref())
        && text(have.description.as_deref()) == text(want.description.as_deref())
        && cats(&have) == cats(want)
        && have.start.to_utc() == want.start.to_utc()
        && wire::end_of(&have).to_utc() == wire::end_of(want).to_utc()
}

/// The instance fixes that make a series' EXDATEs and overrides true.
fn instance_fixes(
    event: &PublicEvent,
    listed: &[Value],
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> Fixes {
    let start = &event.details.start;
    let rec = Recurrence {
        rules: event.rules.clone(),
        rdates: vec![],
        periods: Vec::new(),
        exrules: Vec::new(),
        exdates: event.exdates.clone(),
    };
    let end = wire::end_of(&event.details);
    let Ok(expected) = crate::recurrence::instances(
        start,
        &end,
        &rec,
        from,
        to,
        crate::recurrence::MAX_EXPANSION,
    ) else {
        return Fixes::Unwritable("the series' rule cannot be expanded".into());
    };
    let mut ops = Vec::new();
    let mut seen = Vec::new();
    for i in listed {
        let (Some(id), Some(rid)) = (i["id"].as_str(), rid_of(i, start)) else {
            continue;
        };
        seen.push(rid.clone());
        if event.exdates.contains(&rid) {
            ops.push((id.to_string(), None));
            continue;
        }
        let want = match event.overrides.iter().find(|o| o.recurrence_id == rid) {
            Some(o) => o.details.clone(),
            None => match expected.iter().find(|e| e.recurrence_id == rid) {
                Some(e) => PublicDetails {
                    start: e.start.clone(),
                    end: Some(e.end.clone()),
                    ..event.details.clone()
                },
                None => continue,
            },
        };
        if !holds(i, &want) {
            match wire::event_fields(&want) {
                Ok(mut fields) => {
                    // An instance keeps the series' all-day flag; only its fields change.
                    fields.remove("isAllDay");
                    fields.remove("sensitivity");
                    fields.remove("isReminderOn");
                    ops.push((id.to_string(), Some(Value::Object(fields))));
                }
                Err(why) => return Fixes::Unwritable(why),
            }
        }
    }
    if expected.iter().any(|e| !seen.contains(&e.recurrence_id)) {
        return Fixes::Recreate;
    }
    Fixes::Ops(ops)
}

/// The instances of a series in the window, each as published (an override's own fields).
fn expand(
    event: &PublicEvent,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(Moment, PublicDetails)> {
    let rec = Recurrence {
        rules: event.rules.clone(),
        rdates: event.rdates.clone(),
        periods: Vec::new(),
        exrules: Vec::new(),
        exdates: event.exdates.clone(),
    };
    let end = wire::end_of(&event.details);
    let list = crate::recurrence::instances(
        &event.details.start,
        &end,
        &rec,
        from,
        to,
        crate::policy::MAX_INSTANCES,
    )
    .unwrap_or_default();
    list.into_iter()
        .map(|i| {
            let details = match event
                .overrides
                .iter()
                .find(|o| o.recurrence_id == i.recurrence_id)
            {
                Some(o) => o.details.clone(),
                None => PublicDetails {
                    start: i.start.clone(),
                    end: Some(i.end.clone()),
                    ..event.details.clone()
                },
            };
            (i.recurrence_id, details)
        })
        .collect()
}

fn tag_of(write: &Write) -> &str {
    match write {
        Write::Create { tag, .. } | Write::Update { tag, .. } => tag,
        Write::Delete { target_id, .. } => target_id.strip_prefix("expanded:").unwrap_or(target_id),
    }
}

fn event_of(write: &Write) -> Option<&PublicEvent> {
    match write {
        Write::Create { event, .. } | Write::Update { event, .. } => Some(event),
        Write::Delete { .. } => None,
    }
}

/// A series with EXDATEs or overrides needs its instances checked after it is written; an
/// update always does (the target may hold exceptions the series no longer has).
fn needs_fixes(write: &Write) -> bool {
    match write {
        Write::Create { event, .. } => !event.exdates.is_empty() || !event.overrides.is_empty(),
        Write::Update { .. } => true,
        Write::Delete { .. } => false,
    }
}

/// The first reply of a step; an error fails the task.
fn first(task: &mut Task<'_>, replies: Vec<ItemResult>) -> Option<batch::Reply> {
    match replies.into_iter().next() {
        Some(Ok(reply)) => Some(reply),
        Some(Err(e)) => {
            task.fail(WriteError::Failed(e));
            None
        }
        None => {
            task.fail(WriteError::Failed(ProviderError::Failed {
                what: format!("write of {}", task.write.item()),
                detail: "no answer".into(),
            }));
            None
        }
    }
}

/// An item Graph cannot hold as published (named by its item key, never its content).
fn unwritable(write: &Write, why: &str) -> WriteError {
    WriteError::Failed(ProviderError::Failed {
        what: format!("write of {}", write.item()),
        detail: why.to_string(),
    })
}
