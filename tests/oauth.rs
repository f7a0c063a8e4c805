//! `net::oauth` against a local token endpoint: the grants are sent as the Microsoft identity
//! platform and Google document them (signatures checked with the test keys' public halves),
//! tokens are cached in a state file and reused, a 401 gets one fresh token, and a refused
//! grant is "auth refused" without a secret in the message.

mod support;

use calsync::config::{NetSettings, Secret};
use calsync::net::oauth::{Grant, SigningKey, TokenSource, certificate_thumbprint};
use calsync::net::{Http, NetError, Request};
use calsync::store::Store;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::http::{Response, TestServer};

const GRAPH_KEY: &str = include_str!("fixtures/graph-client-key.pem");
const GRAPH_CERT: &str = include_str!("fixtures/graph-client-cert.pem");
const GRAPH_PUB: &str = include_str!("fixtures/graph-client-pub.pem");
const GOOGLE_KEY: &str = include_str!("fixtures/google-sa-key.pem");
const GOOGLE_PUB: &str = include_str!("fixtures/google-sa-pub.pem");

fn http() -> Http {
    Http::new(&NetSettings {
        retries: 0,
        backoff_ms: 1,
        timeout_seconds: 5,
        deadline_seconds: 30,
        concurrency: 4,
        ..Default::default()
    })
    .unwrap()
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("x:/?{}", String::from_utf8_lossy(body)))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn token(n: usize) -> Response {
    Response::json(
        200,
        &serde_json::json!({"token_type": "Bearer", "expires_in": 3599, "access_token": format!("tok-{n}")}),
    )
}

/// A token endpoint for the client-secret grant: checks the form, numbers its tokens.
fn secret_endpoint() -> (TestServer, Arc<AtomicUsize>) {
    let issued = Arc::new(AtomicUsize::new(0));
    let n = issued.clone();
    let server = TestServer::start(move |req| {
        let f = form(&req.body);
        let ok = req.method == "POST"
            && req.header("content-type") == Some("application/x-www-form-urlencoded")
            && field(&f, "grant_type") == Some("client_credentials")
            && field(&f, "client_id") == Some("app")
            && field(&f, "scope") == Some("https://graph.microsoft.com/.default");
        if !ok {
            return Response::json(400, &serde_json::json!({"error": "invalid_request"}));
        }
        if field(&f, "client_secret") != Some("s3cret") {
            return Response::json(
                401,
                &serde_json::json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}),
            );
        }
        token(n.fetch_add(1, Ordering::SeqCst) + 1)
    });
    (server, issued)
}

fn secret_grant(secret: &str) -> Grant {
    Grant::ClientSecret {
        client_id: "app".into(),
        secret: Secret::new(secret),
        scope: "https://graph.microsoft.com/.default".into(),
    }
}

#[test]
fn a_token_is_fetched_once_cached_in_the_state_file_and_reused_by_the_next_run() {
    let (server, issued) = secret_endpoint();
    let url = format!("{}/tenant/oauth2/v2.0/token", server.url());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("calsync.db");
    {
        let store = Store::open(&state).unwrap();
        let source = TokenSource::new(&url, secret_grant("s3cret"), http(), &store);
        assert_eq!(source.bearer().unwrap(), "tok-1");
        assert_eq!(source.bearer().unwrap(), "tok-1");
        source.save(&store);
    }
    assert_eq!(issued.load(Ordering::SeqCst), 1);
    // The next run (a new process would open the same file) asks nothing.
    let store = Store::open(&state).unwrap();
    let source = TokenSource::new(&url, secret_grant("s3cret"), http(), &store);
    assert_eq!(source.bearer().unwrap(), "tok-1");
    assert_eq!(server.count(), 1);
    // The token is in the state file, and nowhere else it could leak from: not in Debug.
    assert!(!format!("{source:?}").contains("tok-1"));
}

#[test]
fn a_401_gets_one_fresh_token_and_one_more_try() {
    let (tokens, issued) = secret_endpoint();
    let url = format!("{}/token", tokens.url());
    // The API accepts only the second token: the first was revoked.
    let api = TestServer::start(|req| match req.header("authorization") {
        Some("Bearer tok-2") => Response::json(200, &serde_json::json!({"ok": true})),
        _ => Response::json(
            401,
            &serde_json::json!({"error": {"code": "InvalidAuthenticationToken"}}),
        ),
    });
    let store = Store::in_memory().unwrap();
    let source = TokenSource::new(&url, secret_grant("s3cret"), http(), &store);
    let resp = source
        .send(&Request::get(format!("{}/me", api.url())))
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    assert_eq!(api.count(), 2);

    // When the fresh token is refused too, that is the answer: no third try.
    let never = TestServer::start(|_| {
        Response::json(
            401,
            &serde_json::json!({"error": {"code": "InvalidAuthenticationToken"}}),
        )
    });
    let err = source
        .send(&Request::get(format!("{}/me", never.url())))
        .unwrap_err();
    assert!(err.is_auth(), "{err}");
    assert_eq!(never.count(), 2);
}

#[test]
fn a_refused_grant_is_auth_refused_and_names_no_secret() {
    let (server, _) = secret_endpoint();
    let store = Store::in_memory().unwrap();
    let source = TokenSource::new(
        &format!("{}/token", server.url()),
        secret_grant("wrong-secret-value"),
        http(),
        &store,
    );
    let err = source.bearer().unwrap_err();
    assert!(matches!(err, NetError::AuthRefused { .. }), "{err:?}");
    assert!(err.is_auth());
    let text = err.to_string();
    assert!(
        text.contains("invalid_client") && text.contains("AADSTS7000215"),
        "{text}"
    );
    assert!(!text.contains("wrong-secret-value"), "{text}");
}

#[test]
fn a_client_assertion_is_ps256_with_the_certificates_sha256_thumbprint() {
    let thumbprint = certificate_thumbprint(GRAPH_CERT).unwrap();
    let want_thumb = thumbprint.clone();
    let server = TestServer::start(move |req| {
        let f = form(&req.body);
        let aud = format!("http://{}{}", req.header("host").unwrap(), req.path);
        assert_eq!(field(&f, "grant_type"), Some("client_credentials"));
        assert_eq!(
            field(&f, "client_assertion_type"),
            Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        );
        assert_eq!(field(&f, "client_secret"), None);
        let jwt = field(&f, "client_assertion").unwrap();
        let header = jsonwebtoken::decode_header(jwt).unwrap();
        assert_eq!(header.alg, Algorithm::PS256);
        assert_eq!(header.x5t_s256.as_deref(), Some(want_thumb.as_str()));
        let mut v = Validation::new(Algorithm::PS256);
        v.set_audience(&[aud]);
        v.set_issuer(&["app"]);
        v.set_required_spec_claims(&["exp", "aud", "iss", "sub", "nbf"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            jwt,
            &DecodingKey::from_rsa_pem(GRAPH_PUB.as_bytes()).unwrap(),
            &v,
        )
        .unwrap()
        .claims;
        assert_eq!(claims["sub"], "app");
        assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
        let life = claims["exp"].as_i64().unwrap() - claims["nbf"].as_i64().unwrap();
        assert!((1..=600).contains(&life), "{life}");
        token(1)
    });
    let store = Store::in_memory().unwrap();
    let source = TokenSource::new(
        &format!("{}/tenant/oauth2/v2.0/token", server.url()),
        Grant::ClientAssertion {
            client_id: "app".into(),
            scope: "https://graph.microsoft.com/.default".into(),
            key: SigningKey::from_rsa_pem(GRAPH_KEY).unwrap(),
            thumbprint,
        },
        http(),
        &store,
    );
    assert_eq!(source.bearer().unwrap(), "tok-1");
}

#[test]
fn a_jwt_bearer_grant_is_rs256_for_the_token_url_used() {
    let server = TestServer::start(move |req| {
        let f = form(&req.body);
        let aud = format!("http://{}{}", req.header("host").unwrap(), req.path);
        assert_eq!(
            field(&f, "grant_type"),
            Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
        );
        let jwt = field(&f, "assertion").unwrap();
        let header = jsonwebtoken::decode_header(jwt).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some("key-1"));
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&[aud]);
        v.set_issuer(&["sa@project.iam.gserviceaccount.com"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            jwt,
            &DecodingKey::from_rsa_pem(GOOGLE_PUB.as_bytes()).unwrap(),
            &v,
        )
        .unwrap()
        .claims;
        assert_eq!(claims["scope"], "https://www.googleapis.com/auth/calendar");
        assert_eq!(claims["sub"], "office@example.org");
        let life = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
        assert!((1..=3600).contains(&life), "{life}");
        token(1)
    });
    let store = Store::in_memory().unwrap();
    let source = TokenSource::new(
        &format!("{}/token", server.url()),
        Grant::JwtBearer {
            issuer: "sa@project.iam.gserviceaccount.com".into(),
            subject: Some("office@example.org".into()),
            scope: "https://www.googleapis.com/auth/calendar".into(),
            key: SigningKey::from_rsa_pem(GOOGLE_KEY).unwrap(),
            key_id: Some("key-1".into()),
        },
        http(),
        &store,
    );
    assert_eq!(source.bearer().unwrap(), "tok-1");
    assert!(SigningKey::from_rsa_pem("not a key").is_err());
}
