//! The servers one point of the offload and scale-out tables runs against,
//! as child processes on a fresh data directory (or a bucket): `thumbq-web`
//! with its workers, or the comparison server. Each is started with only the
//! settings given here, waited for until it serves, and stopped as its
//! operators would stop it (SIGTERM, then SIGKILL past a deadline), also when
//! the bench fails midway.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::http::Connection;
use crate::process::Process;

/// How long a server has to start serving.
const START_WITHIN: Duration = Duration::from_secs(30);

/// How often a starting server is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(50);

/// What the offloaded setup needs to know.
pub struct Offloaded<'a> {
    pub web: &'a Path,
    pub worker: &'a Path,
    pub amqp_url: &'a str,
    /// The resize queue, unique to this run.
    pub queue: &'a str,
    pub workers: usize,
    /// The workers' nice value (0 to 19).
    pub worker_nice: i32,
    pub store: Store<'a>,
}

/// RabbitMQ and the resize queue, unique to a run, that a web server publishes to.
#[derive(Clone, Copy)]
pub struct Broker<'a> {
    pub amqp_url: &'a str,
    pub queue: &'a str,
}

/// Where the web server and its workers keep images.
#[derive(Clone, Copy)]
pub enum Store<'a> {
    /// The web server's data directory, which its workers share.
    DataDir,
    /// A bucket, named by these environment variables (`THUMBQ_STORE`, …);
    /// each worker gets an empty data directory of its own, as on a machine of its own.
    Bucket(&'a [(&'static str, String)]),
}

/// The processes of one point and their data directories, deleted when
/// dropped (12 MP uploads fill a disk fast).
pub struct Servers {
    /// Stopped before the directories below go: fields drop in this order.
    processes: Vec<Process>,
    data_dir: TempDir,
    worker_dirs: Vec<TempDir>,
    address: String,
}

impl Servers {
    /// `thumbq-web` on RabbitMQ, then its workers; returns once the web server
    /// is ready and every worker consumes the queue.
    pub async fn offloaded(setup: &Offloaded<'_>) -> anyhow::Result<Self> {
        let mut servers = Self::web(setup).await?;
        servers.start_workers(setup)?;
        servers.wait_for_consumers(setup).await?;
        Ok(servers)
    }

    /// `thumbq-web` on RabbitMQ alone; returns once it is ready.
    pub async fn web(setup: &Offloaded<'_>) -> anyhow::Result<Self> {
        Self::web_alone(setup.web, Some(Broker { amqp_url: setup.amqp_url, queue: setup.queue }), setup.store).await
    }

    /// The `thumbq-web` at `binary` (this tree's, or an earlier release's,
    /// which ignores the settings it does not know) on RabbitMQ, or on the
    /// embedded queue when `broker` is `None`, with no workers; returns once it is ready.
    pub async fn web_alone(binary: &Path, broker: Option<Broker<'_>>, store: Store<'_>) -> anyhow::Result<Self> {
        let data_dir = tempfile::tempdir()?;
        let address = free_address()?;
        let mut web = Command::new(binary);
        web.env("THUMBQ_DATA_DIR", data_dir.path())
            .env("THUMBQ_BIND", &address)
            // Every client of the bench comes from 127.0.0.1: neither the rate
            // limit nor the per-client connection cap may answer for it.
            .env("THUMBQ_UPLOADS_PER_MINUTE", "1000000")
            .env("THUMBQ_UPLOAD_BURST", "1000000")
            .env("THUMBQ_UPLOAD_MIB_PER_MINUTE", "1000000")
            .env("THUMBQ_MAX_CONNECTIONS_PER_CLIENT", "10000")
            // Low, but not nothing: a disk that does fill shows up as 507s in the table.
            .env("THUMBQ_MIN_FREE_BYTES", (256u64 << 20).to_string());
        if let Some(broker) = broker {
            web.env("THUMBQ_AMQP_URL", broker.amqp_url).env("THUMBQ_QUEUE", broker.queue);
        }
        set_store(&mut web, store);
        let mut servers = Self { processes: Vec::new(), data_dir, worker_dirs: Vec::new(), address };
        servers.processes.push(Process::start("thumbq-web", web, servers.data_dir.path(), 0)?);
        // Ready means it wrote the store's manifest, which the workers need.
        servers.wait_until_serving("/readyz").await?;
        Ok(servers)
    }

    /// Starts `setup.workers` workers, concurrency 1 each, without waiting for them.
    pub fn start_workers(&mut self, setup: &Offloaded<'_>) -> anyhow::Result<()> {
        for _ in 0..setup.workers {
            let mut worker = Command::new(setup.worker);
            worker
                .env("THUMBQ_DATA_DIR", self.worker_data_dir(setup.store)?)
                .env("THUMBQ_AMQP_URL", setup.amqp_url)
                .env("THUMBQ_QUEUE", setup.queue)
                .env("THUMBQ_CONCURRENCY", "1");
            set_store(&mut worker, setup.store);
            self.processes.push(Process::start("thumbq-worker", worker, self.data_dir.path(), setup.worker_nice)?);
        }
        Ok(())
    }

    /// The comparison server (`thumbq-bench-inline`) in `mode` (`inline` or `store-only`).
    pub async fn comparison(binary: &Path, mode: &str) -> anyhow::Result<Self> {
        let data_dir = tempfile::tempdir()?;
        let address = free_address()?;
        let mut server = Command::new(binary);
        server.arg("--mode").arg(mode).arg("--bind").arg(&address).arg("--data-dir").arg(data_dir.path().join("data"));
        let process = Process::start("thumbq-bench-inline", server, data_dir.path(), 0)?;
        let mut servers = Self { processes: vec![process], data_dir, worker_dirs: Vec::new(), address };
        servers.wait_until_serving("/healthz").await?;
        Ok(servers)
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// The process that serves [`Servers::address`]: the web server or the comparison server.
    pub fn server_pid(&self) -> u32 {
        self.processes[0].id()
    }

    /// Fails, with the end of its log, when a process has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        self.processes.iter_mut().try_for_each(Process::check_running)
    }

    /// Stops every process (SIGTERM, then SIGKILL past a deadline) and deletes the data directory.
    pub fn stop(self) {
        // Waiting for processes blocks: tell the runtime, so that its other tasks move elsewhere.
        tokio::task::block_in_place(move || drop(self));
    }

    async fn wait_until_serving(&mut self, path: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_WITHIN;
        let mut connection = Connection::new(&self.address);
        loop {
            self.check_running()?;
            match connection.send(connection.get(path), LOOK_EVERY * 10).await {
                Ok(answer) if answer.status.is_success() => return Ok(()),
                _ if Instant::now() > deadline => bail!("{} did not answer {path} with 2xx within {START_WITHIN:?}", self.address),
                _ => tokio::time::sleep(LOOK_EVERY).await,
            }
        }
    }

    async fn wait_for_consumers(&mut self, setup: &Offloaded<'_>) -> anyhow::Result<()> {
        let enough = |report: &thumbq_broker::admin::QueueReport| report.consumers as usize >= setup.workers;
        crate::rabbitmq::wait_for_queue(setup.amqp_url, setup.queue, START_WITHIN, || self.check_running(), enough)
            .await
            .with_context(|| format!("waiting for {} workers to consume", setup.workers))
    }

    /// The web server's data directory, or with a bucket a new empty one.
    fn worker_data_dir(&mut self, store: Store) -> anyhow::Result<PathBuf> {
        match store {
            Store::DataDir => Ok(self.data_dir.path().to_owned()),
            Store::Bucket(_) => {
                let dir = tempfile::tempdir()?;
                let path = dir.path().to_owned();
                self.worker_dirs.push(dir);
                Ok(path)
            }
        }
    }
}

/// Points `command` at the bucket, if there is one.
fn set_store(command: &mut Command, store: Store) {
    if let Store::Bucket(environment) = store {
        command.envs(environment.iter().map(|(name, value)| (name, value)));
    }
}

/// A port that was free a moment ago, as the end-to-end tests pick them.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn free_address() -> anyhow::Result<String> {
    Ok(format!("127.0.0.1:{}", free_port()?))
}
