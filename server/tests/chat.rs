//! `/v1/chat/completions` over HTTP against the simulator: replies, streams, progress, usage,
//! image parts, errors and cancellation.

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;
use serde_json::{Value, json};

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

/// The image behind the first markdown image of a reply's content.
fn markdown_image(content: &str) -> (String, String) {
    let start = content.find("![").expect("a markdown image");
    let rest = &content[start + 2..];
    let (alt, rest) = rest.split_once("](").expect("markdown image syntax");
    let (target, _) = rest.split_once(')').expect("closing parenthesis");
    (alt.to_string(), target.to_string())
}

fn data_url_bytes(url: &str) -> Vec<u8> {
    let b64 = url
        .strip_prefix("data:image/png;base64,")
        .unwrap_or_else(|| panic!("not a PNG data URL: {}", &url[..url.len().min(40)]));
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64")
}

fn data_url(bytes: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

async fn chat(h: &Harness, body: Value) -> (u16, Value) {
    h.post("/v1/chat/completions", body).await
}

fn content_of(body: &Value) -> &str {
    body["choices"][0]["message"]["content"]
        .as_str()
        .expect("content is a string")
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(|k| k.as_str())
        .collect();
    k.sort();
    k
}

#[tokio::test]
async fn a_reply_is_a_string_with_the_image_as_markdown() {
    let h = start().await;
    let (status, body) = chat(
        &h,
        json!({"model": MODEL, "messages": user("hello world"), "size": "256x256",
                   "temperature": 0.7, "max_tokens": 300, "user": "u1"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        keys(&body),
        [
            "choices",
            "created",
            "id",
            "model",
            "object",
            "system_fingerprint",
            "usage"
        ]
    );
    assert_eq!(body["object"], "chat.completion");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(body["created"].is_u64());
    assert_eq!(body["model"], MODEL);
    let choice = &body["choices"][0];
    assert_eq!(
        keys(choice),
        ["finish_reason", "index", "logprobs", "message"]
    );
    assert_eq!(choice["finish_reason"], "stop");
    assert!(choice["logprobs"].is_null());
    let message = &choice["message"];
    assert_eq!(keys(message), ["content", "refusal", "role"]);
    assert_eq!(message["role"], "assistant");
    assert!(message["refusal"].is_null());
    let content = message["content"].as_str().expect("content is a string");
    let (alt, target) = markdown_image(content);
    assert_eq!(alt, "hello world");
    assert_eq!(dimensions(&data_url_bytes(&target)), (256, 256));
    assert!(
        content.contains(&format!("`{MODEL}` at 256x256, seed ")),
        "{content}"
    );

    // 3 for the message, 1 for the role, 2 for "hello world", 3 to prime the reply.
    assert_eq!(body["usage"]["prompt_tokens"], 9);
    let completion = body["usage"]["completion_tokens"].as_u64().unwrap();
    assert!((10..60).contains(&completion), "{completion} tokens");
    assert_eq!(body["usage"]["total_tokens"], 9 + completion);
}

#[tokio::test]
async fn the_prompt_is_the_last_user_message_alone() {
    let h = start().await;
    let messages = json!([
        {"role": "system", "content": "You draw in watercolour."},
        {"role": "user", "content": "a cat on a roof"},
        {"role": "assistant", "content": "![a cat](data:image/png;base64,AAAA)"},
        {"role": "assistant", "content": null, "tool_calls": []},
        {"role": "user", "content": [{"type": "text", "text": "now a dog"}]}
    ]);
    let (status, body) = chat(
        &h,
        json!({"model": MODEL, "messages": messages, "size": "64x64", "n": 2, "seed": 7}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let graphs = h.graphs();
    assert_eq!(graphs.len(), 2);
    for graph in &graphs {
        assert_eq!(
            input_of(graph, "PrimitiveStringMultiline", "value"),
            "now a dog"
        );
    }
    let content = content_of(&body);
    assert_eq!(
        content
            .matches("![now a dog](data:image/png;base64,")
            .count(),
        2
    );
    assert!(content.ends_with("seeds 7, 8."), "{content}");

    // The system message joins the prompt only when the server is told so.
    let h = start_with(|c| c.chat_use_system_prompt = true).await;
    let (status, _) = chat(
        &h,
        json!({"model": MODEL, "messages": messages, "size": "64x64"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        input_of(&h.graphs()[0], "PrimitiveStringMultiline", "value"),
        "You draw in watercolour.\nnow a dog"
    );
}

#[tokio::test]
async fn images_can_be_links_instead_of_data() {
    let h = start_with(|c| c.chat_images = server::config::ChatImages::Url).await;
    let (status, body) = chat(
        &h,
        json!({"model": MODEL, "messages": user("a red fox"), "size": "64x64"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, target) = markdown_image(content_of(&body));
    assert!(
        target.starts_with(&format!("{}/images/", h.url)),
        "{target}"
    );
    let image = h.http.get(&target).send().await.unwrap();
    assert_eq!(image.status(), 200);
    assert_eq!(dimensions(&image.bytes().await.unwrap()), (64, 64));
}

#[tokio::test]
async fn an_image_part_makes_the_turn_an_edit() {
    let h = start().await;
    let red = png(64, 64, [220, 10, 10, 255], false);
    let messages = json!([{"role": "user", "content": [
        {"type": "text", "text": "keep it red"},
        {"type": "image_url", "image_url": {"url": data_url(&red), "detail": "high"}}
    ]}]);
    let (status, body) = chat(
        &h,
        json!({"model": "weightfree-img2img", "messages": messages}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let content = content_of(&body);
    assert!(
        content.contains("Edited with `weightfree-img2img`"),
        "{content}"
    );
    let (_, target) = markdown_image(content);
    assert_eq!(dimensions(&data_url_bytes(&target)), (64, 64));
    let graph = &h.graphs()[0];
    let loaded = loader_inputs(graph);
    assert_eq!(loaded.len(), 1);
    assert!(loaded[0].starts_with("bridge/"), "{loaded:?}");
    assert_eq!(h.sim.sim.uploads().len(), 1);

    // With no model named, the default image-to-image model takes it; a bare string works too.
    let messages = json!([{"role": "user", "content": [
        {"type": "image_url", "image_url": data_url(&red)},
        {"type": "text", "text": "the same, bluer"}
    ]}]);
    let (status, body) = chat(&h, json!({"messages": messages})).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn an_image_this_server_made_can_be_edited_by_url() {
    let h = start_with(|c| c.chat_images = server::config::ChatImages::Url).await;
    let (_, body) = chat(
        &h,
        json!({"model": MODEL, "messages": user("a boat"), "size": "64x64"}),
    )
    .await;
    let (_, url) = markdown_image(content_of(&body));
    let messages = json!([{"role": "user", "content": [
        {"type": "text", "text": "a boat at night"},
        {"type": "image_url", "image_url": {"url": url}}
    ]}]);
    let (status, body) = chat(
        &h,
        json!({"model": "weightfree-img2img", "messages": messages}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(h.sim.sim.uploads().len(), 1);
}

#[tokio::test]
async fn bad_requests_are_refused_before_comfyui() {
    let h = start().await;
    let red = data_url(&png(32, 32, [200, 0, 0, 255], false));
    let cases = [
        (json!({"model": MODEL, "messages": []}), 400, "messages"),
        (
            json!({"model": MODEL, "messages": [{"role": "system", "content": "hi"}]}),
            400,
            "messages",
        ),
        (
            json!({"model": MODEL, "messages": user("   ")}),
            400,
            "messages",
        ),
        (
            json!({"model": MODEL, "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": red}}]}]}),
            400,
            "messages",
        ),
        (
            json!({"model": MODEL, "messages": user("x"), "n": 0}),
            400,
            "n",
        ),
        (
            json!({"model": MODEL, "messages": user("x"), "size": "7x7"}),
            400,
            "size",
        ),
        (
            json!({"model": "no-such-model", "messages": user("x")}),
            404,
            "model",
        ),
        (
            json!({"model": MODEL, "messages": "hello"}),
            400,
            "messages",
        ),
        (json!({"model": MODEL}), 400, "messages"),
        (
            json!({"model": MODEL, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "x"},
                {"type": "image_url", "image_url": {"url": red}}]}]}),
            400,
            "model",
        ),
        (
            json!({"model": "weightfree-img2img", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "x"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
            400,
            "messages[0].content[1].image_url",
        ),
        (
            json!({"model": "weightfree-img2img", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "x"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,bm90IGFuIGltYWdl"}}]}]}),
            400,
            "messages[0].content[1].image_url",
        ),
    ];
    for (body, want, param) in cases {
        for stream in [false, true] {
            let mut body = body.clone();
            body["stream"] = json!(stream);
            let (status, reply) = chat(&h, body.clone()).await;
            assert_eq!(status, want, "{body} -> {reply}");
            assert_eq!(reply["error"]["param"], param, "{body} -> {reply}");
        }
    }
    assert!(h.sim.sim.submitted().is_empty());
    assert!(h.sim.sim.uploads().is_empty());
}

/// The chunks of a chat stream, checked for what every chunk must have.
fn chunks(sse: &Sse) -> Vec<Value> {
    let (last, rest) = sse.events.split_last().expect("events");
    assert_eq!(last.data, "[DONE]");
    assert!(last.event.is_none());
    let chunks: Vec<Value> = rest.iter().map(SseEvent::json).collect();
    for (event, chunk) in rest.iter().zip(&chunks) {
        if chunk.get("error").is_some() {
            continue;
        }
        assert!(event.event.is_none(), "chat chunks carry no event name");
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], chunks[0]["id"]);
        assert_eq!(chunk["created"], chunks[0]["created"]);
        assert!(chunk["created"].is_u64());
    }
    chunks
}

fn reasoning(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str())
        .collect()
}

fn content(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

#[tokio::test]
async fn a_stream_sends_role_progress_content_finish_and_done() {
    let h = start().await;
    let res = h
        .post_stream(
            "/v1/chat/completions",
            json!({"model": "sdxl", "stream": true, "size": "512x512", "steps": 6,
                   "messages": user("a castle")}),
        )
        .await;
    let chunks = chunks(&read_sse(res).await);

    let first = &chunks[0];
    assert!(
        first.get("usage").is_none(),
        "usage only when asked: {first}"
    );
    assert_eq!(
        first["choices"][0],
        json!({"index": 0, "delta": {"role": "assistant", "content": ""},
               "logprobs": null, "finish_reason": null})
    );
    let thinking = reasoning(&chunks);
    assert!(
        thinking.starts_with("Making 1 image with sdxl at 512x512.\nQueued in ComfyUI.\n"),
        "{thinking}"
    );
    for step in 1..=6 {
        assert!(
            thinking.contains(&format!("Step {step} of 6.\n")),
            "{thinking}"
        );
    }
    // Progress comes before the answer, never inside it.
    let first_content = chunks
        .iter()
        .position(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        })
        .unwrap();
    let last_reasoning = chunks
        .iter()
        .rposition(|c| c["choices"][0]["delta"].get("reasoning_content").is_some())
        .unwrap();
    assert!(last_reasoning < first_content);
    let text = content(&chunks);
    assert!(!text.contains("Step 1 of 6."));
    let (alt, target) = markdown_image(&text);
    assert_eq!(alt, "a castle");
    assert_eq!(dimensions(&data_url_bytes(&target)), (512, 512));

    let finish = chunks.last().unwrap();
    assert_eq!(
        finish["choices"][0],
        json!({"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"})
    );
    for c in &chunks[..chunks.len() - 1] {
        assert!(c["choices"][0]["finish_reason"].is_null());
    }
}

#[tokio::test]
async fn usage_is_its_own_last_chunk_when_asked() {
    let h = start().await;
    let res = h
        .post_stream(
            "/v1/chat/completions",
            json!({"model": MODEL, "stream": true, "size": "64x64",
                   "stream_options": {"include_usage": true}, "messages": user("hello world")}),
        )
        .await;
    let chunks = chunks(&read_sse(res).await);
    let (usage, rest) = chunks.split_last().unwrap();
    for c in rest {
        assert!(c["usage"].is_null() && c.get("usage").is_some(), "{c}");
    }
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 9);
    let completion = usage["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(completion > 0);
    assert_eq!(usage["usage"]["total_tokens"], 9 + completion);
    assert_eq!(rest.last().unwrap()["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn keep_alives_flow_while_comfyui_is_silent() {
    let h = start_full(slow_sim(Duration::from_millis(900)), |c| {
        c.sse_keepalive_secs = 1
    })
    .await;
    let res = h
        .post_stream(
            "/v1/chat/completions",
            json!({"model": MODEL, "stream": true, "size": "64x64", "messages": user("x")}),
        )
        .await;
    let sse = read_sse(res).await;
    assert!(
        !sse.comments.is_empty(),
        "no keep-alive during a silent job"
    );
    assert!(
        sse.comments.iter().all(|c| c == "ping"),
        "{:?}",
        sse.comments
    );
    assert!(content(&chunks(&sse)).contains("!["));
}

#[tokio::test]
async fn a_failure_mid_stream_is_an_error_event_then_done() {
    let h = start().await;
    h.sim.sim.fail_next_execution(None);
    let res = h
        .post_stream(
            "/v1/chat/completions",
            json!({"model": MODEL, "stream": true, "size": "64x64", "messages": user("x")}),
        )
        .await;
    let sse = read_sse(res).await;
    let chunks = chunks(&sse);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let error = &sse.events[sse.events.len() - 2];
    assert_eq!(error.event.as_deref(), Some("error"));
    let error = error.json();
    assert_envelope(&error);
    assert_eq!(error["error"]["type"], "server_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ComfyUI"),
        "{error}"
    );
    assert!(content(&chunks).is_empty());
    assert!(
        chunks
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null())
    );
}

#[tokio::test]
async fn closing_the_stream_cancels_the_job() {
    let h = start_full(slow_sim(Duration::from_millis(50)), |_| {}).await;
    h.close_mid_stream(
        "/v1/chat/completions",
        json!({"model": "sdxl", "stream": true, "size": "512x512", "steps": 200,
               "messages": user("a long one")}),
        "Step ",
    )
    .await;
    let (id, _) = h.sim.sim.submitted().pop().unwrap();
    // The prompt never finished: it was interrupted, and its history is cleaned up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let history = h
        .http
        .get(format!("{}/history/{id}", h.sim.url))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert!(
        history
            .get(&id)
            .is_none_or(|e| e["status"]["status_str"] == "error"),
        "{history}"
    );
}

/// A web server holding images, as a file host a chat client might link to.
async fn file_host() -> String {
    use axum::{Router, http::StatusCode, response::Redirect, routing::get};
    let cat = png(48, 48, [10, 200, 10, 255], false);
    let app = Router::new()
        .route("/cat.png", get(move || async move { cat.clone() }))
        .route("/moved", get(|| async { Redirect::temporary("/cat.png") }))
        .route("/big.png", get(|| async { vec![0u8; 300_000] }))
        .route("/missing.png", get(|| async { StatusCode::NOT_FOUND }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("127.0.0.1:{}", addr.port())
}

fn edit_of(url: &str) -> Value {
    json!({"model": "weightfree-img2img", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "greener"},
        {"type": "image_url", "image_url": {"url": url}}]}]})
}

#[tokio::test]
async fn remote_images_come_only_from_allowed_hosts() {
    let host = file_host().await;
    let refused = start().await;
    let (status, body) = chat(&refused, edit_of(&format!("http://{host}/cat.png"))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "messages[0].content[1].image_url");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("FETCH_IMAGE_HOSTS")
    );

    let allowed = host.clone();
    let h = start_with(move |c| {
        c.fetch_image_hosts = vec![allowed];
        c.max_image_bytes = 200_000;
    })
    .await;
    let (status, body) = chat(&h, edit_of(&format!("http://{host}/cat.png"))).await;
    assert_eq!(status, 200, "{body}");
    assert!(content_of(&body).contains("Edited with"));
    assert_eq!(h.sim.sim.uploads().len(), 1);

    for (path, want) in [("/moved", 400), ("/missing.png", 400), ("/big.png", 413)] {
        let (status, body) = chat(&h, edit_of(&format!("http://{host}{path}"))).await;
        assert_eq!(status, want, "{path}: {body}");
    }
    let (status, _) = chat(&h, edit_of("http://127.0.0.2:1/cat.png")).await;
    assert_eq!(status, 400);
    assert_eq!(h.sim.sim.submitted().len(), 1);
}
