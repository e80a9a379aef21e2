//! A web server as `AppState::build` makes it, in a temporary data directory,
//! asked through its router with `oneshot`: no socket, no broker (jobs go to
//! the embedded queue, in a SQLite database in that directory).

use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, Response, header};
use thumbq_deployment::Deployment;
use thumbq_web::{AppState, Settings, router};
use tower::ServiceExt;

/// A small PNG of PngSuite's.
pub const PNG: &[u8] = include_bytes!("../../../tests/fixtures/pngsuite/basn2c08.png");

pub struct TestServer {
    pub state: AppState,
    pub data_dir: tempfile::TempDir,
    /// An owner's key, as an API client sends it.
    pub bearer: String,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(change: impl FnOnce(&mut Settings)) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::for_tests(Deployment::new(data_dir.path(), None, "thumbq.unused"));
        change(&mut settings);
        let (state, _stop) = AppState::build(settings).await.unwrap();
        Self { state, data_dir, bearer: format!("Bearer {}", a_key()) }
    }

    pub fn app(&self) -> Router {
        router(self.state.clone())
    }

    pub async fn send(&self, request: Request<Body>) -> Response<Body> {
        self.app().oneshot(request).await.unwrap()
    }

    pub async fn get(&self, path: &str, headers: &[(header::HeaderName, &str)]) -> Response<Body> {
        self.without_body(Method::GET, path, headers).await
    }

    pub async fn delete(&self, path: &str, headers: &[(header::HeaderName, &str)]) -> Response<Body> {
        self.without_body(Method::DELETE, path, headers).await
    }

    async fn without_body(&self, method: Method, path: &str, headers: &[(header::HeaderName, &str)]) -> Response<Body> {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(name, *value);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    /// Every file and folder below the data directory's `folder` (all of it
    /// for ""), relative to the data directory, in order.
    pub fn paths_below(&self, folder: &str) -> Vec<PathBuf> {
        fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            for path in entries.flatten().map(|entry| entry.path()) {
                if path.is_dir() {
                    walk(&path, found);
                }
                found.push(path);
            }
        }
        let mut found = Vec::new();
        walk(&self.data_dir.path().join(folder), &mut found);
        let mut relative: Vec<PathBuf> = found.into_iter().map(|path| path.strip_prefix(self.data_dir.path()).unwrap().to_owned()).collect();
        relative.sort();
        relative
    }
}

/// An owner key of the kind the server hands out.
pub fn a_key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes().repeat(2))
}

/// The test PNG with bytes after its end that no decoder reads: the same picture, another file.
pub fn distinct_png() -> Vec<u8> {
    let mut png = PNG.to_vec();
    png.extend(uuid::Uuid::new_v4().as_bytes());
    png
}

pub async fn json(response: Response<Body>) -> serde_json::Value {
    serde_json::from_slice(&text(response).await.into_bytes()).unwrap()
}

pub async fn text(response: Response<Body>) -> String {
    String::from_utf8(axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap()
}
