//! Running the images of one request on ComfyUI: admission against global limits, one prompt
//! per image with its own seed, several at once per request, results in request order.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use tokio::sync::Semaphore;

use crate::{
    comfy::{ComfyError, ComfyPool},
    error::ApiError,
    templates::{RenderParams, Template},
};

pub struct Limits {
    running: Arc<Semaphore>,
    admitted: AtomicUsize,
    max_admitted: usize,
    per_request: usize,
}

impl Limits {
    pub fn new(max_concurrent: usize, max_queued: usize, per_request: usize) -> Self {
        let max_concurrent = max_concurrent.max(1);
        Limits {
            running: Arc::new(Semaphore::new(max_concurrent)),
            admitted: AtomicUsize::new(0),
            max_admitted: max_concurrent + max_queued,
            per_request: per_request.max(1),
        }
    }

    /// Reserves room for `n` jobs or refuses at once: a client told 429 with Retry-After can
    /// come back, while one left waiting behind an unbounded queue just times out.
    fn admit(&self, n: usize) -> Result<Admission<'_>, ApiError> {
        let mut current = self.admitted.load(Ordering::Relaxed);
        loop {
            if current + n > self.max_admitted {
                return Err(ApiError::Overloaded);
            }
            match self.admitted.compare_exchange_weak(
                current,
                current + n,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(Admission { limits: self, n }),
                Err(actual) => current = actual,
            }
        }
    }
}

struct Admission<'a> {
    limits: &'a Limits,
    n: usize,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.limits.admitted.fetch_sub(self.n, Ordering::AcqRel);
    }
}

/// One finished image, as the workflow's output node wrote it.
pub struct Generated {
    pub data: Bytes,
    pub seed: u64,
}

/// Generates one image per seed. The first failure fails the request, and dropping the other
/// jobs cancels them in ComfyUI.
pub async fn generate(
    pool: &ComfyPool,
    limits: &Limits,
    template: &Arc<Template>,
    params: &RenderParams,
    seeds: &[u64],
    timeout: Duration,
) -> Result<Vec<Generated>, ApiError> {
    let _admission = limits.admit(seeds.len())?;
    stream::iter(seeds.iter().copied())
        .map(|seed| async move {
            let _permit = limits
                .running
                .acquire()
                .await
                .map_err(|_| ApiError::Internal("the job limiter is closed".into()))?;
            let server = pool.pick().ok_or_else(|| {
                ApiError::Comfy(ComfyError::unavailable("no ComfyUI server is configured"))
            })?;
            let graph = template.render(&RenderParams {
                seed,
                ..params.clone()
            });
            let images = server
                .run(&graph, template.output_nodes(), None, timeout)
                .await?;
            let first = images.into_iter().next().ok_or(ComfyError::NoOutput)?;
            Ok::<_, ApiError>(Generated {
                data: first.data,
                seed,
            })
        })
        .buffered(limits.per_request)
        .try_collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_is_bounded_and_released() {
        let limits = Limits::new(2, 1, 4);
        let a = limits.admit(2).unwrap();
        assert!(matches!(limits.admit(2), Err(ApiError::Overloaded)));
        let b = limits.admit(1).unwrap();
        drop(a);
        drop(b);
        assert!(limits.admit(3).is_ok());
    }
}
