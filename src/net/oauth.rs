//! OAuth 2.0 access tokens for the remotes that want them (Microsoft Graph, Google), in one
//! place.
//!
//! A [`TokenSource`] knows one grant — client credentials with a secret or a signed client
//! assertion (Microsoft identity platform), or a JWT bearer assertion (Google service
//! accounts) — and hands out a bearer token that is valid for a while yet. Tokens are cached
//! in the state file (through [`TokenCache`], which the store implements, so `net` knows
//! nothing of SQLite) until shortly before they expire: a run every few minutes asks the
//! token endpoint about once an hour, not every time. A call answered 401 gets one fresh
//! token and is sent once more; a second 401 is the remote's verdict.
//!
//! The token endpoint's refusal (400/401 with `invalid_grant`, `invalid_client`,
//! `unauthorized_client`, an `AADSTS…` code) is [`NetError::AuthRefused`]: exit 77, audited.
//! Tokens, secrets and private keys never reach a log or an error message: `AccessToken`'s
//! `Debug` hides its value, and errors carry only the OAuth error code.
//!
//! The JWTs are signed here with `jsonwebtoken` (RS256 for Google, PS256 with the
//! certificate's `x5t#S256` thumbprint for Microsoft, as the current Microsoft identity
//! platform documentation asks). Their times come from the real clock, whatever `now` the
//! run uses for its window: the token endpoint checks them against its own.

use super::{Auth, Http, NetError, Request, Response, endpoint_of};
use crate::config::Secret;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// A token is renewed when it has less than this left (seconds): long enough for a slow run
/// not to see it expire half-way, short against the usual hour of life.
const RENEW_BEFORE_SECONDS: i64 = 300;
/// The lifetime of a Microsoft client assertion (the documentation: 5–10 minutes).
const ASSERTION_SECONDS: i64 = 600;
/// The lifetime asked for in a Google JWT (the most Google allows).
const JWT_BEARER_SECONDS: i64 = 3600;

/// An access token and when it stops working (Unix seconds).
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub value: String,
    pub expires_at: i64,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"***")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Where tokens are kept between runs (the state file).
pub trait TokenCache {
    /// A cached token under `key` that has not expired at `now` (Unix seconds).
    fn load_token(&self, key: &str, now: i64) -> Option<AccessToken>;
    /// Keeps a token under `key` until it expires.
    fn save_token(&self, key: &str, token: &AccessToken);
}

/// A private key and what the remote knows it by.
pub struct SigningKey {
    key: jsonwebtoken::EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

impl SigningKey {
    /// An RSA private key in PEM (PKCS#1 or PKCS#8).
    ///
    /// # Errors
    /// A text that is not an RSA private key (the message never echoes it).
    pub fn from_rsa_pem(pem: &str) -> Result<SigningKey, String> {
        jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())
            .map(|key| SigningKey { key })
            .map_err(|_| "not an RSA private key in PEM form".to_string())
    }
}

/// What proves who calsync is to the token endpoint.
#[derive(Debug)]
pub enum Grant {
    /// Client credentials with a client secret (Microsoft identity platform).
    ClientSecret {
        client_id: String,
        secret: Secret,
        scope: String,
    },
    /// Client credentials with a client assertion signed by a certificate's key (Microsoft
    /// identity platform); `thumbprint` is the base64url SHA-256 of the certificate's DER.
    ClientAssertion {
        client_id: String,
        scope: String,
        key: SigningKey,
        thumbprint: String,
    },
    /// A JWT bearer assertion (RFC 7523) as Google service accounts make it; `subject` is
    /// the user impersonated with domain-wide delegation.
    JwtBearer {
        issuer: String,
        subject: Option<String>,
        scope: String,
        key: SigningKey,
        key_id: Option<String>,
    },
}

impl Grant {
    /// Who the grant speaks for, for the cache key (never a secret).
    fn identity(&self) -> String {
        match self {
            Grant::ClientSecret {
                client_id, scope, ..
            }
            | Grant::ClientAssertion {
                client_id, scope, ..
            } => format!("client\0{client_id}\0{scope}"),
            Grant::JwtBearer {
                issuer,
                subject,
                scope,
                ..
            } => format!(
                "jwt\0{issuer}\0{}\0{scope}",
                subject.as_deref().unwrap_or("")
            ),
        }
    }
}

/// The base64url SHA-256 thumbprint of a PEM certificate's DER (`x5t#S256`).
///
/// # Errors
/// A text without a readable `CERTIFICATE` block.
pub fn certificate_thumbprint(pem: &str) -> Result<String, String> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.trim().starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.trim().starts_with("-----END CERTIFICATE-----"))
        .map(str::trim)
        .collect();
    if body.is_empty() {
        return Err("no PEM CERTIFICATE block".into());
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| "the CERTIFICATE block is not base64".to_string())?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(&der)))
}

/// Hands out bearer tokens for one grant at one token endpoint. Shared by a provider's
/// concurrent writers: one of them fetches, the others wait for that token.
pub struct TokenSource {
    token_url: String,
    grant: Grant,
    http: Http,
    cache_key: String,
    current: Mutex<Option<AccessToken>>,
    /// A token was fetched that the cache does not hold yet.
    unsaved: AtomicBool,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_url", &self.token_url)
            .finish()
    }
}

impl TokenSource {
    /// A source for `grant` at `token_url`, starting from the cached token if there is one.
    pub fn new(token_url: &str, grant: Grant, http: Http, cache: &dyn TokenCache) -> TokenSource {
        let cache_key = format!(
            "oauth.token.{}",
            crate::hashing::sha256_hex(format!("{token_url}\0{}", grant.identity()).as_bytes())
        );
        let current = cache.load_token(&cache_key, unix_now());
        TokenSource {
            token_url: token_url.to_string(),
            grant,
            http,
            cache_key,
            current: Mutex::new(current),
            unsaved: AtomicBool::new(false),
        }
    }

    /// A bearer token with a while left to live: the one held, or a new one.
    ///
    /// # Errors
    /// [`NetError::AuthRefused`] when the endpoint refuses the grant; others by cause.
    pub fn bearer(&self) -> Result<String, NetError> {
        let mut current = self.current.lock().expect("token lock");
        if let Some(t) = current.as_ref()
            && t.expires_at - unix_now() > RENEW_BEFORE_SECONDS
        {
            return Ok(t.value.clone());
        }
        let fresh = self.fetch()?;
        let value = fresh.value.clone();
        *current = Some(fresh);
        self.unsaved.store(true, Ordering::SeqCst);
        Ok(value)
    }

    /// Sends `req` with a bearer token; a 401 gets one new token and one more try.
    ///
    /// # Errors
    /// What the call returns; a 401 after a fresh token stays a 401 (credentials refused).
    pub fn send(&self, req: &Request) -> Result<Response, NetError> {
        let token = self.bearer()?;
        let mut authed = req.clone();
        authed.auth = Auth::Bearer(token.clone());
        match self.http.send(&authed) {
            Err(NetError::Status { status: 401, .. }) => {
                self.forget(&token);
                authed.auth = Auth::Bearer(self.bearer()?);
                self.http.send(&authed)
            }
            other => other,
        }
    }

    /// Drops `token` if it is still the one held (another thread may have renewed it).
    fn forget(&self, token: &str) {
        let mut current = self.current.lock().expect("token lock");
        if current.as_ref().is_some_and(|t| t.value == token) {
            *current = None;
        }
    }

    /// Keeps a token fetched in this run in the cache (from the thread that owns the
    /// state file; writers on other threads only fetch).
    pub fn save(&self, cache: &dyn TokenCache) {
        if self.unsaved.swap(false, Ordering::SeqCst)
            && let Some(t) = self.current.lock().expect("token lock").as_ref()
        {
            cache.save_token(&self.cache_key, t);
        }
    }

    /// Asks the token endpoint.
    fn fetch(&self) -> Result<AccessToken, NetError> {
        let now = unix_now();
        let form: Vec<(&str, String)> = match &self.grant {
            Grant::ClientSecret {
                client_id,
                secret,
                scope,
            } => vec![
                ("grant_type", "client_credentials".into()),
                ("client_id", client_id.clone()),
                ("client_secret", secret.expose().to_string()),
                ("scope", scope.clone()),
            ],
            Grant::ClientAssertion {
                client_id,
                scope,
                key,
                thumbprint,
            } => vec![
                ("grant_type", "client_credentials".into()),
                ("client_id", client_id.clone()),
                ("scope", scope.clone()),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ),
                (
                    "client_assertion",
                    self.client_assertion(client_id, key, thumbprint, now)?,
                ),
            ],
            Grant::JwtBearer {
                issuer,
                subject,
                scope,
                key,
                key_id,
            } => vec![
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                ),
                (
                    "assertion",
                    self.jwt_bearer(issuer, subject.as_deref(), scope, key, key_id, now)?,
                ),
            ],
        };
        let body = form_encode(&form);
        let req = Request::new(reqwest::Method::POST, self.token_url.clone())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .body(body);
        let resp = match self.http.send(&req) {
            Ok(resp) => resp,
            Err(NetError::Status {
                status: status @ (400 | 401),
                response,
                ..
            }) => {
                return Err(NetError::AuthRefused {
                    endpoint: endpoint_of(&self.token_url),
                    detail: refusal(status, &response.body),
                });
            }
            Err(e) => return Err(e),
        };
        parse_token(&resp.body, now).ok_or_else(|| NetError::Transport {
            endpoint: endpoint_of(&self.token_url),
            detail: "the token endpoint's answer holds no access token".into(),
        })
    }

    fn client_assertion(
        &self,
        client_id: &str,
        key: &SigningKey,
        thumbprint: &str,
        now: i64,
    ) -> Result<String, NetError> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256);
        header.x5t_s256 = Some(thumbprint.to_string());
        let claims = serde_json::json!({
            "aud": self.token_url,
            "iss": client_id,
            "sub": client_id,
            "jti": random_id(),
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_SECONDS,
        });
        self.sign(&header, &claims, key)
    }

    fn jwt_bearer(
        &self,
        issuer: &str,
        subject: Option<&str>,
        scope: &str,
        key: &SigningKey,
        key_id: &Option<String>,
        now: i64,
    ) -> Result<String, NetError> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = key_id.clone();
        let mut claims = serde_json::json!({
            "iss": issuer,
            "scope": scope,
            // The URL actually used: a token_url override changes the audience too.
            "aud": self.token_url,
            "iat": now,
            "exp": now + JWT_BEARER_SECONDS,
        });
        if let Some(sub) = subject {
            claims["sub"] = sub.into();
        }
        self.sign(&header, &claims, key)
    }

    fn sign(
        &self,
        header: &jsonwebtoken::Header,
        claims: &serde_json::Value,
        key: &SigningKey,
    ) -> Result<String, NetError> {
        jsonwebtoken::encode(header, claims, &key.key).map_err(|_| NetError::AuthRefused {
            endpoint: endpoint_of(&self.token_url),
            detail: "the private key cannot sign an assertion".into(),
        })
    }
}

/// The one line an operator needs from a refusal: the status, the OAuth error code and, for
/// Microsoft, the `AADSTS` number (the rest of the description can name tenants and apps).
fn refusal(status: u16, body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let error = v
        .get("error")
        .and_then(|e| e.as_str())
        .unwrap_or("no OAuth error code");
    let aadsts = v
        .get("error_description")
        .and_then(|d| d.as_str())
        .and_then(|d| {
            d.split(|c: char| !c.is_ascii_alphanumeric())
                .find(|w| w.starts_with("AADSTS"))
        });
    match aadsts {
        Some(code) => format!("token endpoint refused the grant: HTTP {status} {error} ({code})"),
        None => format!("token endpoint refused the grant: HTTP {status} {error}"),
    }
}

/// An access token from a 200 answer.
fn parse_token(body: &[u8], now: i64) -> Option<AccessToken> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let value = v.get("access_token")?.as_str()?.to_string();
    if value.is_empty() {
        return None;
    }
    // A missing lifetime is taken as short: the token is asked for again next run.
    let expires_in = v
        .get("expires_in")
        .and_then(|e| e.as_i64().or_else(|| e.as_str()?.parse().ok()))
        .unwrap_or(RENEW_BEFORE_SECONDS);
    Some(AccessToken {
        value,
        expires_at: now + expires_in.clamp(0, 86_400),
    })
}

/// `application/x-www-form-urlencoded`.
fn form_encode(pairs: &[(&str, String)]) -> Vec<u8> {
    let mut s = reqwest::Url::parse("x:/").expect("a base URL");
    s.query_pairs_mut().extend_pairs(pairs);
    s.query().unwrap_or("").as_bytes().to_vec()
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_the_code_and_drop_the_description() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided for app 'x' in tenant 'contoso'.","error_codes":[7000215]}"#;
        let line = refusal(401, body);
        assert_eq!(
            line,
            "token endpoint refused the grant: HTTP 401 invalid_client (AADSTS7000215)"
        );
        assert!(!line.contains("contoso"));
        assert_eq!(
            refusal(
                400,
                br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#
            ),
            "token endpoint refused the grant: HTTP 400 invalid_grant"
        );
    }

    #[test]
    fn token_answers_are_read_with_their_lifetime() {
        let t = parse_token(
            br#"{"token_type":"Bearer","expires_in":3599,"access_token":"abc"}"#,
            100,
        )
        .unwrap();
        assert_eq!((t.value.as_str(), t.expires_at), ("abc", 3699));
        assert!(parse_token(br#"{"expires_in":3599}"#, 0).is_none());
        assert!(format!("{t:?}").contains("***") && !format!("{t:?}").contains("abc"));
    }

    #[test]
    fn the_thumbprint_is_sha256_of_the_der() {
        let pem = include_str!("../../tests/fixtures/graph-client-cert.pem");
        // openssl x509 -outform der | openssl dgst -sha256 -binary | base64url
        assert_eq!(
            certificate_thumbprint(pem).unwrap(),
            "oiBQr2VYePGcvllaw9RxVSfXxJGC26q7ofHhkydOabY"
        );
        assert!(certificate_thumbprint("nothing").is_err());
    }

    #[test]
    fn form_bodies_are_url_encoded() {
        let body = form_encode(&[("a", "x y".into()), ("b", "1&2=3".into())]);
        assert_eq!(String::from_utf8(body).unwrap(), "a=x+y&b=1%262%3D3");
    }
}
