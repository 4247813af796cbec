//! The gallery: every image the bridge makes, kept under the data directory with a row in
//! SQLite (through sqlx; the schema and queries are plain SQL that PostgreSQL also takes).
//! A write is complete or absent: files land under temporary names and are renamed only when
//! whole, the row comes last, and files without a row are removed at start-up.

mod files;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use app::api::gallery::{GalleryItem, GalleryPage, GalleryQuery};
use bytes::Bytes;
use sqlx::{
    QueryBuilder, Row, Sqlite, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow},
};
use tokio::sync::{Semaphore, mpsc};

pub use files::{THUMB_EDGE, thumbnail};

pub use crate::config::Retention;
use crate::jobs::Finished;

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

#[derive(Clone)]
pub struct Gallery {
    pool: SqlitePool,
    dir: PathBuf,
    retention: Retention,
    /// One image is written at a time: a thumbnail decodes the whole image, and a burst of
    /// requests decoding at once would hold them all in memory and crowd out the replies.
    writing: Arc<Semaphore>,
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

    /// Opens (or creates) the gallery under `data_dir`, brings its schema up to date, and
    /// removes files a crash left without a row.
    pub async fn open(data_dir: &Path, retention: Retention) -> anyhow::Result<Gallery> {
        let dir = data_dir.join("gallery");
        tokio::fs::create_dir_all(dir.join("thumbs")).await?;
        let options = SqliteConnectOptions::new()
            .filename(data_dir.join("gallery.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let gallery = Gallery {
            pool,
            dir,
            retention,
            writing: Arc::new(Semaphore::new(1)),
        };
        gallery.remove_orphans().await?;
        gallery.prune().await?;
        Ok(gallery)
    }

    /// Stores an image, its thumbnail and its row; returns its id.
    pub async fn add(&self, mut image: NewImage) -> anyhow::Result<String> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let format = files::extension(&image.data);
        let file = format!("{id}.{format}");
        let thumb = format!("{id}.webp");
        let path = self.dir.join(&file);
        files::write_whole(&path, &image.data).await?;
        let bytes = image.data.len();
        // On disk now: the bytes are not needed while this image waits for its thumbnail.
        image.data = Bytes::new();
        let written = async {
            // Thumbnails are made one at a time, from the file just written: images waiting
            // for their turn are not held in memory, and a burst of requests does not crowd
            // the replies out of the CPU.
            let _turn = self.writing.acquire().await?;
            let (thumb_data, width, height) = {
                let path = path.clone();
                tokio::task::spawn_blocking(move || thumbnail(&std::fs::read(&path)?)).await??
            };
            files::write_whole(&self.dir.join("thumbs").join(&thumb), &thumb_data).await?;
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
            .execute(&self.pool)
            .await?;
            // Still this image's turn: no other write races the count.
            self.prune().await?;
            Ok::<_, anyhow::Error>(())
        }
        .await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(self.dir.join(&file)).await;
            let _ = tokio::fs::remove_file(self.dir.join("thumbs").join(&thumb)).await;
            return Err(e);
        }
        Ok(id)
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
        let filtered = |select: &str| {
            let mut q = QueryBuilder::<Sqlite>::new(select);
            q.push(" FROM gallery_images WHERE 1 = 1");
            for word in &words {
                q.push(" AND LOWER(prompt) LIKE ")
                    .push_bind(word.clone())
                    .push(" ESCAPE '\\'");
            }
            if let Some(model) = model {
                q.push(" AND model = ").push_bind(model.to_string());
            }
            q
        };
        let total: i64 = filtered("SELECT COUNT(*)")
            .build()
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        let mut page = filtered(
            "SELECT id, created_at, prompt, negative_prompt, model, width, height, seed, steps, \
             cfg, duration_ms, file, thumb",
        );
        page.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(per_page))
            .push(" OFFSET ")
            .push_bind(i64::from(query.page) * i64::from(per_page));
        let rows = page.build().fetch_all(&self.pool).await?;
        let models = sqlx::query("SELECT DISTINCT model FROM gallery_images ORDER BY model")
            .fetch_all(&self.pool)
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
            .fetch_optional(&self.pool)
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
            .fetch_all(&self.pool)
            .await?;
            gone += self.remove_files(&rows).await?;
        }
        if max_images.is_none() && max_bytes.is_none() {
            return Ok(gone);
        }
        let totals = sqlx::query("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM gallery_images")
            .fetch_one(&self.pool)
            .await?;
        let (count, bytes): (i64, i64) = (totals.try_get(0)?, totals.try_get(1)?);
        let mut extra_images = max_images.map_or(0, |m| (count.max(0) as u64).saturating_sub(m));
        let mut extra_bytes = max_bytes.map_or(0, |m| (bytes.max(0) as u64).saturating_sub(m));
        while extra_images > 0 || extra_bytes > 0 {
            // Oldest first, a batch at a time, so a large gallery is never read whole.
            let oldest = sqlx::query(
                "SELECT id, bytes FROM gallery_images ORDER BY created_at ASC, id ASC LIMIT 256",
            )
            .fetch_all(&self.pool)
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
            let mut delete =
                QueryBuilder::<Sqlite>::new("DELETE FROM gallery_images WHERE id IN (");
            let mut list = delete.separated(", ");
            for id in &ids {
                list.push_bind(id.clone());
            }
            delete.push(") RETURNING file, thumb");
            let rows = delete.build().fetch_all(&self.pool).await?;
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

    async fn remove_files(&self, rows: &[SqliteRow]) -> anyhow::Result<u64> {
        for row in rows {
            let file: String = row.try_get(0)?;
            let thumb: String = row.try_get(1)?;
            let _ = tokio::fs::remove_file(self.dir.join(file)).await;
            let _ = tokio::fs::remove_file(self.dir.join("thumbs").join(thumb)).await;
        }
        Ok(rows.len() as u64)
    }

    /// The path of a stored file (`thumb` for thumbnails), only for names the gallery makes.
    pub fn path_of(&self, name: &str, thumb: bool) -> Option<(PathBuf, &'static str)> {
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
        let dir = if thumb {
            self.dir.join("thumbs")
        } else {
            self.dir.clone()
        };
        valid.then(|| (dir.join(name), mime))
    }

    async fn remove_orphans(&self) -> anyhow::Result<()> {
        let known: std::collections::HashSet<String> = sqlx::query("SELECT id FROM gallery_images")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        for dir in [self.dir.clone(), self.dir.join("thumbs")] {
            let mut entries = tokio::fs::read_dir(&dir).await?;
            while let Some(entry) = entries.next_entry().await? {
                let name = entry.file_name().to_string_lossy().to_string();
                let stem = name.split('.').next().unwrap_or("");
                if entry.file_type().await?.is_file() && !known.contains(stem) {
                    tracing::info!(file = %name, "removing a gallery file a crash left behind");
                    let _ = tokio::fs::remove_file(entry.path()).await;
                }
            }
        }
        Ok(())
    }
}

fn item(row: &SqliteRow) -> Result<GalleryItem, sqlx::Error> {
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

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
