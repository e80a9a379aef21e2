//! thumbq on a three-node RabbitMQ cluster (`scripts/rabbitmq-cluster`, started
//! once per test binary and left for `scripts/test` to stop): nodes and
//! workers die while uploads keep coming, and nothing is lost.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use thumbq_contract::ImageId;
use tokio::sync::OnceCell;

use crate::harness::{Options, TestApp, wait_for};
use crate::images;
use crate::processes::WorkerProcess;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/rabbitmq-cluster")
}

/// Runs `scripts/rabbitmq-cluster` with `args`; its output, or the test fails with what it said.
fn cluster(args: &[&str]) -> String {
    let output = Command::new(script()).args(args).output().expect("scripts/rabbitmq-cluster runs");
    assert!(
        output.status.success(),
        "scripts/rabbitmq-cluster {} failed: {}\nThe cluster tests need RabbitMQ installed (scripts/ensure-rabbitmq).",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("text").trim().to_owned()
}

/// The cluster's node URLs, comma-separated; the cluster is started by the first test that asks.
async fn cluster_urls() -> String {
    static URLS: OnceCell<String> = OnceCell::const_new();
    URLS.get_or_init(|| async { tokio::task::spawn_blocking(|| cluster(&["start"])).await.expect("the cluster starts") }).await.clone()
}

/// The number of the node leading `queue`.
fn leader(queue: &str) -> u8 {
    cluster(&["leader", queue]).parse().expect("a node number")
}

/// Held by each cluster test: one kills nodes, and the others must not ask a dead one.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A node killed by a test, started again when this is dropped (also when the test fails).
struct Killed(Option<u8>);

impl Killed {
    fn node(node: u8) -> Self {
        cluster(&["kill", &node.to_string()]);
        Self(Some(node))
    }

    fn restart(mut self) {
        if let Some(node) = self.0.take() {
            cluster(&["restart", &node.to_string()]);
        }
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(node) = self.0.take() {
            let _ = Command::new(script()).args(["restart", &node.to_string()]).output();
        }
    }
}

#[tokio::test]
async fn three_hundred_uploads_survive_the_queue_leader_and_a_worker_killed_mid_run() {
    let urls = cluster_urls().await;
    let _alone = ONE_AT_A_TIME.lock().await;
    let app = Arc::new(TestApp::spawn_with(Options { with_worker: false, amqp_url: Some(urls.clone()), ..Options::default() }).await);
    let mut worker = Some(WorkerProcess::start(&app, 2));
    let _other_worker = WorkerProcess::start(&app, 2);
    let leader_before = leader(&app.queue);
    let started = Instant::now();

    // Ten clients upload 30 images each; the faults come at fixed points of the run.
    let accepted = Arc::new(std::sync::Mutex::new(Vec::<ImageId>::new()));
    let clients: Vec<_> = (0..10)
        .map(|client| {
            let (app, accepted) = (Arc::clone(&app), Arc::clone(&accepted));
            tokio::spawn(async move {
                for number in 0..30 {
                    let response = app.upload_json(&[(&format!("c{client}-{number}.jpg"), images::jpeg(96, 64), "image/jpeg")]).await;
                    assert_eq!(response.status(), StatusCode::ACCEPTED, "every upload is accepted, faults or not");
                    let body: serde_json::Value = response.json().await.unwrap();
                    accepted.lock().unwrap().push(body["images"][0]["id"].as_str().unwrap().parse().unwrap());
                }
            })
        })
        .collect();
    let count = || accepted.lock().unwrap().len();

    wait_for(Duration::from_secs(60), "100 uploads", || std::future::ready((count() >= 100).then_some(()))).await;
    let killed_at = Instant::now();
    let killed = tokio::task::spawn_blocking(move || Killed::node(leader_before)).await.unwrap();
    wait_for(Duration::from_secs(120), "200 uploads", || std::future::ready((count() >= 200).then_some(()))).await;
    worker.take().expect("the first worker").kill();
    let _replacement = WorkerProcess::start(&app, 2);
    for client in clients {
        client.await.expect("a client finishes");
    }
    let uploads_took = started.elapsed();
    tokio::task::spawn_blocking(move || killed.restart()).await.unwrap();
    let restarted_at = killed_at.elapsed();

    let ids = accepted.lock().unwrap().clone();
    assert_eq!(ids.len(), 300);
    wait_for(Duration::from_secs(240), "every image to be done", || std::future::ready((app.count_done(&ids) == ids.len()).then_some(()))).await;
    let all_done = started.elapsed();
    for id in &ids {
        assert_eq!(app.status(*id).await["state"], "done", "lost or failed: {id}");
    }
    wait_for(Duration::from_secs(30), "the queue to be empty", || {
        let app = Arc::clone(&app);
        async move { (app.queue_depth().await == 0).then_some(()) }
    })
    .await;
    let dead = app.queue_depth_of(&format!("{}.dead", app.queue)).await;
    assert_eq!(dead, 0, "no job was dead-lettered");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let routes: Vec<&str> = metrics.lines().filter(|line| line.starts_with("thumbq_web_jobs_dispatched_total")).collect();
    eprintln!(
        "cluster run: 300 uploads in {:.1} s ({routes:?}); leader node {leader_before} killed, back after {:.1} s; all done {:.1} s after the start; leader now node {}",
        uploads_took.as_secs_f64(),
        restarted_at.as_secs_f64(),
        all_done.as_secs_f64(),
        leader(&app.queue)
    );
}

#[tokio::test]
async fn the_resize_queue_is_replicated_on_all_three_nodes() {
    let urls = cluster_urls().await;
    let _alone = ONE_AT_A_TIME.lock().await;
    let app = TestApp::spawn_with(Options { with_worker: false, amqp_url: Some(urls), ..Options::default() }).await;
    let queue = app.queue.clone();
    let members = tokio::task::spawn_blocking(move || cluster(&["members", &queue])).await.unwrap();
    let mut members: Vec<&str> = members.lines().collect();
    members.sort_unstable();
    assert_eq!(members, ["1", "2", "3"], "a replica on each node");
}
