//! Bad uploads get a clear 4xx and leave nothing behind: no file, no job.

use reqwest::StatusCode;

use crate::harness::{Options, TestApp};
use crate::images;

#[tokio::test]
async fn a_text_file_posing_as_a_jpeg_is_refused_and_leaves_nothing_on_disk_or_on_the_queue() {
    let app = TestApp::spawn_without_worker().await;

    let response = app.upload_json(&[("../../etc/passwd.jpg", b"root:x:0:0:root:/root:/bin/bash\n".to_vec(), "image/jpeg")]).await;

    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: serde_json::Value = response.json().await.unwrap();
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("“passwd.jpg” is not a JPEG, PNG, GIF, WebP, HEIC, AVIF or JPEG XL image"), "{message}");
    assert_eq!(app.stored_files(), Vec::<std::path::PathBuf>::new());
    assert_eq!(app.queue_depth().await, 0);
}

#[tokio::test]
async fn one_bad_file_among_good_ones_is_refused_by_name_and_the_good_ones_are_kept() {
    let app = TestApp::spawn_without_worker().await;
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>".to_vec();
    let files = [
        ("good.jpg", images::jpeg(100, 100), "image/jpeg"),
        ("drawing.svg", svg.clone(), "image/svg+xml"),
        ("also good.jpg", images::jpeg(90, 60), "image/jpeg"),
    ];

    // A browser's form without JavaScript: the page of the kept ones, listing the refused one.
    let response = app.upload_form(&files).await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains("1 file was not uploaded") && html.contains("“drawing.svg” is not a JPEG, PNG, GIF, WebP, HEIC, AVIF or JPEG XL image"), "{html}");
    assert!(html.contains("good.jpg") && html.contains("also good.jpg"), "the kept ones, by name:\n{html}");
    assert_eq!(app.queue_depth().await, 2);

    // An API client: 202, each kept one, and each refused one with its status.
    let response = app.upload_json(&files).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: serde_json::Value = response.json().await.unwrap();
    let names: Vec<&str> = body["images"].as_array().unwrap().iter().map(|image| image["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["good.jpg", "also good.jpg"]);
    assert_eq!(body["refused"][0]["file"], "drawing.svg");
    assert_eq!(body["refused"][0]["status"], 415);
    assert_eq!(app.queue_depth().await, 4);
    let originals = app.stored_files().into_iter().filter(|path| path.starts_with("originals")).count();
    assert_eq!(originals, 4, "no refused file is kept");
}

#[tokio::test]
async fn empty_and_missing_files_are_refused_with_a_clear_message() {
    let app = TestApp::spawn_without_worker().await;

    let empty = app.upload_json(&[("nothing.png", Vec::new(), "image/png")]).await;
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
    assert!(empty.text().await.unwrap().contains("“nothing.png” is empty"));

    // What a browser sends when the form is submitted with no file chosen.
    let none = app.upload_json(&[("", Vec::new(), "application/octet-stream")]).await;
    assert_eq!(none.status(), StatusCode::BAD_REQUEST);
    let message = none.text().await.unwrap();
    assert!(message.contains("Choose at least one image"), "{message}");

    assert_eq!(app.stored_files(), Vec::<std::path::PathBuf>::new());
    assert_eq!(app.queue_depth().await, 0);
}

#[tokio::test]
async fn a_file_over_the_size_limit_is_refused_with_413_and_not_kept() {
    let app = TestApp::spawn_with(Options { with_worker: false, max_upload_bytes: 10_000, ..Options::default() }).await;

    let response = app.upload_json(&[("big.jpg", images::jpeg(1000, 1000), "image/jpeg")]).await;

    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("larger than the limit of 9.8 KB"), "{body}");
    assert_eq!(app.stored_files(), Vec::<std::path::PathBuf>::new());
    assert_eq!(app.queue_depth().await, 0);
}

#[tokio::test]
async fn unknown_ids_and_sizes_answer_a_plain_404() {
    let app = TestApp::spawn_without_worker().await;
    let id = app.upload_one("real.jpg", images::jpeg(50, 50)).await;

    for path in [
        format!("/thumbs/{id}/huge"),
        "/thumbs/01a204c8-0156-70d4-add9-ad570761361c/small".to_owned(),
        "/thumbs/..%2F..%2Fetc%2Fpasswd/small".to_owned(),
        "/images/not-an-id".to_owned(),
        "/api/images/01a204c8-0156-70d4-add9-ad570761361c".to_owned(),
    ] {
        let response = app.get(&path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(!response.headers().contains_key("retry-after"), "{path} is not worth polling");
    }
}
