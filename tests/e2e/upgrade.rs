//! A data directory written by the release before the repository: its facts
//! were small files beside the blobs. A web server started on it gives each of
//! its images a record, and nothing of them is lost.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use thumbq_contract::{FailureRecord, ImageId, OwnerRecord, ResizeJob, SourceFormat, Storage, StorageKey, ThumbFormat, ThumbSize, Timeline};

use crate::harness::{Options, TestApp, wait_for};
use crate::images;

/// The key of the earlier release's uploader, as their browser still holds it.
const KEY: &str = "b3duZXIta2V5LW9mLWFuLWVhcmxpZXItcmVsZWFzZSE";

/// Ids of the images the earlier release left: done, failed, pending with its job waiting, deleted by a delete cut short.
const DONE: &str = "01900000-0000-7000-8000-000000000001";
const FAILED: &str = "01900000-0000-7000-8000-000000000002";
const PENDING: &str = "01900000-0000-7000-8000-000000000003";
const DELETED: &str = "01900000-0000-7000-8000-000000000004";

fn id(text: &str) -> ImageId {
    text.parse().unwrap()
}

fn write(storage: &Storage, key: StorageKey, bytes: &[u8]) {
    let path = storage.path(&key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// The files the earlier release wrote for those four images.
fn earlier_release(dir: &Path) {
    let storage = Storage::new(dir);
    let owner = thumbq_web::owner::OwnerKey::parse(KEY).expect("a key as thumbq makes them").owner();
    for (text, name) in [(DONE, "done.jpg"), (FAILED, "failed.jpg"), (PENDING, "pending.jpg")] {
        let record = OwnerRecord { owner, name: Some(name.to_owned()), format: Some(SourceFormat::Jpeg) };
        write(&storage, StorageKey::Owner(id(text)), &serde_json::to_vec(&record).unwrap());
        write(&storage, StorageKey::OwnedImage(owner, id(text)), b"");
        write(&storage, StorageKey::Original(id(text)), &images::jpeg(640, 480));
    }
    for size in ThumbSize::ALL {
        write(&storage, StorageKey::Thumbnail(id(DONE), size, ThumbFormat::Jpeg), &images::jpeg(200, 150));
    }
    write(&storage, StorageKey::Placeholder(id(DONE)), &[0x1f, 0x08, 0x0a, 0x17, 0x85, 0x87, 0x77, 0x88]);
    let mut timeline = Timeline::default();
    timeline.push("received", 1_000, "web@old:1");
    timeline.push("stored", 1_010, "web@old:1");
    write(&storage, StorageKey::Timeline(id(DONE), "web"), &serde_json::to_vec(&timeline).unwrap());
    let failure = FailureRecord { reason: "The file is damaged.".into(), failed_at_ms: 2_000, retryable: false };
    write(&storage, StorageKey::Failure(id(FAILED)), &serde_json::to_vec(&failure).unwrap());
    write(&storage, StorageKey::Original(id(DELETED)), &images::jpeg(64, 64));
    write(&storage, StorageKey::Tombstone(id(DELETED)), b"3000");
    let spool = thumbq_web::migrate::spool::Spool::open(storage.job_spool()).unwrap();
    spool.push(&ResizeJob::new(id(PENDING), SourceFormat::Jpeg, 0).to_bytes()).unwrap();
}

#[tokio::test]
async fn a_data_directory_of_the_earlier_release_keeps_every_image_and_its_waiting_job_finishes() {
    let app = TestApp::spawn_with(Options { amqp_url: None, before_start: earlier_release, ..Options::default() }).await;

    // The job that waited in the spool finishes once its image has a record.
    let pending = app.wait_until_settled(id(PENDING)).await;
    assert_eq!((pending["state"].as_str(), pending["name"].as_str()), (Some("done"), Some("pending.jpg")), "{pending}");
    let done = app.status(id(DONE)).await;
    assert_eq!(done["state"], "done", "{done}");
    assert!(done["placeholder"].is_string(), "{done}");
    let steps: Vec<&str> = done["timeline"].as_array().unwrap().iter().filter_map(|step| step["step"].as_str()).collect();
    assert_eq!(steps, ["received", "stored"], "its timeline came along");
    assert_eq!(app.get(&format!("/thumbs/{DONE}/small")).await.status(), StatusCode::OK);
    let failed = app.status(id(FAILED)).await;
    assert_eq!((failed["state"].as_str(), failed["error"].as_str()), (Some("failed"), Some("The file is damaged.")), "{failed}");
    assert_eq!(app.get(&format!("/api/images/{DELETED}")).await.status(), StatusCode::NOT_FOUND, "a deleted image stays gone");
    // The reconciler finishes the delete the earlier release cut short: an original with no record, long past its grace.
    let deleted_original = app.data_dir.path().join(StorageKey::Original(id(DELETED)).relative_path());
    wait_for(Duration::from_secs(20), "the reconciler to remove the deleted image's original", || async { (!deleted_original.exists()).then_some(()) }).await;

    // Its owner still sees their uploads, and still owns them.
    let home = app.get_as("/", KEY).await.text().await.unwrap();
    assert!(["done.jpg", "failed.jpg", "pending.jpg"].iter().all(|name| home.contains(name)), "{home}");
    assert_eq!(app.get_as(&format!("/originals/{DONE}"), KEY).await.status(), StatusCode::OK);

    // Run again, as an operator may: nothing changes.
    let store = thumbq_store::Store::local(app.data_dir.path());
    let repo = thumbq_repo::Repository::open_now(&app.database()).await.unwrap();
    let again = thumbq_web::migrate::migrate(&store, &repo).await.unwrap();
    assert_eq!(again, thumbq_web::migrate::Migrated { imported: 0, already: 3, deleted: 0 });
    wait_for(Duration::from_secs(5), "the pending image to stay done", || async { (app.status(id(PENDING)).await["state"] == "done").then_some(()) }).await;
}
