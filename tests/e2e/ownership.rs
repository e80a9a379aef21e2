//! Every upload belongs to whoever made it: no one else lists it, gets its
//! original or deletes it, and a delete leaves nothing, even racing a worker.

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use reqwest::StatusCode;
use thumbq_contract::{ImageId, ThumbSize};

use crate::harness::{TestApp, wait_for};
use crate::images;

/// Every URL of an image, and what each must answer once it is deleted.
fn urls_of(id: ImageId) -> Vec<String> {
    let mut urls = vec![format!("/images/{id}"), format!("/api/images/{id}"), format!("/originals/{id}"), format!("/images?ids={id}")];
    urls.extend(["small", "medium", "large"].map(|size| format!("/thumbs/{id}/{size}")));
    urls
}

#[tokio::test]
async fn two_uploaders_each_see_get_and_delete_only_what_is_theirs() {
    let app = TestApp::spawn().await;
    let (id, alice) = app.upload_owned("alice.jpg", images::jpeg(800, 600)).await;
    let (_, bob) = app.upload_owned("bob.jpg", images::jpeg(300, 200)).await;
    app.wait_for_thumbnails(id).await;
    // The job's last write: from here the delete alone removes what there is (a delete
    // during the job is the job's to finish, tested below).
    app.wait_until_settled(id).await;

    let bobs_home = app.get_as("/", &bob).await.text().await.unwrap();
    assert!(!bobs_home.contains(&id.to_string()), "Bob's home page does not list Alice's upload");
    assert!(app.get_as("/", &alice).await.text().await.unwrap().contains(&id.to_string()), "Alice's does");
    assert_eq!(app.get_as(&format!("/originals/{id}"), &bob).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("/originals/{id}")).await.status(), StatusCode::NOT_FOUND);
    let original = app.get_as(&format!("/originals/{id}"), &alice).await;
    assert_eq!(original.status(), StatusCode::OK);
    assert!(original.headers()["cache-control"].to_str().unwrap().contains("private"));
    assert_eq!(app.get(&format!("/thumbs/{id}/small")).await.status(), StatusCode::OK, "thumbnails are public by link");

    assert_eq!(app.delete(&format!("/images/{id}"), None).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.delete(&format!("/images/{id}"), Some(&bob)).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get_as(&format!("/originals/{id}"), &alice).await.status(), StatusCode::OK, "nothing changed");

    assert_eq!(app.delete(&format!("/images/{id}"), Some(&alice)).await.status(), StatusCode::NO_CONTENT);

    for url in urls_of(id) {
        let status = app.get_as(&url, &alice).await.status();
        assert!([StatusCode::NOT_FOUND, StatusCode::GONE].contains(&status), "{url} answered {status}");
    }
    assert_eq!(app.paths_naming(id), Vec::<std::path::PathBuf>::new(), "no file under the data directory names the image");
}

/// A worker that stops once the thumbnails of an image are made, before it
/// writes them, until the test lets it go.
struct PausedWorker {
    reached: tokio::sync::mpsc::UnboundedReceiver<ImageId>,
    go: mpsc::Sender<()>,
}

async fn start_pausing_worker(app: &mut TestApp) -> PausedWorker {
    let (reached_sender, reached) = tokio::sync::mpsc::unbounded_channel();
    let (go, go_receiver) = mpsc::channel::<()>();
    let go_receiver = Arc::new(Mutex::new(go_receiver));
    app.start_worker_with(move |context| {
        context.before_writing = Some(Arc::new(move |id, size| {
            // Held once, before the first size is written.
            if size != ThumbSize::Small {
                return;
            }
            let _ = reached_sender.send(id);
            // On the job's blocking thread: it waits here while the test deletes.
            let _ = go_receiver.lock().unwrap().recv_timeout(Duration::from_secs(60));
        }));
    })
    .await;
    PausedWorker { reached, go }
}

#[tokio::test]
async fn an_image_deleted_while_a_worker_makes_its_thumbnails_leaves_nothing_behind() {
    let mut app = TestApp::spawn_without_worker().await;
    let mut worker = start_pausing_worker(&mut app).await;
    let (id, owner) = app.upload_owned("racing.jpg", images::jpeg(1600, 1200)).await;

    let held = tokio::time::timeout(Duration::from_secs(60), worker.reached.recv()).await.expect("the worker reaches the image").unwrap();
    assert_eq!(held, id);
    assert_eq!(app.delete(&format!("/images/{id}"), Some(&owner)).await.status(), StatusCode::NO_CONTENT);
    // The worker now writes the thumbnails of an image that is gone.
    worker.go.send(()).unwrap();
    app.stop_worker().await;

    assert_eq!(app.paths_naming(id), Vec::<std::path::PathBuf>::new(), "what the worker wrote after the delete is removed");
    assert_eq!(app.queue_depth().await, 0, "the job was acked, not put back");
    for url in urls_of(id) {
        let status = app.get_as(&url, &owner).await.status();
        assert!([StatusCode::NOT_FOUND, StatusCode::GONE].contains(&status), "{url} answered {status}");
    }
}

#[tokio::test]
async fn a_job_of_an_image_deleted_before_any_worker_took_it_writes_nothing() {
    let mut app = TestApp::spawn_without_worker().await;
    let (id, owner) = app.upload_owned("queued.jpg", images::jpeg(640, 480)).await;
    assert_eq!(app.queue_depth().await, 1);
    assert_eq!(app.delete(&format!("/images/{id}"), Some(&owner)).await.status(), StatusCode::NO_CONTENT);

    app.start_worker().await;
    wait_for(Duration::from_secs(30), "the worker to take the job", || async { (app.queue_depth().await == 0).then_some(()) }).await;
    app.stop_worker().await;

    assert_eq!(app.paths_naming(id), Vec::<std::path::PathBuf>::new());
    assert_eq!(app.get(&format!("/thumbs/{id}/small")).await.status(), StatusCode::GONE);
}
