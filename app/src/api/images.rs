use serde::{Deserialize, Serialize};

use super::size::Size;

/// The body of the image endpoints as the OpenAI SDKs send it: `POST /v1/images/generations`
/// as JSON, and the text fields of `/v1/images/edits` (multipart or JSON), plus the bridge's
/// extensions (`seed`, `negative_prompt`, `steps`, `cfg`, `strength`). `null` means "not given" for every optional
/// field, because the Python SDK sends explicit `None` as `null`. Unknown fields are ignored:
/// clients send `moderation`, `style` and friends to every model.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ImageGenerationRequest {
    pub prompt: String,
    /// Async jobs: where the outcome is delivered, on a host the bridge allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<OutputFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_compression: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moderation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_images: Option<u8>,
    /// Streams only: also send `*.progress` events (queue position, sampler steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_progress: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cfg: Option<f64>,
    /// One of the model's samplers (`inputs.sampler.options` in `/v1/models`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampler: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    /// Edits: how far the result may move away from the input (0–1, the sampler's denoise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strength: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_fidelity: Option<String>,
    /// JSON edits: one input image as base64 or a `data:` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageInput>,
    /// JSON edits as newer gateways send them: `[{"image_url": "data:…"}]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<ImageInput>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<ImageInput>,
}

/// An image in a JSON body: a base64 string or `data:` URL, or OpenAI's reference object.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ImageInput {
    Data(String),
    Ref(ImageRef),
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ImageRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ResponseFormat {
    #[default]
    B64Json,
    Url,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    #[default]
    Png,
    Jpeg,
    Webp,
}

impl OutputFormat {
    pub fn mime(self) -> &'static str {
        match self {
            OutputFormat::Png => "image/png",
            OutputFormat::Jpeg => "image/jpeg",
            OutputFormat::Webp => "image/webp",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Png => "png",
            OutputFormat::Jpeg => "jpeg",
            OutputFormat::Webp => "webp",
        }
    }
}

/// The reply of the image endpoints. Optional fields are omitted rather than sent as `null`,
/// as OpenAI does, because schema-checked clients reject `null` there.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ImagesResponse {
    pub created: u64,
    pub data: Vec<ImageData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<OutputFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Size>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ImageData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b64_json: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revised_prompt: Option<String>,
    /// The seed this image was made with, so it can be made again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// Which stream an image event belongs to: `/v1/images/generations` (`image_generation.*`)
/// or `/v1/images/edits` (`image_edit.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageStreamKind {
    Generation,
    Edit,
}

/// One event of a streamed generation or edit (`stream: true`), tagged by `type` as OpenAI
/// sends them: `*.partial_image` with a preview, then `*.completed` with the final image and
/// its usage; `*.progress` is the bridge's own, sent only with `stream_progress: true`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type")]
pub enum ImageEvent {
    #[serde(rename = "image_generation.partial_image")]
    GenerationPartial(ImagePayload),
    #[serde(rename = "image_generation.completed")]
    GenerationCompleted(ImagePayload),
    #[serde(rename = "image_generation.progress")]
    GenerationProgress(ImageProgress),
    #[serde(rename = "image_edit.partial_image")]
    EditPartial(ImagePayload),
    #[serde(rename = "image_edit.completed")]
    EditCompleted(ImagePayload),
    #[serde(rename = "image_edit.progress")]
    EditProgress(ImageProgress),
}

impl ImageEvent {
    pub fn partial(kind: ImageStreamKind, payload: ImagePayload) -> ImageEvent {
        match kind {
            ImageStreamKind::Generation => ImageEvent::GenerationPartial(payload),
            ImageStreamKind::Edit => ImageEvent::EditPartial(payload),
        }
    }

    pub fn completed(kind: ImageStreamKind, payload: ImagePayload) -> ImageEvent {
        match kind {
            ImageStreamKind::Generation => ImageEvent::GenerationCompleted(payload),
            ImageStreamKind::Edit => ImageEvent::EditCompleted(payload),
        }
    }

    pub fn progress(kind: ImageStreamKind, progress: ImageProgress) -> ImageEvent {
        match kind {
            ImageStreamKind::Generation => ImageEvent::GenerationProgress(progress),
            ImageStreamKind::Edit => ImageEvent::EditProgress(progress),
        }
    }

    /// The `type`, which is also the event's name on the stream.
    pub fn type_name(&self) -> &'static str {
        match self {
            ImageEvent::GenerationPartial(_) => "image_generation.partial_image",
            ImageEvent::GenerationCompleted(_) => "image_generation.completed",
            ImageEvent::GenerationProgress(_) => "image_generation.progress",
            ImageEvent::EditPartial(_) => "image_edit.partial_image",
            ImageEvent::EditCompleted(_) => "image_edit.completed",
            ImageEvent::EditProgress(_) => "image_edit.progress",
        }
    }
}

/// The image of a `*.partial_image` or `*.completed` event. Every field the SDKs' types
/// require is always present.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ImagePayload {
    pub b64_json: String,
    pub created_at: u64,
    pub size: Size,
    pub quality: String,
    pub background: String,
    pub output_format: OutputFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_image_index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ImageUsage>,
    /// With `stream_progress`: which image of the request this is (0-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_index: Option<u32>,
    /// With `stream_progress`, on `*.completed`: the seed the image was made with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl ImagePayload {
    /// The image as a `data:` URL, for an `<img>`.
    pub fn data_url(&self) -> String {
        format!(
            "data:{};base64,{}",
            self.output_format.mime(),
            self.b64_json
        )
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageUsage {
    pub total_tokens: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub input_tokens_details: InputTokensDetails,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct InputTokensDetails {
    pub text_tokens: u64,
    pub image_tokens: u64,
}

/// Where a job stands, in the bridge's `*.progress` events.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProgressStatus {
    Queued,
    Running,
    Sampling,
}

/// The bridge's own progress event on image streams (OpenAI's SDKs pass it through as an
/// event of an unknown type).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ImageProgress {
    pub created_at: u64,
    /// Which image of the request (0-based).
    pub image_index: u32,
    pub status: ProgressStatus,
    /// Prompts ahead of this one in ComfyUI's queue, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_by_type() {
        let payload = ImagePayload {
            b64_json: "QUJD".into(),
            created_at: 1,
            size: Size::new(64, 64),
            quality: "auto".into(),
            background: "opaque".into(),
            output_format: OutputFormat::Jpeg,
            partial_image_index: Some(0),
            usage: None,
            image_index: None,
            seed: None,
        };
        let event = ImageEvent::partial(ImageStreamKind::Edit, payload.clone());
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "image_edit.partial_image");
        assert_eq!(json["size"], "64x64");
        assert_eq!(json["partial_image_index"], 0);
        assert!(json.get("seed").is_none());
        assert_eq!(event.type_name(), "image_edit.partial_image");
        assert_eq!(serde_json::from_value::<ImageEvent>(json).unwrap(), event);
        assert_eq!(payload.data_url(), "data:image/jpeg;base64,QUJD");

        let progress: ImageEvent = serde_json::from_str(
            r#"{"type":"image_generation.progress","created_at":1,"image_index":1,"status":"queued","queue_position":2}"#,
        )
        .unwrap();
        assert!(matches!(
            progress,
            ImageEvent::GenerationProgress(ImageProgress {
                status: ProgressStatus::Queued,
                queue_position: Some(2),
                ..
            })
        ));
    }
}
