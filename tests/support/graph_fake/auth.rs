//! The Microsoft identity platform's token endpoint (client credentials grant) and the bearer
//! check every Graph call passes.
//!
//! A client assertion is verified for real: its signature with the public key of the configured
//! certificate, its `x5t#S256` against the SHA-256 thumbprint of that certificate's DER, and its
//! claims against the documented rules (certificate-credentials page). Refusals carry the AAD
//! error body (`error`, `error_description` starting with an AADSTS code, `error_codes`,
//! `timestamp`, `trace_id`, `correlation_id`).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Reply, Request, percent_decode};

/// The only scope a client-credentials call for Graph may ask for.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How far in the future `nbf`/`iat` may lie: Entra's usual clock-skew allowance.
const CLOCK_SKEW_SECONDS: i64 = 300;

/// The registered application: who may get tokens, with which credentials.
pub struct App {
    pub tenant: String,
    pub client_id: String,
    pub secret: Option<String>,
    pub certificate: Option<Certificate>,
    /// The longest `exp - nbf` an assertion may have (the page says 5–10 minutes at most).
    pub max_assertion_lifetime: Duration,
    pub token_lifetime: Duration,
}

/// A certificate uploaded to the app registration.
pub struct Certificate {
    /// Base64url SHA-256 of the DER, what `x5t#S256` must say.
    pub thumbprint: String,
    key: DecodingKey,
}

impl Certificate {
    /// Reads a PEM certificate; panics on a bad one, since that is a broken test.
    pub fn from_pem(pem: &str) -> Certificate {
        let body: String = pem
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        let der = STANDARD
            .decode(body.trim())
            .expect("the certificate PEM holds base64 DER");
        // jsonwebtoken reads the subject public key out of a CERTIFICATE PEM itself.
        let key = DecodingKey::from_rsa_pem(pem.as_bytes())
            .expect("the certificate holds an RSA public key");
        Certificate {
            thumbprint: URL_SAFE_NO_PAD.encode(Sha256::digest(&der)),
            key,
        }
    }
}

/// Issued access tokens and when each stops working.
#[derive(Default)]
pub struct Tokens {
    live: HashMap<String, Instant>,
    issued: u64,
}

impl Tokens {
    pub fn issue(&mut self, lifetime: Duration, seed: u64) -> String {
        self.issued += 1;
        let digest = Sha256::digest(format!("graph-fake-token/{seed}/{}", self.issued));
        let token = format!("fake.{}", URL_SAFE_NO_PAD.encode(digest));
        self.live.insert(token.clone(), Instant::now() + lifetime);
        token
    }

    pub fn expire_all(&mut self) {
        let past = Instant::now()
            .checked_sub(Duration::from_secs(1))
            .unwrap_or_else(Instant::now);
        self.live.values_mut().for_each(|until| *until = past);
    }

    pub fn revoke(&mut self, token: &str) {
        self.live.remove(token);
    }

    pub fn revoke_all(&mut self) {
        self.live.clear();
    }

    pub fn issued(&self) -> u64 {
        self.issued
    }

    /// Checks an `Authorization` header; the refusal is Graph's 401.
    pub fn check(&self, authorization: Option<&str>) -> Result<(), Reply> {
        let refuse = |message: &str| {
            Err(Reply::error(401, "InvalidAuthenticationToken", message).header(
                "WWW-Authenticate",
                "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\"",
            ))
        };
        let Some(value) = authorization else {
            return refuse("Access token is empty.");
        };
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("Bearer") => token.trim(),
            _ => return refuse("Access token is empty."),
        };
        match self.live.get(token) {
            None => refuse("Invalid JWT token. The token is malformed, unknown or revoked."),
            Some(until) if Instant::now() >= *until => {
                refuse("Lifetime validation failed, the token is expired.")
            }
            Some(_) => Ok(()),
        }
    }
}

/// The client id and secret of an `Authorization: Basic` header (each form-encoded first, as
/// RFC 6749 §2.3.1 says).
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("Basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((percent_decode(id, true)?, percent_decode(secret, true)?))
}

/// A JSON answer of the identity platform (plain JSON, not OData).
fn aad_json(status: u16, body: Value) -> Reply {
    let mut reply = Reply::json(status, body);
    reply.content_type = "application/json; charset=utf-8";
    reply
}

/// An AAD refusal: `status`, OAuth `error`, AADSTS number and text.
fn aad_error(status: u16, error: &str, code: u32, text: &str) -> Reply {
    let trace_id = format!(
        "{:08x}-fake-4000-8000-{:012x}",
        code,
        Utc::now().timestamp()
    );
    let timestamp = Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    aad_json(
        status,
        json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {text} Trace ID: {trace_id} Correlation ID: {trace_id} Timestamp: {timestamp}"
            ),
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": trace_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

/// Parses an `application/x-www-form-urlencoded` body; a repeated field is an error.
fn parse_form(body: &[u8]) -> Result<HashMap<String, String>, Reply> {
    let malformed = || {
        aad_error(
            400,
            "invalid_request",
            900144,
            "The request body is malformed.",
        )
    };
    let text = std::str::from_utf8(body).map_err(|_| malformed())?;
    let mut fields = HashMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(name, true).ok_or_else(malformed)?;
        let value = percent_decode(value, true).ok_or_else(malformed)?;
        if fields.insert(name.clone(), value).is_some() {
            return Err(aad_error(
                400,
                "invalid_request",
                90015,
                &format!("Requested query string is too long or '{name}' is repeated."),
            ));
        }
    }
    Ok(fields)
}

impl App {
    /// `POST /{tenant}/oauth2/v2.0/token`. `token_url` is the URL the client actually called
    /// (what an assertion's `aud` must name). Returns the reply and, on success, nothing else:
    /// the caller stores the issued token.
    pub fn token(
        &self,
        tenant: &str,
        request: &Request,
        token_url: &str,
        tokens: &mut Tokens,
        seed: u64,
    ) -> Reply {
        match self.check_token_request(tenant, request, token_url) {
            Err(refusal) => refusal,
            Ok(()) => {
                let token = tokens.issue(self.token_lifetime, seed);
                let seconds = self.token_lifetime.as_secs();
                aad_json(
                    200,
                    json!({
                        "token_type": "Bearer",
                        "expires_in": seconds,
                        "ext_expires_in": seconds,
                        "access_token": token,
                    }),
                )
            }
        }
    }

    fn check_token_request(
        &self,
        tenant: &str,
        request: &Request,
        token_url: &str,
    ) -> Result<(), Reply> {
        if !tenant.eq_ignore_ascii_case(&self.tenant) {
            return Err(aad_error(
                400,
                "invalid_request",
                90002,
                &format!("Tenant '{tenant}' not found."),
            ));
        }
        let is_form = request.header("Content-Type").is_some_and(|c| {
            c.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
        let fields = if is_form {
            parse_form(&request.body)?
        } else {
            HashMap::new()
        };
        let required = |name: &str| {
            fields.get(name).filter(|v| !v.is_empty()).ok_or_else(|| {
                aad_error(
                    400,
                    "invalid_request",
                    900144,
                    &format!("The request body must contain the following parameter: '{name}'."),
                )
            })
        };
        if required("grant_type")? != "client_credentials" {
            return Err(aad_error(
                400,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type.",
            ));
        }
        // RFC 6749 §2.3.1 client authentication, which the page says Entra accepts too.
        let basic = request.header("Authorization").and_then(basic_credentials);
        let client_id = match (&basic, fields.get("client_id")) {
            (Some((id, _)), Some(form_id)) if id != form_id => {
                return Err(aad_error(
                    401,
                    "invalid_client",
                    700021,
                    "The client id of the Authorization header differs from 'client_id'.",
                ));
            }
            (Some((id, _)), _) => id,
            (None, _) => required("client_id")?,
        };
        if client_id != &self.client_id {
            return Err(aad_error(
                400,
                "unauthorized_client",
                700016,
                &format!(
                    "Application with identifier '{client_id}' was not found in the directory '{}'.",
                    self.tenant
                ),
            ));
        }
        let scope = required("scope")?;
        if scope != GRAPH_SCOPE {
            return Err(aad_error(
                400,
                "invalid_scope",
                70011,
                &format!(
                    "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
                ),
            ));
        }
        let secret = match (fields.get("client_secret"), &basic) {
            (Some(_), Some(_)) => {
                return Err(aad_error(
                    400,
                    "invalid_request",
                    90015,
                    "The client secret was given both in the body and in the Authorization header.",
                ));
            }
            (Some(secret), None) | (None, Some((_, secret))) => Some(secret),
            (None, None) => None,
        };
        match (secret, fields.get("client_assertion_type")) {
            (Some(_), Some(_)) => Err(aad_error(
                400,
                "invalid_request",
                90015,
                "Only one of 'client_secret' and 'client_assertion' may be presented.",
            )),
            (Some(secret), None) => self.check_secret(secret),
            (None, Some(kind)) if kind == JWT_BEARER => {
                self.check_assertion(required("client_assertion")?, token_url)
            }
            (None, Some(_)) => Err(aad_error(
                400,
                "invalid_request",
                700023,
                "Invalid client_assertion_type; it must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
            )),
            (None, None) => Err(aad_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )),
        }
    }

    fn check_secret(&self, secret: &str) -> Result<(), Reply> {
        if self.secret.as_deref() == Some(secret) {
            return Ok(());
        }
        Err(aad_error(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
        ))
    }

    /// Verifies a client assertion: header, thumbprint, signature, then claims.
    fn check_assertion(&self, assertion: &str, token_url: &str) -> Result<(), Reply> {
        let signature_failure = |why: &str| {
            aad_error(
                401,
                "invalid_client",
                700027,
                &format!("Client assertion failed signature validation. ({why})"),
            )
        };
        let header = jsonwebtoken::decode_header(assertion).map_err(|_| {
            aad_error(
                401,
                "invalid_client",
                50027,
                "JWT token is invalid or malformed.",
            )
        })?;
        if !matches!(header.alg, Algorithm::PS256 | Algorithm::RS256) {
            return Err(signature_failure("alg must be PS256 or RS256"));
        }
        if header.typ.as_deref() != Some("JWT") {
            return Err(signature_failure("typ must be JWT"));
        }
        let Some(certificate) = &self.certificate else {
            return Err(signature_failure("no certificate is registered"));
        };
        if header.x5t_s256.as_deref() != Some(certificate.thumbprint.as_str()) {
            return Err(signature_failure(
                "x5t#S256 names no certificate of this application",
            ));
        }
        let mut validation = Validation::new(header.alg);
        validation.required_spec_claims = HashSet::new();
        validation.validate_exp = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Value>(assertion, &certificate.key, &validation)
            .map_err(|_| signature_failure("the signature does not verify"))?
            .claims;
        self.check_claims(&claims, token_url)
    }

    fn check_claims(&self, claims: &Value, token_url: &str) -> Result<(), Reply> {
        let audience_ok = match &claims["aud"] {
            Value::String(aud) => aud == token_url,
            Value::Array(auds) => auds.iter().any(|a| a.as_str() == Some(token_url)),
            _ => false,
        };
        if !audience_ok {
            return Err(aad_error(
                401,
                "invalid_client",
                700027,
                &format!("Client assertion failed signature validation. (aud must be {token_url})"),
            ));
        }
        let names_client = |claim: &str| claims[claim].as_str() == Some(self.client_id.as_str());
        if !names_client("iss") || !names_client("sub") {
            return Err(aad_error(
                401,
                "invalid_client",
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter (iss and sub must be the client id).",
            ));
        }
        if claims["jti"].as_str().is_none_or(str::is_empty) {
            return Err(aad_error(
                401,
                "invalid_client",
                700027,
                "Client assertion failed signature validation. (jti is missing)",
            ));
        }
        self.check_times(claims)
    }

    fn check_times(&self, claims: &Value) -> Result<(), Reply> {
        let out_of_range = |why: &str| {
            aad_error(
                401,
                "invalid_client",
                700024,
                &format!("Client assertion is not within its valid time range. ({why})"),
            )
        };
        let now = Utc::now().timestamp();
        let (Some(nbf), Some(exp)) = (claims["nbf"].as_i64(), claims["exp"].as_i64()) else {
            return Err(out_of_range("nbf and exp are required"));
        };
        if nbf > now + CLOCK_SKEW_SECONDS {
            return Err(out_of_range("nbf is in the future"));
        }
        if claims["iat"]
            .as_i64()
            .is_some_and(|iat| iat > now + CLOCK_SKEW_SECONDS)
        {
            return Err(out_of_range("iat is in the future"));
        }
        if exp <= now {
            return Err(out_of_range("the assertion has expired"));
        }
        if exp - nbf > self.max_assertion_lifetime.as_secs() as i64 {
            return Err(out_of_range("exp is too long after nbf"));
        }
        Ok(())
    }
}
