use serde::{Deserialize, Serialize};

/// OpenAI's error envelope: `{"error":{"message","type","param","code"}}`.
/// `param` and `code` are always present, as `null` when unknown, because the SDKs read them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

impl ErrorEnvelope {
    /// What a person should read of a failed response: the envelope's message, or the status
    /// when the body is not an envelope (a proxy's page, an empty body).
    pub fn message_of(status: u16, body: &str) -> String {
        match serde_json::from_str::<ErrorEnvelope>(body) {
            Ok(env) => env.error.message,
            Err(_) => format!("The server answered {status}."),
        }
    }
}
