//! A multipart form with bounds on everything besides its files' bytes, which
//! `upload` bounds itself:
//!
//! - **Progress.** A form that sends nothing for the idle timeout, or less
//!   than [`MIN_BYTES_PER_SECOND`] on average over any such span, ends with 408; one that
//!   keeps sending has no time limit (a big photo on a slow phone link is
//!   legitimate, one byte every half minute is not).
//! - **Parts.** At most `max_parts` parts.
//! - **Overhead.** Every byte that does not reach the handler as file data
//!   (boundaries, part headers, skipped fields) counts against
//!   [`OVERHEAD_BYTES`]. The body is cut off the moment it is exceeded, so a
//!   part header that never ends cannot grow the parser's buffer without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::multipart::{Field, MultipartError};
use axum::extract::{FromRequest, Multipart, Request};
use futures_util::StreamExt;

use crate::error::AppError;

/// How many bytes of a form may be anything but file data. It must exceed
/// the largest chunk the connection hands over at once (hyper reads up to
/// ~400 KiB), which counts whole until the handler has taken its file data.
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

/// What the body has sent, what the handler took, and whether the budget was broken.
#[derive(Default)]
struct Budget {
    delivered: AtomicU64,
    exceeded: AtomicBool,
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

#[derive(Debug, thiserror::Error)]
#[error("the form's overhead is over its budget")]
struct OverBudget;

impl BoundedForm {
    pub async fn from_request(request: Request, idle: Duration, max_parts: usize) -> Result<Self, AppError> {
        let budget = Arc::new(Budget::default());
        let request = {
            let budget = Arc::clone(&budget);
            let mut received = 0u64;
            request.map(|body| {
                let guarded = body.into_data_stream().map(move |chunk| {
                    let chunk = chunk.map_err(axum::BoxError::from)?;
                    received += chunk.len() as u64;
                    if received.saturating_sub(budget.delivered.load(Ordering::Relaxed)) > OVERHEAD_BYTES {
                        budget.exceeded.store(true, Ordering::Relaxed);
                        return Err(axum::BoxError::from(OverBudget));
                    }
                    Ok(chunk)
                });
                Body::from_stream(guarded)
            })
        };
        let multipart = Multipart::from_request(request, &())
            .await
            .map_err(|rejection| AppError::BadForm { status: rejection.status(), message: rejection.body_text() })?;
        Ok(Self { multipart, budget, idle, parts: 0, max_parts })
    }

    /// The next part, or `None` at the end of the form.
    pub async fn next_field(&mut self) -> Result<Option<BoundedField<'_>>, AppError> {
        let idle = self.idle;
        let field = tokio::time::timeout(idle, self.multipart.next_field()).await.map_err(|_| stalled(idle))?;
        let field = field.map_err(|error| bad_form(&self.budget, error))?;
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
        let chunk = tokio::time::timeout(self.idle, self.field.chunk()).await.map_err(|_| stalled(self.idle))?;
        let chunk = chunk.map_err(|error| bad_form(&self.budget, error))?;
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

fn bad_form(budget: &Budget, error: MultipartError) -> AppError {
    if budget.exceeded.load(Ordering::Relaxed) {
        return AppError::FormOverhead;
    }
    AppError::BadForm { status: error.status(), message: error.body_text() }
}
