//! The load generator's HTTP/1.1 client: one kept-alive connection per
//! virtual client, as a browser tab would hold, and multipart upload bodies
//! streamed in 64 KiB slices of one shared copy of the image.

use std::convert::Infallible;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

/// How the body of an upload is cut as it is sent.
const CHUNK_BYTES: usize = 64 * 1024;

/// The form's boundary: long enough never to occur in the image's bytes.
const BOUNDARY: &str = "thumbq-bench-boundary-7f3a9c21e4b04d5e";

pub type Body = BoxBody<Bytes, Infallible>;

/// One connection to a server, opened again when the server closed it.
pub struct Connection {
    address: String,
    sender: Option<SendRequest<Body>>,
}

/// A whole answer.
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Connection {
    /// Does not connect yet: the first request does.
    pub fn new(address: &str) -> Self {
        Self { address: address.to_owned(), sender: None }
    }

    /// Sends `request` and reads its whole answer; fails past `within`.
    pub async fn send(&mut self, request: Request<Body>, within: Duration) -> anyhow::Result<Answer> {
        let answer = tokio::time::timeout(within, self.exchange(request)).await;
        match answer {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => {
                self.sender = None;
                Err(error)
            }
            Err(_) => {
                self.sender = None;
                anyhow::bail!("no answer within {within:?}")
            }
        }
    }

    async fn exchange(&mut self, request: Request<Body>) -> anyhow::Result<Answer> {
        let sender = match &mut self.sender {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.sender.insert(self.open().await?),
        };
        sender.ready().await.context("the connection closed")?;
        let response = sender.send_request(request).await.context("the request failed")?;
        let status = response.status();
        let body = response.into_body().collect().await.context("the answer broke off")?.to_bytes();
        Ok(Answer { status, body })
    }

    async fn open(&self) -> anyhow::Result<SendRequest<Body>> {
        let stream = tokio::net::TcpStream::connect(&self.address).await.with_context(|| format!("cannot connect to {}", self.address))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // Drives the connection; it ends when the sender is dropped or the server closes.
        tokio::spawn(connection);
        Ok(sender)
    }

    /// A `GET` of `path`, asking for JSON.
    pub fn get(&self, path: &str) -> Request<Body> {
        self.request(Method::GET, path).body(Empty::new().boxed()).expect("a valid request")
    }

    /// A `POST /images` of one file, field `file`, its body streamed from `image`.
    pub fn upload(&self, image: &Bytes, bearer: Option<&str>) -> Request<Body> {
        let head =
            Bytes::from(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"photo.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"));
        let tail = Bytes::from(format!("\r\n--{BOUNDARY}--\r\n"));
        // Sixteen bytes of its own after the image's end, which no decoder reads: each upload is
        // another file, as a person's photos are (the same bytes again would be the same image).
        static UPLOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let number = UPLOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
        let suffix = Bytes::from([number.to_le_bytes(), nanos.to_le_bytes()].concat());
        let length = head.len() + image.len() + suffix.len() + tail.len();
        // Slices of the shared bytes: each is a reference count, never a copy.
        let slices = (0..image.len()).step_by(CHUNK_BYTES).map(|start| image.slice(start..(start + CHUNK_BYTES).min(image.len())));
        let chunks: Vec<Bytes> = std::iter::once(head).chain(slices).chain([suffix, tail]).collect();
        let body = StreamBody::new(futures_util::stream::iter(chunks.into_iter().map(|chunk| Ok::<_, Infallible>(Frame::data(chunk)))));
        let mut request = self.request(Method::POST, "/images");
        request = request.header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}")).header(header::CONTENT_LENGTH, length);
        if let Some(token) = bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        request.body(body.boxed()).expect("a valid request")
    }

    fn request(&self, method: Method, path: &str) -> hyper::http::request::Builder {
        // hyper's client connection sends only the headers it is given: Host included.
        Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, HeaderValue::from_str(&self.address).expect("an address is a valid header"))
            .header(header::ACCEPT, "application/json")
    }
}
