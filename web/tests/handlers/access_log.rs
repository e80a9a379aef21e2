//! Operators can tell who did what: one line per answered request, and the
//! client's address on every line a request logs (a failed dashboard login too).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use crate::server::TestServer;

/// What the servers of this test binary logged, as text.
#[derive(Clone, Default)]
struct Logged(Arc<Mutex<Vec<u8>>>);

impl Write for Logged {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The one subscriber of this process, installed by the first test that
/// reads the log. A subscriber scoped to one test's future (`with_subscriber`)
/// raced with the other tests' threads over tracing's per-callsite cache, and
/// now and then lost the request's span or the whole line. Every test's
/// requests log here (at INFO, kept in memory for the binary's life, and not
/// shown with a failing test's output), so each test finds its own lines by
/// their request id.
fn logged() -> &'static Logged {
    static LOGGED: OnceLock<Logged> = OnceLock::new();
    LOGGED.get_or_init(|| {
        let logged = Logged::default();
        let writer = logged.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_max_level(tracing::Level::INFO).with_writer(move || writer.clone()).finish();
        tracing::subscriber::set_global_default(subscriber).expect("nothing else in this binary sets a subscriber");
        // A callsite first hit on another thread while the subscriber was being set may have cached "nobody listens".
        tracing::callsite::rebuild_interest_cache();
        logged
    })
}

/// The first line logged that holds every one of `marks`.
fn line_with(marks: &[&str]) -> String {
    let text = String::from_utf8(logged().0.lock().unwrap().clone()).unwrap();
    text.lines().find(|line| marks.iter().all(|mark| line.contains(mark))).unwrap_or_else(|| panic!("no line with {marks:?} in {text:?}")).to_owned()
}

#[tokio::test]
async fn each_answer_is_one_line_with_route_status_client_and_request_id_and_failed_logins_name_the_client() {
    logged();
    let server = TestServer::start_with(|settings| settings.admin_token = Some("a-token-long-enough".to_owned())).await;
    let ask = |path: &str, request_id: &str, authorization: Option<&str>| {
        let mut request = Request::get(path).header("x-request-id", request_id);
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        let mut request = request.body(Body::empty()).unwrap();
        request.extensions_mut().insert(ConnectInfo("192.0.2.7:40000".parse::<std::net::SocketAddr>().unwrap()));
        server.app().oneshot(request)
    };
    let image = format!("/images/{}", thumbq_contract::ImageId::new());
    let response = ask(&image, "access-log-42", None).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let line = line_with(&["Answered.", "request.id=access-log-42"]);
    for field in ["method=GET", "route=/images/{id}", "client.address=192.0.2.7", "status=404", "bytes=", "ms="] {
        assert!(line.contains(field), "{field} is not in {line:?}");
    }

    let response = ask("/admin", "access-log-43", Some("Bearer a-wrong-token-of-any-length")).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let line = line_with(&["login failed", "request.id=access-log-43"]);
    assert!(line.contains("client.address=192.0.2.7"), "{line}");
}
