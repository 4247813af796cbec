//! Input files for image-to-image jobs: `/upload/image`, `/upload/mask`, and removal through
//! the asset API where the server has one.

use bytes::Bytes;
use reqwest::multipart::{Form, Part};
use serde::Deserialize;
use serde_json::json;

use super::{ComfyError, ComfyServer};

/// Uploads go to their own subfolder of ComfyUI's input directory, so they are easy to find
/// and clear on servers that cannot delete them.
const SUBFOLDER: &str = "bridge";

/// A file in a ComfyUI server's input directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// The value for a `LoadImage.image` input: `<subfolder>/<name>`.
    pub reference: String,
    name: String,
    subfolder: String,
    /// Present when the server keeps an asset database, which can delete the file again.
    asset_id: Option<String>,
}

#[derive(Deserialize)]
struct UploadReply {
    name: String,
    #[serde(default)]
    subfolder: String,
    #[serde(default)]
    asset: Option<AssetReply>,
}

#[derive(Deserialize)]
struct AssetReply {
    id: String,
}

impl ComfyServer {
    /// Puts an input image under `name`. ComfyUI may answer with another name (on a clash), so
    /// the reply's name is the one to use.
    pub async fn upload_image(&self, name: &str, data: Bytes) -> Result<Uploaded, ComfyError> {
        self.upload("/upload/image", name, data, None).await
    }

    /// Writes a copy of `original` whose alpha channel is the alpha of `mask`, under `name`:
    /// ComfyUI's own way of attaching a painted mask to an image.
    pub async fn upload_mask(
        &self,
        name: &str,
        mask: Bytes,
        original: &Uploaded,
    ) -> Result<Uploaded, ComfyError> {
        let original_ref = json!({
            "filename": original.name,
            "subfolder": original.subfolder,
            "type": "input",
        });
        self.upload("/upload/mask", name, mask, Some(original_ref.to_string()))
            .await
    }

    async fn upload(
        &self,
        path: &str,
        name: &str,
        data: Bytes,
        original_ref: Option<String>,
    ) -> Result<Uploaded, ComfyError> {
        let len = data.len() as u64;
        let part = Part::stream_with_length(data, len)
            .file_name(name.to_string())
            .mime_str(mime_for(name))
            .map_err(|e| ComfyError::BadResponse(e.to_string()))?;
        let mut form = Form::new()
            .part("image", part)
            .text("type", "input")
            .text("subfolder", SUBFOLDER)
            .text("overwrite", "true");
        if let Some(r) = original_ref {
            form = form.text("original_ref", r);
        }
        let res = self
            .http
            .post(self.endpoint(path))
            .multipart(form)
            .send()
            .await?;
        let status = res.status();
        if !status.is_success() {
            tracing::warn!(server = %self.url, %status, path, "upload refused");
            return Err(ComfyError::BadResponse(format!(
                "POST {path} answered HTTP {}",
                status.as_u16()
            )));
        }
        let reply: UploadReply = res
            .json()
            .await
            .map_err(|_| ComfyError::BadResponse(format!("POST {path} returned invalid JSON")))?;
        let reference = if reply.subfolder.is_empty() {
            reply.name.clone()
        } else {
            format!("{}/{}", reply.subfolder, reply.name)
        };
        Ok(Uploaded {
            reference,
            name: reply.name,
            subfolder: reply.subfolder,
            asset_id: reply.asset.map(|a| a.id),
        })
    }

    /// Deletes an upload where the server allows it (newer ComfyUI with its asset database).
    /// Older servers have no way to delete an input file; those stay in the `bridge`
    /// subfolder of ComfyUI's input directory.
    pub async fn remove_upload(&self, upload: &Uploaded) {
        let Some(id) = &upload.asset_id else { return };
        // The id goes into a path; anything but a UUID is not an asset id.
        if uuid::Uuid::parse_str(id).is_err() {
            return;
        }
        let res = self
            .http
            .delete(self.endpoint(&format!("/api/assets/{id}")))
            .query(&[("delete_content", "true")])
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                tracing::debug!(server = %self.url, status = %r.status(), "upload not deleted")
            }
            Err(e) => tracing::debug!(server = %self.url, error = %e, "upload not deleted"),
        }
    }
}

fn mime_for(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("jpeg" | "jpg") => "image/jpeg",
        Some("webp") => "image/webp",
        _ => "image/png",
    }
}
