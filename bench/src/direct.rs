//! The baseline: the least a client speaking ComfyUI's own protocol does for one image. POST
//! `/prompt`, wait on the WebSocket for the prompt's end marker (taking the file name from its
//! `executed` message on the way), GET `/view`.

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

use crate::workflow::Workflow;

pub struct Direct {
    http: reqwest::Client,
    base: String,
    client_id: String,
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    workflow: Workflow,
}

impl Direct {
    pub async fn connect(base: &str, workflow: Workflow) -> anyhow::Result<Direct> {
        let client_id = uuid::Uuid::new_v4().to_string();
        let ws_url = format!("{}/ws?clientId={client_id}", base.replacen("http", "ws", 1));
        let (socket, _) = tokio_tungstenite::connect_async(ws_url.as_str())
            .await
            .context("connecting to ComfyUI's WebSocket")?;
        Ok(Direct {
            http: reqwest::Client::new(),
            base: base.to_string(),
            client_id,
            socket,
            workflow,
        })
    }

    /// Makes one image and returns its size in bytes.
    pub async fn generate(&mut self, size: u32) -> anyhow::Result<usize> {
        let prompt_id = uuid::Uuid::new_v4().to_string();
        let graph = self.workflow.render(size, "a benchmark");
        let res = self
            .http
            .post(format!("{}/prompt", self.base))
            .json(&json!({"prompt": graph, "client_id": self.client_id, "prompt_id": prompt_id}))
            .send()
            .await?;
        if !res.status().is_success() {
            bail!(
                "POST /prompt answered {}: {}",
                res.status(),
                res.text().await?
            );
        }
        let mut file: Option<Value> = None;
        loop {
            let message = self.socket.next().await.context("the WebSocket closed")??;
            let Message::Text(text) = message else {
                continue;
            };
            let event: Value = serde_json::from_str(&text)?;
            let data = &event["data"];
            if data["prompt_id"].as_str() != Some(prompt_id.as_str()) {
                continue;
            }
            match event["type"].as_str() {
                Some("executed") => {
                    if let Some(image) = data["output"]["images"].get(0) {
                        file = Some(image.clone());
                    }
                }
                Some("executing") if data["node"].is_null() => break,
                Some("execution_error") => bail!("ComfyUI failed: {data}"),
                _ => {}
            }
        }
        let file = file.context("the prompt finished without an image")?;
        let field = |k: &str| file[k].as_str().unwrap_or("").to_string();
        let image = self
            .http
            .get(format!("{}/view", self.base))
            .query(&[
                ("filename", field("filename")),
                ("subfolder", field("subfolder")),
                ("type", field("type")),
            ])
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        Ok(image.len())
    }
}
