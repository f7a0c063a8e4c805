//! calsync: publishes the public events of one calendar into another.
//!
//! The library holds everything; `main.rs` only parses arguments, calls a command and maps
//! its error to an exit code. Pure logic (`model`, `policy`, `plan`, `recurrence`,
//! `hashing`, `ical`) knows nothing of HTTP or SQLite; `providers` turn remote calendars into
//! the model behind two small traits; `engine` wires source, policy, planner, target and
//! `store` together; `commands` are thin.

pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod engine;
pub mod error;
pub mod exit;
pub mod fsutil;
pub mod hashing;
pub mod html;
pub mod ical;
pub mod interrupt;
pub mod logging;
pub mod mask;
pub mod metrics;
pub mod model;
pub mod net;
pub mod plan;
pub mod policy;
pub mod providers;
pub mod recurrence;
pub mod scrub;
pub mod store;
pub mod vzone;
