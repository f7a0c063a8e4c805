//! One side of a pair (`[pair.source]`, `[pair.target]`): the per-kind part of the
//! configuration.
//!
//! [`KINDS`] is the one table of what each provider kind takes: its name, its keys, and the
//! function that turns those keys into its settings. Parsing reads a side's keys only through
//! [`Keys`], which refuses a key the kind does not list, and afterwards every key written but
//! not read is an error: one that another kind takes is named as such ("does not apply to
//! kind"), anything else is unknown (a typo never silently disables a rule). Adding a provider
//! adds a row here, a variant to [`Endpoint`] and its settings struct — nothing else in the
//! configuration changes.

use super::{ConfigError, Ctx, Secret};
use crate::policy::Visibility;
use std::path::PathBuf;

/// Which side of a pair an endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

/// A provider kind: its name in `kind = "…"`, the keys it takes besides `kind`, and how they
/// become its settings.
pub struct Kind {
    pub name: &'static str,
    pub keys: &'static [&'static str],
    parse: fn(&mut Keys<'_>) -> Result<Endpoint, ConfigError>,
}

/// Every kind calsync knows, with its keys.
pub const KINDS: &[Kind] = &[
    Kind {
        name: "graph",
        keys: &[
            "tenant_id",
            "client_id",
            "client_secret_file",
            "client_secret_env",
            "client_certificate_file",
            "client_key_file",
            "user",
            "calendar",
            "calendar_id",
            "token_url",
            "base_url",
        ],
        parse: graph,
    },
    Kind {
        name: "google",
        keys: &[
            "service_account_file",
            "service_account_env",
            "subject",
            "calendar_id",
            "token_url",
            "base_url",
            "default_visibility",
            "concurrency",
        ],
        parse: google,
    },
    Kind {
        name: "caldav",
        keys: &[
            "url",
            "calendar",
            "username",
            "password_file",
            "password_env",
            "concurrency",
        ],
        parse: caldav,
    },
    Kind {
        name: "ics",
        keys: &[
            "url",
            "url_file",
            "url_env",
            "path",
            "name",
            "username",
            "password_file",
            "password_env",
        ],
        parse: ics,
    },
];

// ------------------------------------------------------------------------------------------
// The checked settings of each kind.

/// How a Graph app proves who it is (client credentials grant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphCredential {
    /// A client secret.
    Secret(Secret),
    /// A certificate registered with the app and its private key (PEM), for a signed client
    /// assertion.
    Certificate { certificate: String, key: Secret },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphSettings {
    pub tenant_id: String,
    pub client_id: String,
    pub credential: GraphCredential,
    pub user: String,
    pub calendar: CalendarRef,
    pub base_url: String,
    pub token_url: String,
}

/// Which calendar of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalendarRef {
    /// The account's default calendar.
    Default,
    /// A calendar by its display name, resolved to an id at run time.
    Named(String),
    /// A calendar by id.
    Id(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleSettings {
    /// The service account key file's JSON.
    pub service_account: Secret,
    pub subject: Option<String>,
    pub calendar_id: String,
    pub base_url: String,
    /// When set, overrides the key file's `token_uri`.
    pub token_url: Option<String>,
    /// How `visibility: "default"` is read (source only).
    pub default_visibility: Visibility,
    /// Writes in flight at once.
    pub concurrency: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaldavSettings {
    pub url: String,
    /// A calendar's display name to look for under `url` (a server or principal URL).
    pub calendar: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Writes in flight at once.
    pub concurrency: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IcsLocation {
    /// A feed URL. Kept as a secret: a private iCal address is one (its path is the key), so
    /// logs, errors and the state file name a feed by its origin only.
    Url(Secret),
    Path(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcsSettings {
    pub location: IcsLocation,
    /// The calendar name written into a target file (`X-WR-CALNAME`).
    pub name: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

/// One side of a pair, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Graph(GraphSettings),
    Google(GoogleSettings),
    Caldav(CaldavSettings),
    Ics(IcsSettings),
}

impl Endpoint {
    pub fn kind(&self) -> &'static str {
        match self {
            Endpoint::Graph(_) => "graph",
            Endpoint::Google(_) => "google",
            Endpoint::Caldav(_) => "caldav",
            Endpoint::Ics(_) => "ics",
        }
    }

    /// Whether this side authenticates with a configured secret.
    pub fn has_credentials(&self) -> bool {
        match self {
            Endpoint::Graph(_) | Endpoint::Google(_) => true,
            Endpoint::Caldav(c) => c.password.is_some(),
            Endpoint::Ics(i) => i.password.is_some(),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Reading a side.

/// Checks one side of a pair: `at` names it in errors (`pair 'parish'.source`).
pub(super) fn parse(
    ctx: &Ctx<'_>,
    at: &str,
    table: toml::Table,
    side: Side,
    concurrency: usize,
) -> Result<Endpoint, ConfigError> {
    let mut table = table;
    let kind_name = match table.remove("kind") {
        Some(toml::Value::String(k)) => k,
        Some(_) => return Err(ctx.err(format!("{at}.kind"), "must be a string")),
        None => return Err(ctx.err(format!("{at}.kind"), "kind is required")),
    };
    let Some(kind) = KINDS.iter().find(|k| k.name == kind_name) else {
        let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        return Err(ctx.err(
            format!("{at}.kind"),
            format!("unknown kind '{kind_name}': use {}", names.join(", ")),
        ));
    };
    // A key nobody takes is a typo, named before anything else is judged.
    if let Some(key) = table
        .keys()
        .find(|k| !KINDS.iter().any(|kind| kind.keys.contains(&k.as_str())))
    {
        return Err(unknown_key(ctx, at, key));
    }
    let mut keys = Keys {
        ctx,
        at,
        kind,
        side,
        concurrency,
        table,
    };
    let endpoint = (kind.parse)(&mut keys)?;
    // What is left was not read: a key of another kind (or one this kind lists but ignored,
    // which the unit tests rule out).
    if let Some(key) = keys.table.keys().next() {
        return Err(ctx.err(
            format!("{at}.{key}"),
            format!("key '{key}' does not apply to kind '{}'", kind.name),
        ));
    }
    Ok(endpoint)
}

fn unknown_key(ctx: &Ctx<'_>, at: &str, key: &str) -> ConfigError {
    if super::INLINE_SECRETS.contains(&key) {
        return ctx.err(
            format!("{at}.{key}"),
            format!(
                "secrets never stand in the configuration: use {key}_file (a file, looked up in \
                 $CREDENTIALS_DIRECTORY first) or {key}_env (an environment variable)"
            ),
        );
    }
    ctx.err(format!("{at}.{key}"), format!("unknown key '{key}'"))
}

/// The keys of one side, read one at a time. Each read removes the key, so what is left at
/// the end was not read.
pub(super) struct Keys<'a> {
    ctx: &'a Ctx<'a>,
    at: &'a str,
    kind: &'static Kind,
    side: Side,
    concurrency: usize,
    table: toml::Table,
}

impl Keys<'_> {
    fn name(&self, key: &str) -> String {
        format!("{}.{key}", self.at)
    }

    fn err(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        self.ctx.err(self.name(key), problem)
    }

    fn take(&mut self, key: &str) -> Option<toml::Value> {
        assert!(
            self.kind.keys.contains(&key),
            "kind '{}' reads key '{key}' but does not list it in KINDS",
            self.kind.name
        );
        self.table.remove(key)
    }

    /// A string key, if written.
    fn string(&mut self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(other) => {
                Err(self.err(key, format!("must be a string, not a {}", other.type_str())))
            }
        }
    }

    /// A string key that must be written and not blank.
    fn required(&mut self, key: &str) -> Result<String, ConfigError> {
        self.string(key)?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| self.err(key, format!("{key} is required")))
    }

    /// A URL key, checked (`https://`, or `http://` to loopback), without a trailing `/`.
    fn url(&mut self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.string(key)? {
            None => Ok(None),
            Some(url) => self.ctx.url(&self.name(key), &url).map(Some),
        }
    }

    /// `concurrency`: writes in flight (its row of the numbers table), the `[net]` value
    /// when not written.
    fn concurrency(&mut self) -> Result<usize, ConfigError> {
        let row = super::numbers::number(match self.side {
            Side::Source => "pair.source.concurrency",
            Side::Target => "pair.target.concurrency",
        });
        match self.take("concurrency") {
            None => Ok(self.concurrency),
            Some(toml::Value::Integer(n)) => row.check(n).map_err(|p| self.err("concurrency", p)),
            Some(other) => Err(self.err(
                "concurrency",
                format!("must be a whole number, not a {}", other.type_str()),
            )),
        }
    }

    /// A secret given as `<stem>_file` or `<stem>_env`.
    fn secret(&mut self, stem: &str, required: bool) -> Result<Option<Secret>, ConfigError> {
        let file = self.string(&format!("{stem}_file"))?;
        let env = self.string(&format!("{stem}_env"))?;
        self.ctx
            .secret(self.at, stem, file.as_deref(), env.as_deref(), required)
    }

    /// A file read like a secret file (`$CREDENTIALS_DIRECTORY` first, then beside the
    /// config), from a single `…_file` key.
    fn secret_file(&mut self, key: &str) -> Result<Option<Secret>, ConfigError> {
        let stem = key.strip_suffix("_file").expect("a _file key");
        match self.string(key)? {
            None => Ok(None),
            Some(name) => self.ctx.secret(self.at, stem, Some(&name), None, true),
        }
    }
}

fn graph(k: &mut Keys<'_>) -> Result<Endpoint, ConfigError> {
    let calendar = match (k.string("calendar")?, k.string("calendar_id")?) {
        (Some(_), Some(_)) => {
            return Err(k.err(
                "calendar_id",
                "set either calendar (a name) or calendar_id, not both",
            ));
        }
        (Some(name), None) => CalendarRef::Named(name),
        (None, Some(id)) => CalendarRef::Id(id),
        (None, None) => CalendarRef::Default,
    };
    let tenant_id = k.required("tenant_id")?;
    let secret = k.secret("client_secret", false)?;
    let certificate = k.secret_file("client_certificate_file")?;
    let key = k.secret_file("client_key_file")?;
    let credential = match (secret, certificate, key) {
        (Some(secret), None, None) => GraphCredential::Secret(secret),
        (None, Some(certificate), Some(key)) => GraphCredential::Certificate {
            certificate: certificate.expose().to_string(),
            key,
        },
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(k.err(
                "client_secret_file",
                "set either a client secret or a client certificate and key, not both",
            ));
        }
        (None, Some(_), None) => {
            return Err(k.err(
                "client_key_file",
                "a client certificate needs its private key: set client_key_file",
            ));
        }
        (None, None, Some(_)) => {
            return Err(k.err(
                "client_certificate_file",
                "a client key needs its certificate: set client_certificate_file",
            ));
        }
        (None, None, None) => {
            return Err(k.err(
                "client_secret_file",
                "a credential is required: set client_secret_file or client_secret_env, or \
                 client_certificate_file and client_key_file",
            ));
        }
    };
    let base_url = match k.url("base_url")? {
        Some(u) => u,
        None => "https://graph.microsoft.com/v1.0".into(),
    };
    // `{tenant}` is replaced before the URL is checked, so the check sees the real host.
    let token_url = k
        .string("token_url")?
        .unwrap_or_else(|| "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token".into())
        .replace("{tenant}", &tenant_id);
    let token_url = k.ctx.url(&k.name("token_url"), &token_url)?;
    Ok(Endpoint::Graph(GraphSettings {
        client_id: k.required("client_id")?,
        credential,
        user: k.required("user")?,
        calendar,
        base_url,
        token_url,
        tenant_id,
    }))
}

fn google(k: &mut Keys<'_>) -> Result<Endpoint, ConfigError> {
    let default_visibility = match (k.string("default_visibility")?.as_deref(), k.side) {
        (None, _) => Visibility::Private,
        (Some(_), Side::Target) => {
            return Err(k.err(
                "default_visibility",
                "default_visibility applies to a source only",
            ));
        }
        (Some("private"), Side::Source) => Visibility::Private,
        (Some("public"), Side::Source) => Visibility::Public,
        (Some(other), Side::Source) => {
            return Err(k.err(
                "default_visibility",
                format!("'{other}' is not \"private\" or \"public\""),
            ));
        }
    };
    let given_as = if k.table.contains_key("service_account_env") {
        "service_account_env"
    } else {
        "service_account_file"
    };
    let service_account = k
        .secret("service_account", true)?
        .expect("a required secret");
    // A key that cannot sign is a configuration error, found before any pair runs.
    crate::providers::google::ServiceAccount::parse(service_account.expose())
        .map_err(|e| k.err(given_as, e))?;
    Ok(Endpoint::Google(GoogleSettings {
        service_account,
        subject: k.string("subject")?,
        calendar_id: k.required("calendar_id")?,
        base_url: k
            .url("base_url")?
            .unwrap_or_else(|| "https://www.googleapis.com/calendar/v3".into()),
        token_url: k.url("token_url")?,
        default_visibility,
        concurrency: k.concurrency()?,
    }))
}

fn caldav(k: &mut Keys<'_>) -> Result<Endpoint, ConfigError> {
    let url = k.required("url")?;
    let password = k.secret("password", false)?;
    let username = k.string("username")?;
    if password.is_some() && username.is_none() {
        return Err(k.err("username", "a password is set but no username"));
    }
    let url = format!("{}/", k.ctx.url(&k.name("url"), &url)?);
    Ok(Endpoint::Caldav(CaldavSettings {
        url,
        calendar: k.string("calendar")?,
        username,
        password,
        concurrency: k.concurrency()?,
    }))
}

fn ics(k: &mut Keys<'_>) -> Result<Endpoint, ConfigError> {
    // The URL may be written inline, or kept as a secret in a file or the environment (a
    // private iCal address is a secret in itself).
    let url = match (k.string("url")?, k.secret("url", false)?) {
        (Some(_), Some(_)) => {
            return Err(k.err("url", "set either url, url_file or url_env, not several"));
        }
        (Some(url), None) => Some(url),
        (None, Some(secret)) => Some(secret.expose().trim().to_string()),
        (None, None) => None,
    };
    let location = match (url, k.string("path")?, k.side) {
        (Some(_), Some(_), _) => return Err(k.err("path", "set either url or path, not both")),
        (Some(_), None, Side::Target) => {
            return Err(k.err("url", "an ics target is a file: set path"));
        }
        (Some(url), None, Side::Source) => {
            IcsLocation::Url(Secret::new(k.ctx.url(&k.name("url"), &url)?))
        }
        (None, Some(p), _) => IcsLocation::Path(k.ctx.beside(std::path::Path::new(&p))),
        (None, None, side) => {
            return Err(k.err(
                "path",
                match side {
                    Side::Source => "set url (or url_file, url_env) or path",
                    Side::Target => "path is required",
                },
            ));
        }
    };
    let password = k.secret("password", false)?;
    let username = k.string("username")?;
    if (password.is_some() || username.is_some()) && !matches!(location, IcsLocation::Url(_)) {
        return Err(k.err("username", "username and password apply to a feed url only"));
    }
    Ok(Endpoint::Ics(IcsSettings {
        location,
        name: k.string("name")?,
        username,
        password,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Environment;
    use std::collections::BTreeSet;

    /// Sides that parse, together writing every key of every kind (keys that exclude each
    /// other are in different examples).
    const EXAMPLES: &[&str] = &[
        r#"kind = "graph"
           tenant_id = "t"
           client_id = "c"
           client_secret_file = "s"
           user = "u@example.org"
           calendar = "Public"
           token_url = "https://login.example.org/{tenant}/token"
           base_url = "https://graph.example.org/v1.0""#,
        r#"kind = "graph"
           tenant_id = "t"
           client_id = "c"
           client_secret_env = "V"
           user = "u@example.org"
           calendar_id = "AAMk""#,
        r#"kind = "graph"
           tenant_id = "t"
           client_id = "c"
           client_certificate_file = "s"
           client_key_file = "s"
           user = "u@example.org""#,
        r#"kind = "google"
           service_account_file = "sa.json"
           subject = "office@example.org"
           calendar_id = "c"
           token_url = "https://oauth.example.org/token"
           base_url = "https://calendar.example.org/v3"
           default_visibility = "public"
           concurrency = 2"#,
        r#"kind = "google"
           service_account_env = "SA"
           calendar_id = "c""#,
        r#"kind = "caldav"
           url = "https://dav.example.org/"
           calendar = "Public"
           username = "u"
           password_file = "s"
           concurrency = 8"#,
        r#"kind = "caldav"
           url = "https://dav.example.org/"
           username = "u"
           password_env = "V""#,
        r#"kind = "ics"
           url = "https://feeds.example.org/f.ics"
           name = "n"
           username = "u"
           password_file = "s""#,
        r#"kind = "ics"
           url = "https://feeds.example.org/f.ics"
           username = "u"
           password_env = "V""#,
        r#"kind = "ics"
           path = "f.ics""#,
        r#"kind = "ics"
           url_file = "u""#,
        r#"kind = "ics"
           url_env = "U""#,
    ];

    fn service_account_json() -> String {
        serde_json::json!({
            "type": "service_account",
            "client_email": "sync@project.iam.gserviceaccount.com",
            "private_key": include_str!("../../tests/fixtures/google-sa-key.pem"),
            "token_uri": "https://oauth2.googleapis.com/token",
        })
        .to_string()
    }

    /// A key file that is not a usable service-account key is a configuration error naming
    /// the key it was given by, never echoing the file.
    #[test]
    fn an_unusable_service_account_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.json"), r#"{"type":"service_account","client_email":"a@b.c","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}"#).unwrap();
        std::fs::write(dir.path().join("notjson"), "private_key = secret").unwrap();
        let cfg = dir.path().join("c.toml");
        let env = Environment {
            vars: vec![("SA".into(), "{}".into())],
            ..Default::default()
        };
        let ctx = Ctx {
            path: &cfg,
            base: dir.path(),
            env: &env,
            secret_files: Default::default(),
        };
        for (side, key, want) in [
            (
                "service_account_file = \"bad.json\"",
                "service_account_file",
                "RSA",
            ),
            (
                "service_account_file = \"notjson\"",
                "service_account_file",
                "not JSON",
            ),
            (
                "service_account_env = \"SA\"",
                "service_account_env",
                "client_email",
            ),
        ] {
            let table: toml::Table =
                toml::from_str(&format!("kind = \"google\"\ncalendar_id = \"c\"\n{side}")).unwrap();
            let e = parse(&ctx, "side", table, Side::Target, 4).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(&format!("side.{key}")), "{text}");
            assert!(text.contains(want), "{text}");
            assert!(!text.contains("AAAA") && !text.contains("secret"), "{text}");
        }
    }

    /// Every key a kind lists is read by its parser: otherwise it would be accepted and
    /// silently ignored, the very thing the table exists to prevent.
    #[test]
    fn every_listed_key_is_read_by_its_kind() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s"), "secret").unwrap();
        std::fs::write(dir.path().join("sa.json"), service_account_json()).unwrap();
        std::fs::write(
            dir.path().join("u"),
            "https://feeds.example.org/private/k3y.ics\n",
        )
        .unwrap();
        let cfg = dir.path().join("c.toml");
        let env = Environment {
            vars: vec![
                ("V".into(), "value".into()),
                ("SA".into(), service_account_json()),
                (
                    "U".into(),
                    "https://feeds.example.org/private/k3y.ics".into(),
                ),
            ],
            ..Default::default()
        };
        let ctx = Ctx {
            path: &cfg,
            base: dir.path(),
            env: &env,
            secret_files: Default::default(),
        };
        let mut read: BTreeSet<(String, String)> = BTreeSet::new();
        for example in EXAMPLES {
            let table: toml::Table = toml::from_str(example).unwrap();
            let kind = table["kind"].as_str().unwrap().to_string();
            let written: Vec<String> = table.keys().filter(|k| *k != "kind").cloned().collect();
            parse(&ctx, "side", table, Side::Source, 4)
                .unwrap_or_else(|e| panic!("{example}: {e}"));
            read.extend(written.into_iter().map(|k| (kind.clone(), k)));
        }
        for kind in KINDS {
            for key in kind.keys {
                assert!(
                    read.contains(&(kind.name.to_string(), key.to_string())),
                    "kind '{}' lists '{key}', which no example reads",
                    kind.name
                );
            }
        }
    }
}
