//! `stream: true` on the image endpoints over HTTP against the simulator: OpenAI's partial and
//! completed events, the bridge's opt-in progress events, errors and cancellation.

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;
use reqwest::multipart::Form;
use serde_json::{Value, json};

fn image_of(event: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(event["b64_json"].as_str().expect("b64_json"))
        .expect("base64")
}

/// Checks every field the SDKs' event types require and returns the events' JSON.
fn image_events(sse: &Sse, prefix: &str) -> Vec<Value> {
    sse.events
        .iter()
        .map(|e| {
            let v = e.json();
            assert_eq!(
                e.event.as_deref(),
                v["type"].as_str(),
                "event name is the type"
            );
            let kind = v["type"].as_str().unwrap();
            if kind.ends_with(".progress") {
                return v;
            }
            assert!(kind.starts_with(prefix), "{kind}");
            for field in ["b64_json", "size", "quality", "background", "output_format"] {
                assert!(v[field].is_string(), "{field} missing in {kind}");
            }
            assert!(v["created_at"].is_u64());
            match kind.rsplit('.').next() {
                Some("partial_image") => assert!(v["partial_image_index"].is_u64()),
                Some("completed") => {
                    let usage = &v["usage"];
                    for field in ["total_tokens", "input_tokens", "output_tokens"] {
                        assert!(usage[field].is_u64(), "{field} missing in {usage}");
                    }
                    assert!(usage["input_tokens_details"]["text_tokens"].is_u64());
                    assert!(usage["input_tokens_details"]["image_tokens"].is_u64());
                }
                other => panic!("unexpected event {other:?}"),
            }
            v
        })
        .collect()
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_generation_streams_partials_then_the_image() {
    let h = start().await;
    let res = h
        .post_stream(
            "/v1/images/generations",
            json!({"model": "sdxl", "prompt": "a castle", "size": "512x512", "steps": 9,
                   "stream": true, "partial_images": 2}),
        )
        .await;
    let sse = read_sse(res).await;
    let events = image_events(&sse, "image_generation.");
    assert_eq!(
        kinds(&events),
        [
            "image_generation.partial_image",
            "image_generation.partial_image",
            "image_generation.completed"
        ]
    );
    assert_eq!(events[0]["partial_image_index"], 0);
    assert_eq!(events[1]["partial_image_index"], 1);
    for partial in &events[..2] {
        assert_eq!(
            &image_of(partial)[..8],
            b"\x89PNG\r\n\x1a\n",
            "partials in output_format"
        );
        assert_ne!(image_of(partial), image_of(&events[2]));
    }
    let done = &events[2];
    assert_eq!(dimensions(&image_of(done)), (512, 512));
    assert_eq!(done["size"], "512x512");
    assert_eq!(done["output_format"], "png");
    assert_eq!(done["usage"]["input_tokens_details"]["text_tokens"], 2);
    assert!(done.get("partial_image_index").is_none());
    assert!(done.get("image_index").is_none() && done.get("seed").is_none());
    // OpenAI ends image streams without [DONE]; the SDKs stop at the end of the body.
    assert!(sse.events.iter().all(|e| e.data != "[DONE]"));
}

#[tokio::test]
async fn no_partials_unless_asked_and_one_completed_event_per_image() {
    let h = start().await;
    let res = h
        .post_stream(
            "/v1/images/generations",
            json!({"model": "sdxl", "prompt": "x", "size": "512x512", "steps": 4, "n": 2,
                   "stream": true, "output_format": "jpeg"}),
        )
        .await;
    let events = image_events(&read_sse(res).await, "image_generation.");
    assert_eq!(
        kinds(&events),
        ["image_generation.completed", "image_generation.completed"]
    );
    for e in &events {
        assert_eq!(&image_of(e)[..2], b"\xff\xd8", "a JPEG as asked");
        assert_eq!(e["output_format"], "jpeg");
    }
}

#[tokio::test]
async fn progress_events_only_when_asked() {
    let h = start().await;
    let res = h
        .post_stream(
            "/v1/images/generations",
            json!({"model": "sdxl", "prompt": "x", "size": "512x512", "steps": 5,
                   "stream": true, "stream_progress": true}),
        )
        .await;
    let events = image_events(&read_sse(res).await, "image_generation.");
    let progress: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "image_generation.progress")
        .collect();
    assert_eq!(progress[0]["status"], "queued");
    assert_eq!(progress[0]["queue_position"], 0);
    let steps: Vec<u64> = progress
        .iter()
        .filter(|p| p["status"] == "sampling")
        .map(|p| {
            assert_eq!(p["steps"], 5);
            p["step"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(steps, [1, 2, 3, 4, 5]);
    assert!(progress.iter().all(|p| p["image_index"] == 0));
    let done = events.last().unwrap();
    assert_eq!(done["type"], "image_generation.completed");
    // The bridge's extension fields come with stream_progress only.
    assert_eq!(done["image_index"], 0);
    assert!(done["seed"].is_u64());
}

#[tokio::test]
async fn the_queue_position_counts_the_jobs_ahead() {
    let h = start_full(slow_sim(Duration::from_millis(40)), |_| {}).await;
    let busy = h.generate(
        json!({"model": "sdxl", "prompt": "first", "size": "512x512",
                                 "steps": 30}),
    );
    let queued = async {
        while h.sim.sim.running_id().is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let res = h
            .post_stream(
                "/v1/images/generations",
                json!({"model": MODEL, "prompt": "second", "size": "64x64",
                       "stream": true, "stream_progress": true}),
            )
            .await;
        image_events(&read_sse(res).await, "image_generation.")
    };
    let ((status, _), events) = tokio::join!(busy, queued);
    assert_eq!(status, 200);
    assert_eq!(events[0]["status"], "queued");
    assert_eq!(events[0]["queue_position"], 1);
}

#[tokio::test]
async fn each_image_of_a_batch_comes_the_moment_it_is_done() {
    // ComfyUI runs one prompt at a time, so the four images finish one after the other.
    let h = start_full(slow_sim(Duration::from_millis(15)), |_| {}).await;
    let res = h
        .post_stream(
            "/v1/images/generations",
            json!({"model": "sdxl", "prompt": "x", "size": "512x512", "steps": 6, "n": 4,
                   "stream": true, "stream_progress": true}),
        )
        .await;
    let events = image_events(&read_sse(res).await, "image_generation.");
    let at = |pred: &dyn Fn(&Value) -> bool| events.iter().position(pred);
    let completed = |i: u64| {
        at(&|e: &Value| e["type"] == "image_generation.completed" && e["image_index"] == i)
            .unwrap_or_else(|| panic!("image {i} never completed"))
    };
    let last_sampling_of_3 = events
        .iter()
        .rposition(|e| e["status"] == "sampling" && e["image_index"] == 3)
        .expect("image 3 sampled");
    assert!(
        completed(0) < last_sampling_of_3,
        "the first image is sent while the last is still sampling"
    );
    let order: Vec<usize> = (0..4).map(completed).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");

    // The last image waits behind the others, and is told as each one leaves the queue.
    let told: Vec<u64> = events
        .iter()
        .filter(|e| e["status"] == "queued" && e["image_index"] == 3)
        .filter_map(|e| e["queue_position"].as_u64())
        .collect();
    assert!(told.len() >= 2, "the position moves: {told:?}");
    assert!(told.windows(2).all(|w| w[0] > w[1]), "{told:?}");
    assert_eq!(told.last(), Some(&1), "{told:?}");
}

/// A streamed multipart edit of a small red picture on `sdxl-img2img`, with `fields` added.
async fn stream_edit(h: &Harness, fields: &[(&str, &str)]) -> reqwest::Response {
    let mut f = Form::new()
        .text("model", "sdxl-img2img")
        .text("prompt", "oil painting")
        .text("stream", "true");
    for (name, value) in fields {
        f = f.text(name.to_string(), value.to_string());
    }
    let f = f.part(
        "image",
        file_part(png(64, 64, [200, 30, 30, 255], false), "a.png"),
    );
    h.http
        .post(format!("{}/v1/images/edits", h.url))
        .multipart(f)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_edit_streams_image_edit_events() {
    let h = start().await;
    let res = stream_edit(
        &h,
        &[("size", "512x512"), ("steps", "6"), ("partial_images", "1")],
    )
    .await;
    let events = image_events(&read_sse(assert_stream(res).await).await, "image_edit.");
    assert_eq!(
        kinds(&events),
        ["image_edit.partial_image", "image_edit.completed"]
    );
    assert_eq!(dimensions(&image_of(&events[1])), (512, 512));
}

/// The web app's Edit page sends its form this way: progress asked for as form text.
#[tokio::test]
async fn a_form_edit_can_ask_for_progress_events() {
    let h = start().await;
    let res = stream_edit(&h, &[("steps", "4"), ("stream_progress", "true")]).await;
    let events = image_events(&read_sse(assert_stream(res).await).await, "image_edit.");
    let steps: Vec<_> = events
        .iter()
        .filter(|e| e["status"] == "sampling")
        .map(|e| e["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [1, 2, 3, 4]);
    assert_eq!(events.last().unwrap()["type"], "image_edit.completed");
    assert_eq!(events.last().unwrap()["image_index"], 0);
}

#[tokio::test]
async fn bad_stream_requests_are_plain_errors() {
    let h = start().await;
    for (body, param) in [
        (
            json!({"model": MODEL, "prompt": "x", "stream": true, "partial_images": 4}),
            "partial_images",
        ),
        (
            json!({"model": MODEL, "prompt": "", "stream": true}),
            "prompt",
        ),
        (
            json!({"model": MODEL, "prompt": "x", "stream": "yes"}),
            "stream",
        ),
    ] {
        let (status, reply) = h.generate(body.clone()).await;
        assert_eq!(status, 400, "{body} -> {reply}");
        assert_eq!(reply["error"]["param"], param);
    }
    assert!(h.sim.sim.submitted().is_empty());
}

#[tokio::test]
async fn a_failed_stream_ends_with_an_error_event() {
    let h = start().await;
    h.sim.sim.fail_next_execution(None);
    let res = h
        .post_stream(
            "/v1/images/generations",
            json!({"model": MODEL, "prompt": "x", "size": "64x64", "stream": true}),
        )
        .await;
    let sse = read_sse(res).await;
    assert_eq!(sse.events.len(), 1, "{:?}", sse.events);
    let error = &sse.events[0];
    assert_eq!(error.event.as_deref(), Some("error"));
    let error = error.json();
    assert_envelope(&error);
    assert_eq!(error["error"]["type"], "server_error");
}

#[tokio::test]
async fn closing_an_image_stream_cancels_the_job() {
    let h = start_full(slow_sim(Duration::from_millis(50)), |_| {}).await;
    h.close_mid_stream(
        "/v1/images/generations",
        json!({"model": "sdxl", "prompt": "x", "size": "512x512", "steps": 200,
               "stream": true, "stream_progress": true}),
        "\"sampling\"",
    )
    .await;
}
