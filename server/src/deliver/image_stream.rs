//! `stream: true` on generations and edits: OpenAI's `*.partial_image` events made from
//! ComfyUI's preview frames, spread over the run, then one `*.completed` event per image.

use app::api::{
    images::{
        ImageEvent, ImagePayload, ImageProgress, ImageUsage, InputTokensDetails, ProgressStatus,
    },
    stream::StreamEvent,
};
use std::{future::Future, sync::Arc};

use axum::response::Response;
use bytes::Bytes;

use super::{
    Carrier, Delivery, now_secs,
    sse::{self, Ending, Events},
};
use crate::{
    comfy::JobUpdate,
    error::ApiError,
    jobs::{Durable, Generated, Jobs, Step},
    ledger::{Once, Recorder},
    tokens,
    validate::{ImageStream, Job},
};

/// Streams a generation or edit: progress (if asked), partial images, then each image. With
/// `once` (an `Idempotency-Key`, or an SDK's attempt), the stream is recorded and run once for
/// every request that sends the key (or retries the attempt), on any bridge of the database:
/// each gets the events so far, then the rest as they come.
pub async fn image_stream(
    delivery: &Delivery,
    jobs: Jobs,
    job: Job,
    options: ImageStream,
    once: Option<Once>,
) -> Result<Response, ApiError> {
    let delivery = delivery.clone();
    let keepalive = delivery.keepalive;
    let Some(once) = once else {
        return sse::respond(keepalive, Ending::Plain, move |events| async move {
            run(&delivery, &jobs, &job, None, options, &events).await
        })
        .await;
    };
    sse::respond(keepalive, Ending::Plain, move |events| async move {
        let job = Arc::new(job);
        let ledger = delivery.ledger.clone();
        let seeds = job.seeds().to_vec();
        let recorded = move |durable: Durable, recorder: Recorder| async move {
            let to = Recording(recorder);
            let result = run(&delivery, &jobs, &job, Some(&durable), options, &to).await;
            to.close(result).await
        };
        ledger.stream_once(&once, &seeds, recorded, &events).await
    })
    .await
}

/// Where a stream's events go: straight to the client, or recorded for every request that
/// follows the job.
trait Sink: Sync {
    /// The job is queued: from here on there is something to stream.
    fn begin(&self) -> impl Future<Output = ()> + Send;
    /// Sends an event about image `index`; `completes` for the one that carries the image.
    /// False once it cannot go anywhere.
    fn send(
        &self,
        index: usize,
        completes: bool,
        event: &StreamEvent,
    ) -> impl Future<Output = bool> + Send;
}

impl Sink for Events {
    async fn begin(&self) {
        Events::begin(self);
    }

    async fn send(&self, _: usize, _: bool, event: &StreamEvent) -> bool {
        Events::send(self, event).await
    }
}

struct Recording(Recorder);

impl Sink for Recording {
    async fn begin(&self) {
        self.0.begin().await;
    }

    async fn send(&self, index: usize, completes: bool, event: &StreamEvent) -> bool {
        match sse::frame(event) {
            Some((name, data)) => self.0.record(name, &data, Some(index), completes).await,
            None => false,
        }
    }
}

impl Recording {
    /// The run's outcome, with its error recorded as the stream's last event once it began,
    /// as a client's own stream would end; a failure to record fails the run.
    async fn close(&self, result: Result<(), ApiError>) -> Result<(), ApiError> {
        let result = match (result, self.0.failure().await) {
            (Ok(()), Some(failure)) => Err(ApiError::Internal(failure)),
            (result, _) => result,
        };
        if let Err(e) = &result
            && self.0.begun().await
        {
            e.log();
            if let Some((name, data)) = sse::frame(&StreamEvent::Error(e.envelope())) {
                self.0.record(name, &data, None, false).await;
            }
        }
        result
    }
}

async fn run(
    delivery: &Delivery,
    jobs: &Jobs,
    job: &Job,
    durable: Option<&Durable>,
    options: ImageStream,
    events: &impl Sink,
) -> Result<(), ApiError> {
    let mut frames = Frames {
        delivery,
        job,
        options,
        text_tokens: None,
    };
    let mut schedule = PartialSchedule::new(job.seeds().len(), options.partials);
    // Each image goes out the moment it is done, so the first of a batch is not held back
    // until the last is made.
    let mut sent = vec![false; job.seeds().len()];
    let mut run = jobs.run_reporting(job, durable);
    let images = loop {
        let (index, update) = match run.next().await {
            Step::Update(index, update) => (index, update),
            Step::Image(index, image) => {
                events.begin().await;
                let event = frames.completed(index, image).await?;
                if !events.send(index, true, &event).await {
                    return Ok(());
                }
                if let Some(sent) = sent.get_mut(index) {
                    *sent = true;
                }
                continue;
            }
            Step::Done(result) => break result?,
        };
        // The job is queued: from here on there is something to stream.
        events.begin().await;
        if options.progress
            && let Some(p) = progress(index, &update)
        {
            let event = StreamEvent::Image(ImageEvent::progress(options.kind, p));
            events.send(index, false, &event).await;
        }
        match update {
            JobUpdate::Progress { value, max, .. } => schedule.progress(index, value, max),
            JobUpdate::Preview { data, whole, .. } => {
                let Some(n) = schedule.take(index, whole) else {
                    continue;
                };
                // A preview that cannot be converted is skipped; the final image matters.
                let Ok(event) = frames.partial(index, n, data).await else {
                    continue;
                };
                events.send(index, false, &event).await;
            }
            _ => {}
        }
    };
    drop(run);

    for (index, image) in images.into_iter().enumerate() {
        if sent.get(index) == Some(&true) {
            continue;
        }
        let event = frames.completed(index, image).await?;
        if !events.send(index, true, &event).await {
            break;
        }
    }
    Ok(())
}

/// Turns images into the stream's events.
struct Frames<'a> {
    delivery: &'a Delivery,
    job: &'a Job,
    options: ImageStream,
    /// The prompt's tokens, counted for the first completed event.
    text_tokens: Option<u64>,
}

impl Frames<'_> {
    fn payload(&self, index: usize, b64_json: String) -> ImagePayload {
        let output = self.job.output();
        ImagePayload {
            b64_json,
            created_at: now_secs(),
            size: self.job.size(),
            quality: output.quality.clone(),
            background: "opaque".into(),
            output_format: output.format,
            partial_image_index: None,
            usage: None,
            // OpenAI's events say nothing of which image they belong to; with
            // `stream_progress` the bridge adds it, so a client with n > 1 can place them.
            image_index: self.options.progress.then_some(index as u32),
            seed: None,
        }
    }

    async fn partial(&self, index: usize, n: u32, data: Bytes) -> Result<StreamEvent, ApiError> {
        let b64 = self
            .delivery
            .carry(self.job.output(), data, Carrier::Base64)
            .await?;
        let partial = ImagePayload {
            partial_image_index: Some(n),
            ..self.payload(index, b64)
        };
        Ok(StreamEvent::Image(ImageEvent::partial(
            self.options.kind,
            partial,
        )))
    }

    async fn completed(&mut self, index: usize, image: Generated) -> Result<StreamEvent, ApiError> {
        let text_tokens = match self.text_tokens {
            Some(n) => n,
            None => *self
                .text_tokens
                .insert(tokens::count(self.job.prompt().to_string()).await?),
        };
        let b64 = self
            .delivery
            .carry(self.job.output(), image.data, Carrier::Base64)
            .await?;
        let completed = ImagePayload {
            usage: Some(ImageUsage {
                total_tokens: text_tokens,
                input_tokens: text_tokens,
                output_tokens: 0,
                input_tokens_details: InputTokensDetails {
                    text_tokens,
                    image_tokens: 0,
                },
            }),
            seed: self.options.progress.then_some(image.seed),
            ..self.payload(index, b64)
        };
        Ok(StreamEvent::Image(ImageEvent::completed(
            self.options.kind,
            completed,
        )))
    }
}

fn progress(index: usize, update: &JobUpdate) -> Option<ImageProgress> {
    let (status, queue_position, step, steps) = match update {
        JobUpdate::Queued { ahead } => {
            (ProgressStatus::Queued, ahead.map(|a| a as u32), None, None)
        }
        JobUpdate::Started => (ProgressStatus::Running, None, None, None),
        JobUpdate::Progress { value, max, .. } => {
            (ProgressStatus::Sampling, None, Some(*value), Some(*max))
        }
        JobUpdate::Node { .. } | JobUpdate::Preview { .. } => return None,
    };
    Some(ImageProgress {
        created_at: now_secs(),
        image_index: index as u32,
        status,
        queue_position,
        step,
        steps,
    })
}

/// Which preview frames become partial images: with `n` wanted, the first frames past 1/(n+1),
/// 2/(n+1), … of the sampler's run, so they show the image forming rather than n frames of
/// noise from its first steps.
struct PartialSchedule {
    wanted: u8,
    sent: Vec<u8>,
    done: Vec<f64>,
}

impl PartialSchedule {
    fn new(images: usize, wanted: u8) -> Self {
        PartialSchedule {
            wanted,
            sent: vec![0; images],
            done: vec![0.0; images],
        }
    }

    fn progress(&mut self, index: usize, value: u64, max: u64) {
        // A bar of one (a node that saves or shows an image, not a sampler) says nothing of how
        // far the run is, and must not make a sampler's progress look undone.
        if let Some(done) = self.done.get_mut(index)
            && max > 1
        {
            *done = value as f64 / max as f64;
        }
    }

    /// The partial index for a preview that arrived now, if it is one to send. A `whole`
    /// image (one a node sent, not a sampler's preview) is sent whatever the progress says:
    /// such nodes report no useful progress, and their frames are few.
    fn take(&mut self, index: usize, whole: bool) -> Option<u32> {
        let sent = self.sent.get_mut(index)?;
        let due = f64::from(*sent + 1) / f64::from(self.wanted + 1);
        if *sent >= self.wanted || (!whole && self.done[index] < due) {
            return None;
        }
        *sent += 1;
        Some(u32::from(*sent - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent_at(wanted: u8, steps: u64) -> Vec<u64> {
        let mut s = PartialSchedule::new(1, wanted);
        let mut at = Vec::new();
        for step in 1..=steps {
            s.progress(0, step, steps);
            if s.take(0, false).is_some() {
                at.push(step);
            }
        }
        at
    }

    #[test]
    fn partials_are_spread_over_the_run() {
        assert_eq!(sent_at(0, 20), Vec::<u64>::new());
        assert_eq!(sent_at(1, 20), vec![10]);
        assert_eq!(sent_at(2, 9), vec![3, 6]);
        assert_eq!(sent_at(3, 20), vec![5, 10, 15]);
        // Fewer steps than partials: one per step at most.
        assert_eq!(sent_at(3, 2), vec![1, 2]);
    }

    #[test]
    fn each_image_has_its_own_partials() {
        let mut s = PartialSchedule::new(2, 1);
        s.progress(1, 5, 10);
        assert_eq!(s.take(0, false), None);
        assert_eq!(s.take(1, false), Some(0));
        assert_eq!(s.take(1, false), None);
        s.progress(0, 10, 10);
        assert_eq!(s.take(0, false), Some(0));
    }

    #[test]
    fn whole_images_are_sent_whatever_the_progress() {
        let mut s = PartialSchedule::new(1, 2);
        // What a node saving over the socket reports before its frame: 0 of 1.
        s.progress(0, 0, 1);
        assert_eq!(s.take(0, true), Some(0));
        assert_eq!(s.take(0, true), Some(1));
        assert_eq!(s.take(0, true), None, "no more than asked");
    }

    #[test]
    fn a_bar_of_one_does_not_undo_the_samplers_progress() {
        let mut s = PartialSchedule::new(1, 1);
        s.progress(0, 8, 10);
        s.progress(0, 0, 1);
        assert_eq!(s.take(0, false), Some(0));
    }
}
