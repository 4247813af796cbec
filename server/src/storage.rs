//! Images served by URL (`response_format: "url"`): files under the data directory with
//! unguessable names, removed after the retention time, and the URLs that name them.

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use app::api::images::OutputFormat;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct ImageStore {
    dir: PathBuf,
    retention: Duration,
    /// `PUBLIC_URL`, without a trailing slash.
    public_url: Option<String>,
}

impl ImageStore {
    pub async fn open(
        data_dir: &Path,
        retention: Duration,
        public_url: Option<&str>,
    ) -> std::io::Result<Self> {
        let dir = data_dir.join("images");
        tokio::fs::create_dir_all(&dir).await?;
        Ok(ImageStore {
            dir,
            retention,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_string()),
        })
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

    /// The file behind a URL this store handed out under `base`; `None` for any other URL.
    pub fn own(&self, base: &str, url: &str) -> Option<PathBuf> {
        let name = url.strip_prefix(base)?.strip_prefix("/images/")?;
        self.path_of(name).map(|(path, _)| path)
    }

    /// Stores an image and returns its file name (`<32 hex>.<ext>`). The write goes to a
    /// temporary name first, so a reader never sees half a file.
    pub async fn put(&self, data: &Bytes, format: OutputFormat) -> std::io::Result<String> {
        let name = format!("{}.{}", uuid::Uuid::new_v4().simple(), format.extension());
        let tmp = self.dir.join(format!(".{name}.tmp"));
        tokio::fs::write(&tmp, data).await?;
        tokio::fs::rename(&tmp, self.dir.join(&name)).await?;
        Ok(name)
    }

    /// The path of a stored image, only for names this store could have made: no client
    /// string ever becomes a path by itself.
    pub fn path_of(&self, name: &str) -> Option<(PathBuf, &'static str)> {
        let (stem, ext) = name.split_once('.')?;
        let valid_stem =
            stem.len() == 32 && stem.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let mime = match ext {
            "png" => "image/png",
            "jpeg" => "image/jpeg",
            "webp" => "image/webp",
            _ => return None,
        };
        valid_stem.then(|| (self.dir.join(name), mime))
    }

    /// Deletes expired images every minute until shutdown.
    pub fn spawn_sweeper(&self, shutdown: CancellationToken) {
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = tick.tick() => store.sweep().await,
                    () = shutdown.cancelled() => return,
                }
            }
        });
    }

    pub async fn sweep(&self) {
        let Ok(mut entries) = tokio::fs::read_dir(&self.dir).await else {
            return;
        };
        let now = SystemTime::now();
        while let Ok(Some(entry)) = entries.next_entry().await {
            let expired = match entry.metadata().await.and_then(|m| m.modified()) {
                Ok(modified) => now.duration_since(modified).unwrap_or_default() > self.retention,
                Err(_) => false,
            };
            if expired && let Err(e) = tokio::fs::remove_file(entry.path()).await {
                tracing::warn!(error = %e, "could not remove an expired image");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store in a fresh temporary directory, holding one image.
    async fn store_with_one_image(retention: Duration) -> (PathBuf, ImageStore, String) {
        let dir = std::env::temp_dir().join(format!("store-test-{}", uuid::Uuid::new_v4()));
        let store = ImageStore::open(&dir, retention, None).await.unwrap();
        let name = store
            .put(&Bytes::from_static(b"x"), OutputFormat::Png)
            .await
            .unwrap();
        (dir, store, name)
    }

    #[tokio::test]
    async fn only_store_made_names_resolve() {
        let (dir, store, name) = store_with_one_image(Duration::from_secs(60)).await;
        let (path, mime) = store.path_of(&name).unwrap();
        assert_eq!(mime, "image/png");
        assert_eq!(tokio::fs::read(path).await.unwrap(), b"x");
        for bad in [
            "../etc/passwd",
            "abc.png",
            "..png",
            &format!("{}.html", &name[..32]),
            "0123456789abcdef0123456789ABCDEF.png",
        ] {
            assert!(store.path_of(bad).is_none(), "{bad}");
        }
        let _ = tokio::fs::remove_dir_all(dir).await;
    }

    #[tokio::test]
    async fn sweep_removes_expired_images() {
        let (dir, store, name) = store_with_one_image(Duration::from_millis(1)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        store.sweep().await;
        assert!(!store.path_of(&name).unwrap().0.exists());
        let _ = tokio::fs::remove_dir_all(dir).await;
    }
}
