//! The Edit page: an image dropped, pasted or picked (or opened from the gallery), an optional
//! mask painted over it or uploaded, and the edit streamed from the public `/v1/images/edits`
//! endpoint as the multipart form OpenAI's SDKs send.

use leptos::{html, prelude::*};

use super::{
    fetch::model_list,
    kept::{Source, is_own_image},
    results::Run,
};
use crate::api::models::{ModelKind, ModelList};

/// Brush diameters offered, in screen pixels.
const BRUSH_MIN: u32 = 8;
const BRUSH_MAX: u32 = 160;

/// Everything the form holds; reference-counted so the browser-only handlers can share it.
#[derive(Clone)]
pub(super) struct EditForm {
    pub source: ArcRwSignal<Option<Source>>,
    /// Why the last file chosen, dropped or pasted is not being edited.
    pub problem: ArcRwSignal<Option<String>>,
    /// An uploaded mask file (object URL); when set it is sent instead of the painted one.
    pub mask_file: ArcRwSignal<Option<String>>,
    pub painted: ArcRwSignal<bool>,
    /// The painting kept for when the page is back; see [`super::kept::EditState`].
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    pub painting: ArcRwSignal<Option<(String, String)>>,
    pub brush: ArcRwSignal<u32>,
    /// The last point of the stroke being drawn, in canvas pixels.
    pub stroke: ArcRwSignal<Option<(f64, f64)>>,
    pub canvas: NodeRef<html::Canvas>,
    pub prompt: ArcRwSignal<String>,
    pub model: ArcRwSignal<String>,
    pub size: ArcRwSignal<String>,
    pub count: ArcRwSignal<u32>,
    pub seed: ArcRwSignal<String>,
    pub strength: ArcRwSignal<String>,
    /// The connection panel's key, sent with the edit.
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    pub api_key: ArcRwSignal<String>,
}

/// The form's fields as the edit sends them (files aside), and as the copied commands show
/// them. Blank or unreadable: a random seed, the model's own strength, the automatic model.
pub(super) fn fields(form: &EditForm) -> serde_json::Map<String, serde_json::Value> {
    let mut fields = serde_json::Map::new();
    fields.insert("prompt".into(), form.prompt.get_untracked().into());
    fields.insert("size".into(), form.size.get_untracked().into());
    fields.insert("n".into(), form.count.get_untracked().clamp(1, 4).into());
    let model = form.model.get_untracked();
    if !model.is_empty() {
        fields.insert("model".into(), model.into());
    }
    if let Ok(seed) = form.seed.get_untracked().trim().parse::<u64>() {
        fields.insert("seed".into(), seed.into());
    }
    if let Ok(strength) = form.strength.get_untracked().trim().parse::<f64>() {
        fields.insert("strength".into(), strength.into());
    }
    fields
}

/// The edit as a command: the picture (and the mask, when there is one) as files beside it.
fn call(form: &EditForm) -> super::snippets::Call {
    let mut files = vec![("image", "image.png")];
    if form.mask_file.with_untracked(Option::is_some) || form.painted.get_untracked() {
        files.push(("mask", "mask.png"));
    }
    super::snippets::Call::Edit {
        fields: fields(form),
        files,
    }
}

#[component]
pub fn EditPage() -> impl IntoView {
    let query = leptos_router::hooks::use_query_map().get_untracked();
    let opened = query.get("image").filter(|p| is_own_image(p));
    let asked_prompt = query.get("prompt");
    let studio = super::kept::use_studio();
    let kept = studio.edit.clone();
    // An address naming an image opens it (with its prompt); without, the form is as it was
    // left.
    if opened.is_some() || asked_prompt.is_some() {
        kept.prefilled.set(true);
        kept.source
            .set(opened.map(|url| Source { url, size: None }));
        kept.prompt.set(asked_prompt.unwrap_or_default());
    }
    let form = EditForm {
        source: kept.source.clone(),
        problem: ArcRwSignal::new(None),
        mask_file: kept.mask_file.clone(),
        painted: ArcRwSignal::new(false),
        painting: kept.painting.clone(),
        brush: kept.brush.clone(),
        stroke: ArcRwSignal::new(None),
        canvas: NodeRef::new(),
        prompt: kept.prompt.clone(),
        model: kept.model.clone(),
        size: kept.size.clone(),
        count: kept.count.clone(),
        seed: kept.seed.clone(),
        strength: kept.strength.clone(),
        api_key: super::connection::use_connection().api_key,
    };
    let models = model_list();
    browser::listen_for_paste(&form);
    // A result sent here from a viewer, on arrival or while this page is already open.
    Effect::new({
        let (handed, form) = (super::viewer::use_handoff().0, form.clone());
        move |_| {
            if let Some((url, prompt)) = handed.get() {
                handed.set(None);
                form.problem.set(None);
                form.source.set(Some(Source { url, size: None }));
                form.prompt.set(prompt);
            }
        }
    });
    let run = kept.run.clone();
    super::connection::use_connection().ask_for_key_on({
        let error = run.error.clone();
        move || error.with(Option::is_some)
    });
    let field = NodeRef::<html::Textarea>::new();
    let on_submit = {
        let (form, run) = (form.clone(), run.clone());
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            if super::shortcuts::seed_problem(&form.seed.get_untracked()).is_none() {
                if form.source.with_untracked(Option::is_some) {
                    studio.remember(&form.prompt.get_untracked());
                }
                browser::submit(&form, &run);
            }
        }
    };
    view! {
        <section class="card studio">
            <h2>"Edit"</h2>
            <form on:submit=on_submit class="generate edit" on:keydown=super::shortcuts::submit_on_ctrl_enter>
                {picker(&form)}
                {mask_tools(&form)}
                <label>"Prompt"
                    <textarea name="prompt" rows="2" required placeholder="what the edited image should show" node_ref=field
                        prop:value={
                            let p = form.prompt.clone();
                            move || p.get()
                        }
                        on:input={
                            let p = form.prompt.clone();
                            move |ev| p.set(event_target_value(&ev))
                        }></textarea>
                </label>
                {super::kept::prompt_history(form.prompt.clone(), field)}
                {settings(&form, models)}
                {run.actions("Edit", "Editing…")}
                {super::snippets::copy_buttons({
                    let form = form.clone();
                    move || call(&form)
                })}
            </form>
            <div class="outcome">{run.view()}</div>
        </section>
    }
}

/// The drop zone, the file picker and the picture with its mask canvas over it.
fn picker(form: &EditForm) -> impl IntoView + use<> {
    let (source, shown, has) = (
        form.source.clone(),
        form.source.clone(),
        form.source.clone(),
    );
    let on_pick = {
        let form = form.clone();
        move |ev: leptos::ev::Event| browser::pick_source(&form, ev)
    };
    let on_drop = {
        let form = form.clone();
        move |ev: leptos::ev::DragEvent| browser::drop_source(&form, ev)
    };
    let on_loaded = {
        let form = form.clone();
        move |ev: leptos::ev::Event| browser::picture_loaded(&form, ev)
    };
    let on_broken = {
        let form = form.clone();
        move |_| browser::picture_unreadable(&form)
    };
    let problem = form.problem.clone();
    let (down, paint, up) = (form.clone(), form.clone(), form.clone());
    let canvas = form.canvas;
    view! {
        <div class="drop" class:has-image=move || has.with(Option::is_some)
            on:dragover=|ev: leptos::ev::DragEvent| ev.prevent_default()
            on:drop=on_drop>
            {move || problem.get().map(|p| view! { <p class="error" role="alert">{p}</p> })}
            {move || match shown.get() {
                None => view! {
                    <p class="muted">"Drop an image here, paste one (Ctrl+V), or pick a file."</p>
                }.into_any(),
                Some(Source { size, .. }) => view! {
                    <p class="muted">
                        {size.map_or("Reading the image…".to_string(), |(w, h)| format!("{w}x{h}. Paint where the image should change, or leave it unpainted to change all of it."))}
                    </p>
                }.into_any(),
            }}
            <div class="canvas-stack" hidden=move || source.with(Option::is_none)>
                <img class="source" alt="The image to edit"
                    src={
                        let s = form.source.clone();
                        move || s.get().map(|s| s.url).unwrap_or_default()
                    }
                    on:load=on_loaded on:error=on_broken/>
                <canvas node_ref=canvas class="mask" aria-label="Mask: paint over the area to change"
                    on:pointerdown=move |ev| browser::stroke_start(&down, ev)
                    on:pointermove=move |ev| browser::stroke_move(&paint, ev)
                    on:pointerup=move |_| browser::stroke_end(&up)
                    on:pointercancel={
                        let f = form.clone();
                        move |_| f.stroke.set(None)
                    }></canvas>
            </div>
            <label class="file">"Image file"
                <input type="file" name="image" accept="image/png,image/jpeg,image/webp" on:change=on_pick/>
            </label>
        </div>
    }
}

/// Brush size, clearing, and the alternative of a mask file.
fn mask_tools(form: &EditForm) -> impl IntoView + use<> {
    let (brush_in, brush_out, brush_label) =
        (form.brush.clone(), form.brush.clone(), form.brush.clone());
    let (painted, clear) = (form.painted.clone(), form.clone());
    let on_mask = {
        let form = form.clone();
        move |ev: leptos::ev::Event| browser::pick_mask(&form, ev)
    };
    let mask_file = form.mask_file.clone();
    let visible = form.source.clone();
    view! {
        <fieldset class="mask-tools" hidden=move || visible.with(Option::is_none)>
            <legend>"Mask (optional)"</legend>
            <label class="inline">"Brush"
                <input type="range" name="brush" min=BRUSH_MIN max=BRUSH_MAX
                    prop:value=move || brush_out.get().to_string()
                    on:input=move |ev| brush_in.set(event_target_value(&ev).parse().unwrap_or(40))/>
                <output>{move || format!("{} px", brush_label.get())}</output>
            </label>
            <button type="button" class="secondary" disabled=move || !painted.get()
                on:click=move |_| browser::clear_mask(&clear)>"Clear mask"</button>
            <label class="inline">"or a mask file (PNG, transparent where to edit)"
                <input type="file" name="mask" accept="image/png" on:change=on_mask/>
            </label>
            {move || mask_file.get().map(|_| view! { <span class="muted">"The mask file is used instead of the painting."</span> })}
        </fieldset>
    }
}

/// Model, size, number of images, seed and strength.
fn settings(
    form: &EditForm,
    models: ArcRwSignal<Option<Result<ModelList, String>>>,
) -> impl IntoView + use<> {
    let (model_in, model_sel, model_track) =
        (form.model.clone(), form.model.clone(), form.model.clone());
    let (size_in, size_out, size_sel) = (form.size.clone(), form.size.clone(), form.size.clone());
    let size_kept = form.size.clone();
    let seed = form.seed.clone();
    let (strength_in, strength_out, strength_reset) = (
        form.strength.clone(),
        form.strength.clone(),
        form.strength.clone(),
    );
    let count = form.count.clone();
    let models_sizes = models.clone();
    // Automatic, or a list not loaded yet: strength shows, as every editing model takes it.
    let chosen_strength = {
        let (models, model) = (models.clone(), form.model.clone());
        Signal::derive(move || {
            let id = model.get();
            let list = models.get()?.ok()?;
            let m = list.data.into_iter().find(|m| m.id == id)?;
            Some(m.inputs.map(|i| i.strength))
        })
    };
    let takes_strength =
        Signal::derive(move || chosen_strength.get().is_none_or(|s| s.flatten().is_some()));
    let default_strength = Signal::derive(move || {
        chosen_strength
            .get()
            .flatten()
            .flatten()
            .and_then(|s| s.default)
    });
    view! {
        <div class="row">
            <label>"Model"
                <select name="model" on:change=move |ev| {
                    size_in.set("auto".into());
                    model_in.set(event_target_value(&ev));
                    // A strength typed for another model must not reach one that refuses it.
                    if !takes_strength.get_untracked() {
                        strength_reset.set(String::new());
                    }
                }>
                    <option value="" title="An inpainting model with a mask, else an image-to-image one">"Automatic"</option>
                    {move || models.get().map(|list| match list {
                        Ok(list) => list.data.into_iter()
                            .filter(|m| matches!(m.kind, Some(ModelKind::Img2Img | ModelKind::Inpaint)))
                            .map(|m| {
                                let selected = m.id == model_sel.get();
                                view! { <option value=m.id.clone() selected=selected>{m.id.clone()}</option> }
                            }).collect_view().into_any(),
                        Err(e) => view! { <option value="" disabled=true>{e}</option> }.into_any(),
                    })}
                </select>
            </label>
            <label>"Size"
                <select name="size" prop:value=move || size_out.get()
                    on:change=move |ev| size_sel.set(event_target_value(&ev))>
                    <option value="auto">"Keep the image's shape"</option>
                    {move || {
                        let id = model_track.get();
                        let model = models_sizes.get().and_then(Result::ok)
                            .and_then(|l| l.data.into_iter().find(|m| m.id == id));
                        let groups = super::sizes::groups(model.as_ref().map_or(&[][..], |m| &m.sizes));
                        // Options drawn after the value was set (a kept size, the list still
                        // loading) say themselves which one is chosen.
                        let current = size_kept.get_untracked();
                        groups.into_iter().map(|g| view! {
                            <optgroup label=g.label>
                                {g.sizes.into_iter().map(|(value, label)| {
                                    let selected = value == current;
                                    view! { <option value=value selected=selected>{label}</option> }
                                }).collect_view()}
                            </optgroup>
                        }).collect_view()
                    }}
                </select>
            </label>
            {super::results::count_and_seed(count, seed)}
            <label hidden=move || !takes_strength.get()>"Strength"
                <input name="strength" type="number" min="0" max="1" step="0.05"
                    placeholder=move || match default_strength.get() {
                        Some(d) => format!("model default ({d})"),
                        None => "model default".to_string(),
                    }
                    title="How far the result may move from the image: 0 keeps it, 1 redraws it"
                    prop:value=move || strength_out.get()
                    on:input=move |ev| strength_in.set(event_target_value(&ev))/>
            </label>
        </div>
    }
}

#[cfg(feature = "hydrate")]
#[path = "edit_browser.rs"]
mod browser;

/// The server renders the form; reading files, painting and sending happen in the browser.
#[cfg(not(feature = "hydrate"))]
mod browser {
    use super::{EditForm, Run};

    pub fn listen_for_paste(_: &EditForm) {}
    pub fn submit(_: &EditForm, _: &Run) {}
    pub fn pick_source(_: &EditForm, _: leptos::ev::Event) {}
    pub fn pick_mask(_: &EditForm, _: leptos::ev::Event) {}
    pub fn drop_source(_: &EditForm, _: leptos::ev::DragEvent) {}
    pub fn picture_loaded(_: &EditForm, _: leptos::ev::Event) {}
    pub fn picture_unreadable(_: &EditForm) {}
    pub fn stroke_start(_: &EditForm, _: leptos::ev::PointerEvent) {}
    pub fn stroke_move(_: &EditForm, _: leptos::ev::PointerEvent) {}
    pub fn stroke_end(_: &EditForm) {}
    pub fn clear_mask(_: &EditForm) {}
}
