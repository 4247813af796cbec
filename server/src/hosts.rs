//! Lists of hosts the operator allows the bridge to reach (`FETCH_IMAGE_HOSTS`,
//! `WEBHOOK_HOSTS`): `host` for any port, or `host:port`. Nothing else is ever reached, so no
//! request can make the bridge reach into the network it runs in.

use reqwest::Url;

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
