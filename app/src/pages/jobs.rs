//! The jobs panel, on every page: the generations and edits this browser has running, where
//! each stands, and a Cancel for each. Runs belong to the app, not to a page, so one started on
//! Generate goes on (and can be stopped from here) while another page is open.

use leptos::prelude::*;

use super::{kept::use_studio, results::Run};

#[component]
pub fn JobsPanel() -> impl IntoView {
    let studio = use_studio();
    let jobs = [
        ("Generate", "/", studio.generate.run),
        ("Edit", "/edit", studio.edit.run),
    ];
    let idle = {
        let runs: Vec<Run> = jobs.iter().map(|(_, _, run)| run.clone()).collect();
        move || !runs.iter().any(Run::is_running)
    };
    view! {
        <aside class="jobs" aria-label="Jobs" hidden=idle>
            <h2>"Jobs"</h2>
            <ul>
                {jobs.into_iter().map(|(page, href, run)| job(page, href, run)).collect_view()}
            </ul>
        </aside>
    }
}

/// One page's run while it goes on. Only its words change as it runs; the Cancel button stays
/// the same element, so the focus is not lost from it.
fn job(page: &'static str, href: &'static str, run: Run) -> impl IntoView {
    let running = run.clone();
    view! {
        <Show when=move || running.is_running()>
            {
                let (prompt, progress, stop) = (run.clone(), run.clone(), run.clone());
                view! {
                    <li>
                        <a href=href>{page}</a>
                        <span class="job-prompt">{move || prompt.prompt()}</span>
                        <span class="job-status">{move || progress.progress()}</span>
                        <button type="button" class="secondary small"
                            aria-label=format!("Cancel the {} job", page.to_lowercase())
                            on:click=move |_| stop.cancel()>"Cancel"</button>
                    </li>
                }
            }
        </Show>
    }
}
