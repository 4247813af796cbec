use bytes::Bytes;

/// What the socket tells a waiting job. Only the socket task sends these.
#[derive(Debug, Clone)]
pub(crate) enum JobEvent {
    Update(JobUpdate),
    /// A PNG sent over the socket: what a `SaveImageWebsocket` node outputs (ComfyUI's sampler
    /// previews are JPEG), from node `node` when the frame says.
    Image {
        node: Option<String>,
        data: Bytes,
    },
    /// `executed`: node `node` produced this UI output, as its history entry will list it.
    Executed {
        node: String,
        output: serde_json::Value,
    },
    /// `execution_success`: every node ran; `Finished` follows.
    Succeeded,
    /// `executing` with `node: null`: the prompt is finished and its history entry written.
    Finished,
    /// The socket reconnected; events may have been missed while it was down.
    SocketUp,
    SocketDown,
}

/// Progress of one job, for callers that show it (streams, the web app).
#[derive(Debug, Clone)]
pub enum JobUpdate {
    /// ComfyUI accepted the job into its queue, with this many prompts ahead of it (when the
    /// caller wants progress and the queue could be read).
    Queued {
        ahead: Option<usize>,
    },
    Started,
    /// A node began to run.
    Node {
        node: String,
    },
    /// A step of a node with a progress bar (a sampler step).
    Progress {
        node: Option<String>,
        value: u64,
        max: u64,
    },
    /// A preview image of the job in progress: a sampler's, or (`whole`) an image a node
    /// sent over the socket, which may also be the job's result.
    Preview {
        mime: &'static str,
        data: Bytes,
        whole: bool,
    },
}
