//! Google's OAuth token endpoint for service accounts (the JWT-bearer grant) and the bearer
//! check every API call passes first.
//!
//! https://developers.google.com/identity/protocols/oauth2/service-account: the assertion is a
//! JWT `{"alg":"RS256","typ":"JWT"}` with `iss` = client_email, `scope` (space-separated), `aud`
//! = the token URL, `iat`, `exp` ≤ `iat` + 3600, and `sub` for domain-wide delegation. The error
//! texts are Google's (`invalid_grant` "Invalid JWT Signature." and "Invalid JWT: Token must be a
//! short-lived token (60 minutes) and in a reasonable timeframe…").

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, crypto};
use serde_json::{Value, json};

use super::errors::{ApiError, Reply, oauth_error};
use super::{CLIENT_EMAIL, Call, Kind, PRIVATE_KEY_ID, SA_PUBLIC_KEY_PEM, State, wire};
use crate::support::http::Request;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const SIGNATURE: &str = "Invalid JWT Signature.";
const TIMEFRAME: &str = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable \
                         timeframe. Check your iat and exp values in the JWT claim.";
const UNAUTHORIZED_CLIENT: &str = "Client is unauthorized to retrieve access tokens using this method, or \
                                   client not authorized for any of the scopes requested.";
const SCOPE_PREFIX: &str = "https://www.googleapis.com/auth/";

/// `POST /token`: answers a grant and logs it as [`Kind::Token`].
pub fn token_endpoint(state: &mut State, request: &Request) -> Reply {
    let reply = grant(state, request).unwrap_or_else(|refusal| refusal);
    state.calls.push(Call {
        kind: Kind::Token,
        method: request.method.clone(),
        path: request.path_only().to_string(),
        query: wire::parse_query(std::str::from_utf8(&request.body).unwrap_or("")),
        status: reply.status,
        in_batch: false,
        body: None,
    });
    reply.with_header(
        "Cache-Control",
        "no-cache, no-store, max-age=0, must-revalidate",
    )
}

/// The grant, step by step in the order Google reports problems; `Err` is the refusal.
fn grant(state: &mut State, request: &Request) -> Result<Reply, Reply> {
    let form_encoded = request.header("Content-Type").is_some_and(|t| {
        t.to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    if !form_encoded {
        return Err(oauth_error(
            400,
            "invalid_request",
            "fake: the token request must be form-encoded",
        ));
    }
    let form = wire::parse_query(std::str::from_utf8(&request.body).unwrap_or(""));
    let field = |name: &str| {
        form.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    match field("grant_type") {
        Some(JWT_BEARER) => {}
        Some(other) => {
            return Err(oauth_error(
                400,
                "unsupported_grant_type",
                &format!("Invalid grant_type: {other}"),
            ));
        }
        None => {
            return Err(oauth_error(
                400,
                "unsupported_grant_type",
                "Invalid grant_type: ",
            ));
        }
    }
    let assertion = field("assertion").ok_or_else(|| {
        oauth_error(
            400,
            "invalid_request",
            "Missing required parameter: assertion",
        )
    })?;
    let jwt = Jwt::parse(assertion).ok_or_else(|| {
        oauth_error(
            400,
            "invalid_grant",
            "Invalid JWT: malformed (fake wording)",
        )
    })?;
    let claims = &jwt.claims;
    if claims["iss"] != CLIENT_EMAIL {
        return Err(oauth_error(
            400,
            "invalid_grant",
            "Invalid grant: account not found",
        ));
    }
    jwt.check_signature()?;
    check_timeframe(claims, state.knobs.clock_skew)?;
    let expected_aud = format!(
        "http://{}{}",
        request.header("Host").unwrap_or(""),
        request.path_only()
    );
    if claims["aud"] != expected_aud.as_str() {
        let text =
            format!("Invalid JWT: Failed audience check. The right audience is {expected_aud}");
        return Err(oauth_error(400, "invalid_grant", &text));
    }
    let scopes = check_scopes_claim(&claims["scope"])?;
    let identity = match claims.get("sub").and_then(Value::as_str) {
        None => CLIENT_EMAIL.to_string(),
        Some(sub)
            if sub == CLIENT_EMAIL || state.knobs.allowed_subjects.iter().any(|s| s == sub) =>
        {
            sub.to_string()
        }
        Some(_) => {
            let status = state.knobs.unauthorized_client_status;
            return Err(oauth_error(
                status,
                "unauthorized_client",
                UNAUTHORIZED_CLIENT,
            ));
        }
    };
    let token = state.issue_token(scopes, identity);
    Ok(Reply::json(
        200,
        json!({
            "access_token": token,
            "expires_in": state.knobs.token_lifetime,
            "token_type": "Bearer",
        }),
    ))
}

/// A JWT split into its parts, header and claims decoded.
struct Jwt {
    header: Value,
    claims: Value,
    signed: String,
    signature: String,
}

impl Jwt {
    fn parse(assertion: &str) -> Option<Jwt> {
        let mut parts = assertion.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let decode = |part: &str| -> Option<Value> {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
        };
        let (header_json, claims_json) = (decode(header)?, decode(claims)?);
        if !header_json.is_object() || !claims_json.is_object() {
            return None;
        }
        Some(Jwt {
            header: header_json,
            claims: claims_json,
            signed: format!("{header}.{claims}"),
            signature: signature.to_string(),
        })
    }

    /// RS256 with the service account's public key; a `kid`, when sent, must name that key.
    fn check_signature(&self) -> Result<(), Reply> {
        let refuse = || oauth_error(400, "invalid_grant", SIGNATURE);
        if self.header["alg"] != "RS256" {
            return Err(refuse());
        }
        if let Some(kid) = self.header.get("kid")
            && kid != PRIVATE_KEY_ID
        {
            return Err(refuse());
        }
        let key = DecodingKey::from_rsa_pem(SA_PUBLIC_KEY_PEM.as_bytes())
            .expect("the fixture public key parses");
        match crypto::verify(
            &self.signature,
            self.signed.as_bytes(),
            &key,
            Algorithm::RS256,
        ) {
            Ok(true) => Ok(()),
            _ => Err(refuse()),
        }
    }
}

/// `iat` not in the future and `exp` not in the past (beyond the skew), `exp - iat` ≤ 3600.
fn check_timeframe(claims: &Value, skew: i64) -> Result<(), Reply> {
    let refuse = || oauth_error(400, "invalid_grant", TIMEFRAME);
    let (Some(iat), Some(exp)) = (claims["iat"].as_i64(), claims["exp"].as_i64()) else {
        return Err(refuse());
    };
    let now = Utc::now().timestamp();
    let in_time = iat <= now + skew && exp > now - skew && exp > iat && exp - iat <= 3600;
    if in_time { Ok(()) } else { Err(refuse()) }
}

/// The space-separated `scope` claim: present, and made of Google scopes.
fn check_scopes_claim(scope: &Value) -> Result<Vec<String>, Reply> {
    let scopes: Vec<String> = scope
        .as_str()
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if scopes.is_empty() {
        return Err(oauth_error(
            400,
            "invalid_scope",
            "Empty or missing scope not allowed.",
        ));
    }
    if scopes.iter().any(|s| !s.starts_with(SCOPE_PREFIX)) {
        return Err(oauth_error(
            400,
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        ));
    }
    Ok(scopes)
}

/// The identity and scopes of a live bearer token; 401 otherwise.
pub fn authenticate(
    state: &State,
    authorization: Option<&str>,
) -> Result<(String, Vec<String>), ApiError> {
    let Some(value) = authorization else {
        return Err(ApiError::login_required());
    };
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("Bearer") => token.trim(),
        _ => return Err(ApiError::invalid_credentials()),
    };
    match state.tokens.get(token) {
        Some(t) if !t.revoked && t.expires > std::time::Instant::now() => {
            Ok((t.identity.clone(), t.scopes.clone()))
        }
        _ => Err(ApiError::invalid_credentials()),
    }
}

/// The discovery document's scopes per method: `calendar` always; the events scopes for event
/// calls; the read-only ones for reads.
pub fn check_scopes(scopes: &[String], kind: Kind) -> Result<(), ApiError> {
    let mut accepted = vec!["calendar"];
    match kind {
        Kind::Calendar => accepted.push("calendar.readonly"),
        _ if kind.is_read() => accepted.extend([
            "calendar.events",
            "calendar.readonly",
            "calendar.events.readonly",
        ]),
        _ => accepted.push("calendar.events"),
    }
    let covered = scopes.iter().any(|s| {
        s.strip_prefix(SCOPE_PREFIX)
            .is_some_and(|name| accepted.contains(&name))
    });
    if covered {
        Ok(())
    } else {
        Err(ApiError::insufficient_scopes())
    }
}
