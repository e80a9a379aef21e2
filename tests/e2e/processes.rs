//! Real worker processes the tests can kill, and a TCP proxy that can cut the link to RabbitMQ.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::harness::{TestApp, wait_for};

/// The path of a workspace binary built beside this test (`cargo build --bins` builds them).
pub fn binary(name: &str) -> PathBuf {
    let deps = std::env::current_exe().expect("the test's path");
    let path = deps.parent().and_then(|dir| dir.parent()).expect("target/<profile>").join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --workspace --bins` first (scripts/test does)", path.display());
    path
}

/// A `thumbq-worker` process on a test app's data directory and queue; killed when dropped.
pub struct WorkerProcess {
    child: Child,
}

impl WorkerProcess {
    pub fn start(app: &TestApp, concurrency: u16) -> Self {
        Self::start_with(app, concurrency, &[])
    }

    /// Starts a worker with extra environment variables.
    pub fn start_with(app: &TestApp, concurrency: u16, environment: &[(&str, &str)]) -> Self {
        let log = std::fs::File::create(app.data_dir.path().join(format!("worker-{}.log", uuid::Uuid::now_v7().simple()))).expect("a log file");
        let mut command = Command::new(binary("thumbq-worker"));
        command
            .env_clear()
            .env("THUMBQ_DATA_DIR", app.data_dir.path())
            .env("THUMBQ_QUEUE", &app.queue)
            .env("THUMBQ_CONCURRENCY", concurrency.to_string())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(url) = &app.amqp_url {
            command.env("THUMBQ_AMQP_URL", url);
        }
        command.envs(environment.iter().copied());
        Self { child: command.spawn().expect("the worker starts") }
    }

    /// The process's peak resident memory so far (VmHWM), in KiB.
    pub fn peak_memory_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("the worker's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmHWM line")
    }

    /// SIGKILL: the process gets no chance to finish or settle anything.
    pub fn kill(mut self) {
        self.child.kill().expect("the worker can be killed");
        self.child.wait().expect("the killed worker is reaped");
    }

    /// SIGTERM, then waits for the process to exit.
    pub async fn terminate(mut self, deadline: Duration) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        assert!(sent.success(), "SIGTERM was delivered");
        wait_for(deadline, "the worker to exit after SIGTERM", || {
            let status = self.child.try_wait().expect("the worker's status");
            async move { status }
        })
        .await
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Claimed jobs in the embedded queue: files below `spool/jobs/claimed/`.
pub fn embedded_claims(data_dir: &Path) -> usize {
    let claimed = data_dir.join("spool/jobs/claimed");
    std::fs::read_dir(claimed).map(|owners| owners.flatten().map(|owner| std::fs::read_dir(owner.path()).map_or(0, |jobs| jobs.count())).sum()).unwrap_or(0)
}

/// A TCP proxy in front of RabbitMQ that a test can cut and restore.
pub struct BrokerProxy {
    pub url: String,
    up: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
}

impl BrokerProxy {
    pub async fn start() -> Self {
        let upstream = std::env::var("THUMBQ_TEST_AMQP_ADDR").unwrap_or_else(|_| "127.0.0.1:5672".into());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let url = format!("amqp://guest:guest@{}/%2f", listener.local_addr().expect("an address"));
        let up = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0);
        let proxy = Self { url, up: Arc::clone(&up), cuts: cuts.clone() };
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up.load(Ordering::SeqCst) {
                    continue; // Dropped at once: the broker looks unreachable.
                }
                let mut cut = cuts.subscribe();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        proxy
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|cuts| *cuts += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
