use std::time::Duration;

/// What can go wrong between the bridge and ComfyUI. Messages are written for the API client;
/// server addresses and raw upstream bodies go to the log, not into the message. How a client
/// sees each one (status, code, whether to retry) is decided in `crate::error`, not here.
#[derive(Debug, thiserror::Error)]
pub enum ComfyError {
    #[error("ComfyUI is not reachable right now; try again shortly.")]
    Unavailable { reason: String },
    #[error("ComfyUI rejected the workflow: {0}")]
    Validation(String),
    #[error(
        "ComfyUI failed while running node {node_id} ({node_type}): {exception_type}: {message}"
    )]
    Execution {
        node_id: String,
        node_type: String,
        exception_type: String,
        message: String,
    },
    #[error("The generation was interrupted in ComfyUI.")]
    Interrupted,
    #[error("ComfyUI lost the job (was it restarted?); try again.")]
    Lost,
    /// The server accepted the job, then stopped answering before it finished.
    #[error("ComfyUI stopped answering while it ran the job; try again shortly.")]
    Gone { reason: String },
    #[error("The generation did not finish within {} seconds and was cancelled.", .0.as_secs())]
    Timeout(Duration),
    #[error("ComfyUI sent an unexpected answer: {0}")]
    BadResponse(String),
    #[error("The workflow finished without producing an image; check its output node.")]
    NoOutput,
}

impl ComfyError {
    /// Whether the job may run on another server: this one could not be reached (so it never
    /// had the job), or it had the job and lost it or went away.
    pub fn server_failed(&self) -> bool {
        matches!(
            self,
            ComfyError::Unavailable { .. } | ComfyError::Lost | ComfyError::Gone { .. }
        )
    }

    /// Whether the server had accepted the job before it failed.
    pub fn had_the_job(&self) -> bool {
        matches!(self, ComfyError::Lost | ComfyError::Gone { .. })
    }

    pub(crate) fn unavailable(err: impl std::fmt::Display) -> Self {
        ComfyError::Unavailable {
            reason: err.to_string(),
        }
    }
}

impl From<reqwest::Error> for ComfyError {
    fn from(err: reqwest::Error) -> Self {
        if err.is_connect() || err.is_timeout() || err.is_request() {
            ComfyError::unavailable(err)
        } else {
            ComfyError::BadResponse(err.to_string())
        }
    }
}
