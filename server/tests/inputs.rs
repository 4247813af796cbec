//! `/v1/models` says which fields each model takes, with defaults and ranges, and requests are
//! held to exactly that.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn each_model_lists_the_fields_it_takes() {
    let h = start().await;
    let (status, sdxl) = h.get("/v1/models/sdxl").await;
    assert_eq!(status, 200, "{sdxl}");
    let inputs = &sdxl["inputs"];
    // The workflow's own values are the defaults; the ranges are the ones requests are held to.
    assert_eq!(
        inputs["steps"],
        json!({"default": 25, "min": 1, "max": 200})
    );
    assert_eq!(
        inputs["cfg"],
        json!({"default": 7.0, "min": 0.0, "max": 100.0})
    );
    assert_eq!(inputs["sampler"]["default"], "euler");
    assert_eq!(inputs["scheduler"]["default"], "normal");
    let samplers = inputs["sampler"]["options"].as_array().unwrap();
    assert!(samplers.contains(&json!("dpmpp_2m")), "{samplers:?}");
    assert!(
        inputs["negative_prompt"]["default"]
            .as_str()
            .is_some_and(|n| !n.is_empty()),
        "{inputs}"
    );
    assert_eq!(inputs["seed"]["min"], 0);
    for absent in ["strength", "images", "mask"] {
        assert!(
            inputs.get(absent).is_none(),
            "sdxl lists {absent}: {inputs}"
        );
    }

    let (_, list) = h.get("/v1/models").await;
    let turbo = &listed(&list, "z-image-turbo").unwrap()["inputs"];
    assert!(turbo.get("negative_prompt").is_none(), "{turbo}");
    assert_eq!(turbo["steps"]["default"], 9);
    let weightfree = &listed(&list, MODEL).unwrap()["inputs"];
    for absent in ["steps", "cfg", "sampler", "scheduler", "negative_prompt"] {
        assert!(weightfree.get(absent).is_none(), "{absent}: {weightfree}");
    }
    assert!(weightfree.get("seed").is_some(), "{weightfree}");
    let inpaint = &listed(&list, "sdxl-inpaint").unwrap()["inputs"];
    assert_eq!(inpaint["images"], json!({"max": 1}));
    assert_eq!(inpaint["mask"], json!({"required_without_alpha": true}));
    assert_eq!(
        inpaint["strength"],
        json!({"default": 1.0, "min": 0.0, "max": 1.0})
    );
}

#[tokio::test]
async fn requests_get_exactly_what_the_list_says() {
    let h = start().await;
    let (status, _) = h
        .generate(
            json!({"prompt": "a fox", "model": "sdxl", "sampler": "dpmpp_2m",
            "scheduler": "karras", "steps": 200, "response_format": "b64_json"}),
        )
        .await;
    assert_eq!(status, 200);
    let sent = h.graphs().pop().unwrap();
    assert_eq!(input_of(&sent, "KSampler", "sampler_name"), "dpmpp_2m");
    assert_eq!(input_of(&sent, "KSampler", "scheduler"), "karras");
    assert_eq!(input_of(&sent, "KSampler", "steps"), 200);

    let refused = [
        (
            json!({"model": "sdxl", "sampler": "warp_drive"}),
            "sampler",
            "dpmpp_2m",
        ),
        (
            json!({"model": "sdxl", "scheduler": "sometimes"}),
            "scheduler",
            "karras",
        ),
        (
            json!({"model": "sdxl", "steps": 201}),
            "steps",
            "between 1 and 200",
        ),
        (
            json!({"model": MODEL, "sampler": "euler"}),
            "sampler",
            "does not take",
        ),
        (
            json!({"model": MODEL, "steps": 4}),
            "steps",
            "does not take",
        ),
        (
            json!({"model": "z-image-turbo", "negative_prompt": "blur"}),
            "negative_prompt",
            "does not take",
        ),
    ];
    let before = h.graphs().len();
    for (mut body, param, says) in refused {
        body["prompt"] = json!("a fox");
        let (status, err) = h.generate(body.clone()).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_envelope(&err);
        assert_eq!(err["error"]["param"], param, "{err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    assert_eq!(
        h.graphs().len(),
        before,
        "a refused request reached ComfyUI"
    );
}

#[tokio::test]
async fn form_edits_take_a_sampler_too() {
    let h = start().await;
    let edit = |sampler: &str| {
        reqwest::multipart::Form::new()
            .part(
                "image",
                file_part(png(64, 64, [200, 10, 10, 255], false), "in.png"),
            )
            .text("prompt", "a red square, painted")
            .text("model", "sdxl-img2img")
            .text("sampler", sampler.to_string())
            .text("response_format", "b64_json")
    };
    let (status, body) = h.post_form("/v1/images/edits", edit("dpmpp_2m")).await;
    assert_eq!(status, 200, "{body}");
    let sent = h.graphs().pop().unwrap();
    assert_eq!(input_of(&sent, "KSampler", "sampler_name"), "dpmpp_2m");

    let (status, err) = h.post_form("/v1/images/edits", edit("warp_drive")).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["param"], "sampler");
}

/// A copy of two shipped weight-free models whose sidecars take any size within a rule.
fn free_size_workflows() -> std::path::PathBuf {
    let dir = scratch_dir();
    let rule = "[size_rule]\nmin = 64\nmax = 2048\nmultiple_of = 16\nmax_pixels = 1048576\nmax_aspect = 3.0\n";
    for id in ["weightfree-txt2img", "weightfree-img2img"] {
        let json = std::fs::read(shipped_workflows().join(format!("{id}.json"))).unwrap();
        std::fs::write(dir.join(format!("{id}.json")), json).unwrap();
        std::fs::write(dir.join(format!("{id}.toml")), rule).unwrap();
    }
    dir
}

#[tokio::test]
async fn a_size_rule_takes_any_size_within_it() {
    let dir = free_size_workflows();
    let h = start_with(|c| c.workflows_dir = dir.clone()).await;
    let (_, model) = h.get(&format!("/v1/models/{MODEL}")).await;
    assert_eq!(
        model["size_rule"],
        json!({"min": 64, "max": 2048, "multiple_of": 16, "max_pixels": 1048576, "max_aspect": 3.0})
    );
    assert_eq!(model["default_size"], "1024x1024");
    // The menus still get the usual sizes the rule allows.
    let sizes = model["sizes"].as_array().unwrap();
    assert!(sizes.contains(&json!("768x1024")) && !sizes.contains(&json!("1536x1536")));

    let (status, body) = h
        .generate(json!({"prompt": "x", "model": MODEL, "size": "1008x752"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(dimensions(&decode_b64(&body["data"][0])), (1008, 752));

    for bad in ["1000x752", "2048x2048", "1536x256", "32x32"] {
        let (status, err) = h
            .generate(json!({"prompt": "x", "model": MODEL, "size": bad}))
            .await;
        assert_eq!(status, 400, "{bad}: {err}");
        assert_eq!(err["error"]["param"], "size");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("any WxH with each side from 64 to 2048 in multiples of 16, at most 1048576 pixels, no more than 3:1 either way"),
            "{message}"
        );
    }

    // An edit with `size=auto` keeps the picture's own shape, as the rule rounds it.
    let form = reqwest::multipart::Form::new()
        .part(
            "image",
            file_part(png(500, 375, [10, 200, 10, 255], false), "in.png"),
        )
        .text("prompt", "x")
        .text("model", "weightfree-img2img")
        .text("response_format", "b64_json");
    let (status, body) = h.post_form("/v1/images/edits", form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(dimensions(&decode_b64(&body["data"][0])), (496, 368));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_rule_that_allows_nothing_is_refused_by_name() {
    let dir = free_size_workflows();
    std::fs::write(
        dir.join(format!("{MODEL}.toml")),
        "[size_rule]\nmin = 64\nmax = 128\nmax_pixels = 100\n",
    )
    .unwrap();
    let h = start_with(|c| c.workflows_dir = dir.clone()).await;
    let (_, model) = h.get(&format!("/v1/models/{MODEL}")).await;
    assert_eq!(model["status"], "unavailable", "{model}");
    let problems = model["problems"].to_string();
    assert!(
        problems.contains("[size_rule]: no size satisfies every limit"),
        "{problems}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
