//! Models, health, reload and authentication.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn models_list_the_loaded_workflows() {
    let h = start().await;
    let (status, body) = h.get("/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for id in ["z-image-turbo", "sdxl", MODEL] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let first = &body["data"][0];
    assert_eq!(first["object"], "model");
    assert_eq!(first["owned_by"], "comfyui");
    assert!(first["created"].as_u64().is_some());

    let (status, model) = h.get("/v1/models/sdxl").await;
    assert_eq!(status, 200);
    assert_eq!(model["id"], "sdxl");
    assert_eq!(model["kind"], "txt2img");
    // Stable across calls and restarts: derived from the model, not the clock.
    let again = start().await.get("/v1/models/sdxl").await.1;
    assert_eq!(model["created"], again["created"]);

    let (status, err) = h.get("/v1/models/nope").await;
    assert_eq!(status, 404);
    assert_eq!(err["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn health_reports_servers_and_models() {
    let h = start().await;
    let (status, body) = h.get("/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["demo"], false);
    assert_eq!(body["servers"][0]["reachable"], true);
    assert_eq!(body["servers"][0]["socket_connected"], true);
    assert!(body["workflows"]["models"].as_array().unwrap().len() >= 3);
}

#[tokio::test]
async fn api_keys_are_required_when_configured() {
    let h = start_with(|c| c.api_key = vec!["sk-one".into(), "sk-two".into()]).await;
    let url = format!("{}/v1/models", h.url);
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer sk-one-extra"),
        Some("sk-one"),
    ] {
        let mut req = h.http.get(&url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let (status, body) = read(req.send().await.unwrap()).await;
        assert_eq!(status, 401, "{auth:?}");
        // As OpenAI: a missing key has no code, a wrong one `invalid_api_key`; the messages
        // say which. A key not sent as `Bearer` is not found, and the message says how.
        let message = body["error"]["message"].as_str().unwrap_or_default();
        if auth.is_none_or(|a| !a.starts_with("Bearer ")) {
            assert_eq!(body["error"]["code"], serde_json::Value::Null);
            assert!(
                message.starts_with("You didn't provide an API key."),
                "{message}"
            );
        } else {
            assert_eq!(body["error"]["code"], "invalid_api_key", "{auth:?}");
            assert!(
                message.starts_with("Incorrect API key provided."),
                "{message}"
            );
        }
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
    for key in ["sk-one", "sk-two"] {
        let res = h.http.get(&url).bearer_auth(key).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
    let (status, _) = h
        .post("/v1/images/generations", json!({"prompt": "x"}))
        .await;
    assert_eq!(status, 401);
    assert!(h.sim.sim.submitted().is_empty());
    let (status, _) = h.post("/reload", json!({})).await;
    assert_eq!(status, 401);
    // Health stays open for load balancers and monitors, but where ComfyUI runs is only told
    // with a key.
    let (status, body) = h.get("/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["servers"][0]["reachable"], true);
    assert_eq!(body["servers"][0]["url"], "");
    assert_eq!(body["servers"][0]["name"], "server 1");
    let sim_url = h.sim.url.trim_end_matches('/');
    assert!(!body.to_string().contains(sim_url), "{body}");
    let res = h
        .http
        .get(format!("{}/health", h.url))
        .bearer_auth("sk-two")
        .send()
        .await
        .unwrap();
    let (_, body) = read(res).await;
    assert!(
        body["servers"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with(sim_url),
        "{body}"
    );
}

#[tokio::test]
async fn reload_keeps_the_last_good_set_on_error() {
    let dir = scratch_dir();
    for f in ["weightfree-txt2img.json", "weightfree-txt2img.toml"] {
        std::fs::copy(shipped_workflows().join(f), dir.join(f)).unwrap();
    }
    let h = start_with(|c| c.workflows_dir = dir.clone()).await;
    std::fs::write(dir.join("ui-format.json"), r#"{"nodes": [], "links": []}"#).unwrap();
    let (status, body) = h.post("/reload", json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("ui-format.json"),
        "{body}"
    );
    let (_, models) = h.get("/v1/models").await;
    let own = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m.get("alias_of").is_none() && m["status"] == "ready")
        .count();
    assert_eq!(own, 1);
    let refused = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "ui-format")
        .expect("the refused file is listed");
    assert_eq!(refused["status"], "unavailable");
    let (status, health) = h.get("/health").await;
    assert_eq!(status, 200);
    assert!(
        health["workflows"]["errors"][0]
            .as_str()
            .unwrap()
            .contains("ui-format.json")
    );
    // The last good set still generates.
    let (status, _) = h.generate(json!({"prompt": "x", "size": "64x64"})).await;
    assert_eq!(status, 200);

    std::fs::remove_file(dir.join("ui-format.json")).unwrap();
    std::fs::copy(shipped_workflows().join("sdxl.json"), dir.join("sdxl.json")).unwrap();
    let (status, body) = h.post("/reload", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["models"], json!(["sdxl", MODEL]));
    let (_, health) = h.get("/health").await;
    assert!(health["workflows"].get("errors").is_none());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn demo_mode_runs_the_simulator_itself() {
    let dir = scratch_dir();
    let mut config = server::config::Config::for_tests(shipped_workflows(), dir.join("data"));
    config.listen = ([127, 0, 0, 1], 0).into();
    config.demo = true;
    config.demo_step_delay_ms = 0;
    let bridge = server::start(config).await.unwrap();
    let http = reqwest::Client::new();
    let health: serde_json::Value = http
        .get(format!("{}/health", bridge.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["demo"], true);
    let res = http
        .post(format!("{}/v1/images/generations", bridge.url()))
        .json(&json!({"prompt": "demo", "model": MODEL, "size": "64x64"}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(dimensions(&decode_b64(&body["data"][0])), (64, 64));
    bridge.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn no_loaded_model_is_explained() {
    let dir = scratch_dir();
    let h = start_with(|c| c.workflows_dir = dir.clone()).await;
    let (status, body) = h.generate(json!({"prompt": "x"})).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("No model is loaded"),
        "{body}"
    );
    let res = h
        .http
        .get(format!("{}/health", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let _ = std::fs::remove_dir_all(dir);
}
