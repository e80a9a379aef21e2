//! A hostile or broken client gets a bounded, clear answer, and the server
//! stays up: slow headers, stalled uploads, endless part headers, bodies sent
//! to routes that take none, too many connections, uploads, files or bytes,
//! a spent daily quota, a full disk, and a web server killed mid-publish.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::harness::{Options, TestApp, wait_for};
use crate::images;
use crate::processes::{BrokerProxy, WebProcess};

fn host(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

/// Reads until the peer closes the connection (or resets it); returns what arrived.
async fn read_to_close(stream: &mut (impl AsyncReadExt + Unpin)) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return received,
            Ok(read) => received.extend_from_slice(&buffer[..read]),
        }
    }
}

/// The status code of an HTTP/1.1 answer's first line.
fn status_of(answer: &[u8]) -> Option<u16> {
    std::str::from_utf8(answer.get(9..12)?).ok()?.parse().ok()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map(|entries| entries.flatten().map(|entry| entry.path()).collect()).unwrap_or_default()
}

/// The start of a multipart upload of one file: headers and the part's header.
fn upload_head(host: &str, content_length: u64) -> String {
    format!(
        "POST /images HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nContent-Type: multipart/form-data; boundary=XYZ\r\nContent-Length: {content_length}\r\n\r\n\
         --XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
    )
}

#[tokio::test]
async fn connections_that_trickle_their_headers_are_closed_within_the_header_timeout() {
    let app = TestApp::spawn_without_worker_and(|settings| {
        settings.header_timeout_secs = 2;
        // All from one address here: let each connection meet the header timeout, not the per-client cap.
        settings.max_connections_per_client = 1000;
    })
    .await;
    let started = Instant::now();
    let mut connections = JoinSet::new();
    for n in 0..100 {
        let address = host(&app);
        connections.spawn(async move {
            let stream = TcpStream::connect(&address).await.expect("a connection");
            let (mut reader, mut writer) = stream.into_split();
            // One in four sends nothing at all, one in four the start of an HTTP/2 preface.
            let opening: &[u8] = match n % 4 {
                0 => b"",
                1 => b"PRI * HTTP/2.0\r\n",
                _ => b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ",
            };
            let silent = n % 4 == 0;
            let trickle = tokio::spawn(async move {
                let _ = writer.write_all(opening).await;
                if silent {
                    std::future::pending::<()>().await;
                }
                while writer.write_all(b"a").await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
            read_to_close(&mut reader).await;
            trickle.abort();
        });
    }
    // Meanwhile the server answers everyone else.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    let all_closed = tokio::time::timeout(Duration::from_secs(2 + 5), async { while connections.join_next().await.is_some() {} }).await;
    assert!(all_closed.is_ok(), "every trickling connection is closed within the header timeout plus 5 s");
    eprintln!("100 connections trickling headers: all closed after {:.1} s (header timeout 2 s)", started.elapsed().as_secs_f64());
}

#[tokio::test]
async fn an_upload_that_stops_sending_gets_408_and_leaves_no_part_behind() {
    let app = TestApp::spawn_without_worker_and(|settings| settings.upload_idle_timeout_secs = 2).await;
    let mut stream = TcpStream::connect(host(&app)).await.unwrap();
    stream.write_all(upload_head(&host(&app), 10_000_000).as_bytes()).await.unwrap();
    stream.write_all(&images::jpeg(1200, 900)[..20_000]).await.unwrap();
    let incoming = app.data_dir.path().join("incoming");
    wait_for(Duration::from_secs(10), "the upload's part on disk", || async {
        files_in(&incoming).iter().any(|path| path.extension().is_some_and(|e| e == "part")).then_some(())
    })
    .await;

    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(2 + 5), read_to_close(&mut stream)).await.expect("an answer within the idle timeout plus 5 s");
    assert_eq!(status_of(&answer), Some(408), "{}", String::from_utf8_lossy(&answer));
    assert!(String::from_utf8_lossy(&answer).contains("nothing arrived for 2 seconds"));
    assert!(!files_in(&incoming).iter().any(|path| path.extension().is_some_and(|e| e == "part")), "the part is removed");
    assert!(files_in(&app.data_dir.path().join("originals")).is_empty());
    eprintln!("stalled upload: 408 after {:.1} s of silence (idle timeout 2 s)", started.elapsed().as_secs_f64());
}

#[tokio::test]
async fn a_part_header_that_never_ends_is_cut_off_with_memory_bounded() {
    let app = TestApp::spawn_without_worker().await;
    let web = WebProcess::start(&app, None, &[]).await;
    let before_kib = web.resident_kib();
    let stream = TcpStream::connect(&web.address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST /images HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nContent-Type: multipart/form-data; boundary=XYZ\r\nContent-Length: {}\r\n\r\n\
         --XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\nX-Endless: ",
        200 * 1024 * 1024
    );
    let sender = tokio::spawn(async move {
        let mut sent = 0u64;
        if writer.write_all(head.as_bytes()).await.is_err() {
            return sent;
        }
        let chunk = vec![b'a'; 64 * 1024];
        while sent < 64 * 1024 * 1024 && writer.write_all(&chunk).await.is_ok() {
            sent += chunk.len() as u64;
        }
        sent
    });
    let answer = tokio::time::timeout(Duration::from_secs(30), read_to_close(&mut reader)).await.expect("the server ends it");
    let sent = sender.await.unwrap();
    let grown_kib = web.resident_kib().saturating_sub(before_kib);
    if let Some(status) = status_of(&answer) {
        assert_eq!(status, 413, "{}", String::from_utf8_lossy(&answer));
    }
    assert!(sent < 64 * 1024 * 1024, "the server stopped reading long before 64 MiB of header ({sent} bytes sent)");
    assert!(grown_kib < 48 * 1024, "the web server grew by {grown_kib} KiB");
    assert_eq!(crate::harness::http_client().get(web.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
    eprintln!("endless part header: answered {:?} after {} KiB sent; web RSS grew {} KiB", status_of(&answer), sent / 1024, grown_kib);
}

#[tokio::test]
async fn the_dashboard_checks_credentials_before_it_reads_a_body_and_takes_small_bodies_only() {
    let app = TestApp::spawn_with(Options { with_worker: false, admin_token: Some("an-admin-token-of-some-length".into()), ..Options::default() }).await;
    for path in ["/admin/replay", "/admin/takedown"] {
        let mut stream = TcpStream::connect(host(&app)).await.unwrap();
        let head =
            format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n", 200 * 1024 * 1024);
        stream.write_all(head.as_bytes()).await.unwrap();
        // Not a byte of the 200 MiB: the answer must come without it.
        let answer = tokio::time::timeout(Duration::from_secs(5), read_to_close(&mut stream)).await.expect("an answer before any body");
        assert_eq!(status_of(&answer), Some(401), "{path}: {}", String::from_utf8_lossy(&answer));
    }
    let big = "image=".to_owned() + &"x".repeat(1024 * 1024);
    let response = app
        .client
        .post(app.url("/admin/takedown"))
        .bearer_auth("an-admin-token-of-some-length")
        .body(big)
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "forms are small");
    let response = app.client.delete(app.url(&format!("/images/{}", thumbq_contract::ImageId::new()))).body(vec![0u8; 1024 * 1024]).send().await.unwrap();
    assert!(response.status().is_client_error());
}

#[tokio::test]
async fn a_client_over_its_upload_rate_gets_429_with_retry_after_and_others_do_not() {
    let app = TestApp::spawn_without_worker_and(|settings| {
        settings.upload_burst = 3;
        settings.uploads_per_minute = 1;
    })
    .await;
    for n in 0..3 {
        let response = app.upload_json(&[(&format!("{n}.jpg"), images::jpeg(64, 64), "image/jpeg")]).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    let refused = app.upload_json(&[("4.jpg", images::jpeg(64, 64), "image/jpeg")]).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("Too many uploads"), "{body}");

    // Another address on this machine has a bucket of its own.
    let neighbour = crate::harness::http_client_builder().local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(images::jpeg(64, 64)).file_name("n.jpg"));
    let response = neighbour.post(app.url("/images")).header("accept", "application/json").multipart(form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

/// A JPEG padded after its end to `bytes`: a valid upload of that size.
fn jpeg_of(bytes: usize) -> Vec<u8> {
    let mut jpeg = images::jpeg(64, 64);
    jpeg.resize(bytes, 0);
    jpeg
}

/// Posts one file as an API client from `client` (its own address, its own owner unless `key`).
async fn post_one(app: &TestApp, client: &reqwest::Client, key: Option<&str>, bytes: Vec<u8>) -> reqwest::Response {
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes).file_name("p.jpg"));
    let mut request = client.post(app.url("/images")).header("accept", "application/json").multipart(form);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

fn from_address(address: &str) -> reqwest::Client {
    crate::harness::http_client_builder().local_address(address.parse::<std::net::IpAddr>().unwrap()).build().unwrap()
}

#[tokio::test]
async fn each_file_of_a_request_is_charged_to_the_clients_rate() {
    let app = TestApp::spawn_without_worker_and(|settings| {
        settings.upload_burst = 3;
        settings.uploads_per_minute = 1;
    })
    .await;
    let five: Vec<_> = (0..5).map(|n| (format!("{n}.jpg"), images::jpeg(64, 64 + n), "image/jpeg")).collect();
    let five: Vec<_> = five.iter().map(|(name, bytes, kind)| (name.as_str(), bytes.clone(), *kind)).collect();
    let refused = app.upload_json(&five).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "five files in one request, three allowed");
    assert!(refused.headers().contains_key("retry-after"));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("Too many uploads"), "{body}");
    assert!(app.stored_files().iter().all(|path| !path.starts_with("originals")), "nothing of the request was kept: {:?}", app.stored_files());
    let neighbour = post_one(&app, &from_address("127.0.0.2"), None, images::jpeg(64, 64)).await;
    assert_eq!(neighbour.status(), StatusCode::ACCEPTED, "another address has its own bucket");
}

#[tokio::test]
async fn bytes_over_the_clients_rate_are_refused_as_they_arrive() {
    let app = TestApp::spawn_without_worker_and(|settings| {
        settings.upload_mib_burst = 2;
        settings.upload_mib_per_minute = 1;
    })
    .await;
    // Three files of 1.5 MiB in one request, sent as fast as the server reads.
    let boundary = "thumbq-rate-boundary";
    let mut body = Vec::new();
    for n in 0..3 {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{n}.jpg\"\r\n\r\n").as_bytes());
        body.extend(jpeg_of(1536 * 1024 + n));
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").as_bytes());
    let head = format!(
        "POST /images HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let stream = TcpStream::connect(host(&app)).await.unwrap();
    let (mut reading, mut writing) = stream.into_split();
    let sender = tokio::spawn(async move {
        // The server stops reading once refused: the rest may not go.
        let _ = writing.write_all(head.as_bytes()).await;
        let _ = writing.write_all(&body).await;
        writing
    });
    let answer = tokio::time::timeout(Duration::from_secs(10), read_to_close(&mut reading)).await.expect("an answer");
    sender.abort();
    let text = String::from_utf8_lossy(&answer);
    assert_eq!(status_of(&answer), Some(429), "{text}");
    assert!(text.to_ascii_lowercase().contains("retry-after:"), "{text}");
    assert!(text.contains("more than 1 MB a minute"), "{text}");
    assert!(app.stored_files().iter().all(|path| !path.starts_with("originals")), "nothing of the request was kept: {:?}", app.stored_files());
}

#[tokio::test]
async fn an_owner_past_its_daily_quota_is_refused_until_the_days_first_upload_is_a_day_old() {
    let app = TestApp::spawn_without_worker_and(|settings| settings.owner_mib_per_day = 2).await;
    let (_, key) = app.upload_owned("first.jpg", jpeg_of(1200 * 1024)).await;
    let client = crate::harness::http_client();
    let refused = post_one(&app, &client, Some(&key), jpeg_of(1200 * 1024)).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((86_000..=86_400).contains(&wait), "the first upload is a day old in a day: Retry-After {wait}");
    let body: serde_json::Value = refused.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("This upload would take you past 2 MB in 24 hours") && error.contains("about 24 hours"), "{error}");

    // What still fits is taken; a retry of it gets its first answer, though twice would not fit.
    let fits = jpeg_of(500 * 1024);
    let send = || {
        let form =
            reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(fits.clone()).file_name("fits.jpg").mime_str("image/jpeg").unwrap());
        let request = client.post(app.url("/images")).header("accept", "application/json").header("idempotency-key", "fits-1").bearer_auth(&key);
        request.multipart(form).send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED, "what still fits is taken");
    let again = send().await.unwrap();
    assert_eq!(again.status(), StatusCode::ACCEPTED, "a retry is answered as the first was");
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(post_one(&app, &client, None, jpeg_of(1200 * 1024)).await.status(), StatusCode::ACCEPTED, "another owner has a quota of its own");
}

#[tokio::test]
async fn an_address_past_its_daily_quota_is_refused_whoever_uploads_and_deleting_gives_nothing_back() {
    let app = TestApp::spawn_without_worker_and(|settings| settings.client_mib_per_day = 2).await;
    let (id, key) = app.upload_owned("first.jpg", jpeg_of(1200 * 1024)).await;
    assert_eq!(app.delete(&format!("/images/{id}"), Some(&key)).await.status(), StatusCode::NO_CONTENT);
    let stranger = crate::harness::http_client();
    let refused = post_one(&app, &stranger, None, jpeg_of(1200 * 1024)).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "a new owner from the same address, after the first was deleted");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("would take your address past 2 MB in 24 hours"), "{body}");
    assert_eq!(post_one(&app, &from_address("127.0.0.2"), None, jpeg_of(1200 * 1024)).await.status(), StatusCode::ACCEPTED, "another address");
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes_and_the_server_stays_up() {
    let app = TestApp::spawn_without_worker_and(|settings| {
        settings.max_connections = 4;
        settings.header_timeout_secs = 60;
    })
    .await;
    let mut idle = unfinished_requests(&app, 4).await;
    // The listener takes connections in the order they came: these four hold the slots.
    let client = crate::harness::http_client_builder().timeout(Duration::from_secs(1)).build().unwrap();
    assert!(client.get(app.url("/healthz")).send().await.is_err(), "a fifth connection waits");

    idle.pop();
    let answered = wait_for(Duration::from_secs(10), "a new connection to be served", || async {
        client.get(app.url("/healthz")).send().await.ok().map(|response| response.status())
    })
    .await;
    assert_eq!(answered, StatusCode::OK);
}

#[tokio::test]
async fn shutdown_waits_for_requests_in_flight_at_most_its_timeout() {
    let app = TestApp::spawn_without_worker().await;
    let web = WebProcess::start(&app, None, &[("THUMBQ_SHUTDOWN_TIMEOUT_SECS", "2"), ("THUMBQ_UPLOAD_IDLE_TIMEOUT_SECS", "600")]).await;
    let mut stalled = TcpStream::connect(&web.address).await.unwrap();
    stalled.write_all(upload_head(&web.address, 10_000_000).as_bytes()).await.unwrap();
    stalled.write_all(&images::jpeg(800, 600)[..10_000]).await.unwrap();
    let incoming = app.data_dir.path().join("incoming");
    wait_for(Duration::from_secs(10), "the upload's part on disk", || async { (!files_in(&incoming).is_empty()).then_some(()) }).await;

    let took = web.terminate(Duration::from_secs(2 + 5)).await;

    assert!(files_in(&incoming).iter().all(|path| path.extension().is_none_or(|e| e != "part")), "the cut upload left no part");
    assert!(files_in(&app.data_dir.path().join("originals")).is_empty(), "and nothing was accepted");
    eprintln!("shutdown with a stalled upload in flight: exited after {:.1} s (timeout 2 s)", took.as_secs_f64());
}

#[tokio::test]
async fn a_web_server_killed_between_its_commit_and_the_publish_leaves_a_job_another_one_relays() {
    let mut app = TestApp::spawn_without_worker().await;
    let proxy = BrokerProxy::start().await;
    // Its lease on the job lasts the publish timeout and 5 s more: then any relay may send it.
    let web = WebProcess::start(&app, Some(&proxy.url), &[("THUMBQ_PUBLISH_TIMEOUT_MS", "5000")]).await;
    wait_for(Duration::from_secs(20), "the killed-to-be server to reach RabbitMQ", || async {
        crate::harness::http_client().get(web.url("/readyz")).send().await.ok()?.text().await.ok()?.contains("broker: reachable").then_some(())
    })
    .await;
    proxy.pause();
    let upload = {
        let url = web.url("/images");
        tokio::spawn(async move {
            let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(images::jpeg(640, 480)).file_name("k.jpg"));
            crate::harness::http_client().post(url).header("accept", "application/json").multipart(form).send().await.map(|response| response.status())
        })
    };
    // The record and its job in the outbox are committed (the image has a status), and the publish, after the answer, waits for a confirm that does not come.
    let originals = app.data_dir.path().join("originals");
    let id: thumbq_contract::ImageId = wait_for(Duration::from_secs(20), "the upload's commit", || async {
        let id: thumbq_contract::ImageId = files_in(&originals).first().and_then(|path| path.file_name()?.to_str()?.parse().ok())?;
        (app.get(&format!("/api/images/{id}")).await.status() == StatusCode::OK).then_some(id)
    })
    .await;

    let answered = tokio::time::timeout(Duration::from_secs(20), upload).await.expect("the answer does not wait for RabbitMQ");
    assert_eq!(answered.unwrap().unwrap(), StatusCode::ACCEPTED, "accepted once committed: the outbox holds the job");
    web.kill();

    // The other web server's relay takes the job once the dead server's lease runs out.
    app.start_worker().await;
    let thumbnails = app.wait_for_thumbnails(id).await;
    assert_eq!(thumbnails.len(), 3);
    eprintln!("web server SIGKILLed between its commit and its publish: another relayed the job and image {id} got its thumbnails");
}

/// A tmpfs of `size_mib` mounted on a fresh directory, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size_mib: u32) -> Self {
        let uid = std::process::Command::new("id").arg("-u").output().expect("id runs");
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "the full-disk test mounts a small tmpfs, which needs root: run `scripts/test` as root (CI does), or `sudo -E cargo test --test e2e full_disk`"
        );
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"]).arg(dir.path()).status().unwrap();
        assert!(mounted.success(), "mount -t tmpfs failed");
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system until `leave` bytes are free; returns the filler's path.
    fn fill_leaving(&self, leave: u64) -> PathBuf {
        let filler = self.path().join(format!("filler-{}", uuid::Uuid::now_v7().simple()));
        let free = rustix_free(self.path());
        std::fs::write(&filler, vec![0u8; free.saturating_sub(leave) as usize]).unwrap();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

fn rustix_free(path: &Path) -> u64 {
    thumbq_web::disk::free_bytes(path).unwrap()
}

#[tokio::test]
async fn on_a_full_disk_uploads_get_507_nothing_is_kept_and_a_worker_waits_instead_of_failing() {
    let tmpfs = Tmpfs::mount(48);

    // Below the watermark: refused before a byte is written.
    let guarded = TestApp::spawn_with(Options {
        with_worker: false,
        data_dir_in: Some(tmpfs.path().to_owned()),
        web: |settings| settings.min_free_bytes = 8 * 1024 * 1024,
        ..Options::default()
    })
    .await;
    let filler = tmpfs.fill_leaving(6 * 1024 * 1024);
    let refused = guarded.upload_json(&[("full.jpg", images::jpeg(64, 64), "image/jpeg")]).await;
    assert_eq!(refused.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert!(refused.text().await.unwrap().contains("no room for uploads"));
    let readiness = guarded.get("/readyz").await;
    assert_eq!(readiness.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(readiness.text().await.unwrap().contains("below the watermark"));
    assert!(guarded.get("/metrics").await.text().await.unwrap().contains("thumbq_web_data_dir_free_bytes"));
    std::fs::remove_file(&filler).unwrap();

    // Out of space in the middle of a file: the same answer, and no part left behind.
    let mut app = TestApp::spawn_with(Options { with_worker: false, data_dir_in: Some(tmpfs.path().to_owned()), ..Options::default() }).await;
    let (id, _) = app.upload_owned("fits.jpg", images::jpeg(640, 480)).await;
    let filler = tmpfs.fill_leaving(512 * 1024);
    let mut big = images::jpeg(64, 64);
    big.extend(std::iter::repeat_n(0u8, 3 * 1024 * 1024));
    let response = app.upload_json(&[("big.jpg", big, "image/jpeg")]).await;
    assert_eq!(response.status(), StatusCode::INSUFFICIENT_STORAGE, "{:?}", response.text().await);
    assert!(files_in(&app.data_dir.path().join("incoming")).iter().all(|path| path.extension().is_none_or(|e| e != "part")));

    // A worker out of space waits and tries again: the image stays pending, never failed.
    let rest = tmpfs.fill_leaving(0);
    let metrics = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = std::sync::Arc::clone(&metrics);
    app.start_worker_with(move |context| *seen.lock().unwrap() = Some(context.metrics.clone())).await;
    wait_for(Duration::from_secs(30), "the worker to find the disk full and keep the job", || async {
        let rendered = metrics.lock().unwrap().as_ref().map(|metrics: &thumbq_worker::metrics::WorkerMetrics| metrics.render()).unwrap_or_default();
        rendered.contains(r#"thumbq_worker_jobs_total{outcome="postponed"}"#).then_some(())
    })
    .await;
    let status = app.status(id).await;
    assert_eq!(status["state"], "pending", "{status}");
    std::fs::remove_file(&rest).unwrap();
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(app.wait_until_settled(id).await["state"], "done");
    app.stop_worker().await;
}

#[tokio::test]
async fn an_upload_that_trickles_a_byte_at_a_time_gets_408_too() {
    let app = TestApp::spawn_without_worker_and(|settings| settings.upload_idle_timeout_secs = 2).await;
    let stream = TcpStream::connect(host(&app)).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(upload_head(&host(&app), 10_000_000).as_bytes()).await.unwrap();
    let jpeg = images::jpeg(1200, 900);
    writer.write_all(&jpeg[..20_000]).await.unwrap();
    let trickle = tokio::spawn(async move {
        // Never silent for the idle timeout, and never near enough to finish.
        for byte in &jpeg[20_000..] {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let answer = tokio::time::timeout(Duration::from_secs(2 * 2 + 5), read_to_close(&mut reader)).await.expect("an answer within two spans plus 5 s");
    trickle.abort();
    assert_eq!(status_of(&answer), Some(408), "{}", String::from_utf8_lossy(&answer));
    assert!(String::from_utf8_lossy(&answer).contains("too slow"));
    assert!(!files_in(&app.data_dir.path().join("incoming")).iter().any(|path| path.extension().is_some_and(|e| e == "part")));
}

#[tokio::test]
async fn one_address_cannot_hold_every_connection() {
    let app = TestApp::spawn_without_worker_and(|settings| {
        settings.max_connections_per_client = 3;
        settings.header_timeout_secs = 60;
    })
    .await;
    let mut held = unfinished_requests(&app, 3).await;
    // Taken in the order they came: these three are counted before the next.
    let mut one_more = TcpStream::connect(host(&app)).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), read_to_close(&mut one_more)).await.expect("an answer at once");
    assert_eq!(status_of(&answer), Some(503), "{}", String::from_utf8_lossy(&answer));
    assert!(String::from_utf8_lossy(&answer).contains("Retry-After: 1"));

    let neighbour = crate::harness::http_client_builder().local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    assert_eq!(neighbour.get(app.url("/healthz")).send().await.unwrap().status(), StatusCode::OK, "another address is served");
    held.pop();
    let again = wait_for(Duration::from_secs(10), "a slot of its own again", || async {
        app.client.get(app.url("/healthz")).send().await.ok().map(|response| response.status())
    })
    .await;
    assert_eq!(again, StatusCode::OK);
}

/// `count` connections to `app`, one after another, each holding a request whose head never ends.
async fn unfinished_requests(app: &TestApp, count: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = TcpStream::connect(host(app)).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        held.push(stream);
    }
    held
}

/// A connection to `app` from `local` (an address of 127/8, which Linux gives every loopback socket).
async fn connect_from(app: &TestApp, local: [u8; 4]) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::from((local, 0))).unwrap();
    socket.connect(host(app).parse().unwrap()).await.unwrap()
}

/// Reads the first line of an answer's head; `None` when none came within `within`.
async fn first_status(stream: &mut TcpStream, within: Duration) -> Option<u16> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 512];
    let read = tokio::time::timeout(within, async {
        while head.len() < 12 {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => head.extend_from_slice(&buffer[..read]),
            }
        }
    });
    read.await.ok()?;
    status_of(&head)
}

/// Eight addresses ask for as many connections as the whole server has: the
/// probes, on their own address, and a new visitor still get answers at once.
async fn a_new_visitor_and_the_probes_are_answered_while(app: &TestApp) {
    let started = Instant::now();
    let ops = app.ops_address.as_ref().expect("the test set --ops-bind");
    let ready = app.client.get(format!("{ops}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK, "{}", ready.text().await.unwrap());
    let visitor = crate::harness::http_client_builder().local_address("127.0.0.10".parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    assert_eq!(visitor.get(app.url("/")).send().await.unwrap().status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(2), "the probe and the page took {:?}", started.elapsed());
}

#[tokio::test]
async fn eight_addresses_cannot_take_the_server_with_event_streams_or_slow_uploads() {
    const ADDRESSES: u8 = 8;
    // As many as the server has connections, and as one address may hold.
    const PER_ADDRESS: usize = 64;
    let app = TestApp::spawn_without_worker_and(|settings| {
        settings.ops_bind = Some("127.0.0.1:0".parse().unwrap());
        settings.event_stream_secs = 120;
    })
    .await;
    let id = app.upload_one("followed.jpg", images::jpeg(64, 48)).await;

    // 512 live-update streams, 64 from each of eight addresses: each address gets its share, the rest are refused and closed.
    let mut streams = Vec::new();
    for address in 2..2 + ADDRESSES {
        let mut statuses = std::collections::BTreeMap::new();
        for _ in 0..PER_ADDRESS {
            let mut stream = connect_from(&app, [127, 0, 0, address]).await;
            stream.write_all(format!("GET /events?ids={id} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n").as_bytes()).await.unwrap();
            let status = first_status(&mut stream, Duration::from_secs(5)).await;
            *statuses.entry(status).or_insert(0) += 1;
            if status == Some(200) {
                streams.push(stream);
            }
        }
        assert_eq!(statuses, [(Some(200), 8), (Some(503), PER_ADDRESS - 8)].into(), "from 127.0.0.{address}");
    }
    a_new_visitor_and_the_probes_are_answered_while(&app).await;

    // 512 uploads that send a little and hold on: each address gets its share of uploads in progress.
    let mut uploads = Vec::new();
    for address in 2..2 + ADDRESSES {
        let mut sent = JoinSet::new();
        for _ in 0..PER_ADDRESS {
            let mut stream = connect_from(&app, [127, 0, 0, address]).await;
            stream.write_all(upload_head("x", 1_000_000).as_bytes()).await.unwrap();
            stream.write_all(&[0xFF, 0xD8, 0xFF]).await.unwrap();
            // Held uploads say nothing yet; a refused one hears 429 at once.
            sent.spawn(async move { (first_status(&mut stream, Duration::from_secs(1)).await, stream) });
        }
        let mut refused = 0;
        while let Some(answered) = sent.join_next().await {
            match answered.unwrap() {
                (Some(429), _) => refused += 1,
                (None, stream) => uploads.push(stream),
                (other, _) => panic!("an upload from 127.0.0.{address} got {other:?}"),
            }
        }
        assert_eq!(refused, PER_ADDRESS - 16, "from 127.0.0.{address}");
    }
    a_new_visitor_and_the_probes_are_answered_while(&app).await;

    // Ids that name no image get no stream at all.
    let unknown = thumbq_contract::ImageId::new();
    assert_eq!(app.get(&format!("/events?ids={unknown}")).await.status(), StatusCode::NOT_FOUND);
    drop((streams, uploads));
}

#[tokio::test]
async fn an_event_stream_ends_after_its_lifetime_and_gives_its_place_back() {
    let app = TestApp::spawn_without_worker_and(|settings| {
        settings.event_stream_secs = 1;
        settings.max_event_streams_per_client = 1;
    })
    .await;
    let id = app.upload_one("followed.jpg", images::jpeg(64, 48)).await;
    let started = Instant::now();
    let mut stream = TcpStream::connect(host(&app)).await.unwrap();
    stream.write_all(format!("GET /events?ids={id} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n").as_bytes()).await.unwrap();
    assert_eq!(first_status(&mut stream, Duration::from_secs(5)).await, Some(200));
    let second = app.get(&format!("/events?ids={id}")).await;
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE, "one stream per address here");
    assert!(second.headers().contains_key("retry-after"));
    // The stream's body ends (chunked: a last chunk of size 0) after its second.
    let mut rest = Vec::new();
    let mut buffer = [0u8; 1024];
    while !rest.ends_with(b"0\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer)).await.expect("the stream ends within its lifetime").unwrap();
        assert!(read > 0, "the stream ended without its last chunk");
        rest.extend_from_slice(&buffer[..read]);
    }
    assert!(started.elapsed() >= Duration::from_secs(1));
    wait_for(Duration::from_secs(5), "the stream's place back", || async {
        let response = app.get(&format!("/events?ids={id}")).await;
        (response.status() == StatusCode::OK).then_some(())
    })
    .await;
}
