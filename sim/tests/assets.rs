//! The asset mode of newer ComfyUI (`--enable-assets`): uploads are registered as assets and
//! `DELETE /api/assets/{id}` removes them again; without it the route does not exist.

mod common;

use common::{client, encode_png, start, upload, upload_png};
use image::{DynamicImage, Rgb, RgbImage};
use serde_json::{Value, json};
use sim::SimConfig;

fn png(rgb: [u8; 3]) -> Vec<u8> {
    encode_png(DynamicImage::ImageRgb8(RgbImage::from_pixel(
        8,
        8,
        Rgb(rgb),
    )))
}

async fn delete(http: &reqwest::Client, url: String) -> (u16, Value) {
    let r = http.delete(url).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn view_input(http: &reqwest::Client, base: &str, name: &str) -> u16 {
    http.get(format!("{base}/view"))
        .query(&[("filename", name), ("type", "input")])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn uploads_become_assets_that_can_be_deleted() {
    let sim = start(SimConfig {
        assets: true,
        ..SimConfig::default()
    })
    .await;
    let http = client();
    let bytes = png([1, 2, 3]);
    let up = upload_png(&http, &sim.url, bytes.clone(), "in.png").await;
    assert_eq!(
        (&up["name"], &up["subfolder"], &up["type"]),
        (&json!("in.png"), &json!(""), &json!("input"))
    );
    let asset = &up["asset"];
    let id = asset["id"].as_str().unwrap().to_string();
    let parsed = uuid_v4(&id);
    assert!(parsed, "asset id {id} is a lowercase UUIDv4");
    assert_eq!(asset["name"], "in.png");
    assert_eq!(asset["size"], bytes.len());
    assert_eq!(asset["mime_type"], "image/png");
    assert_eq!(asset["tags"], json!(["input"]));
    let hash = asset["asset_hash"].as_str().unwrap();
    let hex = hash.strip_prefix("blake3:").unwrap();
    assert!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{hash}"
    );

    // The same bytes again: the same file, so the same asset.
    let again = upload_png(&http, &sim.url, bytes.clone(), "in.png").await;
    assert_eq!(again["asset"], up["asset"]);
    // Other bytes under the same name land in "in (1).png", a new asset.
    let other = upload_png(&http, &sim.url, png([9, 9, 9]), "in.png").await;
    assert_eq!(other["name"], "in (1).png");
    assert_ne!(other["asset"]["id"], up["asset"]["id"]);
    assert_ne!(other["asset"]["asset_hash"], up["asset"]["asset_hash"]);

    assert!(sim.sim.uploads().contains(&"in.png".to_string()));
    assert_eq!(view_input(&http, &sim.url, "in.png").await, 200);
    let url = format!("{}/api/assets/{id}?delete_content=true", sim.url);
    assert_eq!(delete(&http, url.clone()).await, (200, json!({})));
    assert!(!sim.sim.uploads().contains(&"in.png".to_string()));
    assert!(sim.sim.uploads().contains(&"in (1).png".to_string()));
    assert_eq!(view_input(&http, &sim.url, "in.png").await, 404);

    // Gone: the second delete is an ASSET_NOT_FOUND envelope.
    let (status, body) = delete(&http, url).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "ASSET_NOT_FOUND");
    assert_eq!(body["error"]["details"], json!({"id": id}));
    assert!(body["error"]["message"].as_str().unwrap().contains(&id));

    // Ids are matched case-insensitively, as UUIDs.
    let other_id = other["asset"]["id"].as_str().unwrap().to_uppercase();
    let url = format!("{}/api/assets/{other_id}", sim.url);
    assert_eq!(delete(&http, url).await, (200, json!({})));
    assert!(sim.sim.uploads().is_empty(), "{:?}", sim.sim.uploads());

    // Not a UUID: no such route. There is no unprefixed twin either.
    assert_eq!(
        delete(&http, format!("{}/api/assets/in.png", sim.url))
            .await
            .0,
        404
    );
    let fresh = upload_png(&http, &sim.url, bytes, "in.png").await;
    let fresh_id = fresh["asset"]["id"].as_str().unwrap();
    assert_ne!(fresh_id, id, "a re-upload after deletion is a new asset");
    let (status, body) = delete(&http, format!("{}/assets/{fresh_id}", sim.url)).await;
    assert_eq!((status, body), (404, Value::Null));
    assert!(sim.sim.uploads().contains(&"in.png".to_string()));

    // delete_content=false forgets the asset but keeps the file.
    let url = format!("{}/api/assets/{fresh_id}?delete_content=false", sim.url);
    assert_eq!(delete(&http, url.clone()).await, (200, json!({})));
    assert!(sim.sim.uploads().contains(&"in.png".to_string()));
    assert_eq!(delete(&http, url).await.0, 404);
}

#[tokio::test]
async fn mask_uploads_carry_the_merged_file_as_asset() {
    let sim = start(SimConfig {
        assets: true,
        ..SimConfig::default()
    })
    .await;
    let http = client();
    upload_png(&http, &sim.url, png([50, 60, 70]), "base.png").await;
    let form = reqwest::multipart::Form::new()
        .part(
            "image",
            reqwest::multipart::Part::bytes(png([0, 0, 0])).file_name("base_mask.png"),
        )
        .text(
            "original_ref",
            r#"{"filename": "base.png", "subfolder": "", "type": "input"}"#,
        );
    let up = upload(&http, &sim.url, "/upload/mask", form).await;
    assert_eq!(up["name"], "base_mask.png");
    assert_eq!(up["asset"]["name"], "base_mask.png");
    assert!(up["asset"]["size"].as_u64().unwrap() > 0);

    // An original that does not exist writes nothing, so there is no asset to name.
    let form = reqwest::multipart::Form::new()
        .part(
            "image",
            reqwest::multipart::Part::bytes(png([0, 0, 0])).file_name("lost_mask.png"),
        )
        .text(
            "original_ref",
            r#"{"filename": "lost.png", "type": "input"}"#,
        );
    let up = upload(&http, &sim.url, "/upload/mask", form).await;
    assert_eq!(up["name"], "lost_mask.png");
    assert!(up.get("asset").is_none(), "{up}");
}

#[tokio::test]
async fn without_assets_uploads_are_plain_and_the_route_is_missing() {
    let sim = start(SimConfig::default()).await;
    let http = client();
    let up = upload_png(&http, &sim.url, png([1, 2, 3]), "in.png").await;
    assert_eq!(
        up,
        json!({"name": "in.png", "subfolder": "", "type": "input"})
    );
    let id = "0b7e2f5c-3c1a-4f7e-9a65-2a8f5c1d9e01";
    let (status, body) = delete(&http, format!("{}/api/assets/{id}", sim.url)).await;
    assert_eq!((status, body), (404, Value::Null));
    assert!(sim.sim.uploads().contains(&"in.png".to_string()));
}

fn uuid_v4(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && id
            .bytes()
            .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && groups[2].starts_with('4')
}
