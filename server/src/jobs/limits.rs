//! Admission: how many jobs the bridge takes on, and how many run on ComfyUI at once.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::ApiError;

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

    /// Images of one request that run at once.
    pub fn per_request(&self) -> usize {
        self.per_request
    }

    /// Reserves room for `n` jobs or refuses at once: a client told 429 with Retry-After can
    /// come back, while one left waiting behind an unbounded queue just times out.
    pub fn admit(&self, n: usize) -> Result<Admission<'_>, ApiError> {
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

    /// A slot to run one job now, if one is free.
    pub fn try_run(&self) -> Option<SemaphorePermit<'_>> {
        self.running.try_acquire().ok()
    }

    /// Waits for a slot to run one job.
    pub async fn run(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        self.running
            .acquire()
            .await
            .map_err(|_| ApiError::Internal("the job limiter is closed".into()))
    }
}

pub struct Admission<'a> {
    limits: &'a Limits,
    n: usize,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.limits.admitted.fetch_sub(self.n, Ordering::AcqRel);
    }
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
