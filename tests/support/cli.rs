//! `Cli`: runs the real calsync binary in a temp folder and reads what it said.
//!
//! A test writes its config and fixtures into the folder, runs `calsync` as a process (the
//! built binary, via assert_cmd), and checks status, stdout, stderr and files together. Log
//! lines are decoded by the test's own struct, so a line that is not JSON, lacks `ts`, `level`
//! or `msg`, or carries a number as a string fails the test.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A temp folder to run calsync in.
pub struct Cli {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

/// What one run of calsync did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// One JSON log line, as DESIGN.md promises it.
#[derive(Debug, Clone, Deserialize)]
pub struct LogLine {
    pub ts: String,
    pub level: String,
    pub msg: String,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub pair: Option<String>,
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl LogLine {
    /// A numeric field (fails the test when it is missing or not a JSON number).
    pub fn num(&self, key: &str) -> u64 {
        self.fields
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or_else(|| panic!("log line {:?} has no numeric {key:?}: {self:?}", self.event))
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(serde_json::Value::as_str)
    }
}

impl Run {
    /// The stdout lines, each decoded as a log line (panics on a line that is not one).
    pub fn log(&self) -> Vec<LogLine> {
        decode(&self.stdout, "stdout")
    }

    /// The stderr lines decoded as log lines (report commands log there).
    pub fn stderr_log(&self) -> Vec<LogLine> {
        decode(&self.stderr, "stderr")
    }

    /// The first stdout line with this event.
    pub fn event(&self, event: &str) -> LogLine {
        self.log()
            .into_iter()
            .find(|l| l.event.as_deref() == Some(event))
            .unwrap_or_else(|| {
                panic!(
                    "no {event} line in stdout:\n{}\nstderr:\n{}",
                    self.stdout, self.stderr
                )
            })
    }

    pub fn has_event(&self, event: &str) -> bool {
        self.log().iter().any(|l| l.event.as_deref() == Some(event))
    }

    /// Everything the process wrote.
    pub fn all_output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

fn decode(text: &str, stream: &str) -> Vec<LogLine> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let line: LogLine = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{stream} line is not a JSON log line ({e}): {l}"));
            chrono::DateTime::parse_from_rfc3339(&line.ts)
                .unwrap_or_else(|e| panic!("ts is not RFC 3339 ({e}): {l}"));
            assert!(line.ts.ends_with('Z'), "ts is not UTC: {l}");
            assert!(
                ["error", "warn", "info", "debug", "trace"].contains(&line.level.as_str()),
                "bad level: {l}"
            );
            line
        })
        .collect()
}

impl Cli {
    pub fn new() -> Cli {
        Cli {
            dir: tempfile::tempdir().expect("a temp folder"),
            env: Vec::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file (creating folders).
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("creating a folder");
        }
        std::fs::write(&p, contents).expect("writing a fixture");
        p
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    /// Sets an environment variable for every later run.
    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Runs `calsync --config <dir>/calsync.toml <args…>`.
    pub fn run(&self, args: &[&str]) -> Run {
        let config = self.path("calsync.toml");
        let mut all = vec!["--config", config.to_str().expect("UTF-8 temp path")];
        all.extend_from_slice(args);
        self.run_raw(&all)
    }

    /// Starts `calsync --config <dir>/calsync.toml <args…>` without waiting; stdout and
    /// stderr are piped (read them with [`finish`]).
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        let config = self.path("calsync.toml");
        let mut all = vec!["--config", config.to_str().expect("UTF-8 temp path")];
        all.extend_from_slice(args);
        self.command(&all)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting calsync")
    }

    /// Runs `calsync <args…>` as a user without privileges (`nobody`, through setpriv) when
    /// the tests run as root, so that file permissions are enforced; as the current user
    /// otherwise. The temp folder is opened to others for it.
    pub fn run_unprivileged(&self, args: &[&str]) -> Run {
        use std::os::unix::fs::PermissionsExt;
        let config = self.path("calsync.toml");
        let mut all = vec!["--config", config.to_str().expect("UTF-8 temp path")];
        all.extend_from_slice(args);
        let root = nix_uid() == 0;
        let mut cmd = self.command(&all);
        if root {
            std::fs::set_permissions(self.dir(), std::fs::Permissions::from_mode(0o755))
                .expect("opening the temp folder");
            let mut wrapped = Command::new("setpriv");
            wrapped
                .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
                .arg(cmd.get_program())
                .args(cmd.get_args())
                .current_dir(self.dir());
            for (k, v) in cmd.get_envs() {
                match v {
                    Some(v) => wrapped.env(k, v),
                    None => wrapped.env_remove(k),
                };
            }
            cmd = wrapped;
        }
        let out = cmd.output().expect("running calsync");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `calsync <args…>` as given.
    pub fn run_raw(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("running calsync");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        // Tests keep their state in `state/`, a folder that exists as systemd's
        // StateDirectory= would make it: calsync creates the state file, never its folder.
        let _ = std::fs::create_dir_all(self.dir.path().join("state"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_calsync"));
        cmd.args(args).current_dir(self.dir.path());
        for var in [
            "CALSYNC_CONFIG",
            "CALSYNC_STATE",
            "CREDENTIALS_DIRECTORY",
            "STATE_DIRECTORY",
            "RUST_LOG",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }
}

/// Waits for a spawned calsync (bounded: a hung process fails the test) and collects what it
/// said.
pub fn finish(mut child: std::process::Child) -> Run {
    use std::io::Read;
    // Drain both pipes while waiting, so a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for calsync") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("calsync did not end within 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    use std::os::unix::process::ExitStatusExt;
    Run {
        code: status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// The real user id of the test process (`id -u`).
pub fn nix_uid() -> u32 {
    let out = Command::new("id").arg("-u").output().expect("running id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a numeric uid")
}

/// Sends a signal to a process (`kill -s NAME PID`).
pub fn signal(child: &std::process::Child, name: &str) {
    let ok = Command::new("kill")
        .args(["-s", name, &child.id().to_string()])
        .status()
        .expect("running kill")
        .success();
    assert!(ok, "kill -s {name} failed");
}
