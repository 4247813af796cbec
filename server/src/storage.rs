//! Images served by URL (`response_format: "url"`): files in the image storage with
//! unguessable names, removed after the retention time, and the URLs that name them.

use std::time::Duration;

use app::api::images::OutputFormat;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use futures::TryStreamExt;
use tokio_util::sync::CancellationToken;

use crate::objects::{Object, Objects, now_ms};

#[derive(Clone)]
pub struct ImageStore {
    objects: Objects,
    retention: Duration,
    /// `PUBLIC_URL`, without a trailing slash.
    public_url: Option<String>,
}

impl ImageStore {
    pub fn new(objects: Objects, retention: Duration, public_url: Option<&str>) -> Self {
        ImageStore {
            objects,
            retention,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_string()),
        }
    }

    /// The base of absolute image URLs: the configured public URL, else the request's own host.
    pub fn base(&self, headers: &HeaderMap) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()))
            .unwrap_or("localhost");
        format!("http://{host}")
    }

    /// The URL of a stored image under `base`.
    pub fn link(base: &str, name: &str) -> String {
        format!("{base}/images/{name}")
    }

    /// The name of the image behind a URL this store handed out under `base`; `None` for any
    /// other URL.
    pub fn own<'u>(&self, base: &str, url: &'u str) -> Option<&'u str> {
        let name = url.strip_prefix(base)?.strip_prefix("/images/")?;
        mime_of(name).map(|_| name)
    }

    /// Stores an image and returns its file name (`<32 hex>.<ext>`).
    pub async fn put(&self, data: &Bytes, format: OutputFormat) -> anyhow::Result<String> {
        let name = format!("{}.{}", uuid::Uuid::new_v4().simple(), format.extension());
        self.objects.put(&key(&name), data.clone()).await?;
        Ok(name)
    }

    /// A stored image and its type, only for names this store could have made: no client
    /// string ever becomes a key by itself. `None` when there is no such image (any more).
    pub async fn get(&self, name: &str) -> anyhow::Result<Option<(Object, &'static str)>> {
        let Some(mime) = mime_of(name) else {
            return Ok(None);
        };
        Ok(self.objects.get(&key(name)).await?.map(|o| (o, mime)))
    }

    /// The whole of a stored image; `None` when it has expired (or never was).
    pub async fn read(&self, name: &str) -> anyhow::Result<Option<Bytes>> {
        if mime_of(name).is_none() {
            return Ok(None);
        }
        self.objects.read(&key(name)).await
    }

    /// Deletes expired images every minute until shutdown.
    pub fn spawn_sweeper(&self, shutdown: CancellationToken) {
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = store.sweep().await {
                            tracing::warn!(error = %e, "could not remove expired images");
                        }
                    }
                    () = shutdown.cancelled() => return,
                }
            }
        });
    }

    pub async fn sweep(&self) -> anyhow::Result<()> {
        let before = now_ms() - i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX);
        let mut files = self.objects.list("images");
        while let Some(file) = files.try_next().await? {
            if file.modified_ms < before {
                self.objects.delete(&file.key).await?;
            }
        }
        Ok(())
    }
}

fn key(name: &str) -> String {
    format!("images/{name}")
}

/// The type of an image by its name, for names of the store's own scheme only.
fn mime_of(name: &str) -> Option<&'static str> {
    let (stem, ext) = name.split_once('.')?;
    let valid_stem =
        stem.len() == 32 && stem.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let mime = match ext {
        "png" => "image/png",
        "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        _ => return None,
    };
    valid_stem.then_some(mime)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store in a fresh temporary directory, holding one image.
    async fn store_with_one_image(retention: Duration) -> (std::path::PathBuf, ImageStore, String) {
        let dir = std::env::temp_dir().join(format!("store-test-{}", uuid::Uuid::new_v4()));
        let objects = Objects::open(None, &dir).await.unwrap();
        let store = ImageStore::new(objects, retention, None);
        let name = store
            .put(&Bytes::from_static(b"x"), OutputFormat::Png)
            .await
            .unwrap();
        (dir, store, name)
    }

    #[tokio::test]
    async fn only_store_made_names_resolve() {
        let (dir, store, name) = store_with_one_image(Duration::from_secs(60)).await;
        assert_eq!(mime_of(&name), Some("image/png"));
        assert_eq!(store.read(&name).await.unwrap().unwrap(), &b"x"[..]);
        for bad in [
            "../etc/passwd",
            "abc.png",
            "..png",
            &format!("{}.html", &name[..32]),
            "0123456789abcdef0123456789ABCDEF.png",
        ] {
            assert!(mime_of(bad).is_none(), "{bad}");
            assert!(store.read(bad).await.unwrap().is_none(), "{bad}");
        }
        let _ = tokio::fs::remove_dir_all(dir).await;
    }

    #[tokio::test]
    async fn sweep_removes_expired_images() {
        let (dir, store, name) = store_with_one_image(Duration::from_millis(1)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        store.sweep().await.unwrap();
        assert!(store.read(&name).await.unwrap().is_none());
        assert!(!dir.join("images").join(&name).exists());
        let _ = tokio::fs::remove_dir_all(dir).await;
    }
}
