use leptos::prelude::*;

use crate::api::{
    error::ErrorEnvelope,
    images::{ImageGenerationRequest, ImagesResponse, ResponseFormat},
    models::{ModelKind, ModelList},
};
use crate::server_fns::load_overview;

/// The first page: what the bridge is connected to, and a small generator that goes through the
/// public `/v1/images/generations` endpoint exactly as any OpenAI client would.
#[component]
pub fn HomePage() -> impl IntoView {
    let overview = Resource::new(|| (), |_| load_overview());
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading bridge status…"</p> }>
            {move || Suspend::new(async move {
                match overview.await {
                    Ok(o) => view! {
                        <Status overview=o.clone()/>
                        <Generator auth_required=o.auth_required default_model=o.default_model/>
                    }.into_any(),
                    Err(e) => view! { <p class="error">"Could not load the bridge status: " {e.to_string()}</p> }.into_any(),
                }
            })}
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

#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
struct GenerateInput {
    request: ImageGenerationRequest,
    api_key: String,
}

#[component]
fn Generator(auth_required: bool, default_model: Option<String>) -> impl IntoView {
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
    let prompt = ArcRwSignal::new(String::new());
    let model = ArcRwSignal::new(default_model.unwrap_or_default());
    let size = ArcRwSignal::new(String::from("auto"));
    let api_key = ArcRwSignal::new(String::new());
    let (prompt_in, model_in, size_in, key_in) =
        (prompt.clone(), model.clone(), size.clone(), api_key.clone());
    let (prompt_out, size_out, model_sel) = (prompt.clone(), size.clone(), model.clone());
    let generate = ArcAction::new_unsync(|input: &GenerateInput| generate_images(input.clone()));
    let pending = generate.pending();
    let busy = pending.clone();
    let result = generate.value();
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        generate.dispatch_local(GenerateInput {
            request: ImageGenerationRequest {
                prompt: prompt.get_untracked(),
                model: Some(model.get_untracked()).filter(|m| !m.is_empty()),
                size: Some(size.get_untracked()),
                response_format: Some(ResponseFormat::Url),
                ..Default::default()
            },
            api_key: api_key.get_untracked(),
        });
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
                <label>"Model"
                    <select name="model" on:change=move |ev| model_in.set(event_target_value(&ev))>
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
                    <input name="size" prop:value=move || size_out.get()
                        on:input=move |ev| size_in.set(event_target_value(&ev))/>
                </label>
                <Show when=move || auth_required>
                    <label>"API key"
                        <input name="api_key" type="password" autocomplete="off"
                            on:input={
                                let key = key_in.clone();
                                move |ev| key.set(event_target_value(&ev))
                            }/>
                    </label>
                </Show>
                <button type="submit" disabled=move || busy.get()>
                    {move || if pending.get() { "Generating…" } else { "Generate" }}
                </button>
            </form>
            {move || result.get().map(|result| match result {
                Ok(resp) => view! {
                    <div class="results">
                        {resp.data.into_iter().map(|img| view! {
                            <figure>
                                <img src=img.url.unwrap_or_default() alt=img.revised_prompt.clone().unwrap_or_default()/>
                                <figcaption>{img.seed.map(|s| format!("seed {s}"))}</figcaption>
                            </figure>
                        }).collect_view()}
                    </div>
                }.into_any(),
                Err(e) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
            })}
        </section>
    }
}

/// Turns a failed response's body into the words a person should read: the envelope's message.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn error_text(status: u16, body: &str) -> String {
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
async fn generate_images(input: GenerateInput) -> Result<ImagesResponse, String> {
    let mut req = gloo_net::http::Request::post("/v1/images/generations");
    if !input.api_key.is_empty() {
        req = req.header("Authorization", &format!("Bearer {}", input.api_key));
    }
    let resp = req
        .json(&input.request)
        .map_err(|e| e.to_string())?
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

#[cfg(not(feature = "hydrate"))]
async fn generate_images(input: GenerateInput) -> Result<ImagesResponse, String> {
    let _ = input;
    Err(String::from("generation runs in the browser"))
}
