//! Keeping the studio in this browser: local storage for the fields, IndexedDB for the images.

use std::{cell::RefCell, rc::Rc};

use leptos::prelude::*;
use serde::{Serialize, de::DeserializeOwned};

use super::is_own_image;
use super::{
    EditFields, EditState, GenerateFields, GenerateState, KeptPicture, KeptResults, Studio,
};
use crate::pages::{local_images, results::Run};

const GENERATE_FORM: &str = "comfyui-bridge.generate.form";
const GENERATE_RESULTS: &str = "comfyui-bridge.generate.results";
const EDIT_FORM: &str = "comfyui-bridge.edit.form";
const EDIT_RESULTS: &str = "comfyui-bridge.edit.results";
const HISTORY: &str = "comfyui-bridge.prompt-history";
/// The IndexedDB key of the picture being edited.
const EDIT_PICTURE: &str = "studio/edit/picture";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.local_storage().ok().flatten())
}

fn read<T: DeserializeOwned>(key: &str) -> Option<T> {
    let text = storage()?.get_item(key).ok().flatten()?;
    serde_json::from_str(&text).ok()
}

fn write<T: Serialize>(key: &str, value: &T) {
    if let (Some(storage), Ok(text)) = (storage(), serde_json::to_string(value)) {
        let _ = storage.set_item(key, &text);
    }
}

fn forget(key: &str) {
    if let Some(storage) = storage() {
        let _ = storage.remove_item(key);
    }
}

pub fn keep(studio: &Studio) {
    let history = studio.history.clone();
    Effect::new(move |first: Option<()>| {
        if first.is_none()
            && let Some(kept) = read::<Vec<String>>(HISTORY)
        {
            history.set(kept);
        }
        history.with(|h| write(HISTORY, h));
    });
    keep_generate(studio.generate.clone());
    keep_edit(studio.edit.clone());
}

fn keep_generate(g: GenerateState) {
    let fields = g.clone();
    Effect::new(move |first: Option<()>| {
        let g = &fields;
        // Read here, not before: the page, which sets it, renders before effects run.
        if first.is_none()
            && !g.prefilled.get_untracked()
            && let Some(k) = read::<GenerateFields>(GENERATE_FORM)
        {
            g.prompt.set(k.prompt);
            g.negative.set(k.negative_prompt);
            g.model.set(k.model);
            g.size.set(
                Some(k.size)
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "auto".into()),
            );
            g.count.set(k.n.clamp(1, 4));
            g.seed.set(k.seed);
            g.steps.set(k.steps);
            g.cfg.set(k.cfg);
            g.sampler.set(k.sampler);
            g.scheduler.set(k.scheduler);
        }
        let kept = GenerateFields {
            prompt: g.prompt.get(),
            negative_prompt: g.negative.get(),
            model: g.model.get(),
            size: g.size.get(),
            n: g.count.get(),
            seed: g.seed.get(),
            steps: g.steps.get(),
            cfg: g.cfg.get(),
            sampler: g.sampler.get(),
            scheduler: g.scheduler.get(),
        };
        write(GENERATE_FORM, &kept);
    });
    keep_results(g.run, GENERATE_RESULTS, "studio/generate");
}

fn keep_edit(e: EditState) {
    // Where the picture is kept, once it is; set apart from the fields, as a file is stored
    // some time after it is chosen.
    let picture = ArcRwSignal::new(None::<KeptPicture>);
    // The address of the picture as restored, which needs no storing again.
    let restored = Rc::new(RefCell::new(None::<String>));
    let fields = e.clone();
    let (picture_kept, restored_url) = (picture.clone(), restored.clone());
    Effect::new(move |first: Option<()>| {
        let e = &fields;
        if first.is_none()
            && !e.prefilled.get_untracked()
            && let Some(k) = read::<EditFields>(EDIT_FORM)
        {
            e.prompt.set(k.prompt);
            e.model.set(k.model);
            e.size.set(
                Some(k.size)
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "auto".into()),
            );
            e.count.set(k.n.clamp(1, 4));
            e.seed.set(k.seed);
            e.strength.set(k.strength);
            if k.brush > 0 {
                e.brush.set(k.brush);
            }
            restore_picture(
                e.clone(),
                k.image,
                picture_kept.clone(),
                restored_url.clone(),
            );
        }
        let kept = EditFields {
            image: picture_kept.get(),
            prompt: e.prompt.get(),
            model: e.model.get(),
            size: e.size.get(),
            n: e.count.get(),
            seed: e.seed.get(),
            strength: e.strength.get(),
            brush: e.brush.get(),
        };
        write(EDIT_FORM, &kept);
    });
    // The picture is kept each time another is chosen.
    let source = e.source.clone();
    Effect::new(move |_| {
        let url = source.with(|s| s.as_ref().map(|s| s.url.clone()));
        if url.is_some() && *restored.borrow() == url {
            return;
        }
        let picture = picture.clone();
        match url {
            None => picture.set(None),
            Some(path) if is_own_image(&path) => picture.set(Some(KeptPicture::Address(path))),
            Some(url) => leptos::task::spawn_local(async move {
                let Ok(blob) = local_images::fetch_blob(&url).await else {
                    return;
                };
                if local_images::put(EDIT_PICTURE, &blob).await.is_ok() {
                    picture.set(Some(KeptPicture::Browser));
                }
            }),
        }
    });
    keep_results(e.run, EDIT_RESULTS, "studio/edit");
}

/// Puts the kept picture back, unless another was chosen meanwhile.
fn restore_picture(
    e: EditState,
    kept: Option<KeptPicture>,
    picture: ArcRwSignal<Option<KeptPicture>>,
    restored: Rc<RefCell<Option<String>>>,
) {
    let kind = kept.clone();
    let set = move |url: String| {
        if e.source.with_untracked(Option::is_none) {
            *restored.borrow_mut() = Some(url.clone());
            e.source.set(Some(super::Source { url, size: None }));
            picture.set(kind.clone());
        }
    };
    match kept {
        None => {}
        Some(KeptPicture::Address(path)) => set(path),
        Some(KeptPicture::Browser) => leptos::task::spawn_local(async move {
            if let Ok(Some(blob)) = local_images::get(EDIT_PICTURE).await
                && let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob)
            {
                set(url);
            }
        }),
    }
}

/// Shows the results kept from the last visit, and keeps each finished run's in their place.
fn keep_results(run: Run, key: &'static str, images: &'static str) {
    // What was last stored or restored, so the same images are not stored again.
    let last = Rc::new(RefCell::new(None::<(String, Vec<Option<u64>>, Vec<usize>)>));
    let image_key = move |i: usize| format!("{images}/{i}");
    // In an effect, as everything here: it only ever starts in the browser.
    Effect::new({
        let (run, last) = (run.clone(), last.clone());
        move |_| {
            let (run, last) = (run.clone(), last.clone());
            leptos::task::spawn_local(async move {
                let Some(kept) = read::<KeptResults>(key) else {
                    return;
                };
                let mut shown = Vec::new();
                for (i, seed) in kept.seeds.iter().enumerate() {
                    if let Ok(Some(blob)) = local_images::get(&image_key(i)).await
                        && let Some(url) = local_images::data_url(&blob).await
                    {
                        shown.push((url, *seed));
                    }
                }
                if !shown.is_empty() {
                    *last.borrow_mut() = Some(fingerprint(&kept.prompt, &shown));
                    run.restore(kept.prompt, shown);
                }
            });
        }
    });
    Effect::new(move |_| {
        let Some((prompt, shown)) = run.finished() else {
            return;
        };
        if shown.is_empty() {
            return;
        }
        let print = fingerprint(&prompt, &shown);
        if last.borrow().as_ref() == Some(&print) {
            return;
        }
        *last.borrow_mut() = Some(print);
        leptos::task::spawn_local(async move {
            // Unlisted while the images change, so a reload never pairs old seeds with new images.
            forget(key);
            let mut seeds = Vec::new();
            for (i, (src, seed)) in shown.iter().enumerate() {
                let Ok(blob) = local_images::fetch_blob(src).await else {
                    break;
                };
                if local_images::put(&image_key(i), &blob).await.is_err() {
                    break;
                }
                seeds.push(*seed);
            }
            if !seeds.is_empty() {
                write(key, &KeptResults { prompt, seeds });
            }
        });
    });
}

fn fingerprint(
    prompt: &str,
    shown: &[(String, Option<u64>)],
) -> (String, Vec<Option<u64>>, Vec<usize>) {
    (
        prompt.to_string(),
        shown.iter().map(|(_, seed)| *seed).collect(),
        shown.iter().map(|(src, _)| src.len()).collect(),
    )
}
