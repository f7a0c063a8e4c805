//! The test kit that calsync's integration tests share (`mod support;` in each test file).
//!
//! Tests here talk to real things: the built binary as a process, SQLite files on disk, a real
//! Radicale, loopback HTTP servers. This module provides the servers:
//! - [`google_fake`]: `GoogleFake`, a stateful Google Calendar API v3 and OAuth token endpoint;
//! - [`http`]: `TestServer`, a recording HTTP/1.1 server with a handler, for fakes of Graph,
//!   Google and .ics feeds;
//! - [`graph_fake`]: `GraphFake`, a stateful Microsoft Graph calendar API and token endpoint on a
//!   `TestServer`, written from Microsoft's documentation;
//! - [`proxy`]: `FaultProxy`, a recording reverse proxy that drops, delays, truncates or answers
//!   with an error status on command;
//! - [`radicale`]: `Radicale`, a real CalDAV server started per test.
//!
//! Everything binds 127.0.0.1 only, every wait is bounded, and every server stops on `Drop`.
//! `tests/testkit.rs` proves each part does what it says, so other tests can rely on it.
// Not every test file uses every helper.
#![allow(dead_code)]

pub mod cli;
pub mod google_fake;
pub mod graph_fake;
pub mod http;
pub mod ics;
pub mod parish;
pub mod proxy;
pub mod radicale;
