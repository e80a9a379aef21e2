//! The reconciler sets right what a crash left: an upload cut short before its
//! commit, a pending image whose job was lost, a delete cut short, an original gone.

use std::time::Duration;

use reqwest::StatusCode;
use thumbq_contract::{ImageId, SourceFormat, Step, StorageKey};
use thumbq_repo::testing::{WritesHeld, uploaded};
use thumbq_repo::{Lease, Repository};

use crate::harness::{Options, TestApp, wait_for};
use crate::images;
use crate::processes::WebProcess;

/// A reconciler that runs every second, with a grace of two and images stalled after three.
fn quick_reconciler(settings: &mut thumbq_web::Settings) {
    settings.reconcile_every_secs = 1;
    settings.stray_grace_secs = 2;
    settings.stalled_after_secs = 3;
}

async fn open(app: &TestApp) -> Repository {
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    Repository::open(&app.database(), shutdown).await.expect("the test's database opens")
}

fn original_path(app: &TestApp, id: ImageId) -> std::path::PathBuf {
    app.data_dir.path().join(StorageKey::Original(id).relative_path())
}

#[tokio::test]
async fn a_web_server_killed_between_storing_an_original_and_its_commit_leaves_nothing_behind() {
    let app = TestApp::spawn_with(Options { with_worker: false, web: quick_reconciler, ..Options::default() }).await;
    let web = WebProcess::start(&app, None, &[]).await;
    // The upload's commit waits behind the test's lock; the process dies meanwhile.
    let held = WritesHeld::take(&app.database()).await;
    let upload = {
        let url = web.url("/images");
        tokio::spawn(async move {
            let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(images::jpeg(320, 240)).file_name("cut.jpg"));
            crate::harness::http_client().post(url).header("accept", "application/json").multipart(form).send().await.map(|response| response.status())
        })
    };
    let originals = app.data_dir.path().join("originals");
    let id: ImageId = wait_for(Duration::from_secs(20), "the original to be stored", || async {
        std::fs::read_dir(&originals).ok()?.filter_map(Result::ok).find_map(|entry| entry.file_name().to_str()?.parse().ok())
    })
    .await;
    web.kill();
    assert!(upload.await.unwrap().is_err(), "the client never heard “accepted”");
    held.release().await;

    // Never accepted, so no record; the reconciler removes the original once its grace is over.
    wait_for(Duration::from_secs(30), "the reconciler to remove the stray original", || async { (!original_path(&app, id).exists()).then_some(()) }).await;
    assert_eq!(app.get(&format!("/api/images/{id}")).await.status(), StatusCode::NOT_FOUND);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"thumbq_web_reconciler_actions_total{action="strays_removed"} 1"#), "{metrics}");
}

#[tokio::test]
async fn the_reconciler_queues_lost_jobs_again_finishes_deletes_and_fails_images_whose_original_is_gone() {
    let app = TestApp::spawn_with(Options { web: quick_reconciler, ..Options::default() }).await;
    let repo = open(&app).await;
    let by = |step: &str| Step { step: step.into(), at: 1, by: "test@host:1".into() };

    // A pending image whose job never reached the queue (its outbox row is gone, nothing was published).
    let lost = ImageId::new();
    std::fs::write(original_path(&app, lost), images::jpeg(640, 480)).unwrap();
    repo.add_image(&uploaded(lost, SourceFormat::Jpeg, 640, 480), &[by("stored")], None, &Lease::none()).await.unwrap();
    repo.job_queued(lost, &by("the message was lost")).await.unwrap();

    // A delete whose process died after its commit, before it removed the files.
    let deleted = app.upload_one("deleted.jpg", images::jpeg(320, 240)).await;
    assert_eq!(app.wait_until_settled(deleted).await["state"], "done");
    repo.mark_deleted(deleted, 1).await.unwrap();
    assert!(original_path(&app, deleted).exists());

    // A pending image whose original is gone from the store.
    let gone = ImageId::new();
    repo.add_image(&uploaded(gone, SourceFormat::Jpeg, 640, 480), &[by("stored")], None, &Lease::none()).await.unwrap();
    repo.job_queued(gone, &by("the message was lost")).await.unwrap();

    let status = app.wait_until_settled(lost).await;
    assert_eq!(status["state"], "done", "{status}");
    let steps = status["timeline"].as_array().unwrap();
    assert!(steps.iter().any(|step| step["step"].as_str().unwrap().starts_with("queued again by the reconciler")), "{status}");

    wait_for(Duration::from_secs(30), "the reconciler to finish the delete", || async {
        (!original_path(&app, deleted).exists() && !app.data_dir.path().join("thumbs").join(deleted.to_string()).exists()).then_some(())
    })
    .await;
    assert_eq!(app.get(&format!("/thumbs/{deleted}/small")).await.status(), StatusCode::GONE);

    let status = app.wait_until_settled(gone).await;
    assert_eq!((status["state"].as_str(), status["error"].as_str()), (Some("failed"), Some("Its original is missing from the store.")), "{status}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for action in ["requeued", "purged", "missing"] {
        assert!(!metrics.contains(&format!(r#"thumbq_web_reconciler_actions_total{{action="{action}"}} 0"#)), "{action}: {metrics}");
    }
    repo.close().await;
}
