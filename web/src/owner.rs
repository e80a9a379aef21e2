//! Who is asking, and whether they own an image.
//!
//! An owner is whoever holds an [`OwnerKey`]: 256 random bits, given to a
//! browser in an `HttpOnly` cookie at its first upload and to API clients as
//! `owner_key`. The server keeps only its hash, the [`OwnerId`], in each
//! image's record in the repository.
//!
//! Each image also has its own [`DeleteToken`], given to API clients with it:
//! it deletes that image and nothing else, so a client can hand it on without
//! handing on the key to all its uploads. Browsers get neither in JSON.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use thumbq_contract::OwnerId;

use crate::error::AppError;

/// The cookie that holds a browser's key.
pub const COOKIE: &str = "thumbq_owner";

/// Its name behind TLS: a `__Host-` cookie is `Secure`, for this host only
/// and the whole path, so a sibling subdomain cannot plant a key of its own.
pub const SECURE_COOKIE: &str = "__Host-thumbq_owner";

/// How long a browser keeps its key: 400 days, the most browsers allow.
const COOKIE_MAX_AGE_SECONDS: u32 = 400 * 24 * 3600;

/// An owner's secret: 32 random bytes, written as 43 characters of URL-safe base64.
#[derive(Clone)]
pub struct OwnerKey(String);

impl OwnerKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system's random source works");
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A key exactly as [`OwnerKey::generate`] writes it, or `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        (bytes.len() == 32 && text.len() == 43).then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn owner(&self) -> OwnerId {
        OwnerId::of_secret(self.0.as_bytes())
    }

    /// The `Set-Cookie` that gives this key to a browser; `secure` behind TLS.
    pub fn cookie(&self, secure: bool) -> HeaderValue {
        let (name, secure) = if secure { (SECURE_COOKIE, "; Secure") } else { (COOKIE, "") };
        let cookie = format!("{name}={}; Path=/; Max-Age={COOKIE_MAX_AGE_SECONDS}; HttpOnly; SameSite=Lax{secure}", self.0);
        HeaderValue::try_from(cookie).expect("a key is URL-safe base64")
    }
}

/// An image's own delete token: `dt_` and 32 random bytes in URL-safe base64.
/// The record keeps only its SHA-256.
pub struct DeleteToken(String);

const DELETE_TOKEN_PREFIX: &str = "dt_";

impl DeleteToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system's random source works");
        Self(format!("{DELETE_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the record keeps: the token's SHA-256, in hex.
    pub fn hash(&self) -> String {
        use sha2::Digest;
        sha2::Sha256::digest(self.0.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

/// The hash of the delete token a request presents as `Authorization: Bearer dt_…`, if it does.
pub fn presented_delete_token(headers: &HeaderMap) -> Option<String> {
    let token = bearer(headers)?.strip_prefix(DELETE_TOKEN_PREFIX)?;
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    (bytes.len() == 32).then(|| DeleteToken(format!("{DELETE_TOKEN_PREFIX}{token}")).hash())
}

/// Whether a browser may have sent the request: a browser's scripts are never
/// given a key in JSON. Browsers say where a request comes from
/// (`Sec-Fetch-Site`, only to secure origins; `Origin` on every POST) or send
/// their cookie; an API client does none of that.
pub fn from_browser(headers: &HeaderMap) -> bool {
    headers.contains_key("sec-fetch-site") || headers.contains_key(header::ORIGIN) || headers.contains_key(header::COOKIE)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Never logs the secret.
impl std::fmt::Debug for OwnerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnerKey(…)")
    }
}

/// Where the key of a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Bearer,
    Cookie,
}

/// The key a request presents: `Authorization: Bearer` first, then the cookie.
///
/// A bearer token that is no key is an error (the client meant to prove
/// something and cannot); a cookie that is no key is ignored, as if absent.
/// Another scheme (the dashboard's Basic credentials, which a browser then
/// sends everywhere below `/`, or a proxy's) is not about owners: the cookie decides.
///
/// Only the cookie this server gives (`secure_cookies` says which) counts:
/// behind TLS a plain `thumbq_owner`, which a sibling subdomain can plant,
/// would otherwise make a visitor's uploads the planter's.
pub fn presented_key(headers: &HeaderMap, secure_cookies: bool) -> Result<Option<(OwnerKey, KeySource)>, AppError> {
    if let Some(token) = bearer(headers) {
        return OwnerKey::parse(token).map(|key| Some((key, KeySource::Bearer))).ok_or(AppError::BadKey);
    }
    let ours = if secure_cookies { SECURE_COOKIE } else { COOKIE };
    let from_cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == ours).then_some(value)
        })
        .find_map(OwnerKey::parse);
    Ok(from_cookie.map(|key| (key, KeySource::Cookie)))
}

/// The owner a request proves to be, if any; for pages, where a bad token only means "a stranger".
pub fn caller(headers: &HeaderMap, secure_cookies: bool) -> Option<OwnerId> {
    presented_key(headers, secure_cookies).ok().flatten().map(|(key, _)| key.owner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_256_random_bits_and_only_their_own_form_parses() {
        let key = OwnerKey::generate();
        assert_eq!(key.as_str().len(), 43);
        assert_ne!(key.as_str(), OwnerKey::generate().as_str());
        assert!(OwnerKey::parse(key.as_str()).is_some());
        for bad in ["", "abc", &format!("{}=", key.as_str()), &key.as_str()[1..], "../../../../../../../../../../../etc/passwd"] {
            assert!(OwnerKey::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_bearer_token_comes_before_the_cookie_and_a_bad_one_is_refused() {
        let (cookie, bearer) = (OwnerKey::generate(), OwnerKey::generate());
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::try_from(format!("theme=dark; {COOKIE}={}", cookie.as_str())).unwrap());
        let (found, source) = presented_key(&headers, false).unwrap().unwrap();
        assert_eq!((found.as_str(), source), (cookie.as_str(), KeySource::Cookie));

        headers.insert(header::AUTHORIZATION, HeaderValue::try_from(format!("Bearer {}", bearer.as_str())).unwrap());
        let (found, source) = presented_key(&headers, false).unwrap().unwrap();
        assert_eq!((found.as_str(), source), (bearer.as_str(), KeySource::Bearer));

        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer nonsense"));
        assert!(matches!(presented_key(&headers, false), Err(AppError::BadKey)));

        // The dashboard's Basic credentials ride along on every request: the cookie still counts.
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic OnNlY3JldA=="));
        let (found, source) = presented_key(&headers, false).unwrap().unwrap();
        assert_eq!((found.as_str(), source), (cookie.as_str(), KeySource::Cookie));
    }

    #[test]
    fn behind_tls_only_the_host_cookie_counts_so_a_planted_plain_one_is_ignored() {
        let (ours, planted) = (OwnerKey::generate(), OwnerKey::generate());
        let mut headers = HeaderMap::new();
        // A sibling subdomain's `thumbq_owner` (Domain=.example.com) arrives first, before the visitor's own.
        headers.insert(header::COOKIE, HeaderValue::try_from(format!("{COOKIE}={}; {SECURE_COOKIE}={}", planted.as_str(), ours.as_str())).unwrap());
        let (found, _) = presented_key(&headers, true).unwrap().unwrap();
        assert_eq!(found.as_str(), ours.as_str());
        // A visitor with no key of their own yet: the planted one is no key at all.
        headers.insert(header::COOKIE, HeaderValue::try_from(format!("{COOKIE}={}", planted.as_str())).unwrap());
        assert!(presented_key(&headers, true).unwrap().is_none());
        // Without TLS the server gives the plain cookie, and reads only that one.
        headers.insert(header::COOKIE, HeaderValue::try_from(format!("{SECURE_COOKIE}={}", planted.as_str())).unwrap());
        assert!(presented_key(&headers, false).unwrap().is_none());
    }

    #[test]
    fn the_cookie_is_http_only_same_site_lax_and_secure_behind_tls() {
        let key = OwnerKey::generate();
        let plain = key.cookie(false);
        let plain = plain.to_str().unwrap();
        assert!(plain.starts_with(&format!("{COOKIE}={}", key.as_str())));
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Lax") && plain.contains("Path=/"));
        assert!(!plain.contains("Secure"));
        let secure = key.cookie(true);
        assert!(secure.to_str().unwrap().starts_with("__Host-thumbq_owner=") && secure.to_str().unwrap().ends_with("; Secure"));
    }
}
