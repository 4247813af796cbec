//! Pictures in the browser: read from an address, turned into a `data:` URL, and kept in
//! IndexedDB, which (unlike local storage, a few megabytes of text) holds images in bulk and
//! works on plain-http addresses too.

use wasm_bindgen::{JsCast, JsValue, closure::Closure};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, IdbDatabase, IdbOpenDbRequest, IdbRequest, IdbTransactionMode};

const DATABASE: &str = "comfyui-bridge";
const STORE: &str = "chat-images";

/// Calls `use_file` with each file pasted anywhere on the page (Ctrl+V) while the calling
/// component lives; pasted text is left alone.
pub fn on_pasted_file(use_file: impl Fn(web_sys::File) + 'static) {
    let handle = leptos::prelude::window_event_listener(leptos::ev::paste, move |ev| {
        let file = ev
            .clipboard_data()
            .and_then(|d| d.files())
            .and_then(|files| files.get(0));
        if let Some(file) = file {
            ev.prevent_default();
            use_file(file);
        }
    });
    leptos::prelude::on_cleanup(move || handle.remove());
}

/// The first file of a drop, which the page takes over from the browser (that would open it
/// in place of the page).
pub fn dropped_file(ev: &leptos::ev::DragEvent) -> Option<web_sys::File> {
    let file = ev
        .data_transfer()
        .and_then(|d| d.files())
        .and_then(|files| files.get(0))?;
    ev.prevent_default();
    Some(file)
}

/// The picture behind an object URL, a `data:` URL or a path of this server.
pub async fn fetch_blob(url: &str) -> Result<Blob, String> {
    let unreadable = |_| String::from("The image could not be read.");
    let window = web_sys::window().ok_or("The image could not be read.")?;
    let resp: web_sys::Response = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(unreadable)?
        .unchecked_into();
    if !resp.ok() {
        return Err(format!(
            "The image could not be read (the server answered {}).",
            resp.status()
        ));
    }
    let blob = JsFuture::from(resp.blob().map_err(unreadable)?)
        .await
        .map_err(unreadable)?;
    Ok(blob.unchecked_into())
}

pub async fn data_url(blob: &Blob) -> Option<String> {
    let reader = web_sys::FileReader::new().ok()?;
    let promise = js_sys::Promise::new(&mut |resolve, reject| {
        reader.set_onload(Some(&resolve));
        reader.set_onerror(Some(&reject));
    });
    reader.read_as_data_url(blob).ok()?;
    JsFuture::from(promise).await.ok()?;
    reader.result().ok()?.as_string()
}

/// Waits for an IndexedDB request and gives its result.
async fn finished(req: &IdbRequest) -> Result<JsValue, JsValue> {
    let promise = js_sys::Promise::new(&mut |resolve, reject| {
        req.set_onsuccess(Some(&resolve));
        req.set_onerror(Some(&reject));
    });
    JsFuture::from(promise).await?;
    req.result()
}

async fn open() -> Result<IdbDatabase, JsValue> {
    let factory = web_sys::window()
        .ok_or(JsValue::NULL)?
        .indexed_db()?
        .ok_or(JsValue::NULL)?;
    let req = factory.open_with_u32(DATABASE, 1)?;
    let upgrade = Closure::<dyn FnMut(web_sys::Event)>::new(|ev: web_sys::Event| {
        let db = ev
            .target()
            .and_then(|t| t.dyn_into::<IdbOpenDbRequest>().ok())
            .and_then(|r| r.result().ok())
            .and_then(|r| r.dyn_into::<IdbDatabase>().ok());
        if let Some(db) = db {
            let _ = db.create_object_store(STORE);
        }
    });
    req.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
    let db = finished(&req).await;
    req.set_onupgradeneeded(None);
    db?.dyn_into()
}

fn store(db: &IdbDatabase, mode: IdbTransactionMode) -> Result<web_sys::IdbObjectStore, JsValue> {
    db.transaction_with_str_and_mode(STORE, mode)?
        .object_store(STORE)
}

pub async fn put(key: &str, blob: &Blob) -> Result<(), JsValue> {
    let db = open().await?;
    let req = store(&db, IdbTransactionMode::Readwrite)?.put_with_key(blob, &key.into())?;
    finished(&req).await.map(|_| ())
}

pub async fn get(key: &str) -> Result<Option<Blob>, JsValue> {
    let db = open().await?;
    let req = store(&db, IdbTransactionMode::Readonly)?.get(&key.into())?;
    let value = finished(&req).await?;
    Ok(value.dyn_into().ok())
}

pub async fn delete(key: &str) -> Result<(), JsValue> {
    let db = open().await?;
    let req = store(&db, IdbTransactionMode::Readwrite)?.delete(&key.into())?;
    finished(&req).await.map(|_| ())
}
