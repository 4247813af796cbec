//! Running a request's images on ComfyUI: admission against global limits, one prompt per
//! image with its own seed, several at once per request, results in request order. Finished
//! images are announced on a channel (the gallery listens); nothing is stored from here.

mod limits;
mod staging;

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use tokio::sync::mpsc;

pub use limits::Limits;
use staging::Staging;

use crate::{
    comfy::{ComfyError, ComfyPool, ComfyServer, JobUpdate, Prompt},
    config::{Config, ImageMetadata},
    error::ApiError,
    metadata, routing,
    templates::RenderParams,
    validate::Job,
};

/// Progress of a request's jobs, each report tagged with the index of its image.
type Updates = mpsc::UnboundedSender<(usize, Report)>;

/// What a reporting run tells of one image as it goes.
enum Report {
    Update(JobUpdate),
    /// The image is done; the others may still be running.
    Made(Generated),
}

/// One finished image, as the workflow's output node wrote it.
#[derive(Debug, Clone)]
pub struct Generated {
    pub data: Bytes,
    pub seed: u64,
}

/// What one request made, as its listeners hear of it.
#[derive(Debug, Clone)]
pub struct Finished {
    pub model: String,
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub steps: Option<u32>,
    pub cfg: Option<f64>,
    /// Whether the request asked for its images to be kept (the gallery's decision, made when
    /// the request was checked).
    pub keep: bool,
    pub images: Vec<Generated>,
    pub took: Duration,
}

/// A job recorded in the database, which a bridge may take over from another that died: its
/// prompts get ids derived from the job's, so the new bridge finds those already submitted,
/// and its seeds are those first chosen, so any image made again is the same.
#[derive(Debug, Clone)]
pub struct Durable {
    pub id: String,
    /// Whether another bridge ran this job before.
    pub resume: bool,
    pub seeds: Vec<u64>,
}

/// The ComfyUI servers and the limits jobs run under.
#[derive(Clone)]
pub struct Jobs(Arc<Inner>);

struct Inner {
    pool: ComfyPool,
    limits: Limits,
    timeout: Duration,
    metadata_mode: ImageMetadata,
    /// True when the pool points at the built-in simulator.
    demo: bool,
    finished: Option<mpsc::UnboundedSender<Finished>>,
}

impl Jobs {
    pub fn new(
        config: &Config,
        pool: ComfyPool,
        demo: bool,
        finished: Option<mpsc::UnboundedSender<Finished>>,
    ) -> Jobs {
        Jobs(Arc::new(Inner {
            pool,
            limits: Limits::new(
                config.max_concurrent_jobs,
                config.max_queued_jobs,
                config.per_request_concurrency,
            ),
            timeout: config.generation_timeout(),
            metadata_mode: config.image_metadata,
            demo,
            finished,
        }))
    }

    pub fn pool(&self) -> &ComfyPool {
        &self.0.pool
    }

    pub fn demo(&self) -> bool {
        self.0.demo
    }

    /// Generates one image per seed of `job`. The first failure fails the request, and
    /// dropping the future cancels the jobs in ComfyUI. Input files are uploaded once to each
    /// server that runs one of the jobs, and removed again afterwards where the server allows.
    pub async fn run(&self, job: &Job) -> Result<Vec<Generated>, ApiError> {
        self.run_all(job, None, None).await
    }

    /// As [`Jobs::run`], for a job recorded in the database.
    pub async fn run_durable(
        &self,
        job: &Job,
        durable: &Durable,
    ) -> Result<Vec<Generated>, ApiError> {
        self.run_all(job, Some(durable), None).await
    }

    /// As [`Jobs::run`], telling each job's progress as it happens: call [`Reporting::next`]
    /// until it returns [`Step::Done`].
    /// With `durable`, for a job recorded in the database, as [`Jobs::run_durable`].
    pub fn run_reporting<'a>(
        &'a self,
        job: &'a Job,
        durable: Option<&'a Durable>,
    ) -> Reporting<'a> {
        let (tx, rx) = mpsc::unbounded_channel();
        Reporting {
            generation: Box::pin(self.run_all(job, durable, Some(tx))),
            updates: rx,
            result: None,
        }
    }

    async fn run_all(
        &self,
        job: &Job,
        durable: Option<&Durable>,
        updates: Option<Updates>,
    ) -> Result<Vec<Generated>, ApiError> {
        let Inner {
            pool,
            limits,
            timeout,
            metadata_mode,
            ..
        } = &*self.0;
        let updates = updates.as_ref();
        let started = std::time::Instant::now();
        let template = job.template();
        let _admission = limits.admit(job.seeds().len())?;
        let staging = Staging::default();
        let staging = &staging;
        let seeds = durable
            .map(|d| d.seeds.as_slice())
            .filter(|seeds| seeds.len() == job.seeds().len())
            .unwrap_or(job.seeds());
        let images = stream::iter(seeds.iter().copied().enumerate())
            .map(|(index, seed)| async move {
                let _permit = match limits.try_run() {
                    Some(permit) => permit,
                    None => {
                        // Waiting in the bridge's own queue is queueing too.
                        if let Some(out) = updates {
                            let update = JobUpdate::Queued { ahead: None };
                            let _ = out.send((index, Report::Update(update)));
                        }
                        limits.run().await?
                    }
                };
                let deadline = Instant::now() + *timeout;
                let params = RenderParams {
                    seed,
                    ..job.params().clone()
                };
                // A server that could not be reached never had the job: it goes to the next.
                // One that had it and went away or lost it: it runs once more elsewhere, with
                // the same seed, so the image is the same.
                let prompt = || match durable {
                    Some(d) => Prompt::named(format!("{}/{index}", d.id).as_bytes(), d.resume),
                    None => Prompt::fresh(),
                };
                // Taken over from a bridge that died: its prompt may be on any server.
                let holder = match durable {
                    Some(d) if d.resume => pool.holder(&prompt().id).await,
                    _ => None,
                };
                let mut avoid: Vec<Arc<ComfyServer>> = Vec::new();
                let mut rerun = false;
                let mut last_error = None;
                loop {
                    let Some(slot) = routing::choose(pool, template, &avoid, holder.as_ref()).await? else {
                        return Err(last_error.unwrap_or_else(|| {
                            ApiError::Internal("no server was tried".into())
                        }));
                    };
                    let left = deadline.saturating_duration_since(Instant::now());
                    let attempt = Attempt {
                        job,
                        prompt: prompt(),
                        params: params.clone(),
                        index,
                        updates,
                        staging,
                        timeout: left,
                        metadata_mode: *metadata_mode,
                    };
                    match attempt.run(&slot).await {
                        Ok(data) => {
                            slot.record_job_done();
                            let image = Generated { data, seed };
                            if let Some(out) = updates {
                                let _ = out.send((index, Report::Made(image.clone())));
                            }
                            return Ok::<_, ApiError>(image);
                        }
                        Err(ApiError::Comfy(e))
                            if e.server_failed() && !(e.had_the_job() && rerun) =>
                        {
                            slot.mark_failed();
                            slot.record_failover();
                            rerun |= e.had_the_job();
                            tracing::warn!(
                                server = %slot.url(), error = %e, index, "the job goes to another server"
                            );
                            avoid.push(slot.server().clone());
                            last_error = Some(ApiError::Comfy(e));
                        }
                        Err(e) => return Err(e),
                    }
                }
            })
            .buffered(limits.per_request())
            .try_collect::<Vec<Generated>>()
            .await?;
        self.announce(job, &images, started.elapsed());
        Ok(images)
    }

    fn announce(&self, job: &Job, images: &[Generated], took: Duration) {
        let Some(finished) = &self.0.finished else {
            return;
        };
        let params = job.params();
        let _ = finished.send(Finished {
            model: job.model().to_string(),
            prompt: params.prompt.clone(),
            negative_prompt: params.negative_prompt.clone(),
            steps: params.steps,
            cfg: params.cfg,
            keep: job.keep(),
            images: images.to_vec(),
            took,
        });
    }
}

/// One try of one image on one server.
struct Attempt<'a> {
    job: &'a Job,
    prompt: Prompt,
    params: RenderParams,
    index: usize,
    updates: Option<&'a Updates>,
    staging: &'a Staging,
    timeout: Duration,
    metadata_mode: ImageMetadata,
}

impl Attempt<'_> {
    async fn run(self, server: &Arc<ComfyServer>) -> Result<Bytes, ApiError> {
        let Attempt {
            job,
            prompt,
            mut params,
            index,
            updates,
            staging,
            timeout,
            metadata_mode,
        } = self;
        if timeout.is_zero() {
            return Err(ComfyError::Timeout(timeout).into());
        }
        if !job.inputs().is_empty() {
            (params.images, params.mask) = staging.on(server, job.inputs()).await?;
        }
        let template = job.template();
        let graph = template.render(&params);
        let outputs = template.output_nodes();
        let images = match updates {
            None => server.run(prompt, &graph, outputs, None, timeout).await?,
            Some(out) => {
                let (tx, mut rx) = mpsc::unbounded_channel();
                let forward = async {
                    while let Some(update) = rx.recv().await {
                        let _ = out.send((index, Report::Update(update)));
                    }
                };
                let (images, ()) = tokio::join!(
                    server.run(prompt, &graph, outputs, Some(tx), timeout),
                    forward
                );
                images?
            }
        };
        let first = images.into_iter().next().ok_or(ComfyError::NoOutput)?;
        let made = template.applied(&graph, &params);
        Ok(metadata::stamp(first.data, &made, metadata_mode))
    }
}

pub struct Reporting<'a> {
    generation: Pin<Box<dyn Future<Output = Result<Vec<Generated>, ApiError>> + Send + 'a>>,
    updates: mpsc::UnboundedReceiver<(usize, Report)>,
    /// The result, held back while updates sent before it are still to be read.
    result: Option<Result<Vec<Generated>, ApiError>>,
}

pub enum Step {
    /// An update of the job making image `index`.
    Update(usize, JobUpdate),
    /// Image `index` is done, while others of the request may still run. Every image is told
    /// of this way before [`Step::Done`], which holds them all again, in request order.
    Image(usize, Generated),
    Done(Result<Vec<Generated>, ApiError>),
}

impl Reporting<'_> {
    /// The next update, or the result. Updates that arrived before the result come first.
    pub async fn next(&mut self) -> Step {
        let step = |(index, report)| match report {
            Report::Update(update) => Step::Update(index, update),
            Report::Made(image) => Step::Image(index, image),
        };
        if self.result.is_none() {
            // One poll of the generation may both send updates and finish it.
            tokio::select! {
                biased;
                Some(sent) = self.updates.recv() => return step(sent),
                result = &mut self.generation => self.result = Some(result),
            }
        }
        match (self.updates.try_recv(), self.result.take()) {
            (Ok(sent), result) => {
                self.result = result;
                step(sent)
            }
            (Err(_), Some(result)) => Step::Done(result),
            (Err(_), None) => Step::Done(Err(ApiError::Internal(
                "a generation was asked for its result twice".into(),
            ))),
        }
    }
}
