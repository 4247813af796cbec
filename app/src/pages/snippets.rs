//! "Copy as cURL" and "Copy as Python": the call the form would make, written out for any
//! OpenAI client. This is an API bridge; the form is one way to call it, and the commands show
//! the call itself.
//!
//! The key is never written into them: they read it from `$OPENAI_API_KEY`, as the OpenAI SDK
//! does. A command is pasted into shells, chats and issues, and the key in it would travel
//! along; the variable also makes the same command work for anyone with their own key.

use leptos::prelude::*;
use serde_json::{Map, Value};

use crate::api::images::ImageGenerationRequest;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lang {
    Curl,
    Python,
}

/// What a call sends: the JSON of a generation, or the fields and files of an edit's form.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Call {
    Generate(Map<String, Value>),
    Edit {
        fields: Map<String, Value>,
        /// The form's file fields (`image`, `mask`), each with the file name the command reads.
        files: Vec<(&'static str, &'static str)>,
    },
}

impl Call {
    /// A generation as a client would send it: without what only the page's own stream needs.
    pub(super) fn generate(request: &ImageGenerationRequest) -> Call {
        let mut request = request.clone();
        request.stream = None;
        request.partial_images = None;
        request.stream_progress = None;
        match serde_json::to_value(&request) {
            Ok(Value::Object(map)) => Call::Generate(map),
            _ => Call::Generate(Map::new()),
        }
    }

    pub(super) fn text(&self, lang: Lang, origin: &str) -> String {
        match (self, lang) {
            (Call::Generate(body), Lang::Curl) => curl_json(origin, body),
            (Call::Edit { fields, files }, Lang::Curl) => curl_form(origin, fields, files),
            (Call::Generate(body), Lang::Python) => python(origin, "generate", body, &[]),
            (Call::Edit { fields, files }, Lang::Python) => python(origin, "edit", fields, files),
        }
    }
}

/// A string as one shell word: single-quoted, a quote inside closed, escaped and reopened.
fn sh(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

const AUTH: &str = r#"-H "Authorization: Bearer $OPENAI_API_KEY""#;

fn curl_json(origin: &str, body: &Map<String, Value>) -> String {
    let json = serde_json::to_string_pretty(body).unwrap_or_default();
    format!(
        "curl {} \\\n  {AUTH} \\\n  -H 'Content-Type: application/json' \\\n  -d {}",
        sh(&format!("{origin}/v1/images/generations")),
        sh(&json)
    )
}

fn curl_form(origin: &str, fields: &Map<String, Value>, files: &[(&str, &str)]) -> String {
    let mut lines = vec![
        format!("curl {}", sh(&format!("{origin}/v1/images/edits"))),
        AUTH.to_string(),
    ];
    lines.extend(
        files
            .iter()
            .map(|(name, file)| format!("-F {name}=@{file}")),
    );
    // `--form-string`: a prompt that starts with @ or < is text, not a file to read.
    lines.extend(fields.iter().map(|(name, value)| {
        let value = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        format!("--form-string {}", sh(&format!("{name}={value}")))
    }));
    lines.join(" \\\n  ")
}

/// The parameters the SDK's `images.generate` and `images.edit` take by name; the bridge's own
/// (seed, steps, strength…) go in `extra_body`.
const SDK_PARAMS: &[&str] = &[
    "prompt",
    "model",
    "n",
    "size",
    "quality",
    "style",
    "response_format",
    "output_format",
    "output_compression",
    "background",
    "moderation",
    "input_fidelity",
    "user",
];

/// A JSON value as a Python literal.
fn py(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        // JSON's string escapes are Python's too.
        Value::Number(_) | Value::String(_) => value.to_string(),
        Value::Array(items) => format!("[{}]", items.iter().map(py).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), py(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn python(
    origin: &str,
    method: &str,
    params: &Map<String, Value>,
    files: &[(&str, &str)],
) -> String {
    let mut args: Vec<String> = files
        .iter()
        .map(|(name, file)| format!("{name}=open({}, \"rb\")", Value::String(file.to_string())))
        .collect();
    let mut extra = Map::new();
    for (name, value) in params {
        if SDK_PARAMS.contains(&name.as_str()) {
            args.push(format!("{name}={}", py(value)));
        } else {
            extra.insert(name.clone(), value.clone());
        }
    }
    if !extra.is_empty() {
        args.push(format!("extra_body={}", py(&Value::Object(extra))));
    }
    let args: String = args.iter().map(|a| format!("    {a},\n")).collect();
    format!(
        "import base64\n\
         from openai import OpenAI\n\
         \n\
         # The key is read from OPENAI_API_KEY.\n\
         client = OpenAI(base_url={base})\n\
         \n\
         result = client.images.{method}(\n{args})\n\
         for i, image in enumerate(result.data):\n    \
             with open(f\"image-{{i}}.png\", \"wb\") as f:\n        \
                 f.write(base64.b64decode(image.b64_json))\n",
        base = Value::String(format!("{origin}/v1")),
    )
}

/// The two copy buttons, and the command last copied shown below them: there to read, and to
/// copy by hand where the browser allows no clipboard (a page over plain http from another
/// machine).
pub(super) fn copy_buttons(
    call: impl Fn() -> Call + Clone + Send + Sync + 'static,
) -> impl IntoView {
    let shown = ArcRwSignal::new(None::<String>);
    let said = ArcRwSignal::new(String::new());
    let button = {
        let (shown, said) = (shown.clone(), said.clone());
        move |lang: Lang, label: &'static str| {
            let (call, shown, said) = (call.clone(), shown.clone(), said.clone());
            view! {
                <button type="button" class="secondary small" on:click=move |_| {
                    let text = call().text(lang, &origin());
                    shown.set(Some(text.clone()));
                    copy(text, said.clone());
                }>{label}</button>
            }
        }
    };
    let (text, hidden) = (shown.clone(), shown);
    view! {
        <div class="call">
            {button(Lang::Curl, "Copy as cURL")}
            {button(Lang::Python, "Copy as Python")}
            <span class="muted" aria-live="polite">{move || said.get()}</span>
            <pre class="call-text" hidden=move || hidden.with(Option::is_none)
                tabindex="0"><code>{move || text.get()}</code></pre>
        </div>
    }
}

/// The page's own address: the commands call the bridge the page came from.
fn origin() -> String {
    #[cfg(feature = "hydrate")]
    {
        window().location().origin().unwrap_or_default()
    }
    #[cfg(not(feature = "hydrate"))]
    String::new()
}

fn copy(text: String, said: ArcRwSignal<String>) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsValue;
        let navigator = window().navigator();
        let has_api = js_sys::Reflect::get(&navigator, &JsValue::from_str("clipboard"))
            .is_ok_and(|c| !c.is_undefined());
        let by_hand = "This browser allows no copying here: select the command below and copy it.";
        if !has_api {
            said.set(by_hand.into());
            return;
        }
        let promise = navigator.clipboard().write_text(&text);
        leptos::task::spawn_local(async move {
            let copied = wasm_bindgen_futures::JsFuture::from(promise).await.is_ok();
            said.set(if copied {
                "Copied. It reads the key from $OPENAI_API_KEY.".into()
            } else {
                by_hand.into()
            });
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (text, said);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ImageGenerationRequest {
        ImageGenerationRequest {
            prompt: "a cat's \"hat\"".into(),
            model: Some("sdxl".into()),
            size: Some("512x512".into()),
            n: Some(2),
            seed: Some(42),
            steps: Some(6),
            stream: Some(true),
            partial_images: Some(2),
            stream_progress: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn curl_sends_the_form_as_json_without_the_pages_stream() {
        let text = Call::generate(&request()).text(Lang::Curl, "http://h:1");
        assert!(text.starts_with("curl 'http://h:1/v1/images/generations' \\\n"));
        assert!(text.contains(r#"-H "Authorization: Bearer $OPENAI_API_KEY""#));
        // The quote in the prompt closes, escapes and reopens the shell's quoting.
        assert!(text.contains(r#""prompt": "a cat'\''s \"hat\"""#), "{text}");
        assert!(text.contains(r#""seed": 42"#));
        assert!(!text.contains("stream"));
    }

    #[test]
    fn python_passes_the_bridges_own_parameters_in_extra_body() {
        let text = Call::generate(&request()).text(Lang::Python, "http://h:1");
        assert!(text.contains(r#"client = OpenAI(base_url="http://h:1/v1")"#));
        assert!(text.contains(r#"    prompt="a cat's \"hat\"","#), "{text}");
        assert!(text.contains("    n=2,\n"));
        assert!(
            text.contains(r#"    extra_body={"seed": 42, "steps": 6},"#),
            "{text}"
        );
        assert!(!text.contains("stream"));
    }

    #[test]
    fn an_edit_is_a_form_with_its_files() {
        let mut fields = Map::new();
        fields.insert("prompt".into(), "@not a file".into());
        fields.insert("n".into(), 1.into());
        fields.insert("strength".into(), 0.5.into());
        let call = Call::Edit {
            fields,
            files: vec![("image", "image.png"), ("mask", "mask.png")],
        };
        let curl = call.text(Lang::Curl, "http://h:1");
        assert!(curl.contains("-F image=@image.png \\\n  -F mask=@mask.png"));
        assert!(curl.contains("--form-string 'prompt=@not a file'"));
        assert!(curl.contains("--form-string 'strength=0.5'"));
        let python = call.text(Lang::Python, "http://h:1");
        assert!(python.contains("client.images.edit(\n    image=open(\"image.png\", \"rb\"),"));
        assert!(
            python.contains(r#"extra_body={"strength": 0.5}"#),
            "{python}"
        );
        assert_eq!(py(&serde_json::json!([true, null])), "[True, None]");
    }
}
