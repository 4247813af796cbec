//! Async jobs: accepted with 202, run detached by the bridge that took them, read at
//! `/v1/jobs/{id}` and cancelled with `DELETE` there from any bridge, their outcome delivered
//! to a webhook if the request named one.

use std::future::Future;

use axum::http::{HeaderMap, header};
use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Durable, Ledger, Once, Resolved, hex, internal};
use crate::{error::ApiError, objects::now_ms};

/// What makes a request an async job: who made it, and where its outcome goes.
#[derive(Debug, Clone)]
pub struct Later {
    scope: Scope,
    webhook_url: Option<String>,
}

impl Later {
    /// What an async request adds to its fingerprint: that it is async, and its webhook. The
    /// same key sent once for a reply and once for a job are two requests.
    pub fn part(later: Option<&Later>) -> Vec<u8> {
        match later {
            None => Vec::new(),
            Some(later) => {
                format!("async {}", later.webhook_url.as_deref().unwrap_or("")).into_bytes()
            }
        }
    }
}

/// Who made a job: a hash of the credentials it came with. Only they may read or cancel it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope(String);

impl Scope {
    pub fn from_headers(headers: &HeaderMap) -> Scope {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        Scope(hex(&Sha256::digest(authorization)))
    }
}

/// A job as `/v1/jobs/{id}` shows it, without its result.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub id: String,
    pub object: &'static str,
    /// `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
}

impl Ledger {
    /// Whether a request asks to be an async job: `Prefer: respond-async`, or a
    /// `webhook_url` (checked here: 400 for one this bridge may not call).
    pub fn later(
        &self,
        headers: &HeaderMap,
        webhook_url: Option<String>,
    ) -> Result<Option<Later>, ApiError> {
        let prefers = headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("respond-async"));
        if let Some(url) = &webhook_url {
            self.0.webhooks.check(url)?;
        }
        Ok((prefers || webhook_url.is_some()).then(|| Later {
            scope: Scope::from_headers(headers),
            webhook_url,
        }))
    }

    /// Records an async job and starts it, detached from the request; with an
    /// `Idempotency-Key` already used for the same request, that job instead.
    pub async fn submit<R, F>(
        &self,
        later: Later,
        once: Option<&Once>,
        seeds: &[u64],
        kept: (String, Vec<Bytes>),
        run: R,
    ) -> Result<JobView, ApiError>
    where
        R: FnOnce(Durable) -> F,
        F: Future<Output = Result<Bytes, ApiError>> + Send + 'static,
    {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (request, files) = kept;
        // Stored before the row: a bridge that adopts the job finds them.
        for (n, file) in files.into_iter().enumerate() {
            self.0
                .objects
                .put(&input_file(&id, n), file)
                .await
                .map_err(ApiError::storage)?;
        }
        let now = now_ms();
        let (key, retry_key, fingerprint) = match once {
            Some(once) => {
                let Resolved { key, retry_key } = self.resolve(once).await.map_err(internal)?;
                (key, retry_key, once.fingerprint.0.clone())
            }
            None => (format!("async:{id}"), None, String::new()),
        };
        let inserted = sqlx::query(
            "INSERT INTO jobs (id, idempotency_key, fingerprint, state, owner, lease_until, \
             created_at, seeds, is_async, scope, webhook_url, request, retry_key) \
             VALUES ($1, $2, $3, 'running', $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&id)
        .bind(&key)
        .bind(&fingerprint)
        .bind(&self.0.owner)
        .bind(now + self.0.lease.as_millis() as i64)
        .bind(now)
        .bind(super::seeds_json(seeds).map_err(internal)?)
        .bind(true)
        .bind(&later.scope.0)
        .bind(&later.webhook_url)
        .bind(&request)
        .bind(&retry_key)
        .execute(self.0.db.pool())
        .await
        .map_err(|e| internal(e.into()))?;
        if inserted.rows_affected() == 0 {
            let row = sqlx::query(
                "SELECT id, fingerprint FROM jobs WHERE idempotency_key = $1 AND is_async",
            )
            .bind(&key)
            .fetch_optional(self.0.db.pool())
            .await
            .map_err(|e| internal(e.into()))?;
            let Some(row) = row else {
                return Err(ApiError::IdempotencyConflict);
            };
            let existing: String = row.try_get("id").map_err(|e| internal(e.into()))?;
            let same: String = row.try_get("fingerprint").map_err(|e| internal(e.into()))?;
            if same != fingerprint {
                return Err(ApiError::IdempotencyConflict);
            }
            return self
                .view(&existing, &later.scope)
                .await?
                .ok_or(ApiError::IdempotencyConflict);
        }
        let run = run(Durable {
            id: id.clone(),
            resume: false,
            seeds: seeds.to_vec(),
        });
        let ledger = self.clone();
        let job = id.clone();
        tokio::spawn(async move { ledger.own_later(job, run).await });
        Ok(JobView {
            id,
            object: "image.job",
            status: "running".into(),
            created_at: now / 1000,
            finished_at: None,
            error: None,
        })
    }

    /// Runs an async job to its end, or until it is cancelled, and records the outcome.
    pub(crate) async fn own_later<F>(&self, id: String, run: F)
    where
        F: Future<Output = Result<Bytes, ApiError>>,
    {
        let mut events = self.0.db.subscribe();
        let cancelled = async {
            loop {
                match events.recv().await {
                    Ok(changed) if changed == id => {
                        if matches!(self.state(&id).await, Ok(Some(s)) if s == "cancelled") {
                            return;
                        }
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        std::future::pending::<()>().await
                    }
                }
            }
        };
        // Dropping the run on cancellation cancels its prompts in ComfyUI.
        let outcome = tokio::select! {
            outcome = self.hold(&id, run) => outcome,
            () = cancelled => return,
        };
        let recorded = match outcome {
            Ok(document) => self.finish_later(&id, Ok(document)).await,
            Err(e) => {
                e.log();
                self.finish_later(&id, Err(e)).await
            }
        };
        if let Err(e) = recorded {
            tracing::error!(job = %id, error = %e, "could not record an async job's outcome");
        }
        if let Err(e) = self.0.db.announce(&id).await {
            tracing::warn!(job = %id, error = %e, "could not announce a finished job");
        }
    }

    async fn finish_later(&self, id: &str, outcome: Result<Bytes, ApiError>) -> anyhow::Result<()> {
        let (state, error) = match outcome {
            Ok(document) => {
                self.0.objects.put(&response_file(id), document).await?;
                ("succeeded", None)
            }
            Err(e) => ("failed", Some(serde_json::to_string(&e.body())?)),
        };
        let now = now_ms();
        sqlx::query(
            "UPDATE jobs SET state = $1, error = $2, finished_at = $3, \
             webhook_state = CASE WHEN webhook_url IS NULL THEN NULL ELSE 'pending' END, \
             webhook_next_at = $3 WHERE id = $4 AND owner = $5 AND state = 'running'",
        )
        .bind(state)
        .bind(error)
        .bind(now)
        .bind(id)
        .bind(&self.0.owner)
        .execute(self.0.db.pool())
        .await?;
        Ok(())
    }

    async fn state(&self, id: &str) -> anyhow::Result<Option<String>> {
        Ok(sqlx::query("SELECT state FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(self.0.db.pool())
            .await?
            .map(|r| r.try_get("state"))
            .transpose()?)
    }

    /// An async job as its maker sees it; `None` for no such job, or one made by others.
    pub async fn view(&self, id: &str, scope: &Scope) -> Result<Option<JobView>, ApiError> {
        let row = sqlx::query(
            "SELECT id, state, created_at, finished_at, error FROM jobs \
             WHERE id = $1 AND is_async AND scope = $2",
        )
        .bind(id)
        .bind(&scope.0)
        .fetch_optional(self.0.db.pool())
        .await
        .map_err(|e| internal(e.into()))?;
        let Some(row) = row else { return Ok(None) };
        let read = |e: sqlx::Error| internal(e.into());
        let error: Option<String> = row.try_get("error").map_err(read)?;
        Ok(Some(JobView {
            id: row.try_get("id").map_err(read)?,
            object: "image.job",
            status: row.try_get("state").map_err(read)?,
            created_at: row.try_get::<i64, _>("created_at").map_err(read)? / 1000,
            finished_at: row
                .try_get::<Option<i64>, _>("finished_at")
                .map_err(read)?
                .map(|ms| ms / 1000),
            error: error.and_then(|e| serde_json::from_str(&e).ok()),
        }))
    }

    /// The job as JSON, with `result` (the images reply) once it succeeded: what
    /// `/v1/jobs/{id}` answers and what its webhook receives.
    pub async fn document_of(&self, view: &JobView) -> Result<Bytes, ApiError> {
        let head = serde_json::to_vec(view)
            .map_err(|e| ApiError::Internal(format!("serializing a job: {e}")))?;
        if view.status != "succeeded" {
            return Ok(Bytes::from(head));
        }
        let result = self
            .0
            .objects
            .read(&response_file(&view.id))
            .await
            .map_err(ApiError::storage)?
            .ok_or_else(|| ApiError::Internal(format!("the result of job {} is gone", view.id)))?;
        // `{…}` and the reply become `{…,"result":<reply>}`.
        let mut out = Vec::with_capacity(head.len() + result.len() + 12);
        out.extend_from_slice(&head[..head.len() - 1]);
        out.extend_from_slice(b",\"result\":");
        out.extend_from_slice(&result);
        out.push(b'}');
        Ok(Bytes::from(out))
    }

    /// The document of any async job, for its webhook.
    pub(super) async fn document(&self, id: &str) -> anyhow::Result<Bytes> {
        let scope: String = sqlx::query("SELECT scope FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(self.0.db.pool())
            .await?
            .try_get("scope")?;
        let view = self
            .view(id, &Scope(scope))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .ok_or_else(|| anyhow::anyhow!("job {id} is gone"))?;
        self.document_of(&view)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Cancels a running async job: its bridge stops it and ComfyUI drops its prompts. A job
    /// already over is left as it is. `None` for no such job.
    pub async fn cancel(&self, id: &str, scope: &Scope) -> Result<Option<JobView>, ApiError> {
        sqlx::query(
            "UPDATE jobs SET state = 'cancelled', finished_at = $1, \
             webhook_state = CASE WHEN webhook_url IS NULL THEN NULL ELSE 'pending' END, \
             webhook_next_at = $1 \
             WHERE id = $2 AND is_async AND scope = $3 AND state = 'running'",
        )
        .bind(now_ms())
        .bind(id)
        .bind(&scope.0)
        .execute(self.0.db.pool())
        .await
        .map_err(|e| internal(e.into()))?;
        if let Err(e) = self.0.db.announce(id).await {
            tracing::warn!(job = %id, error = %e, "could not announce a cancelled job");
        }
        self.view(id, scope).await
    }
}

/// 404 for a job id that is not one, or not the caller's.
pub fn no_such_job() -> ApiError {
    ApiError::NotFound(
        "No such job: it does not exist, has expired, or was made with other credentials.".into(),
    )
}

/// Claims one async job whose bridge stopped renewing its claim, with what running it again
/// takes; `None` when there is none.
impl Ledger {
    pub async fn adopt(&self) -> anyhow::Result<Option<Orphan>> {
        let now = now_ms();
        let lock = match self.0.db.engine() {
            crate::db::Engine::Postgres => " FOR UPDATE SKIP LOCKED",
            crate::db::Engine::Sqlite => "",
        };
        let row = sqlx::query(&format!(
            "UPDATE jobs SET owner = $1, lease_until = $2 WHERE id = (SELECT id FROM jobs \
             WHERE is_async AND state = 'running' AND lease_until < $3 LIMIT 1{lock}) \
             RETURNING id, seeds, request"
        ))
        .bind(&self.0.owner)
        .bind(now + self.0.lease.as_millis() as i64)
        .bind(now)
        .fetch_optional(self.0.db.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get("id")?;
        let seeds: Option<String> = row.try_get("seeds")?;
        let mut files = Vec::new();
        while let Some(file) = self.0.objects.read(&input_file(&id, files.len())).await? {
            files.push(file);
        }
        Ok(Some(Orphan {
            seeds: seeds
                .map(|s| super::parse_seeds(&s))
                .transpose()?
                .unwrap_or_default(),
            request: row
                .try_get::<Option<String>, _>("request")?
                .unwrap_or_default(),
            id,
            files,
        }))
    }
}

/// An async job taken over from a bridge that died.
pub struct Orphan {
    pub id: String,
    pub seeds: Vec<u64>,
    /// The request as accepted (JSON), and its files.
    pub request: String,
    pub files: Vec<Bytes>,
}

fn input_file(id: &str, n: usize) -> String {
    format!("jobs/{id}/input/{n}")
}

pub(super) fn response_file(id: &str) -> String {
    format!("jobs/{id}/response.json")
}
