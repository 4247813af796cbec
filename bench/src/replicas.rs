//! Several bridges on one database. In front of one instant simulator, with the gallery on
//! (its rows are the database's work on every image):
//! - sequential latency with the gallery in SQLite and in PostgreSQL;
//! - throughput at many clients through one bridge on PostgreSQL, then through two, each
//!   client going to the two in turn, as a load balancer sends them;
//! - the same with each bridge held to a share of a core (a cgroup's CPU quota), where this
//!   process may make cgroups: two bridges that scale out make twice the images of one.
//!
//! Every bridge and the simulator are processes of their own.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context;
use futures::future::join_all;

use crate::{
    bridge::{self, Call},
    procs::{self, Proc},
    report::{Replicas, ReplicasRow, percentile},
    workflow::MODEL,
};

pub struct Settings {
    pub database_url: String,
    pub requests: usize,
    pub clients: usize,
    pub per_client: usize,
    /// The share of a core each bridge gets in the capped runs.
    pub replica_cpu: f64,
}

pub async fn run(
    bin: &Path,
    workflows: &Path,
    settings: &Settings,
    http: &reqwest::Client,
) -> anyhow::Result<Replicas> {
    let sim = procs::start_simulator(bin, 0, &["--no-previews"])?;
    procs::wait_ready(http, &format!("{}/prompt", sim.url)).await?;
    let scratch =
        std::env::temp_dir().join(format!("bridge-bench-{}", uuid::Uuid::new_v4().simple()));
    let result = measure(bin, workflows, settings, http, &sim, &scratch).await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

async fn measure(
    bin: &Path,
    workflows: &Path,
    settings: &Settings,
    http: &reqwest::Client,
    sim: &Proc,
    scratch: &Path,
) -> anyhow::Result<Replicas> {
    let start = |name: &str, database: Option<&str>| -> anyhow::Result<Proc> {
        let env: Vec<(&str, &str)> = database
            .map(|url| ("DATABASE_URL", url))
            .into_iter()
            .collect();
        procs::start_bridge_with(bin, &sim.url, workflows, &scratch.join(name), true, &env)
    };
    let mut rows = Vec::new();

    eprintln!("replicas: sequential latency, gallery in SQLite and in PostgreSQL");
    let sqlite = start("sqlite", None)?;
    let postgres = start("a", Some(&settings.database_url))?;
    for bridge in [&sqlite, &postgres] {
        procs::wait_ready(http, &format!("{}/health", bridge.url)).await?;
        for _ in 0..3 {
            bridge::call(http, &bridge.url, MODEL, Call::B64Json, 512).await?;
        }
    }
    let mut times = [Vec::new(), Vec::new()];
    // Interleaved, so a drift in the machine's speed touches both alike.
    for _ in 0..settings.requests {
        for (i, bridge) in [&sqlite, &postgres].into_iter().enumerate() {
            let begun = Instant::now();
            bridge::call(http, &bridge.url, MODEL, Call::B64Json, 512).await?;
            times[i].push(begun.elapsed());
        }
    }
    drop(sqlite);
    let sqlite_p50 = percentile(&times[0], 50.0);
    rows.push(ReplicasRow {
        setup: "1 bridge, SQLite".into(),
        p50_ms: Some(sqlite_p50),
        images_per_s: None,
        errors: 0,
    });
    let postgres_p50 = percentile(&times[1], 50.0);

    eprintln!(
        "replicas: {} clients through one bridge on PostgreSQL",
        settings.clients
    );
    let (one, one_errors) = load(http, &[&postgres], settings).await;
    rows.push(ReplicasRow {
        setup: "1 bridge, PostgreSQL".into(),
        p50_ms: Some(postgres_p50),
        images_per_s: Some(one),
        errors: one_errors,
    });

    eprintln!("replicas: the same through two bridges on one database");
    let second = start("b", Some(&settings.database_url))?;
    procs::wait_ready(http, &format!("{}/health", second.url)).await?;
    let (two, two_errors) = load(http, &[&postgres, &second], settings).await;
    rows.push(ReplicasRow {
        setup: "2 bridges, one PostgreSQL".into(),
        p50_ms: None,
        images_per_s: Some(two),
        errors: two_errors,
    });

    // The same again with each bridge held to a share of a core, as if each had a machine of
    // its own: the two then have twice the CPU of one, and the rest of the cores stay free for
    // the simulator, PostgreSQL and the clients.
    let cores = settings.replica_cpu;
    let capped = match procs::CpuCap::new(postgres.pid(), cores) {
        Some(first_cap) => {
            eprintln!("replicas: one bridge held to {cores} of a core");
            let (one, one_errors) = load(http, &[&postgres], settings).await;
            let second_cap = procs::CpuCap::new(second.pid(), cores)
                .context("a CPU cap for the first bridge but not the second")?;
            eprintln!("replicas: two bridges, each held to {cores} of a core");
            let (two, two_errors) = load(http, &[&postgres, &second], settings).await;
            drop((first_cap, second_cap));
            rows.push(ReplicasRow {
                setup: format!("1 bridge, PostgreSQL, {cores} core"),
                p50_ms: None,
                images_per_s: Some(one),
                errors: one_errors,
            });
            rows.push(ReplicasRow {
                setup: format!("2 bridges, one PostgreSQL, {cores} core each"),
                p50_ms: None,
                images_per_s: Some(two),
                errors: two_errors,
            });
            Some(two / one)
        }
        None => {
            eprintln!("replicas: capped runs skipped, no cgroup to cap a bridge's CPU with");
            None
        }
    };

    Ok(Replicas {
        clients: settings.clients,
        requests: settings.requests,
        postgres_minus_sqlite_p50_ms: postgres_p50 - sqlite_p50,
        two_over_one: two / one,
        replica_cpu: cores,
        two_over_one_capped: capped,
        rows,
    })
}

/// Clients making `per_client` 512x512 images each, client `i` through bridge `i` modulo their
/// number. Returns images per second and failed requests.
async fn load(http: &reqwest::Client, bridges: &[&Proc], settings: &Settings) -> (f64, usize) {
    let begun = Instant::now();
    let failures = join_all((0..settings.clients).map(|i| {
        let url = bridges[i % bridges.len()].url.clone();
        async move {
            let mut failed = 0;
            for _ in 0..settings.per_client {
                if let Err(e) = bridge::call(http, &url, MODEL, Call::B64Json, 512).await {
                    eprintln!("bridge request failed: {e:#}");
                    failed += 1;
                }
            }
            failed
        }
    }))
    .await;
    let failed: usize = failures.iter().sum();
    let made = settings.clients * settings.per_client - failed;
    let elapsed = begun.elapsed().max(Duration::from_millis(1));
    (made as f64 / elapsed.as_secs_f64(), failed)
}
