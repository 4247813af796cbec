//! Lists of hosts the operator allows the bridge to reach (`FETCH_IMAGE_HOSTS`,
//! `WEBHOOK_HOSTS`): `host` for any port, or `host:port`. Nothing else is ever reached, so no
//! request can make the bridge reach into the network it runs in.

use std::{sync::Arc, time::Duration};

use reqwest::Url;
use tokio::sync::OnceCell;

#[derive(Clone, Debug, Default)]
pub struct HostList(Vec<String>);

impl HostList {
    pub fn new(hosts: &[String]) -> HostList {
        HostList(
            hosts
                .iter()
                .map(|h| h.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
        )
    }

    /// Whether `url` is an http(s) URL without credentials on an allowed host.
    pub fn allows(&self, url: &str) -> bool {
        let Ok(url) = Url::parse(url) else {
            return false;
        };
        if !matches!(url.scheme(), "http" | "https")
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return false;
        }
        let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
            return false;
        };
        let with_port = url.port().map(|p| format!("{host}:{p}"));
        self.0
            .iter()
            .any(|allowed| *allowed == host || Some(allowed) == with_port.as_ref())
    }
}

/// The HTTP client for the allowed hosts, made when first needed: most bridges never fetch an
/// image or send a webhook, and making a client reads and keeps the system's root
/// certificates (a few hundred KB). It follows no redirects, so a host on the list cannot send
/// the bridge to one that is not.
#[derive(Clone)]
pub struct HostClient {
    timeout: Duration,
    client: Arc<OnceCell<reqwest::Client>>,
}

impl HostClient {
    pub fn new(timeout: Duration) -> HostClient {
        HostClient {
            timeout,
            client: Arc::default(),
        }
    }

    /// The client; `None` only if one cannot be made (the TLS backend failed to start).
    pub async fn get(&self) -> Option<reqwest::Client> {
        let timeout = self.timeout;
        let made = self
            .client
            .get_or_try_init(|| async move {
                // Reading the certificate files is blocking work.
                tokio::task::spawn_blocking(move || {
                    reqwest::Client::builder()
                        .redirect(reqwest::redirect::Policy::none())
                        .timeout(timeout)
                        .connect_timeout(Duration::from_secs(5))
                        .build()
                        .map_err(
                            |e| tracing::error!(error = %e, "no HTTP client for allowed hosts"),
                        )
                })
                .await
                .map_err(|_| ())?
            })
            .await;
        made.ok().cloned()
    }
}
