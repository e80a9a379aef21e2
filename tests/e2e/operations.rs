//! What operators rely on: metrics that move, readiness that tells the truth.

use std::time::Duration;

use reqwest::StatusCode;

use crate::harness::{Options, TestApp, wait_for};
use crate::images;
use crate::processes::{BrokerProxy, WorkerProcess};

/// The value of the sample named `sample` (with its labels) in a Prometheus text page, 0 if absent.
fn sample(page: &str, sample: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(sample).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn the_web_and_worker_metrics_count_uploads_refusals_and_jobs() {
    let app = TestApp::spawn_without_worker().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let bind = format!("127.0.0.1:{port}");
    let _worker = WorkerProcess::start_with(&app, 1, &[("THUMBQ_METRICS_BIND", &bind)]);

    let id = app.upload_one("counted.jpg", images::jpeg(640, 480)).await;
    let refused = app.upload_json(&[("counted.txt", b"plain text".to_vec(), "text/plain")]).await;
    assert_eq!(refused.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(app.wait_until_settled(id).await["state"], "done");

    let web = app.get("/metrics").await;
    assert!(web.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let web = web.text().await.unwrap();
    assert_eq!(sample(&web, r#"thumbq_web_uploads_total{outcome="accepted"}"#), 1.0, "{web}");
    assert_eq!(sample(&web, r#"thumbq_web_upload_refusals_total{reason="not_an_image"}"#), 1.0, "{web}");
    assert_eq!(sample(&web, r#"thumbq_web_jobs_dispatched_total{route="published"}"#), 1.0, "{web}");
    assert_eq!(sample(&web, "thumbq_web_publish_confirm_seconds_count"), 1.0, "{web}");
    assert!(sample(&web, "thumbq_web_accepted_bytes_total") > 1000.0, "{web}");
    assert_eq!(sample(&web, "thumbq_web_queue_consumers"), 1.0, "one worker consumes: {web}");
    for step in ["stored", "queued"] {
        assert_eq!(sample(&web, &format!(r#"thumbq_web_upload_step_seconds_count{{step="{step}"}}"#)), 1.0, "{step}: {web}");
    }

    let client = crate::harness::http_client();
    // "done" is the three baseline sizes; the job ends, and is counted, once its WebPs are written too.
    let worker = wait_for(Duration::from_secs(10), "the worker to count the job", || async {
        let text = client.get(format!("http://{bind}/metrics")).send().await.ok()?.text().await.ok()?;
        text.contains(r#"thumbq_worker_jobs_total{outcome="done"}"#).then_some(text)
    })
    .await;
    assert_eq!(sample(&worker, r#"thumbq_worker_jobs_total{outcome="done"}"#), 1.0, "{worker}");
    for stage in ["decode", "resize", "encode", "webp", "write"] {
        assert_eq!(sample(&worker, &format!(r#"thumbq_worker_job_stage_seconds_count{{stage="{stage}"}}"#)), 1.0, "{stage}: {worker}");
    }
    assert_eq!(sample(&worker, "thumbq_worker_upload_to_ready_seconds_count"), 1.0, "{worker}");
}

#[tokio::test]
async fn readiness_stays_200_while_the_broker_link_is_cut_and_says_uploads_wait_in_the_outbox() {
    let proxy = BrokerProxy::start().await;
    let app = TestApp::spawn_with(Options { with_worker: false, web_amqp_url: Some(proxy.url.clone()), ..Options::default() }).await;
    let report = app.get("/readyz").await.text().await.unwrap();
    assert!(report.contains("broker: reachable") && report.contains("free space: "), "{report}");

    proxy.cut();
    let report = wait_for(Duration::from_secs(20), "/readyz to say the broker is unreachable", || async {
        let response = app.get("/readyz").await;
        assert_eq!(response.status(), StatusCode::OK, "this instance still takes uploads");
        let report = response.text().await.unwrap();
        report.contains("broker: unreachable").then_some(report)
    })
    .await;
    assert!(report.contains("outbox"), "{report}");

    proxy.restore();
    wait_for(Duration::from_secs(20), "/readyz to say the broker is reachable again", || async {
        app.get("/readyz").await.text().await.unwrap().contains("broker: reachable").then_some(())
    })
    .await;
}

#[tokio::test]
async fn every_answer_carries_a_request_id() {
    let app = TestApp::spawn_without_worker().await;
    let first = app.get("/healthz").await;
    let second = app.get("/healthz").await;
    let id = |response: &reqwest::Response| response.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(id(&first), id(&second));
    let given = app.client.get(app.url("/healthz")).header("x-request-id", "from-the-proxy").send().await.unwrap();
    assert_eq!(id(&given), "from-the-proxy", "an id given by a proxy is kept");
}

#[tokio::test]
async fn the_dashboard_shows_dead_lettered_jobs_and_replays_them_once_their_cause_is_fixed() {
    let mut app = TestApp::spawn_with(Options { with_worker: false, admin_token: Some("s3cret-admin-token-0123".into()), ..Options::default() }).await;
    let id = app.upload_one("blocked.jpg", images::jpeg(300, 200)).await;
    let broken = app.upload_one("broken.jpg", images::corrupt_jpeg()).await;
    let blocker = app.data_dir.path().join("thumbs").join(id.to_string());
    std::fs::write(&blocker, b"in the way").unwrap();
    app.start_worker().await;
    assert_eq!(app.wait_until_settled(broken).await["state"], "failed");
    let failed = app.wait_until_settled(id).await;
    let reason = failed["error"].as_str().unwrap().to_owned();
    let dead_queue = format!("{}.dead", app.queue);
    wait_for(Duration::from_secs(20), "the jobs to be dead-lettered", || async { (app.queue_depth_of(&dead_queue).await == 2).then_some(()) }).await;

    let anonymous = app.get("/admin").await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers().contains_key("www-authenticate"), "the browser is asked for the token");
    let wrong = app.client.get(app.url("/admin")).basic_auth("ops", Some("guess")).send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let page = app.client.get(app.url("/admin")).basic_auth("ops", Some("s3cret-admin-token-0123")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains(&reason.replace('\'', "&#39;").replace('"', "&#34;")) || page.contains("after 5 tries"), "{page}");
    assert!(page.contains(&format!("/images/{id}")) && page.contains(&format!("<code>{broken}</code>")), "full ids: {page}");
    assert!(page.contains("the image's fault") && page.contains("Discard these"), "a broken image is not offered for replay, but for discarding: {page}");
    assert!(page.contains(" UTC"), "failure times: {page}");
    assert!(page.contains("Reasons 1–2 of 2"), "a page of reasons: {page}");
    assert_eq!(app.queue_depth_of(&dead_queue).await, 2, "looking does not take jobs away");
    for _ in 0..25 {
        let page = app.client.get(app.url("/admin")).basic_auth("ops", Some("s3cret-admin-token-0123")).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
    }
    assert!(!dead_message_was_redelivered(&dead_queue).await, "looking never takes a message and puts it back (RabbitMQ 4 drops it after 20)");

    std::fs::remove_file(&blocker).unwrap();
    let replay =
        app.client.post(app.url("/admin/replay")).basic_auth("ops", Some("s3cret-admin-token-0123")).form(&[("reason", reason.as_str())]).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::SEE_OTHER);
    assert_eq!(replay.headers()["location"], "/admin", "the replay runs on its own; the dashboard shows how far it is");
    wait_for_dashboard(&app, "Replayed 1 job that failed with").await;

    assert_eq!(app.wait_until_settled(id).await["state"], "done");
    assert_eq!(app.queue_depth_of(&dead_queue).await, 1);
    let replay_all = app.client.post(app.url("/admin/replay")).basic_auth("ops", Some("s3cret-admin-token-0123")).form(&[("reason", "")]).send().await.unwrap();
    assert_eq!(replay_all.headers()["location"], "/admin");
    wait_for_dashboard(&app, "Replayed 0 jobs.").await;
    assert_eq!(app.status(broken).await["state"], "failed");

    // The broken image's job would only fail again: it can be discarded, and its image still says why.
    let page = app.client.get(app.url("/admin")).basic_auth("ops", Some("s3cret-admin-token-0123")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("Replay all that may succeed"), "nothing left that a replay may mend: {page}");
    let broken_reason = app.status(broken).await["error"].as_str().unwrap().to_owned();
    let discard = app
        .client
        .post(app.url("/admin/replay"))
        .basic_auth("ops", Some("s3cret-admin-token-0123"))
        .form(&[("reason", broken_reason.as_str()), ("discard", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(discard.headers()["location"], "/admin");
    wait_for_dashboard(&app, "Discarded 1 dead-lettered job that failed with").await;
    assert_eq!(app.queue_depth_of(&dead_queue).await, 0);
    let status = app.status(broken).await;
    assert_eq!((status["state"].as_str(), status["error"].as_str()), (Some("failed"), Some(broken_reason.as_str())));
}

#[tokio::test]
async fn without_an_admin_token_there_is_no_dashboard() {
    let app = TestApp::spawn_without_worker().await;
    assert_eq!(app.get("/admin").await.status(), StatusCode::NOT_FOUND);
    let replay = app.client.post(app.url("/admin/replay")).form(&[("reason", "")]).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::NOT_FOUND);
}

/// Waits until the dashboard says `words`.
async fn wait_for_dashboard(app: &TestApp, words: &str) {
    wait_for(Duration::from_secs(20), &format!("the dashboard to say {words:?}"), || async {
        let page = app.client.get(app.url("/admin")).basic_auth("ops", Some("s3cret-admin-token-0123")).send().await.unwrap().text().await.unwrap();
        page.contains(words).then_some(())
    })
    .await;
}

/// Whether the first message of `queue` was ever delivered before; puts it back.
async fn dead_message_was_redelivered(queue: &str) -> bool {
    use thumbq_broker::lapin::options::{BasicGetOptions, BasicRejectOptions};
    let connection = thumbq_broker::connect(&crate::harness::amqp_url(), "thumbq-tests").await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let message = channel.basic_get(queue.into(), BasicGetOptions::default()).await.unwrap().expect("a dead-lettered message");
    let redelivered = message.delivery.redelivered;
    message.delivery.reject(BasicRejectOptions { requeue: true }).await.unwrap();
    redelivered
}
