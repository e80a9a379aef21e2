//! `GET /static/{file}`: the scripts and the style sheet, built into the binary so
//! that a deployment is one file and no CDN is ever involved.
//!
//! Each is sent with `no-cache` and an `ETag` of its bytes: a browser asks
//! every time, and a new release is picked up at once, but an unchanged file
//! costs only a 304.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::AppError;

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
    etag: String,
}

static ASSETS: LazyLock<[Asset; 12]> = LazyLock::new(|| {
    let asset = |name, content_type, body: &'static str| {
        let digest = Sha256::digest(body.as_bytes());
        let etag = format!("\"{}\"", digest[..12].iter().map(|byte| format!("{byte:02x}")).collect::<String>());
        Asset { name, content_type, body, etag }
    };
    [
        // The page's script, as ES modules (main.js imports the rest).
        asset("main.js", JAVASCRIPT, include_str!("../../static/main.js")),
        asset("live.js", JAVASCRIPT, include_str!("../../static/live.js")),
        asset("thumbhash.js", JAVASCRIPT, include_str!("../../static/thumbhash.js")),
        asset("uploads.js", JAVASCRIPT, include_str!("../../static/uploads.js")),
        asset("cards.js", JAVASCRIPT, include_str!("../../static/cards.js")),
        asset("transfer.js", JAVASCRIPT, include_str!("../../static/transfer.js")),
        asset("dashboard.js", JAVASCRIPT, include_str!("../../static/dashboard.js")),
        asset("trash.js", JAVASCRIPT, include_str!("../../static/trash.js")),
        asset("image.js", JAVASCRIPT, include_str!("../../static/image.js")),
        asset("folders.js", JAVASCRIPT, include_str!("../../static/folders.js")),
        // Vendored: see static/VENDORED.md.
        asset("tus-js-client-4.3.1.min.js", JAVASCRIPT, include_str!("../../static/tus-js-client-4.3.1.min.js")),
        asset("style.css", "text/css; charset=utf-8", include_str!("../../static/style.css")),
    ]
});

pub async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Result<Response, AppError> {
    let asset = ASSETS.iter().find(|asset| asset.name == file).ok_or(AppError::NotFound)?;
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim().trim_start_matches("W/") == asset.etag || tag.trim() == "*"));
    let validators = [(header::ETAG, asset.etag.clone()), (header::CACHE_CONTROL, "no-cache".to_owned())];
    if cached {
        return Ok((StatusCode::NOT_MODIFIED, validators).into_response());
    }
    Ok(([(header::CONTENT_TYPE, asset.content_type)], validators, asset.body).into_response())
}
