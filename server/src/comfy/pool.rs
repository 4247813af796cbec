use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::ComfyServer;

/// Every configured ComfyUI server. Jobs go to a connected server with the fewest jobs in
/// flight; a smarter scheduler can replace `pick` without touching callers.
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

    pub fn pick(&self) -> Option<Arc<ComfyServer>> {
        self.servers
            .iter()
            .min_by_key(|s| (!s.socket_connected(), s.in_flight()))
            .cloned()
    }
}
