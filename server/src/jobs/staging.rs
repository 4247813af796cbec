//! A request's input files on the ComfyUI servers that run its jobs: uploaded once per server
//! under names no other job uses, and removed when the request is done.

use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::{
    comfy::{ComfyServer, Uploaded},
    error::ApiError,
    validate::{Inputs, Mask},
};

/// What the workflow's loaders should name on one server.
struct Staged {
    server: Arc<ComfyServer>,
    files: Vec<Uploaded>,
    images: Vec<String>,
    mask: Option<String>,
}

/// A request's uploads, by server. Dropping it (request done, failed or abandoned) removes
/// the uploads in the background.
#[derive(Default)]
pub struct Staging {
    servers: Mutex<Vec<(String, Arc<OnceCell<Staged>>)>>,
}

impl Staging {
    /// The names of the inputs on `server`, uploading them first if this is its first job.
    pub async fn on(
        &self,
        server: &Arc<ComfyServer>,
        inputs: &Inputs,
    ) -> Result<(Vec<String>, Option<String>), ApiError> {
        let cell = {
            let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
            match servers.iter().find(|(url, _)| url == server.url()) {
                Some((_, cell)) => cell.clone(),
                None => {
                    let cell = Arc::new(OnceCell::new());
                    servers.push((server.url().to_string(), cell.clone()));
                    cell
                }
            }
        };
        let staged = cell.get_or_try_init(|| stage(server, inputs)).await?;
        Ok((staged.images.clone(), staged.mask.clone()))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let servers = std::mem::take(self.servers.get_mut().unwrap_or_else(|p| p.into_inner()));
        let staged: Vec<Staged> = servers
            .into_iter()
            .filter_map(|(_, cell)| Arc::into_inner(cell)?.into_inner())
            .collect();
        if staged.is_empty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                for s in staged {
                    for file in &s.files {
                        s.server.remove_upload(file).await;
                    }
                }
            });
        }
    }
}

/// Uploads a request's files to one server under names no other job uses.
async fn stage(server: &Arc<ComfyServer>, inputs: &Inputs) -> Result<Staged, ApiError> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut staged = Staged {
        server: server.clone(),
        files: Vec::new(),
        images: Vec::new(),
        mask: None,
    };
    // Uploads made before a failure are still removed: the caller keeps nothing on error, so
    // they are removed here.
    let result = async {
        for (i, image) in inputs.images.iter().enumerate() {
            let name = format!("{id}-{i}.{}", image.extension);
            let up = server.upload_image(&name, image.data.clone()).await?;
            staged.images.push(up.reference.clone());
            staged.files.push(up);
        }
        match &inputs.mask {
            Some(Mask::Alpha(mask)) => {
                let first = staged.files.first().cloned().ok_or_else(|| {
                    ApiError::Internal("a mask for the image alpha needs an image".into())
                })?;
                let name = format!("{id}-0-masked.png");
                let up = server.upload_mask(&name, mask.data.clone(), &first).await?;
                staged.images[0] = up.reference.clone();
                staged.files.push(up);
            }
            Some(Mask::File(mask)) => {
                let name = format!("{id}-mask.{}", mask.extension);
                let up = server.upload_image(&name, mask.data.clone()).await?;
                staged.mask = Some(up.reference.clone());
                staged.files.push(up);
            }
            Some(Mask::FirstImage) => staged.mask = staged.images.first().cloned(),
            None => {}
        }
        Ok::<_, ApiError>(())
    }
    .await;
    match result {
        Ok(()) => Ok(staged),
        Err(e) => {
            for file in &staged.files {
                server.remove_upload(file).await;
            }
            Err(e)
        }
    }
}
