use std::sync::Arc;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::{ComfyServer, fleet::ServerOptions};

/// Every configured ComfyUI server; `crate::routing` chooses among them.
#[derive(Clone)]
pub struct ComfyPool {
    servers: Arc<Vec<Arc<ComfyServer>>>,
    slot_freed: Arc<Notify>,
    info_read: watch::Sender<()>,
}

impl ComfyPool {
    /// Connects to every server of `COMFYUI_URL`, each entry a URL with its options in the
    /// fragment (see [`ServerOptions`]). Refuses an entry whose options it cannot read.
    pub fn connect(entries: &[String], shutdown: &CancellationToken) -> Result<Self, String> {
        let slot_freed = Arc::new(Notify::new());
        let (info_read, _) = watch::channel(());
        let servers = entries
            .iter()
            .map(|entry| {
                let (url, options) = ServerOptions::parse(entry)?;
                Ok(ComfyServer::connect(
                    &url,
                    options,
                    slot_freed.clone(),
                    info_read.clone(),
                    shutdown.child_token(),
                ))
            })
            .collect::<Result<_, String>>()?;
        Ok(ComfyPool {
            servers: Arc::new(servers),
            slot_freed,
            info_read,
        })
    }

    pub fn servers(&self) -> &[Arc<ComfyServer>] {
        &self.servers
    }

    /// The server that has this prompt, queued, running or finished, if any does: where a job
    /// taken over from a bridge that died must look for it, rather than where routing would
    /// send a new one.
    pub async fn holder(&self, prompt_id: &str) -> Option<Arc<ComfyServer>> {
        let found = futures::future::join_all(self.servers.iter().map(|server| async move {
            let has = matches!(server.history(prompt_id).await, Ok(Some(_)))
                || matches!(server.in_queue(prompt_id).await, Ok(true));
            has.then(|| server.clone())
        }))
        .await;
        found.into_iter().flatten().next()
    }

    /// Told whenever a job slot frees on any server.
    pub fn slot_freed(&self) -> &Notify {
        &self.slot_freed
    }

    /// Changes whenever a server's `/object_info` has been read (it connected, or reconnected
    /// perhaps as another process with other nodes).
    pub fn info_updates(&self) -> watch::Receiver<()> {
        self.info_read.subscribe()
    }

    /// Every node schema the servers have sent so far, one entry per server that has answered.
    pub fn known_schemas(&self) -> Vec<Arc<super::ObjectInfo>> {
        self.servers
            .iter()
            .filter_map(|s| s.cached_info())
            .collect()
    }

    /// The server an operator means by `name`: its name (configured, or host and port) or URL.
    pub fn find(&self, name: &str) -> Option<&Arc<ComfyServer>> {
        self.servers
            .iter()
            .find(|s| s.name() == name || s.url() == name.trim_end_matches('/'))
    }
}
