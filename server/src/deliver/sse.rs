//! Server-sent events as OpenAI's SDKs parse them: one JSON object per `data:` line, comment
//! keep-alives (never an empty event, which breaks their JSON parsing), errors as an `error`
//! event carrying the usual envelope.
//!
//! A stream begins only once there is something to stream: the work runs first, and the
//! response (status 200 and the event stream) is sent when it calls [`Events::begin`] or sends
//! its first event. An error before that (ComfyUI unreachable, the queue full) is a plain HTTP
//! error with its status and `Retry-After`, which the SDKs retry; after it, an `error` event.

use std::{
    convert::Infallible,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use app::api::stream::{DONE, StreamEvent};
use axum::{
    http::{HeaderValue, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use tokio::sync::{mpsc, oneshot};

use crate::{error::ApiError, ledger::Listener};

/// How a stream ends: image streams just end; chat streams end with `data: [DONE]`, after
/// an error too.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Plain,
    Done,
}

/// Where a streamed reply's work writes its events.
#[derive(Clone)]
pub struct Events {
    tx: mpsc::Sender<Event>,
    start: Arc<Mutex<Option<Start>>>,
}

/// Taken once: `Ok` when the stream begins, or the error that ended the work before.
type Start = oneshot::Sender<Result<(), ApiError>>;

impl Events {
    /// Starts the response: from here on, a failure is an event in the stream.
    pub fn begin(&self) {
        // Already begun: nothing to answer.
        let _ = self.start(Ok(()));
    }

    /// Answers the request with `result` if nothing answered it yet; once the stream has
    /// begun, hands `result` back.
    fn start(&self, result: Result<(), ApiError>) -> Result<(), ApiError> {
        match self.start.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(start) => {
                let _ = start.send(result);
                Ok(())
            }
            None => result,
        }
    }

    /// Sends an event (beginning the stream if it has not begun); false once the client has
    /// gone.
    pub async fn send(&self, event: &StreamEvent) -> bool {
        match frame(event) {
            Some((name, data)) => self.send_frame(name, data).await,
            None => false,
        }
    }

    async fn send_frame(&self, name: Option<&str>, data: String) -> bool {
        let mut sse = Event::default().data(data);
        if let Some(name) = name {
            sse = sse.event(name);
        }
        self.begin();
        self.tx.send(sse).await.is_ok()
    }

    async fn done(&self) -> bool {
        self.tx.send(Event::default().data(DONE)).await.is_ok()
    }
}

/// An event as it goes on the wire: its name (if it has one) and its data.
pub fn frame(event: &StreamEvent) -> Option<(Option<&'static str>, String)> {
    match serde_json::to_string(event) {
        Ok(data) => Some((event.name(), data)),
        Err(e) => {
            tracing::error!(error = %e, "could not serialise a stream event");
            None
        }
    }
}

/// A stream re-attached to a recorded job passes its recorded events on as they were.
impl Listener for Events {
    fn begin(&self) {
        Events::begin(self);
    }

    async fn pass(&self, name: Option<&str>, data: String) -> bool {
        self.send_frame(name, data).await
    }
}

/// Runs `work` and answers with the event stream it feeds once it begins, or with its error
/// if it fails before. If the client goes away, `work` is dropped wherever it is, which
/// cancels its jobs in ComfyUI.
pub async fn respond<F, Fut>(
    keepalive: Duration,
    ending: Ending,
    work: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(Events) -> Fut,
    Fut: Future<Output = Result<(), ApiError>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(16);
    let (start_tx, start_rx) = oneshot::channel();
    let events = Events {
        tx: tx.clone(),
        start: Arc::new(Mutex::new(Some(start_tx))),
    };
    let work = work(events.clone());
    tokio::spawn(async move {
        let result = tokio::select! {
            result = work => result,
            () = tx.closed() => {
                tracing::info!("the client closed a stream; its jobs are cancelled");
                return;
            }
        };
        // Before the stream began, the error is the answer; after, it is the last event.
        let failed = result.is_err();
        match events.start(result) {
            Ok(()) if failed => return,
            Ok(()) => {}
            Err(e) => {
                e.log();
                events.send(&StreamEvent::Error(e.envelope())).await;
            }
        }
        if ending == Ending::Done {
            events.done().await;
        }
    });
    start_rx
        .await
        .map_err(|_| ApiError::Internal("a stream's work ended without an answer".into()))??;
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
    Ok(res)
}
