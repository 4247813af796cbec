//! `bench`: what the bridge adds to ComfyUI's own time, measured side by side on one machine.
//! It starts the simulator (or uses `--comfyui URL`) and the bridge as their own processes,
//! then compares a minimal direct ComfyUI client with the same work through the bridge. The
//! fleet part does the same with four simulators behind one bridge, and kills one of them and
//! starts it again.

mod bridge;
mod direct;
mod fleet;
mod procs;
mod replicas;
mod report;
mod wire;
mod workflow;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Parser;
use futures::future::join_all;

use bridge::Call;
use direct::Direct;
use procs::Proc;
use report::{
    ChatMemory, FirstLoad, LatencyRow, Memory, Report, ThroughputRow, Wasm, mib, percentile,
};
use wire::Wire;
use workflow::{MODEL, Workflow};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    /// One server: latency, throughput and memory against a direct client.
    Single,
    /// Four simulators behind one bridge, then one of them killed and started again.
    Fleet,
    /// One bridge and two on one PostgreSQL database (needs `--database-url`).
    Replicas,
}

#[derive(Parser, Debug)]
#[command(about = "Measures the bridge against a direct ComfyUI client")]
struct Args {
    /// A running ComfyUI to measure against. Unset: the built-in simulator, started here.
    #[arg(long)]
    comfyui: Option<String>,
    /// Simulated time per node and sampler step, in milliseconds.
    #[arg(long, default_value_t = 0)]
    step_delay_ms: u64,
    /// The bridge's binary. Unset: `comfyui-bridge` beside this binary.
    #[arg(long)]
    bridge_bin: Option<PathBuf>,
    #[arg(long, default_value = "workflows")]
    workflows: PathBuf,
    /// Sequential requests per scenario.
    #[arg(long, default_value_t = 50)]
    requests: usize,
    /// Concurrent clients for the throughput test, and requests each.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    #[arg(long, default_value_t = 4)]
    per_client: usize,
    /// Concurrent clients while the bridge's peak memory is taken.
    #[arg(long, default_value_t = 16)]
    memory_clients: usize,
    /// The web app's site directory, whose `pkg/*.wasm` is measured.
    #[arg(long, default_value = "target/site")]
    site_root: PathBuf,
    /// Visits of the web app for its first-load times (each cold, then warm). 0: skipped.
    #[arg(long, default_value_t = 5)]
    first_loads: usize,
    /// A few requests of each kind, to check the benchmark still runs; numbers mean nothing.
    #[arg(long)]
    smoke: bool,
    /// Keep every image in the bridge's gallery, as a default install does. Off, the run
    /// measures the path from client to ComfyUI and back alone.
    #[arg(long)]
    gallery: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run only this part. Unset: both.
    #[arg(long, value_enum)]
    only: Option<Part>,
    /// Fleet: requests in each run (direct, through the bridge, with a server killed).
    #[arg(long, default_value_t = 1000)]
    fleet_requests: usize,
    /// Fleet: concurrent clients in each run.
    #[arg(long, default_value_t = 64)]
    fleet_clients: usize,
    /// Fleet: the simulators' time per sampler step and per other uncached node. The fleet
    /// always runs on simulators it starts, whatever `--comfyui` says: it kills one.
    #[arg(long, default_value_t = 20)]
    fleet_step_delay_ms: u64,
    /// A PostgreSQL database for the replicas part (`scripts/bench` starts a throwaway one).
    /// Unset: that part is skipped.
    #[arg(long, env = "BENCH_DATABASE_URL")]
    database_url: Option<String>,
    /// Replicas: the share of a core each bridge gets in the capped runs: little enough that
    /// the bridges, not the simulator or the clients beside them, are what limits the run.
    #[arg(long, default_value_t = 0.1)]
    replica_cpu: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.requests = args.requests.min(3);
        args.clients = args.clients.min(4);
        args.per_client = args.per_client.min(2);
        args.memory_clients = args.memory_clients.min(4);
        args.fleet_requests = args.fleet_requests.min(16);
        args.fleet_clients = args.fleet_clients.min(4);
        args.fleet_step_delay_ms = args.fleet_step_delay_ms.min(5);
        args.first_loads = args.first_loads.min(1);
    }
    let bin = procs::bridge_binary(args.bridge_bin.clone())?;
    let http = reqwest::Client::new();

    let wanted = |part: Part| args.only.is_none_or(|only| only == part);
    let mut report = if wanted(Part::Single) {
        single(&args, &bin, &http).await?
    } else {
        Report::default()
    };
    if wanted(Part::Replicas) {
        match &args.database_url {
            Some(url) => {
                let settings = replicas::Settings {
                    database_url: url.clone(),
                    requests: args.requests,
                    clients: args.clients,
                    per_client: args.per_client,
                    replica_cpu: args.replica_cpu,
                };
                report.replicas =
                    Some(replicas::run(&bin, &args.workflows, &settings, &http).await?);
            }
            None => eprintln!("replicas: skipped, no --database-url"),
        }
    }
    if wanted(Part::Fleet) {
        let settings = fleet::Settings {
            requests: args.fleet_requests,
            clients: args.fleet_clients,
            step_delay_ms: args.fleet_step_delay_ms,
            gallery: args.gallery,
        };
        report.fleet = Some(fleet::run(&bin, &args.workflows, &settings, &http).await?);
    }

    println!("{}", report.markdown());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let errors = report
        .concurrency
        .as_ref()
        .map_or(0, |t| t.direct_errors + t.bridge_errors);
    anyhow::ensure!(errors == 0, "{errors} requests failed under concurrency");
    let fleet_errors: usize = report
        .fleet
        .iter()
        .flat_map(|f| &f.runs)
        .map(|r| r.errors)
        .sum();
    anyhow::ensure!(fleet_errors == 0, "{fleet_errors} fleet requests failed");
    let replica_errors: usize = report
        .replicas
        .iter()
        .flat_map(|r| &r.rows)
        .map(|r| r.errors)
        .sum();
    anyhow::ensure!(
        replica_errors == 0,
        "{replica_errors} replica requests failed"
    );
    Ok(())
}

/// The one-server part: the simulator (or `--comfyui`) and a bridge in front of it.
async fn single(
    args: &Args,
    bin: &std::path::Path,
    http: &reqwest::Client,
) -> anyhow::Result<Report> {
    let workflow = Workflow::load(&args.workflows, MODEL)?;
    let sim = match &args.comfyui {
        Some(_) => None,
        None => Some(procs::start_simulator(bin, args.step_delay_ms, &[])?),
    };
    let comfyui = match (&args.comfyui, &sim) {
        (Some(url), _) => url.trim_end_matches('/').to_string(),
        (None, Some(sim)) => sim.url.clone(),
        (None, None) => unreachable!("a simulator is started when no URL is given"),
    };
    procs::wait_ready(http, &format!("{comfyui}/prompt")).await?;
    let data = std::env::temp_dir().join(format!("bridge-bench-{}", uuid::Uuid::new_v4().simple()));
    let site_root = args.site_root.display().to_string();
    let bridge = procs::start_bridge_with(
        bin,
        &comfyui,
        &args.workflows,
        &data,
        args.gallery,
        &[("LEPTOS_SITE_ROOT", &site_root)],
    )?;
    procs::wait_ready(http, &format!("{}/health", bridge.url)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (idle_rss, _) = bridge.memory()?;
    let idle_anonymous = bridge.anonymous_memory()?;

    let backend = match &args.comfyui {
        Some(url) => format!("ComfyUI at {url}"),
        None => format!("simulator, {} ms per step", args.step_delay_ms),
    };
    let backend = format!(
        "{backend}; gallery {}",
        if args.gallery { "on" } else { "off" }
    );
    eprintln!("measuring against the {backend}");
    let result = measure(
        args,
        &bridge,
        &comfyui,
        &workflow,
        http,
        (idle_rss, idle_anonymous),
    )
    .await;
    let first_load = match result {
        Ok(_) if args.first_loads > 0 => Some(first_load(&bridge.url, args.first_loads)),
        _ => None,
    };
    let _ = std::fs::remove_dir_all(&data);
    let mut report = result?;
    if let Some(memory) = &mut report.memory {
        memory.chat = Some(tokenizer_cost(args, bin, &comfyui, http).await?);
    }
    report.backend = backend;
    report.wasm = wasm_size(&args.site_root);
    report.first_load = first_load.transpose()?;
    Ok(report)
}

/// What the first chat request adds, which loads the tokenizer: measured on a bridge of its
/// own, idle and then after one chat stream, so that no other load's memory is counted in.
async fn tokenizer_cost(
    args: &Args,
    bin: &std::path::Path,
    comfyui: &str,
    http: &reqwest::Client,
) -> anyhow::Result<ChatMemory> {
    eprintln!("memory of a fresh bridge before and after its first chat request");
    let data = std::env::temp_dir().join(format!("bridge-bench-{}", uuid::Uuid::new_v4().simple()));
    let site_root = args.site_root.display().to_string();
    let bridge = procs::start_bridge_with(
        bin,
        comfyui,
        &args.workflows,
        &data,
        args.gallery,
        &[("LEPTOS_SITE_ROOT", &site_root)],
    )?;
    let measured = async {
        procs::wait_ready(http, &format!("{}/health", bridge.url)).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (idle, _) = bridge.memory()?;
        bridge::call(http, &bridge.url, MODEL, Call::ChatStream, 512).await?;
        let (after, _) = bridge.memory()?;
        anyhow::Ok(ChatMemory {
            idle_rss_mib: mib(idle),
            rss_after_chat_mib: mib(after),
        })
    }
    .await;
    drop(bridge);
    let _ = std::fs::remove_dir_all(&data);
    measured
}

/// The web app's first load in headless Chromium at 10 Mbit/s, cold and warm
/// (`end2end/first-load.mjs`, on the Playwright install of the browser tests).
fn first_load(url: &str, visits: usize) -> anyhow::Result<FirstLoad> {
    eprintln!("first load of the web app, {visits} visits at 10 Mbit/s");
    let out = std::process::Command::new("node")
        .arg("end2end/first-load.mjs")
        .arg(url)
        .arg(visits.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running node end2end/first-load.mjs (scripts/bench installs it)")?;
    anyhow::ensure!(out.status.success(), "measuring the first load failed");
    serde_json::from_slice(&out.stdout).context("reading the first-load measurement")
}

async fn measure(
    args: &Args,
    bridge: &Proc,
    comfyui: &str,
    workflow: &Workflow,
    http: &reqwest::Client,
    (idle_rss, idle_anonymous): (u64, u64),
) -> anyhow::Result<Report> {
    let mut direct = Direct::connect(comfyui, workflow.clone()).await?;
    eprintln!("warming up");
    for _ in 0..3 {
        direct.generate(512).await?;
        for call in [Call::B64Json, Call::Url] {
            bridge::call(http, &bridge.url, MODEL, call, 512).await?;
        }
    }

    eprintln!("peak memory under {} clients", args.memory_clients);
    let (_, errors) = bridge_load(http, &bridge.url, args.memory_clients, 4).await;
    anyhow::ensure!(
        errors == 0,
        "{errors} requests failed while measuring memory"
    );
    let (_, peak) = bridge.memory()?;
    let mut memory = Memory {
        idle_rss_mib: mib(idle_rss),
        idle_anonymous_mib: mib(idle_anonymous),
        clients: args.memory_clients,
        peak_hwm_mib: mib(peak),
        chat: None,
        rss_after_all_mib: 0.0,
        after_all_anonymous_mib: 0.0,
        requests_before_after_all: 0,
    };

    let wire = Wire::start()?;
    let mut latency = Vec::new();
    for size in [512, 1024] {
        eprintln!("sequential latency at {size}x{size}");
        // Every reply at one size is as long as this one: the same image, the same fields.
        let reply_len = bridge::call(http, &bridge.url, MODEL, Call::B64Json, size).await?;
        let mut wire_times = Vec::with_capacity(args.requests);
        let calls: &[Call] = if size == 512 {
            &[Call::B64Json, Call::Url, Call::ChatStream]
        } else {
            &[Call::B64Json, Call::Url]
        };
        let mut direct_times = Vec::with_capacity(args.requests);
        let mut times = vec![Vec::with_capacity(args.requests); calls.len()];
        let mut cpu = vec![Duration::ZERO; calls.len()];
        // Interleaved, so a drift in the machine's speed touches every scenario alike.
        for _ in 0..args.requests {
            let start = Instant::now();
            direct.generate(size).await?;
            direct_times.push(start.elapsed());
            for (i, &call) in calls.iter().enumerate() {
                let cpu_before = bridge.cpu_time()?;
                let start = Instant::now();
                bridge::call(http, &bridge.url, MODEL, call, size).await?;
                times[i].push(start.elapsed());
                cpu[i] += bridge.cpu_time()?.saturating_sub(cpu_before);
            }
            let start = Instant::now();
            wire.fetch(http, reply_len).await?;
            wire_times.push(start.elapsed());
        }
        let (d50, d90) = (
            percentile(&direct_times, 50.0),
            percentile(&direct_times, 90.0),
        );
        latency.push(LatencyRow {
            scenario: "direct (ComfyUI protocol)".into(),
            size,
            p50_ms: d50,
            p90_ms: d90,
            overhead_p50_ms: None,
            overhead_p90_ms: None,
            cpu_ms_per_request: None,
        });
        for (i, call) in calls.iter().enumerate() {
            let (p50, p90) = (percentile(&times[i], 50.0), percentile(&times[i], 90.0));
            latency.push(LatencyRow {
                scenario: format!("bridge {}", call.label()),
                size,
                p50_ms: p50,
                p90_ms: p90,
                overhead_p50_ms: Some(p50 - d50),
                overhead_p90_ms: Some(p90 - d90),
                cpu_ms_per_request: Some(cpu[i].as_secs_f64() * 1000.0 / args.requests as f64),
            });
        }
        latency.push(LatencyRow {
            scenario: format!(
                "a b64_json reply's {} KB alone, over HTTP",
                reply_len / 1000
            ),
            size,
            p50_ms: percentile(&wire_times, 50.0),
            p90_ms: percentile(&wire_times, 90.0),
            overhead_p50_ms: None,
            overhead_p90_ms: None,
            cpu_ms_per_request: None,
        });
    }

    eprintln!("throughput with {} clients", args.clients);
    let (direct_rate, direct_errors) =
        direct_load(comfyui, workflow, args.clients, args.per_client).await?;
    let (bridge_rate, bridge_errors) =
        bridge_load(http, &bridge.url, args.clients, args.per_client).await;
    // Settled: the gallery's writes, which follow the replies, are done.
    tokio::time::sleep(Duration::from_secs(2)).await;
    memory.rss_after_all_mib = mib(bridge.memory()?.0);
    memory.after_all_anonymous_mib = mib(bridge.anonymous_memory()?);
    memory.requests_before_after_all = 3 * 2
        + args.memory_clients * 4
        + 2
        + 1
        + args.requests * 5
        + args.clients * args.per_client;
    Ok(Report {
        backend: String::new(),
        requests: args.requests,
        latency,
        concurrency: Some(ThroughputRow {
            clients: args.clients,
            requests: args.per_client,
            direct_images_per_s: direct_rate,
            bridge_images_per_s: bridge_rate,
            ratio: bridge_rate / direct_rate,
            direct_errors,
            bridge_errors,
        }),
        memory: Some(memory),
        wasm: Vec::new(),
        first_load: None,
        fleet: None,
        replicas: None,
    })
}

/// `clients` direct clients, each with its own socket, making `each` 512x512 images in turn.
/// Returns images per second and the number of failed requests.
async fn direct_load(
    comfyui: &str,
    workflow: &Workflow,
    clients: usize,
    each: usize,
) -> anyhow::Result<(f64, usize)> {
    let mut connected = Vec::with_capacity(clients);
    for _ in 0..clients {
        connected.push(Direct::connect(comfyui, workflow.clone()).await?);
    }
    let start = Instant::now();
    let failures = join_all(connected.into_iter().map(|mut d| async move {
        let mut failed = 0;
        for _ in 0..each {
            if d.generate(512).await.is_err() {
                failed += 1;
            }
        }
        failed
    }))
    .await;
    Ok(rate(clients * each, start.elapsed(), failures))
}

/// As [`direct_load`], through the bridge with `b64_json`.
async fn bridge_load(
    http: &reqwest::Client,
    base: &str,
    clients: usize,
    each: usize,
) -> (f64, usize) {
    let start = Instant::now();
    let failures = join_all((0..clients).map(|_| async move {
        let mut failed = 0;
        for _ in 0..each {
            if let Err(e) = bridge::call(http, base, MODEL, Call::B64Json, 512).await {
                eprintln!("bridge request failed: {e:#}");
                failed += 1;
            }
        }
        failed
    }))
    .await;
    rate(clients * each, start.elapsed(), failures)
}

fn rate(total: usize, elapsed: Duration, failures: Vec<usize>) -> (f64, usize) {
    let failed: usize = failures.iter().sum();
    ((total - failed) as f64 / elapsed.as_secs_f64(), failed)
}

/// The web app's wasm files, raw and compressed as the bridge sends them, largest first; none
/// if it has not been built.
fn wasm_size(site_root: &std::path::Path) -> Vec<Wasm> {
    let Ok(dir) = std::fs::read_dir(site_root.join("pkg")) else {
        return Vec::new();
    };
    let mut files: Vec<Wasm> = dir
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .filter_map(|file| {
            let bytes = std::fs::metadata(&file).ok()?.len();
            let beside = |ext: &str| {
                let mut name = file.clone().into_os_string();
                name.push(ext);
                std::fs::metadata(name).ok().map(|m| m.len())
            };
            // Without the build's own (a development build), as `gzip -9` makes it.
            let gzip_bytes = match beside(".gz") {
                Some(n) => n,
                None => {
                    let gzip = std::process::Command::new("gzip")
                        .arg("-9c")
                        .arg(&file)
                        .output()
                        .ok()?;
                    gzip.stdout.len() as u64
                }
            };
            Some(Wasm {
                file: file.file_name()?.to_string_lossy().into_owned(),
                bytes,
                gzip_bytes,
                brotli_bytes: beside(".br"),
            })
        })
        .collect();
    files.sort_by_key(|w| std::cmp::Reverse(w.bytes));
    files
}
