//! Requests that change something (delete, take down, replay) are taken only
//! from thumbq's own pages, so that another site cannot make a visitor's
//! browser send them with its cookie. The `SameSite=Lax` cookie already stays
//! home on a cross-site POST; this check does not rely on it alone.

use axum::http::{HeaderMap, header};

use crate::error::AppError;

/// Refuses a request that a browser says came from another site.
///
/// `Sec-Fetch-Site` decides where the browser sends it; otherwise `Origin`
/// must name this host. A request with neither comes from no browser page
/// (curl, an API client), and carries no cookie it did not mean to.
pub fn check(headers: &HeaderMap) -> Result<(), AppError> {
    if let Some(site) = headers.get("sec-fetch-site") {
        return if site == "same-origin" || site == "none" { Ok(()) } else { Err(AppError::CrossSite) };
    }
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let origin_host = origin.to_str().ok().and_then(|origin| origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")));
    let host = headers.get(header::HOST).and_then(|host| host.to_str().ok());
    match (origin_host, host) {
        (Some(origin_host), Some(host)) if origin_host.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(AppError::CrossSite),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(name, value)| (header::HeaderName::from_static(name), HeaderValue::from_static(value))).collect()
    }

    #[test]
    fn only_requests_from_our_own_pages_pass() {
        assert!(check(&headers(&[])).is_ok());
        assert!(check(&headers(&[("sec-fetch-site", "same-origin")])).is_ok());
        assert!(check(&headers(&[("sec-fetch-site", "cross-site")])).is_err());
        assert!(check(&headers(&[("sec-fetch-site", "same-site")])).is_err());
        assert!(check(&headers(&[("origin", "http://127.0.0.1:8080"), ("host", "127.0.0.1:8080")])).is_ok());
        assert!(check(&headers(&[("origin", "https://evil.example"), ("host", "127.0.0.1:8080")])).is_err());
        assert!(check(&headers(&[("origin", "null"), ("host", "127.0.0.1:8080")])).is_err());
    }
}
