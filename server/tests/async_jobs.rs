//! Async jobs: `Prefer: respond-async` (or a `webhook_url`) answers 202 with a job, read at
//! `/v1/jobs/{id}`, cancelled with `DELETE`; webhooks go only to allowed hosts, signed, once.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const SECRET: &str = "a webhook secret";

async fn submit(h: &Harness, body: Value) -> (u16, Value, Option<String>) {
    let res = h
        .http
        .post(format!("{}/v1/images/generations", h.url))
        .header("Prefer", "respond-async")
        .json(&body)
        .send()
        .await
        .unwrap();
    let location = res
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string());
    let (status, body) = read(res).await;
    (status, body, location)
}

/// The job once it is no longer running.
async fn settled(h: &Harness, id: &str) -> Value {
    for _ in 0..400 {
        let (status, job) = h.get(&format!("/v1/jobs/{id}")).await;
        assert_eq!(status, 200, "{job}");
        if job["status"] != "running" {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("job {id} never finished");
}

#[tokio::test]
async fn an_async_job_is_accepted_at_once_and_read_when_done() {
    let h = start_full(slow_sim(Duration::from_millis(10)), |_| {}).await;
    let (status, job, location) = submit(
        &h,
        json!({"model": MODEL, "prompt": "later", "size": "64x64", "n": 2}),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["object"], "image.job");
    assert_eq!(job["status"], "running");
    let id = job["id"].as_str().unwrap();
    assert_eq!(location.as_deref(), Some(format!("/v1/jobs/{id}").as_str()));

    let done = settled(&h, id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let images = returned_images(&done["result"]);
    assert_eq!(images.len(), 2);
    assert_eq!(
        dimensions(&decode_b64(&done["result"]["data"][0])),
        (64, 64)
    );
    assert!(done["finished_at"].as_i64().unwrap() >= done["created_at"].as_i64().unwrap());
}

#[tokio::test]
async fn jobs_are_found_only_by_their_maker() {
    let h = start_with(|c| c.api_key = vec!["sk-a".into(), "sk-b".into()]).await;
    let res = h
        .http
        .post(format!("{}/v1/images/generations", h.url))
        .bearer_auth("sk-a")
        .header("Prefer", "respond-async")
        .json(&json!({"model": MODEL, "prompt": "mine", "size": "64x64"}))
        .send()
        .await
        .unwrap();
    let (status, job) = read(res).await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap();
    let read_as = |key: Option<&'static str>, path: String| {
        let mut req = h.http.get(format!("{}{path}", h.url));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        async move { read(req.send().await.unwrap()).await }
    };
    let (status, _) = read_as(Some("sk-a"), format!("/v1/jobs/{id}")).await;
    assert_eq!(status, 200);
    let (status, err) = read_as(Some("sk-b"), format!("/v1/jobs/{id}")).await;
    assert_eq!(status, 404, "another key's job is not found: {err}");
    assert_envelope(&err);
    let (status, _) = read_as(None, format!("/v1/jobs/{id}")).await;
    assert_eq!(status, 401);
    let (status, err) = read_as(Some("sk-a"), "/v1/jobs/nope".into()).await;
    assert_eq!(status, 404);
    assert_envelope(&err);
}

#[tokio::test]
async fn cancelling_stops_the_job_in_comfyui() {
    // Slow enough that the job would run for seconds more.
    let h = start_full(slow_sim(Duration::from_millis(1000)), |_| {}).await;
    let (_, job, _) = submit(
        &h,
        json!({"model": MODEL, "prompt": "stop me", "size": "64x64"}),
    )
    .await;
    let id = job["id"].as_str().unwrap();
    while h.sim.sim.submitted().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let res = h
        .http
        .delete(format!("{}/v1/jobs/{id}", h.url))
        .send()
        .await
        .unwrap();
    let (status, cancelled) = read(res).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert!(
        h.wait_until_idle(Duration::from_millis(1500)).await,
        "ComfyUI dropped the prompt"
    );
    assert_eq!(settled(&h, id).await["status"], "cancelled");
}

#[tokio::test]
async fn a_failed_job_says_why() {
    let h = start().await;
    h.sim.sim.fail_next_execution(None);
    let (_, job, _) = submit(
        &h,
        json!({"model": MODEL, "prompt": "fails", "size": "64x64"}),
    )
    .await;
    let done = settled(&h, job["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(done["error"]["type"].is_string());
    assert!(done.get("result").is_none());
}

#[tokio::test]
async fn async_and_streaming_do_not_mix() {
    let h = start().await;
    let (status, err, _) = submit(
        &h,
        json!({"model": MODEL, "prompt": "p", "size": "64x64", "stream": true}),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert_envelope(&err);
    assert!(h.sim.sim.submitted().is_empty());
}

#[tokio::test]
async fn webhooks_go_only_to_allowed_hosts_signed_and_once() {
    let receiver = Receiver::start(&[Answer::Fail]).await;
    let host = receiver.host.clone();
    let h = start_with(move |c| {
        c.webhook_hosts = vec![host];
        c.webhook_secret = Some(SECRET.into());
    })
    .await;
    // Another host: refused before anything runs.
    let (status, err) = h
        .post(
            "/v1/images/generations",
            json!({"model": MODEL, "prompt": "p", "size": "64x64",
                   "webhook_url": "http://169.254.169.254/latest"}),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["param"], "webhook_url");
    assert!(h.sim.sim.submitted().is_empty());

    // A webhook_url alone makes the request a job.
    let (status, job) = h
        .post(
            "/v1/images/generations",
            json!({"model": MODEL, "prompt": "hooked", "size": "64x64",
                   "webhook_url": receiver.url}),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    // The first attempt fails; the retry, a second later, is delivered.
    let delivered = receiver.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(delivered.len(), 1, "attempts: {:?}", receiver.attempts());
    let d = &delivered[0];
    assert_eq!(
        receiver.attempts(),
        [d.id.clone(), d.id.clone()],
        "one id for every attempt"
    );
    assert_eq!(d.signature, webhook_signature(SECRET.as_bytes(), d));
    let body: Value = serde_json::from_slice(&d.body).unwrap();
    assert_eq!(body["id"], job["id"]);
    assert_eq!(body["status"], "succeeded");
    assert_eq!(returned_images(&body["result"]).len(), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.delivered().len(), 1, "delivered once");
}

#[tokio::test]
async fn without_a_secret_there_are_no_webhooks() {
    let receiver = Receiver::start(&[]).await;
    let host = receiver.host.clone();
    let h = start_with(move |c| c.webhook_hosts = vec![host]).await;
    let (status, err) = h
        .post(
            "/v1/images/generations",
            json!({"model": MODEL, "prompt": "p", "size": "64x64", "webhook_url": receiver.url}),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("WEBHOOK_SECRET")
    );
}
