//! What a person sees in a real browser.

use std::time::Duration;

use fantoccini::Locator;

use crate::browser::Browser;
use crate::harness::{TestApp, wait_for};
use crate::images;

fn fixture_path(name: &str) -> String {
    format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn a_person_picks_a_photo_and_watches_its_three_thumbnails_appear() {
    let mut app = TestApp::spawn_without_worker().await;
    let browser = Browser::start().await;

    browser.client.goto(&app.url("/")).await.unwrap();
    let input = browser.client.find(Locator::Css("input[type=file]")).await.unwrap();
    input.send_keys(&fixture_path("exif-orientation/Landscape_6.jpg")).await.unwrap();
    browser.client.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();

    wait_for(Duration::from_secs(20), "the image page", || async {
        let url = browser.client.current_url().await.ok()?;
        url.path().starts_with("/images/").then_some(())
    })
    .await;
    let placeholders = browser.eval("return document.querySelectorAll('.thumb[data-state=pending]').length").await;
    assert_eq!(placeholders, 3, "three placeholders while no worker runs");

    app.start_worker().await;
    wait_for(Duration::from_secs(30), "three thumbnails shown", || async {
        let shown = browser
            .eval("return [...document.querySelectorAll('.thumb[data-state=ready] img')].filter(img => img.complete && img.naturalWidth > 0).length")
            .await;
        (shown == 3).then_some(())
    })
    .await;
    let status = browser.client.find(Locator::Css(".status")).await.unwrap().text().await.unwrap();
    assert_eq!(status, "All thumbnails are ready.");
    let widths = browser.eval("return [...document.querySelectorAll('.thumb img')].map(img => [img.naturalWidth, img.naturalHeight])").await;
    assert_eq!(widths, serde_json::json!([[200, 133], [600, 400], [1200, 800]]), "turned upright, each in its box");
    let screenshot = browser.screenshot("image-page-ready").await;
    eprintln!("screenshot: {}", screenshot.display());
    browser.close().await;
}

#[tokio::test]
async fn a_person_who_uploads_a_broken_image_reads_why_it_failed() {
    let app = TestApp::spawn().await;
    let id = app.upload_one("broken.jpg", images::corrupt_jpeg()).await;
    let browser = Browser::start().await;

    // Open the page at once: it shows placeholders, then the failure when the worker gives up.
    browser.client.goto(&app.url(&format!("/images/{id}"))).await.unwrap();
    let message = wait_for(Duration::from_secs(30), "the failure to be shown", || async {
        let alert = browser.client.find(Locator::Css("[role=alert]")).await.ok()?;
        alert.text().await.ok().filter(|text| !text.is_empty())
    })
    .await;

    assert!(message.contains("could not be processed") && message.contains("not a valid JPEG"), "{message}");
    let spinning = browser.eval("return document.querySelectorAll('.thumb[data-state=pending]').length").await;
    assert_eq!(spinning, 0, "no placeholder keeps spinning");
    browser.screenshot("image-page-failed").await;
    browser.close().await;
}
