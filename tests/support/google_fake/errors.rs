//! Google's JSON error bodies, and the internal answer type every endpoint of the fake returns.
//!
//! Shape (https://developers.google.com/workspace/calendar/api/guides/errors):
//! `{"error":{"errors":[{"domain","reason","message","locationType"?,"location"?}],"code","message"}}`.
//! Errors raised by Google's authentication layer (401, insufficient scopes) also carry `status`
//! (`UNAUTHENTICATED`, `PERMISSION_DENIED`), as observed on real answers; calendar-level errors
//! do not. Clients must branch on `errors[].reason`, never on `message`.

use serde_json::{Value, json};

/// One answer of the fake, before it becomes an HTTP response or a batch part.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    /// A body that is not JSON (a batch's multipart answer); its Content-Type is in `headers`.
    pub raw: Option<Vec<u8>>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Some(body),
            raw: None,
        }
    }

    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: None,
            raw: None,
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// A Google API error (`errors[0]` plus the envelope); boxed, since it travels in every `Result`.
#[derive(Clone, Debug)]
pub struct ApiError(Box<Detail>);

#[derive(Clone, Debug)]
pub struct Detail {
    pub code: u16,
    pub domain: &'static str,
    pub reason: &'static str,
    pub message: String,
    /// Only the outer `message`, when Google words it differently from `errors[0].message`.
    pub outer_message: Option<String>,
    pub location: Option<(&'static str, String)>,
    /// The `status` string of the auth layer's errors.
    pub status: Option<&'static str>,
    pub retry_after: Option<u64>,
    pub extra_headers: Vec<(String, String)>,
}

impl std::ops::Deref for ApiError {
    type Target = Detail;

    fn deref(&self) -> &Detail {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut Detail {
        &mut self.0
    }
}

impl ApiError {
    pub fn new(
        code: u16,
        domain: &'static str,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ApiError(Box::new(Detail {
            code,
            domain,
            reason,
            message: message.into(),
            outer_message: None,
            location: None,
            status: None,
            retry_after: None,
            extra_headers: Vec::new(),
        }))
    }

    /// Names the parameter, header or field the error is about.
    pub fn at(mut self, location_type: &'static str, location: impl Into<String>) -> Self {
        self.location = Some((location_type, location.into()));
        self
    }

    pub fn body(&self) -> Value {
        let mut item = json!({
            "domain": self.domain,
            "reason": self.reason,
            "message": self.message,
        });
        if let Some((kind, name)) = &self.location {
            item["locationType"] = json!(kind);
            item["location"] = json!(name);
        }
        let mut error = json!({
            "errors": [item],
            "code": self.code,
            "message": self.outer_message.clone().unwrap_or_else(|| self.message.clone()),
        });
        if let Some(status) = self.status {
            error["status"] = json!(status);
        }
        json!({ "error": error })
    }

    pub fn reply(&self) -> Reply {
        let mut reply = Reply::json(self.code, self.body());
        if let Some(seconds) = self.retry_after {
            reply = reply.with_header("Retry-After", seconds.to_string());
        }
        for (name, value) in &self.extra_headers {
            reply = reply.with_header(name, value.clone());
        }
        reply
    }

    // The errors the fake raises, with Google's domains, reasons and messages.

    /// 400 `invalid`: a value Google refuses.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(400, "global", "invalid", message)
    }

    /// 400 `required`: a field or parameter that must be present.
    pub fn required(message: impl Into<String>) -> Self {
        ApiError::new(400, "global", "required", message)
    }

    /// 400 `parseError`: the body is not a JSON object of the right shape.
    pub fn parse_error() -> Self {
        ApiError::new(400, "global", "parseError", "Parse Error")
    }

    /// 400 `invalidParameter`: a query parameter the method does not know (fake strictness).
    pub fn unknown_parameter(name: &str) -> Self {
        ApiError::new(
            400,
            "global",
            "invalidParameter",
            format!("fake: unknown query parameter '{name}' (see GoogleFake::set_lenient_query)"),
        )
        .at("parameter", name)
    }

    /// 400 `timeRangeEmpty`, worded as in Google's error guide.
    pub fn time_range_empty(location: &str) -> Self {
        ApiError::new(
            400,
            "calendar",
            "timeRangeEmpty",
            "The specified time range is empty.",
        )
        .at("parameter", location)
    }

    /// 401 without any credentials.
    pub fn login_required() -> Self {
        let mut e = ApiError::new(401, "global", "required", "Login Required.")
            .at("header", "Authorization");
        e.outer_message = Some(
            "Request is missing required authentication credential. Expected OAuth 2 access token, \
             login cookie or other valid authentication credential."
                .into(),
        );
        e.status = Some("UNAUTHENTICATED");
        e.extra_headers.push((
            "WWW-Authenticate".into(),
            "Bearer realm=\"https://accounts.google.com/\"".into(),
        ));
        e
    }

    /// 401 with an unknown, expired or revoked access token.
    pub fn invalid_credentials() -> Self {
        let mut e = ApiError::new(401, "global", "authError", "Invalid Credentials")
            .at("header", "Authorization");
        e.outer_message = Some(
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login \
             cookie or other valid authentication credential."
                .into(),
        );
        e.status = Some("UNAUTHENTICATED");
        e.extra_headers.push((
            "WWW-Authenticate".into(),
            "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"".into(),
        ));
        e
    }

    /// 403 when the token's scopes do not cover the method.
    pub fn insufficient_scopes() -> Self {
        let mut e = ApiError::new(
            403,
            "global",
            "insufficientPermissions",
            "Insufficient Permission",
        );
        e.outer_message = Some("Request had insufficient authentication scopes.".into());
        e.status = Some("PERMISSION_DENIED");
        e
    }

    /// 403 `requiredAccessLevel`: a write to a calendar shared read-only.
    pub fn writer_access_required() -> Self {
        ApiError::new(
            403,
            "calendar",
            "requiredAccessLevel",
            "You need to have writer access to this calendar.",
        )
    }

    /// 403 `forbidden`: a calendar that refuses the account outright (knob), or a refused restore.
    pub fn forbidden() -> Self {
        ApiError::new(403, "global", "forbidden", "Forbidden")
    }

    pub fn not_found() -> Self {
        ApiError::new(404, "global", "notFound", "Not Found")
    }

    pub fn duplicate() -> Self {
        ApiError::new(
            409,
            "global",
            "duplicate",
            "The requested identifier already exists.",
        )
    }

    /// 410 `deleted`: a second DELETE of the same event.
    pub fn deleted() -> Self {
        ApiError::new(410, "global", "deleted", "Resource has been deleted")
    }

    /// 410 `fullSyncRequired`: the sync token expired or was invalidated.
    pub fn full_sync_required() -> Self {
        ApiError::new(
            410,
            "calendar",
            "fullSyncRequired",
            "Sync token is no longer valid, a full sync is required.",
        )
        .at("parameter", "syncToken")
    }

    /// 412 `conditionNotMet`: `If-Match` names another etag.
    pub fn condition_not_met() -> Self {
        ApiError::new(412, "global", "conditionNotMet", "Precondition Failed")
            .at("header", "If-Match")
    }
}

/// A body of the token endpoint's errors (RFC 6749 §5.2 shape, Google's wording).
pub fn oauth_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::json(
        status,
        json!({ "error": error, "error_description": description }),
    )
}
