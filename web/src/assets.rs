//! `GET /static/{file}`: the script and style sheet, built into the binary so
//! that a deployment is one file and no CDN is ever involved.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::AppError;

const ASSETS: [(&str, &str, &str); 2] = [
    ("app.js", "text/javascript; charset=utf-8", include_str!("../../static/app.js")),
    ("style.css", "text/css; charset=utf-8", include_str!("../../static/style.css")),
];

pub async fn asset(Path(file): Path<String>) -> Result<Response, AppError> {
    let (_, content_type, body) = ASSETS.iter().find(|(name, ..)| *name == file).ok_or(AppError::NotFound)?;
    // `no-cache` still lets the browser reuse its copy after a cheap revalidation.
    Ok(([(header::CONTENT_TYPE, *content_type), (header::CACHE_CONTROL, "no-cache")], *body).into_response())
}
