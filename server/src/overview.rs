//! The web app's view of the bridge, provided to its server functions.

use std::{future::Future, pin::Pin, sync::Arc};

use app::server_fns::{
    BridgeOverview,
    ports::{OverviewPort, SharedOverview},
};

use crate::{routes::health_report, state::Bridge};

struct Overview(Arc<Bridge>);

impl OverviewPort for Overview {
    fn overview(&self) -> Pin<Box<dyn Future<Output = BridgeOverview> + Send + '_>> {
        Box::pin(async move {
            BridgeOverview {
                health: health_report(&self.0).await,
                auth_required: !self.0.api_keys.is_empty(),
                default_model: self.0.default_model().map(|t| t.id.clone()),
            }
        })
    }
}

pub fn port(bridge: Arc<Bridge>) -> SharedOverview {
    Arc::new(Overview(bridge))
}
