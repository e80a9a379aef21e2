//! What a person sees in a real browser.

use std::time::Duration;

use fantoccini::Locator;

use crate::browser::Browser;
use crate::harness::{Mode, Options, TestApp, wait_for};
use crate::images;

fn fixture_path(name: &str) -> String {
    format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Picks `files` in the home page's file input, as a person does with the file dialog.
async fn pick_files(browser: &Browser, files: &[String]) {
    let input = browser.client.find(Locator::Css("input[type=file]")).await.unwrap();
    input.send_keys(&files.join("\n")).await.unwrap();
}

/// For each thumbnail shown on the page, the milliseconds from the upload's
/// answer (the finished upload's `GET /uploads/{id}`) to the thumbnail's
/// arrival, read from the browser's resource timings.
async fn upload_to_thumbnail_ms(browser: &Browser) -> Vec<f64> {
    let timings = browser
        .eval(
            "const entries = performance.getEntriesByType('resource');
             const uploads = entries.filter(e => e.initiatorType === 'fetch' && /[/]uploads[/][0-9a-f-]{36}$/.test(e.name));
             const thumbs = entries.filter(e => e.initiatorType === 'img' && e.name.includes('/thumbs/'));
             return thumbs.map(t => t.responseEnd - Math.max(...uploads.filter(u => u.responseEnd <= t.startTime).map(u => u.responseEnd)));",
        )
        .await;
    let mut timings: Vec<f64> = serde_json::from_value(timings).unwrap();
    timings.sort_by(f64::total_cmp);
    timings
}

fn median(sorted: &[f64]) -> f64 {
    sorted[sorted.len() / 2]
}

async fn pick_photos_and_watch_them_arrive(mode: Mode, expected_live: &str) -> Vec<f64> {
    let app = TestApp::spawn_in(mode).await;
    let browser = Browser::start().await;
    browser.client.goto(&app.url("/")).await.unwrap();

    let files: Vec<String> = (1..=5).map(|n| fixture_path(&format!("exif-orientation/Landscape_{n}.jpg"))).collect();
    pick_files(&browser, &files).await;

    wait_for(Duration::from_secs(60), "five upload cards with their thumbnail", || async {
        let done = browser.eval("return document.querySelectorAll('#uploads .card[data-state=done] .thumb[data-state=ready] img').length").await;
        (done == 5).then_some(())
    })
    .await;
    assert_eq!(browser.eval("return document.body.dataset.live").await, expected_live);
    let progress = browser.eval("return [...document.querySelectorAll('#uploads progress')].map(p => p.value)").await;
    assert_eq!(progress, serde_json::json!([100, 100, 100, 100, 100]), "each card's bar went to the end");
    let timings = upload_to_thumbnail_ms(&browser).await;
    browser.screenshot(&format!("home-after-upload-{expected_live}")).await;

    // Each card leads to its image page, with all three sizes.
    let link = browser.client.find(Locator::Css("#uploads .card a")).await.unwrap();
    link.click().await.unwrap();
    wait_for(Duration::from_secs(30), "three thumbnails on the image page", || async {
        let shown = browser
            .eval("return [...document.querySelectorAll('.thumb[data-state=ready] img')].filter(img => img.complete && img.naturalWidth > 0).length")
            .await;
        (shown == 3).then_some(())
    })
    .await;
    let sizes = browser.eval("return [...document.querySelectorAll('.thumb img')].map(img => [img.naturalWidth, img.naturalHeight])").await;
    assert_eq!(sizes, serde_json::json!([[1200, 800], [600, 400], [200, 133]]), "upright, each in its box, the large first");
    browser.close().await;
    timings
}

#[tokio::test]
async fn a_person_picks_photos_and_their_thumbnails_are_pushed_to_the_page() {
    let timings = pick_photos_and_watch_them_arrive(Mode::RabbitMq, "push").await;
    eprintln!("upload answer to thumbnail shown, pushed over SSE: median {:.0} ms of {timings:?}", median(&timings));
}

/// Counts the live-update streams the page opens, in `window.streamsOpened`.
const COUNT_STREAMS: &str = "
    const Original = window.EventSource;
    window.streamsOpened = 0;
    window.EventSource = function (url) { window.streamsOpened += 1; return new Original(url); };
    Object.assign(window.EventSource, { CONNECTING: 0, OPEN: 1, CLOSED: 2 });";

#[tokio::test]
async fn a_page_follows_all_its_uploads_on_one_live_stream() {
    let mut app = TestApp::spawn_without_worker().await;
    let browser = Browser::start().await;
    browser.client.goto(&app.url("/")).await.unwrap();
    browser.eval(COUNT_STREAMS).await;
    let files: Vec<String> = (1..=5).map(|n| fixture_path(&format!("exif-orientation/Portrait_{n}.jpg"))).collect();
    pick_files(&browser, &files).await;
    wait_for(Duration::from_secs(30), "five cards waiting for their thumbnails", || async {
        (browser.eval("return document.querySelectorAll('#uploads .card[data-state=processing]').length").await == 5).then_some(())
    })
    .await;
    let followed = wait_for(Duration::from_secs(10), "the stream to follow all five", || async {
        let followed = browser.eval("return thumbqLive.source?.readyState === EventSource.OPEN ? thumbqLive.streamed.size : null").await;
        (followed == 5).then_some(followed)
    })
    .await;
    assert_eq!(followed, 5);
    assert_eq!(browser.eval("return window.streamsOpened").await, 1, "uploads accepted one after another joined the stream the page had");

    app.start_worker().await;
    wait_for(Duration::from_secs(60), "five thumbnails pushed", || async {
        (browser.eval("return document.querySelectorAll('#uploads .card[data-state=done] .thumb[data-state=ready] img').length").await == 5).then_some(())
    })
    .await;
    assert_eq!(browser.eval("return document.body.dataset.live").await, "push");
    assert_eq!(browser.eval("return window.streamsOpened").await, 1);
    browser.close().await;
}

#[tokio::test]
async fn without_live_events_the_page_polls_and_still_shows_every_thumbnail() {
    // The embedded queue has no events exchange: /events answers 503 and the page polls.
    let timings = pick_photos_and_watch_them_arrive(Mode::Embedded, "poll").await;
    eprintln!("upload answer to thumbnail shown, by polling: median {:.0} ms of {timings:?}", median(&timings));
}

#[tokio::test]
async fn an_image_page_opened_early_shows_placeholders_then_the_three_thumbnails() {
    let mut app = TestApp::spawn_without_worker().await;
    let (id, owner_key) = app.upload_owned("photo.jpg", images::fixture("exif-orientation/Portrait_6.jpg")).await;
    let browser = Browser::start().await;
    // The image's way is its owner's to see.
    browser.become_owner(&app.url("/"), &owner_key).await;
    browser.client.goto(&app.url(&format!("/images/{id}"))).await.unwrap();
    assert_eq!(browser.eval("return document.querySelectorAll('.thumb[data-state=pending]').length").await, 3);

    app.start_worker().await;
    wait_for(Duration::from_secs(30), "three thumbnails shown", || async {
        let shown = browser.eval("return document.querySelectorAll('.thumb[data-state=ready] img').length").await;
        (shown == 3).then_some(())
    })
    .await;
    let status = browser.client.find(Locator::Css(".status")).await.unwrap().text().await.unwrap();
    assert_eq!(status, "All thumbnails are ready.");
    // Opened while pending, the page draws the image's way once it is done.
    let drawn = wait_for(Duration::from_secs(10), "the timeline drawn live", || async {
        let steps = browser.eval("return [...document.querySelectorAll('.timeline .step')].map(step => step.textContent)").await;
        // Drawn when the three sizes are shown: the WebPs' step may come just after.
        (steps.as_array().is_some_and(|steps| steps.len() >= 9)).then_some(steps)
    })
    .await;
    assert_eq!(drawn[3], "taken", "{drawn}");
    assert_eq!(drawn[4], "decoded for the small size", "an idle worker makes the small size first: {drawn}");
    browser.screenshot("image-page-ready").await;
    // Once finished (the WebPs come last), the page draws the image's way, without a script.
    app.wait_until_settled(id).await;
    browser.client.goto(&app.url(&format!("/images/{id}"))).await.unwrap();
    let steps = browser.eval("return [...document.querySelectorAll('.timeline .step')].map(step => step.textContent)").await;
    assert_eq!(steps[0], "received");
    assert_eq!(steps.as_array().unwrap().last().unwrap(), "WebP written", "{steps}");
    // Now that the WebPs exist, the page offers them to browsers that show WebP.
    let sources = browser.eval("return [...document.querySelectorAll('picture source[type=\"image/webp\"]')].map(source => source.srcset)").await;
    assert_eq!(sources, serde_json::json!(["large", "medium", "small"].map(|size| format!("/thumbs/{id}/{size}.webp"))), "{sources}");
    let shown = browser.eval("return [...document.querySelectorAll('picture img')].map(img => img.currentSrc)").await;
    assert!(shown.as_array().unwrap().iter().all(|src| src.as_str().unwrap().ends_with(".webp")), "Chromium shows the WebPs: {shown}");
    browser.client.find(Locator::Css(".timeline summary")).await.unwrap().click().await.unwrap();
    browser.screenshot("image-page-timeline").await;
    // The picture first, then what it is; its way is folded below.
    let order = browser.eval("return [...document.querySelectorAll('.image-page > *')].map(element => element.className || element.tagName)").await;
    assert_eq!(order[0], "thumbs", "{order}");
    let first = browser.eval("return document.querySelector('.image-page .thumb').dataset.size").await;
    assert_eq!(first, "large");
    let facts = browser.eval("return document.querySelector('.facts').textContent").await;
    let facts = facts.as_str().unwrap();
    // Portrait_6 is stored turned (EXIF 6): 1800 × 1200 in the file, 1200 × 1800 upright.
    assert!(facts.contains("1200 × 1800 pixels") && facts.contains("JPEG,"), "{facts}");
    browser.close().await;

    // A stranger with the link sees the picture and its facts, not the owner's timeline.
    let stranger = Browser::start().await;
    stranger.client.goto(&app.url(&format!("/images/{id}"))).await.unwrap();
    assert_eq!(stranger.eval("return document.querySelectorAll('.timeline, form.delete').length").await, 0);
    assert_eq!(stranger.eval("return document.querySelectorAll('.thumb[data-state=ready] img').length").await, 3);
    stranger.client.set_window_size(390, 844).await.unwrap();
    stranger.screenshot("image-page-phone-stranger").await;
    stranger.close().await;
}

#[tokio::test]
async fn the_small_thumbnail_is_shown_while_the_large_one_is_still_being_made() {
    let mut app = TestApp::spawn_without_worker().await;
    // A worker that holds the large size back until the test lets it go.
    let (go, held) = std::sync::mpsc::channel::<()>();
    let held = std::sync::Arc::new(std::sync::Mutex::new(held));
    app.start_worker_with(move |context| {
        context.before_writing = Some(std::sync::Arc::new(move |_, size| {
            if size == thumbq_contract::ThumbSize::Large {
                let _ = held.lock().unwrap().recv_timeout(Duration::from_secs(60));
            }
        }));
    })
    .await;
    let browser = Browser::start().await;
    browser.client.goto(&app.url("/")).await.unwrap();
    let photo = std::env::temp_dir().join(format!("thumbq-progressive-{}.jpg", std::process::id()));
    std::fs::write(&photo, images::jpeg(1600, 1200)).unwrap();
    pick_files(&browser, &[photo.display().to_string()]).await;

    wait_for(Duration::from_secs(30), "the card's small thumbnail, pushed before the large one exists", || async {
        let shown = browser.eval("return document.querySelectorAll('#uploads .card .thumb-small[data-state=ready] img').length").await;
        (shown == 1).then_some(())
    })
    .await;
    let _ = std::fs::remove_file(&photo);
    let page = browser.eval("return document.querySelector('#uploads .card a').href").await;
    browser.client.goto(page.as_str().unwrap()).await.unwrap();
    let states = || async { browser.eval("return [...document.querySelectorAll('.thumb')].map(figure => figure.dataset.state)").await };
    // "loading" until the browser has the medium's bytes, on a busy machine a moment after the page.
    wait_for(Duration::from_secs(10), "small and medium shown, the large still pending", || async {
        (states().await == serde_json::json!(["pending", "ready", "ready"])).then_some(())
    })
    .await;
    // The large slot shows the image's placeholder meanwhile: its ThumbHash, painted blurred.
    let painted = wait_for(Duration::from_secs(10), "the placeholder painted in the large slot", || async {
        let pixel = browser
            .eval("const canvas = document.querySelector('.thumb-large canvas.blurred'); return canvas && [...canvas.getContext('2d').getImageData(canvas.width >> 1, canvas.height >> 1, 1, 1).data]")
            .await;
        pixel.as_array().map(|pixel| pixel.iter().map(|value| value.as_u64().unwrap()).collect::<Vec<_>>())
    })
    .await;
    assert_eq!(painted[3], 255, "opaque, like the photo: {painted:?}");
    assert!(painted[..3].iter().any(|channel| *channel > 20), "not blank: {painted:?}");
    browser.eval("document.querySelector('.thumb-large').scrollIntoView(); return true").await;
    browser.screenshot("image-page-large-still-pending").await;

    go.send(()).unwrap();
    wait_for(Duration::from_secs(30), "the large thumbnail, once written", || async {
        (states().await == serde_json::json!(["ready", "ready", "ready"])).then_some(())
    })
    .await;
    browser.close().await;
}

#[tokio::test]
async fn a_person_who_uploads_a_broken_image_reads_why_it_failed() {
    let app = TestApp::spawn().await;
    let browser = Browser::start().await;
    browser.client.goto(&app.url("/")).await.unwrap();
    let broken = app.data_dir.path().join("broken.jpg");
    std::fs::write(&broken, images::corrupt_jpeg()).unwrap();
    let text = app.data_dir.path().join("notes.txt");
    std::fs::write(&text, "not a photo").unwrap();

    pick_files(&browser, &[broken.display().to_string(), text.display().to_string()]).await;

    let messages = wait_for(Duration::from_secs(30), "both cards to say what went wrong", || async {
        let messages = browser.eval("return [...document.querySelectorAll('#uploads [role=alert]')].map(alert => alert.textContent)").await;
        (messages.as_array()?.len() == 2).then_some(messages.to_string())
    })
    .await;
    assert!(messages.contains("“notes.txt” is not a JPEG, PNG, GIF, WebP, HEIC, AVIF or JPEG XL image"), "refused in the browser: {messages}");
    assert!(messages.contains("not a valid JPEG image"), "failed in the worker, with its reason: {messages}");
    assert_eq!(browser.eval("return document.querySelectorAll('.thumb[data-state=pending]').length").await, 0, "nothing keeps spinning");
    let summary = wait_for(Duration::from_secs(10), "the summary to say what became of each", || async {
        let text = browser.eval("return document.querySelector('#summary .summary-text').textContent").await;
        text.as_str().filter(|text| text.starts_with("Finished")).map(str::to_owned)
    })
    .await;
    assert_eq!(summary, "Finished · 1 of 2 uploaded · 0 ready · 1 failed · 1 refused");
    // Each card offers the one action that fits: the image the server has is deleted, the file it refused removed.
    let actions = browser
        .eval("return [...document.querySelectorAll('#uploads .card')].map(card => [...card.querySelectorAll('button')].filter(button => button.offsetParent !== null).map(button => button.textContent))")
        .await;
    assert_eq!(actions, serde_json::json!([["Delete"], ["Remove"]]));
    browser.screenshot("home-with-failures").await;

    let page = browser.eval("return document.querySelector('#uploads .card a').href").await;
    browser.client.goto(page.as_str().unwrap()).await.unwrap();
    let alert = browser.client.find(Locator::Css("[role=alert]")).await.unwrap().text().await.unwrap();
    assert!(alert.contains("could not be processed"), "{alert}");
    browser.close().await;
}

/// The ids of the images listed under "Your uploads".
async fn listed_uploads(browser: &Browser) -> Vec<String> {
    let ids = browser.eval("return [...document.querySelectorAll('.yours li.image')].map(item => item.dataset.image)").await;
    serde_json::from_value(ids).unwrap()
}

#[tokio::test]
async fn two_browsers_see_only_their_own_uploads_and_the_owner_deletes_with_the_buttons_and_can_undo() {
    let app = TestApp::spawn_with(Options { web: |settings| settings.undo_delete_secs = 30, ..Options::default() }).await;
    let alice = Browser::start().await;
    alice.client.goto(&app.url("/")).await.unwrap();
    let files: Vec<String> = (1..=3).map(|n| fixture_path(&format!("exif-orientation/Landscape_{n}.jpg"))).collect();
    pick_files(&alice, &files).await;
    wait_for(Duration::from_secs(60), "three upload cards with their thumbnail", || async {
        let done = alice.eval("return document.querySelectorAll('#uploads .card[data-state=done]').length").await;
        (done == 3).then_some(())
    })
    .await;
    let cookie = alice.client.get_named_cookie("thumbq_owner").await.expect("the first upload gave the browser its key");
    assert_eq!(cookie.http_only(), Some(true), "the key is out of scripts' reach");

    // An upload card's delete button, without leaving the page: the card offers Undo, and Undo gives the image back.
    let card_button = alice.client.find(Locator::Css("#uploads .card button.delete")).await.unwrap();
    card_button.click().await.unwrap();
    let undo_card = wait_for(Duration::from_secs(30), "the card to offer Undo", || async {
        let id = alice.eval("return document.querySelector('#uploads .card[data-state=deleted] .undo button')?.closest('.card').dataset.image ?? null").await;
        id.as_str().map(str::to_owned)
    })
    .await;
    assert_eq!(alice.eval("return document.activeElement.textContent").await, "Undo", "the keyboard's focus is on Undo, not lost to the page");
    alice.screenshot("alice-card-deleted-with-undo").await;
    assert_eq!(app.get(&format!("/images/{undo_card}")).await.status(), reqwest::StatusCode::GONE, "deleted to everyone meanwhile");
    alice.client.find(Locator::Css("#uploads .card .undo button")).await.unwrap().click().await.unwrap();
    wait_for(Duration::from_secs(30), "the card to be back with its thumbnail", || async {
        let back = alice
            .eval(&format!(
                "return document.querySelector('#uploads .card[data-image=\"{undo_card}\"][data-state=done] .thumb[data-state=ready] img') !== null"
            ))
            .await;
        (back == true).then_some(())
    })
    .await;
    assert_eq!(app.get(&format!("/images/{undo_card}")).await.status(), reqwest::StatusCode::OK);
    assert_eq!(alice.eval("return document.activeElement.textContent").await, "Delete");
    alice.screenshot("alice-card-undone").await;
    alice.client.find(Locator::Css(&format!("#uploads .card[data-image='{undo_card}'] button.delete"))).await.unwrap().click().await.unwrap();
    let deleted_from_card = wait_for(Duration::from_secs(30), "the card to say its image was deleted", || async {
        let id = alice.eval("return document.querySelector('#uploads .card[data-state=deleted]')?.dataset.image ?? null").await;
        id.as_str().map(str::to_owned)
    })
    .await;

    alice.client.goto(&app.url("/")).await.unwrap();
    let listed = listed_uploads(&alice).await;
    assert_eq!(listed.len(), 2, "under “Your uploads”: {listed:?}");
    assert!(!listed.contains(&deleted_from_card));
    alice.screenshot("alice-your-uploads").await;

    // The list's delete button: in place, with Undo where the image was.
    let (gone, kept) = (listed[0].clone(), listed[1].clone());
    alice.client.find(Locator::Css(&format!(".yours li[data-image='{gone}'] form.delete button"))).await.unwrap().click().await.unwrap();
    wait_for(Duration::from_secs(30), "the list to offer Undo where the image was", || async {
        let undo = alice.eval(&format!("return document.querySelector('.yours li[data-image=\"{gone}\"] .undo')?.textContent ?? ''")).await;
        undo.as_str().is_some_and(|undo| undo.starts_with("Deleted “Landscape_")).then_some(())
    })
    .await;
    assert_eq!(
        alice.eval("return document.activeElement.getAttribute('aria-label')").await.as_str().map(|label| label.starts_with("Undo deleting")),
        Some(true)
    );
    alice.screenshot("alice-after-delete").await;
    alice.client.goto(&app.url("/")).await.unwrap();
    assert_eq!(listed_uploads(&alice).await, vec![kept.clone()]);
    alice.close().await;

    let bob = Browser::start().await;
    bob.client.goto(&app.url("/")).await.unwrap();
    assert_eq!(listed_uploads(&bob).await, Vec::<String>::new());
    let source = bob.client.source().await.unwrap();
    assert!(![&kept, &gone, &deleted_from_card].iter().any(|id| source.contains(id.as_str())), "Bob's home page names none of Alice's images");
    bob.screenshot("bob-home").await;

    // With the link, Bob sees the thumbnails, and neither the original nor a delete button.
    bob.client.goto(&app.url(&format!("/images/{kept}"))).await.unwrap();
    assert_eq!(bob.eval("return document.querySelectorAll('.thumb[data-state=ready] img').length").await, 3);
    assert_eq!(bob.eval("return document.querySelectorAll('form.delete, a[href^=\"/originals/\"]').length").await, 0);
    bob.screenshot("bob-sees-a-shared-link").await;
    bob.client.goto(&app.url(&format!("/images/{gone}"))).await.unwrap();
    assert!(bob.client.source().await.unwrap().contains("This image was deleted."));
    bob.close().await;
}

#[tokio::test]
async fn a_page_following_an_image_shows_at_once_that_its_owner_deleted_it() {
    let app = TestApp::spawn_without_worker().await;
    let (id, owner) = app.upload_owned("pending.jpg", images::fixture("exif-orientation/Portrait_3.jpg")).await;
    let browser = Browser::start().await;
    browser.client.goto(&app.url(&format!("/images/{id}"))).await.unwrap();
    wait_for(Duration::from_secs(20), "the page's event stream to open", || async {
        (browser.eval("return thumbqLive.source?.readyState === EventSource.OPEN").await == true).then_some(())
    })
    .await;

    assert_eq!(app.delete(&format!("/images/{id}"), Some(&owner)).await.status(), reqwest::StatusCode::NO_CONTENT);

    wait_for(Duration::from_secs(10), "the page to show the image deleted", || async {
        (browser.eval("return document.querySelector('[data-image]').dataset.state").await == "deleted").then_some(())
    })
    .await;
    let status = browser.client.find(Locator::Css(".status")).await.unwrap().text().await.unwrap();
    assert_eq!(status, "This image was deleted.");
    assert_eq!(browser.eval("return document.querySelectorAll('.thumb[data-state=deleted]').length").await, 3);
    browser.screenshot("image-page-deleted-live").await;
    browser.close().await;
}

#[tokio::test]
async fn a_page_refused_a_live_stream_polls_asks_again_later_and_follows_its_newest_uploads_first() {
    let mut app = TestApp::spawn_without_worker_and(|settings| settings.max_event_streams = 1).await;
    // The server's one stream, held by someone else.
    let held = app.upload_one("held.jpg", images::jpeg(64, 64)).await;
    let holder = app.client.get(app.url(&format!("/events?ids={held}"))).send().await.unwrap();
    assert_eq!(holder.status(), reqwest::StatusCode::OK);

    let browser = Browser::start().await;
    browser.client.goto(&app.url("/")).await.unwrap();
    browser.eval("thumbqLive.streamRetryMs = 300").await;
    pick_files(&browser, &[fixture_path("exif-orientation/Landscape_1.jpg")]).await;
    wait_for(Duration::from_secs(20), "the page to poll once its stream is refused", || async {
        (browser.eval("return document.body.dataset.live").await == "poll").then_some(())
    })
    .await;
    pick_files(&browser, &[fixture_path("exif-orientation/Landscape_2.jpg")]).await;
    wait_for(Duration::from_secs(20), "the second upload accepted", || async {
        (browser.eval("return document.querySelectorAll('#uploads .card[data-image]').length").await == 2).then_some(())
    })
    .await;
    drop(holder);
    let followed = wait_for(Duration::from_secs(20), "a stream that follows both uploads", || async {
        let ids =
            browser.eval("return thumbqLive.source?.readyState === EventSource.OPEN ? new URL(thumbqLive.source.url).searchParams.get('ids') : null").await;
        ids.as_str().filter(|ids| ids.split(',').count() == 2).map(str::to_owned)
    })
    .await;
    let newest = browser.eval("return document.querySelector('#uploads .card:last-child').dataset.image").await;
    assert_eq!(followed.split(',').next(), newest.as_str(), "the newest upload comes first: {followed}");

    app.start_worker().await;
    wait_for(Duration::from_secs(60), "both cards with their thumbnail, pushed", || async {
        let done = browser.eval("return document.querySelectorAll('#uploads .card[data-state=done] .thumb[data-state=ready] img').length").await;
        (done == 2).then_some(())
    })
    .await;
    assert_eq!(browser.eval("return document.body.dataset.live").await, "push");
    browser.close().await;
}

#[tokio::test]
async fn a_person_past_the_daily_quota_reads_when_they_can_upload_again_and_the_page_does_not_wait_for_it() {
    let app = TestApp::spawn_without_worker_and(|settings| settings.owner_mib_per_day = 1).await;
    let browser = Browser::start().await;
    browser.client.goto(&app.url("/")).await.unwrap();
    pick_files(&browser, &[fixture_path("exif-orientation/Landscape_1.jpg")]).await;
    wait_for(Duration::from_secs(20), "the first upload accepted", || async {
        (browser.eval("return document.querySelectorAll('#uploads .card[data-image]').length").await == 1).then_some(())
    })
    .await;
    // 0.35 MB kept, then 0.9 MB more: past the 1 MiB of the day.
    pick_files(&browser, &[fixture_path("pillow-heif/xiaomi.heic")]).await;
    let said = wait_for(Duration::from_secs(20), "the second card to say why it was refused", || async {
        let said = browser.eval("const card = document.querySelectorAll('#uploads .card')[1]; return card?.dataset.state === 'failed' ? card.querySelector('.card-status').textContent : null").await;
        said.as_str().map(str::to_owned)
    })
    .await;
    assert!(said.contains("would take you past 1 MB in 24 hours") && said.contains("about 24 hours"), "{said}");
    assert!(said.contains("Try again") && !said.contains("Trying again"), "a button, not a wait of a day behind the person's back: {said}");
    let creations = browser
        .eval("return performance.getEntriesByType('resource').filter(e => e.initiatorType === 'xmlhttprequest' && e.name.endsWith('/uploads')).length")
        .await;
    assert_eq!(creations, 2, "nothing was sent again by itself");
    browser.screenshot("home-daily-quota").await;
    browser.close().await;
}

/// Holds every upload request the page sends until `releaseUploads()` is called in it.
const HOLD_UPLOADS: &str = "
    const send = XMLHttpRequest.prototype.send;
    window.heldUploads = [];
    XMLHttpRequest.prototype.send = function (body) { window.heldUploads.push(() => send.call(this, body)); };
    window.releaseUploads = () => { XMLHttpRequest.prototype.send = send; window.heldUploads.splice(0).forEach((go) => go()); };";

#[tokio::test]
async fn a_batch_reads_as_one_keeps_its_order_and_names_and_offers_the_right_action_for_each_failure() {
    let app = TestApp::spawn().await;
    let browser = Browser::start().await;
    browser.client.goto(&app.url("/")).await.unwrap();
    browser.eval(HOLD_UPLOADS).await;
    let notes = app.data_dir.path().join("notes.jpg");
    std::fs::write(&notes, "not a photo, whatever its name").unwrap();
    let mut files: Vec<String> = (1..=4).map(|n| fixture_path(&format!("exif-orientation/Landscape_{n}.jpg"))).collect();
    files.insert(2, notes.display().to_string());
    files.push(files[0].clone()); // picked twice: uploaded once
    pick_files(&browser, &files).await;

    let names = browser.eval("return [...document.querySelectorAll('#uploads .card .name')].map(name => name.textContent)").await;
    assert_eq!(
        names,
        serde_json::json!(["Landscape_1.jpg", "Landscape_2.jpg", "notes.jpg", "Landscape_3.jpg", "Landscape_4.jpg"]),
        "in the order chosen, once each"
    );
    let leaving =
        browser.eval("const event = new Event('beforeunload', { cancelable: true }); window.dispatchEvent(event); return event.defaultPrevented").await;
    assert_eq!(leaving, true, "leaving the page while files upload asks first");
    // A wait that shows gets a preview of each photo, scaled down; a file that is no image gets none.
    let previews = wait_for(Duration::from_secs(10), "local previews of the waiting files", || async {
        let previews = browser
            .eval("return [...document.querySelectorAll('#uploads .card .frame')].map(frame => frame.querySelector('canvas[data-state=ready]')?.width ?? frame.textContent)")
            .await;
        (previews.as_array().is_some_and(|all| all.iter().all(|preview| preview.as_u64().is_some_and(|width| width > 0) || preview == "No preview")))
            .then_some(previews)
    })
    .await;
    assert_eq!(previews, serde_json::json!([400, 400, "No preview", 400, 400]));
    // A file removed before it was sent is never sent.
    browser.client.find(Locator::Css("#uploads .card:nth-child(5) button.remove")).await.unwrap().click().await.unwrap();
    browser.eval("window.releaseUploads(); return null").await;

    let summary = wait_for(Duration::from_secs(60), "the summary to say the batch is finished", || async {
        let text = browser.eval("return document.querySelector('#summary .summary-text').textContent").await;
        text.as_str().filter(|text| text.starts_with("Finished")).map(str::to_owned)
    })
    .await;
    assert_eq!(summary, "Finished · 3 of 4 uploaded · 3 ready · 1 refused", "a refusal is no failure of ours, and not “all done”");
    let refused = browser.client.find(Locator::Css("#uploads .card[data-state=failed]")).await.unwrap();
    assert!(refused.text().await.unwrap().contains("is not a JPEG, PNG, GIF, WebP, HEIC, AVIF or JPEG XL image"));
    assert!(refused.find(Locator::Css("button.retry")).await.is_err(), "trying a refused file again would fail again: no “Try again”");
    browser.screenshot("batch-all-done").await;
    refused.find(Locator::Css("button.remove")).await.unwrap().click().await.unwrap();
    assert_eq!(browser.eval("return document.querySelectorAll('#uploads .card').length").await, 3);
    let stored = std::fs::read_dir(app.data_dir.path().join("originals")).unwrap().count();
    assert_eq!(stored, 3, "the removed file and the refused one were never kept");

    // The name stays with the image: on its page, in its title and its thumbnails' alt text.
    let page = browser.eval("return document.querySelector('#uploads .card a').href").await;
    browser.client.goto(page.as_str().unwrap()).await.unwrap();
    assert_eq!(browser.client.find(Locator::Css("h1")).await.unwrap().text().await.unwrap(), "Landscape_1.jpg");
    assert!(browser.client.title().await.unwrap().starts_with("Landscape_1.jpg"));
    let alt = browser.eval("return document.querySelector('.thumb img').alt").await;
    assert!(alt.as_str().unwrap().starts_with("Landscape_1.jpg"), "{alt}");
    browser.close().await;
}

#[tokio::test]
async fn images_pasted_or_dropped_onto_the_page_are_uploaded() {
    let app = TestApp::spawn().await;
    // At phone size, in the dark scheme.
    let browser = Browser::start_with(&["--window-size=390,844", "--blink-settings=preferredColorScheme=0"]).await;
    browser.client.goto(&app.url("/")).await.unwrap();
    let made = "
        const file = async (name, hue) => {
            const canvas = document.createElement('canvas');
            canvas.width = 320; canvas.height = 240;
            const context = canvas.getContext('2d');
            context.fillStyle = `hsl(${hue} 70% 50%)`; context.fillRect(0, 0, 320, 240);
            const blob = await new Promise((done) => canvas.toBlob(done, 'image/png'));
            return new File([blob], name, { type: 'image/png' });
        };
        const pasted = new DataTransfer();
        pasted.items.add(await file('pasted.png', 20));
        document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: pasted, bubbles: true }));
        const dropped = new DataTransfer();
        dropped.items.add(await file('dropped.png', 200));
        document.dispatchEvent(new DragEvent('drop', { dataTransfer: dropped, bubbles: true, cancelable: true }));
        return null;";
    browser.client.execute(&format!("return (async () => {{ {made} }})()"), Vec::new()).await.unwrap();
    wait_for(Duration::from_secs(60), "both cards done", || async {
        let done = browser.eval("return [...document.querySelectorAll('#uploads .card[data-state=done] .name')].map(name => name.textContent).sort()").await;
        (done == serde_json::json!(["dropped.png", "pasted.png"])).then_some(())
    })
    .await;
    browser.screenshot("phone-dark-pasted-and-dropped").await;
    browser.close().await;
}

#[tokio::test]
async fn the_pages_have_a_dark_scheme() {
    let app = TestApp::spawn().await;
    let id = app.upload_one("dark.jpg", images::fixture("exif-orientation/Landscape_2.jpg")).await;
    app.wait_for_thumbnails(id).await;
    let browser = Browser::start_with(&["--blink-settings=preferredColorScheme=0"]).await;
    browser.client.goto(&app.url(&format!("/images/{id}"))).await.unwrap();
    let background = browser.eval("return getComputedStyle(document.documentElement).backgroundColor").await;
    assert_eq!(background, "rgb(18, 21, 28)", "the dark paper");
    browser.screenshot("image-page-dark").await;
    browser.close().await;
}

#[tokio::test]
async fn the_dashboard_fits_a_phone_and_says_which_failures_a_replay_can_mend() {
    let app = TestApp::spawn_with(crate::harness::Options { admin_token: Some("a-phone-dashboard-token".into()), ..Default::default() }).await;
    let broken = app.upload_one("broken.jpg", images::corrupt_jpeg()).await;
    assert_eq!(app.wait_until_settled(broken).await["state"], "failed");
    let browser = Browser::start_with(&["--window-size=390,844"]).await;
    let address = app.address.trim_start_matches("http://");
    browser.client.goto(&format!("http://ops:a-phone-dashboard-token@{address}/admin")).await.unwrap();
    let ids = browser.eval("return [...document.querySelectorAll('.dead .ids code')].map(code => code.textContent)").await;
    assert_eq!(ids, serde_json::json!([broken.to_string()]), "whole ids, to copy");
    let actions = browser.eval("return [...document.querySelectorAll('main form:not(.takedown) button')].map(button => button.textContent)").await;
    assert_eq!(actions, serde_json::json!(["Discard these"]), "no replay for the image's own fault, and no “Replay all” with nothing to replay");
    let overflow = browser.eval("return document.documentElement.scrollWidth - window.innerWidth").await;
    assert!(overflow.as_i64().unwrap() <= 0, "the page itself does not scroll sideways ({overflow} px)");
    let out_of_sight = browser
        .eval("return [...document.querySelectorAll('.dead button')].filter(button => button.getBoundingClientRect().right > window.innerWidth).length")
        .await;
    assert_eq!(out_of_sight, 0, "each reason's action is in sight, with no table to scroll sideways");
    browser.screenshot("dashboard-phone").await;
    browser.close().await;
}

#[tokio::test]
async fn after_a_reload_an_image_still_being_made_is_shown_once_and_finishes() {
    let mut app = TestApp::spawn_without_worker().await;
    let browser = Browser::start().await;
    browser.client.goto(&app.url("/")).await.unwrap();
    pick_files(&browser, &[fixture_path("exif-orientation/Landscape_5.jpg")]).await;
    let id = wait_for(Duration::from_secs(30), "the card to be accepted", || async {
        let id = browser.eval("return document.querySelector('#uploads .card[data-state=processing]')?.dataset.image ?? null").await;
        id.as_str().map(str::to_owned)
    })
    .await;

    browser.client.goto(&app.url("/")).await.unwrap();
    let shown = browser.eval(&format!("return document.querySelectorAll('[data-image=\"{id}\"]').length")).await;
    assert_eq!(shown, 1, "once: under “Your uploads”, not also as a restored card");

    app.start_worker().await;
    wait_for(Duration::from_secs(60), "its thumbnail after the reload", || async {
        let ready = browser.eval(&format!("return document.querySelectorAll('[data-image=\"{id}\"] .thumb[data-state=ready] img').length")).await;
        (ready == 1).then_some(())
    })
    .await;
    browser.close().await;
}

#[tokio::test]
async fn a_portrait_photo_in_your_uploads_is_shown_whole_on_a_phone() {
    let app = TestApp::spawn().await;
    let browser = Browser::start_with(&["--window-size=390,844"]).await;
    browser.client.goto(&app.url("/")).await.unwrap();
    pick_files(&browser, &[fixture_path("exif-orientation/Portrait_1.jpg")]).await;
    wait_for(Duration::from_secs(60), "the upload's thumbnail", || async {
        (browser.eval("return document.querySelectorAll('#uploads .card[data-state=done]').length").await == 1).then_some(())
    })
    .await;
    browser.client.goto(&app.url("/")).await.unwrap();
    let fits = wait_for(Duration::from_secs(20), "the listed thumbnail to load", || async {
        let fits = browser
            .eval(
                "const img = document.querySelector('.batch .thumb img'); if (!img?.complete || img.naturalWidth === 0) return null;
                 const frame = img.closest('.frame').getBoundingClientRect(), shown = img.getBoundingClientRect();
                 return [img.naturalHeight > img.naturalWidth, shown.top >= frame.top - 0.5 && shown.bottom <= frame.bottom + 0.5 && shown.height >= 100];",
            )
            .await;
        (!fits.is_null()).then_some(fits)
    })
    .await;
    browser.screenshot("yours-portrait-phone").await;
    assert_eq!(fits, serde_json::json!([true, true]), "a portrait thumbnail, whole inside its frame");
    browser.close().await;
}

#[tokio::test]
async fn a_file_picked_again_is_said_to_be_here_already_and_once_deleted_it_can_be_uploaded_anew() {
    let app = TestApp::spawn().await;
    let browser = Browser::start().await;
    browser.client.goto(&app.url("/")).await.unwrap();
    let photo = fixture_path("exif-orientation/Landscape_3.jpg");
    pick_files(&browser, std::slice::from_ref(&photo)).await;
    wait_for(Duration::from_secs(60), "the first upload done", || async {
        (browser.eval("return document.querySelectorAll('#uploads .card[data-state=done]').length").await == 1).then_some(())
    })
    .await;

    pick_files(&browser, std::slice::from_ref(&photo)).await;
    let said = browser.eval("const notice = document.querySelector('#picked-again'); return notice && !notice.hidden ? notice.textContent : null").await;
    assert_eq!(said, "“Landscape_3.jpg” is already on this page: it is uploaded once.");
    assert_eq!(browser.eval("return document.querySelectorAll('#uploads .card').length").await, 1, "no second card");
    assert_eq!(browser.eval("return document.querySelector('#summary').hidden").await, false, "the summary stays");
    browser.screenshot("picked-again").await;

    browser.client.find(Locator::Css("#uploads .card button.delete")).await.unwrap().click().await.unwrap();
    wait_for(Duration::from_secs(20), "the card to say its image was deleted", || async {
        (browser.eval("return document.querySelector('#uploads .card').dataset.state").await == "deleted").then_some(())
    })
    .await;
    pick_files(&browser, std::slice::from_ref(&photo)).await;
    wait_for(Duration::from_secs(60), "the file uploaded anew", || async {
        (browser.eval("return document.querySelectorAll('#uploads .card[data-state=done]').length").await == 1).then_some(())
    })
    .await;
    assert_eq!(browser.eval("return document.querySelectorAll('#uploads .card').length").await, 2, "the deleted one and the new one");
    browser.close().await;
}

#[tokio::test]
async fn a_cut_off_jpeg_keeps_its_thumbnails_and_its_owner_is_told_to_upload_it_again() {
    let app = TestApp::spawn().await;
    let whole = images::fixture("exif-orientation/Portrait_1.jpg");
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut-off.jpg");
    std::fs::write(&cut, &whole[..whole.len() * 6 / 10]).unwrap();
    let browser = Browser::start().await;
    browser.client.goto(&app.url("/")).await.unwrap();
    pick_files(&browser, &[cut.display().to_string()]).await;
    let said = wait_for(Duration::from_secs(60), "the card to say the file was cut off", || async {
        let status = browser.eval("return document.querySelector('#uploads .card[data-state=done] .card-status')?.textContent ?? null").await;
        status.as_str().filter(|status| status.contains("cut off")).map(str::to_owned)
    })
    .await;
    assert!(said.contains("Upload the whole file again"), "{said}");
    assert_eq!(browser.eval("return document.querySelectorAll('#uploads .card .thumb[data-state=ready] img').length").await, 1, "its thumbnail is shown");
    browser.screenshot("cut-off-card").await;

    let id: thumbq_contract::ImageId = browser.eval("return document.querySelector('#uploads .card').dataset.image").await.as_str().unwrap().parse().unwrap();
    let status = app.status(id).await;
    assert_eq!((status["state"].as_str(), status["cut_off"].as_bool()), (Some("done"), Some(true)), "{status}");
    let thumbnail = app.get(&format!("/thumbs/{id}/small")).await;
    assert_eq!(thumbnail.headers()["x-image-warning"], "cut-off");
    browser.client.goto(&app.url(&format!("/images/{id}"))).await.unwrap();
    let warning = browser.eval("return document.querySelector('.image .warning')?.textContent ?? ''").await;
    assert!(warning.as_str().unwrap().contains("This file was cut off"), "{warning}");
    browser.screenshot("cut-off-image-page").await;

    // A whole file says nothing of the kind.
    let (whole_id, _) = app.upload_owned("whole.jpg", whole).await;
    let status = wait_for(Duration::from_secs(60), "the whole file done", || async {
        let status = app.status(whole_id).await;
        (status["state"] == "done").then_some(status)
    })
    .await;
    assert_eq!(status["cut_off"], false);
    browser.close().await;
}

#[tokio::test]
async fn a_job_no_worker_takes_says_it_waits_for_a_worker_until_one_starts() {
    let mut app = TestApp::spawn_without_worker().await;
    let browser = Browser::start().await;
    browser.client.goto(&app.url("/")).await.unwrap();
    pick_files(&browser, &[fixture_path("exif-orientation/Landscape_2.jpg")]).await;
    let said = wait_for(Duration::from_secs(40), "the card to say it waits for a worker", || async {
        let note = browser.eval("return document.querySelector('#uploads .card .waiting')?.textContent ?? null").await;
        note.as_str().map(str::to_owned)
    })
    .await;
    assert_eq!(said, "Waiting for a worker: none is running just now. Its thumbnails will be made as soon as one starts; nothing is lost.");
    browser.screenshot("waiting-for-a-worker").await;
    let queue: serde_json::Value = app.get("/api/queue").await.json().await.unwrap();
    assert_eq!((queue["jobs"].as_u64(), queue["workers"].as_u64()), (Some(1), Some(0)), "{queue}");

    app.start_worker().await;
    wait_for(Duration::from_secs(60), "the thumbnail, and the note gone", || async {
        let state =
            browser.eval("return [document.querySelector('#uploads .card').dataset.state, document.querySelectorAll('#uploads .waiting').length]").await;
        (state == serde_json::json!(["done", 0])).then_some(())
    })
    .await;
    browser.close().await;
}

#[tokio::test]
async fn on_a_phone_a_folder_of_photos_uploads_in_order_with_large_targets_and_a_heic_shows_a_placeholder() {
    let app = TestApp::spawn_without_worker().await;
    let browser = Browser::start_with(&["--window-size=390,844"]).await;
    browser.client.goto(&app.url("/")).await.unwrap();
    // With the script, the control is the large label; no Upload button that does nothing.
    assert_eq!(browser.eval("return document.querySelector('form.upload button[type=submit]').hidden").await, true);
    let label = browser.eval("const box = document.querySelector('form.upload .drop').getBoundingClientRect(); return [box.width, box.height]").await;
    assert!(label[0].as_f64().unwrap() >= 300.0 && label[1].as_f64().unwrap() >= 44.0, "{label}");

    // An album: photos in folders, with a sidecar and a hidden file beside them.
    let album = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(album.path().join("day 2")).unwrap();
    std::fs::write(album.path().join("day 2/IMG_0002.jpg"), images::fixture("exif-orientation/Landscape_2.jpg")).unwrap();
    std::fs::write(album.path().join("IMG_0001.jpg"), images::fixture("exif-orientation/Landscape_1.jpg")).unwrap();
    std::fs::write(album.path().join("IMG_0001.xmp"), "<x:xmpmeta/>").unwrap();
    std::fs::write(album.path().join(".DS_Store"), "").unwrap();
    let folder = browser.client.find(Locator::Css("input#folder")).await.unwrap();
    folder.send_keys(&album.path().display().to_string()).await.unwrap();
    let accepted = wait_for(Duration::from_secs(30), "the album's two photos accepted", || async {
        let names = browser.eval("return [...document.querySelectorAll('#uploads .card[data-image] .name')].map(name => name.textContent)").await;
        (names.as_array().is_some_and(|names| names.len() == 2)).then_some(names)
    })
    .await;
    assert_eq!(accepted, serde_json::json!(["IMG_0001.jpg", "IMG_0002.jpg"]), "the folder's photos, in its order");
    let notice = browser.eval("return document.querySelector('#picked-again').textContent").await;
    assert_eq!(notice, "2 files that are not a photo were left out.");

    // Every button and link of a card is a target a finger hits.
    let small = browser
        .eval("return [...document.querySelectorAll('#uploads .card button, #uploads .card a')].filter(element => element.offsetParent !== null).map(element => element.getBoundingClientRect()).filter(box => box.height < 44 || box.width < 44).length")
        .await;
    assert_eq!(small, 0, "no target under 44 px");

    let heic = format!("{}/fixtures/pillow-heif/L_exif_xmp_iptc.heic", env!("CARGO_MANIFEST_DIR"));
    pick_files(&browser, &[heic]).await;
    let placeholder = wait_for(Duration::from_secs(10), "the HEIC's card", || async {
        let text = browser.eval("return [...document.querySelectorAll('#uploads .card')].find(card => card.querySelector('.name').textContent.endsWith('.heic'))?.querySelector('.frame').textContent ?? null").await;
        text.as_str().map(str::to_owned)
    })
    .await;
    assert_eq!(placeholder, "HEIC: its picture comes with its thumbnail", "not a blank frame");
    browser.screenshot("phone-folder-and-heic").await;
    browser.close().await;
}

#[tokio::test]
async fn a_tab_left_on_a_finished_image_learns_it_was_deleted_when_looked_at_again() {
    let app = TestApp::spawn().await;
    let (id, owner) = app.upload_owned("finished.jpg", images::fixture("exif-orientation/Landscape_4.jpg")).await;
    app.wait_until_settled(id).await;
    let browser = Browser::start().await;
    browser.client.goto(&app.url(&format!("/images/{id}"))).await.unwrap();
    assert_eq!(browser.eval("return thumbqLive.source").await, serde_json::Value::Null, "nothing pending: no stream to hear a delete on");

    // Deleted elsewhere (another tab, another device) while this tab was in the background.
    assert_eq!(app.delete(&format!("/images/{id}"), Some(&owner)).await.status(), reqwest::StatusCode::NO_CONTENT);
    browser
        .eval("thumbqLive.lookedAgainAt = 0; Object.defineProperty(document, 'visibilityState', { value: 'visible', configurable: true }); document.dispatchEvent(new Event('visibilitychange')); return null")
        .await;
    wait_for(Duration::from_secs(10), "the page to show the image deleted", || async {
        (browser.eval("return document.querySelector('[data-image]').dataset.state").await == "deleted").then_some(())
    })
    .await;
    assert_eq!(browser.client.find(Locator::Css(".status")).await.unwrap().text().await.unwrap(), "This image was deleted.");
    browser.close().await;
}

#[tokio::test]
async fn a_batch_can_be_cancelled_at_once_and_removing_a_card_keeps_the_keyboards_place() {
    let app = TestApp::spawn().await;
    let browser = Browser::start().await;
    browser.client.goto(&app.url("/")).await.unwrap();
    browser.eval(HOLD_UPLOADS).await;
    let files: Vec<String> = (1..=4).map(|n| fixture_path(&format!("exif-orientation/Portrait_{n}.jpg"))).collect();
    pick_files(&browser, &files).await;
    pick_files(&browser, &files[..1]).await;
    assert_eq!(browser.eval("return document.querySelector('#picked-again').hidden").await, false);

    // By keyboard: Remove on the first card, and the focus goes to the next card's button, not the page's top.
    browser.eval("document.querySelector('#uploads .card button.remove').focus(); return null").await;
    browser.client.active_element().await.unwrap().send_keys("\u{E007}").await.unwrap();
    let focused =
        browser.eval("return [document.activeElement.textContent, document.activeElement.closest('.card')?.querySelector('.name').textContent]").await;
    assert_eq!(focused, serde_json::json!(["Remove", "Portrait_2.jpg"]));
    assert_eq!(browser.eval("return document.querySelector('#picked-again').hidden").await, true, "what was said of a removed card goes with it");

    let cancel = browser.client.find(Locator::Css(".batch-actions .cancel-all")).await.unwrap();
    assert!(cancel.is_displayed().await.unwrap(), "three files still to go: one button cancels them all");
    browser.screenshot("batch-cancel-all").await;
    cancel.click().await.unwrap();
    assert_eq!(browser.eval("return document.querySelectorAll('#uploads .card').length").await, 0);
    assert_eq!(browser.eval("return document.activeElement.id").await, "file", "back to the chooser");
    browser.eval("window.releaseUploads(); return null").await;
    // Nothing of the cancelled files is kept: no image, now or a moment later.
    let home = app.get("/").await.text().await.unwrap();
    assert!(!home.contains("Portrait_"), "{home}");
    assert!(!app.data_dir.path().join("originals").exists() || std::fs::read_dir(app.data_dir.path().join("originals")).unwrap().count() == 0);
    browser.close().await;
}
