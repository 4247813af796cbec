//! Several ComfyUI servers when one of them fails or is taken out: a job whose server dies
//! mid-run finishes on another with the same seed, a draining server gets no new jobs, and a
//! server's job limit holds.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// The seed a submitted SDXL graph samples with.
fn seed_of(graph: &Value) -> Value {
    graph
        .as_object()
        .unwrap()
        .values()
        .find(|n| n["class_type"] == "KSampler")
        .map(|n| n["inputs"]["seed"].clone())
        .expect("a KSampler")
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} never happened");
}

#[tokio::test]
async fn a_job_whose_server_dies_mid_run_finishes_elsewhere_with_the_same_seed() {
    let mut first = sim_with(slow_sim(Duration::from_millis(100))).await;
    let first_url = first.url.clone();
    let h = start_with(|c| c.comfyui_url = vec![first_url, c.comfyui_url[0].clone()]).await;
    wait_until("the first server's socket", || first.sim.socket_count() > 0).await;

    let request = h.generate(
        json!({"prompt": "x", "model": "sdxl", "size": "512x512", "steps": 40, "seed": 77}),
    );
    let crash = async {
        wait_until("the job to start on the first server", || {
            first.sim.running_id().is_some()
        })
        .await;
        // A crash forgets everything, so what it was sent is read before.
        let sent = first.sim.submitted();
        first.crash().await;
        sent
    };
    let ((status, body), sent) = tokio::join!(request, crash);
    assert_eq!(status, 200, "the client saw the failure: {body}");
    assert_eq!(body["data"][0]["seed"], 77);
    let first_try = &sent[0].1;
    let second_try = &h.sim.sim.submitted()[0].1;
    assert_eq!(seed_of(first_try), seed_of(second_try));
    assert_eq!(seed_of(second_try), 77);

    let metrics = h.fetch("/metrics").await.text().await.unwrap();
    let first_name = first.url.trim_start_matches("http://");
    let line = format!("bridge_comfyui_failovers_total{{server=\"{first_name}\"}} 1");
    assert!(
        metrics.lines().any(|l| l == line),
        "no `{line}` in\n{metrics}"
    );

    let health: Value = h.fetch("/health").await.json().await.unwrap();
    let failed = &health["servers"][0];
    assert!(
        failed["down"] == true || failed["reachable"] == false,
        "{health}"
    );
    assert!(failed["last_error"].is_string(), "{health}");
}

#[tokio::test]
async fn a_draining_server_gets_no_new_jobs_until_resumed() {
    let other = sim_with(sim::SimConfig::default()).await;
    let other_url = other.url.clone();
    let h = start_with(|c| c.comfyui_url = vec![c.comfyui_url[0].clone(), other_url]).await;
    wait_until("both sockets", || other.sim.socket_count() > 0).await;
    let (_, servers) = h.get("/admin/servers").await;
    let name = servers[0]["name"].as_str().unwrap().to_string();

    let res = h
        .http
        .post(format!("{}/admin/servers/{name}/drain", h.url))
        .send()
        .await
        .unwrap();
    let (status, state) = read(res).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state[0]["draining"], true);
    for _ in 0..3 {
        let (status, _) = h
            .generate(json!({"prompt": "x", "model": MODEL, "size": "64x64"}))
            .await;
        assert_eq!(status, 200);
    }
    assert!(
        h.sim.sim.submitted().is_empty(),
        "a draining server got a job"
    );
    assert_eq!(other.sim.submitted().len(), 3);
    let health: Value = h.fetch("/health").await.json().await.unwrap();
    assert_eq!(health["servers"][0]["draining"], true);

    let res = h
        .http
        .post(format!("{}/admin/servers/{name}/resume", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Both idle now: the first in the list takes the job.
    let (status, _) = h
        .generate(json!({"prompt": "x", "model": MODEL, "size": "64x64"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(h.sim.sim.submitted().len(), 1);

    let res = h
        .http
        .post(format!("{}/admin/servers/nowhere:1/drain", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(read(res).await.0, 404);
}

#[tokio::test]
async fn admin_routes_need_the_key() {
    let h = start_with(|c| c.api_key = vec!["sk-admin".into()]).await;
    let res = h.fetch("/admin/servers").await;
    assert_eq!(read(res).await.0, 401);
    let res = h
        .http
        .get(format!("{}/admin/servers", h.url))
        .bearer_auth("sk-admin")
        .send()
        .await
        .unwrap();
    let (status, servers) = read(res).await;
    assert_eq!(status, 200);
    assert_eq!(servers.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_server_at_its_job_limit_gets_no_more_until_one_ends() {
    let h = start_full(slow_sim(Duration::from_millis(20)), |c| {
        c.comfyui_url = vec![format!("{}#max_jobs=1&name=small", c.comfyui_url[0])];
    })
    .await;
    let (_, servers) = h.get("/admin/servers").await;
    assert_eq!(servers[0]["name"], "small");
    assert_eq!(servers[0]["max_jobs"], 1);
    let mut most_waiting = 0;
    let request =
        h.generate(json!({"prompt": "x", "model": "sdxl", "size": "512x512", "steps": 5, "n": 3}));
    let watch = async {
        loop {
            most_waiting = most_waiting.max(h.sim.sim.pending_ids().len());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let (status, body) = tokio::select! {
        r = request => r,
        () = watch => unreachable!(),
    };
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 3);
    assert_eq!(most_waiting, 0, "a second job waited in ComfyUI's queue");
    assert_eq!(h.sim.sim.submitted().len(), 3);
}

#[tokio::test]
async fn metrics_count_routes_errors_and_servers() {
    let h = start_with(|c| {
        c.comfyui_url = vec![format!("{}#name=gpu-a", c.comfyui_url[0])];
    })
    .await;
    for _ in 0..2 {
        let (status, _) = h
            .generate(json!({"prompt": "x", "model": MODEL, "size": "64x64"}))
            .await;
        assert_eq!(status, 200);
    }
    let (status, _) = h
        .generate(json!({"prompt": "x", "model": "no-such-model"}))
        .await;
    assert_eq!(status, 404);
    let res = h.fetch("/metrics").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = res.text().await.unwrap();
    for line in [
        r#"bridge_http_requests_total{route="/v1/images/generations",method="POST",status="200"} 2"#,
        r#"bridge_http_requests_total{route="/v1/images/generations",method="POST",status="404"} 1"#,
        r#"bridge_http_errors_total{route="/v1/images/generations",method="POST",code="model_not_found"} 1"#,
        r#"bridge_comfyui_jobs_total{server="gpu-a"} 2"#,
        r#"bridge_comfyui_failures_total{server="gpu-a"} 0"#,
        r#"bridge_comfyui_up{server="gpu-a"} 1"#,
        r#"bridge_comfyui_jobs_in_flight{server="gpu-a"} 0"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
    }
    assert!(
        text.contains(r#"bridge_http_request_duration_seconds_count{route="/v1/images/generations",method="POST"} 3"#),
        "{text}"
    );
}
