//! Command line and environment configuration.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "comfyui-bridge",
    version,
    about = "An OpenAI-compatible API and web app in front of ComfyUI"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run only the built-in ComfyUI simulator, as a stand-in ComfyUI server.
    Simulator(SimulatorArgs),
}

#[derive(Debug, Clone, Args)]
pub struct SimulatorArgs {
    /// Address the simulator listens on.
    #[arg(long, default_value = "127.0.0.1:8188")]
    pub listen: SocketAddr,
    /// Simulated time per sampler step, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub step_delay_ms: u64,
    /// The model files this server has, comma separated; every model picker lists them and
    /// refuses any other. Unset: any file name a prompt gives is accepted.
    #[arg(long, value_delimiter = ',')]
    pub model_files: Option<Vec<String>>,
    /// Node classes this server lacks, comma separated, as if their custom nodes were not
    /// installed.
    #[arg(long, value_delimiter = ',')]
    pub without_nodes: Vec<String>,
    /// Send no preview frames while sampling, like ComfyUI's `--preview-method none`.
    #[arg(long)]
    pub no_previews: bool,
}

impl SimulatorArgs {
    pub fn sim_config(&self) -> sim::SimConfig {
        let names = |list: &[String]| -> Vec<String> {
            list.iter()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect()
        };
        sim::SimConfig {
            step_delay: Duration::from_millis(self.step_delay_ms),
            previews: !self.no_previews,
            // `--model-files ""` is a server whose model folders are empty, not an unset flag.
            model_files: self.model_files.as_deref().map(names),
            missing_nodes: names(&self.without_nodes),
            ..sim::SimConfig::default()
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// ComfyUI base URL(s), comma separated. Unset (with COMFYUI_HOST unset too): the built-in
    /// simulator is used as a demo backend.
    #[arg(long, env = "COMFYUI_URL", value_delimiter = ',')]
    pub comfyui_url: Vec<String>,
    /// ComfyUI host, used with COMFYUI_PORT when COMFYUI_URL is unset.
    #[arg(long, env = "COMFYUI_HOST")]
    pub comfyui_host: Option<String>,
    #[arg(long, env = "COMFYUI_PORT", default_value_t = 8188)]
    pub comfyui_port: u16,
    /// Use the built-in ComfyUI simulator even when a ComfyUI server is configured.
    #[arg(long, env = "DEMO")]
    pub demo: bool,
    /// Simulated time per sampler step of the demo backend, in milliseconds.
    #[arg(long, env = "DEMO_STEP_DELAY_MS", default_value_t = 60)]
    pub demo_step_delay_ms: u64,

    /// API key(s) clients must send as `Authorization: Bearer`, comma separated. Unset: open.
    #[arg(long, env = "API_KEY", value_delimiter = ',', hide_env_values = true)]
    pub api_key: Vec<String>,

    /// Address to listen on.
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// The bridge's public base URL (e.g. https://img.example.com), used in image URLs.
    /// Unset: built from the request's Host header.
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Directory of workflow files, one model per file.
    #[arg(long, env = "WORKFLOWS_DIR", default_value = "workflows")]
    pub workflows_dir: PathBuf,
    /// An extra txt2img workflow file (the original bridge's variable).
    #[arg(long, env = "WORKFLOW_TXT2IMG")]
    pub workflow_txt2img: Option<PathBuf>,
    /// An extra img2img workflow file (the original bridge's variable).
    #[arg(long, env = "WORKFLOW_IMG2IMG")]
    pub workflow_img2img: Option<PathBuf>,
    /// Model used when a request names none. Unset: `z-image-turbo` if present, else the first.
    #[arg(long, env = "DEFAULT_MODEL")]
    pub default_model: Option<String>,
    /// Model for edits and variations that name none. Unset: the first inpaint model for an
    /// edit with a mask, else the first image-to-image model.
    #[arg(long, env = "DEFAULT_EDIT_MODEL")]
    pub default_edit_model: Option<String>,
    /// Other names clients may use for models, comma separated `alias=model` pairs, e.g.
    /// `dall-e-3=z-image-turbo,gpt-image-1=sdxl`. Listed in /v1/models.
    #[arg(long, env = "MODEL_ALIASES", value_delimiter = ',')]
    pub model_aliases: Vec<String>,
    /// Take any other OpenAI image model name (`dall-e-*`, `gpt-image-*`, `chatgpt-image-*`)
    /// as the default model for the request (generating or editing).
    #[arg(long, env = "OPENAI_MODEL_NAMES", default_value_t = true, action = clap::ArgAction::Set)]
    pub openai_model_names: bool,

    /// Directory for the gallery's database and, unless STORAGE_URL is set, image files.
    #[arg(long, env = "DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// PostgreSQL for state several bridges share (`postgres://user:password@host/db`): the
    /// gallery. Unset: SQLite under DATA_DIR.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// How long a bridge's claim on a job with an Idempotency-Key holds unless renewed, in
    /// seconds: after a bridge dies, a retry on another runs the job after at most this long.
    #[arg(long, env = "JOB_LEASE_SECS", default_value_t = 30)]
    pub job_lease_secs: u64,
    /// Hosts async jobs' webhooks may be delivered to (`hooks.example.com` for any port, or
    /// `host:port`), comma separated. Unset: no webhooks.
    #[arg(long, env = "WEBHOOK_HOSTS", value_delimiter = ',')]
    pub webhook_hosts: Vec<String>,
    /// The key webhooks are signed with (HMAC-SHA256, as Standard Webhooks; a `whsec_…`
    /// secret is used base64-decoded). Unset: no webhooks.
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Where image files are kept: unset for DATA_DIR (a volume several bridges mount works),
    /// or `s3://bucket/prefix` for S3-compatible storage, configured by the usual AWS_*
    /// variables (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_ALLOW_HTTP).
    #[arg(long, env = "STORAGE_URL")]
    pub storage_url: Option<String>,
    /// Which images the gallery under DATA_DIR keeps: `all` (the API's and the web app's),
    /// `ui` (the web app's, and requests that send `X-Bridge-Gallery: keep`) or `off`.
    #[arg(long, env = "GALLERY", value_enum, default_value_t = GalleryMode::All)]
    pub gallery: GalleryMode,
    /// The gallery keeps at most this many images; the oldest go first. Unset: no limit.
    #[arg(long, env = "GALLERY_MAX_IMAGES")]
    pub gallery_max_images: Option<u64>,
    /// The gallery's images take at most this many megabytes (thumbnails not counted); the
    /// oldest go first. Unset: no limit.
    #[arg(long, env = "GALLERY_MAX_MB")]
    pub gallery_max_mb: Option<u64>,
    /// Images older than this many days (fractions allowed) leave the gallery. Unset: kept.
    #[arg(long, env = "GALLERY_MAX_AGE_DAYS")]
    pub gallery_max_age_days: Option<f64>,
    /// What returned PNGs carry: `parameters` (an A1111-style `parameters` text chunk with
    /// the prompt and settings; ComfyUI's graph chunks, which name the server's model files,
    /// are removed), `comfyui` (both), or `none` (neither).
    #[arg(long, env = "IMAGE_METADATA", value_enum, default_value_t = ImageMetadata::Parameters)]
    pub image_metadata: ImageMetadata,
    /// How long images served by URL are kept, in seconds.
    #[arg(long, env = "IMAGE_RETENTION_SECS", default_value_t = 3600)]
    pub image_retention_secs: u64,
    /// Directory of the built web app (cargo-leptos's site root).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// Longest time one generation may take before it is cancelled, in seconds.
    #[arg(long, env = "GENERATION_TIMEOUT_SECS", default_value_t = 600)]
    pub generation_timeout_secs: u64,
    /// Jobs the bridge keeps in flight on ComfyUI at once, over all requests.
    #[arg(long, env = "MAX_CONCURRENT_JOBS", default_value_t = 8)]
    pub max_concurrent_jobs: usize,
    /// Jobs that may wait for a slot before new requests get 429.
    #[arg(long, env = "MAX_QUEUED_JOBS", default_value_t = 64)]
    pub max_queued_jobs: usize,
    /// Images of one request generated at once.
    #[arg(long, env = "PER_REQUEST_CONCURRENCY", default_value_t = 4)]
    pub per_request_concurrency: usize,
    /// Longest accepted prompt, in characters.
    #[arg(long, env = "MAX_PROMPT_CHARS", default_value_t = 32000)]
    pub max_prompt_chars: usize,
    /// Largest accepted input image (each file of an edit), in bytes.
    #[arg(long, env = "MAX_IMAGE_BYTES", default_value_t = 25 * 1024 * 1024)]
    pub max_image_bytes: usize,
    /// Most pixels an input image may declare (width × height), checked from its header before
    /// anything is decoded. The default is 4096x4096.
    #[arg(long, env = "MAX_INPUT_PIXELS", default_value_t = 4096 * 4096)]
    pub max_input_pixels: u64,
    /// Most pixels the input images of one request may declare together (images and mask).
    #[arg(long, env = "MAX_REQUEST_PIXELS", default_value_t = 4 * 4096 * 4096)]
    pub max_request_pixels: u64,

    /// How chat replies carry their images: `data` (inline data: URLs, work with no public
    /// URL) or `url` (links to this server, kept for IMAGE_RETENTION_SECS).
    #[arg(long, env = "CHAT_IMAGES", value_enum, default_value_t = ChatImages::Data)]
    pub chat_images: ChatImages,
    /// Put the conversation's system message in front of the image prompt. Off: the prompt is
    /// the last user message alone.
    #[arg(long, env = "CHAT_USE_SYSTEM_PROMPT")]
    pub chat_use_system_prompt: bool,
    /// Hosts whose image URLs edits and chat may download (`files.example.com` for any port,
    /// or `host:port`), comma separated. Unset: URLs of other servers are refused.
    #[arg(long, env = "FETCH_IMAGE_HOSTS", value_delimiter = ',')]
    pub fetch_image_hosts: Vec<String>,
    /// Longest silence on a streamed reply before a keep-alive comment, in seconds.
    #[arg(long, env = "SSE_KEEPALIVE_SECS", default_value_t = 15)]
    pub sse_keepalive_secs: u64,

    /// Longest a client may take to send a request's headers, in seconds, counted from the
    /// connection's start or the end of the previous response; so also how long an idle
    /// keep-alive connection is kept.
    #[arg(long, env = "HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// Seconds a request body has before MIN_BODY_RATE applies.
    #[arg(long, env = "BODY_TIMEOUT_SECS", default_value_t = 30)]
    pub body_timeout_secs: u64,
    /// Least average speed of a request body, in bytes per second since the request arrived,
    /// once BODY_TIMEOUT_SECS have passed (slower: 408). 0: no minimum.
    #[arg(long, env = "MIN_BODY_RATE", default_value_t = 8192)]
    pub min_body_rate: u64,
    /// Longest a response may wait for a client that stopped reading, in seconds, before the
    /// connection is closed (and a streamed job cancelled).
    #[arg(long, env = "SEND_STALL_SECS", default_value_t = 30)]
    pub send_stall_secs: u64,
    /// Most connections open at once; past it new ones get 503. Unset: half the open-file
    /// limit (raised to its hard limit at start), at most 10000.
    #[arg(long, env = "MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
}

/// How much the gallery keeps (`GALLERY_MAX_IMAGES`, `GALLERY_MAX_MB`,
/// `GALLERY_MAX_AGE_DAYS`); `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Retention {
    pub max_images: Option<u64>,
    pub max_bytes: Option<u64>,
    pub max_age: Option<Duration>,
}

impl Config {
    /// The gallery's limits, as configured.
    pub fn gallery_retention(&self) -> Retention {
        Retention {
            max_images: self.gallery_max_images,
            max_bytes: self.gallery_max_mb.map(|mb| mb.saturating_mul(1_000_000)),
            max_age: self
                .gallery_max_age_days
                .filter(|d| d.is_finite() && *d >= 0.0)
                .map(|d| Duration::from_secs_f64(d * 86_400.0)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GalleryMode {
    #[value(alias = "true")]
    All,
    Ui,
    #[value(alias = "false")]
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImageMetadata {
    Parameters,
    Comfyui,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChatImages {
    Data,
    Url,
}

impl Config {
    /// The ComfyUI servers to use, or none for the demo backend.
    pub fn comfyui_urls(&self) -> Vec<String> {
        if self.demo {
            return Vec::new();
        }
        let mut urls: Vec<String> = self
            .comfyui_url
            .iter()
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
            .collect();
        if urls.is_empty()
            && let Some(host) = self.comfyui_host.as_deref().filter(|h| !h.is_empty())
        {
            urls.push(format!("http://{host}:{}", self.comfyui_port));
        }
        urls
    }

    pub fn generation_timeout(&self) -> Duration {
        Duration::from_secs(self.generation_timeout_secs.max(1))
    }

    pub fn sse_keepalive(&self) -> Duration {
        Duration::from_secs(self.sse_keepalive_secs.max(1))
    }

    pub fn job_lease(&self) -> Duration {
        Duration::from_secs(self.job_lease_secs.max(1))
    }

    pub fn image_retention(&self) -> Duration {
        Duration::from_secs(self.image_retention_secs.max(1))
    }

    /// A configuration for tests: no keys, the given directories, small limits.
    pub fn for_tests(workflows_dir: PathBuf, data_dir: PathBuf) -> Self {
        let cli = Cli::parse_from(["comfyui-bridge"]);
        Config {
            workflows_dir,
            data_dir,
            ..cli.config
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simulator(args: &[&str]) -> sim::SimConfig {
        let cli = Cli::try_parse_from([&["comfyui-bridge", "simulator"], args].concat()).unwrap();
        match cli.command {
            Some(Command::Simulator(a)) => a.sim_config(),
            None => panic!("not the simulator subcommand"),
        }
    }

    #[test]
    fn simulator_flags_reach_its_config() {
        let c = simulator(&[
            "--listen",
            "127.0.0.1:8199",
            "--step-delay-ms",
            "40",
            "--model-files",
            "a.safetensors, b.safetensors",
            "--without-nodes",
            "KSampler,VAEDecode",
            "--no-previews",
        ]);
        assert_eq!(c.step_delay, Duration::from_millis(40));
        assert_eq!(
            c.model_files,
            Some(vec!["a.safetensors".into(), "b.safetensors".into()])
        );
        assert_eq!(c.missing_nodes, ["KSampler", "VAEDecode"]);
        assert!(!c.previews);

        let plain = simulator(&["--listen", "127.0.0.1:8199", "--step-delay-ms", "5"]);
        assert_eq!(plain.step_delay, Duration::from_millis(5));
        assert_eq!(plain.model_files, None);
        assert!(plain.missing_nodes.is_empty());
        assert!(plain.previews);

        assert_eq!(
            simulator(&["--model-files", ""]).model_files,
            Some(Vec::new())
        );
    }
}
