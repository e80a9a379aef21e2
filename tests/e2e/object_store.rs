//! thumbq on an S3-compatible object store: a real S3 server process
//! (s3s-fs, which keeps each bucket as a directory) on loopback, and web
//! servers and workers that share nothing but the store and the broker.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{StatusCode, header};
use thumbq_contract::ImageId;
use thumbq_store::{S3Location, StoreSettings};

use crate::harness::{Options, TestApp, read_events_until, wait_for};
use crate::images;
use crate::processes::{WebProcess, WorkerProcess};

const ACCESS_KEY: &str = "thumbq-test";
const SECRET_KEY: &str = "thumbq-test-secret";
const BUCKET: &str = "thumbq";

/// The s3s-fs binary `scripts/ensure-s3` installs; `THUMBQ_S3S_FS` names another.
fn s3s_fs() -> PathBuf {
    let path = std::env::var_os("THUMBQ_S3S_FS").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").unwrap_or_default();
        Path::new(&home).join(".cache/thumbq/tools/s3s-fs-0.14.1/bin/s3s-fs")
    });
    assert!(
        path.exists(),
        "The S3 tests need the s3s-fs server at {}.\nRun `scripts/ensure-s3` (scripts/test does), or set THUMBQ_S3S_FS to its path.",
        path.display()
    );
    path
}

/// An s3s-fs server on a loopback port, its buckets in a temporary directory; killed by pid when dropped.
pub struct S3Server {
    child: Option<Child>,
    ip: String,
    port: u16,
    pub root: tempfile::TempDir,
}

impl S3Server {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1").await
    }

    /// A server listening on `ip` (a simulated host's gateway, say) rather than loopback.
    pub async fn start_on(ip: &str) -> Self {
        let root = tempfile::tempdir().expect("a directory for the buckets");
        std::fs::create_dir(root.path().join(BUCKET)).expect("the bucket's directory");
        let port = std::net::TcpListener::bind((ip, 0)).and_then(|listener| listener.local_addr()).expect("a free port").port();
        let mut server = Self { child: None, ip: ip.to_owned(), port, root };
        server.resume().await;
        server
    }

    /// Starts the server (again) on its port and waits until it listens.
    pub async fn resume(&mut self) {
        let child = Command::new(s3s_fs())
            .args(["--host", &self.ip, "--port", &self.port.to_string(), "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs starts");
        self.child = Some(child);
        let address = format!("{}:{}", self.ip, self.port);
        wait_for(Duration::from_secs(20), "s3s-fs to listen", || {
            let listening = std::net::TcpStream::connect(&address).is_ok();
            async move { listening.then_some(()) }
        })
        .await;
    }

    /// SIGKILL: the store is gone at once, as in a crash.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", self.ip, self.port)
    }

    /// A store under a prefix of its own in the bucket.
    pub fn store(&self) -> StoreSettings {
        let location = S3Location { bucket: BUCKET.to_owned(), prefix: format!("test-{}", uuid::Uuid::now_v7().simple()) };
        StoreSettings::s3(location, &self.endpoint(), ACCESS_KEY, SECRET_KEY)
    }

    /// Every object below `store`'s prefix, as names relative to it.
    pub fn objects(&self, store: &StoreSettings) -> Vec<String> {
        let location = store.store.as_ref().expect("an S3 store");
        let top = self.root.path().join(&location.bucket).join(&location.prefix);
        let mut found = Vec::new();
        let mut stack = vec![top.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for path in entries.flatten().map(|entry| entry.path()) {
                if path.is_dir() {
                    stack.push(path);
                } else if !path.to_string_lossy().contains(".internal.") && !path.to_string_lossy().ends_with(".metadata.json") {
                    found.push(path.strip_prefix(&top).expect("below the prefix").display().to_string());
                }
            }
        }
        found.sort();
        found
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The environment that points a process at `store`.
pub fn store_environment(store: &StoreSettings) -> Vec<(&'static str, String)> {
    vec![
        ("THUMBQ_STORE", store.store.as_ref().expect("an S3 store").to_string()),
        ("THUMBQ_S3_ENDPOINT", store.s3_endpoint.clone().expect("an endpoint")),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
    ]
}

pub fn borrowed<'a>(environment: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    environment.iter().map(|(name, value)| (*name, value.as_str())).collect()
}

/// A PNG of noise, larger than one part of a multipart upload (5 MiB).
fn large_noisy_png() -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let image = image::RgbImage::from_fn(1600, 1200, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
    });
    images::encode(&image::DynamicImage::ImageRgb8(image), image::ImageFormat::Png)
}

pub async fn spawn_on_s3(s3: &S3Server) -> TestApp {
    // Web servers and workers on several machines share a PostgreSQL database.
    TestApp::spawn_with(Options { with_worker: false, store: s3.store(), postgres: true, ..Options::default() }).await
}

#[tokio::test]
async fn a_worker_that_shares_no_directory_with_the_web_server_makes_thumbnails_in_the_object_store() {
    let s3 = S3Server::start().await;
    let app = spawn_on_s3(&s3).await;
    // The worker's own data directory is empty and stays so: all it needs is the broker and the store.
    let worker_dir = tempfile::tempdir().unwrap();
    let environment = store_environment(&app.store);
    let mut worker_environment = borrowed(&environment);
    worker_environment.push(("THUMBQ_DATA_DIR", worker_dir.path().to_str().unwrap()));
    let _worker = WorkerProcess::start_with(&app, 2, &worker_environment);

    let large = large_noisy_png();
    assert!(large.len() > 5 * 1024 * 1024, "the large file goes up in parts: {} bytes", large.len());
    let (photo, owner) = app.upload_owned("photo.jpg", images::jpeg(1200, 900)).await;
    let (noise, _) = app.upload_owned("noise.png", large.clone()).await;
    for id in [photo, noise] {
        let status = app.wait_until_settled(id).await;
        assert_eq!(status["state"], "done", "{status}");
        let thumbnails = app.wait_for_thumbnails(id).await;
        assert_eq!(thumbnails[0].0.headers()[header::CONTENT_TYPE], "image/jpeg");
        assert_eq!(thumbnails[0].0.headers()["x-content-type-options"], "nosniff");
    }

    // The original comes back whole from the bucket, to its owner.
    let original = app.get_as(&format!("/originals/{noise}"), &owner).await;
    assert_eq!(original.status(), StatusCode::NOT_FOUND, "not the owner of the noise: the photo's key is another's");
    let mine = app.get_as(&format!("/originals/{photo}"), &owner).await;
    assert_eq!(mine.status(), StatusCode::OK);
    assert_eq!(mine.headers()[header::CONTENT_TYPE], "image/jpeg");

    let objects = s3.objects(&app.store);
    for id in [photo, noise] {
        for name in [format!("originals/{id}"), format!("thumbs/{id}/small.jpg"), format!("thumbs/{id}/large.jpg")] {
            assert!(objects.contains(&name), "{name} is in the bucket: {objects:?}");
        }
    }
    // State in the repository, bytes in the store: nothing but originals, thumbnails and the manifest.
    let other: Vec<_> =
        objects.iter().filter(|name| !name.starts_with("originals/") && !name.starts_with("thumbs/") && !name.ends_with("thumbq.json")).collect();
    assert!(other.is_empty(), "the bucket holds only bytes: {other:?}");
    let stored = std::fs::read(s3.root.path().join(BUCKET).join(&app.store.store.as_ref().unwrap().prefix).join(format!("originals/{noise}"))).unwrap();
    assert!(stored == large, "the multipart original is the upload, byte for byte");
    assert_eq!(
        app.stored_files().iter().filter(|path| !path.starts_with("spool") && !path.to_string_lossy().ends_with(".log")).count(),
        0,
        "the web server keeps nothing locally: {:?}",
        app.stored_files()
    );
    assert_eq!(std::fs::read_dir(worker_dir.path()).unwrap().count(), 0, "the worker wrote nothing to its own directory");
    for folder in ["originals", "thumbs"] {
        assert!(!app.data_dir.path().join(folder).exists(), "the web server makes no {folder}/ of its own");
    }
}

/// Follows `id` on `web` over SSE until it is done; returns what was heard.
async fn follow_until_done(client: reqwest::Client, url: String, id: ImageId) -> String {
    let stream = client.get(url).send().await.expect("the events stream opens");
    assert_eq!(stream.status(), StatusCode::OK);
    read_events_until(stream, &format!(r#""id":"{id}","state":"done""#), Duration::from_secs(60)).await
}

#[tokio::test]
async fn two_web_servers_share_the_store_and_the_broker_an_image_uploaded_through_one_is_followed_and_deleted_through_the_other() {
    let s3 = S3Server::start().await;
    let app = spawn_on_s3(&s3).await;
    let environment = store_environment(&app.store);
    // A second web server, a process with a data directory of its own.
    let other_dir = tempfile::tempdir().unwrap();
    let mut other_environment = borrowed(&environment);
    other_environment.push(("THUMBQ_DATA_DIR", other_dir.path().to_str().unwrap()));
    // Deleted for good at once, as the in-process server does in tests: no minute in the trash to wait out.
    other_environment.push(("THUMBQ_UNDO_DELETE_SECS", "0"));
    let other = WebProcess::start(&app, None, &other_environment).await;
    let client = crate::harness::http_client_builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    let (id, owner) = app.upload_owned("shared.jpg", images::jpeg(1000, 750)).await;
    // Pending on the other server too: the same store says so.
    let pending = client.head(other.url(&format!("/thumbs/{id}/small"))).send().await.unwrap();
    assert_eq!(pending.status(), StatusCode::NOT_FOUND);
    assert!(pending.headers().contains_key(header::RETRY_AFTER));

    let heard = tokio::spawn(follow_until_done(client.clone(), other.url(&format!("/events?ids={id}")), id));
    let _worker = WorkerProcess::start_with(&app, 1, &borrowed(&environment));
    let heard = heard.await.unwrap();
    assert!(heard.contains(r#""size":"small""#), "the other server passed on each size: {heard}");
    for size in ["small", "medium", "large"] {
        let polled = wait_for(Duration::from_secs(30), "the other server to serve the thumbnail", || {
            let request = client.get(other.url(&format!("/thumbs/{id}/{size}"))).send();
            async move { request.await.ok().filter(|response| response.status() == StatusCode::OK) }
        })
        .await;
        assert_eq!(polled.headers()[header::CONTENT_TYPE], "image/jpeg");
        let date = polled.headers()[header::LAST_MODIFIED].clone();
        let again = client.get(other.url(&format!("/thumbs/{id}/{size}"))).header(header::IF_MODIFIED_SINCE, date).send().await.unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "revalidation is cheap from the bucket too");
    }
    let listed = client.get(other.url("/")).bearer_auth(&owner).send().await.unwrap().text().await.unwrap();
    assert!(listed.contains(&id.to_string()), "the owner's list is in the store, so the other server shows it");

    let stranger =
        client.delete(other.url(&format!("/images/{id}"))).header("authorization", "Bearer AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").send().await.unwrap();
    assert_eq!(stranger.status(), StatusCode::FORBIDDEN, "no one deletes what is not theirs");
    let deleted = client.delete(other.url(&format!("/images/{id}"))).bearer_auth(&owner).send().await.unwrap();
    assert!(deleted.status().is_success(), "the owner deletes through the other server: {}", deleted.status());

    let gone = app.get(&format!("/thumbs/{id}/small")).await;
    assert_eq!(gone.status(), StatusCode::GONE);
    assert_eq!(gone.headers()["x-image-state"], "deleted");
    let naming: Vec<String> = s3.objects(&app.store).into_iter().filter(|name| name.contains(&id.to_string())).collect();
    assert!(naming.is_empty(), "no object names the deleted image: {naming:?}");
}

#[tokio::test]
async fn while_the_object_store_is_down_uploads_get_a_clear_503_and_jobs_wait_then_finish() {
    let mut s3 = S3Server::start().await;
    let mut app = spawn_on_s3(&s3).await;
    let mut ids = Vec::new();
    for number in 0..6 {
        ids.push(app.upload_one(&format!("before-{number}.jpg"), images::jpeg(900, 600)).await);
    }
    // The first job holds before it writes, until the store is down: it meets the outage mid-job.
    let (reached, held) = std::sync::mpsc::channel::<()>();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = std::sync::Mutex::new(Some(released));
    let (metrics_sender, metrics) = std::sync::mpsc::channel();
    app.start_worker_with(move |context| {
        let _ = metrics_sender.send(context.metrics.clone());
        context.before_writing = Some(std::sync::Arc::new(move |_, _| {
            if let Some(released) = released.lock().unwrap().take() {
                let _ = reached.send(());
                let _ = released.recv();
            }
        }));
    })
    .await;
    let metrics = tokio::task::spawn_blocking(move || metrics.recv_timeout(Duration::from_secs(30))).await.unwrap().expect("the worker starts");
    tokio::task::spawn_blocking(move || held.recv_timeout(Duration::from_secs(30))).await.unwrap().expect("a job reaches its first write");
    s3.stop();
    release.send(()).unwrap();

    let refused = app.upload_json(&[("during.jpg", images::jpeg(300, 200), "image/jpeg")]).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key(header::RETRY_AFTER));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("try again"), "{body}");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "a load balancer sends uploads elsewhere");
    let leftovers: Vec<_> = app.stored_files().into_iter().filter(|path| path.starts_with("incoming")).collect();
    assert!(leftovers.is_empty(), "a refused upload leaves nothing behind: {leftovers:?}");
    wait_for(Duration::from_secs(30), "the job to be postponed, not failed", || {
        let postponed = metrics.render().contains(r#"thumbq_worker_jobs_total{outcome="postponed"}"#);
        async move { postponed.then_some(()) }
    })
    .await;

    s3.resume().await;
    ids.push(app.upload_one("after.jpg", images::jpeg(900, 600)).await);
    for id in &ids {
        let status = app.wait_until_settled(*id).await;
        assert_eq!(status["state"], "done", "no job failed for the outage: {status}");
    }
    assert!(!metrics.render().contains(r#"outcome="failed""#), "{}", metrics.render());
    // Each job is acked just after its last file: the last one may be a moment behind.
    crate::harness::wait_for(Duration::from_secs(10), "nothing left pending on the queue", || async { (app.queue_depth().await == 0).then_some(()) }).await;
}

#[tokio::test]
async fn a_worker_started_while_the_object_store_is_down_waits_for_it() {
    let mut s3 = S3Server::start().await;
    let app = spawn_on_s3(&s3).await;
    let id = app.upload_one("waiting.jpg", images::jpeg(640, 480)).await;
    s3.stop();
    let environment = store_environment(&app.store);
    let mut worker = WorkerProcess::start_with(&app, 1, &borrowed(&environment));
    wait_for(Duration::from_secs(30), "the worker to say it waits for the store", || {
        let waiting = worker_logs(app.data_dir.path()).contains("waiting for it");
        async move { waiting.then_some(()) }
    })
    .await;
    assert!(worker.is_running(), "a store away is no reason to exit");
    s3.resume().await;
    assert_eq!(app.wait_until_settled(id).await["state"], "done");
}

/// What the worker processes of a test logged so far.
fn worker_logs(data_dir: &Path) -> String {
    let logs = std::fs::read_dir(data_dir).expect("the data directory").flatten().map(|entry| entry.path());
    logs.filter(|path| path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("worker-")))
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .collect()
}

#[tokio::test]
async fn pages_and_the_api_answer_from_the_database_alone_while_the_bucket_is_down() {
    let mut s3 = S3Server::start().await;
    let mut app = spawn_on_s3(&s3).await;
    app.start_worker().await;
    let (first, key) = app.upload_owned("first.jpg", images::jpeg(640, 480)).await;
    let second = app.upload_json(&[("second.png", images::transparent_png(300, 200), "image/png")]).await;
    assert_eq!(second.status(), StatusCode::ACCEPTED);
    let second: ImageId = second.json::<serde_json::Value>().await.unwrap()["images"][0]["id"].as_str().unwrap().parse().unwrap();
    for id in [first, second] {
        assert_eq!(app.wait_until_settled(id).await["state"], "done");
    }
    app.stop_worker().await;

    // With the bucket gone, every answer that needs no image bytes still comes: it asks the store nothing.
    s3.stop();
    let home = app.get_as("/", &key).await;
    assert_eq!(home.status(), StatusCode::OK);
    let home = home.text().await.unwrap();
    assert!(home.contains("first.jpg") && !home.contains("second.png"), "the owner's own uploads, from their records");
    let status = app.status(first).await;
    assert_eq!((status["state"].as_str(), status["name"].as_str()), (Some("done"), Some("first.jpg")), "{status}");
    assert!(status["webp"].is_object() && status["placeholder"].is_string(), "{status}");
    let page = app.get(&format!("/images/{first}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let batch = app.get(&format!("/images?ids={first},{second}")).await;
    assert_eq!(batch.status(), StatusCode::OK);
    assert!(batch.text().await.unwrap().contains("second.png"));

    // Deleted while the bucket is away: the record is the delete, and at once 410 everywhere,
    // whatever the bucket still holds.
    let deleted = app.delete(&format!("/images/{first}"), Some(&key)).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    s3.resume().await;
    assert!(s3.objects(&app.store).iter().any(|name| name.contains(&first.to_string())), "its files wait for the bucket");
    assert_eq!(app.get(&format!("/thumbs/{first}/small")).await.status(), StatusCode::GONE);
    assert_eq!(app.get(&format!("/api/images/{first}")).await.status(), StatusCode::GONE);
    // Asked again, the delete finishes what was left.
    let finished = app.delete(&format!("/images/{first}"), Some(&key)).await;
    assert_eq!(finished.status(), StatusCode::GONE, "the image is gone for its owner too");
    let left: Vec<String> = s3.objects(&app.store).into_iter().filter(|name| name.contains(&first.to_string())).collect();
    assert!(left.is_empty(), "nothing of the deleted image stays in the bucket: {left:?}");
}
