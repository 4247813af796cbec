//! Every error a client can see, and its one mapping to OpenAI's envelope and an HTTP status.

use app::api::error::{ErrorBody, ErrorEnvelope};
use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::comfy::ComfyError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
        code: Option<&'static str>,
    },
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    ModelNotFound(String),
    #[error("Incorrect or missing API key. Send it as `Authorization: Bearer <key>`.")]
    Unauthorized,
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    NotFound(String),
    #[error("Method not allowed.")]
    MethodNotAllowed,
    #[error("The bridge is busy: too many generations are waiting. Try again shortly.")]
    Overloaded,
    #[error(
        "The request body arrived too slowly: after {after_secs} s it must average at least \
         {min_rate} bytes per second."
    )]
    RequestTimeout { after_secs: u64, min_rate: u64 },
    #[error(transparent)]
    Comfy(#[from] ComfyError),
    #[error("The server had an error while processing your request.")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        ApiError::InvalidRequest {
            message: message.into(),
            param: Some(param.to_string()),
            code: Some("invalid_value"),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::ModelNotFound(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Comfy(e) => e.status(),
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest { .. }
            | ApiError::ModelNotFound(_)
            | ApiError::Unauthorized
            | ApiError::PayloadTooLarge(_)
            | ApiError::NotFound(_)
            | ApiError::MethodNotAllowed
            | ApiError::RequestTimeout { .. } => "invalid_request_error",
            ApiError::Overloaded => "rate_limit_error",
            ApiError::Comfy(_) | ApiError::Internal(_) => "server_error",
        }
    }

    fn code(&self) -> Option<&'static str> {
        match self {
            ApiError::InvalidRequest { code, .. } => *code,
            ApiError::ModelNotFound(_) => Some("model_not_found"),
            ApiError::Unauthorized => Some("invalid_api_key"),
            ApiError::PayloadTooLarge(_) => Some("request_too_large"),
            ApiError::NotFound(_) => Some("not_found"),
            ApiError::MethodNotAllowed => Some("method_not_allowed"),
            ApiError::Overloaded => Some("rate_limit_exceeded"),
            ApiError::RequestTimeout { .. } => Some("request_timeout"),
            ApiError::Comfy(e) => Some(e.code()),
            ApiError::Internal(_) => None,
        }
    }

    fn param(&self) -> Option<String> {
        match self {
            ApiError::InvalidRequest { param, .. } => param.clone(),
            ApiError::ModelNotFound(_) => Some("model".to_string()),
            _ => None,
        }
    }

    /// Seconds a client should wait before trying again, where waiting helps.
    fn retry_after(&self) -> Option<u32> {
        match self {
            ApiError::Overloaded => Some(5),
            ApiError::Comfy(e) => e.retry_after(),
            _ => None,
        }
    }

    /// Whether the same request could succeed if repeated. The OpenAI SDKs re-send 5xx
    /// answers twice by default; a deterministic workflow failure would only run twice more.
    fn retryable(&self) -> bool {
        match self {
            ApiError::Comfy(e) => e.retryable(),
            ApiError::Overloaded | ApiError::Internal(_) => true,
            _ => false,
        }
    }

    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            error: ErrorBody {
                message: self.to_string(),
                kind: self.kind().to_string(),
                param: self.param(),
                code: self.code().map(str::to_string),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
        } else {
            tracing::debug!(error = %self, %status, "request rejected");
        }
        let mut res = (status, Json(self.envelope())).into_response();
        let headers = res.headers_mut();
        if let Some(secs) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            let value = if self.retryable() { "true" } else { "false" };
            headers.insert("x-should-retry", HeaderValue::from_static(value));
        }
        res
    }
}
