//! API keys: which ones the server accepts, and the check on every protected route.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderMap, header},
    middleware::Next,
    response::Response,
};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The accepted keys; none means the API is open.
#[derive(Clone)]
pub struct Auth(Arc<Vec<String>>);

impl Auth {
    pub fn new(keys: &[String]) -> Auth {
        Auth(Arc::new(
            keys.iter()
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect(),
        ))
    }

    pub fn required(&self) -> bool {
        !self.0.is_empty()
    }

    /// Whether `presented` is one of the keys, compared in constant time (every key, so
    /// timing tells nothing about which prefix matched). Always true for an open server.
    pub fn accepts(&self, presented: &str) -> bool {
        if !self.required() {
            return true;
        }
        let presented = presented.trim();
        let mut ok = subtle::Choice::from(0u8);
        for key in self.0.iter() {
            ok |= key.as_bytes().ct_eq(presented.as_bytes());
        }
        bool::from(ok) && !presented.is_empty()
    }

    /// Why `presented` is refused: none given, or a wrong one. `None` when it is accepted.
    pub fn refusal(&self, presented: &str) -> Option<ApiError> {
        if self.accepts(presented) {
            None
        } else if presented.trim().is_empty() {
            Some(ApiError::MissingApiKey)
        } else {
            Some(ApiError::WrongApiKey)
        }
    }
}

/// The key a request presents as `Authorization: Bearer <key>`; empty when it has none.
pub fn presented(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .unwrap_or("")
}

/// Rejects requests without an accepted `Authorization: Bearer` key.
pub async fn require_key(
    State(auth): State<Auth>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    match auth.refusal(presented(req.headers())) {
        None => Ok(next.run(req).await),
        Some(refusal) => Err(refusal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_whole() {
        let auth = Auth::new(&["sk-one".into(), " sk-two ".into(), String::new()]);
        assert!(auth.required());
        assert!(auth.accepts("sk-one"));
        assert!(auth.accepts("sk-two"));
        assert!(!auth.accepts("sk-on"));
        assert!(!auth.accepts("sk-one2"));
        assert!(!auth.accepts(""));
        let open = Auth::new(&[" ".into()]);
        assert!(!open.required());
        assert!(open.accepts(""));
        assert!(matches!(auth.refusal(" "), Some(ApiError::MissingApiKey)));
        assert!(matches!(auth.refusal("sk-on"), Some(ApiError::WrongApiKey)));
        assert!(auth.refusal("sk-two").is_none());
        assert!(open.refusal("").is_none());
    }
}
