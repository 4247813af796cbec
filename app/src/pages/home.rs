use leptos::prelude::*;

use crate::api::{
    error::ErrorEnvelope,
    images::ImageGenerationRequest,
    models::{ModelKind, ModelList},
};
use crate::server_fns::load_overview;

/// The first page: what the bridge is connected to, and a small generator that goes through the
/// public `/v1/images/generations` endpoint exactly as any OpenAI client would.
/// Settings to start from, from the address (`/?prompt=…&seed=…`, as the gallery's "Use these
/// settings" links). Read once, outside the Suspense below: nothing arena-owned is read in it.
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
    let overview = Resource::new(|| (), |_| load_overview());
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading bridge status…"</p> }>
            {move || {
                let prefill = prefill.clone();
                Suspend::new(async move {
                match overview.await {
                    Ok(o) => view! {
                        <Status overview=o.clone()/>
                        <Generator auth_required=o.auth_required default_model=o.default_model prefill/>
                    }.into_any(),
                    Err(e) => view! { <p class="error">"Could not load the bridge status: " {e.to_string()}</p> }.into_any(),
                }
            })}}
        </Suspense>
    }
}

#[component]
fn Status(overview: crate::server_fns::BridgeOverview) -> impl IntoView {
    let health = overview.health;
    let demo = health.demo;
    let ok = health.status == "ok";
    view! {
        <Show when=move || demo>
            <p class="banner" role="status">
                "Demo backend: images come from the built-in ComfyUI simulator, not from a real ComfyUI. "
                "Set COMFYUI_URL to use your own server."
            </p>
        </Show>
        <section class="card status">
            <h2>"Status: " <span class=if ok { "ok" } else { "bad" }>{health.status.clone()}</span></h2>
            <ul class="servers">
                {health.servers.into_iter().map(|s| view! {
                    <li>
                        <code>{s.url}</code> " — "
                        {if s.reachable { "reachable" } else { "unreachable" }}
                        {s.queue_remaining.map(|q| format!(", queue {q}"))}
                        {s.error.map(|e| format!(" ({e})"))}
                    </li>
                }).collect_view()}
            </ul>
            <p>"Models: " {health.workflows.models.join(", ")}</p>
            {(!health.workflows.errors.is_empty()).then(|| view! {
                <ul class="error">
                    {health.workflows.errors.into_iter().map(|e| view! { <li>{e}</li> }).collect_view()}
                </ul>
            })}
        </section>
    }
}

/// What the page shows for one image while it is made.
#[derive(Clone)]
struct Slot {
    status: ArcRwSignal<String>,
    step: ArcRwSignal<Option<(u64, u64)>>,
    preview: ArcRwSignal<Option<String>>,
    image: ArcRwSignal<Option<String>>,
    seed: ArcRwSignal<Option<u64>>,
}

impl Slot {
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn new() -> Slot {
        Slot {
            status: ArcRwSignal::new("Sending…".into()),
            step: ArcRwSignal::new(None),
            preview: ArcRwSignal::new(None),
            image: ArcRwSignal::new(None),
            seed: ArcRwSignal::new(None),
        }
    }
}

/// The state of the generator, shared by the form, the results and the running request.
#[derive(Clone)]
struct Run {
    slots: ArcRwSignal<Vec<Slot>>,
    running: ArcRwSignal<bool>,
    error: ArcRwSignal<Option<String>>,
    /// The prompt the shown images were made from, their alt text.
    prompt: ArcRwSignal<String>,
    cancel: ArcRwSignal<Option<Cancel>>,
}

#[cfg(feature = "hydrate")]
type Cancel = futures::channel::oneshot::Sender<()>;
#[cfg(not(feature = "hydrate"))]
type Cancel = ();

#[component]
fn Generator(
    auth_required: bool,
    default_model: Option<String>,
    prefill: Prefill,
) -> impl IntoView {
    // Everything here is reference-counted rather than arena-owned: the server renders this
    // view inside a Suspend, and arena values can be disposed between its dry run and its real
    // render. The model list is fetched by the browser only (effects never run on the server),
    // so server rendering never waits on it.
    let models = ArcRwSignal::<Option<Result<ModelList, String>>>::new(None);
    Effect::new({
        let models = models.clone();
        move |_| {
            let models = models.clone();
            leptos::task::spawn_local(async move { models.set(Some(fetch_models().await)) });
        }
    });
    let prompt = ArcRwSignal::new(prefill.prompt);
    let negative = ArcRwSignal::new(prefill.negative_prompt);
    let model = ArcRwSignal::new(prefill.model.or(default_model).unwrap_or_default());
    let size = ArcRwSignal::new(prefill.size.unwrap_or_else(|| "auto".into()));
    let count = ArcRwSignal::new(1u32);
    let seed = ArcRwSignal::new(prefill.seed);
    let steps = ArcRwSignal::new(prefill.steps);
    let cfg = ArcRwSignal::new(prefill.cfg);
    let advanced_open = !steps.get_untracked().is_empty() || !cfg.get_untracked().is_empty();
    let api_key = ArcRwSignal::new(super::key::stored_key());
    let run = Run {
        slots: ArcRwSignal::new(Vec::new()),
        running: ArcRwSignal::new(false),
        error: ArcRwSignal::new(None),
        prompt: ArcRwSignal::new(String::new()),
        cancel: ArcRwSignal::new(None),
    };
    let (prompt_in, model_in, size_in, key_in, count_in) = (
        prompt.clone(),
        model.clone(),
        size.clone(),
        api_key.clone(),
        count.clone(),
    );
    let (prompt_out, size_out, model_sel) = (prompt.clone(), size.clone(), model.clone());
    let (model_track, size_sel) = (model.clone(), size.clone());
    let (models_change, models_sizes) = (models.clone(), models.clone());
    let (steps_in, cfg_in, steps_out, cfg_out) =
        (steps.clone(), cfg.clone(), steps.clone(), cfg.clone());
    let (negative_in, negative_out, seed_in, seed_out, key_out) = (
        negative.clone(),
        negative.clone(),
        seed.clone(),
        seed.clone(),
        api_key.clone(),
    );
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
            start(&run, request, api_key.get_untracked());
        }
    };
    let on_cancel = {
        let cancel = run.cancel.clone();
        move |_| {
            // Dropping the sender is enough: the running request sees it and aborts.
            cancel.set(None);
        }
    };
    let (busy, running, error, slots, shown) = (
        run.running.clone(),
        run.running.clone(),
        run.error.clone(),
        run.slots.clone(),
        run.prompt.clone(),
    );
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
                                l.data.iter().any(|m| m.id == chosen && m.sizes.contains(&size.get_untracked()))
                            });
                            if !offered {
                                size.set("auto".into());
                            }
                            model_in.set(chosen);
                        }
                    }>
                        {move || models.get().map(|list| match list {
                            Ok(list) => list.data.into_iter()
                                .filter(|m| m.kind.is_none() || m.kind == Some(ModelKind::Txt2Img))
                                .map(|m| {
                                    let selected = m.id == model_sel.get_untracked();
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
                                let default = model.as_ref().and_then(|m| m.default_size.clone());
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
                <label>"Images"
                    <select name="n" on:change=move |ev| {
                        count_in.set(event_target_value(&ev).parse().unwrap_or(1))
                    }>
                        {(1..=4).map(|i| view! { <option value=i.to_string()>{i}</option> }).collect_view()}
                    </select>
                </label>
                <label>"Seed"
                    <input name="seed" inputmode="numeric" placeholder="random"
                        prop:value=move || seed_out.get()
                        on:input=move |ev| seed_in.set(event_target_value(&ev))/>
                </label>
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
                <Show when=move || auth_required>
                    <label>"API key"
                        <input name="api_key" type="password" autocomplete="off"
                            prop:value={
                                let key = key_out.clone();
                                move || key.get()
                            }
                            on:input={
                                let key = key_in.clone();
                                move |ev| {
                                    let value = event_target_value(&ev);
                                    super::key::store_key(&value);
                                    key.set(value)
                                }
                            }/>
                    </label>
                </Show>
                <div class="actions">
                    <button type="submit" disabled=move || busy.get()>
                        {move || if running.get() { "Generating…" } else { "Generate" }}
                    </button>
                    <Show when={
                        let running = run.running.clone();
                        move || running.get()
                    }>
                        <button type="button" class="secondary" on:click=on_cancel.clone()>"Cancel"</button>
                    </Show>
                </div>
            </form>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <div class="results">
                {move || {
                    let alt = shown.get();
                    slots.get().into_iter().map(|slot| slot_view(slot, alt.clone())).collect_view()
                }}
            </div>
        </section>
    }
}

fn slot_view(slot: Slot, alt: String) -> impl IntoView {
    let Slot {
        status,
        step,
        preview,
        image,
        seed,
    } = slot;
    let step_value = step.clone();
    view! {
        <figure class="slot">
            <div class="frame">
                {move || match (image.get(), preview.get()) {
                    (Some(src), _) => view! { <img class="final" src=src alt=alt.clone()/> }.into_any(),
                    (None, Some(src)) => view! { <img class="preview" src=src alt="preview"/> }.into_any(),
                    (None, None) => view! { <div class="placeholder"></div> }.into_any(),
                }}
            </div>
            <progress
                max=move || step.get().map_or(1, |(_, of)| of.max(1)).to_string()
                value=move || step_value.get().map_or(0, |(at, _)| at).to_string()></progress>
            <figcaption>
                <span class="status">{move || status.get()}</span>
                {move || seed.get().map(|s| format!(" · seed {s}"))}
            </figcaption>
        </figure>
    }
}

/// Starts a streamed generation: one slot per image, filled in as events arrive.
#[cfg(feature = "hydrate")]
fn start(run: &Run, request: ImageGenerationRequest, api_key: String) {
    use super::stream::{self, Outcome, Update};

    let slots: Vec<Slot> = (0..request.n.unwrap_or(1)).map(|_| Slot::new()).collect();
    run.slots.set(slots.clone());
    run.error.set(None);
    run.prompt.set(request.prompt.clone());
    run.running.set(true);
    let (tx, rx) = futures::channel::oneshot::channel();
    run.cancel.set(Some(tx));
    let run = run.clone();
    leptos::task::spawn_local(async move {
        let error = run.error.clone();
        let apply = |update: Update| {
            let slot = |i: usize| slots.get(i);
            match update {
                Update::Queued { index, ahead } => {
                    if let Some(s) = slot(index) {
                        s.status.set(match ahead {
                            Some(n) if n > 0 => format!("Queued, {n} ahead"),
                            _ => "Queued".into(),
                        });
                    }
                }
                Update::Running { index } => {
                    if let Some(s) = slot(index) {
                        s.status.set("Running".into());
                    }
                }
                Update::Step { index, step, steps } => {
                    if let Some(s) = slot(index) {
                        s.status.set(format!("Step {step} of {steps}"));
                        s.step.set(Some((step, steps)));
                    }
                }
                Update::Partial { index, data_url } => {
                    if let Some(s) = slot(index) {
                        s.preview.set(Some(data_url));
                    }
                }
                Update::Done {
                    index,
                    data_url,
                    seed,
                } => {
                    if let Some(s) = slot(index) {
                        s.image.set(Some(data_url));
                        s.seed.set(seed);
                        s.status.set("Done".into());
                        s.step.update(|st| *st = st.map(|(_, of)| (of, of)));
                    }
                }
                Update::Failed(message) => error.set(Some(message)),
            }
        };
        let outcome = stream::run(&request, &api_key, rx, apply).await;
        let unfinished = |text: &str| {
            for s in &slots {
                if s.image.get_untracked().is_none() {
                    s.status.set(text.into());
                }
            }
        };
        match outcome {
            Ok(Outcome::Cancelled) => unfinished("Cancelled"),
            Ok(Outcome::Finished) => {
                if run.error.get_untracked().is_some() {
                    unfinished("Failed");
                }
            }
            Err(e) => {
                unfinished("Failed");
                run.error.set(Some(e));
            }
        }
        run.running.set(false);
        run.cancel.set(None);
    });
}

// The server renders the page but never submits the form: that only happens after hydration.
#[cfg(not(feature = "hydrate"))]
fn start(run: &Run, request: ImageGenerationRequest, api_key: String) {
    let _ = (run, request, api_key);
}

/// Turns a failed response's body into the words a person should read: the envelope's message.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub(super) fn error_text(status: u16, body: &str) -> String {
    match serde_json::from_str::<ErrorEnvelope>(body) {
        Ok(env) => env.error.message,
        Err(_) => format!("The server answered {status}."),
    }
}

#[cfg(feature = "hydrate")]
async fn fetch_models() -> Result<ModelList, String> {
    let resp = gloo_net::http::Request::get("/v1/models")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    read_json(resp).await
}

#[cfg(feature = "hydrate")]
async fn read_json<T: serde::de::DeserializeOwned>(
    resp: gloo_net::http::Response,
) -> Result<T, String> {
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    if !resp.ok() {
        return Err(error_text(status, &text));
    }
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

// The server renders the page but never runs these: they only run after hydration.
#[cfg(not(feature = "hydrate"))]
async fn fetch_models() -> Result<ModelList, String> {
    Err(String::from("loading…"))
}
