//! What a reply's size costs by itself: a server that answers with a ready buffer of any
//! length, so the benchmark can set the bridge's overhead beside the time it takes to move a
//! reply that large from one process to another over HTTP at all. A direct ComfyUI client
//! never makes that second hop, so at large sizes it is most of what the bridge adds.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, sync::Mutex};

use anyhow::Context;
use axum::{Router, extract::Path, http::header, response::IntoResponse, routing::get};
use bytes::Bytes;

/// The server, on a thread and runtime of its own, as the bridge is a process of its own.
pub struct Wire {
    url: String,
}

impl Wire {
    pub fn start() -> anyhow::Result<Wire> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr: SocketAddr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the reply server's runtime")?;
        std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let buffers = Arc::new(Mutex::new(HashMap::<usize, Bytes>::new()));
                let app = Router::new().route(
                    "/{len}",
                    get(move |Path(len): Path<usize>| {
                        let body = buffers
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(len)
                            .or_insert_with(|| Bytes::from(vec![b'A'; len]))
                            .clone();
                        async move {
                            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
                        }
                    }),
                );
                let _ = axum::serve(listener, app).await;
            });
        });
        Ok(Wire {
            url: format!("http://{addr}"),
        })
    }

    /// Fetches a reply of `len` bytes, read whole as the benchmark reads the bridge's.
    pub async fn fetch(&self, http: &reqwest::Client, len: usize) -> anyhow::Result<()> {
        let body = http
            .get(format!("{}/{len}", self.url))
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        anyhow::ensure!(
            body.len() == len,
            "the reply server sent {} bytes",
            body.len()
        );
        Ok(())
    }
}
