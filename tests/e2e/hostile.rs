//! Hostile and broken input: every case ends in a clear refusal or a clean
//! state, never a 5xx, a crash, a hang or a file outside the data directory.

use std::time::Duration;

use reqwest::StatusCode;
use thumbq_contract::{ImageId, SourceFormat, Storage, StorageKey};

use crate::harness::{Options, TestApp, wait_for};
use crate::images::{self, fixture, png_claiming};
use crate::processes::WorkerProcess;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Refused at upload with this status; nothing kept.
    Refused(StatusCode),
    /// Accepted, and thumbnails made.
    Done,
    /// Accepted, and the job failed for good with a reason.
    Failed,
}

use Expect::{Done, Failed, Refused};

const UNSUPPORTED: StatusCode = StatusCode::UNSUPPORTED_MEDIA_TYPE;
const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

fn cases() -> Vec<(String, Vec<u8>, Expect)> {
    let mut cases: Vec<(String, Vec<u8>, Expect)> = vec![
        ("bomb-50000x50000.png".into(), png_claiming(50_000, 50_000), Refused(UNPROCESSABLE)),
        ("bomb-15000x15000.png".into(), png_claiming(15_000, 15_000), Refused(UNPROCESSABLE)),
        ("empty.jpg".into(), Vec::new(), Refused(StatusCode::BAD_REQUEST)),
        ("../../etc/passwd".into(), b"root:x:0:0:root:/root:/bin/bash\n".to_vec(), Refused(UNSUPPORTED)),
        ("drawing.svg".into(), br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#.to_vec(), Refused(UNSUPPORTED)),
        ("page.png".into(), b"<!doctype html><script>alert(1)</script>".to_vec(), Refused(UNSUPPORTED)),
        ("three-bytes.jpg".into(), vec![0xFF, 0xD8, 0xFF], Refused(UNPROCESSABLE)),
        // A GIF header with a script after it: it passes the upload's checks, and no decoder takes it.
        ("polyglot.gif".into(), b"GIF89a\x01\x00\x01\x00=1;alert(document.domain)//".to_vec(), Failed),
        ("corrupt.jpg".into(), images::corrupt_jpeg(), Failed),
        ("jpeg-with-zip.jpg".into(), [images::jpeg(300, 200), b"PK\x03\x04 a zip archive rides along".to_vec()].concat(), Done),
    ];
    let corpus: [(&str, Expect); 25] = [
        ("pillow/decompression_bomb.gif", Failed),
        ("pillow/decompression_bomb_extents.gif", Done),
        ("pillow/decompression_bomb.ico", Refused(UNSUPPORTED)),
        ("pillow/png_decompression_dos.png", Done),
        ("pillow/zero_width.gif", Refused(UNPROCESSABLE)),
        ("pillow/broken.png", Refused(UNPROCESSABLE)),
        // Stray bytes between segments, which libjpeg, Pillow and browsers skip.
        ("pillow/junk_jpeg_header.jpg", Done),
        ("pillow/photoshop-200dpi-broken.jpg", Done),
        // Its header is readable; its APP14 segment is too short for both decoders.
        ("pillow/truncated_app14.jpg", Failed),
        ("pillow/truncated_image.png", Failed),
        ("pillow/truncated_end_chunk.png", Failed),
        ("pillow/truncated_jpeg.jpg", Done),
        ("pillow/unknown_compression_method.png", Done),
        ("pillow/hopper_16bit_qtables.jpg", Done),
        ("pillow/pil_sample_cmyk.jpg", Done),
        ("pillow/jpeg_ff00_header.jpg", Done),
        ("pillow/iss634.gif", Done),
        ("pillow/iss634.webp", Done),
        ("pillow/sugarshack_bad_mpo_header.jpg", Done),
        ("pillow/invalid-exif.jpg", Done),
        ("pillow/p_16.png", Done),
        ("pillow/tRNS_null_1x1.png", Done),
        ("pillow/anim_frame1.webp", Done),
        ("pillow/transparent.webp", Done),
        ("pillow/hopper_idat_after_image_end.png", Done),
    ];
    for (path, expect) in corpus {
        cases.push((path.to_owned(), fixture(path), expect));
    }
    // Every corrupt PngSuite file: a bad signature is refused at upload, the rest fail in the worker.
    for name in ["xcrn0g04", "xlfn0g04", "xs1n0g01", "xs2n0g01", "xs4n0g01", "xs7n0g01"] {
        cases.push((format!("pngsuite/{name}.png"), fixture(&format!("pngsuite/{name}.png")), Refused(UNSUPPORTED)));
    }
    for name in ["xc1n0g08", "xc9n2c08", "xcsn0g01", "xd0n2c08", "xd3n2c08", "xd9n2c08", "xdtn0g01", "xhdn0g08"] {
        cases.push((format!("pngsuite/{name}.png"), fixture(&format!("pngsuite/{name}.png")), Failed));
    }
    cases
}

#[tokio::test]
async fn every_bad_input_ends_in_a_clear_refusal_or_a_clean_state() {
    let app = TestApp::spawn().await;
    let mut accepted: Vec<(String, ImageId, Expect)> = Vec::new();
    let mut outcomes = Vec::new();

    for (name, bytes, expect) in cases() {
        let response = app.upload_json(&[(name.as_str(), bytes, "image/png")]).await;
        let status = response.status();
        assert!(!status.is_server_error(), "{name}: {status}");
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        match expect {
            Refused(wanted) => {
                assert_eq!(status, wanted, "{name}: {body}");
                assert!(body["error"].as_str().is_some_and(|message| message.ends_with('.')), "{name}: {body}");
                assert_eq!(body["refused"][0]["status"], wanted.as_u16(), "{name}: each refused file says why: {body}");
                outcomes.push(format!("{name}: {status}"));
            }
            Done | Failed => {
                assert_eq!(status, StatusCode::ACCEPTED, "{name}: {body}");
                let id = body["images"][0]["id"].as_str().unwrap().parse().unwrap();
                accepted.push((name, id, expect));
            }
        }
    }
    for (name, id, expect) in &accepted {
        let status = app.wait_until_settled(*id).await;
        let state = status["state"].as_str().unwrap();
        assert_eq!(state, if *expect == Done { "done" } else { "failed" }, "{name}: {status}");
        if *expect == Failed {
            let reason = status["error"].as_str().unwrap();
            assert!(reason.ends_with('.') && reason.len() > 20, "{name}: a reason a person can read: {reason}");
            assert_eq!(app.get(&format!("/thumbs/{id}/small")).await.status(), StatusCode::GONE);
        }
        outcomes.push(format!("{name}: {state} {}", status["error"].as_str().unwrap_or("")));
    }

    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK, "the web server is still up");
    let jpeg_with_zip = accepted.iter().find(|(name, ..)| name == "jpeg-with-zip.jpg").unwrap().1;
    for (_, bytes) in app.wait_for_thumbnails(jpeg_with_zip).await {
        assert!(!bytes.windows(4).any(|window| window == b"PK\x03\x04"), "the rider is not carried into thumbnails");
    }
    let accepted_ids: Vec<String> = accepted.iter().map(|(_, id, _)| id.to_string()).collect();
    for file in app.stored_files() {
        let top = file.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
        assert!(["originals", "thumbs", "spool"].contains(&top.as_str()), "unexpected file {}", file.display());
        if top == "originals" {
            assert!(accepted_ids.contains(&file.file_name().unwrap().to_string_lossy().into_owned()), "only accepted uploads are kept");
        }
    }
    eprintln!("bad input, {} cases:\n  {}", outcomes.len(), outcomes.join("\n  "));
}

#[tokio::test]
async fn a_decompression_bomb_that_reaches_a_worker_is_refused_before_it_allocates() {
    // Embedded mode, and the record with its job written straight into the
    // database: as if a client had got past the web server's header check.
    let app = TestApp::spawn_with(Options { with_worker: false, amqp_url: None, ..Options::default() }).await;
    let storage = Storage::new(app.data_dir.path());
    let id = ImageId::new();
    std::fs::write(storage.path(&StorageKey::Original(id)), png_claiming(19_000, 19_000)).unwrap();
    let repo = thumbq_repo::Repository::open_now(&app.database()).await.unwrap();
    repo.add_image(&thumbq_repo::testing::uploaded(id, SourceFormat::Png, 19_000, 19_000), &[], None, &thumbq_repo::Lease::none()).await.unwrap();
    let worker = WorkerProcess::start(&app, 1);

    let status = app.wait_until_settled(id).await;

    assert_eq!(status["state"], "failed");
    assert!(status["error"].as_str().unwrap().contains("100 megapixels"), "{status}");
    let peak_kib = worker.peak_memory_kib();
    assert!(peak_kib < 100 * 1024, "the worker's peak memory stays small: {peak_kib} KiB");
    eprintln!("bomb 19000x19000 (1.4 GB of pixels): worker peak RSS {} MiB", peak_kib / 1024);
    // A settled job must not keep the worker busy.
    wait_for(Duration::from_secs(10), "the embedded queue to be empty", || async { (repo.outbox_len().await.unwrap() == 0).then_some(()) }).await;
}
