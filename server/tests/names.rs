//! The model names clients send: OpenAI's own (`dall-e-3`, `gpt-image-1`, which Open WebUI and
//! LibreChat send unasked) and the operator's aliases, all listed in `/v1/models`.

mod common;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn openai_names_and_aliases_each_make_an_image() {
    let h = start_with(|c| c.model_aliases = vec!["house-style=weightfree-txt2img".into()]).await;
    for name in [
        "dall-e-3",
        "gpt-image-1",
        "dall-e-2",
        "chatgpt-image-latest",
        "house-style",
    ] {
        let (status, body) = h
            .generate(json!({"model": name, "prompt": "x", "size": "auto"}))
            .await;
        assert_eq!(status, 200, "{name}: {body}");
        assert!(body["data"][0]["b64_json"].is_string(), "{name}");
    }
    // The alias runs its own model; OpenAI's names run the default one.
    let graphs = h.graphs();
    assert!(
        graphs[4].to_string().contains("ImageAddNoise"),
        "house-style ran another model"
    );
    assert!(
        !graphs[0].to_string().contains("ImageAddNoise"),
        "dall-e-3 is not the default model"
    );

    let (_, list) = h.get("/v1/models").await;
    let alias = listed(&list, "house-style").expect("the alias is listed");
    assert_eq!(alias["alias_of"], MODEL);
    assert_eq!(alias["kind"], "txt2img");
    for name in ["dall-e-3", "gpt-image-1", "dall-e-2"] {
        let entry = listed(&list, name).unwrap_or_else(|| panic!("{name} is not listed"));
        assert_eq!(entry["alias_of"], "z-image-turbo", "{name}");
    }
    assert!(
        listed(&list, "z-image-turbo")
            .unwrap()
            .get("alias_of")
            .is_none()
    );
    let (status, one) = h.get("/v1/models/dall-e-3").await;
    assert_eq!(status, 200);
    assert_eq!(one["alias_of"], "z-image-turbo");
}

#[tokio::test]
async fn an_openai_name_edits_with_the_default_edit_model() {
    let h = start().await;
    let form = reqwest::multipart::Form::new()
        .text("model", "gpt-image-1")
        .text("prompt", "x")
        .text("steps", "2")
        .part(
            "image",
            file_part(png(64, 64, [9, 9, 9, 255], false), "a.png"),
        );
    let (status, body) = h.post_form("/v1/images/edits", form).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        h.graphs()[0].to_string().contains("LoadImage"),
        "not an edit model"
    );
}

#[tokio::test]
async fn with_openai_names_off_they_are_unknown_and_unlisted() {
    let h = start_with(|c| c.openai_model_names = false).await;
    let (status, body) = h
        .generate(json!({"model": "dall-e-3", "prompt": "x"}))
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "model_not_found");
    let (_, list) = h.get("/v1/models").await;
    assert!(listed(&list, "dall-e-3").is_none());
}

#[tokio::test]
async fn an_alias_of_a_missing_model_is_reported_not_served() {
    let h = start_with(|c| c.model_aliases = vec!["ghost=no-such-model".into()]).await;
    let (status, _) = h.generate(json!({"model": "ghost", "prompt": "x"})).await;
    assert_eq!(status, 404);
    let health: Value = h.fetch("/health").await.json().await.unwrap();
    let errors = health["workflows"]["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e
            .as_str()
            .unwrap()
            .contains("`ghost` names `no-such-model`")),
        "{health}"
    );
    // The models themselves still load.
    assert_eq!(health["status"], "ok");
}
