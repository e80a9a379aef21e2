//! Resumable uploads (tus 1.0.0 at `/uploads`): the protocol's answers, and
//! what a hostile client gets.
//! The real clients (tus-js-client) are tried end to end in `tests/`.

use std::path::PathBuf;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, Response, StatusCode, header};
use futures_util::StreamExt;
use tower::ServiceExt;

use crate::server::{TestServer, a_key, distinct_png, json};

impl TestServer {
    /// A tus request of `method` to `path` as this server's owner, with `headers`.
    async fn tus(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Body) -> Response<Body> {
        let mut request = Request::builder().method(method).uri(path).header("tus-resumable", "1.0.0").header(header::AUTHORIZATION, &self.bearer);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(body).unwrap()).await
    }

    /// Creates an upload of `length` bytes named `photo.png`; returns its path.
    async fn create(&self, length: usize) -> String {
        let response =
            self.tus("POST", "/uploads", &[("upload-length", &length.to_string()), ("upload-metadata", "filename cGhvdG8ucG5n")], Body::empty()).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{:?}", response.headers());
        assert!(response.headers().contains_key("upload-expires"));
        location(response.headers())
    }

    async fn patch(&self, path: &str, offset: usize, bytes: &[u8]) -> Response<Body> {
        let headers = [("upload-offset", offset.to_string()), ("content-type", "application/offset+octet-stream".to_owned())];
        let headers: Vec<_> = headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
        self.tus("PATCH", path, &headers, Body::from(bytes.to_vec())).await
    }

    async fn offset(&self, path: &str) -> Result<u64, StatusCode> {
        let response = self.tus("HEAD", path, &[], Body::empty()).await;
        if response.status() != StatusCode::OK {
            return Err(response.status());
        }
        assert_eq!(response.headers()["cache-control"], "no-store");
        Ok(response.headers()["upload-offset"].to_str().unwrap().parse().unwrap())
    }

    /// The files below the data directory's `folder`.
    fn files_in(&self, folder: &str) -> Vec<PathBuf> {
        self.paths_below(folder).into_iter().filter(|path| self.data_dir.path().join(path).is_file()).collect()
    }
}

fn location(headers: &HeaderMap) -> String {
    headers[header::LOCATION].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn options_say_what_this_server_speaks() {
    let server = TestServer::start_with(|settings| settings.media.max_upload_bytes = 1234).await;
    let response = server.send(Request::options("/uploads").body(Body::empty()).unwrap()).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(response.headers()["tus-version"], "1.0.0");
    assert_eq!(response.headers()["tus-extension"], "creation,creation-with-upload,termination,expiration");
    assert_eq!(response.headers()["tus-max-size"], "1234");
}

#[tokio::test]
async fn an_upload_in_two_requests_becomes_one_image_and_leaves_no_part_behind() {
    let server = TestServer::start().await;
    let png = distinct_png();
    let path = server.create(png.len()).await;
    assert!(path.starts_with("/uploads/"), "{path}");
    assert_eq!(server.offset(&path).await, Ok(0));

    let half = png.len() / 2;
    let response = server.patch(&path, 0, &png[..half]).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(response.headers()["upload-offset"], half.to_string().as_str());
    assert_eq!(response.headers()["tus-resumable"], "1.0.0");
    assert_eq!(server.offset(&path).await, Ok(half as u64));
    assert_eq!(server.files_in("uploads").len(), 1, "the first half is stored as a part");

    let early = server.tus("GET", &path, &[], Body::empty()).await;
    assert_eq!(early.status(), StatusCode::CONFLICT, "no answer before the last byte");

    let response = server.patch(&path, half, &png[half..]).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(response.headers()["upload-offset"], png.len().to_string().as_str());
    assert_eq!(server.offset(&path).await, Ok(png.len() as u64), "a finished upload says it is whole");
    assert_eq!(server.files_in("uploads"), Vec::<PathBuf>::new(), "its parts are in the original now");
    assert_eq!(server.files_in("incoming"), Vec::<PathBuf>::new());

    let answer = server.tus("GET", &path, &[], Body::empty()).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let answer = json(answer).await;
    let image = &answer["images"][0];
    assert_eq!(image["name"], "photo.png");
    assert!(image.get("delete_token").is_none() && image.get("owner_key").is_none(), "no secret is kept: {answer}");
    let id = image["id"].as_str().unwrap();
    let original = std::fs::read(server.data_dir.path().join("originals").join(id)).unwrap();
    assert!(original == png, "the original is the file, byte for byte");
    let status = server.send(Request::get(format!("/api/images/{id}")).body(Body::empty()).unwrap()).await;
    assert_eq!(status.status(), StatusCode::OK);
    assert_eq!(json(status).await["state"], "pending", "its job is queued");

    // The last request's answer was lost and it comes again: the same upload, no second image.
    let again = server.patch(&path, png.len(), &[]).await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    assert_eq!(std::fs::read_dir(server.data_dir.path().join("originals")).unwrap().count(), 1);
}

#[tokio::test]
async fn a_whole_file_sent_with_the_creation_is_accepted_at_once_and_a_second_copy_is_the_first_image() {
    let server = TestServer::start().await;
    let png = distinct_png();
    let mut answers = Vec::new();
    for _ in 0..2 {
        let headers = [("upload-length", png.len().to_string()), ("content-type", "application/offset+octet-stream".to_owned())];
        let headers: Vec<_> = headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
        let response = server.tus("POST", "/uploads", &headers, Body::from(png.clone())).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()["upload-offset"], png.len().to_string().as_str());
        let path = location(response.headers());
        answers.push(json(server.tus("GET", &path, &[], Body::empty()).await).await);
    }
    let first = answers[0]["images"][0]["id"].as_str().unwrap();
    assert_eq!(answers[0]["images"][0]["name"], "File 1", "no name in the metadata: a name for people");
    assert_eq!(answers[1]["images"][0]["duplicate_of"], first, "the same bytes again from the same owner: {}", answers[1]);
}

#[tokio::test]
async fn a_request_cut_short_keeps_what_arrived_and_the_rest_completes_it() {
    let server = TestServer::start().await;
    let png = distinct_png();
    let path = server.create(png.len()).await;
    let cut = 100;
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![Ok(Bytes::copy_from_slice(&png[..cut])), Err(std::io::Error::other("the connection dropped"))];
    let headers = [("upload-offset", "0"), ("content-type", "application/offset+octet-stream")];
    let response = server.tus("PATCH", &path, &headers, Body::from_stream(futures_util::stream::iter(chunks))).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(server.offset(&path).await, Ok(cut as u64), "the bytes before the cut are kept");

    let response = server.patch(&path, cut, &png[cut..]).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let answer = json(server.tus("GET", &path, &[], Body::empty()).await).await;
    let id = answer["images"][0]["id"].as_str().unwrap();
    assert!(std::fs::read(server.data_dir.path().join("originals").join(id)).unwrap() == png, "the parts put together are the file");
}

#[tokio::test]
async fn a_request_from_another_offset_is_refused_and_changes_nothing() {
    let server = TestServer::start().await;
    let png = distinct_png();
    let path = server.create(png.len()).await;
    assert_eq!(server.patch(&path, 0, &png[..50]).await.status(), StatusCode::NO_CONTENT);
    for offset in [0, 10, 60] {
        let response = server.patch(&path, offset, &png[offset..offset + 10]).await;
        assert_eq!(response.status(), StatusCode::CONFLICT, "from {offset}");
    }
    let response = server.patch(&path, 50, &[0; 10_000]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "more bytes than Upload-Length");
    assert_eq!(server.offset(&path).await, Ok(50));
    assert_eq!(server.files_in("uploads").len(), 1);
}

#[tokio::test]
async fn a_strangers_upload_is_not_there_for_anyone_else() {
    let server = TestServer::start().await;
    let png = distinct_png();
    let path = server.create(png.len()).await;
    let stranger = TestServer {
        bearer: format!("Bearer {}", a_key()),
        ..TestServer { state: server.state.clone(), data_dir: tempfile::tempdir().unwrap(), bearer: String::new() }
    };
    assert_eq!(stranger.offset(&path).await, Err(StatusCode::NOT_FOUND));
    assert_eq!(stranger.patch(&path, 0, &png).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(stranger.tus("DELETE", &path, &[], Body::empty()).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(stranger.tus("GET", &path, &[], Body::empty()).await.status(), StatusCode::NOT_FOUND);
    let anonymous = server.send(Request::head(&path).header("tus-resumable", "1.0.0").body(Body::empty()).unwrap()).await;
    assert_eq!(anonymous.status(), StatusCode::NOT_FOUND);
    assert_eq!(server.offset("/uploads/not-an-id").await, Err(StatusCode::NOT_FOUND));
    assert_eq!(server.offset(&path).await, Ok(0), "the owner's is untouched");
}

#[tokio::test]
async fn creations_that_break_the_rules_are_refused_before_a_byte_is_sent() {
    let server = TestServer::start_with(|settings| {
        settings.media.max_upload_bytes = 10_000;
        settings.max_open_resumable_uploads = 3;
    })
    .await;
    let refused = |headers: Vec<(&'static str, &'static str)>| {
        let server = &server;
        async move { server.tus("POST", "/uploads", &headers, Body::empty()).await.status() }
    };
    assert_eq!(refused(vec![("upload-length", "10001")]).await, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(refused(vec![]).await, StatusCode::BAD_REQUEST, "no length");
    assert_eq!(refused(vec![("upload-length", "-5")]).await, StatusCode::BAD_REQUEST);
    assert_eq!(refused(vec![("upload-defer-length", "1")]).await, StatusCode::BAD_REQUEST);
    assert_eq!(refused(vec![("upload-length", "0")]).await, StatusCode::BAD_REQUEST);
    let unversioned = server.send(Request::post("/uploads").header("upload-length", "10").body(Body::empty()).unwrap()).await;
    assert_eq!(unversioned.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(unversioned.headers()["tus-version"], "1.0.0");
    let cross_site = server
        .tus("POST", "/uploads", &[("upload-length", "10"), ("origin", "https://elsewhere.example"), ("sec-fetch-site", "cross-site")], Body::empty())
        .await;
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);

    for _ in 0..3 {
        server.create(100).await;
    }
    let response = server.tus("POST", "/uploads", &[("upload-length", "100")], Body::empty()).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "a fourth open upload");
    assert!(json(response).await["error"].as_str().unwrap().contains("3 uploads begun and not finished"));
}

#[tokio::test]
async fn bytes_that_are_no_image_end_the_upload_as_soon_as_they_arrive() {
    let server = TestServer::start().await;
    let path = server.create(50_000).await;
    let response = server.patch(&path, 0, &[b'%'; 40]).await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(json(response).await["error"].as_str().unwrap().contains("is not a JPEG"));
    assert_eq!(server.offset(&path).await, Err(StatusCode::NOT_FOUND), "nothing is kept of it");
    assert_eq!(server.files_in("uploads"), Vec::<PathBuf>::new());
    assert_eq!(server.files_in("incoming"), Vec::<PathBuf>::new());

    let wrong_type = server.create(10).await;
    let response = server.tus("PATCH", &wrong_type, &[("upload-offset", "0"), ("content-type", "image/png")], Body::from(vec![0; 10])).await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn a_cancelled_upload_is_gone_with_its_bytes() {
    let server = TestServer::start().await;
    let png = distinct_png();
    let path = server.create(png.len()).await;
    assert_eq!(server.patch(&path, 0, &png[..64]).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(server.tus("DELETE", &path, &[], Body::empty()).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(server.offset(&path).await, Err(StatusCode::NOT_FOUND));
    assert_eq!(server.files_in("uploads"), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn an_upload_past_its_expiry_is_refused_then_removed_with_its_bytes() {
    let server = TestServer::start_with(|settings| settings.resumable_expiry_secs = 1).await;
    let png = distinct_png();
    let path = server.create(png.len()).await;
    assert_eq!(server.patch(&path, 0, &png[..64]).await.status(), StatusCode::NO_CONTENT);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.offset(&path).await != Err(StatusCode::GONE) {
        assert!(std::time::Instant::now() < deadline, "the upload never expired");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(server.patch(&path, 64, &png[64..]).await.status(), StatusCode::GONE, "a late request");
    let round = thumbq_web::reconcile::reconcile(&server.state, false).await.unwrap();
    assert_eq!(round.expired_uploads, 1);
    assert_eq!(server.offset(&path).await, Err(StatusCode::NOT_FOUND));
    assert_eq!(server.files_in("uploads"), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn a_long_request_is_stored_a_mebibyte_at_a_time_as_it_arrives() {
    let server = TestServer::start().await;
    let mut bytes = distinct_png();
    bytes.resize(5 << 20, 0);
    let path = server.create(bytes.len()).await;
    // 2.5 MiB, then nothing more: the client is still sending (or its server died).
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes[..5 << 19].chunks(64 * 1024).map(|chunk| Ok(Bytes::copy_from_slice(chunk))).collect();
    let body = Body::from_stream(futures_util::stream::iter(chunks).chain(futures_util::stream::pending()));
    let app = server.app();
    let request = Request::patch(&path)
        .header("tus-resumable", "1.0.0")
        .header(header::AUTHORIZATION, &server.bearer)
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(body)
        .unwrap();
    let sending = tokio::spawn(app.oneshot(request));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let offset = server.offset(&path).await.unwrap();
        if offset >= 2 << 20 {
            assert!(offset <= 5 << 19, "{offset}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "only {offset} bytes were stored while the request went on");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    sending.abort();
}

#[tokio::test]
async fn first_bytes_too_few_to_tell_the_format_are_not_kept_so_a_non_image_cannot_slip_past() {
    let server = TestServer::start().await;
    let path = server.create(50_000).await;
    assert_eq!(server.patch(&path, 0, b"%").await.status(), StatusCode::NO_CONTENT);
    assert_eq!(server.offset(&path).await, Ok(0), "one byte tells nothing: it is not kept");
    assert_eq!(server.patch(&path, 0, &[b'%'; 64]).await.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(server.offset(&path).await, Err(StatusCode::NOT_FOUND));
}

#[tokio::test]
async fn a_creation_whose_bytes_are_cut_short_still_gives_the_upload_and_where_it_stands() {
    let server = TestServer::start().await;
    let png = distinct_png();
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![Ok(Bytes::copy_from_slice(&png[..100])), Err(std::io::Error::other("the connection dropped"))];
    let length = png.len().to_string();
    let headers = [("upload-length", length.as_str()), ("content-type", "application/offset+octet-stream")];
    let response = server.tus("POST", "/uploads", &headers, Body::from_stream(futures_util::stream::iter(chunks))).await;
    assert_eq!(response.status(), StatusCode::CREATED, "the upload stands: the client can go on");
    assert_eq!(response.headers()["upload-offset"], "100");
    let path = location(response.headers());
    assert_eq!(server.patch(&path, 100, &png[100..]).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(server.tus("GET", &path, &[], Body::empty()).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_creation_sent_again_with_its_idempotency_key_gets_the_upload_it_made() {
    let server = TestServer::start().await;
    let create = |key: &'static str| {
        let server = &server;
        async move { server.tus("POST", "/uploads", &[("upload-length", "1000"), ("idempotency-key", key)], Body::empty()).await }
    };
    let first = create("file-1").await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let again = create("file-1").await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(location(again.headers()), location(first.headers()), "the same upload, not a second");
    assert_eq!(again.headers()["upload-offset"], "0", "and where it stands");
    let other = create("file-2").await;
    assert_ne!(location(other.headers()), location(first.headers()));
}
