//! Several bridges, one state: two replicas, each its own process, on one PostgreSQL database
//! and one image storage (a shared directory, or an S3-compatible server), in front of one
//! simulator. What one replica makes, the other lists, serves and deletes.
//!
//! This file is its own test program (`harness = false`): run with `--replica …` it is one
//! bridge, with the binary's own flags, so the test needs no other binary to be built first.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use clap::Parser;
use common::*;
use serde_json::{Value, json};
use server::config::Cli;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    if let Some(at) = args.iter().position(|a| a == "--replica") {
        server::telemetry::init();
        let cli = Cli::parse_from(
            std::iter::once("comfyui-bridge".to_string()).chain(args[at + 1..].iter().cloned()),
        );
        runtime
            .block_on(server::run(cli.config))
            .expect("the replica runs");
        return;
    }
    runtime.block_on(async {
        one_gallery_across_replicas(Storage::SharedDirectory).await;
        println!("replicas: one gallery on a shared directory: ok");
        one_gallery_across_replicas(Storage::S3).await;
        println!("replicas: one gallery on S3 storage: ok");
        a_retry_on_another_replica_gets_the_same_job().await;
        println!("replicas: a retry on another replica gets the same job: ok");
        a_retry_after_its_replica_died_collects_the_job_it_started().await;
        println!("replicas: a retry after its replica died collects the job it started: ok");
        a_webhook_is_delivered_once_though_its_replica_died_delivering().await;
        println!("replicas: a webhook is delivered once though its replica died delivering: ok");
        async_jobs_outlive_the_replica_that_took_them().await;
        println!("replicas: async jobs outlive the replica that took them: ok");
        a_stream_resumes_on_another_replica_after_its_own_died().await;
        println!("replicas: a stream resumes on another replica after its own died: ok");
    });
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Storage {
    SharedDirectory,
    S3,
}

/// A bridge process, killed when dropped.
struct Replica {
    child: Child,
    url: String,
    data_dir: PathBuf,
}

impl Replica {
    fn start(comfyui: &str, data_dir: &Path, env: &[(&str, String)]) -> Replica {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(std::env::current_exe().expect("this program"))
            .arg("--replica")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--comfyui-url", comfyui])
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--workflows-dir")
            .arg(shipped_workflows())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("a bridge process");
        Replica {
            child,
            url: format!("http://127.0.0.1:{port}"),
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// Waits until the bridge answers and its ComfyUI server is connected.
    async fn wait_until_ready(&self) {
        for _ in 0..400 {
            if let Ok(res) = reqwest::get(format!("{}/health", self.url)).await
                && res.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{} never became ready", self.url);
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let res = reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .expect("the replica answers");
        read(res).await
    }

    /// A generation with an `Idempotency-Key`, sent.
    async fn keyed(&self, key: &str, body: &Value) -> reqwest::Result<reqwest::Response> {
        reqwest::Client::new()
            .post(format!("{}/v1/images/generations", self.url))
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
    }

    /// A generation with an `Idempotency-Key`; `None` when the replica went away meanwhile.
    async fn generate_once(&self, key: &str, body: &Value) -> Option<(u16, Value)> {
        Some(read(self.keyed(key, body).await.ok()?).await)
    }

    /// A streamed generation with an `Idempotency-Key`, checked to have begun.
    async fn stream_once(&self, key: &str, body: &Value) -> reqwest::Response {
        assert_stream(self.keyed(key, body).await.expect("the replica answers")).await
    }

    async fn fetch(&self, path: &str) -> (u16, Vec<u8>) {
        let res = reqwest::get(format!("{}{path}", self.url))
            .await
            .expect("the replica answers");
        (
            res.status().as_u16(),
            res.bytes().await.expect("a body").to_vec(),
        )
    }

    async fn gallery(&self) -> Value {
        let query = json!({"page": 0, "per_page": 50, "search": null, "model": null});
        let (status, page) = self
            .post("/api/gallery/list", json!({"query": query, "api_key": ""}))
            .await;
        assert_eq!(status, 200, "{page}");
        page
    }

    /// The gallery item with this prompt, once this replica lists it.
    async fn listed(&self, prompt: &str) -> Value {
        for _ in 0..400 {
            let page = self.gallery().await;
            if let Some(item) = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["prompt"] == prompt)
            {
                return item.clone();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{} never listed {prompt:?}", self.url);
    }
}

impl Replica {
    /// `kill -9`: no shutdown, no clean-up, connections cut.
    fn kill_9(&self) {
        let status = Command::new("kill")
            .args(["-9", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Files under a directory, at any depth.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let path = e.path();
            if path.is_dir() {
                files_under(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

async fn one_gallery_across_replicas(storage: Storage) {
    let sim = sim_with(sim::SimConfig::default()).await;
    let database = fresh_database().await;
    let scratch = scratch_dir();
    let mut env = vec![("DATABASE_URL", database)];
    // A shared directory is one volume both mount; with S3 each has a data directory of its
    // own, and no image may land in it.
    let (dir_a, dir_b) = match storage {
        Storage::SharedDirectory => (scratch.join("shared"), scratch.join("shared")),
        Storage::S3 => (scratch.join("a"), scratch.join("b")),
    };
    let mut bucket = None;
    if storage == Storage::S3 {
        let (name, endpoint) = fresh_bucket().await;
        env.extend([
            ("STORAGE_URL", format!("s3://{name}/bridge")),
            ("AWS_ENDPOINT_URL", endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ]);
        bucket = Some((name, endpoint));
    }
    let a = Replica::start(&sim.url, &dir_a, &env);
    let b = Replica::start(&sim.url, &dir_b, &env);
    a.wait_until_ready().await;
    b.wait_until_ready().await;

    let prompt = format!("made on A, {storage:?}");
    let (status, made) = a
        .post(
            "/v1/images/generations",
            json!({"model": MODEL, "prompt": prompt, "size": "64x64", "response_format": "url"}),
        )
        .await;
    assert_eq!(status, 200, "{made}");

    // The image served by URL: A handed it out, B serves it too.
    let url = made["data"][0]["url"].as_str().expect("a URL").to_string();
    let path = url.strip_prefix(&a.url).expect("a URL on A");
    let (status, on_a) = a.fetch(path).await;
    assert_eq!(status, 200);
    let (status, on_b) = b.fetch(path).await;
    assert_eq!(status, 200, "B serves the URL A handed out");
    assert_eq!(on_a, on_b);

    // The gallery: B lists what A made, with the same files.
    let item = b.listed(&prompt).await;
    assert_eq!(item["model"], MODEL);
    for key in ["url", "thumb_url"] {
        let file = item[key].as_str().unwrap();
        let (status, from_b) = b.fetch(file).await;
        assert_eq!(status, 200, "B serves {file}");
        let (status, from_a) = a.fetch(file).await;
        assert_eq!(status, 200, "A serves {file}");
        assert_eq!(from_a, from_b);
    }
    let (_, full) = b.fetch(item["url"].as_str().unwrap()).await;
    assert_eq!(dimensions(&full), (64, 64));

    if let Some((name, endpoint)) = &bucket {
        for replica in [&a, &b] {
            let local = files_under(&replica.data_dir)
                .into_iter()
                .filter(|f| f.extension().is_some_and(|e| e == "png" || e == "webp"))
                .collect::<Vec<_>>();
            assert!(local.is_empty(), "images on local disk: {local:?}");
        }
        let listing = reqwest::get(format!("{endpoint}/{name}?list-type=2&prefix=bridge/"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for key in ["url", "thumb_url"] {
            let file = item[key].as_str().unwrap().trim_start_matches('/');
            assert!(
                listing.contains(&format!("<Key>bridge/{file}</Key>")),
                "{file} in the bucket: {listing}"
            );
        }
    }

    // Deleted on B: gone from A's list and from every replica's URLs.
    let (status, deleted) = b
        .post(
            "/api/gallery/delete",
            json!({"id": item["id"], "api_key": ""}),
        )
        .await;
    assert_eq!((status, deleted), (200, json!(true)));
    let listed_on_a = a.gallery().await;
    assert!(
        !listed_on_a["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == item["id"]),
        "A no longer lists it"
    );
    let (status, _) = a.fetch(item["url"].as_str().unwrap()).await;
    assert_eq!(status, 404);

    drop((a, b));
    let _ = std::fs::remove_dir_all(scratch);
}

/// Two replicas on a fresh database and one directory, whose claims run out after 2 s.
async fn two_replicas(
    comfyui: &str,
    dir: &Path,
    more: &[(&'static str, String)],
) -> (Replica, Replica) {
    let mut env = vec![
        ("DATABASE_URL", fresh_database().await),
        ("JOB_LEASE_SECS", "2".to_string()),
    ];
    env.extend(more.iter().cloned());
    let a = Replica::start(comfyui, dir, &env);
    let b = Replica::start(comfyui, dir, &env);
    a.wait_until_ready().await;
    b.wait_until_ready().await;
    (a, b)
}

async fn a_retry_on_another_replica_gets_the_same_job() {
    let sim = sim_with(slow_sim(Duration::from_millis(20))).await;
    let scratch = scratch_dir();
    let (a, b) = two_replicas(&sim.url, &scratch, &[]).await;

    // Sent to A; the client gives up waiting and retries, and the balancer picks B.
    let body = json!({"model": MODEL, "prompt": "one job", "size": "64x64", "n": 2});
    let on_a = a.generate_once("job-1", &body);
    let on_b = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        b.generate_once("job-1", &body).await
    };
    let (on_a, on_b) = tokio::join!(on_a, on_b);
    let ((status_a, made_a), (status_b, made_b)) = (on_a.unwrap(), on_b.unwrap());
    assert_eq!((status_a, status_b), (200, 200), "{made_a} {made_b}");
    assert_eq!(
        returned_images(&made_a),
        returned_images(&made_b),
        "B answers with A's images"
    );
    assert_eq!(sim.sim.submitted().len(), 2, "two images, made once");

    // Later, on either replica: the same images, and no new run.
    let (status, again) = b.generate_once("job-1", &body).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(returned_images(&again), returned_images(&made_a));
    let (status, conflict) = a
        .generate_once("job-1", &json!({"model": MODEL, "prompt": "another"}))
        .await
        .unwrap();
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["error"]["code"], "idempotency_key_reused");
    assert_eq!(sim.sim.submitted().len(), 2);

    drop((a, b));
    let _ = std::fs::remove_dir_all(scratch);
}

/// Prompts another client queues in the take-over test.
const THEIRS: usize = 100;

async fn a_retry_after_its_replica_died_collects_the_job_it_started() {
    // Two ComfyUI servers: A puts one prompt on each, and B must look for each where it is.
    let sims = [
        sim_with(slow_sim(Duration::from_millis(40))).await,
        sim_with(slow_sim(Duration::from_millis(40))).await,
    ];
    let submitted = || sims.iter().map(|s| s.sim.submitted().len()).sum::<usize>();
    let scratch = scratch_dir();
    let (a, b) = two_replicas(&format!("{},{}", sims[0].url, sims[1].url), &scratch, &[]).await;

    let body = json!({"model": MODEL, "prompt": "outlives its bridge", "size": "64x64", "n": 2});
    let on_a = a.generate_once("job-2", &body);
    let kill_a = async {
        // Both prompts are in ComfyUI: then A dies.
        while submitted() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        a.kill_9();
    };
    let (on_a, ()) = tokio::join!(on_a, kill_a);
    assert!(on_a.is_none(), "A died mid-request: {on_a:?}");
    // Another client's queue on the first server, still long when B takes over, so that routing
    // alone would send a new prompt to the second: B must look for each prompt where A put it.
    let (_, theirs) = sims[0].sim.submitted().remove(0);
    let http = reqwest::Client::new();
    for n in 0..THEIRS {
        // Each its own seed: ComfyUI would serve an identical prompt from its cache at once.
        let mut graph = theirs.clone();
        graph["2"]["inputs"]["seed"] = json!(1000 + n);
        let res = http
            .post(format!("{}/prompt", sims[0].url))
            .json(&json!({"prompt": graph}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
    }

    // The client retries with the same key, and the balancer sends it to B.
    let started = std::time::Instant::now();
    let (status, made) = b.generate_once("job-2", &body).await.unwrap();
    assert_eq!(status, 200, "{made}");
    assert_eq!(returned_images(&made).len(), 2);
    assert_eq!(
        submitted(),
        2 + THEIRS,
        "ComfyUI ran the job's prompts once: B collected what A had started, on each server"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    // A never got to keep the images; B did.
    let listed = b.listed("outlives its bridge").await;
    assert_eq!(listed["model"], MODEL);

    drop((a, b));
    let _ = std::fs::remove_dir_all(scratch);
}

async fn a_webhook_is_delivered_once_though_its_replica_died_delivering() {
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let sim = sim_with(sim::SimConfig::default()).await;
    // A's delivery gets no answer: A dies waiting for it, after the job finished.
    let receiver = Receiver::start(&[Answer::Hang]).await;
    let scratch = scratch_dir();
    let (a, b) = two_replicas(
        &sim.url,
        &scratch,
        &[
            ("WEBHOOK_HOSTS", receiver.host.clone()),
            ("WEBHOOK_SECRET", SECRET.to_string()),
        ],
    )
    .await;
    let (status, job) = a
        .post(
            "/v1/images/generations",
            json!({"model": MODEL, "prompt": "hooked", "size": "64x64",
                   "webhook_url": receiver.url}),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    while receiver.attempts().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.kill_9();

    // B finds the delivery A left once A's claim on it runs out, and makes it.
    let delivered = receiver.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(delivered.len(), 1, "attempts: {:?}", receiver.attempts());
    let d = &delivered[0];
    assert_eq!(
        receiver.attempts(),
        [d.id.clone(), d.id.clone()],
        "the same delivery id"
    );
    let key = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        SECRET.trim_start_matches("whsec_"),
    )
    .unwrap();
    assert_eq!(d.signature, webhook_signature(&key, d));
    let body: Value = serde_json::from_slice(&d.body).unwrap();
    assert_eq!(
        (&body["id"], &body["status"]),
        (&job["id"], &json!("succeeded"))
    );
    assert_eq!(sim.sim.submitted().len(), 1);
    // B reads the job too.
    let (status, _) = b
        .fetch(&format!("/v1/jobs/{}", job["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.delivered().len(), 1, "delivered once");

    drop((a, b));
    let _ = std::fs::remove_dir_all(scratch);
}

async fn async_jobs_outlive_the_replica_that_took_them() {
    let sim = sim_with(slow_sim(Duration::from_millis(40))).await;
    let scratch = scratch_dir();
    let (a, b) = two_replicas(&sim.url, &scratch, &[]).await;
    let client = reqwest::Client::new();

    // A generation of two images, and an edit with an uploaded file, both taken by A.
    let res = client
        .post(format!("{}/v1/images/generations", a.url))
        .header("Prefer", "respond-async")
        .json(&json!({"model": MODEL, "prompt": "orphan", "size": "64x64", "n": 2}))
        .send()
        .await
        .unwrap();
    let (status, generation) = read(res).await;
    assert_eq!(status, 202, "{generation}");
    let form = reqwest::multipart::Form::new()
        .text("prompt", "orphaned edit")
        .text("size", "512x512")
        .part(
            "image",
            file_part(png(512, 512, [0, 90, 200, 255], false), "in.png"),
        );
    let res = client
        .post(format!("{}/v1/images/edits", a.url))
        .header("Prefer", "respond-async")
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, edit) = read(res).await;
    assert_eq!(status, 202, "{edit}");
    while sim.sim.submitted().len() < 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.kill_9();

    // Nobody retries: B takes both jobs over by itself once A's claims run out.
    for job in [&generation, &edit] {
        let path = format!("/v1/jobs/{}", job["id"].as_str().unwrap());
        let mut done = Value::Null;
        for _ in 0..600 {
            let (status, body) = b.fetch(&path).await;
            assert_eq!(status, 200);
            done = serde_json::from_slice(&body).unwrap();
            if done["status"] != "running" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    let (_, body) = b
        .fetch(&format!("/v1/jobs/{}", generation["id"].as_str().unwrap()))
        .await;
    let done: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(returned_images(&done["result"]).len(), 2);
    assert_eq!(
        sim.sim.submitted().len(),
        3,
        "ComfyUI ran each prompt once: B collected what A had submitted"
    );

    drop((a, b));
    let _ = std::fs::remove_dir_all(scratch);
}

async fn a_stream_resumes_on_another_replica_after_its_own_died() {
    let sim = sim_with(slow_sim(Duration::from_millis(30))).await;
    let scratch = scratch_dir();
    let (a, b) = two_replicas(&sim.url, &scratch, &[]).await;

    let body = json!({"model": "sdxl", "prompt": "streamed on", "size": "512x512", "steps": 12,
                      "n": 2, "stream": true, "stream_progress": true});
    let mut on_a = a.stream_once("stream-1", &body).await;
    let raw = read_until(&mut on_a, "\"sampling\"").await;
    a.kill_9();
    let seen = events_read(&raw);
    assert!(!seen.is_empty());

    // The client sends the stream again, and the balancer picks B: it gets what A had sent,
    // then takes the job over where ComfyUI has it, and streams the rest.
    let retry = read_sse(b.stream_once("stream-1", &body).await)
        .await
        .events;
    assert_eq!(retry[..seen.len()], seen[..], "B begins with what A sent");
    let images = completed_images(&retry);
    assert_eq!(images.len(), 2, "each image once: {retry:?}");
    assert_ne!(images[0], images[1]);
    assert_eq!(
        sim.sim.submitted().len(),
        2,
        "ComfyUI ran the job's prompts once: B collected what A had started"
    );

    drop((a, b));
    let _ = std::fs::remove_dir_all(scratch);
}
