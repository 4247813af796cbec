//! What Generate and Edit share: one frame per image that fills in as the stream arrives
//! (queue position, step x of y, previews, the image and its seed), the error in the envelope's
//! words, and the Cancel that stops the job in ComfyUI.

use leptos::prelude::*;

use super::{
    stream::Body,
    viewer::{Shown, ToEdit, Viewer},
};

/// What the page shows for one image while it is made.
#[derive(Clone)]
pub(super) struct Slot {
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

/// The state of a page's results, shared by its form, the frames and the running request.
#[derive(Clone)]
pub(super) struct Run {
    slots: ArcRwSignal<Vec<Slot>>,
    running: ArcRwSignal<bool>,
    pub(super) error: ArcRwSignal<Option<String>>,
    /// The prompt the shown images were made from, their alt text.
    prompt: ArcRwSignal<String>,
    cancel: ArcRwSignal<Option<Cancel>>,
    /// The form's seed field, which "Reuse seed" on an image fills in.
    seed_field: ArcRwSignal<String>,
    /// What screen readers are told of the run: each change of state, not each step.
    said: ArcRwSignal<String>,
    viewer: Viewer,
}

impl Run {
    pub(super) fn new(seed_field: ArcRwSignal<String>) -> Run {
        Run {
            slots: ArcRwSignal::new(Vec::new()),
            running: ArcRwSignal::new(false),
            error: ArcRwSignal::new(None),
            prompt: ArcRwSignal::new(String::new()),
            cancel: ArcRwSignal::new(None),
            seed_field,
            said: ArcRwSignal::new(String::new()),
            viewer: Viewer::new(),
        }
    }

    /// The prompt and the images (with their seeds) of the latest run once it has stopped;
    /// `None` while one runs. Tracked, so the page's state is kept again after each run.
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    pub(super) fn finished(&self) -> Option<(String, Finished)> {
        if self.running.get() {
            return None;
        }
        let images = self.slots.with(|all| {
            all.iter()
                .filter_map(|s| Some((s.image.get()?, s.seed.get())))
                .collect()
        });
        Some((self.prompt.get(), images))
    }

    /// Shows images kept from an earlier visit as a finished run, unless a run has started since.
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    pub(super) fn restore(&self, prompt: String, images: Finished) {
        if self.running.get_untracked() || self.slots.with_untracked(|s| !s.is_empty()) {
            return;
        }
        let slots = images
            .into_iter()
            .map(|(src, seed)| {
                let slot = Slot::new();
                slot.image.set(Some(src));
                slot.seed.set(seed);
                slot.status.set("Done".into());
                slot.step.set(Some((1, 1)));
                slot
            })
            .collect();
        self.prompt.set(prompt);
        self.slots.set(slots);
    }

    /// Whether a request runs now (tracked).
    pub(super) fn is_running(&self) -> bool {
        self.running.get()
    }

    /// The prompt of the run, as the jobs panel names it (tracked).
    pub(super) fn prompt(&self) -> String {
        self.prompt.get()
    }

    /// Where the run stands in a few words, for the jobs panel (tracked): the image being made
    /// (or the first still waiting), and how many are done when there are several.
    pub(super) fn progress(&self) -> String {
        self.slots.with(|all| {
            let waiting = |s: &&Slot| s.image.with(Option::is_none);
            let now = all
                .iter()
                .filter(waiting)
                .find(|s| s.step.with(Option::is_some))
                .or_else(|| all.iter().find(waiting))
                .map(|s| s.status.get());
            let done = all.len() - all.iter().filter(waiting).count();
            match now {
                Some(now) if all.len() > 1 => format!("{done} of {} done · {now}", all.len()),
                Some(now) => now,
                None => "Finishing".into(),
            }
        })
    }

    /// Stops the running request: dropping the sender is enough, the request sees it and aborts.
    pub(super) fn cancel(&self) {
        self.cancel.set(None);
    }

    /// The form's submit button, and Cancel while a request runs.
    pub(super) fn actions(&self, idle: &'static str, busy: &'static str) -> impl IntoView + use<> {
        let (running, label, shown) = (
            self.running.clone(),
            self.running.clone(),
            self.running.clone(),
        );
        let run = self.clone();
        view! {
            <div class="actions">
                <button type="submit" disabled=move || running.get()>
                    {move || if label.get() { busy } else { idle }}
                </button>
                <Show when=move || shown.get()>
                    <button type="button" class="secondary" on:click={
                        let run = run.clone();
                        move |_| run.cancel()
                    }>"Cancel"</button>
                </Show>
            </div>
        }
    }

    /// The error and the frames, below a page's form, and the viewer their images open in.
    pub(super) fn view(&self) -> impl IntoView + use<> {
        let (error, slots, shown) = (self.error.clone(), self.slots.clone(), self.prompt.clone());
        let empty = self.slots.clone();
        let (seed_field, said, viewer) = (
            self.seed_field.clone(),
            self.said.clone(),
            self.viewer.clone(),
        );
        let images = {
            let (slots, prompt) = (slots.clone(), shown.clone());
            Signal::derive(move || {
                let prompt = prompt.get();
                slots.with(|all| all.iter().filter_map(|s| shown_of(s, &prompt)).collect())
            })
        };
        view! {
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <p class="visually-hidden" aria-live="polite">{move || said.get()}</p>
            <p class="muted no-results" hidden=move || !empty.with(Vec::is_empty)>
                "The images appear here as they are made."
            </p>
            <div class="results">
                {
                    let viewer = viewer.clone();
                    move || {
                        let alt = shown.get();
                        slots.get().into_iter().map(|slot| {
                            slot_view(slot, alt.clone(), seed_field.clone(), viewer.clone(), images)
                        }).collect_view()
                    }
                }
            </div>
            {viewer.view("Result viewer", images, ())}
        }
    }
}

/// A run's finished images, each with its seed.
pub(super) type Finished = Vec<(String, Option<u64>)>;

/// Dropping it (or sending on it) stops the running request.
#[cfg(feature = "hydrate")]
pub(super) type Cancel = futures::channel::oneshot::Sender<()>;
#[cfg(not(feature = "hydrate"))]
pub(super) type Cancel = ();

/// A finished image of a run, as the viewer shows it.
fn shown_of(slot: &Slot, prompt: &str) -> Option<Shown> {
    let src = slot.image.get()?;
    let seed = slot.seed.get().map(|s| s.to_string());
    // `data:image/png;base64,…` is saved as a .png.
    let extension = src
        .strip_prefix("data:image/")
        .and_then(|rest| rest.split([';', ',']).next())
        .map_or("png", |e| if e == "jpeg" { "jpg" } else { e })
        .to_string();
    let file_name = match &seed {
        Some(seed) => format!("image-{seed}.{extension}"),
        None => format!("image.{extension}"),
    };
    Some(Shown {
        src,
        prompt: prompt.to_string(),
        seed,
        file_name,
        size: None,
        to_edit: ToEdit::InPage,
        settings: None,
    })
}

fn slot_view(
    slot: Slot,
    alt: String,
    seed_field: ArcRwSignal<String>,
    viewer: Viewer,
    images: Signal<Vec<Shown>>,
) -> impl IntoView {
    let Slot {
        status,
        step,
        preview,
        image,
        seed,
    } = slot;
    let step_value = step.clone();
    let reuse = seed.clone();
    view! {
        <figure class="slot">
            <div class="frame">
                {move || match (image.get(), preview.get()) {
                    (Some(src), _) => {
                        let (viewer, target) = (viewer.clone(), src.clone());
                        let open = move |ev: leptos::ev::MouseEvent| {
                            let at = images.with_untracked(|all| all.iter().position(|s| s.src == target));
                            if let Some(at) = at {
                                viewer.show(at, &ev);
                            }
                        };
                        view! {
                            <button type="button" class="open" aria-haspopup="dialog" title="Open in the viewer"
                                on:click=open>
                                <img class="final" src=src alt=alt.clone()/>
                            </button>
                        }.into_any()
                    }
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
            {move || reuse.get().map(|s| {
                let field = seed_field.clone();
                view! {
                    <button type="button" class="secondary small" title="Put this seed in the form, to make this image again or vary it"
                        on:click=move |_| field.set(s.to_string())>"Reuse seed"</button>
                }
            })}
        </figure>
    }
}

/// Starts a streamed generation or edit of `images` images: one slot per image, filled in as events arrive.
#[cfg(feature = "hydrate")]
pub(super) fn start(run: &Run, body: Body, images: u32, prompt: String, api_key: String) {
    use super::stream::{self, Outcome, Update};

    let slots: Vec<Slot> = (0..images.max(1)).map(|_| Slot::new()).collect();
    run.slots.set(slots.clone());
    run.error.set(None);
    run.prompt.set(prompt);
    run.running.set(true);
    run.said.set(String::new());
    let (tx, rx) = futures::channel::oneshot::channel();
    run.cancel.set(Some(tx));
    let run = run.clone();
    leptos::task::spawn_local(async move {
        let (error, said) = (run.error.clone(), run.said.clone());
        let mut news = News::new(slots.len());
        let apply = |update: Update| {
            if let Some(text) = news.of(&update) {
                said.set(text);
            }
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
        let outcome = stream::run(body, &api_key, rx, apply).await;
        let unfinished = |text: &str| {
            for s in &slots {
                if s.image.get_untracked().is_none() {
                    s.status.set(text.into());
                }
            }
        };
        let made = slots
            .iter()
            .filter(|s| s.image.get_untracked().is_some())
            .count();
        match outcome {
            Ok(Outcome::Cancelled) => {
                unfinished("Cancelled");
                run.said.set("Cancelled.".into());
            }
            Ok(Outcome::Finished) => {
                if let Some(e) = run.error.get_untracked() {
                    unfinished("Failed");
                    run.said.set(format!("Failed: {e}"));
                } else {
                    run.said.set(News::finished(made));
                }
            }
            Err(e) => {
                unfinished("Failed");
                run.said.set(format!("Failed: {e}"));
                run.error.set(Some(e));
            }
        }
        run.running.set(false);
        run.cancel.set(None);
    });
}

/// What a run tells screen readers as it goes: queued, started, and each image done when there
/// are several. Steps and previews are left out; read aloud one by one they would drown the
/// page.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
struct News {
    images: usize,
    queued: bool,
    started: bool,
    done: usize,
}

#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
impl News {
    fn new(images: usize) -> News {
        News {
            images,
            queued: false,
            started: false,
            done: 0,
        }
    }

    fn of(&mut self, update: &super::stream::Update) -> Option<String> {
        use super::stream::Update;
        match update {
            Update::Queued { .. } if !self.queued && !self.started => {
                self.queued = true;
                Some("Queued.".into())
            }
            Update::Running { .. } | Update::Step { .. } if !self.started => {
                self.started = true;
                Some("Started.".into())
            }
            Update::Done { .. } => {
                self.started = true;
                self.done += 1;
                (self.images > 1).then(|| format!("Image {} of {} done.", self.done, self.images))
            }
            _ => None,
        }
    }

    fn finished(made: usize) -> String {
        match made {
            1 => "Finished: 1 image.".into(),
            n => format!("Finished: {n} images."),
        }
    }
}

// The server renders the page but never submits the form: that only happens after hydration.
#[cfg(not(feature = "hydrate"))]
pub(super) fn start(run: &Run, body: Body, images: u32, prompt: String, api_key: String) {
    let _ = (run, body, images, prompt, api_key);
}

/// The number of images (1–4) and the seed (blank: random), as Generate and Edit ask for them.
pub(super) fn count_and_seed(
    count: ArcRwSignal<u32>,
    seed: ArcRwSignal<String>,
) -> impl IntoView + use<> {
    let (seed_in, seed_check, seed_message) = (seed.clone(), seed.clone(), seed.clone());
    let problem = move || seed_check.with(|s| super::shortcuts::seed_problem(s));
    view! {
        <label>"Images"
            <select name="n" prop:value={
                    let count = count.clone();
                    move || count.get().to_string()
                }
                on:change=move |ev| count.set(event_target_value(&ev).parse().unwrap_or(1))>
                {(1..=4).map(|i| view! { <option value=i.to_string()>{i}</option> }).collect_view()}
            </select>
        </label>
        <label>"Seed"
            // The pattern lets the browser stop the form and point at the field; the message
            // below says why in words.
            <input name="seed" inputmode="numeric" placeholder="random" pattern=r"\s*\d{1,20}\s*"
                title="A whole number, or blank for a random seed"
                aria-invalid=move || problem().is_some().to_string()
                aria-describedby="seed-problem"
                prop:value=move || seed.get()
                on:input=move |ev| seed_in.set(event_target_value(&ev))/>
            <span id="seed-problem" class="error field-error" aria-live="polite">
                {move || seed_message.with(|s| super::shortcuts::seed_problem(s))}
            </span>
        </label>
    }
}

#[cfg(test)]
mod tests {
    use super::{super::stream::Update, News};

    #[test]
    fn a_run_is_told_by_its_changes_not_its_steps() {
        let mut news = News::new(2);
        let step = |index| Update::Step {
            index,
            step: 1,
            steps: 9,
        };
        let done = |index| Update::Done {
            index,
            data_url: String::new(),
            seed: None,
        };
        let told: Vec<Option<String>> = [
            Update::Queued {
                index: 0,
                ahead: Some(1),
            },
            Update::Queued {
                index: 1,
                ahead: Some(0),
            },
            Update::Running { index: 0 },
            step(0),
            step(0),
            done(0),
            step(1),
            done(1),
        ]
        .iter()
        .map(|u| news.of(u))
        .collect();
        let said: Vec<&str> = told.iter().flatten().map(String::as_str).collect();
        assert_eq!(
            said,
            [
                "Queued.",
                "Started.",
                "Image 1 of 2 done.",
                "Image 2 of 2 done."
            ]
        );
        assert_eq!(News::finished(2), "Finished: 2 images.");
        assert_eq!(News::finished(1), "Finished: 1 image.");
    }
}
