//! Request extraction with OpenAI-shaped rejections: JSON bodies whose errors name the field,
//! and the bearer-key check.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request, State},
    http::{HeaderMap, header},
    middleware::Next,
    response::Response,
};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use crate::{error::ApiError, serve::body_too_slow, state::AppState};

/// A JSON body. Malformed or mistyped bodies are a 400 naming the offending field, never 422.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::InvalidRequest {
                message: "Send the request body as JSON with `Content-Type: application/json`."
                    .into(),
                param: None,
                code: Some("invalid_content_type"),
            });
        }
        let body = body_bytes(req, state).await?;
        parse_json(&body).map(ApiJson)
    }
}

/// The whole body, within the route's size limit.
pub async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if let Some(slow) = body_too_slow(&e) {
            ApiError::from(slow)
        } else if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge("The request body is too large.".into())
        } else {
            ApiError::InvalidRequest {
                message: "The request body could not be read.".into(),
                param: None,
                code: None,
            }
        }
    })
}

/// Whether the body is declared as JSON (`application/json` or any `+json` type).
pub fn is_json(headers: &HeaderMap) -> bool {
    let t = media_type(headers);
    t == "application/json" || t.ends_with("+json")
}

/// The `Content-Type` without parameters, lowercased; empty when absent.
pub fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::InvalidRequest {
                message: format!("The request body is not valid JSON: {inner}."),
                param: None,
                code: Some("invalid_json"),
            };
        }
        let text = inner.to_string();
        // serde reports a missing field at the parent's path, naming it in the message.
        let missing = text
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string);
        let param = missing.clone().or_else(|| (path != ".").then_some(path));
        let detail = text.split(" at line ").next().unwrap_or(&text).to_string();
        let message = match (&missing, &param) {
            (Some(field), _) => format!("Missing required parameter: '{field}'."),
            (None, Some(p)) => format!("Invalid value for '{p}': {detail}."),
            (None, None) => format!("Invalid request body: {detail}."),
        };
        ApiError::InvalidRequest {
            message,
            param,
            code: Some(if missing.is_some() {
                "missing_required_parameter"
            } else {
                "invalid_type"
            }),
        }
    })
}

/// Rejects requests without a configured key. Every key is compared in constant time, and all
/// of them are compared, so timing tells nothing about which prefix matched.
pub async fn require_key(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let keys = &state.bridge.api_keys;
    if keys.is_empty() {
        return Ok(next.run(req).await);
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or("");
    if key_matches(keys, presented) {
        Ok(next.run(req).await)
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Whether `presented` is one of `keys`, compared in constant time so that timing tells
/// nothing about how much of a key was right.
pub fn key_matches(keys: &[String], presented: &str) -> bool {
    let mut ok = subtle::Choice::from(0u8);
    for key in keys {
        ok |= key.as_bytes().ct_eq(presented.as_bytes());
    }
    bool::from(ok) && !presented.is_empty()
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Req {
        prompt: String,
        n: Option<u32>,
    }

    fn err(body: &str) -> (String, Option<String>) {
        match parse_json::<Req>(body.as_bytes()) {
            Err(ApiError::InvalidRequest { message, param, .. }) => (message, param),
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        let (msg, param) = err(r#"{"prompt":"x","n":"two"}"#);
        assert_eq!(param.as_deref(), Some("n"));
        assert!(
            msg.starts_with("Invalid value for 'n': invalid type: string \"two\""),
            "{msg}"
        );
        let (msg, param) = err(r#"{"n":1}"#);
        assert_eq!(param.as_deref(), Some("prompt"));
        assert_eq!(msg, "Missing required parameter: 'prompt'.");
        let (_, param) = err(r#"{"prompt":"x","n":-1}"#);
        assert_eq!(param.as_deref(), Some("n"));
        let (msg, param) = err(r#"{"prompt":"x""#);
        assert_eq!(param, None);
        assert!(
            msg.starts_with("The request body is not valid JSON"),
            "{msg}"
        );
    }

    #[test]
    fn null_means_not_given() {
        let req: Req = parse_json(br#"{"prompt":"x","n":null}"#).unwrap();
        assert_eq!(req.n, None);
    }
}
