use leptos::prelude::*;

use super::{connection::use_connection, fetch::model_list, results::Run, stream::Body};
use crate::api::{images::ImageGenerationRequest, models::ModelKind};

/// The first page: a generator that goes through the public `/v1/images/generations` endpoint
/// exactly as any OpenAI client would.
/// Settings to start from, from the address (`/?prompt=…&seed=…`, as the gallery's "Use these
/// settings" links), read once.
#[derive(Clone, Debug, Default)]
struct Prefill {
    prompt: String,
    negative_prompt: String,
    model: Option<String>,
    size: Option<String>,
    seed: String,
    steps: String,
    cfg: String,
}

#[component]
pub fn HomePage() -> impl IntoView {
    let query = leptos_router::hooks::use_query_map().get_untracked();
    let param = |k: &str| query.get(k).unwrap_or_default();
    let prefill = Prefill {
        prompt: param("prompt"),
        negative_prompt: param("negative_prompt"),
        model: query.get("model"),
        size: query.get("size"),
        seed: param("seed"),
        steps: param("steps"),
        cfg: param("cfg"),
    };
    view! { <Generator prefill/> }
}

#[component]
fn Generator(prefill: Prefill) -> impl IntoView {
    let models = model_list();
    let connection = use_connection();
    let prompt = ArcRwSignal::new(prefill.prompt);
    let negative = ArcRwSignal::new(prefill.negative_prompt);
    let model = ArcRwSignal::new(prefill.model.unwrap_or_default());
    // With no model asked for, the form shows the bridge's default once both are known.
    Effect::new({
        let (models, model, connection) = (models.clone(), model.clone(), connection.clone());
        move |_| {
            let (Some(Ok(list)), Some(default)) = (models.get(), connection.default_model()) else {
                return;
            };
            if model.get_untracked().is_empty() {
                let offered = |id: &str| list.data.iter().any(|m| m.id == id);
                let first = list
                    .data
                    .iter()
                    .find(|m| is_generator(m.kind))
                    .map(|m| m.id.clone());
                model.set(default.filter(|d| offered(d)).or(first).unwrap_or_default());
            }
        }
    });
    let size = ArcRwSignal::new(prefill.size.unwrap_or_else(|| "auto".into()));
    let count = ArcRwSignal::new(1u32);
    let seed = ArcRwSignal::new(prefill.seed);
    let steps = ArcRwSignal::new(prefill.steps);
    let cfg = ArcRwSignal::new(prefill.cfg);
    let advanced_open = !steps.get_untracked().is_empty() || !cfg.get_untracked().is_empty();
    let api_key = connection.api_key.clone();
    let run = Run::new(seed.clone());
    let (prompt_in, model_in, size_in, count_in) =
        (prompt.clone(), model.clone(), size.clone(), count.clone());
    let (prompt_out, size_out, model_sel) = (prompt.clone(), size.clone(), model.clone());
    let (model_track, size_sel) = (model.clone(), size.clone());
    let (models_change, models_sizes) = (models.clone(), models.clone());
    let (steps_in, cfg_in, steps_out, cfg_out) =
        (steps.clone(), cfg.clone(), steps.clone(), cfg.clone());
    let (negative_in, negative_out, seed_in) = (negative.clone(), negative.clone(), seed.clone());
    let on_submit = {
        let run = run.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let request = ImageGenerationRequest {
                prompt: prompt.get_untracked(),
                model: Some(model.get_untracked()).filter(|m| !m.is_empty()),
                size: Some(size.get_untracked()),
                n: Some(count.get_untracked()),
                negative_prompt: Some(negative.get_untracked()).filter(|n| !n.trim().is_empty()),
                // Blank: a random seed per image. A seed: the same image again (n > 1 counts up).
                seed: seed.get_untracked().trim().parse().ok(),
                // Empty or unreadable fields leave the model's own values.
                steps: steps.get_untracked().trim().parse().ok(),
                cfg: cfg.get_untracked().trim().parse().ok(),
                stream: Some(true),
                partial_images: Some(2),
                stream_progress: Some(true),
                ..Default::default()
            };
            let (images, shown) = (request.n.unwrap_or(1), request.prompt.clone());
            super::results::start(
                &run,
                Body::Generate(Box::new(request)),
                images,
                shown,
                api_key.get_untracked(),
            );
        }
    };
    view! {
        <section class="card">
            <h2>"Generate"</h2>
            <form on:submit=on_submit class="generate">
                <label>"Prompt"
                    <textarea name="prompt" rows="3" required
                        prop:value=move || prompt_out.get()
                        on:input=move |ev| prompt_in.set(event_target_value(&ev))></textarea>
                </label>
                <label>"Negative prompt"
                    <input name="negative_prompt" placeholder="optional"
                        prop:value=move || negative_out.get()
                        on:input=move |ev| negative_in.set(event_target_value(&ev))/>
                </label>
                <label>"Model"
                    <select name="model" on:change={
                        let (models, size) = (models_change, size_in.clone());
                        move |ev| {
                            let chosen = event_target_value(&ev);
                            // A size the new model does not offer falls back to its default.
                            let offered = models.get_untracked().and_then(Result::ok).is_some_and(|l| {
                                l.data.iter().any(|m| m.id == chosen && m.sizes.iter().any(|s| s.to_string() == size.get_untracked()))
                            });
                            if !offered {
                                size.set("auto".into());
                            }
                            model_in.set(chosen);
                        }
                    }>
                        {move || models.get().map(|list| match list {
                            Ok(list) => list.data.into_iter()
                                .filter(|m| is_generator(m.kind))
                                .map(|m| {
                                    let selected = m.id == model_sel.get();
                                    view! { <option value=m.id.clone() selected=selected>{m.id.clone()}</option> }
                                }).collect_view().into_any(),
                            Err(e) => view! { <option value="">{e}</option> }.into_any(),
                        })}
                    </select>
                </label>
                <label>"Size"
                    <select name="size" prop:value=move || size_out.get()
                        on:change={
                            let size = size_in.clone();
                            move |ev| size.set(event_target_value(&ev))
                        }>
                        {
                            let (models, chosen, size) = (models_sizes, model_track.clone(), size_sel.clone());
                            move || {
                                let id = chosen.get();
                                let model = models.get().and_then(Result::ok)
                                    .and_then(|l| l.data.into_iter().find(|m| m.id == id));
                                let current = size.get_untracked();
                                let default = model.as_ref().and_then(|m| m.default_size);
                                let groups = super::sizes::groups(model.as_ref().map_or(&[][..], |m| &m.sizes));
                                view! {
                                    <option value="auto" selected={current == "auto"}>
                                        {match default {
                                            Some(d) => format!("Model default ({d})"),
                                            None => "Model default".to_string(),
                                        }}
                                    </option>
                                    {groups.into_iter().map(|g| view! {
                                        <optgroup label=g.label>
                                            {g.sizes.into_iter().map(|(value, label)| {
                                                let selected = value == current;
                                                view! { <option value=value selected=selected>{label}</option> }
                                            }).collect_view()}
                                        </optgroup>
                                    }).collect_view()}
                                }
                            }
                        }
                    </select>
                </label>
                {super::results::count_and_seed(count_in, seed_in)}
                <details class="advanced" open=advanced_open>
                    <summary>"Advanced"</summary>
                    <label>"Steps"
                        <input name="steps" type="number" min="1" max="200" placeholder="model default"
                            prop:value=move || steps_out.get()
                            on:input=move |ev| steps_in.set(event_target_value(&ev))/>
                    </label>
                    <label>"CFG"
                        <input name="cfg" type="number" min="0" max="100" step="0.1" placeholder="model default"
                            prop:value=move || cfg_out.get()
                            on:input=move |ev| cfg_in.set(event_target_value(&ev))/>
                    </label>
                </details>
                {run.actions("Generate", "Generating…")}
            </form>
            {run.view()}
        </section>
    }
}

/// Models the Generate page offers: text to image (or of no declared kind).
fn is_generator(kind: Option<ModelKind>) -> bool {
    kind.is_none() || kind == Some(ModelKind::Txt2Img)
}
