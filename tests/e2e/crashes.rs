//! The repository keeps its promise through crashes: a web server's disk lost
//! while RabbitMQ is away, a worker killed between writing a thumbnail and
//! recording it, the database going away mid-run. In each, every upload
//! answered 202 ends done, once.

use std::time::Duration;

use reqwest::StatusCode;
use thumbq_contract::{ImageId, StorageKey};
use thumbq_repo::testing::{TestDatabase, WritesHeld};

use crate::harness::{Options, TestApp, wait_for};
use crate::images;
use crate::object_store::{S3Server, borrowed, spawn_on_s3, store_environment};
use crate::processes::{BrokerProxy, WebProcess, WorkerProcess};

/// Uploads `count` different JPEGs to `url` as one owner (the first upload's key); returns the ids of those answered 202, and the key.
async fn upload_as_one_owner(url: &str, count: usize, between: impl Fn(usize)) -> (Vec<ImageId>, String) {
    let client = crate::harness::http_client();
    let (mut ids, mut key): (Vec<ImageId>, Option<String>) = (Vec::new(), None);
    for number in 0..count {
        between(number);
        let form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(images::jpeg(320 + number as u32, 240)).file_name(format!("crash-{number}.jpg")));
        let mut request = client.post(format!("{url}/images")).header("accept", "application/json").multipart(form);
        if let Some(key) = &key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("the web server answers");
        if response.status() != StatusCode::ACCEPTED {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "refused only while something is away");
            continue;
        }
        let answer: serde_json::Value = response.json().await.unwrap();
        ids.push(answer["images"][0]["id"].as_str().unwrap().parse().unwrap());
        key = key.or_else(|| answer["images"][0]["owner_key"].as_str().map(str::to_owned));
    }
    (ids, key.expect("at least one upload was accepted"))
}

/// Every one of `ids` ends done, and the owner of `key` has exactly those images: none lost, none twice.
async fn all_done_once(app: &TestApp, ids: &[ImageId], key: &str) {
    for id in ids {
        assert_eq!(app.wait_until_settled(*id).await["state"], "done", "image {id}");
    }
    let home = app.get_as("/", key).await.text().await.unwrap();
    assert!(home.contains(&format!("({})", ids.len())), "the owner has exactly the {} accepted images: {home}", ids.len());
}

#[tokio::test]
async fn a_web_servers_disk_lost_while_rabbitmq_is_away_loses_no_accepted_upload() {
    let s3 = S3Server::start().await;
    let app = spawn_on_s3(&s3).await;
    let environment = store_environment(&app.store);
    // The doomed web server: a data directory of its own, and a broker link the test cuts.
    let proxy = BrokerProxy::start().await;
    let disk = tempfile::tempdir().unwrap();
    let mut doomed_environment = borrowed(&environment);
    doomed_environment.push(("THUMBQ_DATA_DIR", disk.path().to_str().unwrap()));
    let doomed = WebProcess::start(&app, Some(&proxy.url), &doomed_environment).await;
    proxy.cut();

    let (ids, key) = upload_as_one_owner(&doomed.url(""), 6, |_| {}).await;
    assert_eq!(ids.len(), 6, "uploads are taken while RabbitMQ is away");
    doomed.kill();
    drop(disk);

    // The other web server's relay publishes the jobs from the shared outbox.
    let _worker = WorkerProcess::start_with(&app, 2, &borrowed(&environment));
    all_done_once(&app, &ids, &key).await;
    eprintln!("a web server's disk lost while RabbitMQ was away: {} uploads accepted, all done", ids.len());
}

#[tokio::test]
async fn a_worker_killed_after_writing_a_thumbnail_but_before_recording_it_loses_nothing() {
    let mut app = TestApp::spawn_without_worker().await;
    let (id, key) = app.upload_owned("killed.jpg", images::jpeg(2400, 1600)).await;
    // The worker's first record waits behind the test's lock: it has written the file, not recorded it.
    let held = WritesHeld::take(&app.database()).await;
    let doomed = WorkerProcess::start(&app, 1);
    let thumbs = app.data_dir.path().join("thumbs").join(id.to_string());
    wait_for(Duration::from_secs(30), "the worker to write its first thumbnail", || async {
        let written = std::fs::read_dir(&thumbs).ok()?.filter_map(Result::ok).any(|entry| entry.file_name().to_string_lossy().ends_with(".jpg"));
        written.then_some(())
    })
    .await;
    assert_eq!(app.status(id).await["state"], "pending", "the record does not know it yet");
    doomed.kill();
    held.release().await;

    // RabbitMQ gives the unacked job to the next worker, which writes it all again and records it.
    app.start_worker().await;
    all_done_once(&app, &[id], &key).await;
    assert!(
        app.data_dir.path().join(StorageKey::Thumbnail(id, thumbq_contract::ThumbSize::Large, thumbq_contract::ThumbFormat::Jpeg).relative_path()).exists()
    );
}

#[tokio::test]
async fn the_database_going_away_mid_run_loses_no_accepted_upload_and_makes_none_twice() {
    // The web server and the worker reach PostgreSQL through a proxy the test cuts, as a restart would:
    // every connection drops, and new ones are refused until it is back.
    let app = TestApp::spawn_with(Options { with_worker: false, postgres: true, ..Options::default() }).await;
    let database: &TestDatabase = app.postgres.as_ref().unwrap();
    let proxy = BrokerProxy::start_between("127.0.0.1", "127.0.0.1:5432".to_owned()).await;
    let through_proxy = database.url().replace("127.0.0.1:5432", &proxy.address);
    assert_ne!(through_proxy, database.url(), "the test database is on 127.0.0.1:5432");
    let environment = [("THUMBQ_DATABASE_URL", through_proxy.as_str())];
    let web = WebProcess::start(&app, None, &environment).await;
    let _worker = WorkerProcess::start_with(&app, 2, &environment);

    let (ids, key) = upload_as_one_owner(&web.url(""), 16, |number| match number {
        5 => proxy.cut(),
        10 => proxy.restore(),
        _ => {}
    })
    .await;
    assert!(ids.len() >= 10, "uploads before and after the outage are taken: {}", ids.len());
    all_done_once(&app, &ids, &key).await;
    eprintln!("the database went away mid-run: {} of 16 uploads accepted, all done, none twice", ids.len());
}
