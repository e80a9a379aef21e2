//! Who the client is, for the upload rate limit and the logs: the socket's
//! peer, or, when that peer is a trusted reverse proxy, the address the
//! proxy says it forwards for (`X-Forwarded-For`, read right to left,
//! skipping the trusted proxies). A client can put anything in that header,
//! so it is believed only from the proxies named in the settings, and only
//! up to the first hop that is not an address.
//!
//! An IPv6 client is known by its /64: one host is given a whole /64, and
//! counting each of its addresses apart would give it 2⁶⁴ rate-limit buckets.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap};

/// The client's address; `None` when the request came through no socket (a handler test).
pub fn address(request: &Parts, trusted_proxies: &[IpAddr]) -> Option<IpAddr> {
    address_of(&request.extensions, &request.headers, trusted_proxies)
}

/// [`address`], from a request's extensions and headers (a layer has no `Parts`).
pub fn address_of(extensions: &Extensions, headers: &HeaderMap, trusted_proxies: &[IpAddr]) -> Option<IpAddr> {
    // An IPv4 peer of a server bound to [::] arrives as ::ffff:a.b.c.d.
    let peer = extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip().to_canonical();
    if !trusted_proxies.contains(&peer) {
        return Some(client_key(peer));
    }
    let forwarded: Vec<&str> =
        headers.get_all("x-forwarded-for").iter().filter_map(|value| value.to_str().ok()).flat_map(|value| value.split(',')).map(str::trim).collect();
    let mut client = peer;
    for hop in forwarded.into_iter().rev() {
        // What stands left of a hop that is no address was written by someone we cannot vouch for.
        let Ok(hop) = hop.parse::<IpAddr>().map(|hop| hop.to_canonical()) else { break };
        client = hop;
        if !trusted_proxies.contains(&hop) {
            break;
        }
    }
    Some(client_key(client))
}

/// The address a client is counted by: itself for IPv4, its /64 for IPv6.
pub fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !((1u128 << 64) - 1))),
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(
            address(&parts("10.0.0.2", Some("198.51.100.1, 10.0.0.9:5000")), &[proxy]),
            Some(proxy),
            "a hop that is no address stops the walk: what stands left of it is not believed"
        );
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_and_a_mapped_ipv4_one_as_ipv4() {
        let (mut first, ()) = Request::get("/").body(()).unwrap().into_parts();
        first.extensions.insert(ConnectInfo("[2001:db8:1:2:aaaa::1]:4000".parse::<SocketAddr>().unwrap()));
        let (mut second, ()) = Request::get("/").body(()).unwrap().into_parts();
        second.extensions.insert(ConnectInfo("[2001:db8:1:2:bbbb::9]:4000".parse::<SocketAddr>().unwrap()));
        assert_eq!(address(&first, &[]), address(&second, &[]));
        let (mut mapped, ()) = Request::get("/").body(()).unwrap().into_parts();
        mapped.extensions.insert(ConnectInfo("[::ffff:192.0.2.7]:4000".parse::<SocketAddr>().unwrap()));
        assert_eq!(address(&mapped, &[]), Some("192.0.2.7".parse().unwrap()));
    }
}
