use leptos::prelude::*;

use super::{connection::use_connection, fetch::model_list, stream::Body};
use crate::api::{
    images::ImageGenerationRequest,
    models::{ModelInputs, ModelKind, ModelList},
    parameters::Parameters,
};

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
    sampler: String,
    scheduler: String,
    /// Whether the address named any setting.
    given: bool,
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
        sampler: param("sampler"),
        scheduler: param("scheduler"),
        given: [
            "prompt",
            "negative_prompt",
            "model",
            "size",
            "seed",
            "steps",
            "cfg",
            "sampler",
            "scheduler",
        ]
        .iter()
        .any(|k| query.get(k).is_some()),
    };
    view! { <Generator prefill/> }
}

#[component]
fn Generator(prefill: Prefill) -> impl IntoView {
    let models = model_list();
    let connection = use_connection();
    let studio = super::kept::use_studio();
    let kept = studio.generate.clone();
    // An address with settings fills the form with them alone; without, the form is as it was
    // left.
    if prefill.given {
        kept.prefilled.set(true);
        kept.prompt.set(prefill.prompt);
        kept.negative.set(prefill.negative_prompt);
        kept.model.set(prefill.model.unwrap_or_default());
        kept.size.set(prefill.size.unwrap_or_else(|| "auto".into()));
        kept.seed.set(prefill.seed);
        kept.steps.set(prefill.steps);
        kept.cfg.set(prefill.cfg);
        kept.sampler.set(prefill.sampler);
        kept.scheduler.set(prefill.scheduler);
    }
    let prompt = kept.prompt.clone();
    let negative = kept.negative.clone();
    let model = kept.model.clone();
    let notice = ArcRwSignal::new(None::<String>);
    // The model shown is the model sent. With none asked for, the form says "Default model" (and
    // sends none) until the bridge's default is known, then shows that. One Generate does not
    // offer, such as the editing model of a gallery image, is replaced by one it does, and the
    // form says so.
    Effect::new({
        let (models, model, connection, notice) = (
            models.clone(),
            model.clone(),
            connection.clone(),
            notice.clone(),
        );
        move |_| {
            let Some(Ok(list)) = models.get() else {
                return;
            };
            let default = connection.default_model();
            let current = model.get_untracked();
            if current.is_empty() {
                if let Some(default) = default {
                    model.set(generator_for(&list, None, default.as_deref()).unwrap_or_default());
                }
                return;
            }
            let offered = list
                .data
                .iter()
                .any(|m| m.id == current && is_generator(m.kind));
            if !offered {
                let pick = generator_for(&list, Some(&current), default.flatten().as_deref());
                notice.set(Some(replaced(&list, &current, pick.as_deref())));
                model.set(pick.unwrap_or_default());
            }
        }
    });
    let size = kept.size.clone();
    let count = kept.count.clone();
    let seed = kept.seed.clone();
    let steps = kept.steps.clone();
    let cfg = kept.cfg.clone();
    let sampler = kept.sampler.clone();
    let scheduler = kept.scheduler.clone();
    let advanced_open = [&steps, &cfg, &sampler, &scheduler]
        .iter()
        .any(|s| !s.get_untracked().is_empty());
    // What the chosen model takes; `None` until the list has loaded, when every field shows.
    let inputs = {
        let (models, model) = (models.clone(), model.clone());
        Signal::derive(move || inputs_of(&models.get(), &model.get()))
    };
    let api_key = connection.api_key.clone();
    let run = kept.run.clone();
    connection.ask_for_key_on({
        let error = run.error.clone();
        move || error.with(Option::is_some)
    });
    let field = NodeRef::<leptos::html::Textarea>::new();
    let fields = Fields {
        prompt: prompt.clone(),
        negative: negative.clone(),
        model: model.clone(),
        size: size.clone(),
        seed: seed.clone(),
        steps: steps.clone(),
        cfg: cfg.clone(),
        sampler: sampler.clone(),
        scheduler: scheduler.clone(),
        models: models.clone(),
        notice: notice.clone(),
    };
    browser::listen_for_paste(&fields);
    let notice_shown = notice.clone();
    let (prompt_in, model_in, size_in, count_in) =
        (prompt.clone(), model.clone(), size.clone(), count.clone());
    let (prompt_out, size_out, model_sel) = (prompt.clone(), size.clone(), model.clone());
    let (model_track, size_sel) = (model.clone(), size.clone());
    let (models_change, models_sizes) = (models.clone(), models.clone());
    let (steps_in, cfg_in, steps_out, cfg_out) =
        (steps.clone(), cfg.clone(), steps.clone(), cfg.clone());
    let (negative_in, negative_out, seed_in) = (negative.clone(), negative.clone(), seed.clone());
    // What the form asks for, as sent and as the copied commands show it.
    let request_of = {
        let (prompt, model, size, count) =
            (prompt.clone(), model.clone(), size.clone(), count.clone());
        let (negative, seed) = (negative.clone(), seed.clone());
        let (sampler, scheduler) = (sampler.clone(), scheduler.clone());
        move || {
            // Fields the model does not take stay unsent, whatever they hold from another model.
            let takes = inputs.get_untracked();
            let given = |taken: fn(&ModelInputs) -> bool, value: String| {
                let taken = takes.as_ref().is_none_or(taken);
                Some(value).filter(|v| taken && !v.trim().is_empty())
            };
            ImageGenerationRequest {
                prompt: prompt.get_untracked(),
                model: Some(model.get_untracked()).filter(|m| !m.is_empty()),
                size: Some(size.get_untracked()),
                n: Some(count.get_untracked()),
                negative_prompt: given(|i| i.negative_prompt.is_some(), negative.get_untracked()),
                // Blank: a random seed per image. A seed: the same image again (n > 1 counts up).
                seed: seed.get_untracked().trim().parse().ok(),
                // Empty or unreadable fields leave the model's own values.
                steps: given(|i| i.steps.is_some(), steps.get_untracked())
                    .and_then(|v| v.trim().parse().ok()),
                cfg: given(|i| i.cfg.is_some(), cfg.get_untracked())
                    .and_then(|v| v.trim().parse().ok()),
                sampler: given(|i| i.sampler.is_some(), sampler.get_untracked()),
                scheduler: given(|i| i.scheduler.is_some(), scheduler.get_untracked()),
                stream: Some(true),
                partial_images: Some(2),
                stream_progress: Some(true),
                ..Default::default()
            }
        }
    };
    let call = {
        let request_of = request_of.clone();
        move || super::snippets::Call::generate(&request_of())
    };
    let on_submit = {
        let run = run.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            // A seed that is not one is said under the field, never replaced by a random one.
            if super::shortcuts::seed_problem(&seed.get_untracked()).is_some() {
                return;
            }
            let request = request_of();
            let (images, shown) = (request.n.unwrap_or(1), request.prompt.clone());
            studio.remember(&shown);
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
        <section class="card studio">
            <h2>"Generate"</h2>
            <form on:submit=on_submit class="generate" on:keydown=super::shortcuts::submit_on_ctrl_enter
                on:dragover=|ev: leptos::ev::DragEvent| ev.prevent_default()
                on:drop=move |ev| browser::drop_image(&fields, ev)>
                <p class="muted hint">"Drop or paste a PNG to reuse the settings it was made with."</p>
                <p class="notice" aria-live="polite" hidden=move || notice_shown.with(Option::is_none)>
                    {move || notice.get()}
                </p>
                <label>"Prompt"
                    <textarea name="prompt" rows="3" required node_ref=field
                        prop:value=move || prompt_out.get()
                        on:input=move |ev| prompt_in.set(event_target_value(&ev))></textarea>
                </label>
                {super::kept::prompt_history(kept.prompt.clone(), field)}
                <Show when=move || takes(inputs.get(), |i| i.negative_prompt.is_some())>
                    <label>"Negative prompt"
                        <input name="negative_prompt"
                            placeholder=move || placeholder(inputs.get().and_then(|i| i.negative_prompt?.default), "optional")
                            prop:value={
                                let n = negative_out.clone();
                                move || n.get()
                            }
                            on:input={
                                let n = negative_in.clone();
                                move |ev| n.set(event_target_value(&ev))
                            }/>
                    </label>
                </Show>
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
                        {move || {
                            let chosen = model_sel.get();
                            let unset = chosen.is_empty().then(|| view! {
                                <option value="" selected=true>"Default model"</option>
                            });
                            let offered = models.get().map(|list| match list {
                                Ok(list) => list.data.into_iter()
                                    .filter(|m| is_generator(m.kind))
                                    .map(|m| {
                                        let selected = m.id == chosen;
                                        view! { <option value=m.id.clone() selected=selected>{m.id.clone()}</option> }
                                    }).collect_view().into_any(),
                                Err(e) => view! { <option value="" disabled=true>{e}</option> }.into_any(),
                            });
                            view! { {unset} {offered} }
                        }}
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
                    <Show when=move || takes(inputs.get(), |i| i.steps.is_some())>
                        <label>"Steps"
                            <input name="steps" type="number"
                                min=move || inputs.get().and_then(|i| i.steps).map_or(1, |s| s.min).to_string()
                                max=move || inputs.get().and_then(|i| i.steps).map_or(200, |s| s.max).to_string()
                                placeholder=move || placeholder(inputs.get().and_then(|i| i.steps?.default), "model default")
                                prop:value={
                                    let s = steps_out.clone();
                                    move || s.get()
                                }
                                on:input={
                                    let s = steps_in.clone();
                                    move |ev| s.set(event_target_value(&ev))
                                }/>
                        </label>
                    </Show>
                    <Show when=move || takes(inputs.get(), |i| i.cfg.is_some())>
                        <label>"CFG"
                            <input name="cfg" type="number" min="0" step="0.1"
                                max=move || inputs.get().and_then(|i| i.cfg).map_or(100.0, |c| c.max).to_string()
                                placeholder=move || placeholder(inputs.get().and_then(|i| i.cfg?.default), "model default")
                                prop:value={
                                    let c = cfg_out.clone();
                                    move || c.get()
                                }
                                on:input={
                                    let c = cfg_in.clone();
                                    move |ev| c.set(event_target_value(&ev))
                                }/>
                        </label>
                    </Show>
                    {choice("Sampler", "sampler", inputs, |i| i.sampler.clone(), sampler)}
                    {choice("Scheduler", "scheduler", inputs, |i| i.scheduler.clone(), scheduler)}
                    <p class="muted" hidden=move || !takes_none(inputs.get())>
                        "This model takes no other settings."
                    </p>
                </details>
                {run.actions("Generate", "Generating…")}
                {super::snippets::copy_buttons(call)}
            </form>
            <div class="outcome">{run.view()}</div>
        </section>
    }
}

/// The form's fields, as an image's settings fill them.
#[derive(Clone)]
pub(super) struct Fields {
    prompt: ArcRwSignal<String>,
    negative: ArcRwSignal<String>,
    model: ArcRwSignal<String>,
    size: ArcRwSignal<String>,
    seed: ArcRwSignal<String>,
    steps: ArcRwSignal<String>,
    cfg: ArcRwSignal<String>,
    sampler: ArcRwSignal<String>,
    scheduler: ArcRwSignal<String>,
    models: ArcRwSignal<Option<Result<ModelList, String>>>,
    notice: ArcRwSignal<Option<String>>,
}

impl Fields {
    /// Puts what image `name` says it was made with into the form; a setting the image does not
    /// give is cleared, so the form makes that image again.
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    pub(super) fn apply(&self, name: &str, found: Option<Parameters>) {
        let Some(p) = found else {
            self.notice.set(Some(format!(
                "{name} carries no settings this page can read (PNG images from this bridge, \
                 ComfyUI or A1111 do)."
            )));
            return;
        };
        let list = self.models.get_untracked().and_then(Result::ok);
        let here = p
            .model
            .as_ref()
            .and_then(|m| list.as_ref()?.data.iter().find(|x| &x.id == m).cloned());
        let mut notice = format!("Settings read from {name}.");
        match (&here, &p.model) {
            (Some(m), _) => self.model.set(m.id.clone()),
            (None, Some(other)) => {
                notice.push_str(&format!(" Its model, {other}, is not on this bridge."))
            }
            (None, None) => {}
        }
        let chosen = self.model.get_untracked();
        let chosen = list.and_then(|l| l.data.into_iter().find(|m| m.id == chosen));
        let offered = |s: crate::api::size::Size| {
            chosen
                .as_ref()
                .is_some_and(|m| m.sizes.contains(&s) || m.size_rule.is_some_and(|r| r.allows(s)))
        };
        let text = |v: Option<String>| v.unwrap_or_default();
        self.prompt.set(p.prompt);
        self.negative.set(text(p.negative_prompt));
        self.size.set(
            p.size
                .filter(|s| offered(*s))
                .map_or_else(|| "auto".to_string(), |s| s.to_string()),
        );
        self.seed.set(text(p.seed.map(|s| s.to_string())));
        self.steps.set(text(p.steps.map(|s| s.to_string())));
        self.cfg.set(text(p.cfg.map(|c| c.to_string())));
        self.sampler.set(text(p.sampler));
        self.scheduler.set(text(p.scheduler));
        self.notice.set(Some(notice));
    }
}

#[cfg(feature = "hydrate")]
#[path = "home_browser.rs"]
mod browser;

/// Images are read in the browser only.
#[cfg(not(feature = "hydrate"))]
mod browser {
    use super::Fields;

    pub fn listen_for_paste(_: &Fields) {}
    pub fn drop_image(_: &Fields, _: leptos::ev::DragEvent) {}
}

fn inputs_of(models: &Option<Result<ModelList, String>>, id: &str) -> Option<ModelInputs> {
    let list = models.as_ref()?.as_ref().ok()?;
    list.data.iter().find(|m| m.id == id)?.inputs.clone()
}

/// Whether a field shows: the model takes it, or what it takes is not known yet.
fn takes(inputs: Option<ModelInputs>, taken: impl Fn(&ModelInputs) -> bool) -> bool {
    inputs.as_ref().is_none_or(taken)
}

fn takes_none(inputs: Option<ModelInputs>) -> bool {
    inputs.is_some_and(|i| {
        i.steps.is_none() && i.cfg.is_none() && i.sampler.is_none() && i.scheduler.is_none()
    })
}

fn placeholder(default: Option<impl std::fmt::Display>, otherwise: &str) -> String {
    match default {
        Some(d) => format!("model default ({d})"),
        None => otherwise.to_string(),
    }
}

/// A sampler or scheduler menu, shown when the model takes one and a server has listed the
/// choices.
fn choice(
    label: &'static str,
    name: &'static str,
    inputs: Signal<Option<ModelInputs>>,
    field: fn(&ModelInputs) -> Option<crate::api::models::ChoiceInput>,
    value: ArcRwSignal<String>,
) -> impl IntoView {
    let (value_in, value_out) = (value.clone(), value);
    move || {
        let choice = inputs.get().as_ref().and_then(field)?;
        if choice.options.is_empty() {
            return None;
        }
        let current = value_out.get();
        let value_in = value_in.clone();
        Some(view! {
            <label>{label}
                <select name=name on:change=move |ev| value_in.set(event_target_value(&ev))>
                    <option value="" selected=current.is_empty()>
                        {placeholder(choice.default.clone(), "model default")}
                    </option>
                    {choice.options.into_iter().map(|o| {
                        let selected = o == current;
                        view! { <option value=o.clone() selected=selected>{o.clone()}</option> }
                    }).collect_view()}
                </select>
            </label>
        })
    }
}

/// What Generate sends instead of `wanted`, a model it does not offer: the text-to-image model
/// of the same family (`sdxl` for `sdxl-img2img`), else the bridge's default, else the first
/// offered. With nothing wanted, the default or the first. `None`: nothing is offered.
fn generator_for(list: &ModelList, wanted: Option<&str>, default: Option<&str>) -> Option<String> {
    let offered = |id: &str| list.data.iter().any(|m| m.id == id && is_generator(m.kind));
    let family = wanted.and_then(|w| {
        let base = ["-img2img", "-inpaint", "-edit"]
            .iter()
            .find_map(|suffix| w.strip_suffix(suffix))?;
        [base.to_string(), format!("{base}-txt2img")]
            .into_iter()
            .find(|id| offered(id))
    });
    family
        .or_else(|| default.filter(|d| offered(d)).map(str::to_string))
        .or_else(|| {
            list.data
                .iter()
                .find(|m| is_generator(m.kind))
                .map(|m| m.id.clone())
        })
}

/// Why the form shows another model than the one asked for.
fn replaced(list: &ModelList, wanted: &str, pick: Option<&str>) -> String {
    let edits = list
        .data
        .iter()
        .any(|m| m.id == wanted && m.kind.is_some_and(ModelKind::edits));
    let why = if edits {
        "changes an input image and cannot make one from a prompt"
    } else {
        "is not on this bridge"
    };
    let instead = pick.map_or("the default model".to_string(), str::to_string);
    format!("{wanted} {why}; the form uses {instead} instead.")
}

/// Models the Generate page offers: text to image (or of no declared kind).
fn is_generator(kind: Option<ModelKind>) -> bool {
    kind.is_none() || kind == Some(ModelKind::Txt2Img)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::models::Model;

    fn list(models: &[(&str, ModelKind)]) -> ModelList {
        let data = models
            .iter()
            .map(|(id, kind)| {
                serde_json::from_value::<Model>(serde_json::json!({
                    "id": id, "object": "model", "created": 0, "owned_by": "bridge", "kind": kind,
                }))
                .expect("a model")
            })
            .collect();
        ModelList {
            object: "list".into(),
            data,
        }
    }

    #[test]
    fn an_editing_model_is_replaced_by_one_generate_can_send() {
        let models = list(&[
            ("z-image-turbo", ModelKind::Txt2Img),
            ("sdxl", ModelKind::Txt2Img),
            ("sdxl-img2img", ModelKind::Img2Img),
            ("weightfree-txt2img", ModelKind::Txt2Img),
            ("weightfree-inpaint", ModelKind::Inpaint),
            ("weightfree-blend", ModelKind::Img2Img),
        ]);
        let pick = |wanted, default| generator_for(&models, wanted, default);
        assert_eq!(pick(Some("sdxl-img2img"), None).as_deref(), Some("sdxl"));
        assert_eq!(
            pick(Some("weightfree-inpaint"), Some("sdxl")).as_deref(),
            Some("weightfree-txt2img")
        );
        assert_eq!(
            pick(Some("weightfree-blend"), Some("sdxl")).as_deref(),
            Some("sdxl")
        );
        assert_eq!(
            pick(Some("gone"), Some("sdxl-img2img")).as_deref(),
            Some("z-image-turbo")
        );
        assert_eq!(pick(None, Some("sdxl")).as_deref(), Some("sdxl"));
        assert_eq!(
            replaced(&models, "sdxl-img2img", Some("sdxl")),
            "sdxl-img2img changes an input image and cannot make one from a prompt; \
             the form uses sdxl instead."
        );
        assert_eq!(
            replaced(&models, "gone", None),
            "gone is not on this bridge; the form uses the default model instead."
        );
    }
}
