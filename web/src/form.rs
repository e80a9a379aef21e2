//! A multipart form with bounds on everything besides its files' bytes, which
//! `upload` bounds itself:
//!
//! - **Progress.** A form that sends nothing for the idle timeout, or less
//!   than [`MIN_BYTES_PER_SECOND`] on average over any such span, ends with 408; one that
//!   keeps sending has no time limit (a big photo on a slow phone link is
//!   legitimate, one byte every half minute is not).
//! - **Parts.** At most `max_parts` parts.
//! - **Overhead.** The parser may hold at most [`OVERHEAD_BYTES`] that it has
//!   not handed over as file data: past that, the body is not read further
//!   until the handler has taken what the parser holds. A parser that cannot
//!   hand anything over yet still asks for more (a part header that never
//!   ends, a skipped field too long) gets a 413 at once, so no part of a
//!   form but its file data can grow the parser's buffer without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::multipart::{Field, MultipartError};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::StatusCode;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::StreamExt;

use crate::error::AppError;

/// How many bytes the parser may hold without handing them over: part
/// headers, boundaries and skipped fields must fit in it.
pub const OVERHEAD_BYTES: u64 = 1024 * 1024;

/// The least a form must send, on average over each idle-timeout span: half
/// a kilobyte a second, far below the slowest phone link.
pub const MIN_BYTES_PER_SECOND: u64 = 512;

pub struct BoundedForm {
    multipart: Multipart,
    budget: Arc<Budget>,
    idle: Duration,
    parts: usize,
    max_parts: usize,
}

/// What the handler took, and whether the body was held back for the budget.
#[derive(Default)]
struct Budget {
    delivered: AtomicU64,
    /// Set when the parser asked for more of the body while it held the whole budget.
    held_back: AtomicBool,
    /// Since when, and how many bytes of file data arrived, in the current span.
    window: std::sync::Mutex<Option<(std::time::Instant, u64)>>,
}

impl Budget {
    /// Counts `bytes` of file data; false when the span just ended with too little.
    fn progressed(&self, bytes: u64, span: Duration) -> bool {
        let mut window = self.window.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (started, received) = window.get_or_insert((std::time::Instant::now(), 0));
        *received += bytes;
        if started.elapsed() < span {
            return true;
        }
        let enough = *received >= MIN_BYTES_PER_SECOND * span.as_secs().max(1);
        *window = Some((std::time::Instant::now(), 0));
        enough
    }
}

impl BoundedForm {
    pub async fn from_request(request: Request, idle: Duration, max_parts: usize) -> Result<Self, AppError> {
        let budget = Arc::new(Budget::default());
        let request = {
            let budget = Arc::clone(&budget);
            request.map(|body| Body::from_stream(HeldBack { body: body.into_data_stream(), budget, received: 0 }))
        };
        let multipart = Multipart::from_request(request, &())
            .await
            .map_err(|rejection| AppError::BadForm { status: rejection.status(), message: rejection.body_text() })?;
        Ok(Self { multipart, budget, idle, parts: 0, max_parts })
    }

    /// The next part, or `None` at the end of the form.
    pub async fn next_field(&mut self) -> Result<Option<BoundedField<'_>>, AppError> {
        let idle = self.idle;
        let field = tokio::time::timeout(idle, within_budget(&self.budget, self.multipart.next_field())).await.map_err(|_| stalled(idle))??;
        let Some(field) = field else { return Ok(None) };
        self.parts += 1;
        if self.parts > self.max_parts {
            return Err(AppError::TooManyParts { limit: self.max_parts });
        }
        Ok(Some(BoundedField { field, budget: Arc::clone(&self.budget), idle }))
    }
}

/// One part of a [`BoundedForm`].
pub struct BoundedField<'a> {
    field: Field<'a>,
    budget: Arc<Budget>,
    idle: Duration,
}

impl BoundedField<'_> {
    pub fn name(&self) -> Option<&str> {
        self.field.name()
    }

    pub fn file_name(&self) -> Option<&str> {
        self.field.file_name()
    }

    /// The next chunk of the part's data, counted as delivered.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, AppError> {
        let chunk = tokio::time::timeout(self.idle, within_budget(&self.budget, self.field.chunk())).await.map_err(|_| stalled(self.idle))??;
        if let Some(chunk) = &chunk {
            self.budget.delivered.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if !self.budget.progressed(chunk.len() as u64, self.idle) {
                return Err(AppError::UploadTooSlow { min_bytes: MIN_BYTES_PER_SECOND * self.idle.as_secs().max(1), secs: self.idle.as_secs() });
            }
        }
        Ok(chunk)
    }
}

fn stalled(idle: Duration) -> AppError {
    AppError::UploadStalled { idle_secs: idle.as_secs() }
}

/// The body as the parser reads it: not past [`OVERHEAD_BYTES`] beyond what
/// the handler has taken. The parser reads all the body has ready whenever it
/// is polled, so without this a fast client would fill its buffer with
/// megabytes the handler has not asked for yet.
struct HeldBack<S> {
    body: S,
    budget: Arc<Budget>,
    received: u64,
}

impl<S: futures_util::Stream<Item = Result<Bytes, axum::Error>> + Unpin> futures_util::Stream for HeldBack<S> {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.received.saturating_sub(self.budget.delivered.load(Ordering::Relaxed)) > OVERHEAD_BYTES {
            // No waker: the parser is polled again when the handler asks for its next chunk (see `within_budget`).
            self.budget.held_back.store(true, Ordering::Relaxed);
            return Poll::Pending;
        }
        let chunk = std::task::ready!(self.body.poll_next_unpin(cx));
        if let Some(Ok(chunk)) = &chunk {
            self.received += chunk.len() as u64;
        }
        Poll::Ready(chunk)
    }
}

/// Runs one step of the parser. If it waits for more of the body while the
/// body is held back, it holds the whole budget and can hand none of it over:
/// that is overhead, refused at once.
async fn within_budget<T>(budget: &Budget, step: impl Future<Output = Result<T, MultipartError>>) -> Result<T, AppError> {
    let mut step = std::pin::pin!(step);
    std::future::poll_fn(|cx| {
        budget.held_back.store(false, Ordering::Relaxed);
        match step.as_mut().poll(cx) {
            Poll::Ready(result) => Poll::Ready(result.map_err(|error| match error.status() {
                // The body could not be read on: the client closed the connection (a reload, Remove). Its fault, not ours.
                StatusCode::INTERNAL_SERVER_ERROR => AppError::UploadCutShort,
                status => AppError::BadForm { status, message: error.body_text() },
            })),
            Poll::Pending if budget.held_back.load(Ordering::Relaxed) => Poll::Ready(Err(AppError::FormOverhead)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDARY: &str = "XyZ";

    fn form_request(chunks: Vec<Result<Bytes, std::io::Error>>) -> Request {
        Request::post("/images")
            .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
            .body(Body::from_stream(futures_util::stream::iter(chunks)))
            .unwrap()
    }

    async fn file_bytes(request: Request) -> Result<u64, AppError> {
        let mut form = BoundedForm::from_request(request, Duration::from_secs(5), 10).await?;
        let mut bytes = 0;
        while let Some(mut field) = form.next_field().await? {
            while let Some(chunk) = field.chunk().await? {
                bytes += chunk.len() as u64;
            }
        }
        Ok(bytes)
    }

    #[tokio::test]
    async fn a_connection_closed_mid_file_is_the_clients_doing_not_a_fault_of_ours() {
        let head = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n");
        let cut =
            form_request(vec![Ok(Bytes::from(head)), Ok(Bytes::from_static(&[0xFF; 1000])), Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset))]);
        let error = file_bytes(cut).await.unwrap_err();
        assert!(matches!(error, AppError::UploadCutShort), "{error:?}");
        assert_eq!(error.status(), StatusCode::BAD_REQUEST, "not a 500, which the access log reports as our error");
    }

    #[tokio::test]
    async fn a_file_arriving_faster_than_it_is_taken_is_not_overhead() {
        // The whole form in one chunk, as a fast client's bytes waiting on the socket arrive at once.
        // Over the budget, under axum's default body limit of 2 MB that applies outside the app's router.
        let file = vec![7u8; 1536 * 1024];
        let mut body = format!("--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n").into_bytes();
        body.extend_from_slice(&file);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        assert_eq!(file_bytes(form_request(vec![Ok(Bytes::from(body))])).await.unwrap(), file.len() as u64);
    }

    #[tokio::test]
    async fn a_part_header_that_never_ends_is_refused_once_it_fills_the_budget() {
        let start = format!("--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"").into_bytes();
        let endless = std::iter::once(Ok(Bytes::from(start))).chain(std::iter::repeat_with(|| Ok(Bytes::from(vec![b'a'; 64 * 1024]))));
        let read = Arc::new(AtomicU64::new(0));
        let counted = {
            let read = Arc::clone(&read);
            futures_util::stream::iter(endless).inspect(move |chunk: &Result<Bytes, std::io::Error>| {
                read.fetch_add(chunk.as_ref().map_or(0, |chunk| chunk.len() as u64), Ordering::Relaxed);
            })
        };
        let request =
            Request::post("/images").header("content-type", format!("multipart/form-data; boundary={BOUNDARY}")).body(Body::from_stream(counted)).unwrap();
        let error = file_bytes(request).await.unwrap_err();
        assert!(matches!(error, AppError::FormOverhead), "{error:?}");
        assert!(read.load(Ordering::Relaxed) <= OVERHEAD_BYTES + 128 * 1024, "read {} bytes", read.load(Ordering::Relaxed));
    }
}
