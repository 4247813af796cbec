//! Logging. `RUST_LOG` overrides the default level.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn,tungstenite=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}
