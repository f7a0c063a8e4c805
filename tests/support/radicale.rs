//! `Radicale`: a real CalDAV server (Radicale 3.9.0) started for one test.
//!
//! The CalDAV provider is tested against the real thing, not a fake of our own making. Each
//! `Radicale` runs in its own temp folder (storage, htpasswd, config, log) on a free port of
//! 127.0.0.1, with the configuration of `../shared/peerbench/run.sh`: htpasswd auth (plain) for
//! the user `test` with a random password, `owner_only` rights, no web UI. Dropping it stops the
//! process (SIGTERM, a bounded wait, then SIGKILL) and removes the folder.
//!
//! The binary comes from `CALSYNC_TEST_RADICALE`, else `.venv-test/bin/radicale` in the
//! repository; `scripts/test.sh` installs the pinned version there. Without either, starting
//! panics and says so: a CalDAV test never passes by silently not running.
//!
//! The helpers (`mkcalendar`, `put`, `delete`, `get`, `list`) talk to Radicale with a plain
//! reqwest client, never through calsync's own CalDAV code, so a test can set up and inspect a
//! target without trusting what it tests. `list` takes the resource names from Radicale's
//! storage folder and fetches each over HTTP, which gives exactly what a client sees.

use std::ffi::OsString;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::blocking::{Client, RequestBuilder};

/// The environment variable `scripts/test.sh` sets to the pinned Radicale.
pub const RADICALE_ENV: &str = "CALSYNC_TEST_RADICALE";
/// The user every test Radicale knows.
const USER: &str = "test";
/// How many ports to try when another process takes ours between probe and bind.
const PORT_ATTEMPTS: usize = 5;
/// How long Radicale may take to answer after it was started (Python imports on a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long it may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the start and stop waits look again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// One calendar object as Radicale serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    /// The path of the resource, e.g. `/test/public/ab12.ics`.
    pub href: String,
    /// The `ETag` Radicale sends for it, quotes included.
    pub etag: String,
    /// The iCalendar text Radicale serves for it.
    pub ics: String,
}

/// A running Radicale for one test; stopped and removed on drop.
pub struct Radicale {
    child: Child,
    /// Holds storage, config, htpasswd and log; removed when dropped (after the process is gone).
    dir: tempfile::TempDir,
    port: u16,
    password: String,
    client: Client,
}

impl Radicale {
    /// Starts Radicale and waits until it answers an authenticated PROPFIND.
    ///
    /// Panics when the binary is missing (telling to run `scripts/test.sh`) or when Radicale does
    /// not come up (with its log).
    pub fn start() -> Radicale {
        let binary = locate_binary(
            std::env::var_os(RADICALE_ENV),
            Path::new(env!("CARGO_MANIFEST_DIR")),
        )
        .unwrap_or_else(|message| panic!("{message}"));
        let dir = tempfile::Builder::new()
            .prefix("calsync-radicale-")
            .tempdir()
            .expect("creating a temp folder for Radicale");
        let password = random_password();
        fs::write(dir.path().join("htpasswd"), format!("{USER}:{password}\n"))
            .expect("writing Radicale's htpasswd file");
        fs::create_dir(dir.path().join("storage")).expect("creating Radicale's storage folder");
        let client = Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("building the HTTP client of the Radicale helpers");

        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let config = dir.path().join("radicale.conf");
            fs::write(&config, config_text(dir.path(), port)).expect("writing radicale.conf");
            let log = fs::File::create(dir.path().join("radicale.log"))
                .expect("creating Radicale's log file");
            let child = Command::new(&binary)
                .arg("--config")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("sharing the log file"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
            let mut child = child;
            match wait_until_ready(&mut child, port, &client, &password) {
                Ready::Yes => {
                    return Radicale {
                        child,
                        dir,
                        port,
                        password,
                        client,
                    };
                }
                // Most likely the port was taken between our probe and its bind: try another.
                Ready::Exited => {
                    let _ = child.wait();
                    last_log = read_log(dir.path());
                }
                Ready::TimedOut => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "Radicale ({}) did not answer on 127.0.0.1:{port} within {START_TIMEOUT:?}; its log:\n{}",
                        binary.display(),
                        read_log(dir.path())
                    );
                }
            }
        }
        panic!(
            "Radicale ({}) exited at start {PORT_ATTEMPTS} times; the last log:\n{last_log}",
            binary.display()
        );
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The user name Radicale knows (`test`).
    pub fn user(&self) -> &str {
        USER
    }

    /// The user's password (random per instance).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The process id, e.g. to check that it is gone after drop.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The URL of the user's collection `name`, with a trailing slash.
    pub fn collection_url(&self, name: &str) -> String {
        format!("{}/{USER}/{name}/", self.url())
    }

    /// Radicale's `filesystem_folder`.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The folder in which Radicale keeps the collection `name`'s resources, one file each.
    pub fn collection_dir(&self, name: &str) -> PathBuf {
        self.storage_dir()
            .join("collection-root")
            .join(USER)
            .join(name)
    }

    /// What Radicale wrote to stdout and stderr so far (for failure messages).
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }

    /// An authenticated request to Radicale with any method (`PROPFIND`, `REPORT`...).
    pub fn request(&self, method: &str, url: &str) -> RequestBuilder {
        let method = Method::from_bytes(method.as_bytes()).expect("an HTTP method name");
        self.client
            .request(method, url)
            .basic_auth(USER, Some(&self.password))
    }

    /// Creates the calendar collection `name`; returns its URL.
    pub fn mkcalendar(&self, name: &str) -> String {
        let url = self.collection_url(name);
        self.expect_status(self.request("MKCALENDAR", &url), &[201], "MKCALENDAR", &url);
        url
    }

    /// Stores `ics` as `resource_name` (e.g. `event1.ics`) in the collection; returns the ETag.
    pub fn put(&self, collection: &str, resource_name: &str, ics: &str) -> String {
        let url = format!("{}{resource_name}", self.collection_url(collection));
        let response = self.expect_status(
            self.request("PUT", &url)
                .header("Content-Type", "text/calendar; charset=utf-8")
                .body(ics.to_string()),
            &[201, 204],
            "PUT",
            &url,
        );
        header_text(&response, "ETag")
            .unwrap_or_else(|| panic!("Radicale sent no ETag for PUT {url}"))
    }

    /// Deletes `resource_name` from the collection.
    pub fn delete(&self, collection: &str, resource_name: &str) {
        let url = format!("{}{resource_name}", self.collection_url(collection));
        self.expect_status(self.request("DELETE", &url), &[200, 204], "DELETE", &url);
    }

    /// The ETag and text of `resource_name`, or `None` when it does not exist.
    pub fn get(&self, collection: &str, resource_name: &str) -> Option<StoredObject> {
        let url = format!("{}{resource_name}", self.collection_url(collection));
        let response = self.expect_status(self.request("GET", &url), &[200, 404], "GET", &url);
        if response.status().as_u16() == 404 {
            return None;
        }
        let etag = header_text(&response, "ETag")
            .unwrap_or_else(|| panic!("Radicale sent no ETag for GET {url}"));
        let ics = response
            .text()
            .unwrap_or_else(|e| panic!("reading GET {url}: {e}"));
        Some(StoredObject {
            href: format!("/{USER}/{collection}/{resource_name}"),
            etag,
            ics,
        })
    }

    /// Every calendar object in the collection, sorted by href.
    pub fn list(&self, collection: &str) -> Vec<StoredObject> {
        let dir = self.collection_dir(collection);
        let entries = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading the collection folder {}: {e}", dir.display()));
        let mut names: Vec<String> = entries
            .map(|entry| entry.expect("reading a collection folder entry"))
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            // Radicale's own files (.Radicale.props, .Radicale.cache/) start with a dot.
            .filter(|name| !name.starts_with('.'))
            .collect();
        names.sort();
        names
            .iter()
            .map(|name| {
                self.get(collection, name).unwrap_or_else(|| {
                    panic!("{name} is in the storage folder but Radicale does not serve it")
                })
            })
            .collect()
    }

    fn expect_status(
        &self,
        request: RequestBuilder,
        expected: &[u16],
        what: &str,
        url: &str,
    ) -> reqwest::blocking::Response {
        let response = request
            .send()
            .unwrap_or_else(|e| panic!("{what} {url}: {e}\nRadicale's log:\n{}", self.log()));
        let status = response.status().as_u16();
        if !expected.contains(&status) {
            let body = response.text().unwrap_or_default();
            panic!("{what} {url}: expected {expected:?}, got {status}: {body}");
        }
        response
    }
}

impl Drop for Radicale {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        // SIGTERM lets Radicale finish a write and release its lock; std can only SIGKILL.
        let terminated = Command::new("kill")
            .args(["-TERM", &pid])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if terminated {
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                thread::sleep(POLL_INTERVAL);
            }
            eprintln!("Radicale {pid} did not exit within {STOP_TIMEOUT:?} of SIGTERM; killing it");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls until Radicale answers an authenticated request, it exits, or time runs out.
fn wait_until_ready(child: &mut Child, port: u16, client: &Client, password: &str) -> Ready {
    let deadline = Instant::now() + START_TIMEOUT;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let method = Method::from_bytes(b"PROPFIND").expect("PROPFIND is a method name");
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return Ready::Exited;
        }
        // Connecting first keeps the wait cheap; the PROPFIND proves it is our Radicale (our
        // password) and not whatever else might hold the port.
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            let answer = client
                .request(method.clone(), format!("http://{addr}/"))
                .basic_auth(USER, Some(password))
                .header("Depth", "0")
                .timeout(Duration::from_secs(5))
                .send();
            if answer.is_ok_and(|a| a.status().as_u16() == 207) {
                return Ready::Yes;
            }
        }
        thread::sleep(POLL_INTERVAL);
    }
    Ready::TimedOut
}

fn read_log(dir: &Path) -> String {
    fs::read_to_string(dir.join("radicale.log")).unwrap_or_default()
}

enum Ready {
    Yes,
    Exited,
    TimedOut,
}

/// Finds the Radicale binary: `env_value` (from `CALSYNC_TEST_RADICALE`) when set, else the
/// venv `scripts/test.sh` makes. The error says what to run.
pub fn locate_binary(env_value: Option<OsString>, manifest_dir: &Path) -> Result<PathBuf, String> {
    let (binary, origin) = match env_value {
        Some(value) if !value.is_empty() => {
            (PathBuf::from(value), format!("named by {RADICALE_ENV}"))
        }
        _ => (
            manifest_dir.join(".venv-test/bin/radicale"),
            format!("the default, {RADICALE_ENV} being unset"),
        ),
    };
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "no Radicale for the CalDAV tests: {} ({origin}) does not exist. \
             Run the tests with the README's test command, scripts/test.sh, \
             which installs the pinned Radicale into .venv-test/.",
            binary.display()
        ))
    }
}

/// The configuration of `../shared/peerbench/run.sh`, with this instance's port and folders.
fn config_text(dir: &Path, port: u16) -> String {
    format!(
        "[server]\n\
         hosts = 127.0.0.1:{port}\n\
         max_connections = 16\n\
         timeout = 60\n\
         [auth]\n\
         type = htpasswd\n\
         htpasswd_filename = {htpasswd}\n\
         htpasswd_encryption = plain\n\
         delay = 0\n\
         [rights]\n\
         type = owner_only\n\
         [storage]\n\
         filesystem_folder = {storage}\n\
         [web]\n\
         type = none\n\
         [logging]\n\
         level = warning\n\
         mask_passwords = True\n",
        htpasswd = dir.join("htpasswd").display(),
        storage = dir.join("storage").display(),
    )
}

/// A port that was free a moment ago (Radicale binds it itself, so this can race; the caller
/// retries).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("binding a free port on 127.0.0.1")
        .port()
}

fn random_password() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("reading random bytes for Radicale's password");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn header_text(response: &reqwest::blocking::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
