//! Downloading an input image from a host the operator allowed (`FETCH_IMAGE_HOSTS`). Nothing
//! else is ever fetched: a URL on another host, a redirect, or a body over the size limit is
//! refused, so a request cannot make the bridge reach into the network it runs in.

use std::time::Duration;

use crate::{
    error::ApiError,
    hosts::{HostClient, HostList},
};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

#[derive(Clone)]
pub struct Fetcher {
    client: HostClient,
    hosts: HostList,
}

impl Fetcher {
    pub fn new(hosts: &[String]) -> Self {
        Fetcher {
            client: HostClient::new(Duration::from_secs(30)),
            hosts: HostList::new(hosts),
        }
    }

    /// Whether `url` is an http(s) URL on an allowed host.
    pub fn allows(&self, url: &str) -> bool {
        self.hosts.allows(url)
    }

    /// Downloads the image at an allowed `url`, reading at most `limit` bytes.
    pub async fn image(&self, param: &str, url: &str, limit: usize) -> Result<Bytes, ApiError> {
        let failed = |why: String| {
            ApiError::invalid(
                param,
                format!("The image at '{param}' could not be fetched: {why}."),
            )
        };
        let client = self.client.get().await.ok_or_else(|| {
            ApiError::Internal("the bridge could not make its HTTP client".into())
        })?;
        let res = client.get(url).send().await.map_err(|e| {
            failed(if e.is_timeout() {
                "timed out".into()
            } else {
                "no answer".into()
            })
        })?;
        let status = res.status();
        if !status.is_success() {
            return Err(failed(format!(
                "the server answered HTTP {}",
                status.as_u16()
            )));
        }
        let too_large = || {
            ApiError::PayloadTooLarge(format!(
                "The image at '{param}' is larger than the limit of {} MB per image.",
                limit / (1024 * 1024)
            ))
        };
        if res.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let mut body = BytesMut::new();
        let mut chunks = res.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|_| failed("the download broke off".into()))?;
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_hosts_over_http_are_allowed() {
        let f = Fetcher::new(&["Files.Example.com".into(), "10.0.0.5:8080".into()]);
        assert!(f.allows("https://files.example.com/a.png"));
        assert!(f.allows("http://FILES.example.com:9000/a.png"));
        assert!(f.allows("http://10.0.0.5:8080/x"));
        assert!(!f.allows("http://10.0.0.5/x"));
        assert!(!f.allows("http://10.0.0.5:8081/x"));
        assert!(!f.allows("https://example.com/a.png"));
        assert!(!f.allows("https://files.example.com.evil.net/a.png"));
        assert!(!f.allows("https://user@files.example.com/a.png"));
        assert!(!f.allows("ftp://files.example.com/a.png"));
        assert!(!f.allows("file:///etc/passwd"));
        assert!(!Fetcher::new(&[]).allows("https://files.example.com/a.png"));
    }
}
