//! An in-process ComfyUI server double.
//!
//! It speaks ComfyUI 0.3.64's HTTP and WebSocket protocol (plus the newer
//! `/api/jobs` routes and, when asked, the asset API's upload records and
//! deletion) closely enough that a real ComfyUI client can be tested
//! against it, and renders deterministic pictures so it also works as a demo
//! backend without a GPU. See `tests/traces/` for the recordings it is checked
//! against.

mod config;
mod files;
mod http;
mod nodes;
mod render;
mod schema;
mod state;
mod validate;
mod worker;
mod ws;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::SimConfig;
pub use render::{encode_png, png_text_chunks};

use state::State;
use ws::Sockets;

pub(crate) struct Inner {
    step_delay_ns: AtomicU64,
    previews: bool,
    max_upload_size: u64,
    jobs_api: bool,
    assets: bool,
    /// Outside `State` because a restart keeps it: the process comes back with the same
    /// folders and custom nodes.
    installed: Mutex<schema::Installed>,
    state: Mutex<State>,
    sockets: Mutex<Sockets>,
    wake: Notify,
    /// The processing-interrupted flag; checked between nodes and sampler steps.
    interrupt: AtomicBool,
    /// `GET /history/{id}` requests answered, so tests can see what a client asked for.
    history_reads: AtomicU64,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Inner {
    /// Lock helpers that survive a poisoned mutex: a panic elsewhere must not
    /// take the whole simulated server down.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub(crate) fn sockets(&self) -> MutexGuard<'_, Sockets> {
        self.sockets.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// A copy, so no request holds this lock while it takes the state's.
    pub(crate) fn installed(&self) -> schema::Installed {
        self.installed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    fn set_installed(&self, change: impl FnOnce(&mut schema::Installed)) {
        change(&mut self.installed.lock().unwrap_or_else(|e| e.into_inner()));
    }
    pub(crate) fn step_delay(&self) -> Duration {
        Duration::from_nanos(self.step_delay_ns.load(Ordering::Relaxed))
    }
    pub(crate) fn features(&self) -> Value {
        json!({"supports_preview_metadata": true, "max_upload_size": self.max_upload_size})
    }
    pub(crate) fn broadcast_status(&self) {
        let remaining = self.lock().queue_remaining();
        self.sockets().send_json(
            None,
            "status",
            json!({"status": {"exec_info": {"queue_remaining": remaining}}}),
        );
    }
    /// Starts the single worker if it is not running (lazily, because
    /// `Simulator::new` may be called outside a Tokio runtime).
    pub(crate) fn ensure_worker(self: &Arc<Self>) {
        let mut w = self.worker.lock().unwrap_or_else(|e| e.into_inner());
        if w.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            *w = Some(rt.spawn(worker::run(Arc::clone(self))));
        }
    }
}

/// A simulated ComfyUI server. Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

impl Simulator {
    pub fn new(config: SimConfig) -> Self {
        let inner = Arc::new(Inner {
            step_delay_ns: AtomicU64::new(config.step_delay.as_nanos() as u64),
            previews: config.previews,
            max_upload_size: config.max_upload_size,
            jobs_api: config.jobs_api,
            assets: config.assets,
            installed: Mutex::new(schema::Installed {
                model_files: config.model_files.map(|f| f.into_iter().collect()),
                missing_nodes: config.missing_nodes.into_iter().collect(),
            }),
            state: Mutex::new(State::default()),
            sockets: Mutex::new(Sockets::default()),
            wake: Notify::new(),
            interrupt: AtomicBool::new(false),
            history_reads: AtomicU64::new(0),
            worker: Mutex::new(None),
        });
        inner.ensure_worker();
        Simulator { inner }
    }

    /// The whole ComfyUI HTTP + WebSocket surface, with and without `/api`.
    pub fn router(&self) -> axum::Router {
        self.inner.ensure_worker();
        http::router(Arc::clone(&self.inner))
    }

    /// Binds `addr` (port 0 picks one) and serves in the background.
    pub async fn serve(self, addr: SocketAddr) -> std::io::Result<RunningSim> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let mut running = RunningSim {
            url: format!("http://{addr}"),
            addr,
            sim: self,
            server: None,
            kill: CancellationToken::new(),
        };
        running.spawn(listener);
        Ok(running)
    }

    pub fn set_step_delay(&self, d: Duration) {
        self.inner
            .step_delay_ns
            .store(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// The model files this server has from now on, as if its model folders had changed
    /// (ComfyUI rescans them for every `/object_info`); `None` accepts any name again.
    pub fn set_model_files(&self, files: Option<Vec<String>>) {
        self.inner
            .set_installed(|i| i.model_files = files.map(|f| f.into_iter().collect()));
    }

    /// The node classes this server lacks from now on. A real server only changes its nodes
    /// when it restarts, so tests call this around `RunningSim::restart`.
    pub fn set_missing_nodes(&self, classes: Vec<String>) {
        self.inner
            .set_installed(|i| i.missing_nodes = classes.into_iter().collect());
    }

    /// The next prompt that runs a node of this class (any node if `None`)
    /// raises `execution_error` there instead of running it.
    pub fn fail_next_execution(&self, node_type_or_none: Option<&str>) {
        self.inner.lock().fail_next = Some(node_type_or_none.map(String::from));
    }

    /// Closes every WebSocket from the server side now. Jobs keep running, and
    /// their events are lost until a client reconnects, as in ComfyUI.
    pub fn drop_sockets(&self) {
        self.inner.sockets().close_all();
    }

    /// Every accepted prompt, in order: (prompt_id, graph as queued).
    pub fn submitted(&self) -> Vec<(String, Value)> {
        self.inner.lock().submitted.clone()
    }

    pub fn pending_ids(&self) -> Vec<String> {
        let st = self.inner.lock();
        st.sorted_pending()
            .iter()
            .map(|i| i.prompt_id.clone())
            .collect()
    }

    pub fn running_id(&self) -> Option<String> {
        self.inner
            .lock()
            .running
            .as_ref()
            .map(|r| r.prompt_id.clone())
    }

    pub fn history_len(&self) -> usize {
        self.inner.lock().history.len()
    }

    /// How many `GET /history/{id}` requests this server has answered.
    pub fn history_reads(&self) -> u64 {
        self.inner.history_reads.load(Ordering::Relaxed)
    }

    /// The files now in the input directory, newest first (`sub/name` for subfolders): what
    /// uploads put there, less what deleting an asset removed.
    pub fn uploads(&self) -> Vec<String> {
        self.inner
            .lock()
            .files
            .names_newest_first(files::Dir::Input)
    }

    pub fn socket_count(&self) -> usize {
        self.inner.sockets().count()
    }

    /// What a process restart loses: queue, running job, history, cache, temp
    /// files, sockets. Input and output files survive (they are on disk in
    /// real ComfyUI).
    fn reset_process(&self) {
        if let Some(h) = self
            .inner
            .worker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            h.abort();
        }
        self.inner.sockets().close_all();
        let mut st = self.inner.lock();
        let files = std::mem::take(&mut st.files);
        *st = State::default();
        st.files = files;
        st.files.retain_dirs(|d| d != files::Dir::Temp);
        self.inner.interrupt.store(false, Ordering::SeqCst);
    }
}

/// A simulator serving on a real port.
pub struct RunningSim {
    pub url: String,
    pub addr: SocketAddr,
    pub sim: Simulator,
    server: Option<JoinHandle<()>>,
    kill: CancellationToken,
}

impl RunningSim {
    fn spawn(&mut self, listener: tokio::net::TcpListener) {
        self.kill = CancellationToken::new();
        let listener = http::KillableListener::new(listener, self.kill.clone());
        let app = self.sim.router();
        self.server = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    /// Like killing the process: stop accepting, drop every connection and
    /// socket without a close handshake, lose the queue and the running job.
    pub async fn crash(&mut self) {
        self.kill.cancel();
        if let Some(h) = self.server.take() {
            h.abort();
            let _ = h.await;
        }
        self.sim.reset_process();
    }

    /// Comes back on the same port as a fresh process (empty queue and history).
    pub async fn restart(&mut self) -> std::io::Result<()> {
        if self.server.is_some() {
            self.crash().await;
        }
        let mut last = None;
        for _ in 0..50 {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => {
                    self.spawn(l);
                    self.sim.inner.ensure_worker();
                    return Ok(());
                }
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("bind failed")))
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.kill.cancel();
        if let Some(h) = self.server.take() {
            h.abort();
        }
    }
}
