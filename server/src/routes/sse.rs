//! Server-sent events as OpenAI's SDKs parse them: one JSON object per `data:` line, comment
//! keep-alives (never an empty event, which breaks their JSON parsing), errors as an `error`
//! event carrying the usual envelope.

use std::{convert::Infallible, future::Future, time::Duration};

use axum::{
    http::{HeaderValue, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::ApiError;

/// Where a streamed reply's task writes its events.
#[derive(Clone)]
pub struct Events(mpsc::Sender<Event>);

impl Events {
    /// Sends an event; false once the client has gone.
    pub async fn send(&self, event: Event) -> bool {
        self.0.send(event).await.is_ok()
    }

    pub async fn json(&self, name: Option<&str>, value: &impl Serialize) -> bool {
        let data = match serde_json::to_string(value) {
            Ok(data) => data,
            Err(e) => {
                tracing::error!(error = %e, "could not serialise a stream event");
                return false;
            }
        };
        let event = Event::default().data(data);
        self.send(match name {
            Some(name) => event.event(name),
            None => event,
        })
        .await
    }

    pub async fn error(&self, error: &ApiError) -> bool {
        if error.status().is_server_error() {
            tracing::error!(error = ?error, "streamed request failed");
        }
        self.json(Some("error"), &error.envelope()).await
    }

    pub async fn done(&self) -> bool {
        self.send(Event::default().data("[DONE]")).await
    }
}

/// Answers with an event stream fed by `work`. If the client goes away, `work` is dropped
/// wherever it is, which cancels its jobs in ComfyUI.
pub fn stream<F, Fut>(keepalive: Duration, work: F) -> Response
where
    F: FnOnce(Events) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(16);
    let work = work(Events(tx.clone()));
    tokio::spawn(async move {
        tokio::select! {
            () = work => {}
            () = tx.closed() => tracing::info!("the client closed a stream; its jobs are cancelled"),
        }
    });
    let events = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), rx))
    });
    let mut res = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(keepalive).text("ping"))
        .into_response();
    let headers = res.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Reverse proxies (nginx) would otherwise hold events back until the reply ends.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}
