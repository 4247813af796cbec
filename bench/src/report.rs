//! The results: percentiles, one markdown table per measure, and the same as JSON.

use std::{fmt::Write, time::Duration};

use serde::Serialize;

/// Everything a run measured; the one-server part is empty when only the fleet ran, and
/// `fleet` is `None` when only the one-server part did.
#[derive(Serialize, Default)]
pub struct Report {
    pub backend: String,
    pub requests: usize,
    pub latency: Vec<LatencyRow>,
    pub concurrency: Option<ThroughputRow>,
    pub memory: Option<Memory>,
    /// The web app's wasm files, largest first: the main one, then one per lazily loaded page
    /// and what such pages share.
    pub wasm: Vec<Wasm>,
    pub first_load: Option<FirstLoad>,
    pub fleet: Option<Fleet>,
    pub replicas: Option<Replicas>,
}

/// The web app's Generate page opened in headless Chromium at 10 Mbit/s: the medians of a
/// number of visits, each with an empty cache, then again with what it cached.
#[derive(Serialize, serde::Deserialize)]
pub struct FirstLoad {
    pub runs: usize,
    pub cold: Visit,
    pub warm: Visit,
}

/// Time until the page answers input (hydrated), and the bytes it moved to get there.
#[derive(Serialize, serde::Deserialize)]
pub struct Visit {
    pub ms: f64,
    pub bytes: u64,
    pub wasm_bytes: u64,
}

#[derive(Serialize)]
pub struct LatencyRow {
    pub scenario: String,
    pub size: u32,
    pub p50_ms: f64,
    pub p90_ms: f64,
    /// Against direct at the same size; `None` for direct itself.
    pub overhead_p50_ms: Option<f64>,
    pub overhead_p90_ms: Option<f64>,
    /// Bridge CPU time (user + system) per request.
    pub cpu_ms_per_request: Option<f64>,
}

#[derive(Serialize)]
pub struct ThroughputRow {
    pub clients: usize,
    pub requests: usize,
    pub direct_images_per_s: f64,
    pub bridge_images_per_s: f64,
    pub ratio: f64,
    pub direct_errors: usize,
    pub bridge_errors: usize,
}

#[derive(Serialize)]
pub struct ChatMemory {
    pub idle_rss_mib: f64,
    pub rss_after_chat_mib: f64,
}

#[derive(Serialize)]
pub struct Memory {
    pub idle_rss_mib: f64,
    pub clients: usize,
    pub peak_hwm_mib: f64,
    /// A fresh bridge's RSS before and after its first chat request, which loads the tokenizer.
    pub chat: Option<ChatMemory>,
    /// Of the idle RSS, the process's own memory (heap and stacks); the rest is mapped
    /// pages of the binary and libraries.
    pub idle_anonymous_mib: f64,
    /// Idle again after everything else, throughput runs included: what the run left behind.
    pub rss_after_all_mib: f64,
    pub after_all_anonymous_mib: f64,
    /// Requests the bridge had answered by then.
    pub requests_before_after_all: usize,
}

#[derive(Serialize)]
pub struct Wasm {
    pub file: String,
    pub bytes: u64,
    /// As the bridge sends it to a browser that takes gzip: the build's `.gz` beside the file.
    pub gzip_bytes: u64,
    /// As the bridge sends it to a browser that takes brotli: the build's `.br` beside the
    /// file; `None` when the build made none (the bridge then compresses as it sends).
    pub brotli_bytes: Option<u64>,
}

#[derive(Serialize)]
pub struct Fleet {
    /// The servers' names, as the bridge's `COMFYUI_URL` gives them.
    pub servers: Vec<String>,
    pub model: String,
    pub size: u32,
    pub steps: Option<u64>,
    pub step_delay_ms: u64,
    pub runs: Vec<FleetRun>,
}

#[derive(Serialize)]
pub struct FleetRun {
    pub run: String,
    pub requests: usize,
    pub clients: usize,
    pub errors: usize,
    pub seconds: f64,
    pub images_per_s: f64,
    /// What the servers could do directly in this run: the direct run's rate, or for a run
    /// that loses a server, that rate and then the rest's share of it. `None` for the direct
    /// run itself.
    pub capacity_images_per_s: Option<f64>,
    pub ratio: Option<f64>,
    pub slowest_request_s: f64,
    /// Jobs each server finished, in the order of [`Fleet::servers`].
    pub jobs: Vec<u64>,
    /// Jobs the bridge moved off each server to another; `None` for the direct run.
    pub failovers: Option<Vec<u64>>,
    /// CPU time (user + system) per image made, of the simulators together and of the bridge;
    /// the bridge's is `None` for the direct run.
    pub sims_cpu_ms_per_image: f64,
    pub bridge_cpu_ms_per_image: Option<f64>,
}

#[derive(Serialize)]
pub struct Replicas {
    pub clients: usize,
    /// Sequential requests behind each p50.
    pub requests: usize,
    pub postgres_minus_sqlite_p50_ms: f64,
    pub two_over_one: f64,
    /// The share of a core each bridge got in the capped runs.
    pub replica_cpu: f64,
    /// Two capped bridges ÷ one; `None` where no cgroup could cap them.
    pub two_over_one_capped: Option<f64>,
    pub rows: Vec<ReplicasRow>,
}

#[derive(Serialize)]
pub struct ReplicasRow {
    pub setup: String,
    pub p50_ms: Option<f64>,
    pub images_per_s: Option<f64>,
    pub errors: usize,
}

impl Replicas {
    fn markdown(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\nReplicas: instant simulator, gallery on, 512x512 `b64_json`; p50 of {} sequential \
             requests, throughput at {} clients.\n",
            self.requests, self.clients
        );
        out.push_str("| setup | p50 ms | images/s | errors |\n|---|---|---|---|\n");
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                r.setup,
                opt(r.p50_ms, false),
                opt(r.images_per_s, false),
                r.errors
            );
        }
        let _ = writeln!(
            out,
            "\nPostgreSQL − SQLite p50: {:+.2} ms; two bridges ÷ one: {:.2}×.",
            self.postgres_minus_sqlite_p50_ms, self.two_over_one
        );
        match self.two_over_one_capped {
            Some(ratio) => {
                let _ = writeln!(
                    out,
                    "Each bridge held to {} of a core: two bridges ÷ one: {ratio:.2}×.",
                    self.replica_cpu
                );
            }
            None => out.push_str("Capped runs skipped: no cgroup to cap a bridge's CPU with.\n"),
        }
    }
}

/// Nearest-rank percentile of durations, in milliseconds.
pub fn percentile(samples: &[Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1].as_secs_f64() * 1000.0
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn opt(v: Option<f64>, signed: bool) -> String {
    match v {
        Some(v) if signed => format!("{v:+.2}"),
        Some(v) => format!("{v:.2}"),
        None => "–".into(),
    }
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        if !self.latency.is_empty() {
            self.latency_markdown(&mut out);
        }
        if let Some(replicas) = &self.replicas {
            replicas.markdown(&mut out);
        }
        if let Some(fleet) = &self.fleet {
            fleet.markdown(&mut out);
        }
        out
    }

    fn latency_markdown(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "Backend: {}; {} sequential requests per row.\n",
            self.backend, self.requests
        );
        out.push_str("| scenario | size | p50 ms | p90 ms | overhead p50 ms | overhead p90 ms | bridge CPU ms/request |\n");
        out.push_str("|---|---|---|---|---|---|---|\n");
        for r in &self.latency {
            let _ = writeln!(
                out,
                "| {} | {}x{} | {:.2} | {:.2} | {} | {} | {} |",
                r.scenario,
                r.size,
                r.size,
                r.p50_ms,
                r.p90_ms,
                opt(r.overhead_p50_ms, true),
                opt(r.overhead_p90_ms, true),
                opt(r.cpu_ms_per_request, false),
            );
        }
        if let Some(t) = &self.concurrency {
            out.push_str("\n| concurrency | direct images/s | bridge images/s | bridge / direct | errors (direct, bridge) |\n");
            out.push_str("|---|---|---|---|---|\n");
            let _ = writeln!(
                out,
                "| {} clients × {} requests, 512x512 b64_json | {:.1} | {:.1} | {:.3} | {}, {} |",
                t.clients,
                t.requests,
                t.direct_images_per_s,
                t.bridge_images_per_s,
                t.ratio,
                t.direct_errors,
                t.bridge_errors
            );
        }
        if let Some(m) = &self.memory {
            out.push_str("\n| bridge memory | MiB |\n|---|---|\n");
            let _ = writeln!(out, "| RSS idle after start-up | {:.1} |", m.idle_rss_mib);
            let _ = writeln!(
                out,
                "| of it anonymous (heap, stacks; the rest is the binary's mapped pages) | {:.1} |",
                m.idle_anonymous_mib
            );
            let _ = writeln!(
                out,
                "| peak RSS (VmHWM), {} concurrent 512x512 b64_json clients | {:.1} |",
                m.clients, m.peak_hwm_mib
            );
            if let Some(chat) = &m.chat {
                let _ = writeln!(
                    out,
                    "| a fresh bridge's RSS after its first chat request (tokenizer loaded), idle before it {:.1} | {:.1} |",
                    chat.idle_rss_mib, chat.rss_after_chat_mib
                );
            }
            let _ = writeln!(
                out,
                "| RSS idle after the whole run ({} requests) | {:.1} |",
                m.requests_before_after_all, m.rss_after_all_mib
            );
            let _ = writeln!(
                out,
                "| of it anonymous | {:.1} |",
                m.after_all_anonymous_mib
            );
        }
        if self.wasm.is_empty() {
            out.push_str("\nWeb app bundle: not built (cargo leptos build --release).\n");
        } else {
            out.push_str("\n| web app wasm file | KB | gzip KB | brotli KB |\n|---|---|---|---|\n");
            for w in &self.wasm {
                let brotli = w
                    .brotli_bytes
                    .map_or("–".into(), |b| format!("{:.0}", b as f64 / 1024.0));
                let _ = writeln!(
                    out,
                    "| `{}` | {:.0} | {:.0} | {brotli} |",
                    w.file,
                    w.bytes as f64 / 1024.0,
                    w.gzip_bytes as f64 / 1024.0
                );
            }
        }
        if let Some(f) = &self.first_load {
            out.push_str(
                "\n| first load of Generate, 10 Mbit/s (median of visits) | until interactive ms | bytes moved KB | of them wasm KB |\n",
            );
            out.push_str("|---|---|---|---|\n");
            for (label, v) in [("cold (empty cache)", &f.cold), ("warm (reload)", &f.warm)] {
                let _ = writeln!(
                    out,
                    "| {label}, {} visits | {:.0} | {:.1} | {:.1} |",
                    f.runs,
                    v.ms,
                    v.bytes as f64 / 1024.0,
                    v.wasm_bytes as f64 / 1024.0
                );
            }
        }
    }
}

impl Fleet {
    fn markdown(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\nFleet: {} simulators, `{}` {}x{}, {} sampler steps, {} ms per step and per other \
             uncached node, no previews.\n",
            self.servers.len(),
            self.model,
            self.size,
            self.size,
            self.steps.map_or("no".into(), |s| s.to_string()),
            self.step_delay_ms,
        );
        out.push_str("| fleet run | requests | clients | errors | images/s | direct capacity images/s | ÷ capacity | slowest request s | failovers | CPU ms/image: simulators, bridge |\n");
        out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
        for r in &self.runs {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.2} | {} | {} | {:.2} | {} | {:.1}, {} |",
                r.run,
                r.requests,
                r.clients,
                r.errors,
                r.images_per_s,
                opt(r.capacity_images_per_s, false),
                r.ratio.map_or("–".into(), |v| format!("{v:.3}")),
                r.slowest_request_s,
                r.failovers
                    .as_ref()
                    .map_or("–".into(), |f| f.iter().sum::<u64>().to_string()),
                r.sims_cpu_ms_per_image,
                r.bridge_cpu_ms_per_image
                    .map_or("–".into(), |c| format!("{c:.1}")),
            );
        }
        let _ = writeln!(out, "\n| jobs per server | {} |", self.servers.join(" | "));
        let _ = writeln!(out, "|---|{}", "---|".repeat(self.servers.len()));
        for r in &self.runs {
            let jobs: Vec<String> = r.jobs.iter().map(u64::to_string).collect();
            let _ = writeln!(out, "| {} | {} |", r.run, jobs.join(" | "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let ms: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(percentile(&ms, 50.0), 5.0);
        assert_eq!(percentile(&ms, 90.0), 9.0);
        assert_eq!(percentile(&ms[..1], 90.0), 1.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
