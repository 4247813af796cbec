//! Server functions: how the web app reads the bridge's own state.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::api::health::HealthReport;

/// What the page needs to know about the bridge before it can generate.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BridgeOverview {
    pub health: HealthReport,
    /// True when `/v1` needs an API key.
    pub auth_required: bool,
    pub default_model: Option<String>,
}

#[cfg(feature = "ssr")]
pub mod ports {
    use std::{future::Future, pin::Pin, sync::Arc};

    use super::BridgeOverview;

    /// Implemented by the server; the app only sees this narrow view of it.
    pub trait OverviewPort: Send + Sync {
        fn overview(&self) -> Pin<Box<dyn Future<Output = BridgeOverview> + Send + '_>>;
    }

    pub type SharedOverview = Arc<dyn OverviewPort>;
}

#[server]
pub async fn load_overview() -> Result<BridgeOverview, ServerFnError> {
    let port = use_context::<ports::SharedOverview>()
        .ok_or_else(|| ServerFnError::new("the bridge status is not available"))?;
    Ok(port.overview().await)
}
