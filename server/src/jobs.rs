//! Running the images of one request on ComfyUI: admission against global limits, one prompt
//! per image with its own seed, several at once per request, results in request order.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use tokio::sync::{OnceCell, Semaphore, mpsc};

use crate::{
    comfy::{ComfyError, ComfyServer, JobUpdate, Uploaded},
    error::ApiError,
    gallery::{Gallery, NewImage},
    state::Bridge,
    templates::RenderParams,
    validate::Generation,
};

/// Progress of a request's jobs, each update tagged with the index of its image.
type Updates = mpsc::UnboundedSender<(usize, JobUpdate)>;

pub struct Limits {
    running: Arc<Semaphore>,
    admitted: AtomicUsize,
    max_admitted: usize,
    per_request: usize,
}

impl Limits {
    pub fn new(max_concurrent: usize, max_queued: usize, per_request: usize) -> Self {
        let max_concurrent = max_concurrent.max(1);
        Limits {
            running: Arc::new(Semaphore::new(max_concurrent)),
            admitted: AtomicUsize::new(0),
            max_admitted: max_concurrent + max_queued,
            per_request: per_request.max(1),
        }
    }

    /// Reserves room for `n` jobs or refuses at once: a client told 429 with Retry-After can
    /// come back, while one left waiting behind an unbounded queue just times out.
    fn admit(&self, n: usize) -> Result<Admission<'_>, ApiError> {
        let mut current = self.admitted.load(Ordering::Relaxed);
        loop {
            if current + n > self.max_admitted {
                return Err(ApiError::Overloaded);
            }
            match self.admitted.compare_exchange_weak(
                current,
                current + n,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(Admission { limits: self, n }),
                Err(actual) => current = actual,
            }
        }
    }
}

struct Admission<'a> {
    limits: &'a Limits,
    n: usize,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.limits.admitted.fetch_sub(self.n, Ordering::AcqRel);
    }
}

/// One finished image, as the workflow's output node wrote it.
pub struct Generated {
    pub data: Bytes,
    pub seed: u64,
}

/// Generates one image per seed of `job`. The first failure fails the request, and dropping
/// the future cancels the jobs in ComfyUI. Input files are uploaded once to each server that
/// runs one of the jobs, and removed again afterwards where the server allows it.
pub async fn generate(
    bridge: &Bridge,
    job: &Generation,
    inputs: &Inputs,
) -> Result<Vec<Generated>, ApiError> {
    run_all(bridge, job, inputs, None).await
}

/// As [`generate`], telling each job's progress as it happens: call [`Reporting::next`] until
/// it returns [`Step::Done`].
pub fn generate_reporting<'a>(
    bridge: &'a Bridge,
    job: &'a Generation,
    inputs: &'a Inputs,
) -> Reporting<'a> {
    let (tx, rx) = mpsc::unbounded_channel();
    Reporting {
        generation: Box::pin(run_all(bridge, job, inputs, Some(tx))),
        updates: rx,
    }
}

pub struct Reporting<'a> {
    generation: Pin<Box<dyn Future<Output = Result<Vec<Generated>, ApiError>> + Send + 'a>>,
    updates: mpsc::UnboundedReceiver<(usize, JobUpdate)>,
}

pub enum Step {
    /// An update of the job making image `index`.
    Update(usize, JobUpdate),
    Done(Result<Vec<Generated>, ApiError>),
}

impl Reporting<'_> {
    /// The next update, or the result. Updates that arrived before the result come first.
    pub async fn next(&mut self) -> Step {
        tokio::select! {
            biased;
            Some((index, update)) = self.updates.recv() => Step::Update(index, update),
            result = &mut self.generation => Step::Done(result),
        }
    }
}

async fn run_all(
    bridge: &Bridge,
    job: &Generation,
    inputs: &Inputs,
    updates: Option<Updates>,
) -> Result<Vec<Generated>, ApiError> {
    let (pool, limits) = (&bridge.pool, &bridge.limits);
    let updates = updates.as_ref();
    let started = std::time::Instant::now();
    let timeout = bridge.config.generation_timeout();
    let (template, params) = (&job.template, &job.params);
    let _admission = limits.admit(job.seeds.len())?;
    let staging = Staging::default();
    let staging = &staging;
    let images = stream::iter(job.seeds.iter().copied().enumerate())
        .map(|(index, seed)| async move {
            let _permit = limits
                .running
                .acquire()
                .await
                .map_err(|_| ApiError::Internal("the job limiter is closed".into()))?;
            let server = pool.pick().ok_or_else(|| {
                ApiError::Comfy(ComfyError::unavailable("no ComfyUI server is configured"))
            })?;
            let mut params = RenderParams {
                seed,
                ..params.clone()
            };
            if !inputs.is_empty() {
                (params.images, params.mask) = staging.on(&server, inputs).await?;
            }
            let graph = template.render(&params);
            let outputs = template.output_nodes();
            let images = match updates {
                None => server.run(&graph, outputs, None, timeout).await?,
                Some(out) => {
                    let (tx, mut rx) = mpsc::unbounded_channel();
                    let forward = async {
                        while let Some(update) = rx.recv().await {
                            let _ = out.send((index, update));
                        }
                    };
                    let (images, ()) =
                        tokio::join!(server.run(&graph, outputs, Some(tx), timeout), forward);
                    images?
                }
            };
            let first = images.into_iter().next().ok_or(ComfyError::NoOutput)?;
            Ok::<_, ApiError>(Generated {
                data: first.data,
                seed,
            })
        })
        .buffered(limits.per_request)
        .try_collect::<Vec<Generated>>()
        .await?;
    if job.keep
        && let Some(gallery) = &bridge.gallery
    {
        keep(gallery, job, &images, started.elapsed());
    }
    Ok(images)
}

/// Adds finished images to the gallery in the background: the client does not wait for it.
fn keep(gallery: &Gallery, job: &Generation, images: &[Generated], took: std::time::Duration) {
    let created_at = crate::gallery::now_ms();
    let new: Vec<NewImage> = images
        .iter()
        .map(|image| NewImage {
            data: image.data.clone(),
            prompt: job.params.prompt.clone(),
            negative_prompt: job.params.negative_prompt.clone(),
            model: job.template.id.clone(),
            seed: image.seed,
            steps: job.params.steps,
            cfg: job.params.cfg,
            duration: took,
            created_at,
        })
        .collect();
    // One task per image: each writes its file at once and lets go of the bytes.
    for image in new {
        let gallery = gallery.clone();
        tokio::spawn(async move {
            if let Err(e) = gallery.add(image).await {
                tracing::warn!(error = %e, "could not keep an image in the gallery");
            }
        });
    }
}

/// The files one request's jobs read.
#[derive(Debug, Default)]
pub struct Inputs {
    /// One per image slot, in slot order.
    pub images: Vec<InputFile>,
    pub mask: Option<Mask>,
}

#[derive(Debug, Clone)]
pub struct InputFile {
    pub data: Bytes,
    /// The file name extension matching the bytes (`png`, `jpeg`, `webp`).
    pub extension: &'static str,
}

#[derive(Debug)]
pub enum Mask {
    /// Merged into the first image's alpha channel by ComfyUI (`/upload/mask`): the workflow
    /// reads the mask from the same LoadImage as the pixels.
    Alpha(InputFile),
    /// A file of its own for the workflow's mask loader.
    File(InputFile),
    /// The mask loader reads the first image's own transparency.
    FirstImage,
}

impl Inputs {
    pub fn is_empty(&self) -> bool {
        self.images.is_empty() && self.mask.is_none()
    }
}

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
struct Staging {
    servers: Mutex<Vec<(String, Arc<OnceCell<Staged>>)>>,
}

impl Staging {
    /// The names of the inputs on `server`, uploading them first if this is its first job.
    async fn on(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_is_bounded_and_released() {
        let limits = Limits::new(2, 1, 4);
        let a = limits.admit(2).unwrap();
        assert!(matches!(limits.admit(2), Err(ApiError::Overloaded)));
        let b = limits.admit(1).unwrap();
        drop(a);
        drop(b);
        assert!(limits.admit(3).is_ok());
    }
}
