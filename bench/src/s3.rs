//! The scale-out table's object store: a real S3 server (s3s-fs, which keeps
//! each bucket as a directory; `scripts/ensure-s3` installs it) on a loopback
//! port, its one bucket in a temporary directory, stopped by its pid when
//! dropped, also when the bench fails midway.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use thumbq_contract::ImageId;

use crate::process::{Process, script_output};

const ACCESS_KEY: &str = "thumbq-bench";
const SECRET_KEY: &str = "thumbq-bench-secret";
const BUCKET: &str = "thumbq";

/// How long the server has to listen.
const START_WITHIN: Duration = Duration::from_secs(20);

/// How often a starting server is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(20);

pub struct S3Server {
    /// Stopped before its directory goes: fields drop in this order.
    process: Process,
    /// The buckets (`buckets/thumbq`) and the server's log; kept only to be deleted.
    _dir: TempDir,
    port: u16,
}

impl S3Server {
    /// Installs s3s-fs when missing, starts it and waits until it listens.
    pub fn start() -> anyhow::Result<Self> {
        let binary = PathBuf::from(script_output("ensure-s3", &[], &[])?);
        let dir = tempfile::tempdir()?;
        let buckets = dir.path().join("buckets");
        std::fs::create_dir_all(buckets.join(BUCKET))?;
        let port = crate::servers::free_port()?;
        let mut command = Command::new(binary);
        command.args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY]).arg(&buckets);
        let process = Process::start("s3s-fs", command, dir.path(), 0)?;
        let mut server = Self { process, _dir: dir, port };
        server.wait_until_listening()?;
        Ok(server)
    }

    /// The environment that points a thumbq process at a new prefix of the
    /// bucket: each call, a store of its own.
    pub fn fresh_store(&self) -> Vec<(&'static str, String)> {
        vec![
            ("THUMBQ_STORE", format!("s3://{BUCKET}/bench-{}", ImageId::new())),
            ("THUMBQ_S3_ENDPOINT", format!("http://127.0.0.1:{}", self.port)),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ]
    }

    fn wait_until_listening(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_WITHIN;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            self.process.check_running()?;
            anyhow::ensure!(Instant::now() < deadline, "s3s-fs did not listen on port {} within {START_WITHIN:?}", self.port);
            std::thread::sleep(LOOK_EVERY);
        }
        Ok(())
    }
}
