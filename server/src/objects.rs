//! Where image files live, behind one interface: a local directory (the data directory by
//! default; a volume several bridges mount serves them all), or S3-compatible object storage
//! (`STORAGE_URL=s3://bucket/prefix`, credentials and endpoint from the usual `AWS_*`
//! variables). Keys are `/`-separated names the bridge makes itself, never client text.

use std::{path::Path, sync::Arc};

use anyhow::Context;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream::BoxStream};
use object_store::{
    ObjectStore, ObjectStoreExt, PutPayload, aws::AmazonS3Builder, local::LocalFileSystem,
    path::Path as Key, prefix::PrefixStore,
};

#[derive(Clone, Debug)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
}

/// A stored file being read: its length, and its bytes as they arrive.
pub struct Object {
    pub size: u64,
    pub body: BoxStream<'static, std::io::Result<Bytes>>,
}

impl Object {
    /// Bytes already in memory, read as a stored file is.
    pub fn whole(data: Bytes) -> Object {
        Object {
            size: data.len() as u64,
            body: futures::stream::once(async move { Ok(data) }).boxed(),
        }
    }
}

/// A stored file as a listing gives it.
pub struct Listed {
    pub key: String,
    /// When it was written, in Unix milliseconds.
    pub modified_ms: i64,
}

impl Objects {
    /// Object storage at `storage_url` (`s3://bucket/prefix`), or else the directory
    /// `data_dir`.
    pub async fn open(storage_url: Option<&str>, data_dir: &Path) -> anyhow::Result<Objects> {
        let store: Arc<dyn ObjectStore> = match storage_url {
            Some(url) => {
                let rest = url
                    .strip_prefix("s3://")
                    .context("STORAGE_URL must be an s3://bucket/prefix URL")?;
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    anyhow::bail!("STORAGE_URL names no bucket: s3://bucket/prefix");
                }
                let s3 = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .context("configuring S3 storage (STORAGE_URL and AWS_* variables)")?;
                let prefix = prefix.trim_matches('/');
                if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(PrefixStore::new(s3, prefix))
                }
            }
            None => {
                tokio::fs::create_dir_all(data_dir).await?;
                Arc::new(LocalFileSystem::new_with_prefix(data_dir)?)
            }
        };
        Ok(Objects { store })
    }

    /// Stores `data` under `key` whole: a reader never sees part of it (the local store
    /// writes to a staging name and renames; S3 publishes an object when its upload ends).
    pub async fn put(&self, key: &str, data: Bytes) -> anyhow::Result<()> {
        self.store
            .put(&Key::from(key), PutPayload::from_bytes(data))
            .await
            .with_context(|| format!("storing {key}"))?;
        Ok(())
    }

    /// The file under `key`, streamed; `None` when there is none.
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<Object>> {
        match self.store.get(&Key::from(key)).await {
            Ok(found) => Ok(Some(Object {
                size: found.meta.size,
                body: found.into_stream().map_err(std::io::Error::other).boxed(),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context(format!("reading {key}"))),
        }
    }

    /// The whole file under `key`; `None` when there is none.
    pub async fn read(&self, key: &str) -> anyhow::Result<Option<Bytes>> {
        match self.store.get(&Key::from(key)).await {
            Ok(found) => Ok(Some(found.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context(format!("reading {key}"))),
        }
    }

    /// Removes the file under `key`; one already gone is not an error.
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        match self.store.delete(&Key::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(anyhow::Error::new(e).context(format!("removing {key}"))),
        }
    }

    /// Every file under `prefix`, at any depth.
    pub fn list(&self, prefix: &str) -> BoxStream<'static, anyhow::Result<Listed>> {
        self.store
            .list(Some(&Key::from(prefix)))
            .map(|meta| {
                let meta = meta?;
                Ok(Listed {
                    key: meta.location.to_string(),
                    modified_ms: meta.last_modified.timestamp_millis(),
                })
            })
            .boxed()
    }
}

/// Now, in Unix milliseconds: the unit of [`Listed::modified_ms`] and of stored times.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
