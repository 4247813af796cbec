//! What every request goes through before the router: the Content-Encoding check, the body's
//! minimum rate, and the answers the serving layer gives on its own.

use std::{
    convert::Infallible,
    sync::{
        Arc, LazyLock,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, HeaderValue, Request, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::future::BoxFuture;
use hyper::body::Incoming;
use tower::{Service, ServiceExt};

use super::{ServeLimits, body::RateLimitedBody};
use crate::error::ApiError;

/// The router, behind the checks that apply to every request of one connection.
#[derive(Clone)]
pub struct RequestService {
    app: Router,
    limits: ServeLimits,
    /// Set once a request head has arrived, which ends the connection's first-request deadline.
    first_request: Arc<AtomicBool>,
}

impl RequestService {
    pub fn new(app: Router, limits: ServeLimits, first_request: Arc<AtomicBool>) -> Self {
        RequestService {
            app,
            limits,
            first_request,
        }
    }
}

impl Service<Request<Incoming>> for RequestService {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        self.first_request.store(true, Ordering::Release);
        // Refused before the router, so that no handler reads a body it would misread as
        // JSON, a form or an image.
        if let Some(encoding) = unsupported_encoding(req.headers()) {
            tracing::debug!(%encoding, "request refused for its Content-Encoding");
            return Box::pin(std::future::ready(Ok(unsupported_encoding_response(
                &encoding,
            ))));
        }
        let limits = self.limits;
        let req = req.map(|body| {
            Body::new(RateLimitedBody::new(
                body,
                limits.body_timeout,
                limits.min_body_rate,
            ))
        });
        let app = self.app.clone();
        Box::pin(async move {
            let mut res = app.oneshot(req).await?;
            // A body that came too slowly was not read to its end: the connection cannot carry
            // another request, and saying so spares the client from trying.
            if res.status() == StatusCode::REQUEST_TIMEOUT {
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(res)
        })
    }
}

/// The request's Content-Encoding unless it is absent or `identity`: the bridge decodes none,
/// and a compressed body read as it is fails later with a misleading error.
fn unsupported_encoding(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .flat_map(|value| {
            String::from_utf8_lossy(value.as_bytes())
                .split(',')
                .map(|coding| coding.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .find(|coding| !coding.is_empty() && coding != "identity")
}

fn unsupported_encoding_response(encoding: &str) -> Response {
    let mut res = ApiError::UnsupportedMediaType(format!(
        "The Content-Encoding '{encoding}' is not supported: send the request body uncompressed."
    ))
    .into_response();
    // The body was left unread, so the connection cannot carry another request.
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

/// The whole HTTP response to a connection over the cap: it is written straight to the socket,
/// without hyper or the router.
pub fn too_many_connections() -> &'static [u8] {
    static RESPONSE: LazyLock<Vec<u8>> = LazyLock::new(|| {
        let error = ApiError::TooManyConnections;
        let body = serde_json::to_string(&error.envelope()).unwrap_or_default();
        let mut headers = HeaderMap::new();
        error.retry_headers(&mut headers);
        let status = error.status();
        let mut out = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        );
        for (name, value) in &headers {
            out.push_str(&format!(
                "{name}: {}\r\n",
                value.to_str().unwrap_or_default()
            ));
        }
        out.push_str("\r\n");
        out.push_str(&body);
        out.into_bytes()
    });
    &RESPONSE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoding(values: &[&str]) -> Option<String> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::CONTENT_ENCODING, v.parse().unwrap());
        }
        unsupported_encoding(&headers)
    }

    #[test]
    fn only_identity_or_nothing_passes() {
        assert_eq!(encoding(&[]), None);
        assert_eq!(encoding(&["identity"]), None);
        assert_eq!(encoding(&[" Identity "]), None);
        assert_eq!(encoding(&["gzip"]).as_deref(), Some("gzip"));
        assert_eq!(encoding(&["identity, br"]).as_deref(), Some("br"));
        assert_eq!(
            encoding(&["identity", "deflate"]).as_deref(),
            Some("deflate")
        );
    }

    #[test]
    fn the_busy_answer_is_a_complete_response() {
        let text = std::str::from_utf8(too_many_connections()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "too_many_connections");
        assert_eq!(json["error"]["type"], "server_error");
        assert!(json["error"]["param"].is_null());
    }
}
