//! Who may see and delete what.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use thumbq_contract::ImageId;

use crate::server::{PNG, TestServer, distinct_png, json, text};

const BOUNDARY: &str = "thumbq-test-boundary";

impl TestServer {
    /// Uploads `count` PNGs, each with bytes of its own, as an API client, with `headers`; returns the answer's JSON and the response's cookie.
    async fn upload(&self, count: usize, headers: &[(header::HeaderName, &str)]) -> (serde_json::Value, Option<String>) {
        let files: Vec<Vec<u8>> = (0..count).map(|_| distinct_png()).collect();
        self.upload_files(&files, headers).await
    }

    /// Uploads `files` in one request as an API client, with `headers`; returns the answer's JSON and the response's cookie.
    async fn upload_files(&self, files: &[Vec<u8>], headers: &[(header::HeaderName, &str)]) -> (serde_json::Value, Option<String>) {
        let response = self.send_files(files, headers).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let cookie = response.headers().get(header::SET_COOKIE).map(|value| value.to_str().unwrap().to_owned());
        (json(response).await, cookie)
    }

    async fn send_files(&self, files: &[Vec<u8>], headers: &[(header::HeaderName, &str)]) -> Response<Body> {
        let mut body = Vec::new();
        for (n, file) in files.iter().enumerate() {
            body.extend(
                format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p{n}.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes(),
            );
            body.extend(file);
            body.extend(b"\r\n");
        }
        body.extend(format!("--{BOUNDARY}--\r\n").as_bytes());
        let mut request = Request::post("/images")
            .header(header::CONTENT_LENGTH, body.len())
            .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
            .header(header::ACCEPT, "application/json");
        for (name, value) in headers {
            request = request.header(name, *value);
        }
        self.send(request.body(Body::from(body)).unwrap()).await
    }

    /// Every file and folder below the data directory whose path names `id`.
    fn files_naming(&self, id: &str) -> Vec<PathBuf> {
        self.paths_below("").into_iter().filter(|path| path.to_string_lossy().contains(id)).collect()
    }

    /// Whether the job of `id` waits in the embedded queue.
    async fn has_job(&self, id: &str) -> bool {
        self.state.repo.has_job(id.parse().unwrap()).await.unwrap()
    }
}

/// `thumbq_owner=…` from a `Set-Cookie` value, as a browser sends it back.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn an_upload_gives_a_browser_an_http_only_cookie_and_an_api_client_its_owner_key() {
    let server = TestServer::start().await;
    let (answer, cookie) = server.upload(1, &[]).await;
    let cookie = cookie.expect("a first upload sets the owner cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "no TLS here: {cookie}");
    let token = answer["images"][0]["owner_key"].as_str().unwrap();
    assert_eq!(cookie_pair(&cookie), format!("thumbq_owner={token}"), "the cookie and the owner_key are the same key");
    assert_eq!(token.len(), 43, "256 bits in URL-safe base64");

    // What the server keeps is the key's hash, never the key.
    let id = answer["images"][0]["id"].as_str().unwrap();
    let record = server.state.repo.image(id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(record.owner.map(|owner| owner.to_string()), Some(thumbq_contract::OwnerId::of_secret(token.as_bytes()).to_string()));
    let database = std::fs::read(server.data_dir.path().join("thumbq.db")).unwrap();
    let wal = std::fs::read(server.data_dir.path().join("thumbq.db-wal")).unwrap_or_default();
    let contains = |bytes: &[u8]| bytes.windows(token.len()).any(|window| window == token.as_bytes());
    assert!(!contains(&database) && !contains(&wal), "the database holds no key");

    // Later uploads with the cookie keep the key where the browser holds it, out of scripts' reach.
    let (again, _) = server.upload(1, &[(header::COOKIE, &cookie_pair(&cookie))]).await;
    assert!(
        again["images"][0].get("owner_key").is_none() && again["images"][0].get("delete_token").is_none(),
        "a request with a cookie is a browser's: {again}"
    );
    // A browser's scripts get no key at all, not even on its first upload: the cookie holds it.
    let browser = [(header::HeaderName::from_static("sec-fetch-site"), "same-origin")];
    let (first, cookie) = server.upload(1, &browser).await;
    assert!(cookie.is_some());
    assert!(first["images"][0].get("owner_key").is_none() && first["images"][0].get("delete_token").is_none(), "{first}");

    let secure = TestServer::start_with(|settings| settings.secure_cookies = true).await;
    let (_, cookie) = secure.upload(1, &[]).await;
    let cookie = cookie.unwrap();
    assert!(cookie.starts_with("__Host-thumbq_owner=") && cookie.ends_with("; Secure"), "{cookie}");
}

#[tokio::test]
async fn behind_tls_a_planted_plain_cookie_neither_takes_a_visitors_uploads_nor_becomes_their_key() {
    let server = TestServer::start_with(|settings| settings.secure_cookies = true).await;
    // The planter's own key, which a sibling subdomain sets as a plain `thumbq_owner` cookie for the parent domain.
    let (planters, _) = server.upload(1, &[]).await;
    let planted = planters["images"][0]["owner_key"].as_str().unwrap().to_owned();
    let (_, victims) = server.upload(1, &[]).await;
    let victims = cookie_pair(&victims.unwrap());
    assert!(victims.starts_with("__Host-thumbq_owner="), "{victims}");

    for cookies in [format!("thumbq_owner={planted}; {victims}"), format!("thumbq_owner={planted}")] {
        let (answer, reissued) = server.upload(1, &[(header::COOKIE, &cookies)]).await;
        let page = answer["images"][0]["page"].as_str().unwrap().to_owned();
        assert_ne!(cookie_pair(&reissued.unwrap()), format!("__Host-thumbq_owner={planted}"), "the planted key is never given back as the visitor's own");
        let response = server.delete(&page, &[(header::AUTHORIZATION, &bearer(&planted))]).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "the planter cannot delete the visitor's upload ({cookies})");
    }
    // The visitor's own cookie still deletes what it uploaded.
    let (answer, _) = server.upload(1, &[(header::COOKIE, &format!("thumbq_owner={planted}; {victims}"))]).await;
    let response = server.delete(answer["images"][0]["page"].as_str().unwrap(), &[(header::COOKIE, &victims)]).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn another_site_cannot_upload_in_a_visitors_name_nor_replace_their_key() {
    let server = TestServer::start().await;
    let mut body = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n\r\n").into_bytes();
    body.extend(PNG);
    body.extend(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let request = Request::post("/images")
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
        .header(header::ORIGIN, "https://evil.example")
        .header(header::HOST, "127.0.0.1:8080")
        .body(Body::from(body))
        .unwrap();
    let response = server.send(request).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(!response.headers().contains_key(header::SET_COOKIE));
    assert!(std::fs::read_dir(server.data_dir.path().join("originals")).unwrap().next().is_none());
}

#[tokio::test]
async fn an_api_client_that_sends_its_token_back_owns_its_later_uploads_with_it() {
    let server = TestServer::start().await;
    let (first, _) = server.upload(1, &[]).await;
    let token = first["images"][0]["owner_key"].as_str().unwrap().to_owned();
    let (second, cookie) = server.upload(2, &[(header::AUTHORIZATION, &bearer(&token))]).await;
    assert!(cookie.is_none(), "a client with a bearer token is not given a cookie");
    for image in second["images"].as_array().unwrap() {
        assert!(image.get("owner_key").is_none(), "it has its key already: {image}");
        let response = server.delete(image["page"].as_str().unwrap(), &[(header::AUTHORIZATION, &bearer(&token))]).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    let response = server.get("/", &[(header::AUTHORIZATION, "Bearer not-a-key")]).await;
    assert_eq!(response.status(), StatusCode::OK, "a page treats a bad token as a stranger");
    let mut request = Request::post("/images").header(header::AUTHORIZATION, "Bearer not-a-key").header(header::ACCEPT, "application/json");
    request = request.header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"));
    let response = server.send(request.body(Body::from(format!("--{BOUNDARY}--\r\n"))).unwrap()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "an upload with a token thumbq never made is refused");
}

#[tokio::test]
async fn only_the_owner_gets_the_original_and_no_shared_cache_keeps_it() {
    let server = TestServer::start().await;
    let photo = distinct_png();
    let (answer, cookie) = server.upload_files(std::slice::from_ref(&photo), &[]).await;
    let (id, token) = (answer["images"][0]["id"].as_str().unwrap(), answer["images"][0]["owner_key"].as_str().unwrap());
    let original = format!("/originals/{id}");

    for owner in [(header::COOKIE, cookie_pair(&cookie.unwrap())), (header::AUTHORIZATION, bearer(token))] {
        let response = server.get(&original, &[(owner.0.clone(), &owner.1)]).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "private, no-cache");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "image/png");
        assert_eq!(response.headers()[header::CONTENT_DISPOSITION], r#"inline; filename="p0.png"; filename*=UTF-8''p0.png"#, "under its name");
        assert_eq!(axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap(), photo);
        let saved = server.get(&format!("{original}?download"), &[(owner.0, &owner.1)]).await;
        assert_eq!(saved.headers()[header::CONTENT_DISPOSITION], r#"attachment; filename="p0.png"; filename*=UTF-8''p0.png"#);
    }
    let (stranger, _) = server.upload(1, &[]).await;
    let stranger = bearer(stranger["images"][0]["owner_key"].as_str().unwrap());
    for headers in [vec![], vec![(header::AUTHORIZATION, stranger.as_str())]] {
        let response = server.get(&original, &headers).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "as for an id that never existed");
    }
    assert_eq!(server.get(&format!("/originals/{}", ImageId::new()), &[]).await.status(), StatusCode::NOT_FOUND);

    // The page shows the original's link and the delete button to the owner only.
    let owner_page = text(server.get(&format!("/images/{id}"), &[(header::AUTHORIZATION, &bearer(token))]).await).await;
    assert!(owner_page.contains(&original) && owner_page.contains(&format!("/images/{id}/delete")));
    let stranger_page = text(server.get(&format!("/images/{id}"), &[(header::AUTHORIZATION, &stranger)]).await).await;
    assert!(!stranger_page.contains(&original) && !stranger_page.contains("/delete"));
}

#[tokio::test]
async fn the_home_page_lists_your_uploads_only_newest_first_and_paged() {
    let per_page = thumbq_web::pages::UPLOADS_PER_PAGE;
    let server = TestServer::start().await;
    let (mine, cookie) = server.upload(per_page + 2, &[]).await;
    let (theirs, _) = server.upload(1, &[]).await;
    let their_id = theirs["images"][0]["id"].as_str().unwrap();
    let mut my_ids: Vec<&str> = mine["images"].as_array().unwrap().iter().map(|image| image["id"].as_str().unwrap()).collect();
    my_ids.sort_unstable_by(|a, b| b.cmp(a));
    let cookie = cookie_pair(&cookie.unwrap());
    let shown_on = |page: &str| -> Vec<&str> {
        let mut shown: Vec<(usize, &str)> = my_ids.iter().filter_map(|id| page.find(&format!("data-image=\"{id}\"")).map(|at| (at, *id))).collect();
        shown.sort_unstable();
        shown.into_iter().map(|(_, id)| id).collect()
    };

    let first_page = text(server.get("/", &[(header::COOKIE, &cookie)]).await).await;
    assert!(!first_page.contains(their_id), "another uploader's image is never listed");
    assert!(first_page.contains(&format!("({})", my_ids.len())));
    assert_eq!(shown_on(&first_page), my_ids[..per_page], "the newest, newest first");
    assert!(first_page.contains("href=\"/?page=2\""));
    let second_page = text(server.get("/?page=2", &[(header::COOKIE, &cookie)]).await).await;
    assert_eq!(shown_on(&second_page), my_ids[per_page..]);

    let response = server.get("/", &[(header::COOKIE, &cookie)]).await;
    assert_eq!(response.headers()[header::CACHE_CONTROL], "private, no-cache", "no shared cache keeps someone's list");
    let strangers_page = text(server.get("/", &[]).await).await;
    assert!(my_ids.iter().chain([&their_id]).all(|id| !strangers_page.contains(id)), "a visitor without a key sees no upload");
}

#[tokio::test]
async fn only_the_owner_can_delete_and_then_nothing_of_the_image_is_left() {
    // Deleted at once, with no time to undo it: what the trash leads to in the end.
    let server = TestServer::start_with(|settings| settings.undo_delete_secs = 0).await;
    let (answer, _) = server.upload(1, &[]).await;
    let image = &answer["images"][0];
    let (id, token) = (image["id"].as_str().unwrap(), image["owner_key"].as_str().unwrap());
    let page = format!("/images/{id}");
    assert!(server.has_job(id).await);
    let (stranger, _) = server.upload(1, &[]).await;
    let stranger = bearer(stranger["images"][0]["owner_key"].as_str().unwrap());

    let response = server.delete(&page, &[]).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
    assert_eq!(server.delete(&page, &[(header::AUTHORIZATION, &stranger)]).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(server.get(&page, &[]).await.status(), StatusCode::OK, "nothing changed");
    assert!(server.has_job(id).await, "nothing changed");

    assert_eq!(server.delete(&page, &[(header::AUTHORIZATION, &bearer(token))]).await.status(), StatusCode::NO_CONTENT);

    assert_eq!(server.files_naming(id), Vec::<PathBuf>::new(), "no file under the data directory names the image");
    // The job waiting for a worker goes with the image.
    assert!(!server.has_job(id).await);
    for path in [page.clone(), format!("/api/images/{id}"), format!("/thumbs/{id}/small")] {
        assert_eq!(server.get(&path, &[]).await.status(), StatusCode::GONE, "{path}");
    }
    assert_eq!(server.get(&format!("/thumbs/{id}/large"), &[]).await.headers()["x-image-state"], "deleted");
    assert_eq!(server.get(&format!("/originals/{id}"), &[(header::AUTHORIZATION, &bearer(token))]).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(server.delete(&page, &[(header::AUTHORIZATION, &bearer(token))]).await.status(), StatusCode::GONE);
    assert!(!text(server.get("/", &[(header::AUTHORIZATION, &bearer(token))]).await).await.contains(id));
}

#[tokio::test]
async fn the_delete_button_works_without_a_script_but_not_from_another_site() {
    let server = TestServer::start_with(|settings| settings.undo_delete_secs = 60).await;
    let (answer, cookie) = server.upload(1, &[]).await;
    let id = answer["images"][0]["id"].as_str().unwrap();
    let cookie = cookie_pair(&cookie.unwrap());
    let form = |origin: &str, site: Option<&str>| {
        let mut request = Request::post(format!("/images/{id}/delete"))
            .header(header::COOKIE, &cookie)
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::ORIGIN, origin)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(site) = site {
            request = request.header("sec-fetch-site", site);
        }
        request.body(Body::empty()).unwrap()
    };

    for (origin, site) in [("https://evil.example", None), ("https://evil.example", Some("cross-site")), ("http://127.0.0.1:8080", Some("same-site"))] {
        let response = server.send(form(origin, site)).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{origin} {site:?}");
        assert_eq!(server.get(&format!("/images/{id}"), &[]).await.status(), StatusCode::OK, "still there");
    }

    let response = server.send(form("http://127.0.0.1:8080", Some("same-origin"))).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let back_home = format!("/?deleted={id}");
    assert_eq!(response.headers()[header::LOCATION], back_home.as_str());
    let page = text(server.get(&back_home, &[(header::COOKIE, &cookie)]).await).await;
    assert!(page.contains("Deleted “p0.png”") && page.contains(&format!(r#"action="/images/{id}/restore""#)), "the owner is offered Undo: {page}");
    let strangers = text(server.get(&back_home, &[]).await).await;
    assert!(!strangers.contains("p0.png") && !strangers.contains("/restore"), "a stranger with the link learns nothing");
}

/// Undo's request, as the home page's form sends it (`json`: as its script does).
fn restore(id: &str, authorization: &[(header::HeaderName, &str)], json: bool) -> Request<Body> {
    let mut request = Request::post(format!("/images/{id}/restore"));
    for (name, value) in authorization {
        request = request.header(name, *value);
    }
    if json {
        request = request.header(header::ACCEPT, "application/json");
    }
    request.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn an_owners_delete_can_be_undone_for_a_while_and_is_for_good_after() {
    let server = TestServer::start_with(|settings| settings.undo_delete_secs = 1).await;
    let (answer, _) = server.upload(1, &[]).await;
    let image = &answer["images"][0];
    let (id, key) = (image["id"].as_str().unwrap(), bearer(image["owner_key"].as_str().unwrap()));
    let owner = [(header::AUTHORIZATION, key.as_str())];
    let (stranger, _) = server.upload(1, &[]).await;
    let stranger = bearer(stranger["images"][0]["owner_key"].as_str().unwrap());
    let page = format!("/images/{id}");
    let files = server.files_naming(id);
    assert!(!files.is_empty());

    assert_eq!(server.delete(&page, &owner).await.status(), StatusCode::NO_CONTENT);
    for path in [page.clone(), format!("/api/images/{id}"), format!("/thumbs/{id}/small")] {
        assert_eq!(server.get(&path, &[]).await.status(), StatusCode::GONE, "deleted to everyone at once: {path}");
    }
    assert_eq!(server.get(&format!("/originals/{id}"), &owner).await.status(), StatusCode::GONE, "to its owner too");
    assert!(!text(server.get("/", &owner).await).await.contains(&page), "gone from the owner's list");
    assert_eq!(server.delete(&page, &owner).await.status(), StatusCode::GONE, "deleted already");
    assert_eq!(server.files_naming(id), files, "its files wait in the trash");

    let refused = server.send(restore(id, &[(header::AUTHORIZATION, &stranger)], true)).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "only the owner undoes it");
    assert_eq!(server.send(restore(id, &[], true)).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.send(restore(id, &owner, true)).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(server.get(&page, &[]).await.status(), StatusCode::OK, "back, whole");
    assert!(text(server.get("/", &owner).await).await.contains(&page));
    assert_eq!(server.send(restore(id, &owner, true)).await.status(), StatusCode::NO_CONTENT, "Undo twice is still one image back");

    // Undo by the form (no script): back to the home page, which says so.
    assert_eq!(server.delete(&page, &owner).await.status(), StatusCode::NO_CONTENT);
    let response = server.send(restore(id, &owner, false)).await;
    assert_eq!((response.status(), response.headers()[header::LOCATION].to_str().unwrap()), (StatusCode::SEE_OTHER, format!("/?restored={id}").as_str()));
    assert!(text(server.get(&format!("/?restored={id}"), &owner).await).await.contains("“p0.png” is back."));

    // Past the time to undo it, the reconciler deletes it for good.
    assert_eq!(server.delete(&page, &owner).await.status(), StatusCode::NO_CONTENT);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while thumbq_web::delete::empty_trash(&server.state, 10).await.unwrap() == 0 {
        assert!(std::time::Instant::now() < deadline, "the trash was not emptied 10 s after its second");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(server.files_naming(id), Vec::<PathBuf>::new(), "nothing of it is left");
    let late = server.send(restore(id, &owner, true)).await;
    assert_eq!(late.status(), StatusCode::GONE);
    assert!(json(late).await["error"].as_str().unwrap().contains("too late to undo"));
    let notice = text(server.get(&format!("/?deleted={id}"), &owner).await).await;
    assert!(notice.contains("The image was deleted") && !notice.contains("/restore"), "{notice}");
}

#[tokio::test]
async fn an_operator_takes_any_image_down_with_the_admin_token_only() {
    let server = TestServer::start_with(|settings| settings.admin_token = Some("s3cret-admin-token-0123".into())).await;
    let (answer, _) = server.upload(1, &[]).await;
    let id = answer["images"][0]["id"].as_str().unwrap();
    let takedown = |authorization: Option<&str>| {
        let mut request = Request::post("/admin/takedown").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        let link = format!("image=http%3A%2F%2F127.0.0.1%3A8080%2Fimages%2F{id}&confirm=yes");
        request.body(Body::from(link)).unwrap()
    };

    assert_eq!(server.send(takedown(None)).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.send(takedown(Some("Bearer wrong"))).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.get(&format!("/images/{id}"), &[]).await.status(), StatusCode::OK);

    // Without the box ticked, nothing is deleted: a takedown cannot be undone.
    let unconfirmed = Request::post("/admin/takedown")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, "Bearer s3cret-admin-token-0123")
        .body(Body::from(format!("image={id}")))
        .unwrap();
    let response = server.send(unconfirmed).await;
    assert_eq!(response.headers()[header::LOCATION], format!("/admin?takedown=unconfirmed&image={id}"));
    assert_eq!(server.get(&format!("/images/{id}"), &[]).await.status(), StatusCode::OK);

    let response = server.send(takedown(Some("Bearer s3cret-admin-token-0123"))).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], format!("/admin?takedown=done&image={id}"));
    assert_eq!(server.files_naming(id), Vec::<PathBuf>::new());
    assert_eq!(server.get(&format!("/images/{id}"), &[]).await.status(), StatusCode::GONE);
}

#[tokio::test]
async fn the_retention_sweep_deletes_only_uploads_past_their_days() {
    let server = TestServer::start().await;
    let (answer, _) = server.upload(2, &[]).await;
    let now = thumbq_web::progress::now_ms();
    assert_eq!(thumbq_web::retention::sweep(&server.state, 1, now).await.unwrap(), 0, "a fresh upload is kept");
    let two_days_later = now + 2 * 24 * 3600 * 1000;
    assert_eq!(thumbq_web::retention::sweep(&server.state, 1, two_days_later).await.unwrap(), 2);
    for image in answer["images"].as_array().unwrap() {
        assert_eq!(server.files_naming(image["id"].as_str().unwrap()), Vec::<PathBuf>::new());
    }
}

#[tokio::test]
async fn thumbnails_may_be_cached_an_hour_and_assets_revalidate_by_etag() {
    let server = TestServer::start().await;
    let response = server.get("/static/main.js", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let etag = response.headers()[header::ETAG].to_str().unwrap().to_owned();
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache");
    let again = server.get("/static/main.js", &[(header::IF_NONE_MATCH, &etag)]).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(text(again).await.is_empty());
    assert_ne!(server.get("/static/style.css", &[]).await.headers()[header::ETAG], etag.as_str());
    assert_eq!(
        thumbq_contract::StorageKey::Thumbnail(ImageId::new(), thumbq_contract::ThumbSize::Small, thumbq_contract::ThumbFormat::Jpeg).cache_control(),
        "public, max-age=3600"
    );
}

#[tokio::test]
async fn a_retried_request_gets_its_first_answer_and_the_same_photo_again_is_the_same_image() {
    let server = TestServer::start().await;
    let (first, _) = server.upload(1, &[]).await;
    let owner = bearer(first["images"][0]["owner_key"].as_str().unwrap());
    let photo = distinct_png();

    let request_key = (header::HeaderName::from_static("idempotency-key"), "5d3b0c1e-upload-1");
    let auth = (header::AUTHORIZATION, owner.as_str());
    let (answer, _) = server.upload_files(std::slice::from_ref(&photo), &[auth.clone(), request_key.clone()]).await;
    // Its answer was lost; the client sends the same request again.
    let retry = server.send_files(&[distinct_png()], &[auth.clone(), request_key.clone()]).await;
    // (Its bytes differ, its length does not: a retry is the same request again.)
    assert_eq!(retry.status(), StatusCode::ACCEPTED);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let mut without_tokens = answer.clone();
    without_tokens["images"][0].as_object_mut().unwrap().remove("delete_token");
    assert_eq!(json(retry).await, without_tokens, "the first answer but its delete token, which the server keeps only hashed");
    let database = std::fs::read(server.data_dir.path().join("thumbq.db")).unwrap();
    let wal = std::fs::read(server.data_dir.path().join("thumbq.db-wal")).unwrap_or_default();
    let token = answer["images"][0]["delete_token"].as_str().unwrap().as_bytes();
    assert!(![database, wal].iter().any(|bytes| bytes.windows(token.len()).any(|window| window == token)), "no delete token in the database");
    // The same key with another request (another length) is refused, not answered as the first.
    let reused = server.send_files(&[distinct_png(), distinct_png()], &[auth.clone(), request_key.clone()]).await;
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // The same bytes picked again by the same owner: the image they have, and no job.
    let id = answer["images"][0]["id"].as_str().unwrap();
    let jobs = server.state.repo.outbox_len().await.unwrap();
    let (again, _) = server.upload_files(std::slice::from_ref(&photo), std::slice::from_ref(&auth)).await;
    assert_eq!((again["images"][0]["id"].as_str(), again["images"][0]["duplicate_of"].as_str()), (Some(id), Some(id)), "{again}");
    assert!(server.has_job(id).await);
    assert_eq!(server.state.repo.outbox_len().await.unwrap(), jobs, "no second job");
    // Twice in one request: the second is the first.
    let (twice, _) = server.upload_files(&[distinct_png(), photo.clone()], std::slice::from_ref(&auth)).await;
    assert!(twice["images"][0]["duplicate_of"].is_null() && twice["images"][1]["duplicate_of"] == id, "{twice}");
    // An image they have, twice in one request: both are that image, and still no job.
    let jobs = server.state.repo.outbox_len().await.unwrap();
    let (both, _) = server.upload_files(&[photo.clone(), photo.clone()], std::slice::from_ref(&auth)).await;
    assert!((0..2).all(|n| both["images"][n]["id"] == id && both["images"][n]["duplicate_of"] == id), "{both}");
    assert_eq!(server.state.repo.outbox_len().await.unwrap(), jobs, "no second job");
    let page = text(server.get("/", std::slice::from_ref(&auth)).await).await;
    assert!(page.contains("(3)"), "the first upload, the photo once, the new one: {page}");
    // New bytes in requests sent at once (the page sends files in parallel): one image, whichever was first.
    let photo = distinct_png();
    let answers = futures_util::future::join_all((0..4).map(|_| server.upload_files(std::slice::from_ref(&photo), std::slice::from_ref(&auth)))).await;
    let ids: std::collections::HashSet<_> = answers.iter().map(|(answer, _)| answer["images"][0]["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    assert_eq!(answers.iter().filter(|(answer, _)| answer["images"][0]["duplicate_of"].is_null()).count(), 1, "one made it, the others name it: {answers:?}");
    let originals = std::fs::read_dir(server.data_dir.path().join("originals")).unwrap().count();
    assert_eq!(originals, 4, "the copies' originals are gone before their answers");

    // Never across owners: a stranger's copy is their own image, and says nothing of ours.
    let (strangers, _) = server.upload_files(std::slice::from_ref(&photo), &[]).await;
    assert!(strangers["images"][0]["duplicate_of"].is_null() && strangers["images"][0]["id"] != id, "{strangers}");

    let bad = server.send_files(&[distinct_png()], &[auth.clone(), (header::HeaderName::from_static("idempotency-key"), "")]).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let long = "k".repeat(256);
    let bad = server.send_files(&[distinct_png()], &[auth, (header::HeaderName::from_static("idempotency-key"), long.as_str())]).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_images_delete_token_deletes_that_image_and_no_other() {
    let server = TestServer::start().await;
    let (answer, _) = server.upload(2, &[]).await;
    let images = answer["images"].as_array().unwrap();
    let (first, second) = (&images[0], &images[1]);
    let token = bearer(first["delete_token"].as_str().unwrap());
    assert!(token.starts_with("Bearer dt_") && first["delete_token"] != second["delete_token"], "{answer}");
    let auth = [(header::AUTHORIZATION, token.as_str())];

    let refused = server.delete(second["page"].as_str().unwrap(), &auth).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(text(refused).await.contains("another image's"), "it says why");
    let home = text(server.get("/", &auth).await).await;
    assert!(!home.contains(first["id"].as_str().unwrap()), "it is no owner key: it lists nothing");
    assert_ne!(server.get(first["original"].as_str().unwrap(), &auth).await.status(), StatusCode::OK, "nor fetches originals");
    assert_eq!(server.delete(first["page"].as_str().unwrap(), &auth).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(server.delete(first["page"].as_str().unwrap(), &auth).await.status(), StatusCode::GONE);
    assert_eq!(server.get(second["page"].as_str().unwrap(), &[]).await.status(), StatusCode::OK, "the other image stays");
}

#[tokio::test]
async fn a_form_upload_with_a_refused_file_answers_a_page_that_reads_in_order_and_refreshes_to_itself() {
    let server = TestServer::start().await;
    let mut body = Vec::new();
    for (name, bytes) in [("good.png", distinct_png()), ("notes.jpg", b"not a photo".to_vec())] {
        body.extend(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: image/png\r\n\r\n").as_bytes(),
        );
        body.extend(bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{BOUNDARY}--\r\n").as_bytes());
    let request = Request::post("/images")
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(Body::from(body))
        .unwrap();
    let response = server.send(request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = text(response).await;
    let (refused, kept) = (page.find("1 file was not uploaded:").expect("the refusal"), page.find("The other was:").expect("then the kept one"));
    assert!(refused < page.find("notes.jpg").unwrap() && page.find("notes.jpg").unwrap() < kept, "the refused file under its heading: {page}");
    let id = page.split("data-image=\"").nth(1).and_then(|rest| rest.split('"').next()).expect("the kept image");
    assert!(
        page.contains(&format!(r#"<meta http-equiv="refresh" content="2; url=/images?ids={id}">"#)),
        "a page without script looks again at these images, not at /images: {page}"
    );

    let bare = server.get("/images", &[]).await;
    assert_eq!(bare.status(), StatusCode::SEE_OTHER, "/images with no ids leads to the visitor's uploads");
    assert_eq!(bare.headers()[header::LOCATION], "/");
}

#[tokio::test]
async fn a_failed_image_in_your_uploads_says_why() {
    let server = TestServer::start().await;
    let (answer, cookie) = server.upload_files(&[distinct_png()], &[]).await;
    let id: ImageId = answer["images"][0]["id"].as_str().unwrap().parse().unwrap();
    let failure = thumbq_contract::FailureRecord { reason: "The file ends before its image data does.".into(), failed_at_ms: 1, retryable: false };
    assert!(server.state.repo.failed(id, &failure, &[]).await.unwrap());
    let home = text(server.get("/", &[(header::COOKIE, &cookie_pair(&cookie.unwrap()))]).await).await;
    assert!(home.contains(r#"<p class="failure" role="alert">The file ends before its image data does.</p>"#), "not only “No thumbnail”: {home}");
}

#[tokio::test]
async fn an_image_page_shows_the_picture_and_its_facts_to_all_and_its_way_to_its_owner_only() {
    let server = TestServer::start().await;
    let (answer, _) = server.upload(1, &[]).await;
    let image = &answer["images"][0];
    let (id, key) = (image["id"].as_str().unwrap(), bearer(image["owner_key"].as_str().unwrap()));
    let page = format!("/images/{id}");
    let owners = text(server.get(&page, &[(header::AUTHORIZATION, &key)]).await).await;
    let strangers = text(server.get(&page, &[]).await).await;
    for page in [&owners, &strangers] {
        assert!(page.find("data-size=\"large\"").unwrap() < page.find("<h1>").unwrap(), "the picture first");
        assert!(page.contains("PNG, ") && page.contains("<time datetime=\""), "what it is and when it came");
    }
    assert!(owners.contains("<details class=\"timeline\">") && owners.contains("How thumbq made it"), "{owners}");
    assert!(!strangers.contains("timeline") && !strangers.contains("How thumbq made it"), "a stranger does not see how long the upload took");
    assert!(owners.contains("Download the original") && !strangers.contains("/originals/"));
}
