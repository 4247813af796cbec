//! Every request the bridge refuses before it reaches a handler's work, in OpenAI's envelope
//! with the right status: paths axum cannot take, unknown routes under the API's prefixes,
//! wrong methods, bodies that are not one JSON value, repeated form fields; and streams asked
//! for while ComfyUI is down, which must be a plain 503 the SDKs retry, not a 200 stream that
//! carries the error.

mod common;

use common::*;
use serde_json::json;

/// GETs each path and checks the answer is `status` with `code`, in the envelope.
async fn each_answers(h: &Harness, paths: &[&str], status: u16, code: &str) {
    for path in paths {
        let (got, body) = h.get(path).await;
        assert_eq!(got, status, "{path} → {body}");
        assert_eq!(body["error"]["code"], code, "{path}");
    }
}

#[tokio::test]
async fn paths_that_are_not_utf8_are_400_in_the_envelope() {
    let h = start().await;
    let paths = [
        "/v1/models/%FF%FE",
        "/images/%FF",
        "/gallery/%FF.png",
        "/gallery/thumbs/%C3%28.webp",
    ];
    each_answers(&h, &paths, 400, "invalid_path").await;
}

#[tokio::test]
async fn unknown_api_paths_are_404_in_the_envelope_never_the_web_app() {
    let h = start().await;
    let paths = [
        "/v1/",
        "/v1/nothing",
        "/v1/images/unknown",
        "/v1/models/",
        "/api",
        "/api/",
        "/api/unknown",
        "/api/gallery/nothing",
    ];
    each_answers(&h, &paths, 404, "not_found").await;
    let res = h
        .http
        .post(format!("{}/v1/", h.url))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, _) = read(res).await;
    assert_eq!(status, 404);
    // The web app's own server functions still answer under /api.
    let res = h
        .http
        .post(format!("{}/api/overview", h.url))
        .json(&json!({"api_key": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn wrong_methods_are_405_in_the_envelope() {
    let h = start().await;
    for (method, path) in [
        (reqwest::Method::GET, "/v1/chat/completions"),
        (reqwest::Method::DELETE, "/v1/models"),
        (reqwest::Method::PUT, "/v1/images/edits"),
        (reqwest::Method::POST, "/health"),
        (reqwest::Method::GET, "/reload"),
        (reqwest::Method::POST, "/images/abc.png"),
    ] {
        let res = h
            .http
            .request(method.clone(), format!("{}{path}", h.url))
            .send()
            .await
            .unwrap();
        let (status, body) = read(res).await;
        assert_eq!(status, 405, "{method} {path} → {body}");
        assert_eq!(body["error"]["code"], "method_not_allowed");
    }
}

#[tokio::test]
async fn json_with_anything_after_the_value_is_400() {
    let h = start().await;
    for body in [
        r#"{"model": "weightfree-txt2img", "prompt": "x"} trailing"#,
        r#"{"model": "weightfree-txt2img", "prompt": "x"}{"prompt": "y"}"#,
        r#"{"model": "weightfree-txt2img", "prompt": "x"},"#,
    ] {
        for path in ["/v1/images/generations", "/v1/images/edits"] {
            let res = h
                .http
                .post(format!("{}{path}", h.url))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let (status, resp) = read(res).await;
            assert_eq!(status, 400, "{path} {body} → {resp}");
            assert_eq!(resp["error"]["code"], "invalid_json");
        }
    }
    let res = h
        .http
        .post(format!("{}/v1/chat/completions", h.url))
        .header("content-type", "application/json")
        .body(r#"{"messages": [{"role": "user", "content": "x"}]} 1"#)
        .send()
        .await
        .unwrap();
    assert_eq!(read(res).await.0, 400);
    assert!(h.sim.sim.submitted().is_empty());
}

#[tokio::test]
async fn a_repeated_form_field_is_400_naming_it() {
    let h = start().await;
    for field in ["prompt", "n", "model", "mask"] {
        let value = |f: &str| match f {
            "n" => "1".to_string(),
            "model" => "weightfree-img2img".to_string(),
            _ => "a field".to_string(),
        };
        let mut form = reqwest::multipart::Form::new()
            .part("image", file_part(picture(), "a.png"))
            .text("size", "64x64");
        if field != "prompt" {
            form = form.text("prompt", "x");
        }
        if field == "mask" {
            form = form
                .part("mask", file_part(picture(), "m.png"))
                .part("mask", file_part(picture(), "m.png"));
        } else {
            form = form.text(field, value(field)).text(field, value(field));
        }
        let (status, body) = h.post_form("/v1/images/edits", form).await;
        assert_eq!(status, 400, "{field} → {body}");
        assert_eq!(body["error"]["param"], field);
        assert_eq!(body["error"]["code"], "duplicate_parameter");
    }
    assert!(h.sim.sim.submitted().is_empty());
}

#[tokio::test]
async fn several_images_are_still_taken_in_every_spelling() {
    let h = start().await;
    let form = reqwest::multipart::Form::new()
        .text("model", "weightfree-blend")
        .text("prompt", "x")
        .text("size", "64x64")
        .part("image[]", file_part(picture(), "a.png"))
        .part("image[]", file_part(picture(), "b.png"));
    let (status, body) = h.post_form("/v1/images/edits", form).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn streams_with_comfyui_down_are_503_with_retry_after() {
    let h = start_with(|c| c.comfyui_url = vec![dead_comfyui()]).await;
    let requests = [
        (
            "/v1/images/generations",
            json!({"model": MODEL, "prompt": "x", "size": "64x64", "stream": true}),
        ),
        (
            "/v1/images/generations",
            json!({"model": MODEL, "prompt": "x", "size": "64x64", "stream": true,
                   "stream_progress": true, "partial_images": 2}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": MODEL, "size": "64x64", "stream": true,
                   "messages": [{"role": "user", "content": "x"}]}),
        ),
    ];
    for (path, body) in requests {
        let res = h.send_json(path, body.clone()).await;
        assert!(
            res.headers().contains_key("retry-after"),
            "{path} {body}: no Retry-After"
        );
        assert_eq!(res.headers()["x-should-retry"], "true");
        let (status, resp) = read(res).await;
        assert_eq!(status, 503, "{path} {body} → {resp}");
        assert_eq!(resp["error"]["code"], "comfyui_unavailable");
    }
    // A streamed edit too.
    let form = reqwest::multipart::Form::new()
        .text("model", "weightfree-img2img")
        .text("prompt", "x")
        .text("size", "64x64")
        .text("stream", "true")
        .part("image", file_part(picture(), "a.png"));
    let (status, resp) = h.post_form("/v1/images/edits", form).await;
    assert_eq!(status, 503, "{resp}");
}

#[tokio::test]
async fn health_503_says_when_to_come_back() {
    let h = start_with(|c| c.comfyui_url = vec![dead_comfyui()]).await;
    let res = h.fetch("/health").await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_envelope(&body);
    assert_eq!(body["error"]["code"], "comfyui_unavailable");
}

#[tokio::test]
async fn a_full_queue_before_a_stream_is_a_plain_429() {
    let h = start_with(|c| {
        c.max_concurrent_jobs = 1;
        c.max_queued_jobs = 1;
    })
    .await;
    let res = h
        .send_json(
            "/v1/images/generations",
            json!({"model": MODEL, "prompt": "x", "size": "64x64", "n": 3, "stream": true}),
        )
        .await;
    assert!(res.headers().contains_key("retry-after"));
    let (status, _) = read(res).await;
    assert_eq!(status, 429);
    assert!(h.sim.sim.submitted().is_empty());
}

#[tokio::test]
async fn the_budgets_are_configurable_and_count_every_image_of_a_request() {
    let h = start_with(|c| {
        c.max_input_pixels = 300 * 300;
        c.max_request_pixels = 100_000;
    })
    .await;
    let big = png(512, 512, [1, 2, 3, 255], false);
    let (status, body) = h
        .post_form(
            "/v1/images/edits",
            reqwest::multipart::Form::new()
                .text("model", "weightfree-img2img")
                .text("prompt", "x")
                .text("size", "256x256")
                .part("image", file_part(big, "big.png")),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "image");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("512x512")
    );

    // Two images each within the per-image budget, over the request's together.
    let form = reqwest::multipart::Form::new()
        .text("model", "weightfree-blend")
        .text("prompt", "x")
        .text("size", "256x256")
        .part(
            "image[]",
            file_part(png(256, 256, [1, 2, 3, 255], false), "a.png"),
        )
        .part(
            "image[]",
            file_part(png(256, 256, [1, 2, 3, 255], false), "b.png"),
        );
    let (status, body) = h.post_form("/v1/images/edits", form).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "image_too_large");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MAX_REQUEST_PIXELS")
    );

    // Within both, the edit runs.
    let (status, body) = h
        .post_form(
            "/v1/images/edits",
            reqwest::multipart::Form::new()
                .text("model", "weightfree-img2img")
                .text("prompt", "x")
                .text("size", "256x256")
                .part(
                    "image",
                    file_part(png(256, 256, [1, 2, 3, 255], false), "ok.png"),
                ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

fn picture() -> Vec<u8> {
    png(64, 64, [40, 90, 200, 255], false)
}
