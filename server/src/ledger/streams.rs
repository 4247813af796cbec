//! Streamed jobs a client may come back to. The bridge that runs one records each event of its
//! stream as a row; every request for the job, the first one included, replays those rows and
//! follows the rest as they are announced. A retry on any bridge thus gets the progress so far,
//! then the rest as it happens; and when the job's bridge dies, a retry takes the job over
//! where ComfyUI has it and goes on recording after the events already sent.

use std::{collections::HashSet, future::Future, time::Duration};

use sqlx::Row;
use tokio::{
    sync::{Mutex, broadcast::error::RecvError},
    task::JoinHandle,
};

use super::{Claim, Durable, Ledger, Once, internal};
use crate::{error::ApiError, objects::now_ms};

/// Where a followed stream's events go: the client's event stream.
pub trait Listener: Sync {
    /// The stream has begun (the job is queued): the request is answered.
    fn begin(&self);
    /// Passes one recorded event on; false once the client has gone.
    fn pass(&self, name: Option<&str>, data: String) -> impl Future<Output = bool> + Send;
}

/// Records a stream's events for its job, in order, for every request that follows it.
pub struct Recorder {
    ledger: Ledger,
    id: String,
    state: Mutex<Recording>,
}

struct Recording {
    next: i64,
    begun: bool,
    /// Images whose `completed` event is recorded: a bridge that takes the job over after
    /// they were sends nothing more of them.
    completed: HashSet<usize>,
    failure: Option<String>,
}

impl Recorder {
    /// Marks the stream as begun, once, even before any event is due.
    pub async fn begin(&self) -> bool {
        let mut state = self.state.lock().await;
        if state.begun {
            return true;
        }
        self.append(&mut state, None, "", None).await
    }

    /// Records one event about image `image` (or about the whole job); `completes` for the
    /// event that carries the finished image. False once recording has failed.
    pub async fn record(
        &self,
        name: Option<&str>,
        data: &str,
        image: Option<usize>,
        completes: bool,
    ) -> bool {
        let mut state = self.state.lock().await;
        if image.is_some_and(|i| state.completed.contains(&i)) {
            return true;
        }
        let done = image.filter(|_| completes);
        if !state.begun && !self.append(&mut state, None, "", None).await {
            return false;
        }
        self.append(&mut state, name, data, done).await
    }

    /// Whether the stream began: a failure after that is an event in it.
    pub async fn begun(&self) -> bool {
        self.state.lock().await.begun
    }

    /// Why recording failed, if it did.
    pub async fn failure(&self) -> Option<String> {
        self.state.lock().await.failure.clone()
    }

    async fn append(
        &self,
        state: &mut Recording,
        name: Option<&str>,
        data: &str,
        completes: Option<usize>,
    ) -> bool {
        if state.failure.is_some() {
            return false;
        }
        let db = &self.ledger.0.db;
        let inserted = sqlx::query(
            "INSERT INTO job_events (job_id, seq, name, data, image_index, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&self.id)
        .bind(state.next)
        .bind(name)
        .bind(data)
        .bind(completes.map(|i| i as i64))
        .bind(now_ms())
        .execute(db.pool())
        .await;
        if let Err(e) = inserted {
            tracing::error!(job = %self.id, error = %e, "could not record a stream's event");
            state.failure = Some(format!("recording the stream: {e}"));
            return false;
        }
        state.next += 1;
        state.begun = true;
        if let Some(i) = completes {
            state.completed.insert(i);
        }
        if let Err(e) = db.announce(&self.id).await {
            tracing::warn!(job = %self.id, error = %e, "could not announce a stream's event");
        }
        true
    }
}

/// How following a job's events ended.
enum Followed {
    /// The stream is over: the job finished, failed with its error sent, or the client left.
    Ended,
    /// The job's row went away after events were sent, with no error among them.
    Lost,
    /// The job failed before its stream began: nothing was recorded, and its row is gone.
    Failed,
    /// The job's bridge stopped renewing its claim: it died, and the job is to be taken over.
    Expired,
}

impl Ledger {
    /// Streams the job under `once` to `to`: this request's own run if no bridge has it, else
    /// the job already running or finished, from its first event. `run` records the stream,
    /// driven to its end even if this request goes away, so a retry finds it.
    pub async fn stream_once<R, F, L>(
        &self,
        once: &Once,
        seeds: &[u64],
        run: R,
        to: &L,
    ) -> Result<(), ApiError>
    where
        R: FnOnce(Durable, Recorder) -> F,
        F: Future<Output = Result<(), ApiError>> + Send + 'static,
        L: Listener,
    {
        let resolved = self.resolve(once).await.map_err(internal)?;
        let mut run = Some(run);
        // This request's own run of the job, once it has claimed it.
        let mut own: Option<JoinHandle<Result<(), ApiError>>> = None;
        // The job followed, and the next of its events to pass on.
        let mut at: Option<(String, i64)> = None;
        loop {
            let id = match (&own, &at) {
                // A request that runs the job follows it to its end, whatever the claim says.
                (Some(_), Some((id, _))) => id.clone(),
                _ => match self
                    .claim(&resolved, &once.fingerprint, seeds)
                    .await
                    .map_err(internal)?
                {
                    Claim::Gone => continue,
                    Claim::Succeeded { id, .. } | Claim::Running { id, .. } => id,
                    Claim::Mine(durable) => {
                        let run = run.take().expect("a request runs its job once");
                        let id = durable.id.clone();
                        let recorder =
                            self.recorder(&id, durable.resume).await.map_err(internal)?;
                        let work = run(durable, recorder);
                        let (ledger, owned) = (self.clone(), id.clone());
                        own = Some(tokio::spawn(
                            async move { ledger.own_stream(owned, work).await },
                        ));
                        id
                    }
                },
            };
            if at.as_ref().is_none_or(|(followed, _)| *followed != id) {
                at = Some((id.clone(), 0));
            }
            let next = &mut at.as_mut().expect("set above").1;
            match self.follow(&id, next, to).await.map_err(internal)? {
                Followed::Ended => return Ok(()),
                Followed::Lost => {
                    return Err(ApiError::Internal(
                        "the job ended without finishing its stream; send the request again".into(),
                    ));
                }
                Followed::Failed => {
                    // This request's run failed before its stream began: its error is the
                    // answer. Another's: this request runs the job again.
                    if let Some(task) = own.take() {
                        return match task.await {
                            Ok(Err(e)) => Err(e),
                            Ok(Ok(())) => Err(ApiError::Internal(
                                "a finished stream's job went away".into(),
                            )),
                            Err(e) => {
                                Err(ApiError::Internal(format!("the job's task failed: {e}")))
                            }
                        };
                    }
                }
                Followed::Expired => {
                    if own.is_some() {
                        // This request's own claim was renewed late; the run goes on.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }
    }

    /// A recorder for job `id`; one taking the job over goes on after the events recorded.
    async fn recorder(&self, id: &str, resume: bool) -> anyhow::Result<Recorder> {
        let mut state = Recording {
            next: 0,
            begun: false,
            completed: HashSet::new(),
            failure: None,
        };
        if resume {
            let rows = sqlx::query("SELECT seq, image_index FROM job_events WHERE job_id = $1")
                .bind(id)
                .fetch_all(self.0.db.pool())
                .await?;
            for row in rows {
                let seq: i64 = row.try_get("seq")?;
                state.next = state.next.max(seq + 1);
                state.begun = true;
                if let Some(image) = row.try_get::<Option<i64>, _>("image_index")? {
                    state.completed.insert(image as usize);
                }
            }
        }
        Ok(Recorder {
            ledger: self.clone(),
            id: id.to_string(),
            state: Mutex::new(state),
        })
    }

    /// Runs a claimed stream's job, renewing the claim meanwhile, and records its outcome: the
    /// job done, or, on failure, no row at all, so that a retry runs it again. Its events stay,
    /// for followers to read the error that ended it.
    async fn own_stream<F>(&self, id: String, run: F) -> Result<(), ApiError>
    where
        F: Future<Output = Result<(), ApiError>>,
    {
        let result = self.hold(&id, run).await;
        let recorded = match &result {
            Ok(()) => self.record(&id, &[]).await,
            Err(_) => self.forget(&id).await,
        };
        if let Err(e) = recorded {
            tracing::error!(job = %id, error = %e, "could not record a stream's outcome");
        }
        if let Err(e) = self.0.db.announce(&id).await {
            tracing::warn!(job = %id, error = %e, "could not announce a finished stream");
        }
        result
    }

    /// Passes on job `id`'s events from `next` as they are recorded, until the job ends.
    async fn follow<L: Listener>(
        &self,
        id: &str,
        next: &mut i64,
        to: &L,
    ) -> anyhow::Result<Followed> {
        let pool = self.0.db.pool();
        let mut last_was_error = false;
        loop {
            // Subscribed before reading, so an event recorded just after is not missed; the
            // row is read before the events, so once it says the job ended, every event of
            // the job is among those read.
            let mut notes = self.0.db.subscribe();
            let job = sqlx::query("SELECT state, lease_until FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?;
            let events = sqlx::query(
                "SELECT seq, name, data FROM job_events WHERE job_id = $1 AND seq >= $2 \
                 ORDER BY seq",
            )
            .bind(id)
            .bind(*next)
            .fetch_all(pool)
            .await?;
            for event in events {
                let name: Option<String> = event.try_get("name")?;
                let data: String = event.try_get("data")?;
                if name.is_none() && data.is_empty() {
                    to.begin();
                } else if !to.pass(name.as_deref(), data).await {
                    return Ok(Followed::Ended);
                }
                last_was_error = name.as_deref() == Some("error");
                *next = event.try_get::<i64, _>("seq")? + 1;
            }
            let Some(job) = job else {
                return Ok(match (*next, last_was_error) {
                    (0, _) => Followed::Failed,
                    (_, true) => Followed::Ended,
                    (_, false) => Followed::Lost,
                });
            };
            if job.try_get::<String, _>("state")? != "running" {
                return Ok(Followed::Ended);
            }
            let lease_until: i64 = job.try_get("lease_until")?;
            let left = lease_until - now_ms();
            if left < 0 {
                return Ok(Followed::Expired);
            }
            // Until the job's bridge records more, or its claim runs out (that bridge died,
            // or the announcement was lost): then look again.
            let _ = tokio::time::timeout(Duration::from_millis(left as u64 + 100), async {
                loop {
                    match notes.recv().await {
                        // A lagging receiver may have missed this job's announcement.
                        Ok(changed) if changed == id => return,
                        Err(RecvError::Lagged(_)) => return,
                        Ok(_) => {}
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
