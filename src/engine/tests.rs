//! The engine's paths, over an in-memory state and fake providers: what only the end-to-end
//! tests reached before (a read that fails half-way, the guard, creates whose outcome is
//! unknown, a rebuilt mapping, the cursor held back after a failed write, a dry run).

use super::*;
use crate::config::{Environment, Settings};
use crate::model::{Details, Marking, Moment, SourceEvent, SourceKey};
use crate::providers::{Applied, OwnedEvent, PageSink};
use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

const CONFIG: &str = r#"
[[pair]]
name = "parish"
max_delete_min = 3
[pair.source]
kind = "ics"
path = "feed.ics"
[pair.target]
kind = "ics"
path = "out.ics"
"#;

fn settings() -> Settings {
    crate::config::parse(
        Path::new("/etc/calsync/calsync.toml"),
        CONFIG,
        None,
        &Environment::default(),
    )
    .unwrap()
}

fn now() -> DateTime<Utc> {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

fn event(key: &str, title: &str, day: u32) -> SourceEvent {
    let start: Moment = format!("2026-06-{day:02}T10:00:00Z").parse().unwrap();
    let end: Moment = format!("2026-06-{day:02}T11:00:00Z").parse().unwrap();
    SourceEvent {
        key: SourceKey(key.into()),
        main: Details {
            start,
            end: Some(end),
            title: Some(title.into()),
            location: None,
            description: None,
            categories: vec![],
            marking: Marking::Class(None),
            cancelled: false,
        },
        recurrence: None,
        overrides: vec![],
    }
}

/// A source that lists `events` in full (or fails after handing them over).
struct FakeSource {
    events: Vec<SourceEvent>,
    fail: bool,
    cursors: Rc<RefCell<Vec<Option<String>>>>,
}

impl Source for FakeSource {
    fn read(
        &mut self,
        cursor: Option<&str>,
        sink: &mut PageSink<'_>,
    ) -> Result<ReadEnd, ProviderError> {
        self.cursors.borrow_mut().push(cursor.map(str::to_string));
        sink(SourcePage {
            events: std::mem::take(&mut self.events),
            ..Default::default()
        })?;
        if self.fail {
            return Err(ProviderError::Transient {
                endpoint: "https://source:443".into(),
                detail: "connection reset".into(),
            });
        }
        Ok(ReadEnd {
            kind: ReadKind::Full,
            cursor: Some("cursor-1".into()),
        })
    }
}

/// What the fake target saw and holds.
#[derive(Default)]
struct TargetLog {
    /// (verb, item, outcome_unknown)
    writes: Vec<(&'static str, String, bool)>,
    /// Items whose writes fail with a transient error.
    failing: BTreeSet<String>,
    /// What `list_owned` reports.
    owned: Vec<OwnedEvent>,
    list_calls: usize,
}

struct FakeTarget(Rc<RefCell<TargetLog>>);

impl Target for FakeTarget {
    fn prepare(&mut self) -> Result<(), ProviderError> {
        Ok(())
    }

    fn apply(&mut self, writes: &[Write]) -> Vec<Result<Applied, WriteError>> {
        let mut log = self.0.borrow_mut();
        writes
            .iter()
            .map(|w| {
                let (verb, unknown) = match w {
                    Write::Create {
                        outcome_unknown, ..
                    } => ("create", *outcome_unknown),
                    Write::Update { .. } => ("update", false),
                    Write::Delete { .. } => ("delete", false),
                };
                log.writes.push((verb, w.item().0.clone(), unknown));
                if log.failing.contains(&w.item().0) {
                    return Err(WriteError::Failed(ProviderError::Transient {
                        endpoint: "https://target:443".into(),
                        detail: "no answer".into(),
                    }));
                }
                Ok(Applied {
                    target_id: format!("t-{}", w.item().0),
                    etag: Some("\"1\"".into()),
                })
            })
            .collect()
    }

    fn list_owned(&mut self) -> Result<Vec<OwnedEvent>, ProviderError> {
        let mut log = self.0.borrow_mut();
        log.list_calls += 1;
        Ok(log.owned.clone())
    }
}

struct Rig {
    settings: Settings,
    store: Store,
    http: Http,
    target: Rc<RefCell<TargetLog>>,
    cursors: Rc<RefCell<Vec<Option<String>>>>,
    runs: std::cell::Cell<u32>,
}

impl Rig {
    fn new() -> Rig {
        let settings = settings();
        let http = Http::new(&settings.net).unwrap();
        Rig {
            settings,
            store: Store::in_memory().unwrap(),
            http,
            target: Rc::default(),
            cursors: Rc::default(),
            runs: std::cell::Cell::new(0),
        }
    }

    fn sync(&self, events: Vec<SourceEvent>, fail: bool, opts: SyncOptions) -> PairReport {
        self.runs.set(self.runs.get() + 1);
        let run_id = format!("run-{}", self.runs.get());
        let engine = Engine {
            settings: &self.settings,
            store: &self.store,
            http: &self.http,
            run_id: &run_id,
            now: now(),
        };
        let pair = &self.settings.pairs[0];
        let mut source = Some(FakeSource {
            events,
            fail,
            cursors: self.cursors.clone(),
        });
        let target = self.target.clone();
        engine.sync_pair_with(pair, opts, &mut |_ctx| {
            let source: Box<dyn Source> = Box::new(source.take().expect("built once"));
            let target: Box<dyn Target> = Box::new(FakeTarget(target.clone()));
            Ok((source, target))
        })
    }

    fn writes(&self) -> Vec<(&'static str, String, bool)> {
        std::mem::take(&mut self.target.borrow_mut().writes)
    }
}

fn parish(n: u32) -> Vec<SourceEvent> {
    (1..=n)
        .map(|i| event(&format!("e{i}"), &format!("Event {i}"), i))
        .collect()
}

#[test]
fn a_read_that_fails_half_way_plans_nothing_and_keeps_the_cursor() {
    let rig = Rig::new();
    assert_eq!(
        rig.sync(parish(5), false, SyncOptions::default()).exit_code,
        exit::OK
    );
    rig.writes();
    // The source hands over one event, then the connection drops.
    let report = rig.sync(parish(1), true, SyncOptions::default());
    assert_eq!(report.exit_code, exit::TEMPFAIL);
    assert!(
        rig.writes().is_empty(),
        "nothing written after a failed read"
    );
    assert_eq!(rig.store.mapped_count("parish").unwrap(), 5);
    assert_eq!(
        rig.store.pair_state("parish").unwrap().cursor.as_deref(),
        Some("cursor-1")
    );
}

#[test]
fn an_emptied_source_trips_the_guard_and_creates_still_go_ahead() {
    let rig = Rig::new();
    rig.sync(parish(6), false, SyncOptions::default());
    rig.writes();
    let report = rig.sync(vec![event("new", "New", 9)], false, SyncOptions::default());
    assert_eq!(report.exit_code, exit::FAILED, "{:?}", report.error);
    assert_eq!(report.counts.guard_withheld, 6);
    assert_eq!(rig.writes(), vec![("create", "new".to_string(), false)]);
    assert_eq!(rig.store.mapped_count("parish").unwrap(), 7);
    let forced = rig.sync(
        vec![event("new", "New", 9)],
        false,
        SyncOptions {
            allow_mass_delete: true,
            ..Default::default()
        },
    );
    assert_eq!(forced.exit_code, exit::OK);
    assert_eq!(forced.counts.deleted, 6);
}

#[test]
fn a_create_lost_on_the_way_is_sent_again_marked_outcome_unknown() {
    let rig = Rig::new();
    rig.target.borrow_mut().failing.insert("e2".into());
    let first = rig.sync(parish(3), false, SyncOptions::default());
    assert_eq!(first.exit_code, exit::FAILED);
    assert_eq!(first.counts.failed, 1);
    // The cursor is held back: the failed create is planned again.
    assert_eq!(rig.store.pair_state("parish").unwrap().cursor, None);
    rig.writes();
    rig.target.borrow_mut().failing.clear();
    let second = rig.sync(parish(3), false, SyncOptions::default());
    assert_eq!(second.exit_code, exit::OK);
    assert_eq!(rig.writes(), vec![("create", "e2".to_string(), true)]);
    assert!(rig.store.pending_intents("parish").unwrap().is_empty());
    // Settled: a later create of another item is not marked.
    rig.sync(parish(4), false, SyncOptions::default());
    assert_eq!(rig.writes(), vec![("create", "e4".to_string(), false)]);
}

#[test]
fn an_uncertain_create_no_longer_wanted_is_found_by_its_tag_and_deleted() {
    let rig = Rig::new();
    rig.sync(parish(3), false, SyncOptions::default());
    rig.target.borrow_mut().failing.insert("e4".into());
    rig.sync(parish(4), false, SyncOptions::default());
    rig.writes();
    // The lost create did land: the target holds e4 under its tag.
    let published = rig
        .store
        .staged_item("parish", "e4")
        .unwrap()
        .expect("still staged from the last run");
    let event: PublicEvent = serde_json::from_str(&published.body).unwrap();
    rig.target.borrow_mut().owned = vec![OwnedEvent {
        target_id: "t-e4".into(),
        tag: hashing::item_tag("parish", &ItemKey("e4".into())),
        etag: Some("\"1\"".into()),
        markings: vec![Marking::Class(Some("PUBLIC".into()))],
        foreign: vec![],
        dtstamp: None,
        event,
    }];
    rig.target.borrow_mut().failing.clear();
    // Now the source no longer has e4 (it turned private, say): it must not stay published.
    let lists = rig.target.borrow().list_calls;
    let report = rig.sync(parish(3), false, SyncOptions::default());
    assert_eq!(report.exit_code, exit::OK);
    assert_eq!(rig.target.borrow().list_calls, lists + 1, "one listing");
    assert_eq!(
        rig.writes(),
        vec![(
            "delete",
            "orphan:".to_string() + &hashing::item_tag("parish", &ItemKey("e4".into())),
            false
        )]
    );
}

#[test]
fn a_lost_mapping_is_rebuilt_from_tags_without_a_write() {
    let rig = Rig::new();
    rig.sync(parish(2), false, SyncOptions::default());
    let owned: Vec<OwnedEvent> = ["e1", "e2"]
        .iter()
        .map(|k| {
            let row = rig.store.mapped("parish", k).unwrap().unwrap();
            OwnedEvent {
                target_id: row.target_id,
                tag: hashing::item_tag("parish", &ItemKey(k.to_string())),
                etag: row.etag,
                markings: vec![Marking::Class(Some("PUBLIC".into()))],
                foreign: vec![],
                dtstamp: Some(row.dtstamp),
                event: serde_json::from_str(&row.body).unwrap(),
            }
        })
        .collect();
    // A new state file, the same target.
    let rig2 = Rig::new();
    rig2.target.borrow_mut().owned = owned;
    let report = rig2.sync(parish(2), false, SyncOptions::default());
    assert_eq!(report.exit_code, exit::OK);
    assert!(rig2.writes().is_empty(), "adopted, not created again");
    assert_eq!(rig2.store.mapped_count("parish").unwrap(), 2);
}

#[test]
fn a_dry_run_sends_no_write_to_the_target() {
    let rig = Rig::new();
    let report = rig.sync(
        parish(3),
        false,
        SyncOptions {
            dry_run: true,
            ..Default::default()
        },
    );
    assert_eq!(report.outcome, "dry_run");
    assert_eq!(report.counts.created, 3);
    assert!(rig.writes().is_empty());
}
