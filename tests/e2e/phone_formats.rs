//! The formats phones make: HEIC and AVIF (libheif, in a decoder process of
//! its own) and JPEG XL (jxl-oxide), from upload to thumbnails.

use std::time::Duration;

use reqwest::StatusCode;
use thumbq_contract::ImageId;

use crate::harness::{TestApp, wait_for};
use crate::images::{self, decode, fixture};
use crate::processes::WorkerProcess;

#[tokio::test]
async fn a_heic_an_avif_and_a_jpeg_xl_from_phones_each_get_three_upright_thumbnails() {
    let app = TestApp::spawn().await;
    // Upright sizes: the Xiaomi's is 2592×1944; the AVIF grid 1024×770; the JPEG XL a turned JPEG (orientation 6) of 1800×1200.
    for (name, small) in [("pillow-heif/xiaomi.heic", (200, 150)), ("libavif/sofa_grid1x5_420.avif", (200, 150)), ("jxl/landscape_6_from_jpeg.jxl", (200, 133))]
    {
        let id = app.upload_one(name, fixture(name)).await;
        let thumbnails = app.wait_for_thumbnails(id).await;
        let dimensions: Vec<_> = thumbnails.iter().map(|(_, bytes)| (decode(bytes).width(), decode(bytes).height())).collect();
        assert_eq!(dimensions[0], small, "{name}: {dimensions:?}");
        for (head, _) in &thumbnails {
            assert_eq!(head.headers()["content-type"], "image/jpeg", "{name}");
        }
        assert_eq!(app.status(id).await["state"], "done", "{name}");
    }
}

#[tokio::test]
async fn a_heic_over_the_pixel_limit_is_refused_at_upload_from_its_header() {
    let app = TestApp::spawn_without_worker().await;
    let response = app.upload_json(&[("200MP.heic", fixture("pillow-heif/200MP.heic"), "image/heic")]).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("megapixels"), "{body}");
    assert_eq!(app.queue_depth().await, 0, "no job for it");
}

#[tokio::test]
async fn a_corrupt_heic_is_refused_at_upload_and_by_the_decoder_with_a_reason() {
    let app = TestApp::spawn().await;
    let refused = app.upload_json(&[("corrupted.heic", fixture("pillow-heif/corrupted.heic"), "image/heic")]).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY, "its header does not read");
    // One whose header passes but whose contents are damaged: a valid HEIC's stored original swapped for it.
    let id = app.upload_one("corrupted.heic", fixture("pillow-heif/truncated.heic")).await;
    let original = thumbq_contract::Storage::new(app.data_dir.path()).path(&thumbq_contract::StorageKey::Original(id));
    std::fs::write(original, fixture("pillow-heif/corrupted.heic")).unwrap();
    let failed = app.wait_until_settled(id).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(failed["error"].as_str().unwrap().starts_with("The file is not a valid HEIC image"), "{failed}");
}

#[tokio::test]
async fn a_heif_decoder_that_dies_mid_decode_fails_only_its_image_while_the_worker_and_its_other_jobs_go_on() {
    let app = TestApp::spawn_without_worker().await;
    let mut good: Vec<ImageId> = Vec::new();
    for number in 0..3 {
        good.push(app.upload_one(&format!("before-{number}.jpg"), images::jpeg(3000, 2000)).await);
    }
    let doomed = app.upload_one("pug.heic", fixture("pillow-heif/pug.heic")).await;
    good.push(app.upload_one("xiaomi.heic", fixture("pillow-heif/xiaomi.heic")).await);
    for number in 0..3 {
        good.push(app.upload_one(&format!("after-{number}.jpg"), images::jpeg(3000, 2000)).await);
    }

    // The way libheif dies on a poison file (a failed assertion: SIGABRT), dealt
    // to the decoder of the first HEIC while it decodes, with JPEG jobs beside it.
    let mut worker = WorkerProcess::start(&app, 2);
    let (decoder, args) = wait_for(Duration::from_secs(60), "a HEIF decoder at work", || async {
        // `--check` is the worker's own look at libheif when it starts.
        worker.children_running("thumbq-heif-decode").into_iter().find(|(_, args)| args.first().is_some_and(|arg| arg != "--check"))
    })
    .await;
    assert_eq!(args.len(), 4, "limits on its side, pixels and CPU: {args:?}");
    let killed = std::process::Command::new("kill").args(["-ABRT", &decoder.to_string()]).status().unwrap();
    assert!(killed.success());

    let mut failed = Vec::new();
    for id in good.iter().chain([&doomed]) {
        let status = app.wait_until_settled(*id).await;
        if status["state"] == "failed" {
            failed.push((*id, status["error"].as_str().unwrap().to_owned()));
        }
    }
    // The decoder killed was the first HEIC's, or the second's when the first was already through.
    assert_eq!(failed.len(), 1, "one image failed: {failed:?}");
    let (_, reason) = &failed[0];
    assert!(reason.contains("HEIC decoder stopped on this file (it aborted (SIGABRT))"), "{reason}");
    assert!(worker.is_running(), "the worker outlived its decoder");
    wait_for(Duration::from_secs(10), "the queue to be empty", || async { (app.queue_depth().await == 0).then_some(()) }).await;
    let dead = app.queue_depth_of(&thumbq_contract::Topology::new(app.queue.clone()).dead_letter_queue()).await;
    assert_eq!(dead, 1, "the image was dead-lettered at once, not tried again");
}
