//! The errors of a real `S3Store`, from object_store's real error values:
//! a stand-in server on 127.0.0.1 gives each request a chosen answer.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use thumbq_contract::{Manifest, MediaLimits, Sizes, StorageKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Patience, S3Store};
use crate::{StoreSettings, is_unavailable};

/// How often object_store sends a request again here: once, so that a test sees it happen and stays quick.
const RETRIES: usize = 1;

impl Patience {
    /// One retry after a millisecond, and half a second for an answer.
    fn impatient() -> Self {
        Self {
            retry: object_store::RetryConfig {
                max_retries: RETRIES,
                retry_timeout: Duration::from_secs(5),
                backoff: object_store::BackoffConfig { init_backoff: Duration::from_millis(1), max_backoff: Duration::from_millis(2), base: 2.0 },
            },
            client: object_store::ClientOptions::new().with_connect_timeout(Duration::from_millis(500)).with_timeout(Duration::from_millis(500)),
        }
    }
}

fn store_at(address: SocketAddr) -> S3Store {
    let location = "s3://photos/thumbq".parse().unwrap();
    let settings = StoreSettings::s3(location, &format!("http://{address}"), "access-key", "secret-key");
    S3Store::with_patience(settings.store.as_ref().unwrap(), &settings, Patience::impatient()).unwrap()
}

/// S3's error document.
fn s3_error(code: &str, message: &str, extra: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message>{extra}<RequestId>4442587FB7D0A2F9</RequestId></Error>"#
    )
}

/// A stand-in for S3 that gives every request the same answer (or none), and counts the requests.
struct CannedServer {
    address: SocketAddr,
    requests: Arc<AtomicUsize>,
}

impl CannedServer {
    async fn answering(status: u16, headers: &[(&str, &str)], body: &str) -> Self {
        let mut head = format!("HTTP/1.1 {status} Canned\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        Self::start(Some((head, body.to_owned()))).await
    }

    /// Takes connections and reads requests, but never answers.
    async fn silent() -> Self {
        Self::start(None).await
    }

    async fn start(answer: Option<(String, String)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut connection, _)) = listener.accept().await {
                let (answer, counted) = (answer.clone(), counted.clone());
                tokio::spawn(async move {
                    let Some(is_head) = read_request(&mut connection).await else { return };
                    counted.fetch_add(1, Ordering::SeqCst);
                    match answer {
                        Some((head, body)) => {
                            let _ = connection.write_all(head.as_bytes()).await;
                            if !is_head {
                                let _ = connection.write_all(body.as_bytes()).await;
                            }
                        }
                        // Held open until the client gives up and closes it.
                        None => drop(connection.read(&mut [0; 1]).await),
                    }
                });
            }
        });
        Self { address, requests }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Reads one request, its body included; returns whether it was a HEAD, or `None` if the connection closed first.
async fn read_request(connection: &mut TcpStream) -> Option<bool> {
    let mut received = Vec::new();
    let mut buffer = [0; 8192];
    let head_end = loop {
        if let Some(at) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            break at + 4;
        }
        let read = connection.read(&mut buffer).await.ok().filter(|&read| read > 0)?;
        received.extend_from_slice(&buffer[..read]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).to_ascii_lowercase();
    let body_length: usize = head.lines().find_map(|line| line.strip_prefix("content-length:")).and_then(|length| length.trim().parse().ok()).unwrap_or(0);
    while received.len() < head_end + body_length {
        let read = connection.read(&mut buffer).await.ok().filter(|&read| read > 0)?;
        received.extend_from_slice(&buffer[..read]);
    }
    Some(head.starts_with("head "))
}

fn manifest() -> Manifest {
    Manifest::new(&Sizes::default(), &MediaLimits::default())
}

#[track_caller]
fn assert_waited_out(error: &io::Error) {
    assert!(is_unavailable(error), "should be waited out: {error}");
}

#[track_caller]
fn assert_permanent(error: &io::Error) {
    assert!(!is_unavailable(error), "should not be waited out: {error}");
}

#[tokio::test]
async fn a_missing_object_is_none_and_a_missing_bucket_is_not_found() {
    let server = CannedServer::answering(404, &[], &s3_error("NoSuchKey", "The specified key does not exist.", "")).await;
    let store = store_at(server.address);
    assert_eq!(store.get(&StorageKey::Manifest).await.unwrap(), None);
    assert_eq!(store.size(&StorageKey::Manifest).await.unwrap(), None);

    let server = CannedServer::answering(404, &[], &s3_error("NoSuchBucket", "The specified bucket does not exist", "")).await;
    let error = store_at(server.address).put(&StorageKey::Manifest, b"{}".to_vec()).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
    assert_permanent(&error);
}

#[tokio::test]
async fn refused_credentials_are_permission_denied_and_not_waited_out() {
    for status in [401, 403] {
        let server = CannedServer::answering(status, &[], &s3_error("AccessDenied", "Access Denied", "")).await;
        let error = store_at(server.address).get(&StorageKey::Manifest).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied, "{status}: {error}");
        assert_permanent(&error);
        assert_eq!(server.requests(), 1, "{status} was sent again");
    }
}

#[tokio::test]
async fn a_redirect_to_another_region_stops_the_start_and_names_the_region() {
    let body = s3_error("PermanentRedirect", "The bucket you are attempting to access must be addressed using the specified endpoint.", "");
    let server = CannedServer::answering(301, &[("x-amz-bucket-region", "eu-west-1")], &body).await;
    let store = store_at(server.address);

    let error = store.init_manifest(&manifest()).await.unwrap_err();
    assert_permanent(&error);
    assert!(error.to_string().contains("the bucket is in region eu-west-1") && error.to_string().contains("--s3-region eu-west-1"), "{error}");

    // A HEAD has no body: the region comes from the header alone.
    let error = store.size(&StorageKey::Manifest).await.unwrap_err();
    assert_permanent(&error);
    assert!(error.to_string().contains("--s3-region eu-west-1"), "{error}");
    assert_eq!(server.requests(), 2, "a redirect was sent again");
}

#[tokio::test]
async fn a_request_signed_for_another_region_names_the_region_from_the_answer() {
    let body = s3_error(
        "AuthorizationHeaderMalformed",
        "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'ap-south-1'",
        "<Region>ap-south-1</Region>",
    );
    let server = CannedServer::answering(400, &[], &body).await;
    let error = store_at(server.address).get(&StorageKey::Manifest).await.unwrap_err();
    assert_permanent(&error);
    assert!(error.to_string().contains("--s3-region ap-south-1"), "{error}");
}

#[tokio::test]
async fn a_redirect_that_names_no_region_says_to_check_region_and_endpoint() {
    let server = CannedServer::answering(307, &[], "").await;
    let error = store_at(server.address).get(&StorageKey::Manifest).await.unwrap_err();
    assert_permanent(&error);
    assert!(error.to_string().contains("another region or behind another endpoint, check --s3-region and --s3-endpoint"), "{error}");
    assert_eq!(server.requests(), 1, "a redirect was sent again");
}

#[tokio::test]
async fn s3s_request_timeout_is_sent_again_then_waited_out() {
    let body = s3_error("RequestTimeout", "Your socket connection to the server was not read from or written to within the timeout period.", "");
    let server = CannedServer::answering(400, &[], &body).await;
    let error = store_at(server.address).put(&StorageKey::Manifest, b"{}".to_vec()).await.unwrap_err();
    assert_waited_out(&error);
    assert_eq!(server.requests(), 1 + RETRIES);
}

#[tokio::test]
async fn another_client_error_is_permanent_and_not_sent_again() {
    let server = CannedServer::answering(400, &[], &s3_error("InvalidArgument", "Invalid Argument", "")).await;
    let error = store_at(server.address).put(&StorageKey::Manifest, b"{}".to_vec()).await.unwrap_err();
    assert_permanent(&error);
    assert!(error.to_string().contains("HTTP 400 InvalidArgument: Invalid Argument"), "{error}");
    assert_eq!(server.requests(), 1);

    let server = CannedServer::answering(405, &[], "Method Not Allowed").await;
    let error = store_at(server.address).get(&StorageKey::Manifest).await.unwrap_err();
    assert_permanent(&error);
    assert!(error.to_string().contains("HTTP 405: Method Not Allowed"), "{error}");
}

#[tokio::test]
async fn slow_down_and_server_errors_are_sent_again_then_waited_out() {
    let slow_down = "Please reduce your request rate.";
    for (status, code, message) in
        [(429, "SlowDown", slow_down), (500, "InternalError", "We encountered an internal error. Please try again."), (503, "SlowDown", slow_down)]
    {
        let server = CannedServer::answering(status, &[], &s3_error(code, message, "")).await;
        let store = store_at(server.address);
        let error = store.get(&StorageKey::Manifest).await.unwrap_err();
        assert_waited_out(&error);
        assert_eq!(server.requests(), 1 + RETRIES, "{status}");
        // object_store sends a PUT again after such an answer too, and still does with the answers kept.
        let error = store.put(&StorageKey::Manifest, b"{}".to_vec()).await.unwrap_err();
        assert_waited_out(&error);
        assert_eq!(server.requests(), 2 * (1 + RETRIES), "{status}");
    }
}

#[tokio::test]
async fn a_refused_connection_is_waited_out() {
    let nobody = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = nobody.local_addr().unwrap();
    drop(nobody);
    let error = store_at(address).get(&StorageKey::Manifest).await.unwrap_err();
    assert_waited_out(&error);
}

#[tokio::test]
async fn a_store_that_never_answers_is_waited_out() {
    let server = CannedServer::silent().await;
    let error = store_at(server.address).get(&StorageKey::Manifest).await.unwrap_err();
    assert_waited_out(&error);
    assert_eq!(server.requests(), 1 + RETRIES, "a GET that timed out is sent again");
}
