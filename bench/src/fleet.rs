//! The fleet: four simulators, each its own process, behind one bridge. First their direct
//! capacity (direct clients on all four at once, so they share the machine's cores as they do
//! behind the bridge), then the same load through the bridge, then again with one simulator
//! killed once half the requests are done and started again on its port at three quarters.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use futures::future::join_all;

use crate::{
    bridge::{self, Call},
    direct::Direct,
    procs::{self, Proc},
    report::{Fleet, FleetRun},
    workflow::{FLEET_MODEL, Workflow},
};

const SERVERS: usize = 4;
const SIZE: u32 = 512;
/// No preview frames: encoding a JPEG per step in four simulators would take the cores the
/// bridge runs on, where a real server spends its GPU's time on them, not the bridge's host.
const SIM_FLAGS: &[&str] = &["--no-previews"];
/// Failed requests printed in full; the rest are only counted.
const PRINTED_ERRORS: usize = 5;

pub struct Settings {
    pub requests: usize,
    pub clients: usize,
    pub step_delay_ms: u64,
    pub gallery: bool,
}

pub async fn run(
    bin: &Path,
    workflows: &Path,
    settings: &Settings,
    http: &reqwest::Client,
) -> anyhow::Result<Fleet> {
    let workflow = Workflow::load(workflows, FLEET_MODEL)?;
    let names: Vec<String> = (1..=SERVERS).map(|i| format!("sim{i}")).collect();
    let mut sims = (0..SERVERS)
        .map(|_| procs::start_simulator(bin, settings.step_delay_ms, SIM_FLAGS))
        .collect::<anyhow::Result<Vec<Proc>>>()?;
    for sim in &sims {
        procs::wait_ready(http, &format!("{}/prompt", sim.url)).await?;
    }

    eprintln!(
        "fleet: direct capacity, {} requests from {} clients over {SERVERS} simulators",
        settings.requests, settings.clients
    );
    let direct = direct_run(&sims, &workflow, settings).await?;
    let capacity = direct.images_per_s;

    eprintln!("fleet: the same through the bridge");
    let healthy = bridge_run(bin, workflows, &mut sims, &names, settings, http, None).await?;
    let healthy = FleetRun {
        run: format!("bridge, {SERVERS} servers"),
        capacity_images_per_s: Some(capacity),
        ratio: Some(healthy.images_per_s / capacity),
        ..healthy
    };

    let (half, back) = (settings.requests / 2, settings.requests * 3 / 4);
    eprintln!(
        "fleet: again, killing {} after {half} requests and starting it again after {back}",
        names[0]
    );
    let killed = bridge_run(bin, workflows, &mut sims, &names, settings, http, Some(0)).await?;
    // Half the requests at the four servers' rate, a quarter at the three's, the rest at the
    // four's again (the bridge may take a few seconds more to see the server back).
    let rest = capacity * (SERVERS - 1) as f64 / SERVERS as f64;
    let expected = settings.requests as f64
        / (half as f64 / capacity
            + (back - half) as f64 / rest
            + (settings.requests - back) as f64 / capacity);
    let killed = FleetRun {
        run: format!(
            "bridge, {} killed after {half}, back after {back}",
            names[0]
        ),
        capacity_images_per_s: Some(expected),
        ratio: Some(killed.images_per_s / expected),
        ..killed
    };

    Ok(Fleet {
        servers: names,
        model: FLEET_MODEL.into(),
        size: SIZE,
        steps: workflow.steps(),
        step_delay_ms: settings.step_delay_ms,
        runs: vec![
            FleetRun {
                run: format!("direct, {} clients over {SERVERS} servers", direct.clients),
                ..direct
            },
            healthy,
            killed,
        ],
    })
}

/// Direct clients spread evenly over the simulators, each with its own socket, taking the
/// next request until all are taken.
async fn direct_run(
    sims: &[Proc],
    workflow: &Workflow,
    settings: &Settings,
) -> anyhow::Result<FleetRun> {
    let clients = settings.clients.max(SERVERS);
    let mut connected = Vec::with_capacity(clients);
    for i in 0..clients {
        let server = i % SERVERS;
        connected.push((
            server,
            Direct::connect(&sims[server].url, workflow.clone()).await?,
        ));
    }
    // One job per server first, as the bridge run has, so the first timed jobs do not fill the
    // simulators' cache of the nodes that never change (the loader, the text encoders).
    let warm = join_all(
        connected
            .iter_mut()
            .take(SERVERS)
            .map(|(_, direct)| direct.generate(SIZE)),
    )
    .await;
    for result in warm {
        result.context("warming up the simulators")?;
    }
    let tally = Tally::new(settings.requests);
    let cpu_before = cpu_times(sims);
    let start = Instant::now();
    let made = join_all(connected.into_iter().map(|(server, mut direct)| {
        let tally = &tally;
        async move {
            let mut made = 0;
            while tally.take() {
                let started = Instant::now();
                let result = direct.generate(SIZE).await;
                made += u64::from(result.is_ok());
                tally.record(result, started.elapsed());
            }
            (server, made)
        }
    }))
    .await;
    let elapsed = start.elapsed();
    let mut jobs = vec![0; SERVERS];
    for (server, n) in made {
        jobs[server] += n;
    }
    Ok(tally.run(
        clients,
        Measured {
            elapsed,
            jobs,
            failovers: None,
            sims_cpu: cpu_used(&cpu_before, &cpu_times(sims)),
            bridge_cpu: None,
        },
    ))
}

/// A fresh bridge over every simulator, the load through it, and what its `/metrics` says
/// the servers did. With `kill`, that simulator is killed once half the requests are done,
/// and started again on the same port (so the bridge finds it where it was) at three quarters.
async fn bridge_run(
    bin: &Path,
    workflows: &Path,
    sims: &mut [Proc],
    names: &[String],
    settings: &Settings,
    http: &reqwest::Client,
    kill: Option<usize>,
) -> anyhow::Result<FleetRun> {
    let urls: Vec<String> = sims
        .iter()
        .zip(names)
        .map(|(sim, name)| format!("{}#name={name}", sim.url))
        .collect();
    let data = std::env::temp_dir().join(format!(
        "bridge-bench-fleet-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let bridge = procs::start_bridge(bin, &urls.join(","), workflows, &data, settings.gallery)?;
    let result = async {
        procs::wait_ready(http, &format!("{}/health", bridge.url)).await?;
        // The first request reads every server's /object_info; one per server also fills each
        // simulator's cache of the nodes that never change (the loader, the text encoders).
        let warm = join_all(
            (0..SERVERS).map(|_| bridge::call(http, &bridge.url, FLEET_MODEL, Call::B64Json, SIZE)),
        )
        .await;
        for result in warm {
            result.context("warming up the fleet")?;
        }

        let before = metrics(http, &bridge.url).await?;
        let sims_before = cpu_times(sims);
        let bridge_before = bridge.cpu_time()?;
        let tally = Tally::new(settings.requests);
        let (half, back) = (settings.requests / 2, settings.requests * 3 / 4);
        let mut victim = kill.map(|i| &mut sims[i]);
        // Returns the victim's CPU time up to its death, which /proc forgets with it.
        let killer = async {
            let Some(victim) = victim.as_mut() else {
                return Ok(None);
            };
            tally.wait_done(half).await;
            let used = victim.cpu_time().ok();
            victim.kill()?;
            tally.wait_done(back).await;
            let port = victim.port()?;
            **victim = procs::start_simulator_on(bin, port, settings.step_delay_ms, SIM_FLAGS)?;
            procs::wait_ready(http, &format!("{}/prompt", victim.url))
                .await
                .context("starting the killed simulator again")?;
            anyhow::Ok(used)
        };
        let load = join_all((0..settings.clients).map(|_| async {
            while tally.take() {
                let started = Instant::now();
                let result =
                    bridge::call(http, &bridge.url, FLEET_MODEL, Call::B64Json, SIZE).await;
                tally.record(result, started.elapsed());
            }
        }));
        let start = Instant::now();
        let (_, killed) = tokio::join!(load, killer);
        let elapsed = start.elapsed();
        let victim_cpu = killed?;
        let after = metrics(http, &bridge.url).await?;
        let bridge_cpu = bridge.cpu_time()?.saturating_sub(bridge_before);
        let mut sims_after = cpu_times(sims);
        if let Some(i) = kill {
            // The first process's time until it was killed, and the second's since it started.
            sims_after[i] = victim_cpu
                .zip(sims_after[i])
                .map(|(first, second)| first + second);
        }

        let count = |metric: &str| -> Vec<u64> {
            names
                .iter()
                .map(|name| {
                    let key = (metric.to_string(), name.clone());
                    let was = before.get(&key).copied().unwrap_or(0.0);
                    (after.get(&key).copied().unwrap_or(0.0) - was) as u64
                })
                .collect()
        };
        Ok(tally.run(
            settings.clients,
            Measured {
                elapsed,
                jobs: count("bridge_comfyui_jobs_total"),
                failovers: Some(count("bridge_comfyui_failovers_total")),
                sims_cpu: cpu_used(&sims_before, &sims_after),
                bridge_cpu: Some(bridge_cpu),
            },
        ))
    }
    .await;
    drop(bridge);
    let _ = std::fs::remove_dir_all(&data);
    result
}

/// CPU time each process has used so far; `None` for one that is gone.
fn cpu_times(procs: &[Proc]) -> Vec<Option<Duration>> {
    procs.iter().map(|p| p.cpu_time().ok()).collect()
}

/// CPU time used between two readings, summed over the processes read both times.
fn cpu_used(before: &[Option<Duration>], after: &[Option<Duration>]) -> Duration {
    before
        .iter()
        .zip(after)
        .filter_map(|(b, a)| Some(a.as_ref()?.saturating_sub(*b.as_ref()?)))
        .sum()
}

/// The bridge's per-server counters, by metric name and server, from `GET /metrics`.
async fn metrics(
    http: &reqwest::Client,
    base: &str,
) -> anyhow::Result<BTreeMap<(String, String), f64>> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(per_server(&text))
}

/// Lines such as `bridge_comfyui_jobs_total{server="sim1"} 12`; others are skipped.
fn per_server(text: &str) -> BTreeMap<(String, String), f64> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once("{server=\"")?;
            let (server, rest) = rest.split_once("\"}")?;
            let value = rest.split_whitespace().next()?.parse().ok()?;
            Some(((name.to_string(), server.to_string()), value))
        })
        .collect()
}

/// What a run measured besides its requests' outcomes.
struct Measured {
    elapsed: Duration,
    jobs: Vec<u64>,
    failovers: Option<Vec<u64>>,
    sims_cpu: Duration,
    bridge_cpu: Option<Duration>,
}

/// A fixed number of requests shared by many clients, and how they went.
struct Tally {
    total: usize,
    taken: AtomicUsize,
    done: AtomicUsize,
    errors: AtomicUsize,
    slowest: Mutex<Duration>,
}

impl Tally {
    fn new(total: usize) -> Tally {
        Tally {
            total,
            taken: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            errors: AtomicUsize::new(0),
            slowest: Mutex::new(Duration::ZERO),
        }
    }

    /// Whether a request is left for the caller to make.
    fn take(&self) -> bool {
        self.taken.fetch_add(1, Ordering::Relaxed) < self.total
    }

    /// Returns once `n` requests are done.
    async fn wait_done(&self, n: usize) {
        while self.done.load(Ordering::Relaxed) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn record<T>(&self, result: anyhow::Result<T>, took: Duration) {
        if let Err(e) = result {
            let n = self.errors.fetch_add(1, Ordering::Relaxed);
            if n < PRINTED_ERRORS {
                eprintln!("fleet request failed: {e:#}");
            }
        }
        let mut slowest = self.slowest.lock().unwrap_or_else(|p| p.into_inner());
        *slowest = (*slowest).max(took);
        drop(slowest);
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    fn run(&self, clients: usize, measured: Measured) -> FleetRun {
        let Measured {
            elapsed,
            jobs,
            failovers,
            sims_cpu,
            bridge_cpu,
        } = measured;
        let errors = self.errors.load(Ordering::Relaxed);
        let images = (self.total - errors).max(1) as f64;
        let per_image = |cpu: Duration| cpu.as_secs_f64() * 1000.0 / images;
        FleetRun {
            run: String::new(),
            requests: self.total,
            clients,
            errors,
            seconds: elapsed.as_secs_f64(),
            images_per_s: (self.total - errors) as f64 / elapsed.as_secs_f64(),
            capacity_images_per_s: None,
            ratio: None,
            slowest_request_s: self
                .slowest
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_secs_f64(),
            jobs,
            failovers,
            sims_cpu_ms_per_image: per_image(sims_cpu),
            bridge_cpu_ms_per_image: bridge_cpu.map(per_image),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_server_counters_are_read_by_metric_and_server() {
        let text = "# TYPE bridge_comfyui_jobs_total counter\n\
            bridge_comfyui_jobs_total{server=\"sim1\"} 12\n\
            bridge_comfyui_jobs_total{server=\"sim2\"} 3\n\
            bridge_comfyui_failovers_total{server=\"sim1\"} 2\n\
            bridge_http_requests_total{route=\"/health\",method=\"GET\",status=\"200\"} 1\n";
        let counters = per_server(text);
        let get = |m: &str, s: &str| counters.get(&(m.to_string(), s.to_string())).copied();
        assert_eq!(get("bridge_comfyui_jobs_total", "sim1"), Some(12.0));
        assert_eq!(get("bridge_comfyui_jobs_total", "sim2"), Some(3.0));
        assert_eq!(get("bridge_comfyui_failovers_total", "sim1"), Some(2.0));
        assert_eq!(counters.len(), 3);
    }
}
