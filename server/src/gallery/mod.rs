//! The gallery: every image the bridge makes, its files in the image storage and a row in the
//! database (SQLite, or PostgreSQL shared by several bridges). A write is complete or absent:
//! each file is stored whole, the row comes last, and files without a row are removed at
//! start-up.

mod files;

use std::{sync::Arc, time::Duration};

use app::api::gallery::{GalleryItem, GalleryPage, GalleryQuery};
use bytes::Bytes;
use futures::TryStreamExt;
use sqlx::{Row, any::AnyRow};
use tokio::sync::{Semaphore, mpsc};

pub use files::THUMB_EDGE;
use files::thumbnail;

pub use crate::config::Retention;
use crate::{
    db::{Db, Statement},
    jobs::Finished,
    objects::{Object, Objects, now_ms},
};

/// The gallery as handlers see it; `None` inside with `GALLERY=off`. Which requests it keeps
/// is decided when they are checked (`validate`).
#[derive(Clone)]
pub struct GalleryState(Option<Gallery>);

impl GalleryState {
    pub fn new(gallery: Option<Gallery>) -> GalleryState {
        GalleryState(gallery)
    }

    pub fn gallery(&self) -> Option<&Gallery> {
        self.0.as_ref()
    }
}

/// Longest page a client may ask for.
const MAX_PER_PAGE: u32 = 100;

/// What is known of an image when it is made.
#[derive(Debug, Clone)]
pub struct NewImage {
    pub data: Bytes,
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub model: String,
    pub seed: u64,
    pub steps: Option<u32>,
    pub cfg: Option<f64>,
    pub duration: Duration,
    /// When the image was finished, in Unix milliseconds: the gallery's order.
    pub created_at: i64,
}

/// How often images past the age limit are looked for when nothing is being added.
const AGE_SWEEP: Duration = Duration::from_secs(3600);

/// A file without a row this old is left over from a crash; a younger one may be another
/// bridge's image whose row is still on its way.
const ORPHAN_AGE: Duration = Duration::from_secs(600);

#[derive(Clone)]
pub struct Gallery {
    db: Db,
    objects: Objects,
    retention: Retention,
    /// One image is written at a time.
    writing: Arc<Semaphore>,
    /// One thumbnail is made at a time.
    thumbnailing: Arc<Semaphore>,
}

impl Gallery {
    /// Keeps the images of every finished request that asked for it, as they are announced,
    /// until the announcing side goes away. The client never waits for this.
    pub fn listen(&self, mut finished: mpsc::UnboundedReceiver<Finished>) {
        let gallery = self.clone();
        tokio::spawn(async move {
            while let Some(done) = finished.recv().await {
                if done.keep {
                    gallery.keep(done);
                }
            }
        });
    }

    fn keep(&self, done: Finished) {
        let created_at = now_ms();
        // One task per image: each writes its file at once and lets go of the bytes.
        for image in done.images {
            let new = NewImage {
                data: image.data,
                prompt: done.prompt.clone(),
                negative_prompt: done.negative_prompt.clone(),
                model: done.model.clone(),
                seed: image.seed,
                steps: done.steps,
                cfg: done.cfg,
                duration: done.took,
                created_at,
            };
            let gallery = self.clone();
            tokio::spawn(async move {
                if let Err(e) = gallery.add(new).await {
                    tracing::warn!(error = %e, "could not keep an image in the gallery");
                }
            });
        }
    }

    /// Opens the gallery on its database and storage, and removes files a crash left
    /// without a row.
    pub async fn open(db: Db, objects: Objects, retention: Retention) -> anyhow::Result<Gallery> {
        let gallery = Gallery {
            db,
            objects,
            retention,
            writing: Arc::new(Semaphore::new(1)),
            thumbnailing: Arc::new(Semaphore::new(1)),
        };
        gallery.remove_orphans().await?;
        gallery.prune().await?;
        Ok(gallery)
    }

    /// Stores an image and its row; returns its id. Its thumbnail is made when first asked
    /// for ([`Gallery::thumbnail`]): keeping an image costs a file write and a row, and no
    /// decoding, so a busy bridge spends its CPU on replies.
    pub async fn add(&self, image: NewImage) -> anyhow::Result<String> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let format = files::extension(&image.data);
        let file = format!("{id}.{format}");
        let thumb = format!("{id}.webp");
        let bytes = image.data.len();
        let (width, height) = files::dimensions(&image.data)?;
        self.objects.put(&key(&file, false), image.data).await?;
        let written = async {
            // One image at a time, so no other write races the count for pruning.
            let _turn = self.writing.acquire().await?;
            sqlx::query(
                "INSERT INTO gallery_images (id, created_at, prompt, negative_prompt, model, \
                 width, height, seed, steps, cfg, duration_ms, file, thumb, bytes) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(&id)
            .bind(image.created_at)
            .bind(&image.prompt)
            .bind(&image.negative_prompt)
            .bind(&image.model)
            .bind(i64::from(width))
            .bind(i64::from(height))
            .bind(image.seed.to_string())
            .bind(image.steps.map(i64::from))
            .bind(image.cfg)
            .bind(image.duration.as_millis() as i64)
            .bind(&file)
            .bind(&thumb)
            .bind(bytes as i64)
            .execute(self.db.pool())
            .await?;
            self.prune().await?;
            Ok::<_, anyhow::Error>(())
        }
        .await;
        if let Err(e) = written {
            let _ = self.objects.delete(&key(&file, false)).await;
            return Err(e);
        }
        Ok(id)
    }

    /// The thumbnail `name` (a key from [`Gallery::key_of`]) of an image in the gallery: the
    /// stored one, or else made now from the image and stored for the next view. None when
    /// no image of the gallery has it.
    pub async fn thumbnail(&self, name: &str) -> anyhow::Result<Option<Object>> {
        let thumb = key(name, true);
        if let Some(stored) = self.objects.get(&thumb).await? {
            return Ok(Some(stored));
        }
        let Some(file): Option<String> =
            sqlx::query_scalar("SELECT file FROM gallery_images WHERE thumb = $1")
                .bind(name)
                .fetch_optional(self.db.pool())
                .await?
        else {
            return Ok(None);
        };
        // One at a time: a thumbnail decodes the whole image, and a page of them at once
        // would hold every image in memory and crowd out the replies.
        let _turn = self.thumbnailing.acquire().await?;
        if let Some(stored) = self.objects.get(&thumb).await? {
            // Made by another view while this one waited.
            return Ok(Some(stored));
        }
        let Some(data) = self.objects.read(&key(&file, false)).await? else {
            return Ok(None);
        };
        let made = Bytes::from(tokio::task::spawn_blocking(move || thumbnail(&data)).await??);
        self.objects.put(&thumb, made.clone()).await?;
        Ok(Some(Object::whole(made)))
    }

    /// One page of images, newest first: those whose prompt holds every word of the search
    /// (in any order and case), on the chosen model.
    pub async fn list(&self, query: &GalleryQuery) -> anyhow::Result<GalleryPage> {
        let per_page = query.per_page.clamp(1, MAX_PER_PAGE);
        let words: Vec<String> = query
            .search
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(like_pattern)
            .collect();
        let model = query.model.as_deref().filter(|m| !m.is_empty());
        let filtered = |select: &str| -> anyhow::Result<Statement> {
            let mut q = Statement::new(select);
            q.push(" FROM gallery_images WHERE 1 = 1");
            for word in &words {
                q.push(" AND LOWER(prompt) LIKE ")
                    .bind(word.clone())?
                    .push(" ESCAPE '\\'");
            }
            if let Some(model) = model {
                q.push(" AND model = ").bind(model.to_string())?;
            }
            Ok(q)
        };
        let total: i64 = filtered("SELECT COUNT(*)")?
            .query()
            .fetch_one(self.db.pool())
            .await?
            .try_get(0)?;
        let mut page = filtered(
            "SELECT id, created_at, prompt, negative_prompt, model, width, height, seed, steps, \
             cfg, duration_ms, file, thumb",
        )?;
        page.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .bind(i64::from(per_page))?
            .push(" OFFSET ")
            .bind(i64::from(query.page) * i64::from(per_page))?;
        let rows = page.query().fetch_all(self.db.pool()).await?;
        let models = sqlx::query("SELECT DISTINCT model FROM gallery_images ORDER BY model")
            .fetch_all(self.db.pool())
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        Ok(GalleryPage {
            items: rows.iter().map(item).collect::<Result<_, _>>()?,
            total: total.max(0) as u64,
            models,
        })
    }

    /// Deletes an image; false when there was none with that id.
    pub async fn delete(&self, id: &str) -> anyhow::Result<bool> {
        let row = sqlx::query("DELETE FROM gallery_images WHERE id = $1 RETURNING file, thumb")
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?;
        let Some(row) = row else { return Ok(false) };
        self.remove_files(&[row]).await?;
        Ok(true)
    }

    /// Removes the oldest images until the gallery is within its limits, rows and files
    /// together; returns how many went.
    pub async fn prune(&self) -> anyhow::Result<u64> {
        let Retention {
            max_images,
            max_bytes,
            max_age,
        } = self.retention;
        let mut gone = 0;
        if let Some(age) = max_age {
            let before = now_ms() - i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
            let rows = sqlx::query(
                "DELETE FROM gallery_images WHERE created_at < $1 RETURNING file, thumb",
            )
            .bind(before)
            .fetch_all(self.db.pool())
            .await?;
            gone += self.remove_files(&rows).await?;
        }
        if max_images.is_none() && max_bytes.is_none() {
            return Ok(gone);
        }
        // PostgreSQL sums BIGINTs to NUMERIC; both engines read the cast back as a BIGINT.
        let totals = sqlx::query(
            "SELECT COUNT(*), CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM gallery_images",
        )
        .fetch_one(self.db.pool())
        .await?;
        let (count, bytes): (i64, i64) = (totals.try_get(0)?, totals.try_get(1)?);
        let mut extra_images = max_images.map_or(0, |m| (count.max(0) as u64).saturating_sub(m));
        let mut extra_bytes = max_bytes.map_or(0, |m| (bytes.max(0) as u64).saturating_sub(m));
        while extra_images > 0 || extra_bytes > 0 {
            // Oldest first, a batch at a time, so a large gallery is never read whole.
            let oldest = sqlx::query(
                "SELECT id, bytes FROM gallery_images ORDER BY created_at ASC, id ASC LIMIT 256",
            )
            .fetch_all(self.db.pool())
            .await?;
            if oldest.is_empty() {
                break;
            }
            let mut ids = Vec::new();
            for row in &oldest {
                if extra_images == 0 && extra_bytes == 0 {
                    break;
                }
                let size: i64 = row.try_get(1)?;
                ids.push(row.try_get::<String, _>(0)?);
                extra_images = extra_images.saturating_sub(1);
                extra_bytes = extra_bytes.saturating_sub(size.max(0) as u64);
            }
            let mut delete = Statement::new("DELETE FROM gallery_images WHERE id IN (");
            delete.bind_list(ids)?.push(") RETURNING file, thumb");
            let rows = delete.query().fetch_all(self.db.pool()).await?;
            gone += self.remove_files(&rows).await?;
        }
        if gone > 0 {
            tracing::info!(
                images = gone,
                "removed the gallery's oldest images to stay within its limits"
            );
        }
        Ok(gone)
    }

    /// Looks for images past the age limit now and then, for galleries nothing is added to.
    pub fn sweep_by_age(&self, shutdown: tokio_util::sync::CancellationToken) {
        if self.retention.max_age.is_none() {
            return;
        }
        let gallery = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(AGE_SWEEP) => {}
                    () = shutdown.cancelled() => return,
                }
                let _turn = gallery.writing.acquire().await;
                if let Err(e) = gallery.prune().await {
                    tracing::warn!(error = %e, "could not remove old gallery images");
                }
            }
        });
    }

    async fn remove_files(&self, rows: &[AnyRow]) -> anyhow::Result<u64> {
        for row in rows {
            let file: String = row.try_get(0)?;
            let thumb: String = row.try_get(1)?;
            self.objects.delete(&key(&file, false)).await?;
            self.objects.delete(&key(&thumb, true)).await?;
        }
        Ok(rows.len() as u64)
    }

    /// The storage key of a file (`thumb` for thumbnails) and its type, only for names the
    /// gallery makes: no client string ever becomes a key by itself.
    pub fn key_of(&self, name: &str, thumb: bool) -> Option<(String, &'static str)> {
        let (stem, ext) = name.split_once('.')?;
        let valid =
            stem.len() == 32 && stem.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let mime = match (thumb, ext) {
            (true, "webp") => "image/webp",
            (false, "png") => "image/png",
            (false, "jpeg") => "image/jpeg",
            (false, "webp") => "image/webp",
            _ => return None,
        };
        valid.then(|| (key(name, thumb), mime))
    }

    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    async fn remove_orphans(&self) -> anyhow::Result<()> {
        let known: std::collections::HashSet<String> = sqlx::query("SELECT id FROM gallery_images")
            .fetch_all(self.db.pool())
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        // Alone on its database, nothing else is writing; shared, other bridges may be.
        let before = if self.db.shared() {
            now_ms() - ORPHAN_AGE.as_millis() as i64
        } else {
            i64::MAX
        };
        let mut files = self.objects.list("gallery");
        while let Some(file) = files.try_next().await? {
            let name = file.key.rsplit('/').next().unwrap_or("");
            let stem = name.split('.').next().unwrap_or("");
            if !known.contains(stem) && file.modified_ms < before {
                tracing::info!(file = %file.key, "removing a gallery file a crash left behind");
                self.objects.delete(&file.key).await?;
            }
        }
        Ok(())
    }
}

/// Where a gallery file is stored.
fn key(name: &str, thumb: bool) -> String {
    if thumb {
        format!("gallery/thumbs/{name}")
    } else {
        format!("gallery/{name}")
    }
}

fn item(row: &AnyRow) -> Result<GalleryItem, sqlx::Error> {
    let file: String = row.try_get("file")?;
    let thumb: String = row.try_get("thumb")?;
    Ok(GalleryItem {
        id: row.try_get("id")?,
        created_at: row.try_get("created_at")?,
        prompt: row.try_get("prompt")?,
        negative_prompt: row.try_get("negative_prompt")?,
        model: row.try_get("model")?,
        width: row.try_get::<i64, _>("width")? as u32,
        height: row.try_get::<i64, _>("height")? as u32,
        seed: row.try_get("seed")?,
        steps: row.try_get::<Option<i64>, _>("steps")?.map(|s| s as u32),
        cfg: row.try_get("cfg")?,
        duration_ms: row.try_get("duration_ms")?,
        url: format!("/gallery/{file}"),
        thumb_url: format!("/gallery/thumbs/{thumb}"),
    })
}

/// A LIKE pattern matching prompts that contain `text`, case-insensitively, with the user's
/// `%` and `_` taken literally.
fn like_pattern(text: &str) -> String {
    let mut out = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}
