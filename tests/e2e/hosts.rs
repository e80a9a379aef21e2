//! Other machines, simulated: a network namespace per host, joined to this
//! one by a veth pair with addresses in 10.200.0.0/13. The test makes the
//! namespace and its addresses itself, named after the test process (so that
//! two runs on one machine never meet), and deletes them when it ends (the
//! namespace takes its veth pair with it), also when it fails.

use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use crate::harness::wait_for;
use crate::object_store::{S3Server, borrowed, spawn_on_s3, store_environment};
use crate::processes::{BrokerProxy, WorkerProcess};

/// A network namespace with one link to this host: `gateway` is this host's
/// end of it, `address` the namespace's.
pub struct SimulatedHost {
    pub namespace: String,
    pub gateway: String,
    pub address: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip").args(args).output().map_err(|error| format!("ip cannot run: {error}"))?;
    if output.status.success() { Ok(()) } else { Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim())) }
}

impl SimulatedHost {
    pub fn create() -> Self {
        static NEXT: AtomicU8 = AtomicU8::new(0);
        let number = NEXT.fetch_add(1, Ordering::SeqCst) % 8;
        let process = std::process::id();
        let namespace = format!("thumbq-{process}-{number}");
        // Interface names have at most 15 bytes.
        let (outside, inside) = (format!("tq{process}h{number}"), format!("tq{process}n{number}"));
        let subnet = format!("10.{}.{}", 200 + u32::from(number), process % 250);
        let host = Self { namespace, gateway: format!("{subnet}.1"), address: format!("{subnet}.2") };
        let made = ip(&["netns", "add", &host.namespace])
            .and_then(|()| ip(&["link", "add", &outside, "type", "veth", "peer", "name", &inside, "netns", &host.namespace]))
            .and_then(|()| ip(&["addr", "add", &format!("{}/30", host.gateway), "dev", &outside]))
            .and_then(|()| ip(&["link", "set", &outside, "up"]))
            .and_then(|()| ip(&["-n", &host.namespace, "addr", "add", &format!("{}/30", host.address), "dev", &inside]))
            .and_then(|()| ip(&["-n", &host.namespace, "link", "set", &inside, "up"]))
            .and_then(|()| ip(&["-n", &host.namespace, "link", "set", "lo", "up"]));
        if let Err(error) = made {
            panic!("Cannot simulate a host with a network namespace ({error}).\nThese tests need root and iproute2 (Debian: apt-get install iproute2).");
        }
        host
    }

    /// Whether a TCP connection from inside the namespace to `address` succeeds (within 3 s).
    pub async fn can_connect(&self, address: &str) -> bool {
        let (host, port) = address.rsplit_once(':').expect("host:port");
        let probe = format!("exec 3<>/dev/tcp/{host}/{port}");
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.namespace, "timeout", "3", "bash", "-c", &probe]);
        tokio::task::spawn_blocking(move || command.status().is_ok_and(|status| status.success())).await.expect("the probe runs")
    }
}

impl Drop for SimulatedHost {
    fn drop(&mut self) {
        let _ = ip(&["netns", "delete", &self.namespace]);
    }
}

#[tokio::test]
async fn a_worker_on_another_host_reaches_only_the_broker_the_object_store_and_postgresql_and_makes_the_thumbnails() {
    let host = SimulatedHost::create();
    let s3 = S3Server::start_on(&host.gateway).await;
    let broker = BrokerProxy::start_on(&host.gateway).await;
    let database = BrokerProxy::start_between(&host.gateway, "127.0.0.1:5432".to_owned()).await;
    let app = spawn_on_s3(&s3).await;
    let broker_address = broker.url.trim_start_matches("amqp://guest:guest@").trim_end_matches("/%2f").to_owned();
    let probe = (host.can_connect("127.0.0.1:5672").await, host.can_connect(&broker_address).await);
    assert_eq!(probe, (false, true), "from the other host, this host's loopback is out of reach and the broker's address is not");

    let worker_dir = tempfile::tempdir().unwrap();
    let environment = store_environment(&app.store);
    let mut worker_environment = borrowed(&environment);
    worker_environment.push(("THUMBQ_DATA_DIR", worker_dir.path().to_str().unwrap()));
    worker_environment.push(("THUMBQ_AMQP_URL", &broker.url));
    let name = app.postgres.as_ref().expect("the app keeps its records in PostgreSQL").name().to_owned();
    let database_url = format!("postgres://postgres@{}/{name}", database.address);
    worker_environment.push(("THUMBQ_DATABASE_URL", &database_url));
    let _worker = WorkerProcess::start_in_namespace(&app, &host.namespace, 2, &worker_environment);

    let ids = [app.upload_one("far-1.jpg", crate::images::jpeg(1024, 768)).await, app.upload_one("far-2.png", crate::images::transparent_png(500, 400)).await];
    for id in ids {
        let status = wait_for(Duration::from_secs(60), "the far worker to finish", || {
            let app = &app;
            async move {
                let status = app.status(id).await;
                (status["state"] != "pending").then_some(status)
            }
        })
        .await;
        assert_eq!(status["state"], "done", "{status}");
        let steps =
            status["timeline"].as_array().map(|steps| steps.iter().filter(|step| step["by"].as_str().is_some_and(|by| by.starts_with("worker"))).count());
        assert!(steps.unwrap_or(0) >= 3, "the worker's steps came through the database too: {status}");
    }
    assert_eq!(std::fs::read_dir(worker_dir.path()).unwrap().count(), 0, "the far worker keeps nothing on its host");
}
