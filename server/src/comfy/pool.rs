use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::ComfyServer;

/// Every configured ComfyUI server; `crate::routing` chooses among them.
#[derive(Clone)]
pub struct ComfyPool {
    servers: Arc<Vec<Arc<ComfyServer>>>,
}

impl ComfyPool {
    pub fn connect(urls: &[String], shutdown: &CancellationToken) -> Self {
        let servers = urls
            .iter()
            .map(|u| ComfyServer::connect(u, shutdown.child_token()))
            .collect();
        ComfyPool {
            servers: Arc::new(servers),
        }
    }

    pub fn servers(&self) -> &[Arc<ComfyServer>] {
        &self.servers
    }
}
