//! TLS trusts the system's certificate store and `SSL_CERT_FILE` (DESIGN, "Trust nothing a
//! remote says"): a school's server behind the organisation's own CA is reached once that
//! CA is trusted, and refused while it is not.
//!
//! The server is Python's `ssl` with a certificate from a throw-away CA that `trustme` (pinned
//! in scripts/test.sh) makes for this test alone, on 127.0.0.1; no system file is touched.

mod support;

use calsync::exit;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use support::cli::Cli;
use support::ics::{feed, timed};

/// The HTTPS server: serves one file for every GET, with a certificate for 127.0.0.1 from
/// its own CA, whose certificate it writes to a file first. Prints its port when ready.
const SERVER: &str = r#"
import http.server, ssl, sys, trustme
ca = trustme.CA(organization_name="St. Mary's School IT")
ca.cert_pem.write_to_path(sys.argv[1])
leaf = ca.issue_cert("127.0.0.1", "localhost")
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
leaf.configure_cert(context)
body = open(sys.argv[2], "rb").read()
class Feed(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/calendar")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Feed)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// A running HTTPS feed; stopped (killed and reaped) on drop.
struct TlsFeed {
    child: Child,
    port: u16,
    ca: PathBuf,
}

impl TlsFeed {
    fn start(cli: &Cli) -> TlsFeed {
        let python = std::env::var_os("CALSYNC_TEST_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-test/bin/python")
            });
        assert!(
            python.exists(),
            "no Python with trustme at {}: run the tests through scripts/test.sh",
            python.display()
        );
        let ca = cli.path("school-ca.pem");
        let mut child = Command::new(&python)
            .args(["-c", SERVER])
            .arg(&ca)
            .arg(cli.path("served.ics"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the HTTPS server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("reading the port");
        let port = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("the HTTPS server did not start (is trustme installed?): {line:?}")
        });
        TlsFeed { child, port, ca }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/feeds/public.ics", self.port)
    }
}

impl Drop for TlsFeed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_server_of_an_organisations_own_ca_is_reached_through_ssl_cert_file_only() {
    let mut cli = Cli::new();
    cli.write(
        "served.ics",
        feed(&[timed("term@school", "Term starts", 4, "")]),
    );
    let server = TlsFeed::start(&cli);
    cli.write(
        "calsync.toml",
        format!(
            "state = \"calsync.db\"\n[net]\nretries = 0\nbackoff_ms = 1\n\n[[pair]]\nname = \"school\"\n\
             [pair.source]\nkind = \"ics\"\nurl = \"{}\"\n[pair.target]\nkind = \"ics\"\npath = \"public.ics\"\n",
            server.url()
        ),
    );

    // The CA is in no store calsync trusts: the connection is refused, nothing published.
    let refused = cli.run(&["sync"]);
    assert_eq!(refused.code, exit::TEMPFAIL, "{}", refused.stdout);
    let failed = refused.event("pair.failed");
    assert!(
        failed.msg.to_lowercase().contains("certificate"),
        "the refusal does not say why: {}",
        failed.msg
    );
    assert!(!cli.path("public.ics").exists());

    // Trusted through SSL_CERT_FILE, as OpenSSL-based tools read it.
    cli.env("SSL_CERT_FILE", server.ca.to_str().unwrap());
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::OK, "{}", run.stdout);
    assert!(cli.read("public.ics").contains("SUMMARY:Term starts"));

    // An SSL_CERT_FILE that cannot be read is said, not silently ignored.
    cli.env(
        "SSL_CERT_FILE",
        cli.path("no-such-ca.pem").to_str().unwrap(),
    );
    let run = cli.run(&["sync", "--full"]);
    assert_eq!(run.code, exit::TEMPFAIL, "{}", run.stdout);
    assert!(run.has_event("tls.roots"), "{}", run.stdout);
}
