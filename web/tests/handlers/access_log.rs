//! Operators can tell who did what: one line per answered request, and the
//! client's address on every line a request logs (a failed dashboard login too).

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;
use tracing::instrument::WithSubscriber;

use crate::server::TestServer;

/// What the server logged, as text.
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

#[tokio::test]
async fn each_answer_is_one_line_with_route_status_client_and_request_id_and_failed_logins_name_the_client() {
    let server = TestServer::start_with(|settings| settings.admin_token = Some("a-token-long-enough".to_owned())).await;
    let logged = Logged::default();
    let writer = logged.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_max_level(tracing::Level::INFO).with_writer(move || writer.clone()).finish();

    let ask = |path: &str, authorization: Option<&str>| {
        let mut request = Request::get(path).header("x-request-id", "req-42");
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        let mut request = request.body(Body::empty()).unwrap();
        request.extensions_mut().insert(ConnectInfo("192.0.2.7:40000".parse::<std::net::SocketAddr>().unwrap()));
        server.app().oneshot(request)
    };
    let image = format!("/images/{}", thumbq_contract::ImageId::new());
    let response = ask(&image, None).with_subscriber(subscriber).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let text = String::from_utf8(logged.0.lock().unwrap().clone()).unwrap();
    let line = text.lines().find(|line| line.contains("Answered.")).unwrap_or_else(|| panic!("no access log line in {text:?}"));
    for field in ["request.id=req-42", "method=GET", "route=/images/{id}", "client.address=192.0.2.7", "status=404", "bytes=", "ms="] {
        assert!(line.contains(field), "{field} is not in {line:?}");
    }

    let writer = logged.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_max_level(tracing::Level::INFO).with_writer(move || writer.clone()).finish();
    let response = ask("/admin", Some("Bearer a-wrong-token-of-any-length")).with_subscriber(subscriber).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let text = String::from_utf8(logged.0.lock().unwrap().clone()).unwrap();
    let line = text.lines().find(|line| line.contains("login failed")).unwrap_or_else(|| panic!("no failed login in {text:?}"));
    assert!(line.contains("client.address=192.0.2.7") && line.contains("request.id=req-42"), "{line}");
}
