//! Every failure a client can see: the right status, OpenAI's envelope, and bad input never
//! reaching ComfyUI.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

async fn rejected(h: &Harness, body: serde_json::Value) -> (u16, serde_json::Value) {
    let (status, resp) = h.generate(body).await;
    assert!(
        h.sim.sim.submitted().is_empty(),
        "bad input reached ComfyUI"
    );
    (status, resp)
}

#[tokio::test]
async fn bad_values_are_400_naming_the_parameter() {
    let h = start().await;
    let cases = [
        (json!({"prompt": "", "model": MODEL}), "prompt"),
        (json!({"prompt": "   ", "model": MODEL}), "prompt"),
        (json!({"model": MODEL}), "prompt"),
        (json!({"prompt": "x", "model": MODEL, "n": 0}), "n"),
        (json!({"prompt": "x", "model": MODEL, "n": 11}), "n"),
        (json!({"prompt": "x", "model": MODEL, "n": "two"}), "n"),
        (json!({"prompt": "x", "model": MODEL, "n": -1}), "n"),
        (
            json!({"prompt": "x", "model": MODEL, "size": "1000x1000"}),
            "size",
        ),
        (
            json!({"prompt": "x", "model": MODEL, "size": "big"}),
            "size",
        ),
        (
            json!({"prompt": "x", "model": MODEL, "size": " 512 X 512 "}),
            "size",
        ),
        (
            json!({"prompt": "x", "model": MODEL, "response_format": "gif"}),
            "response_format",
        ),
        (
            json!({"prompt": "x", "model": MODEL, "output_format": "gif"}),
            "output_format",
        ),
        (
            json!({"prompt": "x", "model": MODEL, "output_compression": 101}),
            "output_compression",
        ),
        (
            json!({"prompt": "x", "model": MODEL, "quality": "ultra"}),
            "quality",
        ),
        (
            json!({"prompt": "x", "model": MODEL, "style": "gothic"}),
            "style",
        ),
        (
            json!({"prompt": "x", "model": MODEL, "background": "transparent"}),
            "background",
        ),
        (json!({"prompt": "x", "model": "sdxl", "steps": 0}), "steps"),
        (
            json!({"prompt": "x", "model": "sdxl", "steps": 100000}),
            "steps",
        ),
        (json!({"prompt": "x", "model": "sdxl", "cfg": -1}), "cfg"),
        (json!({"prompt": "x", "model": MODEL, "seed": -5}), "seed"),
        (
            json!({"prompt": "x", "model": MODEL, "partial_images": 4}),
            "partial_images",
        ),
        (
            json!({"prompt": "x".repeat(32001), "model": MODEL}),
            "prompt",
        ),
    ];
    for (body, param) in cases {
        let (status, resp) = rejected(&h, body.clone()).await;
        assert_eq!(status, 400, "{body} → {resp}");
        assert_eq!(resp["error"]["param"], param, "{body} → {resp}");
        assert_eq!(resp["error"]["type"], "invalid_request_error");
    }
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let h = start().await;
    let url = format!("{}/v1/images/generations", h.url);
    let bodies: [(&str, &str); 4] = [
        ("application/json", "{\"prompt\": \"x\""),
        ("application/json", "[1,2]"),
        ("application/json", ""),
        ("text/plain", "{\"prompt\": \"x\"}"),
    ];
    for (ct, body) in bodies {
        let res = h
            .http
            .post(&url)
            .header("content-type", ct)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let (status, resp) = read(res).await;
        assert_eq!(status, 400, "{ct} {body:?} → {resp}");
    }
    assert!(h.sim.sim.submitted().is_empty());
}

#[tokio::test]
async fn unknown_model_is_404_model_not_found() {
    let h = start().await;
    let (status, resp) = rejected(&h, json!({"prompt": "x", "model": "no-such-model"})).await;
    assert_eq!(status, 404);
    assert_eq!(resp["error"]["code"], "model_not_found");
    assert_eq!(resp["error"]["param"], "model");
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-model")
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_envelope() {
    let h = start().await;
    let (status, _) = h.get("/v1/nothing/here").await;
    assert_eq!(status, 404);
    let (status, _) = h.get("/v1/images/generations").await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn comfyui_validation_errors_are_502_with_its_message() {
    let dir = scratch_dir();
    // A value of the wrong type: the bridge checks node types, files and ranges against the
    // server's schemas before sending, but conversions are ComfyUI's own to refuse.
    std::fs::write(
        dir.join("broken.json"),
        json!({
            "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
            "2": {"class_type": "ImageAddNoise", "inputs": {"image": ["1", 0], "seed": 1, "strength": "a lot"}},
            "3": {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "{{prompt}}"}},
            "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
            "5": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "t"}}
        })
        .to_string(),
    )
    .unwrap();
    std::fs::write(dir.join("broken.toml"), "sizes = [\"64x64\"]\n").unwrap();
    let h = start_with(|c| c.workflows_dir = dir.clone()).await;
    let (status, resp) = h.generate(json!({"prompt": "x", "model": "broken"})).await;
    assert_eq!(status, 502, "{resp}");
    assert_eq!(resp["error"]["code"], "comfyui_validation_error");
    let msg = resp["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("node 2 (ImageAddNoise)") && msg.contains("strength"),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn execution_errors_are_502_with_the_exception() {
    let h = start().await;
    h.sim.sim.fail_next_execution(None);
    let res = h
        .http
        .post(format!("{}/v1/images/generations", h.url))
        .json(&json!({"prompt": "x", "model": MODEL, "size": "64x64"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-should-retry"], "false");
    let (status, resp) = read(res).await;
    assert_eq!(status, 502, "{resp}");
    assert_eq!(resp["error"]["code"], "comfyui_execution_error");
    assert!(
        resp["error"]["message"].as_str().unwrap().contains("Error"),
        "{resp}"
    );
}

#[tokio::test]
async fn comfyui_down_is_503_with_retry_after() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let h = start_with(|c| c.comfyui_url = vec![format!("http://127.0.0.1:{port}")]).await;
    let res = h
        .http
        .post(format!("{}/v1/images/generations", h.url))
        .json(&json!({"prompt": "x", "model": MODEL, "size": "64x64"}))
        .send()
        .await
        .unwrap();
    assert!(res.headers().contains_key("retry-after"));
    let (status, resp) = read(res).await;
    assert_eq!(status, 503, "{resp}");
    assert_eq!(resp["error"]["code"], "comfyui_unavailable");
    // Health is a status report, not an error: its 503 carries the report itself.
    let res = h
        .http
        .get(format!("{}/health", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let health: serde_json::Value = res.json().await.unwrap();
    assert_eq!(health["status"], "unavailable");
    assert_eq!(health["servers"][0]["reachable"], false);
}

#[tokio::test]
async fn a_dropped_socket_loses_no_job() {
    let h = start().await;
    h.sim.sim.set_step_delay(Duration::from_millis(150));
    let req = h.generate(json!({"prompt": "x", "model": "sdxl", "size": "512x512", "steps": 10}));
    let dropper = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        h.sim.sim.drop_sockets();
    };
    let ((status, body), ()) = tokio::join!(req, dropper);
    assert_eq!(status, 200, "{body}");
    assert_eq!(dimensions(&decode_b64(&body["data"][0])), (512, 512));
    // Messages may have been missed while the socket was down, so history had the last word.
    assert!(h.sim.sim.history_reads() > 0);
}

#[tokio::test]
async fn a_crash_mid_job_fails_cleanly() {
    let mut h = start().await;
    h.sim.sim.set_step_delay(Duration::from_millis(200));
    let url = format!("{}/v1/images/generations", h.url);
    let http = h.http.clone();
    let req = tokio::spawn(async move {
        let res = http
            .post(url)
            .json(&json!({"prompt": "x", "model": "sdxl", "size": "512x512", "steps": 20}))
            .send()
            .await
            .unwrap();
        read(res).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.sim.crash().await;
    let (status, resp) = tokio::time::timeout(Duration::from_secs(60), req)
        .await
        .expect("the request ends")
        .unwrap();
    assert!(status == 502 || status == 503, "{status} {resp}");
}

#[tokio::test]
async fn timeouts_are_504_and_cancel_the_job() {
    let h = start_with(|c| c.generation_timeout_secs = 1).await;
    h.sim.sim.set_step_delay(Duration::from_millis(300));
    let (status, resp) = h
        .generate(json!({"prompt": "x", "model": "sdxl", "size": "512x512", "steps": 30}))
        .await;
    assert_eq!(status, 504, "{resp}");
    assert_eq!(resp["error"]["code"], "generation_timeout");
    assert!(
        h.wait_until_idle(Duration::from_secs(5)).await,
        "the job stayed in ComfyUI"
    );
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_its_job() {
    let h = start().await;
    h.sim.sim.set_step_delay(Duration::from_millis(300));
    // Two jobs: one runs, the other waits in the queue; both must go.
    let url = format!("{}/v1/images/generations", h.url);
    let http = h.http.clone();
    let req = tokio::spawn(async move {
        http.post(url)
            .json(&json!({"prompt": "x", "model": "sdxl", "size": "512x512", "steps": 50, "n": 2}))
            .send()
            .await
    });
    for _ in 0..100 {
        if h.sim.sim.running_id().is_some() && !h.sim.sim.pending_ids().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(h.sim.sim.running_id().is_some(), "the job never started");
    req.abort();
    assert!(
        h.wait_until_idle(Duration::from_secs(5)).await,
        "jobs left in ComfyUI: running {:?}, pending {:?}",
        h.sim.sim.running_id(),
        h.sim.sim.pending_ids()
    );
}

#[tokio::test]
async fn too_many_waiting_jobs_get_429() {
    let h = start_with(|c| {
        c.max_concurrent_jobs = 1;
        c.max_queued_jobs = 1;
    })
    .await;
    let (status, resp) = h
        .generate(json!({"prompt": "x", "model": MODEL, "size": "64x64", "n": 3}))
        .await;
    assert_eq!(status, 429, "{resp}");
    assert!(h.sim.sim.submitted().is_empty());
}
