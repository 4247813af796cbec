//! The processes under test: the simulator and the bridge, each its own process, and what
//! Linux says about their memory and CPU time.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context, bail};

/// A child process that is killed when dropped, so a failed run leaves nothing behind.
pub struct Proc {
    child: Child,
    pub url: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The port in its URL.
    pub fn port(&self) -> anyhow::Result<u16> {
        self.url
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .with_context(|| format!("no port in {}", self.url))
    }

    /// SIGKILL, as a crash or the OOM killer ends a server: no goodbye on its sockets.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().context("killing a process")?;
        self.child.wait().context("reaping a killed process")?;
        Ok(())
    }

    /// Resident memory now and at its highest, in bytes (`VmRSS`, `VmHWM`).
    pub fn memory(&self) -> anyhow::Result<(u64, u64)> {
        Ok((self.status_kb("VmRSS:")?, self.status_kb("VmHWM:")?))
    }

    /// Of the resident memory, what is the process's own (`RssAnon`: heap and stacks), as
    /// against pages of files it maps, which the kernel may share and drop.
    pub fn anonymous_memory(&self) -> anyhow::Result<u64> {
        self.status_kb("RssAnon:")
    }

    /// A field of `/proc/<pid>/status`, in bytes.
    fn status_kb(&self, name: &str) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .with_context(|| format!("no {name} in /proc status"))
    }

    /// User plus system CPU time used so far.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // utime and stime are fields 14 and 15 of the whole line, 11 and 12 after the name.
        let total = ticks(11) + ticks(12);
        // Linux reports them in USER_HZ, which is 100 on every platform it supports.
        Ok(Duration::from_millis(total * 10))
    }
}

/// A cap on one process's CPU: a cgroup of its own with a CFS quota (cgroup v1's `cpu`
/// controller, or v2's `cpu.max`), removed when dropped. On one machine it stands in for a
/// replica on a machine of its own: what several capped bridges do together shows how the
/// bridge scales out, where uncapped ones would only share the same cores.
pub struct CpuCap {
    dir: PathBuf,
    /// Where the process goes back to before the cgroup is removed.
    parent: PathBuf,
}

impl CpuCap {
    const PERIOD_US: u64 = 100_000;

    /// Caps `pid` at `cores` CPUs; `None` where cgroups cannot be made (not root, or no CPU
    /// controller), and the measurement is skipped.
    pub fn new(pid: u32, cores: f64) -> Option<CpuCap> {
        let quota = ((cores * Self::PERIOD_US as f64) as u64).max(1000);
        let name = format!("bridge-bench-{pid}");
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        let v2 = Path::new("/sys/fs/cgroup");
        let (parent, limits): (&Path, Vec<(&str, String)>) =
            if v1.join("cpu.cfs_quota_us").exists() || v1.join("cgroup.procs").exists() {
                (
                    v1,
                    vec![
                        ("cpu.cfs_period_us", Self::PERIOD_US.to_string()),
                        ("cpu.cfs_quota_us", quota.to_string()),
                    ],
                )
            } else if std::fs::read_to_string(v2.join("cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|c| c == "cpu"))
            {
                // Children of the root get the controller only once it is enabled for them.
                std::fs::write(v2.join("cgroup.subtree_control"), "+cpu").ok()?;
                (
                    v2,
                    vec![("cpu.max", format!("{quota} {}", Self::PERIOD_US))],
                )
            } else {
                return None;
            };
        let dir = parent.join(name);
        std::fs::create_dir_all(&dir).ok()?;
        let cap = CpuCap {
            dir,
            parent: parent.to_path_buf(),
        };
        for (file, value) in limits {
            std::fs::write(cap.dir.join(file), value).ok()?;
        }
        std::fs::write(cap.dir.join("cgroup.procs"), pid.to_string()).ok()?;
        Some(cap)
    }
}

impl Drop for CpuCap {
    fn drop(&mut self) {
        // A cgroup with processes in it cannot be removed: any still running go back.
        if let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for pid in procs.lines() {
                let _ = std::fs::write(self.parent.join("cgroup.procs"), pid);
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The bridge's binary: given, or beside this one (both come from the same target directory).
pub fn bridge_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(p) => p,
        None => std::env::current_exe()?
            .parent()
            .context("no directory for the bench binary")?
            .join("comfyui-bridge"),
    };
    if !path.exists() {
        bail!(
            "{} does not exist; build it first (scripts/bench does) or pass --bridge-bin",
            path.display()
        );
    }
    Ok(path)
}

/// The simulator, with `extra` flags after its own.
pub fn start_simulator(bin: &Path, step_delay_ms: u64, extra: &[&str]) -> anyhow::Result<Proc> {
    start_simulator_on(bin, free_port()?, step_delay_ms, extra)
}

/// As [`start_simulator`], on a given port: a server started again where it was before.
pub fn start_simulator_on(
    bin: &Path,
    port: u16,
    step_delay_ms: u64,
    extra: &[&str],
) -> anyhow::Result<Proc> {
    let child = Command::new(bin)
        .args(["simulator", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--step-delay-ms", &step_delay_ms.to_string()])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("starting the simulator")?;
    Ok(Proc {
        child,
        url: format!("http://127.0.0.1:{port}"),
    })
}

pub fn start_bridge(
    bin: &Path,
    comfyui: &str,
    workflows: &Path,
    data_dir: &Path,
    gallery: bool,
) -> anyhow::Result<Proc> {
    start_bridge_with(bin, comfyui, workflows, data_dir, gallery, &[])
}

/// As [`start_bridge`], with more environment (`DATABASE_URL`, say).
pub fn start_bridge_with(
    bin: &Path,
    comfyui: &str,
    workflows: &Path,
    data_dir: &Path,
    gallery: bool,
    env: &[(&str, &str)],
) -> anyhow::Result<Proc> {
    let port = free_port()?;
    let child = Command::new(bin)
        .env("COMFYUI_URL", comfyui)
        .env("LISTEN", format!("127.0.0.1:{port}"))
        .env("WORKFLOWS_DIR", workflows)
        .env("DATA_DIR", data_dir)
        .env("MAX_QUEUED_JOBS", "256")
        .env("GALLERY", gallery.to_string())
        .env("RUST_LOG", "warn")
        .env_remove("API_KEY")
        .env_remove("DEMO")
        .env_remove("DATABASE_URL")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .spawn()
        .context("starting the bridge")?;
    Ok(Proc {
        child,
        url: format!("http://127.0.0.1:{port}"),
    })
}

/// Waits until `url` answers 2xx.
pub async fn wait_ready(http: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    for _ in 0..300 {
        if let Ok(res) = http.get(url).send().await
            && res.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{url} did not become ready within 15 s")
}
