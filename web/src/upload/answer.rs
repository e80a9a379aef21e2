//! What a client hears of an accepted upload: the links to follow each image,
//! and, for API clients only, the keys.

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use thumbq_contract::{ImageId, ThumbSize};

use super::Kept;
use crate::owner::OwnerKey;

pub(super) fn wants_json(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|accept| accept.to_str().ok()).is_some_and(|accept| accept.contains("application/json"))
}

pub(super) fn join_ids(ids: &[ImageId]) -> String {
    ids.iter().map(ImageId::to_string).collect::<Vec<_>>().join(",")
}

/// The links a client needs to follow one accepted image, and the key to delete it.
#[derive(Debug, Serialize)]
pub struct AcceptedImage {
    pub id: String,
    /// The name the file was sent under, for people.
    pub name: String,
    pub page: String,
    pub status: String,
    pub thumbnails: std::collections::BTreeMap<&'static str, String>,
    /// The original, for its owner only.
    pub original: String,
    /// The owner's key: `Authorization: Bearer {owner_key}` lists the owner's
    /// images, fetches their originals, deletes any of them, and, sent with
    /// later uploads, makes them the same owner's. Given to API clients only,
    /// and only when the request did not present it already.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_key: Option<String>,
    /// This image's own token: `Authorization: Bearer {delete_token}` deletes
    /// this image (`DELETE {page}`) and nothing else. Given to API clients only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_token: Option<String>,
    /// Set when the owner had uploaded these bytes already: this is that image, and no new job was queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
}

impl AcceptedImage {
    pub fn new(id: ImageId, name: String) -> Self {
        Self {
            id: id.to_string(),
            name,
            page: format!("/images/{id}"),
            status: format!("/api/images/{id}"),
            thumbnails: thumbnail_urls(id),
            original: format!("/originals/{id}"),
            owner_key: None,
            delete_token: None,
            duplicate_of: None,
        }
    }
}

/// `{"small": "/thumbs/{id}/small", …}`
pub fn thumbnail_urls(id: ImageId) -> std::collections::BTreeMap<&'static str, String> {
    ThumbSize::ALL.into_iter().map(|size| (size.name(), format!("/thumbs/{id}/{size}"))).collect()
}

/// The answer to an accepted upload. `keys` is `None` for a browser, whose
/// scripts get no key; otherwise the owner's key (when the request did not
/// present it) and each image's delete token go with the images.
pub(super) fn accepted_json(images: &[Kept], keys: Option<Option<&OwnerKey>>, refused: Vec<serde_json::Value>) -> Response {
    let answer = accepted_answer(images, keys, refused);
    let location = answer["images"][0]["page"].as_str().unwrap_or("/").to_owned();
    (StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(answer)).into_response()
}

/// The JSON of [`accepted_json`].
pub(crate) fn accepted_answer(images: &[Kept], keys: Option<Option<&OwnerKey>>, refused: Vec<serde_json::Value>) -> serde_json::Value {
    let images: Vec<_> = images
        .iter()
        .map(|image| AcceptedImage {
            duplicate_of: image.duplicate_of.map(|id| id.to_string()),
            owner_key: keys.flatten().map(|key| key.as_str().to_owned()),
            delete_token: keys.and(image.delete_token.clone()),
            ..AcceptedImage::new(image.id, image.name.clone())
        })
        .collect();
    serde_json::json!({ "images": images, "refused": refused })
}
