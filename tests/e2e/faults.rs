//! Nothing is lost: broker outages, killed workers, SIGTERM.

use std::time::Duration;

use reqwest::StatusCode;
use thumbq_contract::ImageId;

use crate::harness::{Mode, Options, TestApp, amqp_url, wait_for};
use crate::images;
use crate::processes::{BrokerProxy, WorkerProcess, embedded_claims};

#[tokio::test]
async fn uploads_during_a_broker_outage_are_accepted_and_all_get_thumbnails_once_it_is_back() {
    let proxy = BrokerProxy::start().await;
    let app = TestApp::spawn_with(Options { web_amqp_url: Some(proxy.url.clone()), ..Options::default() }).await;
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);

    proxy.cut();
    let mut ids = Vec::new();
    for number in 0..10 {
        ids.push(app.upload_one(&format!("outage-{number}.jpg"), images::jpeg(320, 240)).await);
    }

    let readiness = app.get("/readyz").await;
    assert_eq!(readiness.status(), StatusCode::OK, "uploads are still taken: a load balancer must keep sending them");
    let report = readiness.text().await.unwrap();
    assert!(report.contains("broker: unreachable"), "{report}");
    assert!(report.contains("jobs in the outbox: 10"), "{report}");
    assert_eq!(app.count_done(&ids), 0, "no job reached the worker while the link was cut");

    proxy.restore();
    for id in &ids {
        assert_eq!(app.wait_until_settled(*id).await["state"], "done");
    }
    let report = app.get("/readyz").await.text().await.unwrap();
    assert!(report.contains("jobs in the outbox: 0"), "{report}");
    eprintln!("outage: {} uploads accepted while the broker link was cut, {} lost", ids.len(), ids.len() - app.count_done(&ids));
}

#[tokio::test]
async fn a_worker_killed_mid_job_loses_nothing_with_rabbitmq() {
    a_worker_killed_mid_job_loses_nothing(Mode::RabbitMq).await;
}

#[tokio::test]
async fn a_worker_killed_mid_job_loses_nothing_in_the_embedded_queue() {
    a_worker_killed_mid_job_loses_nothing(Mode::Embedded).await;
}

async fn a_worker_killed_mid_job_loses_nothing(mode: Mode) {
    let amqp = match mode {
        Mode::RabbitMq => Some(amqp_url()),
        Mode::Embedded => None,
    };
    let app = TestApp::spawn_with(Options { with_worker: false, amqp_url: amqp, ..Options::default() }).await;
    let mut ids = Vec::new();
    for number in 0..4 {
        ids.push(app.upload_one(&format!("big-{number}.jpg"), images::jpeg(4000, 3000)).await);
    }

    let repo = thumbq_repo::Repository::open_now(&app.database()).await.unwrap();
    let doomed = WorkerProcess::start(&app, 2);
    wait_for(Duration::from_secs(30), "the worker to take jobs", || async {
        let holding = match mode {
            Mode::RabbitMq => app.queue_depth().await < 4,
            Mode::Embedded => embedded_claims(&repo).await > 0,
        };
        holding.then_some(())
    })
    .await;
    assert!(app.count_done(&ids) < ids.len(), "the worker still had jobs in hand");
    doomed.kill();

    let _rescuer = WorkerProcess::start(&app, 2);
    for id in &ids {
        assert_eq!(app.wait_until_settled(*id).await["state"], "done", "image {id}");
    }
    for (_, bytes) in app.wait_for_thumbnails(ids[0]).await {
        images::decode(&bytes); // whole files only
    }
}

#[tokio::test]
async fn on_sigterm_a_worker_finishes_the_jobs_it_holds_and_exits_cleanly() {
    let app = TestApp::spawn_without_worker().await;
    let mut ids = Vec::new();
    for number in 0..3 {
        ids.push(app.upload_one(&format!("term-{number}.jpg"), images::jpeg(4000, 3000)).await);
    }
    // An upload's answer does not wait for RabbitMQ's confirm: the jobs leave the outbox just after
    // (on a loaded machine a confirm later than the publish timeout may send one twice).
    wait_for(Duration::from_secs(60), "the jobs out of the outbox", || async {
        app.get("/readyz").await.text().await.ok()?.contains("jobs in the outbox: 0").then_some(())
    })
    .await;
    let waiting = app.queue_depth().await;
    let worker = WorkerProcess::start(&app, 1);
    wait_for(Duration::from_secs(30), "the worker to take a job", || async { (app.queue_depth().await < waiting).then_some(()) }).await;

    let status = worker.terminate(Duration::from_secs(60)).await;

    assert!(status.success(), "the worker exits 0, not {status}");
    let done = app.count_done(&ids);
    assert!(done >= 1, "the job in hand was finished");
    assert_eq!(app.queue_depth().await as usize, waiting as usize - done, "finished jobs were acked, the rest wait on the queue");
}

#[tokio::test]
async fn two_hundred_uploads_survive_workers_killed_again_and_again_and_a_cut_broker_link() {
    const UPLOADS: usize = 200;
    let proxy = BrokerProxy::start().await;
    let app = TestApp::spawn_with(Options { with_worker: false, web_amqp_url: Some(proxy.url.clone()), ..Options::default() }).await;
    let mut workers = vec![WorkerProcess::start(&app, 2), WorkerProcess::start(&app, 2)];
    let jpeg = images::jpeg(640, 480);

    let mut ids: Vec<ImageId> = Vec::with_capacity(UPLOADS);
    let mut accepted_during_outage = 0;
    let mut kills = 0;
    for number in 0..UPLOADS {
        if number == 60 {
            proxy.cut();
        }
        if number == 100 {
            proxy.restore();
        }
        if (60..100).contains(&number) {
            accepted_during_outage += 1;
        }
        ids.push(app.upload_one(&format!("soak-{number}.jpg"), jpeg.clone()).await);
        // Every 40 uploads, kill a worker whatever it is doing and start another.
        if number % 40 == 39 {
            workers.remove(0).kill();
            workers.push(WorkerProcess::start(&app, 2));
            kills += 1;
        }
    }
    // And twice more while the backlog drains.
    for _ in 0..2 {
        let before = app.count_done(&ids);
        wait_for(Duration::from_secs(120), "progress before the next kill", || async { (app.count_done(&ids) >= (before + 20).min(UPLOADS)).then_some(()) })
            .await;
        workers.remove(0).kill();
        workers.push(WorkerProcess::start(&app, 2));
        kills += 1;
    }

    wait_for(Duration::from_secs(300), "every upload to have its thumbnails", || async { (app.count_done(&ids) == UPLOADS).then_some(()) }).await;
    let mut states = std::collections::BTreeMap::new();
    for id in &ids {
        *states.entry(app.status(*id).await["state"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    eprintln!("soak: {UPLOADS} uploads, {accepted_during_outage} during the outage, {kills} workers killed, states {states:?}");
    assert_eq!(states.get("done"), Some(&UPLOADS), "none lost, none pending, none failed: {states:?}");
}

#[tokio::test]
async fn a_job_that_keeps_failing_is_given_up_after_its_tries_with_a_reason_and_dead_lettered() {
    let mut app = TestApp::spawn_without_worker().await;
    let id = app.upload_one("unwritable.jpg", images::jpeg(300, 200)).await;
    // A file where the thumbnails' directory must go: every try fails with an I/O error, a retryable one.
    std::fs::write(app.data_dir.path().join("thumbs").join(id.to_string()), b"in the way").unwrap();

    app.start_worker().await;
    let status = app.wait_until_settled(id).await;

    assert_eq!(status["state"], "failed");
    let reason = status["error"].as_str().unwrap();
    assert!(reason.contains("after 5 tries"), "{reason}");
    let dead = wait_for(Duration::from_secs(20), "the job to reach the dead-letter queue", || async {
        let depth = app.queue_depth_of(&format!("{}.dead", app.queue)).await;
        (depth == 1).then_some(depth)
    })
    .await;
    assert_eq!(dead, 1);
    assert_eq!(app.queue_depth().await, 0, "it does not loop on the resize queue");
}

#[tokio::test]
async fn a_fault_that_clears_in_seconds_never_fails_an_image_with_rabbitmq() {
    a_fault_that_clears_in_seconds_never_fails_an_image(Mode::RabbitMq).await;
}

#[tokio::test]
async fn a_fault_that_clears_in_seconds_never_fails_an_image_in_the_embedded_queue() {
    a_fault_that_clears_in_seconds_never_fails_an_image(Mode::Embedded).await;
}

/// Tries after a failure wait 1 s, then 5 s, …: a fault that lasts two tries
/// (here, a file where the image's thumbnail directory must go) leaves the
/// image pending, then done, rather than failed.
async fn a_fault_that_clears_in_seconds_never_fails_an_image(mode: Mode) {
    let amqp_url = match mode {
        Mode::RabbitMq => Some(amqp_url()),
        Mode::Embedded => None,
    };
    // The delays a deployment has by default.
    let retry_delays = thumbq_contract::RetryDelays::default();
    let mut app = TestApp::spawn_with(Options { with_worker: false, amqp_url, retry_delays, ..Options::default() }).await;
    let id = app.upload_one("unlucky.jpg", images::jpeg(320, 240)).await;
    let blocker = app.data_dir.path().join("thumbs").join(id.to_string());
    std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    std::fs::write(&blocker, b"in the way").unwrap();
    let (metrics_sender, metrics) = tokio::sync::oneshot::channel();
    app.start_worker_with(move |context| drop(metrics_sender.send(context.metrics.clone()))).await;
    let metrics = tokio::time::timeout(Duration::from_secs(10), metrics).await.expect("the worker starts").expect("its metrics");
    // The fault lasts two tries: the first fails at once, the second a second later.
    wait_for(Duration::from_secs(30), "two failed tries", || async { (metrics.jobs_ended("retried") >= 2).then_some(()) }).await;
    let state = app.get(&format!("/api/images/{id}")).await.json::<serde_json::Value>().await.unwrap()["state"].clone();
    assert_eq!(state, "pending", "the job waits between its tries, and has not used them all up");
    std::fs::remove_file(&blocker).unwrap();
    let done = wait_for(Duration::from_secs(30), "the image to be done once the fault cleared", || async {
        let state = app.get(&format!("/api/images/{id}")).await.json::<serde_json::Value>().await.unwrap()["state"].clone();
        assert_ne!(state, "failed", "a fault of seconds failed the image");
        (state == "done").then_some(state)
    })
    .await;
    assert_eq!(done, "done");
    app.stop_worker().await;
}

/// Reads `stream` until what it sent since `seen` began holds `wanted`.
async fn read_until(stream: &mut reqwest::Response, seen: &mut String, wanted: &str) {
    let from = seen.len();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen[from..].contains(wanted) {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk()).await.unwrap_or_else(|_| panic!("no {wanted:?} within 20 s; the stream said: {seen}"));
        let chunk = chunk.unwrap().unwrap_or_else(|| panic!("the stream ended before {wanted:?}; it said: {seen}"));
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn open_pages_are_told_to_look_again_when_the_web_server_hears_events_again_after_losing_the_broker() {
    let proxy = BrokerProxy::start().await;
    let app = TestApp::spawn_with(Options { with_worker: false, web_amqp_url: Some(proxy.url.clone()), ..Options::default() }).await;
    let (followed, (deleted, key)) = (app.upload_one("followed.jpg", images::jpeg(64, 48)).await, app.upload_owned("deleted.jpg", images::jpeg(48, 64)).await);
    let mut stream = app.get(&format!("/events?ids={followed},{deleted}")).await;
    assert_eq!(stream.status(), StatusCode::OK);
    // An event through the broker and back: the web server is listening.
    assert_eq!(app.delete(&format!("/images/{deleted}"), Some(&key)).await.status(), StatusCode::NO_CONTENT);
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "\"deleted\"").await;

    // Events sent while it was away are gone: the page hears that it must look again.
    proxy.cut();
    proxy.restore();
    read_until(&mut stream, &mut seen, "event: resync").await;
}
