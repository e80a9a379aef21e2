//! Real worker processes the tests can kill, and a TCP proxy that can cut the link to RabbitMQ.

use std::path::PathBuf;
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
    assert!(path.exists(), "{} is missing: run `cargo build --workspace --bins --tests` first (scripts/test does)", path.display());
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
        Self::spawn(app, Command::new(binary("thumbq-worker")), concurrency, environment)
    }

    /// Starts a worker inside the network namespace `namespace` (a simulated host).
    pub fn start_in_namespace(app: &TestApp, namespace: &str, concurrency: u16, environment: &[(&str, &str)]) -> Self {
        let mut command = Command::new("ip");
        // `ip netns exec` enters the namespace and executes the worker: the pid is the worker's.
        command.args(["netns", "exec", namespace]).arg(binary("thumbq-worker"));
        Self::spawn(app, command, concurrency, environment)
    }

    fn spawn(app: &TestApp, mut command: Command, concurrency: u16, environment: &[(&str, &str)]) -> Self {
        let log = std::fs::File::create(app.data_dir.path().join(format!("worker-{}.log", uuid::Uuid::now_v7().simple()))).expect("a log file");
        command
            .env_clear()
            .env("THUMBQ_DATA_DIR", app.data_dir.path())
            .env("THUMBQ_QUEUE", &app.queue)
            .env("THUMBQ_RETRY_DELAYS_SECS", app.retry_delays.to_string())
            .env("THUMBQ_CONCURRENCY", concurrency.to_string())
            .env("RUST_LOG", "info")
            // The log lines go to stdout; a panic's message to stderr: both kept.
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log);
        if let Some(url) = &app.amqp_url {
            command.env("THUMBQ_AMQP_URL", url);
        }
        command.envs(app.database_environment());
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

    /// Whether the process is still running.
    /// The pids of this worker's child processes running `program` (its HEIF decoders), with their arguments.
    pub fn children_running(&self, program: &str) -> Vec<(u32, Vec<String>)> {
        let pid = self.child.id();
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        // Each thread of the worker may have started one.
        let mut found: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|tasks| {
                tasks
                    .flatten()
                    .flat_map(|task| {
                        std::fs::read_to_string(task.path().join("children"))
                            .unwrap_or_default()
                            .split_whitespace()
                            .filter_map(|child| child.parse().ok())
                            .collect::<Vec<u32>>()
                    })
                    .collect()
            })
            .unwrap_or_default();
        found.extend(children.split_whitespace().filter_map(|child| child.parse::<u32>().ok()));
        found.sort_unstable();
        found.dedup();
        found
            .into_iter()
            .filter_map(|child| {
                let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).ok()?;
                let args: Vec<String> =
                    cmdline.split(|byte| *byte == 0).filter(|arg| !arg.is_empty()).map(|arg| String::from_utf8_lossy(arg).into_owned()).collect();
                args.first().is_some_and(|first| first.ends_with(program)).then(|| (child, args[1..].to_vec()))
            })
            .collect()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("the worker's status").is_none()
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

/// A `thumbq-web` process on a data directory and queue; killed when dropped.
pub struct WebProcess {
    child: Child,
    pub address: String,
}

impl WebProcess {
    /// Starts the web server with `environment` on top of the data directory, queue and broker of `app`
    /// (`amqp_url` instead of the app's, when given); returns once it listens.
    pub async fn start(app: &TestApp, amqp_url: Option<&str>, environment: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("a free port").port();
        let log = std::fs::File::create(app.data_dir.path().join(format!("web-{}.log", uuid::Uuid::now_v7().simple()))).expect("a log file");
        let mut command = Command::new(binary("thumbq-web"));
        command
            .env_clear()
            .env("THUMBQ_DATA_DIR", app.data_dir.path())
            .env("THUMBQ_QUEUE", &app.queue)
            .env("THUMBQ_RETRY_DELAYS_SECS", app.retry_delays.to_string())
            .env("THUMBQ_BIND", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(url) = amqp_url.map(str::to_owned).or_else(|| app.amqp_url.clone()) {
            command.env("THUMBQ_AMQP_URL", url);
        }
        command.envs(app.database_environment());
        command.envs(environment.iter().copied());
        let mut process = Self { child: command.spawn().expect("the web server starts"), address: format!("127.0.0.1:{port}") };
        wait_for(Duration::from_secs(30), "the web server to listen", || {
            let exited = process.child.try_wait().expect("the web server's status");
            assert!(exited.is_none(), "the web server exited at start: {exited:?}");
            let listening = std::net::TcpStream::connect(&process.address).is_ok();
            async move { listening.then_some(()) }
        })
        .await;
        process
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The process's resident memory now (VmRSS), in KiB.
    pub fn resident_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("the web server's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmRSS line")
    }

    /// SIGKILL: the process gets no chance to finish anything.
    pub fn kill(mut self) {
        self.child.kill().expect("the web server can be killed");
        self.child.wait().expect("the killed web server is reaped");
    }

    /// SIGTERM; returns how long the process took to exit.
    pub async fn terminate(mut self, deadline: Duration) -> Duration {
        let started = std::time::Instant::now();
        let sent = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill runs");
        assert!(sent.success(), "SIGTERM was delivered");
        wait_for(deadline, "the web server to exit after SIGTERM", || {
            let status = self.child.try_wait().expect("the web server's status");
            async move { status }
        })
        .await;
        started.elapsed()
    }
}

impl Drop for WebProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Jobs a worker holds in the embedded queue (the outbox rows leased now).
pub async fn embedded_claims(repo: &thumbq_repo::Repository) -> usize {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    repo.jobs_held(now_ms).await.unwrap().1
}

/// A TCP proxy in front of RabbitMQ (or another server) that a test can cut and restore.
pub struct BrokerProxy {
    pub url: String,
    /// Where the proxy listens, `ip:port`.
    pub address: String,
    up: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
    /// While true, bytes from clients are held, not passed on: a publish waits for a confirm that does not come.
    paused: watch::Sender<bool>,
}

impl BrokerProxy {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1").await
    }

    /// A proxy listening on `ip` (a simulated host's gateway, say) rather than loopback.
    pub async fn start_on(ip: &str) -> Self {
        let upstream = std::env::var("THUMBQ_TEST_AMQP_ADDR").unwrap_or_else(|_| "127.0.0.1:5672".into());
        Self::start_between(ip, upstream).await
    }

    /// A proxy listening on `ip` that passes connections on to `upstream` (`host:port`).
    pub async fn start_between(ip: &str, upstream: String) -> Self {
        let listener = TcpListener::bind((ip, 0)).await.expect("a free port");
        let address = listener.local_addr().expect("an address").to_string();
        let url = format!("amqp://guest:guest@{address}/%2f");
        let up = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0);
        let (paused, _) = watch::channel(false);
        let proxy = Self { url, address, up: Arc::clone(&up), cuts: cuts.clone(), paused: paused.clone() };
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !up.load(Ordering::SeqCst) {
                    continue; // Dropped at once: the broker looks unreachable.
                }
                let mut cut = cuts.subscribe();
                let upstream = upstream.clone();
                let paused = paused.subscribe();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else { return };
                    let (client_read, mut client_write) = client.into_split();
                    let (mut server_read, server_write) = server.into_split();
                    tokio::select! {
                        () = forward(client_read, server_write, paused) => {}
                        _ = tokio::io::copy(&mut server_read, &mut client_write) => {}
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

    /// Holds every byte clients send from now on, without closing anything.
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }
}

/// Copies `from` to `to`, holding what arrives while `paused` is true.
async fn forward(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, mut paused: watch::Receiver<bool>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let Ok(read) = from.read(&mut buffer).await else { return };
        if read == 0 {
            return;
        }
        if paused.wait_for(|paused| !*paused).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
