//! Who the client is, for the upload rate limit and the logs: the socket's
//! peer, or, when that peer is a trusted reverse proxy, the address the
//! proxy says it forwards for (`X-Forwarded-For`, read right to left,
//! skipping the trusted proxies). A client can put anything in that header,
//! so it is believed only from the proxies named in the settings.

use std::net::IpAddr;

use axum::http::request::Parts;

/// The client's address; `None` when the request came through no socket (a handler test).
pub fn address(request: &Parts, trusted_proxies: &[IpAddr]) -> Option<IpAddr> {
    let peer = crate::server::peer(request)?.ip();
    if !trusted_proxies.contains(&peer) {
        return Some(peer);
    }
    let forwarded = request.headers.get_all("x-forwarded-for").iter().filter_map(|value| value.to_str().ok()).flat_map(|value| value.split(','));
    let hops: Vec<IpAddr> = forwarded.filter_map(|hop| hop.trim().parse().ok()).collect();
    Some(hops.into_iter().rev().find(|hop| !trusted_proxies.contains(hop)).unwrap_or(peer))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::extract::ConnectInfo;
    use axum::http::Request;

    use super::*;

    fn parts(peer: &str, forwarded: Option<&str>) -> Parts {
        let mut request = Request::get("/");
        if let Some(forwarded) = forwarded {
            request = request.header("x-forwarded-for", forwarded);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        parts.extensions.insert(ConnectInfo(format!("{peer}:40000").parse::<SocketAddr>().unwrap()));
        parts
    }

    #[test]
    fn x_forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(address(&parts("192.0.2.7", Some("198.51.100.1")), &[proxy]), Some("192.0.2.7".parse().unwrap()), "a client's own header is ignored");
        assert_eq!(address(&parts("10.0.0.2", Some("203.0.113.9")), &[proxy]), Some("203.0.113.9".parse().unwrap()));
        assert_eq!(
            address(&parts("10.0.0.2", Some("198.51.100.1, 203.0.113.9, 10.0.0.2")), &[proxy]),
            Some("203.0.113.9".parse().unwrap()),
            "the nearest hop that is not a trusted proxy: what the client prepends is not believed"
        );
        assert_eq!(address(&parts("10.0.0.2", None), &[proxy]), Some(proxy));
    }
}
