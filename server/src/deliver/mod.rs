//! Getting finished images to the client: each one transcoded to the asked format, then inline
//! as base64 (streamed into the body), as a `data:` URL, or stored and linked; and the two
//! kinds of event stream, image events and chat chunks.

mod b64_body;
mod chat;
mod encode;
mod image_stream;
mod progress;
mod sse;

use std::{sync::Arc, time::Duration};

use app::api::images::{ImageData, ImagesResponse, ResponseFormat};
use axum::{
    Json,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;

use crate::{
    config::{ChatImages, Config},
    error::ApiError,
    jobs::{Generated, Jobs},
    ledger::{Later, Ledger, Once, ToKeep},
    storage::ImageStore,
    validate::{ChatRequest, ImageRequest, Job, Output},
};

/// Where and how replies carry images.
#[derive(Clone)]
pub struct Delivery {
    store: ImageStore,
    /// Jobs with an `Idempotency-Key`, which clients may come back to.
    ledger: Ledger,
    keepalive: Duration,
    chat_images: ChatImages,
}

/// How one finished image reaches the client.
enum Carrier<'a> {
    Base64,
    /// Base64 behind a `data:` prefix, ready for markdown or an `<img>`.
    DataUrl,
    /// Stored, and linked under this base URL.
    Url(&'a str),
}

impl Delivery {
    pub fn new(config: &Config, store: ImageStore, ledger: Ledger) -> Delivery {
        Delivery {
            store,
            ledger,
            keepalive: config.sse_keepalive(),
            chat_images: config.chat_images,
        }
    }

    /// Runs an image request's job and answers with its images: one `ImagesResponse`, or a
    /// stream of image events. With `once` (an `Idempotency-Key`, or an SDK's attempt), the
    /// job is run once for every request that sends the key (or retries the attempt), on any
    /// bridge of the database; a stream re-attached so gets the events so far, then the rest.
    pub async fn images(
        &self,
        jobs: &Jobs,
        headers: &HeaderMap,
        request: ImageRequest,
        once: Option<Once>,
        later: Option<(Later, ToKeep)>,
    ) -> Result<Response, ApiError> {
        if let Some((later, kept)) = later {
            return self.submit(jobs, headers, request, once, later, kept).await;
        }
        match (request.stream, once) {
            (Some(options), once) => {
                image_stream::image_stream(self, jobs.clone(), request.job, options, once).await
            }
            (None, None) => {
                let images = jobs.run(&request.job).await?;
                self.images_response(headers, &request.job, images).await
            }
            (None, Some(once)) => {
                let job = Arc::new(request.job);
                let run = |durable| {
                    let (jobs, job) = (jobs.clone(), job.clone());
                    async move { jobs.run_durable(&job, &durable).await }
                };
                let images = self.ledger.run_once(&once, job.seeds(), run).await?;
                self.images_response(headers, &job, images).await
            }
        }
    }

    /// Whether a request asks to be an async job (see [`Ledger::later`]).
    pub fn later(
        &self,
        headers: &HeaderMap,
        webhook_url: Option<String>,
    ) -> Result<Option<Later>, ApiError> {
        self.ledger.later(headers, webhook_url)
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Accepts an image request as an async job: 202 with the job, whose outcome is read at
    /// `/v1/jobs/{id}` (and delivered to its webhook).
    async fn submit(
        &self,
        jobs: &Jobs,
        headers: &HeaderMap,
        request: ImageRequest,
        once: Option<Once>,
        later: Later,
        ToKeep { kept, files }: ToKeep,
    ) -> Result<Response, ApiError> {
        if request.stream.is_some() {
            return Err(ApiError::invalid(
                "stream",
                "An async job (Prefer: respond-async, or a webhook_url) cannot also stream; \
                 read its progress at /v1/jobs/{id} instead.",
            ));
        }
        let job = Arc::new(request.job);
        let base = self.store.base(headers);
        let run = {
            let (jobs, job, delivery) = (jobs.clone(), job.clone(), self.clone());
            move |durable| async move {
                let images = jobs.run_durable(&job, &durable).await?;
                delivery.images_document(&base, &job, images).await
            }
        };
        let kept = serde_json::to_string(&kept)
            .map_err(|e| ApiError::Internal(format!("serializing a request: {e}")))?;
        let accepted = self
            .ledger
            .submit(later, once.as_ref(), job.seeds(), (kept, files), run)
            .await?;
        let location = format!("/v1/jobs/{}", accepted.id);
        Ok((
            StatusCode::ACCEPTED,
            [(header::LOCATION, location)],
            Json(accepted),
        )
            .into_response())
    }

    /// Runs a chat request's job and answers with the assistant's reply, whole or streamed.
    pub async fn chat(
        &self,
        jobs: &Jobs,
        headers: &HeaderMap,
        request: ChatRequest,
    ) -> Result<Response, ApiError> {
        match request.stream {
            Some(_) => chat::chat_stream(self, jobs.clone(), headers, request).await,
            None => chat::chat_reply(self, jobs, headers, request).await,
        }
    }

    /// The `ImagesResponse` for finished images: inline as base64 (streamed into the body)
    /// or stored and linked.
    async fn images_response(
        &self,
        headers: &HeaderMap,
        job: &Job,
        images: Vec<Generated>,
    ) -> Result<Response, ApiError> {
        let (reply, inline) = self.reply(&self.store.base(headers), job, images).await?;
        if inline.is_empty() {
            Ok(Json(reply).into_response())
        } else {
            b64_body::response(reply, inline)
        }
    }

    /// The same reply as one JSON document, kept for an async job until it is read.
    pub(crate) async fn images_document(
        &self,
        base: &str,
        job: &Job,
        images: Vec<Generated>,
    ) -> Result<Bytes, ApiError> {
        let (mut reply, inline) = self.reply(base, job, images).await?;
        for (item, image) in reply.data.iter_mut().zip(inline) {
            item.b64_json = Some(b64_body::encode(&image));
        }
        serde_json::to_vec(&reply)
            .map(Bytes::from)
            .map_err(|e| ApiError::Internal(format!("could not serialise a reply: {e}")))
    }

    /// The reply's items, with URLs of stored images under `base` where the client asked for
    /// URLs, and the images to inline otherwise, in order.
    async fn reply(
        &self,
        base: &str,
        job: &Job,
        images: Vec<Generated>,
    ) -> Result<(ImagesResponse, Vec<Bytes>), ApiError> {
        let output = job.output();
        let linked = output.response_format == ResponseFormat::Url;
        let revised_prompt = Some(job.prompt().to_string()).filter(|p| !p.is_empty());
        let mut data = Vec::with_capacity(images.len());
        let mut inline = Vec::new();
        for image in images {
            let mut item = ImageData {
                revised_prompt: revised_prompt.clone(),
                seed: Some(image.seed),
                ..ImageData::default()
            };
            if linked {
                item.url = Some(self.carry(output, image.data, Carrier::Url(base)).await?)
            } else {
                inline.push(encode::transcode(image.data, output).await?)
            }
            data.push(item);
        }
        let reply = ImagesResponse {
            created: now_secs(),
            data,
            background: Some("opaque".into()),
            output_format: Some(output.format),
            quality: Some(output.quality.clone()),
            size: Some(job.size()),
        };
        Ok((reply, inline))
    }

    /// One finished image in the asked format, as the text that carries it to the client.
    async fn carry(
        &self,
        output: &Output,
        image: Bytes,
        how: Carrier<'_>,
    ) -> Result<String, ApiError> {
        let bytes = encode::transcode(image, output).await?;
        Ok(match how {
            Carrier::Base64 => b64_body::encode(&bytes),
            Carrier::DataUrl => {
                let mime = output.format.mime();
                let mut out = String::with_capacity(bytes.len() * 4 / 3 + mime.len() + 16);
                out.push_str("data:");
                out.push_str(mime);
                out.push_str(";base64,");
                b64_body::encode_into(&bytes, &mut out);
                out
            }
            Carrier::Url(base) => {
                let name = self
                    .store
                    .put(&bytes, output.format)
                    .await
                    .map_err(ApiError::storage)?;
                ImageStore::link(base, &name)
            }
        })
    }
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
