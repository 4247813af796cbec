use std::time::Duration;

/// Knobs of the simulated server. The defaults suit tests: no artificial latency.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Latency per sampler step (KSampler, SamplerCustom*) and per other non-trivial node.
    pub step_delay: Duration,
    /// Send binary preview frames while sampling, like `--preview-method auto`.
    pub previews: bool,
    /// Request body limit in bytes (`--max-upload-size`), also reported in `feature_flags`.
    pub max_upload_size: u64,
    /// Serve the newer `/api/jobs` routes. Off means ComfyUI 0.3.64, where they are 404.
    pub jobs_api: bool,
    /// Newer ComfyUI started with `--enable-assets`: upload replies carry an `asset` object and
    /// `DELETE /api/assets/{id}` removes an upload. Off means ComfyUI 0.3.64 (route 404).
    pub assets: bool,
    /// The model files this server has. `None` (the default) is the demo's "every model
    /// installed": any file name a prompt gives is accepted and listed from then on. `Some` is a
    /// real server: every model picker in `/object_info` lists exactly these names, besides the
    /// fixed entries ComfyUI adds itself (VAELoader's `pixel_space`, the shipped checkpoint
    /// configs). One flat list serves every model folder, and is what `/models/{folder}` answers.
    /// A prompt naming any other file fails validation with `value_not_in_list`, as in ComfyUI.
    pub model_files: Option<Vec<String>>,
    /// Node classes this server lacks, like a ComfyUI without some custom node: absent from
    /// `/object_info`, and a prompt using one is refused as an unknown class (`invalid_prompt`).
    pub missing_nodes: Vec<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            step_delay: Duration::ZERO,
            previews: true,
            max_upload_size: 104_857_600,
            jobs_api: true,
            assets: false,
            model_files: None,
            missing_nodes: Vec::new(),
        }
    }
}
