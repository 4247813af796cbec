//! Requests with an `Idempotency-Key`: a retry gets the first request's images instead of a
//! second run, while it runs and after; the same key with another request is refused.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

async fn send(h: &Harness, key: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = h
        .http
        .post(format!("{}/v1/images/generations", h.url))
        .json(&body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    read(req.send().await.unwrap()).await
}

#[tokio::test]
async fn a_retry_while_running_and_after_gets_the_same_images_from_one_run() {
    let h = start_full(slow_sim(Duration::from_millis(20)), |_| {}).await;
    let body = json!({"model": MODEL, "prompt": "once", "size": "64x64", "n": 2});
    let first = send(&h, Some("retry-1"), body.clone());
    let second = async {
        // The first is running by now.
        tokio::time::sleep(Duration::from_millis(150)).await;
        send(&h, Some("retry-1"), body.clone()).await
    };
    let ((s1, b1), (s2, b2)) = tokio::join!(first, second);
    assert_eq!((s1, s2), (200, 200), "{b1} {b2}");
    assert_eq!(
        returned_images(&b1),
        returned_images(&b2),
        "the retry gets the very same images"
    );
    assert_eq!(h.sim.sim.submitted().len(), 2, "two images, made once");

    let (status, again) = send(&h, Some("retry-1"), body.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(returned_images(&again), returned_images(&b1));
    assert_eq!(h.sim.sim.submitted().len(), 2);

    // Without a key, or with another, the request runs again.
    let (status, _) = send(&h, None, body.clone()).await;
    assert_eq!(status, 200);
    let (status, other) = send(&h, Some("retry-2"), body).await;
    assert_eq!(status, 200);
    assert_ne!(
        returned_images(&other),
        returned_images(&b1),
        "new seeds, new images"
    );
    assert_eq!(h.sim.sim.submitted().len(), 6);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_refused() {
    let h = start().await;
    let body = json!({"model": MODEL, "prompt": "first", "size": "64x64"});
    let (status, _) = send(&h, Some("k-409"), body).await;
    assert_eq!(status, 200);
    let (status, err) = send(
        &h,
        Some("k-409"),
        json!({"model": MODEL, "prompt": "second", "size": "64x64"}),
    )
    .await;
    assert_eq!(status, 409, "{err}");
    assert_envelope(&err);
    assert_eq!(err["error"]["code"], "idempotency_key_reused");
    assert_eq!(h.sim.sim.submitted().len(), 1);
}

#[tokio::test]
async fn keys_are_checked_and_belong_to_their_api_key() {
    let h = start_with(|c| c.api_key = vec!["sk-a".into(), "sk-b".into()]).await;
    let long = "x".repeat(256);
    for bad in ["", "has space", long.as_str()] {
        let res = h
            .http
            .post(format!("{}/v1/images/generations", h.url))
            .bearer_auth("sk-a")
            .header("Idempotency-Key", bad)
            .json(&json!({"model": MODEL, "prompt": "p", "size": "64x64"}))
            .send()
            .await
            .unwrap();
        let (status, err) = read(res).await;
        assert_eq!(status, 400, "{bad:?}: {err}");
        assert_envelope(&err);
        assert_eq!(err["error"]["param"], "Idempotency-Key");
    }
    assert!(
        h.sim.sim.submitted().is_empty(),
        "bad keys never reach ComfyUI"
    );

    // Two clients with different API keys who pick the same key do not meet.
    let body = json!({"model": MODEL, "prompt": "p", "size": "64x64"});
    let mut seen = Vec::new();
    for api_key in ["sk-a", "sk-b"] {
        let res = h
            .http
            .post(format!("{}/v1/images/generations", h.url))
            .bearer_auth(api_key)
            .header("Idempotency-Key", "shared")
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, made) = read(res).await;
        assert_eq!(status, 200, "{made}");
        seen.push(returned_images(&made));
    }
    assert_ne!(seen[0], seen[1]);
    assert_eq!(h.sim.sim.submitted().len(), 2);
}

#[tokio::test]
async fn a_resent_edit_form_is_the_same_request() {
    let h = start().await;
    let form = || {
        reqwest::multipart::Form::new()
            .text("prompt", "make it blue")
            .text("size", "512x512")
            .part(
                "image",
                file_part(png(512, 512, [200, 0, 0, 255], false), "in.png"),
            )
    };
    let mut results = Vec::new();
    for _ in 0..2 {
        // A new form each time, with a new boundary, as an SDK's retry sends it.
        let res = h
            .http
            .post(format!("{}/v1/images/edits", h.url))
            .header("Idempotency-Key", "edit-1")
            .multipart(form())
            .send()
            .await
            .unwrap();
        let (status, body) = read(res).await;
        assert_eq!(status, 200, "{body}");
        results.push(returned_images(&body));
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(h.sim.sim.submitted().len(), 1);
}

#[tokio::test]
async fn a_failed_job_is_not_kept_so_a_retry_runs_it_again() {
    let h = start().await;
    let body = json!({"model": MODEL, "prompt": "fails once", "size": "64x64"});
    h.sim.sim.fail_next_execution(None);
    let (status, err) = send(&h, Some("fail-1"), body.clone()).await;
    assert!(status >= 500, "{status} {err}");
    let (status, made) = send(&h, Some("fail-1"), body).await;
    assert_eq!(status, 200, "{made}");
    assert_eq!(h.sim.sim.submitted().len(), 2);
}

/// A generation as an OpenAI SDK sends it: without a key, with the attempt's number.
async fn send_attempt(h: &Harness, attempt: u32, body: &Value) -> (u16, Value) {
    let res = h
        .http
        .post(format!("{}/v1/images/generations", h.url))
        .header("x-stainless-retry-count", attempt.to_string())
        .json(body)
        .send()
        .await
        .unwrap();
    read(res).await
}

#[tokio::test]
async fn an_sdk_retry_without_a_key_gets_the_images_of_its_first_attempt() {
    let h = start_full(slow_sim(Duration::from_millis(250)), |_| {}).await;
    let body = json!({"model": MODEL, "prompt": "timed out", "size": "64x64", "n": 2});

    // The first attempt times out on the client's side while the job runs (its first node
    // alone takes longer than the client waits)...
    let gave_up = h
        .http
        .post(format!("{}/v1/images/generations", h.url))
        .header("x-stainless-retry-count", "0")
        .timeout(Duration::from_millis(150))
        .json(&body)
        .send()
        .await;
    assert!(gave_up.is_err(), "the job outlasts the client's patience");
    // ...and its retry waits for that job instead of queueing the work again.
    let (status, first) = send_attempt(&h, 1, &body).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(h.sim.sim.submitted().len(), 2, "two images, made once");
    let (status, again) = send_attempt(&h, 2, &body).await;
    assert_eq!(status, 200);
    assert_eq!(returned_images(&again), returned_images(&first));
    assert_eq!(h.sim.sim.submitted().len(), 2);

    // A new call of the same request is a first attempt: it runs, and its retry gets its images.
    let (status, second) = send_attempt(&h, 0, &body).await;
    assert_eq!(status, 200);
    assert_ne!(returned_images(&second), returned_images(&first));
    assert_eq!(h.sim.sim.submitted().len(), 4);
    let (status, retried) = send_attempt(&h, 1, &body).await;
    assert_eq!(status, 200);
    assert_eq!(returned_images(&retried), returned_images(&second));
    assert_eq!(h.sim.sim.submitted().len(), 4);

    // A retry of another request has no first attempt to find: it runs.
    let other = json!({"model": MODEL, "prompt": "never sent before", "size": "64x64"});
    let (status, _) = send_attempt(&h, 1, &other).await;
    assert_eq!(status, 200);
    assert_eq!(h.sim.sim.submitted().len(), 5);
}

#[tokio::test]
async fn an_sdk_retry_belongs_to_its_credentials_and_follows_a_failure_with_a_new_run() {
    let h = start_with(|c| c.api_key = vec!["sk-a".into(), "sk-b".into()]).await;
    let body = json!({"model": MODEL, "prompt": "mine", "size": "64x64"});
    let attempt = |api_key: &'static str, count: u32| {
        h.http
            .post(format!("{}/v1/images/generations", h.url))
            .bearer_auth(api_key)
            .header("x-stainless-retry-count", count.to_string())
            .json(&body)
            .send()
    };
    let (status, a) = read(attempt("sk-a", 0).await.unwrap()).await;
    assert_eq!(status, 200, "{a}");
    let (status, b) = read(attempt("sk-b", 1).await.unwrap()).await;
    assert_eq!(status, 200, "{b}");
    assert_ne!(
        returned_images(&a),
        returned_images(&b),
        "another API key's retry never gets these images"
    );
    assert_eq!(h.sim.sim.submitted().len(), 2);

    // A first attempt that fails leaves nothing to attach to: its retry runs the job again.
    h.sim.sim.fail_next_execution(None);
    let fresh = json!({"model": MODEL, "prompt": "fails once", "size": "64x64"});
    let send = |count: u32| {
        h.http
            .post(format!("{}/v1/images/generations", h.url))
            .bearer_auth("sk-a")
            .header("x-stainless-retry-count", count.to_string())
            .json(&fresh)
            .send()
    };
    let (status, failed) = read(send(0).await.unwrap()).await;
    assert!(status >= 500, "{status} {failed}");
    let (status, made) = read(send(1).await.unwrap()).await;
    assert_eq!(status, 200, "{made}");
    assert_eq!(h.sim.sim.submitted().len(), 4);
}

/// A streamed generation, with `headers` (a key, or an SDK's attempt).
async fn stream(h: &Harness, headers: &[(&str, &str)], body: &Value) -> reqwest::Response {
    let mut req = h
        .http
        .post(format!("{}/v1/images/generations", h.url))
        .json(body);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    assert_stream(req.send().await.unwrap()).await
}

/// A client whose stream broke sends it again: the job went on meanwhile, and the retry gets
/// what the first stream had sent, then the rest as it happens, from the one run.
async fn a_retried_stream_resumes(attempts: [&[(&str, &str)]; 3]) {
    let h = start_full(slow_sim(Duration::from_millis(15)), |_| {}).await;
    let body = json!({"model": "sdxl", "prompt": "resumed", "size": "512x512", "steps": 12,
                      "n": 2, "stream": true, "stream_progress": true, "partial_images": 1});
    let mut first = stream(&h, attempts[0], &body).await;
    let raw = read_until(&mut first, "\"sampling\"").await;
    drop(first);
    let seen = events_read(&raw);
    assert!(!seen.is_empty());

    let retry = read_sse(stream(&h, attempts[1], &body).await).await.events;
    assert_eq!(
        retry[..seen.len()],
        seen[..],
        "the retry begins with what the first stream sent"
    );
    let statuses: Vec<Value> = retry.iter().map(|e| e.json()["status"].clone()).collect();
    assert!(
        statuses[seen.len()..].iter().any(|s| s == "sampling"),
        "and follows the job's progress: {statuses:?}"
    );
    let images = completed_images(&retry);
    assert_eq!(images.len(), 2, "each image once");
    assert_ne!(images[0], images[1]);
    assert_eq!(h.sim.sim.submitted().len(), 2, "two images, made once");

    // Once the job is done, the whole stream again, and no new run.
    let again = read_sse(stream(&h, attempts[2], &body).await).await.events;
    assert_eq!(again, retry);
    assert_eq!(h.sim.sim.submitted().len(), 2);
}

#[tokio::test]
async fn a_stream_sent_again_with_its_key_resumes_with_the_progress_so_far() {
    let key: &[(&str, &str)] = &[("Idempotency-Key", "stream-1")];
    a_retried_stream_resumes([key, key, key]).await;
}

#[tokio::test]
async fn an_sdk_retry_of_a_stream_resumes_it() {
    a_retried_stream_resumes([
        &[("x-stainless-retry-count", "0")],
        &[("x-stainless-retry-count", "1")],
        &[("x-stainless-retry-count", "2")],
    ])
    .await;
}

#[tokio::test]
async fn a_failed_stream_is_not_kept_so_a_retry_runs_it_again() {
    let h = start().await;
    let key: &[(&str, &str)] = &[("Idempotency-Key", "stream-2")];
    let body = json!({"model": MODEL, "prompt": "x", "size": "64x64", "stream": true});
    h.sim.sim.fail_next_execution(None);
    let failed = read_sse(stream(&h, key, &body).await).await.events;
    let last = failed.last().expect("an event");
    assert_eq!(last.event.as_deref(), Some("error"), "{failed:?}");
    assert_envelope(&last.json());
    assert!(completed_images(&failed).is_empty());

    let ok = read_sse(stream(&h, key, &body).await).await.events;
    assert_eq!(completed_images(&ok).len(), 1, "{ok:?}");
    assert_eq!(
        h.sim.sim.submitted().len(),
        2,
        "run again after the failure"
    );

    // A stream and a plain reply are two requests: the same key for both is refused.
    let (status, err) = send(
        &h,
        Some("stream-2"),
        json!({"model": MODEL, "prompt": "x", "size": "64x64"}),
    )
    .await;
    assert_eq!(status, 409, "{err}");
}
