use leptos::prelude::*;
use leptos_meta::{HashedStylesheet, MetaTags, Title, provide_meta_context};
use leptos_router::{
    Lazy, LazyRoute, StaticSegment,
    components::{A, Route, Router, Routes},
    lazy_route,
};

use crate::pages::{
    chat::ChatPage,
    connection::{ConnectionPanel, DemoBanner, provide_connection},
    edit::EditPage,
    gallery::GalleryView,
    home::HomePage,
    jobs::JobsPanel,
    kept::provide_studio,
    viewer::provide_handoff,
};

/// The whole HTML document, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                <HashedStylesheet options=options.clone() id="leptos"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    provide_connection();
    provide_handoff();
    provide_studio();
    view! {
        <Title text="ComfyUI API Bridge"/>
        <Router>
            <a class="skip" href="#main" on:click=skip_to_main>"Skip to content"</a>
            <header class="top">
                <h1>"ComfyUI API Bridge"</h1>
                <nav aria-label="Main">
                    <A href="/">"Generate"</A>
                    <A href="/edit">"Edit"</A>
                    <A href="/chat">"Chat"</A>
                    <A href="/gallery">"Gallery"</A>
                </nav>
                <ConnectionPanel/>
            </header>
            <JobsPanel/>
            <main id="main" tabindex="-1">
                <DemoBanner/>
                <Routes fallback=|| view! { <p class="error">"Page not found."</p> }>
                    <Route path=StaticSegment("") view=HomePage/>
                    <Route path=StaticSegment("edit") view={Lazy::<EditRoute>::new()}/>
                    <Route path=StaticSegment("chat") view={Lazy::<ChatRoute>::new()}/>
                    <Route path=StaticSegment("gallery") view={Lazy::<GalleryRoute>::new()}/>
                </Routes>
            </main>
        </Router>
    }
}

// Edit, Chat and Gallery are built into their own wasm files, which the browser fetches when one
// of them is first opened: the first load carries Generate and what the pages share, no more.
// Their data loads inside the pages, so `data` has nothing to start ahead of the code.

struct EditRoute;

#[lazy_route]
impl LazyRoute for EditRoute {
    fn data() -> Self {
        EditRoute
    }

    fn view(this: Self) -> AnyView {
        let EditRoute = this;
        view! { <EditPage/> }.into_any()
    }
}

struct ChatRoute;

#[lazy_route]
impl LazyRoute for ChatRoute {
    fn data() -> Self {
        ChatRoute
    }

    fn view(this: Self) -> AnyView {
        let ChatRoute = this;
        view! { <ChatPage/> }.into_any()
    }
}

struct GalleryRoute;

#[lazy_route]
impl LazyRoute for GalleryRoute {
    fn data() -> Self {
        GalleryRoute
    }

    fn view(this: Self) -> AnyView {
        let GalleryRoute = this;
        view! { <GalleryView/> }.into_any()
    }
}

/// Moves the focus to the page's content, as the skip link's plain jump would: the router
/// handles links itself and would only scroll.
fn skip_to_main(ev: leptos::ev::MouseEvent) {
    #[cfg(feature = "hydrate")]
    {
        use leptos::wasm_bindgen::JsCast;
        let main = document()
            .get_element_by_id("main")
            .and_then(|m| m.dyn_into::<leptos::web_sys::HtmlElement>().ok());
        if let Some(main) = main {
            ev.prevent_default();
            let _ = main.focus();
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = ev;
}
