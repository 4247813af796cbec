//! The web app's files under `/pkg`: compressed, revalidated with a 304, and the wasm the pages
//! preload is the file that exists.

mod common;

use common::*;

/// A site root with the files cargo-leptos writes, in place of a build.
fn site() -> std::path::PathBuf {
    let dir = scratch_dir();
    let pkg = dir.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    let js = "export function hydrate() { console.log('hydrating the web app'); }\n".repeat(400);
    std::fs::write(pkg.join("comfyui-bridge.js"), js).unwrap();
    std::fs::write(pkg.join("comfyui-bridge.wasm"), vec![0u8; 64 * 1024]).unwrap();
    std::fs::write(pkg.join("comfyui-bridge.css"), "body { margin: 0; }\n").unwrap();
    // As cargo-leptos names a file with `hash-files`: its MD5 in unpadded base64url.
    std::fs::write(
        pkg.join("comfyui-bridge.3q2-7wAAAAAAAAAAAAAAAA.wasm"),
        [0u8; 16],
    )
    .unwrap();
    dir
}

#[tokio::test]
async fn the_web_apps_files_are_compressed_and_revalidated() {
    let dir = site();
    let h = start_with(|c| c.site_root = dir.clone()).await;
    let url = format!("{}/pkg/comfyui-bridge.js", h.url);

    let res = h
        .http
        .get(&url)
        .header("accept-encoding", "br, gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-encoding"], "br");
    assert_eq!(res.headers()["cache-control"], "no-cache");
    assert_eq!(res.headers()["vary"], "accept-encoding");
    let modified = res.headers()["last-modified"].clone();
    let body = res.bytes().await.unwrap();
    assert!(body.len() < 2_000, "{} bytes of brotli", body.len());

    let res = h
        .http
        .get(&url)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-encoding"], "gzip");

    // A reload asks whether its copy is still good, and gets no body back.
    let res = h
        .http
        .get(&url)
        .header("if-modified-since", modified)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    assert!(res.bytes().await.unwrap().is_empty());

    // A name with its content's hash never changes: kept for a year without asking.
    let res = h
        .fetch("/pkg/comfyui-bridge.3q2-7wAAAAAAAAAAAAAAAA.wasm")
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );

    let res = h.fetch("/pkg/nothing-here.js").await;
    assert_eq!(res.status(), 404);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn files_compressed_ahead_are_sent_as_they_are() {
    let dir = site();
    let pkg = dir.join("pkg");
    let name = "comfyui-bridge.3q2-7wAAAAAAAAAAAAAAAA.wasm";
    // As `cargo leptos build --release --precompress` leaves them beside the file.
    std::fs::write(pkg.join(format!("{name}.br")), b"brotli made at build time").unwrap();
    std::fs::write(pkg.join(format!("{name}.gz")), b"gzip made at build time").unwrap();
    let h = start_with(|c| c.site_root = dir.clone()).await;
    let url = format!("{}/pkg/{name}", h.url);
    let get = |accept: &'static str| h.http.get(&url).header("accept-encoding", accept).send();

    let res = get("gzip, br").await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-encoding"], "br");
    assert_eq!(res.headers()["content-type"], "application/wasm");
    assert_eq!(res.headers()["vary"], "accept-encoding");
    assert_eq!(
        res.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(res.bytes().await.unwrap(), "brotli made at build time");

    let res = get("gzip").await.unwrap();
    assert_eq!(res.headers()["content-encoding"], "gzip");
    assert_eq!(res.bytes().await.unwrap(), "gzip made at build time");

    let res = get("identity").await.unwrap();
    assert!(res.headers().get("content-encoding").is_none());
    assert_eq!(res.bytes().await.unwrap().as_ref(), [0u8; 16]);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn every_page_preloads_files_that_exist() {
    let dir = site();
    let h = start_with(|c| c.site_root = dir.clone()).await;
    let page = h.fetch("/").await.text().await.unwrap();
    let preloaded: Vec<&str> = page
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|href| href.starts_with("/pkg/"))
        .collect();
    assert!(
        preloaded.contains(&"/pkg/comfyui-bridge.wasm")
            && preloaded.contains(&"/pkg/comfyui-bridge.css"),
        "{preloaded:?}"
    );
    for href in preloaded {
        assert_eq!(h.fetch(href).await.status(), 200, "{href}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
