//! The gallery: every image made is kept with how it was made, served, searched, deleted, and
//! still there after a restart; its server functions need the API key when the server has one.

mod common;

use std::time::Duration;

use app::api::gallery::{GalleryPage, GalleryQuery};
use common::*;
use serde_json::{Value, json};
use server::{
    config::GalleryMode,
    db::Db,
    gallery::{Gallery, Retention},
    objects::Objects,
};

fn gallery(h: &Harness) -> &Gallery {
    h.bridge
        .state
        .gallery
        .gallery()
        .expect("the gallery is on by default")
}

/// The database a test's gallery is on.
#[derive(Clone, Copy)]
enum Engine {
    Sqlite,
    Postgres,
}

/// A bridge whose gallery is on `engine`: SQLite under its data directory, or a fresh database
/// on the PostgreSQL server the tests are given.
async fn start_on(engine: Engine, tune: impl FnOnce(&mut server::config::Config)) -> Harness {
    let url = match engine {
        Engine::Sqlite => None,
        Engine::Postgres => Some(fresh_database().await),
    };
    start_with(|c| {
        c.database_url = url;
        tune(c);
    })
    .await
}

/// The gallery's behaviour is the same on either database.
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Engine::Sqlite).await
            })*
        }
        mod on_postgresql {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Engine::Postgres).await
            })*
        }
    };
}

on_both_databases!(
    every_image_made_is_kept_with_how_it_was_made,
    search_filter_and_pages,
    deleting_removes_row_and_files,
    the_oldest_images_go_first_past_a_count,
    the_gallery_stays_within_its_megabytes,
    images_past_the_age_limit_leave,
);

async fn list(h: &Harness, query: GalleryQuery) -> GalleryPage {
    gallery(h).list(&query).await.expect("gallery list")
}

fn all() -> GalleryQuery {
    GalleryQuery {
        per_page: 50,
        ..GalleryQuery::default()
    }
}

/// Waits until the gallery holds `n` images: it is written in the background.
async fn wait_for(h: &Harness, n: u64) -> GalleryPage {
    for _ in 0..200 {
        let page = list(h, all()).await;
        if page.total >= n {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the gallery never reached {n} images");
}

async fn every_image_made_is_kept_with_how_it_was_made(engine: Engine) {
    let h = start_on(engine, |_| {}).await;
    let (status, body) = h
        .generate(
            json!({"model": MODEL, "prompt": "a red fox", "size": "256x256", "n": 2,
                         "seed": 41}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let page = wait_for(&h, 2).await;
    let mut seeds: Vec<&str> = page.items.iter().map(|i| i.seed.as_str()).collect();
    seeds.sort();
    assert_eq!(seeds, ["41", "42"]);
    assert_eq!(page.models, [MODEL]);
    for item in &page.items {
        assert_eq!(item.prompt, "a red fox");
        assert_eq!(item.model, MODEL);
        assert_eq!((item.width, item.height), (256, 256));
        assert!(item.duration_ms >= 0);
        let full = h.fetch(&item.url).await;
        assert_eq!(full.headers()["content-type"], "image/png");
        let full = full.bytes().await.unwrap();
        let made = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| {
                d["seed"].as_u64().map(|s| s.to_string()).as_deref() == Some(item.seed.as_str())
            })
            .unwrap();
        assert_eq!(
            full.to_vec(),
            decode_b64(made),
            "the gallery keeps the very image sent"
        );
        // Made on its first view, then kept: the second view gets the same file.
        let thumb = h.fetch(&item.thumb_url).await;
        assert_eq!(thumb.headers()["content-type"], "image/webp");
        let thumb = thumb.bytes().await.unwrap();
        let (w, hh) = dimensions(&thumb);
        assert!(w <= 384 && hh <= 384 && w > 0, "{w}x{hh}");
        let again = h.fetch(&item.thumb_url).await;
        assert_eq!(
            again.headers()["content-length"],
            thumb.len().to_string().as_str()
        );
        assert_eq!(again.bytes().await.unwrap(), thumb);
    }
}

async fn search_filter_and_pages(engine: Engine) {
    let h = start_on(engine, |_| {}).await;
    for (model, prompt) in [
        (MODEL, "a red fox"),
        (MODEL, "a blue whale"),
        (MODEL, "100% _literal_ fox"),
        ("sdxl", "a fox in snow"),
    ] {
        let body = if model == MODEL {
            json!({"model": model, "prompt": prompt, "size": "64x64"})
        } else {
            json!({"model": model, "prompt": prompt, "size": "512x512", "steps": 2})
        };
        let (status, _) = h.generate(body).await;
        assert_eq!(status, 200);
    }
    let page = wait_for(&h, 4).await;
    assert_eq!(page.models, ["sdxl", MODEL]);
    assert_eq!(page.items[0].prompt, "a fox in snow", "newest first");

    let search = |s: &str| GalleryQuery {
        search: Some(s.into()),
        ..all()
    };
    assert_eq!(list(&h, search("FOX")).await.total, 3);
    assert_eq!(
        list(&h, search("fox red")).await.total,
        1,
        "every word, in any order"
    );
    assert_eq!(list(&h, search("100%")).await.total, 1);
    assert_eq!(list(&h, search("_literal_")).await.total, 1);
    assert_eq!(
        list(&h, search("%")).await.total,
        1,
        "% is a character, not a wildcard"
    );
    let foxes_on_sdxl = GalleryQuery {
        model: Some("sdxl".into()),
        ..search("fox")
    };
    assert_eq!(list(&h, foxes_on_sdxl).await.total, 1);

    let second = list(
        &h,
        GalleryQuery {
            page: 1,
            per_page: 3,
            ..GalleryQuery::default()
        },
    )
    .await;
    assert_eq!(second.total, 4);
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.items[0].prompt, "a red fox", "the oldest is last");
}

async fn deleting_removes_row_and_files(engine: Engine) {
    let h = start_on(engine, |_| {}).await;
    h.generate(json!({"model": MODEL, "prompt": "x", "size": "64x64"}))
        .await;
    let item = wait_for(&h, 1).await.items.remove(0);
    assert!(gallery(&h).delete(&item.id).await.unwrap());
    assert!(!gallery(&h).delete(&item.id).await.unwrap());
    assert_eq!(list(&h, all()).await.total, 0);
    for url in [&item.url, &item.thumb_url] {
        let res = h.fetch(url).await;
        assert_eq!(res.status(), 404);
    }
}

#[tokio::test]
async fn the_gallery_survives_a_restart_and_sweeps_what_a_crash_left() {
    let h = start().await;
    h.generate(json!({"model": MODEL, "prompt": "kept", "size": "64x64"}))
        .await;
    let before = wait_for(&h, 1).await;
    let data_dir = h.data_dir();
    // What a crash between writing a file and its row leaves behind.
    let stray = data_dir
        .join("gallery")
        .join(format!("{}.png", "ab".repeat(16)));
    std::fs::write(&stray, b"half").unwrap();
    let tmp = data_dir.join("gallery").join(".cd.png.tmp");
    std::fs::write(&tmp, b"half").unwrap();

    let reopened = Gallery::open(
        Db::open(None, &data_dir).await.unwrap(),
        Objects::open(None, &data_dir).await.unwrap(),
        Retention::default(),
    )
    .await
    .unwrap();
    let after = reopened.list(&all()).await.unwrap();
    assert_eq!(after.items, before.items);
    assert!(!stray.exists() && !tmp.exists());
    let kept = data_dir
        .join("gallery")
        .join(before.items[0].url.trim_start_matches("/gallery/"));
    assert!(kept.exists());
}

#[tokio::test]
async fn paths_outside_the_gallery_are_never_served() {
    let h = start().await;
    for path in [
        "/gallery/..%2Fgallery.db",
        "/gallery/thumbs/..%2F..%2Fgallery.db",
        "/gallery/gallery.db",
        "/gallery/0123456789abcdef0123456789abcdef.txt",
    ] {
        let res = h.fetch(path).await;
        assert_eq!(res.status(), 404, "{path}");
    }
}

async fn call(h: &Harness, endpoint: &str, body: Value) -> (u16, String) {
    let res = h
        .http
        .post(format!("{}/api/{endpoint}", h.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test]
async fn the_web_app_needs_the_key_when_the_server_has_one() {
    let h = start_with(|c| c.api_key = vec!["sk-gallery".into()]).await;
    let query = json!({"page": 0, "per_page": 10, "search": null, "model": null});
    let (status, text) = call(&h, "gallery/list", json!({"query": query, "api_key": ""})).await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("API key"), "{text}");
    let (status, text) = call(
        &h,
        "gallery/list",
        json!({"query": query, "api_key": "sk-wrong"}),
    )
    .await;
    assert_eq!(status, 401, "{text}");
    let (status, text) = call(
        &h,
        "gallery/list",
        json!({"query": query, "api_key": "sk-gallery"}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let page: GalleryPage = serde_json::from_str(&text).unwrap();
    assert_eq!(page.total, 0);
    let (status, text) = call(
        &h,
        "gallery/delete",
        json!({"id": "nope", "api_key": "sk-gallery"}),
    )
    .await;
    assert_eq!((status, text.as_str()), (200, "false"));
}

/// The web app's connection panel: health, and whether the key it holds is the right one.
#[tokio::test]
async fn the_overview_says_whether_the_browsers_key_is_right() {
    let keyed = start_with(|c| c.api_key = vec!["sk-panel".into()]).await;
    for (key, accepted) in [("", false), ("sk-wrong", false), ("sk-panel", true)] {
        let (status, text) = call(&keyed, "overview", json!({"api_key": key})).await;
        assert_eq!(status, 200, "{text}");
        let o: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(o["auth_required"], true);
        assert_eq!(o["key_accepted"], accepted, "{key}");
        assert_eq!(o["health"]["status"], "ok");
        assert!(o["health"]["servers"][0]["reachable"].as_bool().unwrap());
    }
    let open = start().await;
    // The demo banner's question needs no key and no probing: this harness brings its own
    // simulator, so the bridge is not in demo mode.
    let res = open
        .http
        .post(format!("{}/api/demo", open.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (res.status().as_u16(), res.text().await.unwrap().as_str()),
        (200, "false")
    );
    let (_, text) = call(&open, "overview", json!({"api_key": ""})).await;
    let o: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (&o["auth_required"], &o["key_accepted"]),
        (&json!(false), &Value::Null)
    );
}

/// `GALLERY=ui`: the API's images are not kept, the web app's (and any request that asks) are.
#[tokio::test]
async fn with_gallery_ui_only_requests_that_ask_are_kept() {
    let h = start_with(|c| c.gallery = GalleryMode::Ui).await;
    let body = |prompt: &str| json!({"model": MODEL, "prompt": prompt, "size": "64x64"});
    let (status, _) = h.generate(body("from a script")).await;
    assert_eq!(status, 200);
    let res = h
        .http
        .post(format!("{}/v1/images/generations", h.url))
        .header("X-Bridge-Gallery", "keep")
        .json(&body("from the web app"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let page = wait_for(&h, 1).await;
    assert_eq!(page.items[0].prompt, "from the web app");
    // Nothing more arrives for the first request.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(list(&h, all()).await.total, 1);
}

#[tokio::test]
async fn nothing_is_kept_with_the_gallery_off() {
    let h = start_with(|c| c.gallery = GalleryMode::Off).await;
    let (status, _) = h
        .generate(json!({"model": MODEL, "prompt": "x", "size": "64x64"}))
        .await;
    assert_eq!(status, 200);
    assert!(h.bridge.state.gallery.gallery().is_none());
    let query = json!({"page": 0, "per_page": 10, "search": null, "model": null});
    let (status, text) = call(&h, "gallery/list", json!({"query": query, "api_key": ""})).await;
    assert!(status == 404 && text.contains("GALLERY"), "{status} {text}");
}

/// Makes one image with this prompt and waits until the gallery has it.
async fn keep_one(h: &Harness, prompt: &str, size: &str) {
    let (status, body) = h
        .generate(json!({"model": MODEL, "prompt": prompt, "size": size}))
        .await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..200 {
        if let Some(item) = list(h, all())
            .await
            .items
            .into_iter()
            .find(|i| i.prompt == prompt)
        {
            // Seen, as the gallery page would show it: its thumbnail is made.
            assert_eq!(h.fetch(&item.thumb_url).await.status(), 200);
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{prompt} never reached the gallery");
}

/// The gallery's page once `holds` is true of it: pruning follows each write in the background.
async fn once(h: &Harness, holds: impl Fn(&GalleryPage) -> bool) -> GalleryPage {
    for _ in 0..200 {
        let page = list(h, all()).await;
        if holds(&page) {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    list(h, all()).await
}

fn prompts(page: &GalleryPage) -> Vec<&str> {
    page.items.iter().map(|i| i.prompt.as_str()).collect()
}

/// Files in the gallery's directory and in its thumbnails', and their bytes, once there are
/// `images` of them (every image's thumbnail viewed): files go just after their rows.
async fn on_disk(h: &Harness, images: usize) -> (usize, usize, u64) {
    for _ in 0..100 {
        let now = files_on_disk(h);
        if now.0 == images && now.1 == images {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    files_on_disk(h)
}

fn files_on_disk(h: &Harness) -> (usize, usize, u64) {
    let dir = h.data_dir().join("gallery");
    let files = |d: std::path::PathBuf| -> Vec<std::fs::Metadata> {
        std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.metadata().unwrap())
            .filter(|m| m.is_file())
            .collect()
    };
    let images = files(dir.clone());
    let bytes = images.iter().map(std::fs::Metadata::len).sum();
    (images.len(), files(dir.join("thumbs")).len(), bytes)
}

async fn the_oldest_images_go_first_past_a_count(engine: Engine) {
    let h = start_on(engine, |c| c.gallery_max_images = Some(3)).await;
    for i in 0..5 {
        keep_one(&h, &format!("picture {i}"), "64x64").await;
    }
    let page = once(&h, |p| p.total == 3).await;
    assert_eq!(page.total, 3);
    assert_eq!(prompts(&page), ["picture 4", "picture 3", "picture 2"]);
    let (images, thumbs, _) = on_disk(&h, 3).await;
    assert_eq!((images, thumbs), (3, 3), "rows and files go together");
}

async fn the_gallery_stays_within_its_megabytes(engine: Engine) {
    let h = start_on(engine, |c| c.gallery_max_mb = Some(1)).await;
    for i in 0..4 {
        keep_one(&h, &format!("noise {i}"), "512x512").await;
    }
    let page = once(&h, |p| !prompts(p).contains(&"noise 0")).await;
    assert_eq!(prompts(&page)[0], "noise 3", "the newest stays");
    assert!(!prompts(&page).contains(&"noise 0"), "{:?}", prompts(&page));
    let (images, thumbs, bytes) = on_disk(&h, page.items.len()).await;
    assert!(bytes <= 1_000_000, "{bytes} bytes kept");
    assert_eq!((images, thumbs), (page.items.len(), page.items.len()));
}

async fn images_past_the_age_limit_leave(engine: Engine) {
    let h = start_on(engine, |c| c.gallery_max_age_days = Some(1.5 / 86_400.0)).await;
    keep_one(&h, "old", "64x64").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    keep_one(&h, "new", "64x64").await;
    let page = once(&h, |p| p.total == 1).await;
    assert_eq!(prompts(&page), ["new"]);
    assert_eq!(on_disk(&h, 1).await.0, 1);
}
