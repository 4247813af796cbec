//! Every error a client can see, and its one mapping to OpenAI's envelope, an HTTP status,
//! `Retry-After` and `x-should-retry`. Lower layers return their own plain errors (the ComfyUI
//! client's [`ComfyError`], axum's rejections); this module alone decides how a client sees them.

use app::api::error::{ErrorBody, ErrorEnvelope};
use axum::{
    Json,
    extract::rejection::{PathRejection, QueryRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::comfy::ComfyError;

/// The `code` of an error envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidValue,
    MissingRequiredParameter,
    DuplicateParameter,
    InvalidType,
    InvalidJson,
    InvalidContentType,
    InvalidMultipart,
    InvalidPath,
    InvalidImageFormat,
    InvalidImage,
    ImageTooLarge,
    RequestTooLarge,
    UnsupportedContentEncoding,
    RequestTimeout,
    TooManyConnections,
    ModelNotFound,
    ModelUnavailable,
    InvalidApiKey,
    NotFound,
    MethodNotAllowed,
    IdempotencyKeyReused,
    RateLimitExceeded,
    InvalidWorkflow,
    NoModels,
    ComfyuiUnavailable,
    ComfyuiValidationError,
    ComfyuiExecutionError,
    ComfyuiInterrupted,
    ComfyuiJobLost,
    ComfyuiBadResponse,
    ComfyuiNoOutput,
    GenerationTimeout,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidValue => "invalid_value",
            ErrorCode::MissingRequiredParameter => "missing_required_parameter",
            ErrorCode::DuplicateParameter => "duplicate_parameter",
            ErrorCode::InvalidType => "invalid_type",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidContentType => "invalid_content_type",
            ErrorCode::InvalidMultipart => "invalid_multipart",
            ErrorCode::InvalidPath => "invalid_path",
            ErrorCode::InvalidImageFormat => "invalid_image_format",
            ErrorCode::InvalidImage => "invalid_image",
            ErrorCode::ImageTooLarge => "image_too_large",
            ErrorCode::RequestTooLarge => "request_too_large",
            ErrorCode::UnsupportedContentEncoding => "unsupported_content_encoding",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::ModelNotFound => "model_not_found",
            ErrorCode::ModelUnavailable => "model_unavailable",
            ErrorCode::InvalidApiKey => "invalid_api_key",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::RateLimitExceeded => "rate_limit_exceeded",
            ErrorCode::InvalidWorkflow => "invalid_workflow",
            ErrorCode::NoModels => "no_models",
            ErrorCode::ComfyuiUnavailable => "comfyui_unavailable",
            ErrorCode::ComfyuiValidationError => "comfyui_validation_error",
            ErrorCode::ComfyuiExecutionError => "comfyui_execution_error",
            ErrorCode::ComfyuiInterrupted => "comfyui_interrupted",
            ErrorCode::ComfyuiJobLost => "comfyui_job_lost",
            ErrorCode::ComfyuiBadResponse => "comfyui_bad_response",
            ErrorCode::ComfyuiNoOutput => "comfyui_no_output",
            ErrorCode::GenerationTimeout => "generation_timeout",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
        code: ErrorCode,
    },
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    ModelNotFound(String),
    #[error("No model is loaded; check the workflows directory (see /health).")]
    NoModels,
    /// No key came with the request, where the server needs one. OpenAI says so with no code;
    /// a wrong key has `invalid_api_key`.
    #[error(
        "You didn't provide an API key. This server needs one, sent as \
         `Authorization: Bearer <key>`."
    )]
    MissingApiKey,
    #[error("Incorrect API key provided. Check the key, or ask this server's operator for one.")]
    WrongApiKey,
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    NotFound(String),
    #[error("Method not allowed.")]
    MethodNotAllowed,
    #[error(
        "This Idempotency-Key was already used with a different request. Send a new key for a \
         new request, or the same request to get the first one's result."
    )]
    IdempotencyConflict,
    #[error("The bridge is busy: too many generations are waiting. Try again shortly.")]
    Overloaded,
    /// The bridge cannot serve right now (no ComfyUI answers, or no workflows are loaded).
    #[error("{1}")]
    Unavailable(ErrorCode, String),
    #[error(
        "Some workflows were refused; the others are loaded, and a refused file's model keeps \
         its last good version. {}",
        .0.join(" | ")
    )]
    InvalidWorkflows(Vec<String>),
    #[error(
        "The request body arrived too slowly: after {after_secs} s it must average at least \
         {min_rate} bytes per second."
    )]
    RequestTimeout { after_secs: u64, min_rate: u64 },
    #[error("The bridge has too many open connections; try again in a moment.")]
    TooManyConnections,
    /// No ComfyUI server can run the model's workflow. `server_side` when another server (or
    /// this one with other nodes or files) could; otherwise the workflow itself is wrong.
    #[error("Model '{model}' cannot run: {}.", .reasons.join(" | "))]
    ModelUnavailable {
        model: String,
        reasons: Vec<String>,
        server_side: bool,
    },
    #[error(transparent)]
    Comfy(#[from] ComfyError),
    #[error("The server had an error while processing your request.")]
    Internal(String),
}

/// How a client sees one error: everything but the message, decided in one match.
struct Class {
    status: StatusCode,
    kind: &'static str,
    code: Option<ErrorCode>,
    /// Seconds to wait before trying again, where waiting helps.
    retry_after: Option<u32>,
    /// Whether the same request could succeed if repeated. The OpenAI SDKs re-send 5xx
    /// answers twice by default; a deterministic workflow failure would only run twice more.
    retryable: bool,
}

const INVALID: &str = "invalid_request_error";
const SERVER: &str = "server_error";

impl ApiError {
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        ApiError::InvalidRequest {
            message: message.into(),
            param: Some(param.to_string()),
            code: ErrorCode::InvalidValue,
        }
    }

    /// A 400 with its own code, about `param` or the request as a whole.
    pub fn bad(code: ErrorCode, param: Option<&str>, message: impl Into<String>) -> Self {
        ApiError::InvalidRequest {
            message: message.into(),
            param: param.map(str::to_string),
            code,
        }
    }

    /// 413 for an image file over `MAX_IMAGE_BYTES`.
    pub fn file_too_large(param: &str, limit: usize) -> Self {
        ApiError::PayloadTooLarge(format!(
            "The file '{param}' is larger than the limit of {} MB per image.",
            limit / (1024 * 1024)
        ))
    }

    /// The image storage failed (a disk, or an S3 server, is unreachable or full): the client
    /// sees a 500, the log the cause.
    pub fn storage(e: anyhow::Error) -> Self {
        ApiError::Internal(format!("image storage: {e:#}"))
    }

    fn class(&self) -> Class {
        let client = |status, code| Class {
            status,
            kind: INVALID,
            code: Some(code),
            retry_after: None,
            retryable: false,
        };
        match self {
            ApiError::InvalidRequest { code, .. } => client(StatusCode::BAD_REQUEST, *code),
            ApiError::ModelNotFound(_) => client(StatusCode::NOT_FOUND, ErrorCode::ModelNotFound),
            ApiError::NoModels => client(StatusCode::NOT_FOUND, ErrorCode::NoModels),
            ApiError::NotFound(_) => client(StatusCode::NOT_FOUND, ErrorCode::NotFound),
            ApiError::MissingApiKey => Class {
                code: None,
                ..client(StatusCode::UNAUTHORIZED, ErrorCode::InvalidApiKey)
            },
            ApiError::WrongApiKey => client(StatusCode::UNAUTHORIZED, ErrorCode::InvalidApiKey),
            ApiError::PayloadTooLarge(_) => {
                client(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::RequestTooLarge)
            }
            ApiError::UnsupportedMediaType(_) => client(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedContentEncoding,
            ),
            ApiError::MethodNotAllowed => {
                client(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed)
            }
            ApiError::IdempotencyConflict => {
                client(StatusCode::CONFLICT, ErrorCode::IdempotencyKeyReused)
            }
            ApiError::InvalidWorkflows(_) => {
                client(StatusCode::BAD_REQUEST, ErrorCode::InvalidWorkflow)
            }
            ApiError::RequestTimeout { .. } => {
                client(StatusCode::REQUEST_TIMEOUT, ErrorCode::RequestTimeout)
            }
            ApiError::TooManyConnections => Class {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: SERVER,
                code: Some(ErrorCode::TooManyConnections),
                retry_after: Some(1),
                retryable: true,
            },
            ApiError::Overloaded => Class {
                status: StatusCode::TOO_MANY_REQUESTS,
                kind: "rate_limit_error",
                code: Some(ErrorCode::RateLimitExceeded),
                retry_after: Some(5),
                retryable: true,
            },
            ApiError::Unavailable(code, _) => Class {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: SERVER,
                code: Some(*code),
                retry_after: Some(10),
                retryable: true,
            },
            ApiError::ModelUnavailable {
                server_side: false, ..
            } => client(StatusCode::BAD_REQUEST, ErrorCode::InvalidWorkflow),
            // A retry would meet the same servers: only the operator can fix it.
            ApiError::ModelUnavailable { .. } => Class {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: SERVER,
                code: Some(ErrorCode::ModelUnavailable),
                retry_after: None,
                retryable: false,
            },
            ApiError::Comfy(e) => comfy_class(e),
            ApiError::Internal(_) => Class {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                kind: SERVER,
                code: None,
                retry_after: None,
                retryable: true,
            },
        }
    }

    pub fn status(&self) -> StatusCode {
        self.class().status
    }

    fn param(&self) -> Option<String> {
        match self {
            ApiError::InvalidRequest { param, .. } => param.clone(),
            ApiError::ModelNotFound(_) | ApiError::ModelUnavailable { .. } => {
                Some("model".to_string())
            }
            _ => None,
        }
    }

    pub fn body(&self) -> ErrorBody {
        let class = self.class();
        ErrorBody {
            message: self.to_string(),
            kind: class.kind.to_string(),
            param: self.param(),
            code: class.code.map(|c| c.as_str().to_string()),
        }
    }

    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope { error: self.body() }
    }

    /// Logs a failure once, at the level its status deserves.
    pub fn log(&self) {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
        } else {
            tracing::debug!(error = %self, %status, "request rejected");
        }
    }

    /// The response headers that go with this error: `Retry-After` where waiting helps, and
    /// `x-should-retry` on the answers the SDKs would otherwise retry or not by status alone.
    pub fn retry_headers(&self, headers: &mut axum::http::HeaderMap) {
        let class = self.class();
        if let Some(secs) = class.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if class.status.is_server_error() || class.status == StatusCode::TOO_MANY_REQUESTS {
            let value = if class.retryable { "true" } else { "false" };
            headers.insert("x-should-retry", HeaderValue::from_static(value));
        }
    }
}

/// ComfyUI's failures as a client sees them: unreachable is 503 and worth a retry, a timeout
/// 504, and a workflow that ComfyUI refused or that failed 502, not worth repeating.
fn comfy_class(e: &ComfyError) -> Class {
    let (status, code, retry_after, retryable) = match e {
        ComfyError::Unavailable { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ComfyuiUnavailable,
            Some(10),
            true,
        ),
        ComfyError::Timeout(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::GenerationTimeout,
            None,
            false,
        ),
        ComfyError::Validation(_) => (
            StatusCode::BAD_GATEWAY,
            ErrorCode::ComfyuiValidationError,
            None,
            false,
        ),
        ComfyError::Execution { .. } => (
            StatusCode::BAD_GATEWAY,
            ErrorCode::ComfyuiExecutionError,
            None,
            false,
        ),
        ComfyError::Interrupted => (
            StatusCode::BAD_GATEWAY,
            ErrorCode::ComfyuiInterrupted,
            None,
            false,
        ),
        ComfyError::Lost => (
            StatusCode::BAD_GATEWAY,
            ErrorCode::ComfyuiJobLost,
            None,
            true,
        ),
        ComfyError::Gone { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ComfyuiUnavailable,
            Some(10),
            true,
        ),
        ComfyError::BadResponse(_) => (
            StatusCode::BAD_GATEWAY,
            ErrorCode::ComfyuiBadResponse,
            None,
            true,
        ),
        ComfyError::NoOutput => (
            StatusCode::BAD_GATEWAY,
            ErrorCode::ComfyuiNoOutput,
            None,
            false,
        ),
    };
    Class {
        status,
        kind: SERVER,
        code: Some(code),
        retry_after,
        retryable,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let mut res = match &self {
            // The reload's answer lists every problem, beside the usual envelope.
            ApiError::InvalidWorkflows(errors) => (
                self.status(),
                Json(serde_json::json!({ "error": self.body(), "errors": errors })),
            )
                .into_response(),
            _ => (self.status(), Json(self.envelope())).into_response(),
        };
        self.retry_headers(res.headers_mut());
        // For `/metrics`, which counts errors by code.
        if let Some(code) = self.class().code {
            res.extensions_mut().insert(code);
        }
        res
    }
}

/// A path segment axum could not take: not UTF-8 after percent-decoding, or not the type the
/// route expects.
impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad(
            ErrorCode::InvalidPath,
            None,
            format!("The request path is not valid: {}.", rejection.body_text()),
        )
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad(
            ErrorCode::InvalidValue,
            None,
            format!("The query string is not valid: {}.", rejection.body_text()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comfyui_unreachable_is_a_retryable_503() {
        let err = ApiError::from(ComfyError::Unavailable {
            reason: "connection refused".into(),
        });
        let res = err.into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "10");
        assert_eq!(res.headers()["x-should-retry"], "true");
    }

    #[test]
    fn workflow_failures_are_not_retried() {
        let err = ApiError::from(ComfyError::Validation("bad".into()));
        assert_eq!(
            err.envelope().error.code.as_deref(),
            Some("comfyui_validation_error")
        );
        let res = err.into_response();
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(res.headers()["x-should-retry"], "false");
        assert!(!res.headers().contains_key(header::RETRY_AFTER));
    }

    #[test]
    fn client_errors_carry_no_retry_advice() {
        let res = ApiError::invalid("n", "bad n").into_response();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert!(!res.headers().contains_key("x-should-retry"));
    }
}
