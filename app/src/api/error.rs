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
