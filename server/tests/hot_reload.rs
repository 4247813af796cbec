//! The workflows directory is watched: a file added, changed or removed changes the models
//! without a restart or `POST /reload`, and a broken file is refused alone, its model keeping
//! its last good version.

mod common;

use std::{path::Path, time::Duration};

use common::*;
use serde_json::{Value, json};

fn copy_model(dir: &Path, from: &str, to: &str) {
    for ext in ["json", "toml"] {
        std::fs::copy(
            shipped_workflows().join(format!("{from}.{ext}")),
            dir.join(format!("{to}.{ext}")),
        )
        .unwrap();
    }
}

/// Waits until `/v1/models` satisfies `want`, and returns the list.
async fn wait_for_models(h: &Harness, what: &str, want: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let (_, list) = h.get("/v1/models").await;
        if want(&list) {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, list) = h.get("/v1/models").await;
    panic!("{what} never happened: {list}");
}

#[tokio::test]
async fn workflow_files_apply_as_they_change() {
    let dir = scratch_dir();
    copy_model(&dir, MODEL, MODEL);
    let h = start_with(|c| c.workflows_dir = dir.clone()).await;

    // Added: served without a reload.
    copy_model(&dir, MODEL, "fresh");
    wait_for_models(&h, "the new model appearing", |l| {
        listed(l, "fresh").is_some()
    })
    .await;
    let (status, body) = h
        .generate(json!({"model": "fresh", "prompt": "x", "size": "64x64"}))
        .await;
    assert_eq!(status, 200, "{body}");

    // Broken: refused alone; the model keeps its last good version, and the error shows.
    std::fs::write(dir.join("fresh.json"), "{ this is not json").unwrap();
    let list = wait_for_models(&h, "the error showing", |l| {
        listed(l, "fresh").is_some_and(|m| m.get("problems").is_some())
    })
    .await;
    let fresh = listed(&list, "fresh").unwrap();
    assert_eq!(fresh["status"], "ready", "{fresh}");
    assert!(
        fresh["problems"][0]
            .as_str()
            .unwrap()
            .contains("fresh.json"),
        "{fresh}"
    );
    let (status, body) = h
        .generate(json!({"model": "fresh", "prompt": "x", "size": "64x64"}))
        .await;
    assert_eq!(status, 200, "the last good version serves: {body}");
    let health: Value = h.fetch("/health").await.json().await.unwrap();
    assert!(
        health["workflows"]["errors"][0]
            .as_str()
            .unwrap()
            .contains("fresh.json")
    );
    assert_eq!(health["status"], "ok");

    // A new file that is broken from the start: listed as unavailable, and a 400 that says why.
    std::fs::write(dir.join("mangled.json"), "[1, 2, 3]").unwrap();
    let list = wait_for_models(&h, "the broken file listing", |l| {
        listed(l, "mangled").is_some()
    })
    .await;
    assert_eq!(listed(&list, "mangled").unwrap()["status"], "unavailable");
    let (status, body) = h.generate(json!({"model": "mangled", "prompt": "x"})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_workflow");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mangled.json"),
        "{body}"
    );

    // Removed: gone.
    for f in ["fresh.json", "fresh.toml", "mangled.json"] {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
    wait_for_models(&h, "the removed models going", |l| {
        listed(l, "fresh").is_none() && listed(l, "mangled").is_none()
    })
    .await;
    let health: Value = h.fetch("/health").await.json().await.unwrap();
    assert!(health["workflows"].get("errors").is_none(), "{health}");
    assert!(h.sim.sim.submitted().len() == 2);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn one_bad_file_at_start_leaves_the_others_served() {
    let dir = scratch_dir();
    copy_model(&dir, MODEL, MODEL);
    std::fs::write(
        dir.join("broken.json"),
        r#"{"1": {"class_type": "EmptyImage"}}"#,
    )
    .unwrap();
    let h = start_with(|c| c.workflows_dir = dir.clone()).await;
    let (status, body) = h
        .generate(json!({"model": MODEL, "prompt": "x", "size": "64x64"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let health: Value = h.fetch("/health").await.json().await.unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert!(
        health["workflows"]["errors"][0]
            .as_str()
            .unwrap()
            .contains("broken.json")
    );
    let _ = std::fs::remove_dir_all(dir);
}
