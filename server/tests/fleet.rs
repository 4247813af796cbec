//! The fleet, with each ComfyUI server its own process: four simulators, one lacking a node
//! type, one lacking every model file, one slow and busy with another client's prompts, and
//! one killed mid-job and started again. A mixed load of two models goes through one bridge.
//!
//! This file is its own test program (`harness = false`): run with `--simulator …` it is one
//! of the simulated servers, so the test needs no other binary to be built first.

mod common;

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use axum::{Json, routing::get};
use clap::Parser;
use common::*;
use futures::future::join_all;
use serde_json::{Value, json};
use server::config::{Cli, Command as Subcommand};

/// Requests in the run, from this many clients at once.
const REQUESTS: usize = 48;
const CLIENTS: usize = 8;
/// Prompts another client puts on the slow server before the run.
const THEIRS: usize = 10;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    if let Some(at) = args.iter().position(|a| a == "--simulator") {
        runtime.block_on(simulator(&args[at + 1..]));
    } else {
        runtime.block_on(the_fleet_serves_a_mixed_load_through_failures());
        println!("fleet: ok");
    }
}

/// One simulated server, as `comfyui-bridge simulator` runs it, plus a route that tells the
/// test what it was sent (a crash forgets it, as ComfyUI forgets its queue).
async fn simulator(args: &[String]) {
    // The binary's own flags, so this server is what `comfyui-bridge simulator …` would be.
    let cli = Cli::parse_from(
        ["comfyui-bridge", "simulator"]
            .into_iter()
            .map(String::from)
            .chain(args.iter().cloned()),
    );
    let Some(Subcommand::Simulator(args)) = cli.command else {
        unreachable!("the simulator subcommand was given")
    };
    let sim = sim::Simulator::new(args.sim_config());
    let seen = sim.clone();
    let app = sim.router().route(
        "/test/submitted",
        get(move || {
            let seen = seen.clone();
            async move {
                Json(
                    seen.submitted()
                        .into_iter()
                        .map(|(_, g)| g)
                        .collect::<Vec<_>>(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .expect("bind");
    axum::serve(listener, app).await.expect("serve");
}

/// A simulator process, killed when dropped.
struct Server {
    child: Child,
    args: Vec<String>,
    url: String,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let port = free_port();
        let mut all = vec!["--listen".to_string(), format!("127.0.0.1:{port}")];
        all.extend(args.iter().map(|a| a.to_string()));
        let child = spawn(&all);
        Server {
            child,
            args: all,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Like `kill -9`: the process and everything it held are gone at once.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.kill();
        self.child = spawn(&self.args);
    }

    async fn submitted(&self) -> Vec<Value> {
        reqwest::get(format!("{}/test/submitted", self.url))
            .await
            .expect("the simulator answers")
            .json()
            .await
            .expect("a list")
    }

    async fn queue_is_empty(&self) -> bool {
        let queue: Value = reqwest::get(format!("{}/queue", self.url))
            .await
            .expect("the simulator answers")
            .json()
            .await
            .expect("a queue");
        queue["queue_running"].as_array().is_some_and(Vec::is_empty)
            && queue["queue_pending"].as_array().is_some_and(Vec::is_empty)
    }

    async fn wait_until_up(&self) {
        for _ in 0..200 {
            if reqwest::get(format!("{}/system_stats", self.url))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{} never came up", self.url);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(args: &[String]) -> Child {
    Command::new(std::env::current_exe().expect("this program"))
        .arg("--simulator")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("a simulator process")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What one request asks for: the model, and a seed of its own.
fn request(i: usize) -> Value {
    if i.is_multiple_of(2) {
        json!({"model": "sdxl", "prompt": "a fleet", "size": "512x512", "steps": 6,
               "seed": 1000 + i})
    } else {
        json!({"model": MODEL, "prompt": "a fleet", "size": "64x64", "seed": 1000 + i})
    }
}

async fn the_fleet_serves_a_mixed_load_through_failures() {
    let no_noise = Server::start(&["--without-nodes", "ImageAddNoise", "--step-delay-ms", "5"]);
    let no_files = Server::start(&["--model-files", "", "--step-delay-ms", "5"]);
    let slow = Server::start(&["--step-delay-ms", "150"]);
    let mut dies = Server::start(&["--step-delay-ms", "15"]);
    let servers = [&no_noise, &no_files, &slow, &dies];
    for s in servers {
        s.wait_until_up().await;
    }
    let names = ["no-noise", "no-files", "slow", "dies"];
    let urls: Vec<String> = servers
        .iter()
        .zip(names)
        .map(|(s, name)| format!("{}#name={name}", s.url))
        .collect();
    let h = start_with(|c| {
        c.comfyui_url = urls;
        c.max_concurrent_jobs = 16;
    })
    .await;
    wait_for_every_model(&h).await;

    // Another client's prompts on the slow server: the bridge must see that queue, and send
    // a burst of jobs for the servers the model runs on to the other two.
    let graph: Value = serde_json::from_str(
        &std::fs::read_to_string(shipped_workflows().join("weightfree-txt2img.json")).unwrap(),
    )
    .unwrap();
    let http = reqwest::Client::new();
    for _ in 0..THEIRS {
        let res = http
            .post(format!("{}/prompt", slow.url))
            .json(&json!({"prompt": graph, "client_id": "someone-else"}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let burst = (0..6).map(|i| h.generate(request(2 * i + 1)));
    for (status, body) in join_all(burst).await {
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        slow.submitted().await.len(),
        THEIRS,
        "a job went to the server with another client's queue"
    );

    // The load, and the server killed while it runs one of the bridge's jobs, then back.
    let started = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let clients = (0..CLIENTS).map(|_| async {
        let mut answers = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= REQUESTS {
                return answers;
            }
            answers.push((i, h.generate(request(i)).await));
        }
    });
    let chaos = async {
        for _ in 0..500 {
            let queue: Value = match reqwest::get(format!("{}/queue", dies.url)).await {
                Ok(res) => res.json().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            if queue["queue_running"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        dies.kill();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        dies.restart();
    };
    let (answers, ()) = tokio::join!(join_all(clients), chaos);
    let answers: Vec<(usize, (u16, Value))> = answers.into_iter().flatten().collect();
    let took = started.elapsed();
    dies.wait_until_up().await;

    // No client saw an error, and every image has the seed it asked for.
    assert_eq!(answers.len(), REQUESTS);
    for (i, (status, body)) in &answers {
        assert_eq!(*status, 200, "request {i}: {body}");
        assert_eq!(body["data"][0]["seed"], request(*i)["seed"], "request {i}");
    }

    // Every job landed on a server that can run it.
    let no_noise_jobs = no_noise.submitted().await;
    let no_files_jobs = no_files.submitted().await;
    assert!(
        no_noise_jobs
            .iter()
            .all(|g| !g.to_string().contains("ImageAddNoise")),
        "a weight-free job went to the server without its node"
    );
    assert!(
        no_files_jobs
            .iter()
            .all(|g| !g.to_string().contains(".safetensors")),
        "an SDXL job went to the server without model files"
    );

    let slow_jobs = slow.submitted().await.len().saturating_sub(THEIRS);
    let metrics = h.fetch("/metrics").await.text().await.unwrap();
    let count = |metric: &str, server: &str| -> u64 {
        let prefix = format!("{metric}{{server=\"{server}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
    };
    let done: Vec<u64> = names
        .iter()
        .map(|n| count("bridge_comfyui_jobs_total", n))
        .collect();
    // The burst's six and the run's.
    assert_eq!(
        done.iter().sum::<u64>(),
        (REQUESTS + 6) as u64,
        "jobs per server: {done:?}"
    );

    // The killed server's job moved on: it failed, and a job failed over from it.
    assert!(
        count("bridge_comfyui_failovers_total", "dies") >= 1,
        "{metrics}"
    );
    assert!(
        count("bridge_comfyui_failures_total", "dies") >= 1,
        "{metrics}"
    );

    // Nothing is left queued anywhere (the bridge's jobs; the other client's ran to the end).
    for _ in 0..400 {
        let mut empty = true;
        for s in [&no_noise, &no_files, &slow, &dies] {
            empty &= s.queue_is_empty().await;
        }
        if empty {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for s in [&no_noise, &no_files, &slow, &dies] {
        assert!(s.queue_is_empty().await, "prompts left on {}", s.url);
    }

    // A failed-over image is the image its seed makes anywhere: ask again for every request
    // of the model that ran on the killed server, and compare.
    for (i, (_, body)) in answers.iter().filter(|(i, _)| i.is_multiple_of(2)).take(12) {
        let (status, again) = h.generate(request(*i)).await;
        assert_eq!(status, 200);
        assert_eq!(
            decode_b64(&again["data"][0]),
            decode_b64(&body["data"][0]),
            "request {i} made another image"
        );
    }

    // Health says what each server runs, and what went wrong with the one that died.
    let health: Value = h.fetch("/health").await.json().await.unwrap();
    let server = |name: &str| {
        health["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    let runs = |name: &str| server(name)["models"].as_array().unwrap().clone();
    assert!(!runs("no-noise").contains(&json!(MODEL)) && runs("no-noise").contains(&json!("sdxl")));
    assert!(runs("no-files").contains(&json!(MODEL)) && !runs("no-files").contains(&json!("sdxl")));
    assert!(server("dies")["last_error"].is_string(), "{health}");
    println!(
        "fleet: {REQUESTS} requests in {:.1} s; jobs per server {done:?} (the slow one {slow_jobs})",
        took.as_secs_f64()
    );
}

/// Waits until every server's capabilities are read and both models are ready.
async fn wait_for_every_model(h: &Harness) {
    for _ in 0..400 {
        let (_, list) = h.get("/v1/models").await;
        let ready = |id: &str| {
            list["data"]
                .as_array()
                .is_some_and(|d| d.iter().any(|m| m["id"] == id && m["status"] == "ready"))
        };
        let health: Value = h.fetch("/health").await.json().await.unwrap();
        let all_read = health["servers"]
            .as_array()
            .is_some_and(|s| s.iter().all(|s| s["socket_connected"] == true));
        if ready("sdxl") && ready(MODEL) && all_read {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the models never became ready on the fleet");
}
