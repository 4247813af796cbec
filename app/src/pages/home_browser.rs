//! Reading the settings out of an image dropped or pasted onto the Generate page.

use wasm_bindgen_futures::JsFuture;

use super::Fields;
use crate::api::parameters::read_png;

pub fn listen_for_paste(fields: &Fields) {
    let fields = fields.clone();
    super::super::local_images::on_pasted_file(move |file| read(fields.clone(), file));
}

pub fn drop_image(fields: &Fields, ev: leptos::ev::DragEvent) {
    if let Some(file) = super::super::local_images::dropped_file(&ev) {
        read(fields.clone(), file);
    }
}

fn read(fields: Fields, file: web_sys::File) {
    leptos::task::spawn_local(async move {
        let name = file.name();
        let bytes = match JsFuture::from(file.array_buffer()).await {
            Ok(buffer) => js_sys::Uint8Array::new(&buffer).to_vec(),
            Err(_) => Vec::new(),
        };
        fields.apply(&name, read_png(&bytes));
    });
}
