//! Request extraction with OpenAI-shaped rejections: strict JSON bodies whose errors name the
//! field, path parameters, and edit forms (multipart or JSON).

mod form;

pub use form::read_upload;

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Path, Request},
    http::{HeaderMap, header},
};
use serde::de::DeserializeOwned;

use crate::{
    error::{ApiError, ErrorCode},
    serve::body_too_slow,
};

/// A path parameter. One that is not UTF-8 after percent-decoding, or not of the route's type,
/// is a 400 in the envelope.
#[derive(FromRequestParts)]
#[from_request(via(Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// A JSON body. Malformed or mistyped bodies are a 400 naming the offending field, never 422.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::bad(
                ErrorCode::InvalidContentType,
                None,
                "Send the request body as JSON with `Content-Type: application/json`.",
            ));
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
            ApiError::bad(
                ErrorCode::InvalidValue,
                None,
                "The request body could not be read.",
            )
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

/// Parses a JSON body: exactly one value (trailing data is refused, not ignored), with errors
/// that name the field.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::bad(
                ErrorCode::InvalidJson,
                None,
                format!("The request body is not valid JSON: {inner}."),
            );
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
            code: if missing.is_some() {
                ErrorCode::MissingRequiredParameter
            } else {
                ErrorCode::InvalidType
            },
        }
    })?;
    de.end().map_err(|e| {
        ApiError::bad(
            ErrorCode::InvalidJson,
            None,
            format!(
                "The request body is not valid JSON: {e}: there is more after the first value."
            ),
        )
    })?;
    Ok(value)
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
    fn trailing_data_is_refused() {
        let (msg, param) = err(r#"{"prompt":"x"} {"prompt":"y"}"#);
        assert_eq!(param, None);
        assert!(msg.contains("more after the first value"), "{msg}");
        let (msg, _) = err(r#"{"prompt":"x"}garbage"#);
        assert!(
            msg.starts_with("The request body is not valid JSON"),
            "{msg}"
        );
        // Whitespace after the value is still one value.
        assert!(parse_json::<Req>(b"{\"prompt\":\"x\"}\n  ").is_ok());
    }

    #[test]
    fn null_means_not_given() {
        let req: Req = parse_json(br#"{"prompt":"x","n":null}"#).unwrap();
        assert_eq!(req.n, None);
    }
}
