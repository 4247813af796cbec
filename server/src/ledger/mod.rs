//! Jobs a client may come back to. A request with an `Idempotency-Key` is a row in the
//! database: the first bridge to insert it runs the job, detached from the request, so a client
//! that times out and retries finds it still running; every later request with that key, on any
//! bridge, waits for it and gets the same images. The same key with another request is refused.
//! An OpenAI SDK's retry (`x-stainless-retry-count` above 0) without a key finds the job of its
//! first attempt the same way: by its credentials and request, within [`RETRY_WINDOW`]. A
//! streamed job is recorded event by event, so its retries replay the stream and follow it.

mod kept;
mod later;
mod streams;
mod webhooks;

use std::{future::Future, sync::Arc, time::Duration};

use axum::http::{HeaderMap, header};
use bytes::Bytes;
use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio::sync::broadcast::error::RecvError;

use crate::{
    db::Db,
    error::{ApiError, ErrorCode},
    jobs::{Durable, Generated},
    objects::{Objects, now_ms},
};

/// How long finished jobs are kept for retries to find.
const KEPT_FOR: Duration = Duration::from_secs(24 * 3600);

/// How long an SDK's retry finds its first attempt's job. The SDKs retry twice, each time after
/// their timeout (10 minutes by default) or an error; a job of the bridge's own ends within
/// `GENERATION_TIMEOUT_SECS` (10 minutes by default).
pub const RETRY_WINDOW: Duration = Duration::from_secs(30 * 60);

/// How often old jobs are swept away.
const SWEEP_EVERY: Duration = Duration::from_secs(5 * 60);

#[derive(Clone)]
pub struct Ledger(Arc<Inner>);

pub use kept::{Kept, KeptEdit, ToKeep};
pub use later::{JobView, Later, Orphan, Scope, no_such_job};
pub use streams::{Listener, Recorder};
pub use webhooks::Webhooks;

struct Inner {
    db: Db,
    objects: Objects,
    webhooks: Webhooks,
    /// This bridge, as the owner of the rows it claims.
    owner: String,
    /// How long a claim holds unless its owner renews it; one whose owner died runs out.
    lease: Duration,
}

/// A client's `Idempotency-Key`, scoped to the API key that sent it.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(String);

/// Longest key accepted; clients send UUIDs or similar.
const MAX_KEY_LEN: usize = 255;

/// A request's way back to its job, and what it asked: the request is run once for all who
/// send both.
#[derive(Debug, Clone)]
pub struct Once {
    pub attach: Attach,
    pub fingerprint: Fingerprint,
}

/// How a request finds its job again.
#[derive(Debug, Clone)]
pub enum Attach {
    /// The client's `Idempotency-Key`.
    Key(IdempotencyKey),
    /// An OpenAI SDK's attempt without a key, from its `x-stainless-retry-count`: a first
    /// attempt starts a job of its own, which a later attempt of the same request with the same
    /// credentials finds again.
    Retry {
        /// A hash of the credentials, as for keys.
        credentials: String,
        again: bool,
    },
}

impl Attach {
    /// The request's `Idempotency-Key`, or else its SDK attempt, if it has either; 400 for a
    /// key that is empty, too long or not printable ASCII.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Attach>, ApiError> {
        if let Some(key) = IdempotencyKey::from_headers(headers)? {
            return Ok(Some(Attach::Key(key)));
        }
        // A header of the SDKs', not ours to refuse: anything but a count is no attempt.
        let Some(count) = headers
            .get("x-stainless-retry-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok())
        else {
            return Ok(None);
        };
        Ok(Some(Attach::Retry {
            credentials: hex(&Sha256::digest(authorization(headers))),
            again: count > 0,
        }))
    }
}

/// A job's key in the table: the client's, or, for an SDK's attempt, its first attempt's, with
/// the key by which later attempts find it.
struct Resolved {
    key: String,
    retry_key: Option<String>,
}

impl IdempotencyKey {
    /// The request's `Idempotency-Key` header, if it has one; 400 for one that is empty, too
    /// long or not printable ASCII.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
        let Some(value) = headers.get("idempotency-key") else {
            return Ok(None);
        };
        let key = value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN)
            .filter(|k| k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                ApiError::bad(
                    ErrorCode::InvalidValue,
                    Some("Idempotency-Key"),
                    format!(
                        "The Idempotency-Key header must be 1 to {MAX_KEY_LEN} printable ASCII \
                         characters without spaces."
                    ),
                )
            })?;
        Ok(Some(IdempotencyKey::new(authorization(headers), key)))
    }

    /// The key as stored: a hash of the credentials and the client's key, so two clients with
    /// different API keys never meet on one key, and no secret is stored.
    pub fn new(authorization: &[u8], key: &str) -> IdempotencyKey {
        IdempotencyKey(hex(&Sha256::new()
            .chain_update(authorization)
            .chain_update([0])
            .chain_update(key.as_bytes())
            .finalize()))
    }
}

/// What a request asked, reduced to a hash: the same key must come with the same request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Hashes the parts of a request in order, each with its length, so no two different
    /// sequences of parts hash alike.
    pub fn of<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Fingerprint {
        let mut hash = FingerprintHasher::default();
        for part in parts {
            hash.part(part);
        }
        hash.finish()
    }
}

/// A [`Fingerprint`] made part by part, for requests whose parts are large files.
#[derive(Default)]
pub struct FingerprintHasher(Sha256);

impl FingerprintHasher {
    pub fn part(&mut self, part: &[u8]) -> &mut FingerprintHasher {
        self.0.update((part.len() as u64).to_le_bytes());
        self.0.update(part);
        self
    }

    pub fn finish(self) -> Fingerprint {
        Fingerprint(hex(&self.0.finalize()))
    }
}

fn authorization(headers: &HeaderMap) -> &[u8] {
    headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a request with a key stands.
enum Claim {
    /// This request inserted the row (or took over one whose owner died): it runs the job.
    Mine(Durable),
    Succeeded {
        id: String,
        seeds: Vec<u64>,
    },
    Running {
        id: String,
        lease_until: i64,
    },
    /// The row went away (its job failed) between looking and reading: look again.
    Gone,
}

impl Ledger {
    pub fn new(db: Db, objects: Objects, webhooks: Webhooks, lease: Duration) -> Ledger {
        Ledger(Arc::new(Inner {
            db,
            objects,
            webhooks,
            owner: uuid::Uuid::new_v4().simple().to_string(),
            lease,
        }))
    }

    /// The images of the job under `key`: run now by `run` if no bridge has it, else those of
    /// the job already running or finished. `run` is driven to its end even if this request
    /// goes away, so a retry finds its images.
    pub async fn run_once<R, F>(
        &self,
        once: &Once,
        seeds: &[u64],
        run: R,
    ) -> Result<Vec<Generated>, ApiError>
    where
        R: FnOnce(Durable) -> F,
        F: Future<Output = Result<Vec<Generated>, ApiError>> + Send + 'static,
    {
        let mut run = Some(run);
        let resolved = self.resolve(once).await.map_err(internal)?;
        loop {
            let mut events = self.0.db.subscribe();
            match self
                .claim(&resolved, &once.fingerprint, seeds)
                .await
                .map_err(internal)?
            {
                Claim::Mine(durable) => {
                    let id = durable.id.clone();
                    let run = run.take().expect("a job is claimed once")(durable);
                    let ledger = self.clone();
                    return tokio::spawn(async move { ledger.own(id, run).await })
                        .await
                        .map_err(|e| ApiError::Internal(format!("the job's task failed: {e}")))?;
                }
                Claim::Succeeded { id, seeds } => return self.load(&id, &seeds).await,
                Claim::Gone => continue,
                Claim::Running { id, lease_until } => {
                    // Until its bridge announces it, or its claim runs out (that bridge died,
                    // or the announcement was lost): then look again.
                    let left = (lease_until - now_ms()).max(0) as u64 + 100;
                    let _ = tokio::time::timeout(Duration::from_millis(left), async {
                        loop {
                            match events.recv().await {
                                Ok(done) if done == id => return,
                                Ok(_) | Err(RecvError::Lagged(_)) => {}
                                Err(RecvError::Closed) => {
                                    std::future::pending::<()>().await;
                                }
                            }
                        }
                    })
                    .await;
                }
            }
        }
    }

    /// The key of the job a request belongs to: the client's own; an SDK retry's first
    /// attempt's, the latest within [`RETRY_WINDOW`]; or, for a first attempt or a retry
    /// whose first attempt left no job (it failed, or went elsewhere), a new one.
    async fn resolve(&self, once: &Once) -> anyhow::Result<Resolved> {
        let (credentials, again) = match &once.attach {
            Attach::Key(key) => {
                return Ok(Resolved {
                    key: key.0.clone(),
                    retry_key: None,
                });
            }
            Attach::Retry { credentials, again } => (credentials, *again),
        };
        let retry_key = hex(&Sha256::new()
            .chain_update(credentials)
            .chain_update([0])
            .chain_update(&once.fingerprint.0)
            .finalize());
        if again {
            let first: Option<String> = sqlx::query_scalar(
                "SELECT idempotency_key FROM jobs WHERE retry_key = $1 AND created_at > $2 \
                 ORDER BY created_at DESC LIMIT 1",
            )
            .bind(&retry_key)
            .bind(now_ms() - RETRY_WINDOW.as_millis() as i64)
            .fetch_optional(self.0.db.pool())
            .await?;
            if let Some(key) = first {
                return Ok(Resolved {
                    key,
                    retry_key: Some(retry_key),
                });
            }
        }
        Ok(Resolved {
            key: format!("retry:{}", uuid::Uuid::new_v4().simple()),
            retry_key: Some(retry_key),
        })
    }

    async fn claim(
        &self,
        resolved: &Resolved,
        fingerprint: &Fingerprint,
        seeds: &[u64],
    ) -> anyhow::Result<Claim> {
        let Inner {
            db, owner, lease, ..
        } = &*self.0;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO jobs (id, idempotency_key, fingerprint, state, owner, lease_until, \
             created_at, seeds, retry_key) VALUES ($1, $2, $3, 'running', $4, $5, $6, $7, $8) \
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&id)
        .bind(&resolved.key)
        .bind(&fingerprint.0)
        .bind(owner)
        .bind(now + lease.as_millis() as i64)
        .bind(now)
        .bind(seeds_json(seeds)?)
        .bind(&resolved.retry_key)
        .execute(db.pool())
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Claim::Mine(Durable {
                id,
                resume: false,
                seeds: seeds.to_vec(),
            }));
        }
        let Some(row) = sqlx::query(
            "SELECT id, fingerprint, state, lease_until, result, seeds FROM jobs \
             WHERE idempotency_key = $1",
        )
        .bind(&resolved.key)
        .fetch_optional(db.pool())
        .await?
        else {
            return Ok(Claim::Gone);
        };
        let id: String = row.try_get("id")?;
        if row.try_get::<String, _>("fingerprint")? != fingerprint.0 {
            return Err(anyhow::Error::new(Conflict));
        }
        if row.try_get::<String, _>("state")? == "succeeded" {
            let seeds = parse_seeds(&row.try_get::<String, _>("result")?)?;
            return Ok(Claim::Succeeded { id, seeds });
        }
        let lease_until: i64 = row.try_get("lease_until")?;
        if lease_until < now {
            // Its bridge stopped renewing the claim: it died. The job runs again here.
            let taken = sqlx::query(
                "UPDATE jobs SET owner = $1, lease_until = $2 \
                 WHERE id = $3 AND state = 'running' AND lease_until < $4",
            )
            .bind(owner)
            .bind(now + lease.as_millis() as i64)
            .bind(&id)
            .bind(now)
            .execute(db.pool())
            .await?;
            if taken.rows_affected() == 1 {
                tracing::info!(job = %id, "taking over a job whose bridge stopped");
                let first: Option<String> = row.try_get("seeds")?;
                return Ok(Claim::Mine(Durable {
                    id,
                    resume: true,
                    seeds: match first {
                        Some(first) => parse_seeds(&first)?,
                        None => seeds.to_vec(),
                    },
                }));
            }
        }
        Ok(Claim::Running { id, lease_until })
    }

    /// Runs a claimed job, renewing the claim meanwhile, and records the outcome: the images
    /// and their seeds, or, on failure, no row at all, so that a retry runs the job again.
    async fn own<F>(&self, id: String, run: F) -> Result<Vec<Generated>, ApiError>
    where
        F: Future<Output = Result<Vec<Generated>, ApiError>>,
    {
        let result = self.hold(&id, run).await;
        let recorded = match &result {
            Ok(images) => self.record(&id, images).await,
            Err(_) => self.forget(&id).await,
        };
        if let Err(e) = recorded {
            tracing::error!(job = %id, error = %e, "could not record a job's outcome");
        }
        if let Err(e) = self.0.db.announce(&id).await {
            tracing::warn!(job = %id, error = %e, "could not announce a finished job");
        }
        result
    }

    /// Runs `work` while renewing this bridge's claim on the job, so no other takes it over.
    async fn hold<T>(&self, id: &str, work: impl Future<Output = T>) -> T {
        let renew = async {
            loop {
                tokio::time::sleep(self.0.lease / 3).await;
                if let Err(e) = self.renew(id).await {
                    tracing::warn!(job = %id, error = %e, "could not renew a job's claim");
                }
            }
        };
        tokio::select! {
            done = work => done,
            () = renew => unreachable!("renewing never ends"),
        }
    }

    async fn renew(&self, id: &str) -> anyhow::Result<()> {
        let Inner {
            db, owner, lease, ..
        } = &*self.0;
        sqlx::query("UPDATE jobs SET lease_until = $1 WHERE id = $2 AND owner = $3")
            .bind(now_ms() + lease.as_millis() as i64)
            .bind(id)
            .bind(owner)
            .execute(db.pool())
            .await?;
        Ok(())
    }

    async fn record(&self, id: &str, images: &[Generated]) -> anyhow::Result<()> {
        for (index, image) in images.iter().enumerate() {
            self.0
                .objects
                .put(&file(id, index), image.data.clone())
                .await?;
        }
        let seeds: Vec<u64> = images.iter().map(|i| i.seed).collect();
        sqlx::query(
            "UPDATE jobs SET state = 'succeeded', result = $1, finished_at = $2 \
             WHERE id = $3 AND owner = $4",
        )
        .bind(seeds_json(&seeds)?)
        .bind(now_ms())
        .bind(id)
        .bind(&self.0.owner)
        .execute(self.0.db.pool())
        .await?;
        Ok(())
    }

    async fn forget(&self, id: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM jobs WHERE id = $1 AND owner = $2")
            .bind(id)
            .bind(&self.0.owner)
            .execute(self.0.db.pool())
            .await?;
        Ok(())
    }

    async fn load(&self, id: &str, seeds: &[u64]) -> Result<Vec<Generated>, ApiError> {
        let mut images = Vec::with_capacity(seeds.len());
        for (index, seed) in seeds.iter().enumerate() {
            let data: Bytes = self
                .0
                .objects
                .read(&file(id, index))
                .await
                .map_err(ApiError::storage)?
                .ok_or_else(|| {
                    ApiError::Internal(format!("the stored image {index} of job {id} is gone"))
                })?;
            images.push(Generated { data, seed: *seed });
        }
        Ok(images)
    }

    /// Removes jobs older than a day, and finished jobs of SDK attempts older than
    /// [`RETRY_WINDOW`], with their files and events, every few minutes until shutdown.
    pub fn spawn_sweeper(&self, shutdown: tokio_util::sync::CancellationToken) {
        let ledger = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = ledger.sweep().await {
                            tracing::warn!(error = %e, "could not remove old jobs");
                        }
                    }
                    () = shutdown.cancelled() => return,
                }
            }
        });
    }

    async fn sweep(&self) -> anyhow::Result<()> {
        let now = now_ms();
        // An SDK attempt's job is kept only for its retries; an async one is read for a day.
        let rows = sqlx::query(
            "DELETE FROM jobs WHERE created_at < $1 OR (retry_key IS NOT NULL AND NOT is_async \
             AND state <> 'running' AND created_at < $2) RETURNING id",
        )
        .bind(now - KEPT_FOR.as_millis() as i64)
        .bind(now - RETRY_WINDOW.as_millis() as i64)
        .fetch_all(self.0.db.pool())
        .await?;
        for row in rows {
            let id: String = row.try_get("id")?;
            let files: Vec<_> = self
                .0
                .objects
                .list(&format!("jobs/{id}"))
                .try_collect()
                .await?;
            for file in files {
                self.0.objects.delete(&file.key).await?;
            }
        }
        // A stream's events go with its job; those of a failed one (whose row went at once)
        // after the retry window, once no follower can still be reading them.
        sqlx::query(
            "DELETE FROM job_events WHERE created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = job_events.job_id)",
        )
        .bind(now - RETRY_WINDOW.as_millis() as i64)
        .execute(self.0.db.pool())
        .await?;
        Ok(())
    }
}

/// The same key came with another request.
#[derive(Debug, thiserror::Error)]
#[error("idempotency key reused")]
struct Conflict;

fn internal(e: anyhow::Error) -> ApiError {
    if e.is::<Conflict>() {
        return ApiError::IdempotencyConflict;
    }
    ApiError::Internal(format!("the jobs table: {e:#}"))
}

/// Seeds as JSON strings: they reach 2^64, past what JSON numbers hold exactly everywhere.
fn seeds_json(seeds: &[u64]) -> anyhow::Result<String> {
    let text: Vec<String> = seeds.iter().map(u64::to_string).collect();
    Ok(serde_json::to_string(&text)?)
}

fn parse_seeds(json: &str) -> anyhow::Result<Vec<u64>> {
    let text: Vec<String> = serde_json::from_str(json)?;
    Ok(text.iter().map(|s| s.parse()).collect::<Result<_, _>>()?)
}

fn file(id: &str, index: usize) -> String {
    format!("jobs/{id}/{index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_parts_apart() {
        let a = Fingerprint::of([&b"ab"[..], b"c"]);
        assert_eq!(a, Fingerprint::of([&b"ab"[..], b"c"]));
        assert_ne!(a, Fingerprint::of([&b"a"[..], b"bc"]));
        assert_ne!(a, Fingerprint::of([&b"abc"[..]]));
    }

    #[test]
    fn keys_are_scoped_to_the_credentials() {
        let a = IdempotencyKey::new(b"Bearer sk-a", "retry-1");
        assert_eq!(a.0, IdempotencyKey::new(b"Bearer sk-a", "retry-1").0);
        assert_ne!(a.0, IdempotencyKey::new(b"Bearer sk-b", "retry-1").0);
        assert!(!a.0.contains("sk-a") && !a.0.contains("retry-1"));
    }
}
