//! Which ComfyUI server runs a job. Only servers that can run the model's workflow are
//! candidates (read from their `/object_info`: node types, model files, values), and of those
//! only the ones not draining, not resting after failures and below their `max_jobs`. Among
//! them: first the servers whose event socket is up, then the shortest queue for the server's
//! weight (ComfyUI's own count, which includes every client's prompts, or this bridge's jobs
//! there if more), then the server whose last job used the same model files (it need not load
//! them again), then the fewest of this bridge's jobs in flight.

use std::sync::Arc;

use futures::future::join_all;

use crate::{
    comfy::{ComfyError, ComfyPool, ComfyServer, Reservation},
    error::ApiError,
    templates::{Problem, Template},
};

/// Whether a model can run now, and where.
#[derive(Clone)]
pub enum Availability {
    /// These servers can run it.
    Ready(Vec<Arc<ComfyServer>>),
    /// No server could be asked yet (none answers).
    Pending,
    /// Every server that answered lacks something; each with what.
    Unavailable(Vec<(String, Vec<Problem>)>),
}

impl Availability {
    /// What stands in the way, in one line per server.
    pub fn reasons(&self) -> Vec<String> {
        match self {
            Availability::Ready(_) => Vec::new(),
            Availability::Pending => vec!["no ComfyUI server answers yet".to_string()],
            Availability::Unavailable(servers) => reasons(servers),
        }
    }
}

fn reasons(servers: &[(String, Vec<Problem>)]) -> Vec<String> {
    servers
        .iter()
        .map(|(server, problems)| {
            let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
            format!("{server}: {}", listed.join("; "))
        })
        .collect()
}

/// Where `template` can run, asking servers whose capabilities are not known yet.
pub async fn availability(pool: &ComfyPool, template: &Template) -> Availability {
    let infos = join_all(pool.servers().iter().map(|s| s.info())).await;
    let mut ready = Vec::new();
    let mut unable = Vec::new();
    for (server, info) in pool.servers().iter().zip(infos) {
        let Some(info) = info else { continue };
        let problems = template.check(&info);
        if problems.is_empty() {
            ready.push(server.clone());
        } else {
            unable.push((server.name(), problems));
        }
    }
    match (ready.is_empty(), unable.is_empty()) {
        (false, _) => Availability::Ready(ready),
        (true, true) => Availability::Pending,
        (true, false) => Availability::Unavailable(unable),
    }
}

/// A slot on the server to run one job of `template`, by the rule above, skipping servers
/// that are draining, resting after failures, at their `max_jobs` (then it waits for a slot)
/// or in `avoid` (this job failed there already). `prefer`, a server that already has the
/// job's prompt, comes before every rule but the socket. `None` when the only servers left
/// that could run it are in `avoid`.
pub async fn choose(
    pool: &ComfyPool,
    template: &Template,
    avoid: &[Arc<ComfyServer>],
    prefer: Option<&Arc<ComfyServer>>,
) -> Result<Option<Reservation>, ApiError> {
    let files = template.model_files();
    loop {
        // Asked for before looking, so a slot freed while looking is not missed.
        let freed = pool.slot_freed().notified();
        let ready = match availability(pool, template).await {
            Availability::Ready(servers) => servers,
            Availability::Pending => return Err(unavailable("no ComfyUI server answers")),
            Availability::Unavailable(servers) => {
                // Another server, or this one with other nodes or files, could run it as it is.
                let server_side = servers
                    .iter()
                    .any(|(_, problems)| problems.iter().all(Problem::server_side));
                return Err(ApiError::ModelUnavailable {
                    model: template.id.clone(),
                    reasons: reasons(&servers),
                    server_side,
                });
            }
        };
        let untried: Vec<_> = ready
            .into_iter()
            .filter(|s| !avoid.iter().any(|a| Arc::ptr_eq(a, s)))
            .collect();
        if untried.is_empty() {
            return Ok(None);
        }
        let open: Vec<_> = untried.into_iter().filter(|s| !s.draining()).collect();
        if open.is_empty() {
            return Err(unavailable(
                "every server that can run this model is draining",
            ));
        }
        let mut up: Vec<_> = open.into_iter().filter(|s| !s.is_down()).collect();
        if up.is_empty() {
            return Err(unavailable(
                "every server that can run this model failed lately",
            ));
        }
        up.sort_by_key(|s| {
            (
                !s.socket_connected(),
                !prefer.is_some_and(|p| Arc::ptr_eq(p, s)),
                s.queue_depth().saturating_mul(1000) / u64::from(s.weight()),
                !same_files(&s.last_models(), &files),
                s.in_flight(),
            )
        });
        if let Some(slot) = up.iter().find_map(|s| s.try_reserve()) {
            slot.set_last_models(files);
            return Ok(Some(slot));
        }
        // Every server it could use is at its `max_jobs`: wait for one to free a slot.
        freed.await;
    }
}

fn unavailable(reason: &str) -> ApiError {
    ApiError::Comfy(ComfyError::unavailable(reason))
}

/// Whether a server that last loaded `last` has every file `wanted` needs loaded already.
fn same_files(last: &[String], wanted: &[String]) -> bool {
    !wanted.is_empty() && wanted.iter().all(|f| last.contains(f))
}
