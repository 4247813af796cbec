//! One server's standing in the fleet: how the operator configured it (name, job limit,
//! weight, draining), whether it keeps failing, and the job slots the bridge holds on it.

use std::{
    ops::Deref,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::Notify;

use super::ComfyServer;

/// How a server is used, from the fragment of its `COMFYUI_URL` entry:
/// `http://gpu-a:8188#name=gpu-a&max_jobs=2&weight=3&drain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// What messages and metrics call it; its host and port when unset.
    pub name: Option<String>,
    /// Most jobs of this bridge on it at once; unlimited when unset.
    pub max_jobs: Option<usize>,
    /// How much work it takes relative to the others: a server of weight 2 gets jobs until its
    /// queue is twice as long as a server of weight 1.
    pub weight: u32,
    /// Start draining: no new jobs.
    pub drain: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            name: None,
            max_jobs: None,
            weight: 1,
            drain: false,
        }
    }
}

impl ServerOptions {
    /// Splits a `COMFYUI_URL` entry into the server's URL and its options.
    pub fn parse(entry: &str) -> Result<(String, ServerOptions), String> {
        let (url, fragment) = match entry.split_once('#') {
            Some((url, fragment)) => (url, fragment),
            None => (entry, ""),
        };
        let mut options = ServerOptions::default();
        for pair in fragment.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = match pair.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (pair, None),
            };
            let number = |what: &str| -> Result<u64, String> {
                value
                    .and_then(|v| v.parse::<u64>().ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        format!("{url}: `{what}` needs a whole number above 0, as in `{what}=2`")
                    })
            };
            match key {
                "name" => {
                    options.name = value
                        .filter(|v| !v.is_empty())
                        .map(str::to_string)
                        .ok_or_else(|| format!("{url}: `name` needs a value, as in `name=gpu-a`"))
                        .map(Some)?
                }
                "max_jobs" => options.max_jobs = Some(number("max_jobs")? as usize),
                "weight" => options.weight = number("weight")?.min(u64::from(u32::MAX)) as u32,
                "drain" => options.drain = value.is_none_or(|v| v != "false"),
                other => {
                    return Err(format!(
                        "{url}: unknown option `{other}` (known: name, max_jobs, weight, drain)"
                    ));
                }
            }
        }
        Ok((url.to_string(), options))
    }
}

/// What the fleet knows of one server beyond its connection.
pub(crate) struct Standing {
    options: ServerOptions,
    draining: AtomicBool,
    failures: AtomicU32,
    down_until: Mutex<Option<Instant>>,
    /// Shared by the pool: told whenever any server frees a job slot.
    slot_freed: Arc<Notify>,
    jobs_done: AtomicU64,
    failures_total: AtomicU64,
    failovers: AtomicU64,
}

/// What a server did for this bridge since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub jobs: u64,
    pub failures: u64,
    pub failovers: u64,
}

impl Standing {
    pub(crate) fn new(options: ServerOptions, slot_freed: Arc<Notify>) -> Standing {
        Standing {
            draining: AtomicBool::new(options.drain),
            options,
            failures: AtomicU32::new(0),
            down_until: Mutex::new(None),
            slot_freed,
            jobs_done: AtomicU64::new(0),
            failures_total: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
        }
    }

    pub(crate) fn name(&self) -> Option<&str> {
        self.options.name.as_deref()
    }
}

/// After its first failure a server rests this long before jobs go to it again, doubling with
/// each further failure up to `MAX_REST`; it is back at once when its socket reconnects.
const FIRST_REST: Duration = Duration::from_secs(1);
const MAX_REST: Duration = Duration::from_secs(60);

impl ComfyServer {
    pub fn draining(&self) -> bool {
        self.standing.draining.load(Ordering::Relaxed)
    }

    /// Stops (or resumes) sending new jobs; running ones finish.
    pub fn set_draining(&self, draining: bool) {
        self.standing.draining.store(draining, Ordering::Relaxed);
        tracing::info!(server = %self.url, draining, "draining changed");
    }

    pub fn weight(&self) -> u32 {
        self.standing.options.weight
    }

    pub fn max_jobs(&self) -> Option<usize> {
        self.standing.options.max_jobs
    }

    /// Whether it failed lately and is resting.
    pub fn is_down(&self) -> bool {
        self.standing
            .down_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|until| Instant::now() < until)
    }

    /// A job could not reach it or lost its work there: rest it, longer each time in a row.
    pub fn mark_failed(&self) {
        self.standing.failures_total.fetch_add(1, Ordering::Relaxed);
        let failures = self.standing.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let rest = FIRST_REST
            .saturating_mul(1 << (failures - 1).min(16))
            .min(MAX_REST);
        *self
            .standing
            .down_until
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + rest);
        tracing::warn!(server = %self.url, failures, rest_secs = rest.as_secs_f32(), "server marked down");
    }

    /// It answered: jobs may go to it again.
    pub fn mark_up(&self) {
        if self.standing.failures.swap(0, Ordering::Relaxed) > 0 {
            tracing::info!(server = %self.url, "server is back");
        }
        *self
            .standing
            .down_until
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// A job finished here: the server works.
    pub fn record_job_done(&self) {
        self.standing.jobs_done.fetch_add(1, Ordering::Relaxed);
        self.mark_up();
    }

    /// A job that failed here went on to another server.
    pub fn record_failover(&self) {
        self.standing.failovers.fetch_add(1, Ordering::Relaxed);
    }

    pub fn counts(&self) -> Counts {
        let s = &self.standing;
        Counts {
            jobs: s.jobs_done.load(Ordering::Relaxed),
            failures: s.failures_total.load(Ordering::Relaxed),
            failovers: s.failovers.load(Ordering::Relaxed),
        }
    }

    /// Takes one of its job slots, unless it is at its `max_jobs`.
    pub fn try_reserve(self: &Arc<Self>) -> Option<Reservation> {
        let max = self.max_jobs().unwrap_or(usize::MAX);
        self.in_flight
            .try_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(Reservation {
            server: self.clone(),
        })
    }
}

/// A job slot on a server, held for as long as the job runs there.
pub struct Reservation {
    server: Arc<ComfyServer>,
}

impl Reservation {
    pub fn server(&self) -> &Arc<ComfyServer> {
        &self.server
    }
}

impl Deref for Reservation {
    type Target = Arc<ComfyServer>;

    fn deref(&self) -> &Arc<ComfyServer> {
        &self.server
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.server.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.server.standing.slot_freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_come_from_the_fragment() {
        let (url, o) = ServerOptions::parse("http://gpu-a:8188").unwrap();
        assert_eq!(
            (url.as_str(), o),
            ("http://gpu-a:8188", ServerOptions::default())
        );
        let (url, o) =
            ServerOptions::parse("https://gpu-b/comfy#name=big&max_jobs=2&weight=3&drain").unwrap();
        assert_eq!(url, "https://gpu-b/comfy");
        assert_eq!(
            o,
            ServerOptions {
                name: Some("big".into()),
                max_jobs: Some(2),
                weight: 3,
                drain: true
            }
        );
        for bad in [
            "http://a#max_jobs=0",
            "http://a#weight=x",
            "http://a#colour=red",
            "http://a#name=",
        ] {
            let err = ServerOptions::parse(bad).unwrap_err();
            assert!(err.starts_with("http://a: "), "{bad}: {err}");
        }
    }
}
