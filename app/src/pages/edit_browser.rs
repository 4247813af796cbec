//! The Edit page's browser side: reading image files, painting the mask, and sending the form.

use leptos::prelude::*;
use wasm_bindgen::{JsCast, JsValue, closure::Closure};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Blob, CanvasRenderingContext2d, File, FormData, HtmlCanvasElement, HtmlInputElement,
};

use super::{EditForm, Run, Source};
use crate::pages::{local_images, results, stream::Body};

/// The painted strokes' colour; the canvas is shown half transparent over the picture.
const PAINT: &str = "#ff2d55";

/// A pasted image (Ctrl+V anywhere on the page) becomes the picture; pasted text is left alone.
pub fn listen_for_paste(form: &EditForm) {
    let form = form.clone();
    local_images::on_pasted_file(move |file| use_file(&form, file));
}

pub fn pick_source(form: &EditForm, ev: leptos::ev::Event) {
    if let Some(file) = chosen_file(&ev) {
        use_file(form, file);
    }
}

pub fn drop_source(form: &EditForm, ev: leptos::ev::DragEvent) {
    // Whatever else was dropped, the browser must not open it in place of the page.
    ev.prevent_default();
    if let Some(file) = local_images::dropped_file(&ev) {
        use_file(form, file);
    }
}

pub fn pick_mask(form: &EditForm, ev: leptos::ev::Event) {
    let url = chosen_file(&ev).and_then(|f| web_sys::Url::create_object_url_with_blob(&f).ok());
    let old = form.mask_file.get_untracked();
    form.mask_file.set(url);
    if let Some(old) = old {
        let _ = web_sys::Url::revoke_object_url(&old);
    }
}

fn chosen_file(ev: &leptos::ev::Event) -> Option<File> {
    let input: HtmlInputElement = ev.target()?.dyn_into().ok()?;
    input.files()?.get(0)
}

fn use_file(form: &EditForm, file: File) {
    if !file.type_().starts_with("image/") {
        form.problem.set(Some(format!(
            "{} is not an image. Choose a PNG, JPEG or WebP file.",
            file.name()
        )));
        return;
    }
    let Ok(url) = web_sys::Url::create_object_url_with_blob(&file) else {
        return;
    };
    form.problem.set(None);
    let old = form.source.get_untracked();
    form.source.set(Some(Source { url, size: None }));
    if let Some(old) = old.filter(|o| o.url.starts_with("blob:")) {
        let _ = web_sys::Url::revoke_object_url(&old.url);
    }
}

/// The picture's own size is the mask's: the canvas gets it, and starts empty.
pub fn picture_loaded(form: &EditForm, ev: leptos::ev::Event) {
    let Some(img) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlImageElement>().ok())
    else {
        return;
    };
    let (w, h) = (img.natural_width(), img.natural_height());
    if let Some(canvas) = form.canvas.get_untracked() {
        canvas.set_width(w);
        canvas.set_height(h);
    }
    form.painted.set(false);
    form.source.update(|s| {
        if let Some(s) = s {
            s.size = Some((w, h));
        }
    });
    // The page is back on the picture it was painting: the painting comes back too.
    let shown = form
        .source
        .with_untracked(|s| s.as_ref().map(|s| s.url.clone()));
    match form.painting.get_untracked() {
        Some((on, painting)) if Some(&on) == shown.as_ref() => repaint(form, painting),
        Some(_) => form.painting.set(None),
        None => {}
    }
}

fn repaint(form: &EditForm, painting: String) {
    let Ok(img) = web_sys::HtmlImageElement::new() else {
        return;
    };
    let form = form.clone();
    let loaded = img.clone();
    let onload = Closure::once_into_js(move || {
        if let Some(canvas) = form.canvas.get_untracked()
            && let Some(ctx) = context(&canvas)
            && ctx
                .draw_image_with_html_image_element(&loaded, 0.0, 0.0)
                .is_ok()
        {
            form.painted.set(true);
        }
    });
    img.set_onload(Some(onload.unchecked_ref()));
    img.set_src(&painting);
}

/// A stroke is done: the painting is kept, for when the page is left and comes back.
pub fn stroke_end(form: &EditForm) {
    form.stroke.set(None);
    let Some(canvas) = form.canvas.get_untracked() else {
        return;
    };
    let shown = form
        .source
        .with_untracked(|s| s.as_ref().map(|s| s.url.clone()));
    if let (Some(on), Ok(painting)) = (shown, canvas.to_data_url()) {
        form.painting.set(Some((on, painting)));
    }
}

/// A file that calls itself an image but is none, or an address that no longer serves one: the
/// picture is dropped, so the form neither waits on it nor sends it.
pub fn picture_unreadable(form: &EditForm) {
    let Some(old) = form.source.get_untracked() else {
        return;
    };
    form.problem.set(Some(
        "That file could not be read as an image. Choose a PNG, JPEG or WebP file.".into(),
    ));
    form.source.set(None);
    if old.url.starts_with("blob:") {
        let _ = web_sys::Url::revoke_object_url(&old.url);
    }
}

fn context(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas.get_context("2d").ok()??.dyn_into().ok()
}

/// Where the pointer is, in the canvas's own pixels (it is shown scaled to the page's width).
fn point(canvas: &HtmlCanvasElement, ev: &leptos::ev::PointerEvent) -> (f64, f64, f64) {
    let rect = canvas.get_bounding_client_rect();
    let scale = canvas.width() as f64 / rect.width().max(1.0);
    (
        (ev.client_x() as f64 - rect.left()) * scale,
        (ev.client_y() as f64 - rect.top()) * scale,
        scale,
    )
}

fn draw(form: &EditForm, canvas: &HtmlCanvasElement, ev: &leptos::ev::PointerEvent) {
    let (x, y, scale) = point(canvas, ev);
    let Some(ctx) = context(canvas) else {
        return;
    };
    let (from_x, from_y) = form.stroke.get_untracked().unwrap_or((x, y));
    ctx.set_stroke_style_str(PAINT);
    ctx.set_line_cap("round");
    ctx.set_line_join("round");
    ctx.set_line_width(form.brush.get_untracked() as f64 * scale);
    ctx.begin_path();
    ctx.move_to(from_x, from_y);
    ctx.line_to(x, y);
    ctx.stroke();
    form.stroke.set(Some((x, y)));
    if !form.painted.get_untracked() {
        form.painted.set(true);
    }
}

pub fn stroke_start(form: &EditForm, ev: leptos::ev::PointerEvent) {
    let Some(canvas) = form.canvas.get_untracked() else {
        return;
    };
    ev.prevent_default();
    let _ = canvas.set_pointer_capture(ev.pointer_id());
    form.stroke.set(None);
    draw(form, &canvas, &ev);
}

pub fn stroke_move(form: &EditForm, ev: leptos::ev::PointerEvent) {
    if form.stroke.get_untracked().is_none() {
        return;
    }
    if let Some(canvas) = form.canvas.get_untracked() {
        draw(form, &canvas, &ev);
    }
}

pub fn clear_mask(form: &EditForm) {
    if let Some(canvas) = form.canvas.get_untracked()
        && let Some(ctx) = context(&canvas)
    {
        ctx.clear_rect(0.0, 0.0, canvas.width() as f64, canvas.height() as f64);
    }
    form.painted.set(false);
    form.painting.set(None);
}

/// Reads the files and sends the edit as a multipart form, streamed like a generation.
pub fn submit(form: &EditForm, run: &Run) {
    let Some(source) = form.source.get_untracked() else {
        run.error
            .set(Some("Drop, paste or pick an image to edit first.".into()));
        return;
    };
    let form = form.clone();
    let run = run.clone();
    run.error.set(None);
    leptos::task::spawn_local(async move {
        match build(&form, &source.url).await {
            Ok((body, images)) => results::start(
                &run,
                Body::Edit(body),
                images,
                form.prompt.get_untracked(),
                form.api_key.get_untracked(),
            ),
            Err(e) => run.error.set(Some(e)),
        }
    });
}

async fn build(form: &EditForm, source: &str) -> Result<(FormData, u32), String> {
    let body = FormData::new().map_err(|_| "this browser cannot send forms")?;
    let image = local_images::fetch_blob(source).await?;
    append_file(&body, "image", &image)?;
    let mask = match form.mask_file.get_untracked() {
        Some(url) => Some(local_images::fetch_blob(&url).await?),
        None if form.painted.get_untracked() => match form.canvas.get_untracked() {
            Some(canvas) => Some(mask_blob(&canvas).await?),
            None => None,
        },
        None => None,
    };
    if let Some(mask) = mask {
        append_file(&body, "mask", &mask)?;
    }
    let images = form.count.get_untracked().clamp(1, 4);
    let mut fields: Vec<(String, String)> = super::fields(form)
        .into_iter()
        .map(|(name, value)| match value {
            serde_json::Value::String(s) => (name, s),
            other => (name, other.to_string()),
        })
        .collect();
    for (name, value) in [
        ("stream", "true"),
        ("partial_images", "2"),
        ("stream_progress", "true"),
    ] {
        fields.push((name.into(), value.into()));
    }
    for (name, value) in fields {
        body.append_with_str(&name, &value)
            .map_err(|_| "the form could not be built")?;
    }
    Ok((body, images))
}

fn append_file(body: &FormData, name: &str, blob: &Blob) -> Result<(), String> {
    let extension = match blob.type_().as_str() {
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        _ => "png",
    };
    body.append_with_blob_and_filename(name, blob, &format!("{name}.{extension}"))
        .map_err(|_| "the form could not be built".into())
}

/// OpenAI's mask: opaque where the image stays, fully transparent where it may change, so the
/// painted strokes are cut out of an opaque sheet of the picture's size.
async fn mask_blob(painting: &HtmlCanvasElement) -> Result<Blob, String> {
    let failed = |_| String::from("The mask could not be made.");
    let sheet: HtmlCanvasElement = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("The mask could not be made.")?
        .create_element("canvas")
        .map_err(failed)?
        .unchecked_into();
    let (w, h) = (painting.width(), painting.height());
    sheet.set_width(w);
    sheet.set_height(h);
    let ctx = context(&sheet).ok_or("The mask could not be made.")?;
    ctx.set_fill_style_str("#000");
    ctx.fill_rect(0.0, 0.0, w as f64, h as f64);
    ctx.set_global_composite_operation("destination-out")
        .map_err(failed)?;
    ctx.draw_image_with_html_canvas_element(painting, 0.0, 0.0)
        .map_err(failed)?;
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let done = Closure::once_into_js(move |blob: JsValue| {
            let _ = resolve.call1(&JsValue::NULL, &blob);
        });
        let _ = sheet.to_blob(done.unchecked_ref());
    });
    let blob = JsFuture::from(promise).await.map_err(failed)?;
    blob.dyn_into().map_err(failed)
}
