//! The main path: an upload becomes three thumbnails the browser can fetch.

use reqwest::{StatusCode, header};

use crate::harness::{Mode, TestApp};
use crate::images::{self, decode, fixture, mean_difference};

#[tokio::test]
async fn a_jpeg_upload_is_accepted_and_gets_three_thumbnails_that_fit_their_boxes() {
    a_jpeg_upload_gets_three_thumbnails(Mode::RabbitMq).await;
}

#[tokio::test]
async fn the_embedded_queue_takes_a_jpeg_upload_to_three_thumbnails_without_rabbitmq() {
    a_jpeg_upload_gets_three_thumbnails(Mode::Embedded).await;
}

async fn a_jpeg_upload_gets_three_thumbnails(mode: Mode) {
    let app = TestApp::spawn_in(mode).await;

    let response = app.upload_json(&[("photo.jpg", images::jpeg(1600, 1200), "image/jpeg")]).await;

    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let body: serde_json::Value = response.json().await.unwrap();
    let image = &body["images"][0];
    let id = image["id"].as_str().unwrap();
    assert_eq!(location, format!("/images/{id}"));
    assert_eq!(image["page"], format!("/images/{id}"));
    assert_eq!(image["status"], format!("/api/images/{id}"));
    assert_eq!(image["thumbnails"]["medium"], format!("/thumbs/{id}/medium"));

    let thumbnails = app.wait_for_thumbnails(id.parse().unwrap()).await;
    let dimensions: Vec<_> = thumbnails.iter().map(|(_, bytes)| (decode(bytes).width(), decode(bytes).height())).collect();
    assert_eq!(dimensions, [(200, 150), (600, 450), (1200, 900)]);
    for (head, _) in &thumbnails {
        assert_eq!(head.status(), StatusCode::OK, "HEAD answers like GET");
        assert_eq!(head.headers()[header::CONTENT_TYPE], "image/jpeg");
        assert_eq!(head.headers()["x-content-type-options"], "nosniff");
        assert_eq!(head.headers()[header::CACHE_CONTROL], "public, max-age=3600", "cached, but not past a deletion by much");
        assert!(head.headers().contains_key(header::LAST_MODIFIED), "so that a browser can revalidate");
    }
    let status = app.status(id.parse().unwrap()).await;
    assert_eq!(status["state"], "done");
    assert_eq!(status["error"], serde_json::Value::Null);

    // The WebPs come right after the baseline files; then the API and the page list them.
    let status = crate::harness::wait_for(std::time::Duration::from_secs(30), "the WebPs to be listed", || async {
        let status = app.status(id.parse().unwrap()).await;
        status["webp"].is_object().then_some(status)
    })
    .await;
    for ((size, url), (_, jpeg)) in ["small", "medium", "large"].iter().map(|size| (size, status["webp"][size].as_str().unwrap().to_owned())).zip(&thumbnails) {
        assert_eq!(url, format!("/thumbs/{id}/{size}.webp"));
        let response = app.get(&url).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "image/webp");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        let webp = response.bytes().await.unwrap();
        let (ours, baseline) = (decode(&webp), decode(jpeg));
        assert_eq!((ours.width(), ours.height()), (baseline.width(), baseline.height()), "{size}");
        assert!(mean_difference(&ours, &baseline) < 4.0, "{size}: the WebP looks like the JPEG");
        // A page's script that asks for the baseline file learns of the WebP too.
        let baseline = app.head(&format!("/thumbs/{id}/{size}")).await;
        assert_eq!(baseline.headers()[header::LINK], format!(r#"<{url}>; rel="alternate"; type="image/webp""#).as_str());
    }
    let html = app.get(&format!("/images/{id}")).await.text().await.unwrap();
    assert!(html.contains(&format!(r#"<picture><source srcset="/thumbs/{id}/large.webp" type="image/webp"><img src="/thumbs/{id}/large""#)), "{html}");
}

#[tokio::test]
async fn a_browser_form_post_is_redirected_to_the_image_page_which_shows_placeholders_then_thumbnails() {
    let mut app = TestApp::spawn_without_worker().await;

    let response = app.upload_form(&[("holiday.png", images::transparent_png(900, 300), "image/png")]).await;

    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let page = response.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let id = page.strip_prefix("/images/").expect("a redirect to the image page").to_owned();
    let response = app.get(&page).await;
    let policy = response.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(policy.starts_with("default-src 'none'") && policy.contains("script-src 'self'"), "{policy}");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let html = response.text().await.unwrap();
    assert_eq!(html.matches("<span class=\"placeholder\" role=\"status\">Making the").count(), 3, "three placeholders:\n{html}");
    assert!(html.contains(&format!("data-thumb=\"/thumbs/{id}/large\"")));
    assert!(html.contains("/static/main.js"));

    app.start_worker().await;
    let thumbnails = app.wait_for_thumbnails(id.parse().unwrap()).await;

    for (head, bytes) in &thumbnails {
        assert_eq!(head.headers()[header::CONTENT_TYPE], "image/png", "transparency needs PNG");
        assert_eq!(decode(bytes).to_rgba8().get_pixel(0, 0).0[3], 0, "the transparent half stays transparent");
    }
    let html = app.get(&page).await.text().await.unwrap();
    assert_eq!(html.matches("data-state=\"ready\"").count(), 3, "three thumbnails:\n{html}");
    assert!(html.contains("All thumbnails are ready."));
}

#[tokio::test]
async fn several_files_in_one_form_post_lead_to_a_page_listing_them_all() {
    let app = TestApp::spawn().await;
    let files = [
        ("a.jpg", images::jpeg(800, 600), "image/jpeg"),
        ("b.jpg", images::jpeg(300, 900), "image/jpeg"),
        ("c.png", images::transparent_png(64, 64), "image/png"),
    ];

    let response = app.upload_form(&files).await;

    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let ids: Vec<&str> = location.strip_prefix("/images?ids=").expect("a page of all the images").split(',').collect();
    assert_eq!(ids.len(), 3);
    let html = app.get(&location).await.text().await.unwrap();
    for id in &ids {
        assert!(html.contains(&format!("href=\"/images/{id}\"")), "the page links to {id}");
    }
    for id in &ids {
        assert_eq!(app.wait_until_settled(id.parse().unwrap()).await["state"], "done");
    }
}

#[tokio::test]
async fn thumbnails_are_turned_the_way_the_exif_orientation_says() {
    let app = TestApp::spawn().await;
    let mut uploads = Vec::new();
    for kind in ["Landscape", "Portrait"] {
        for orientation in 1..=8 {
            let name = format!("{kind}_{orientation}.jpg");
            let id = app.upload_one(&name, fixture(&format!("exif-orientation/{name}"))).await;
            uploads.push((kind, orientation, id));
        }
    }

    let mut upright = std::collections::HashMap::new();
    for (kind, orientation, id) in uploads {
        let thumbnails = app.wait_for_thumbnails(id).await;
        for (_, bytes) in &thumbnails {
            assert!(!bytes.windows(6).any(|window| window == b"Exif\0\0"), "{kind}_{orientation}: no EXIF (nor GPS) in thumbnails");
        }
        let small = decode(&thumbnails[0].1);
        match kind {
            "Landscape" => assert!(small.width() > small.height(), "{kind}_{orientation} is wider than tall"),
            _ => assert!(small.height() > small.width(), "{kind}_{orientation} is taller than wide"),
        }
        // Each must look like orientation 1, which needs no turning.
        let reference = upright.entry(kind).or_insert_with(|| small.clone());
        let difference = mean_difference(reference, &small);
        assert!(difference < 12.0, "{kind}_{orientation} differs from {kind}_1 by {difference:.1} per channel");
    }
}

#[tokio::test]
async fn a_pending_thumbnail_answers_404_with_retry_after_and_the_job_waits_on_the_queue() {
    let mut app = TestApp::spawn_without_worker().await;
    let id = app.upload_one("later.jpg", images::jpeg(400, 300)).await;

    let pending = app.get(&format!("/thumbs/{id}/small")).await;
    assert_eq!(pending.status(), StatusCode::NOT_FOUND);
    assert!(pending.headers().contains_key(header::RETRY_AFTER), "a pending thumbnail says when to ask again");
    assert_eq!(app.head(&format!("/thumbs/{id}/small")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.status(id).await["state"], "pending");
    assert_eq!(app.queue_depth().await, 1, "the confirmed job is on the queue");

    app.start_worker().await;
    assert_eq!(app.wait_until_settled(id).await["state"], "done");
    assert_eq!(app.get(&format!("/thumbs/{id}/small")).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_corrupt_image_ends_failed_with_a_reason_and_its_thumbnails_answer_410() {
    let app = TestApp::spawn().await;
    let id = app.upload_one("broken.jpg", images::corrupt_jpeg()).await;

    let status = app.wait_until_settled(id).await;

    assert_eq!(status["state"], "failed");
    let reason = status["error"].as_str().expect("a reason");
    assert!(reason.contains("not a valid JPEG"), "{reason}");
    let thumbnail = app.get(&format!("/thumbs/{id}/medium")).await;
    assert_eq!(thumbnail.status(), StatusCode::GONE);
    assert!(thumbnail.text().await.unwrap().contains("not a valid JPEG"));
    let html = app.get(&format!("/images/{id}")).await.text().await.unwrap();
    assert!(html.contains("could not be processed"), "the page says it failed:\n{html}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_run_twice_changes_nothing() {
    let app = TestApp::spawn().await;
    let id = app.upload_one("twice.jpg", images::jpeg(700, 500)).await;
    let first = app.wait_for_thumbnails(id).await;
    // And its WebPs, written after the three.
    crate::harness::wait_for(std::time::Duration::from_secs(30), "the WebPs", || async { app.status(id).await["webp"].is_object().then_some(()) }).await;

    let job = thumbq_contract::ResizeJob::new(id, thumbq_contract::SourceFormat::Jpeg, 0);
    let repo = thumbq_repo::Repository::open_now(&app.database()).await.unwrap();
    let context = thumbq_worker::job::JobContext::new(
        thumbq_contract::Storage::new(app.data_dir.path()),
        repo,
        thumbq_contract::Sizes::default(),
        thumbq_contract::MediaLimits::default(),
        1,
    );
    let outcome =
        tokio::task::spawn_blocking(move || thumbq_worker::job::process(&context, &job, &thumbq_worker::job::JobOptions::silent())).await.unwrap().unwrap();

    assert_eq!(outcome, thumbq_worker::job::Outcome::AlreadyDone);
    let second = app.wait_for_thumbnails(id).await;
    assert!(first.iter().zip(&second).all(|(a, b)| a.1 == b.1), "the same bytes are served");
}

#[tokio::test]
async fn a_page_following_an_image_hears_over_sse_each_size_as_it_lands_then_that_it_is_done() {
    let mut app = TestApp::spawn_without_worker().await;
    let id = app.upload_one("pushed.jpg", images::jpeg(800, 600)).await;
    let other = app.upload_one("someone-else.jpg", images::jpeg(800, 600)).await;
    let stream = app.get(&format!("/events?ids={id}")).await;
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()[header::CONTENT_TYPE], "text/event-stream");

    app.start_worker().await;
    let done = format!(r#"data: {{"id":"{id}","state":"done"}}"#);
    let events = crate::harness::read_events_until(stream, &done, std::time::Duration::from_secs(30)).await;
    // A resync may come first: the web server began listening after the stream opened.
    let events = events.replacen("event: resync\ndata: {}\n\n", "", 1);
    // The stream's name comes first: the page adds images to it by that name.
    let (named, events) = events.split_once("\n\n").expect("a first event");
    assert!(named.starts_with("event: stream\ndata: {\"stream\":\""), "{named}");

    // Sizes under `event: size`, which pages with an older script ignore; the end under `event: image`.
    let names: Vec<&str> = events.lines().filter(|line| line.starts_with("event: ")).collect();
    assert_eq!(names, ["event: size", "event: size", "event: size", "event: image"], "{events}");
    let data: Vec<&str> = events.lines().filter(|line| line.starts_with("data: ")).collect();
    let written = |size: &str| format!(r#"data: {{"id":"{id}","size":"{size}","state":"written"}}"#);
    // The first size brings the image's placeholder (ThumbHash), the one the API gives too.
    let placeholder = app.status(id).await["placeholder"].as_str().expect("a placeholder once a size is written").to_owned();
    assert!((20..=44).contains(&placeholder.len()), "a ThumbHash is 20 to 25 bytes: {placeholder}");
    let small = format!(r#"data: {{"id":"{id}","placeholder":"{placeholder}","size":"small","state":"written"}}"#);
    assert_eq!(data, [small, written("medium"), written("large"), done.clone()], "smallest first, then done: {events}");
    assert!(!events.contains(&other.to_string()), "a page hears only of the images it follows");
}

#[tokio::test]
async fn without_rabbitmq_the_events_endpoint_says_to_poll() {
    let app = TestApp::spawn_in(Mode::Embedded).await;
    let id = app.upload_one("embedded.jpg", images::jpeg(100, 100)).await;
    let response = app.get(&format!("/events?ids={id}")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.text().await.unwrap().contains("poll"));
}

#[tokio::test]
async fn the_original_is_served_under_the_type_its_bytes_say_and_can_never_run_as_a_page() {
    let app = TestApp::spawn_without_worker().await;
    let png = images::transparent_png(40, 30);
    // Declared as HTML by the client: the bytes decide.
    let response = app.upload_json(&[("page.html", png.clone(), "text/html")]).await;
    let body: serde_json::Value = response.json().await.unwrap();
    let id = body["images"][0]["id"].as_str().unwrap();
    let owner = body["images"][0]["owner_key"].as_str().unwrap();

    let original = app.get_as(&format!("/originals/{id}"), owner).await;

    assert_eq!(original.status(), StatusCode::OK);
    assert_eq!(original.headers()[header::CONTENT_TYPE], "image/png");
    assert_eq!(original.headers()["x-content-type-options"], "nosniff");
    assert!(original.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().starts_with("sandbox"));
    assert_eq!(original.bytes().await.unwrap().to_vec(), png);
    let html = app.get_as(&format!("/images/{id}"), owner).await.text().await.unwrap();
    assert!(html.contains(&format!("href=\"/originals/{id}\"")), "the image page links the owner to the original");
}

#[tokio::test]
async fn an_images_timeline_lists_its_steps_in_order_with_the_worker_that_took_it() {
    let app = TestApp::spawn().await;
    let id = app.upload_one("timed.jpg", images::jpeg(1600, 1200)).await;
    app.wait_for_thumbnails(id).await;

    // The worker's last step, after the three sizes are shown.
    let status = app.wait_until_settled(id).await;
    let steps: Vec<(String, u64, String)> = status["timeline"]
        .as_array()
        .expect("a timeline")
        .iter()
        .map(|step| (step["step"].as_str().unwrap().to_owned(), step["at"].as_u64().unwrap(), step["by"].as_str().unwrap().to_owned()))
        .collect();
    let by = |role: &str| -> Vec<&str> { steps.iter().filter(|(_, _, by)| by.starts_with(role)).map(|(step, ..)| step.as_str()).collect() };
    // The two sides' steps interleave by time: a worker may take the job before the web server hears the confirm.
    assert_eq!(by("web "), ["received", "stored", "confirmed by RabbitMQ"], "{status}");
    // An idle worker makes the small size first, from a decode of its own.
    assert_eq!(
        by("worker "),
        ["taken", "decoded for the small size", "small written", "decoded", "medium written", "large written", "WebP written"],
        "{status}"
    );
    assert_eq!(steps.len(), 10, "nobody else: {status}");
    assert!(steps.windows(2).all(|pair| pair[0].1 <= pair[1].1), "in time order: {steps:?}");
    let at = |name: &str| steps.iter().find(|(step, ..)| step == name).unwrap().1;
    assert!(at("stored") <= at("taken"), "no job before its original: {steps:?}");
    let workers: std::collections::HashSet<&str> = steps.iter().filter(|(_, _, by)| by.starts_with("worker ")).map(|(_, _, by)| by.as_str()).collect();
    assert_eq!(workers.len(), 1, "one worker took it: {steps:?}");
    assert!(steps.iter().all(|(_, _, by)| !by.contains('@')), "no host or process id for whoever has the link: {steps:?}");
    let gaps: Vec<String> = steps.windows(2).map(|pair| format!("{} → {}: {} ms", pair[0].0, pair[1].0, pair[1].1 - pair[0].1)).collect();
    eprintln!("timeline of a 1600×1200 JPEG:\n  {}", gaps.join("\n  "));
}

#[tokio::test]
async fn an_uploads_job_carries_its_trace_context_in_the_message_headers() {
    use thumbq_broker::lapin::options::{BasicGetOptions, BasicRejectOptions};
    use thumbq_broker::lapin::types::AMQPValue;

    let app = TestApp::spawn_without_worker().await;
    let (first, second) = (app.upload_one("traced.jpg", images::jpeg(320, 240)).await, app.upload_one("other.jpg", images::jpeg(320, 240)).await);
    let connection = thumbq_broker::connect(&crate::harness::amqp_url(), "thumbq-tests").await.expect("the broker");
    let channel = connection.create_channel().await.expect("a channel");
    let (mut traces, mut held) = (Vec::new(), Vec::new());
    for expected in [first, second] {
        let message = channel.basic_get(app.queue.as_str().into(), BasicGetOptions::default()).await.expect("a get").expect("a waiting job").delivery;
        let job = thumbq_contract::ResizeJob::from_bytes(&message.data).expect("a job");
        assert_eq!(job.image_id, expected, "in upload order");
        let header = message.properties.headers().as_ref().and_then(|headers| headers.inner().get(thumbq_contract::trace::HEADER).cloned());
        let Some(AMQPValue::LongString(header)) = header else { panic!("no traceparent header: {:?}", message.properties) };
        let trace: thumbq_contract::TraceParent = header.to_string().parse().expect("a W3C traceparent");
        assert_eq!(job.traceparent, Some(trace), "the header and the job agree, so a job relayed from the outbox keeps it");
        traces.push(trace.trace_id());
        held.push(message);
    }
    assert_ne!(traces[0], traces[1], "each upload is a trace of its own");
    for message in held {
        message.reject(BasicRejectOptions { requeue: true }).await.expect("back on the queue");
    }
}
