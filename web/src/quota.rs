//! The daily quotas: the bytes one owner, and one client address, may upload
//! in any 24 hours. They are counted in the repository, so every web server
//! sees the same; the rates of `rate_limit` bound a burst, these a day.
//!
//! An upload is checked before its body is read, with its `Content-Length`
//! when it sends one; uploads running at once are each checked alone, so a
//! client may pass its quota by what it sends at once, at most
//! `--max-uploads-per-client` requests.
//!
//! A count is a sum over the day's images of its owner or address, so each is
//! read at most once per [`RECOUNT_AFTER`] and kept, with what this server
//! accepted since added to it: an address that uploads all day costs one sum
//! every few seconds, not one per upload. Another web server's uploads are
//! seen within that time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use thumbq_contract::OwnerId;
use thumbq_repo::Uploaded;

use crate::AppState;
use crate::error::AppError;
use crate::progress::now_ms;

/// How far back a quota counts.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);
/// How long a count read from the repository is used before it is read again.
pub const RECOUNT_AFTER: Duration = Duration::from_secs(5);
/// Counts kept at most; past it, those due to be read again are dropped.
const MOST_COUNTS: usize = 10_000;

const MIB: u64 = 1024 * 1024;

/// Whose quota an upload would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// The owner's key (a browser's cookie, an API client's token): kept images only.
    Owner,
    /// The client's address, whoever's the uploads, deleted or not.
    Client,
}

impl Quota {
    /// Whose uploads, as the user reads it.
    pub fn holder(self) -> &'static str {
        match self {
            Self::Owner => "you",
            Self::Client => "your address",
        }
    }

    pub fn whom(self) -> &'static str {
        match self {
            Self::Owner => "one person",
            Self::Client => "one address",
        }
    }

    pub fn reason_label(self) -> &'static str {
        match self {
            Self::Owner => "owner_quota",
            Self::Client => "client_quota",
        }
    }
}

/// Whose bytes a count is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Holder {
    Owner(OwnerId),
    Client(IpAddr),
}

/// The counts of the owners and addresses that uploaded lately.
#[derive(Default)]
pub struct Counts {
    counts: Mutex<HashMap<Holder, (Uploaded, Instant)>>,
}

impl Counts {
    fn recent(&self, holder: &Holder) -> Option<Uploaded> {
        let counts = self.counts.lock().ok()?;
        counts.get(holder).filter(|(_, read)| read.elapsed() < RECOUNT_AFTER).map(|(uploaded, _)| *uploaded)
    }

    fn keep(&self, holder: Holder, uploaded: Uploaded) {
        if let Ok(mut counts) = self.counts.lock() {
            if counts.len() >= MOST_COUNTS {
                counts.retain(|_, (_, read)| read.elapsed() < RECOUNT_AFTER);
            }
            counts.insert(holder, (uploaded, Instant::now()));
        }
    }

    /// Adds what this server just accepted to the counts it keeps.
    pub fn accepted(&self, owner: &OwnerId, client: Option<IpAddr>, bytes: u64, at_ms: u64) {
        let Ok(mut counts) = self.counts.lock() else { return };
        for holder in [Some(Holder::Owner(*owner)), client.map(Holder::Client)].into_iter().flatten() {
            if let Some((uploaded, _)) = counts.get_mut(&holder) {
                uploaded.bytes += bytes;
                uploaded.earliest_ms.get_or_insert(at_ms);
            }
        }
    }
}

/// Refuses (429) an upload of `incoming` bytes that would take `owner`, or `client`, past its quota.
pub async fn check(app: &AppState, owner: &OwnerId, client: Option<IpAddr>, incoming: u64) -> Result<(), AppError> {
    let now = now_ms();
    let since = now.saturating_sub(WINDOW.as_millis() as u64);
    let settings = &app.settings;
    let holders = [
        Some((Quota::Owner, Holder::Owner(*owner), settings.owner_mib_per_day)),
        client.map(|client| (Quota::Client, Holder::Client(client), settings.client_mib_per_day)),
    ];
    for (quota, holder, limit_mib) in holders.into_iter().flatten() {
        let uploaded = match app.quota_counts.recent(&holder) {
            Some(uploaded) => uploaded,
            None => {
                let uploaded = match &holder {
                    Holder::Owner(owner) => app.repo.uploaded_by(owner, since).await?,
                    Holder::Client(client) => app.repo.uploaded_from(&client.to_string(), since).await?,
                };
                app.quota_counts.keep(holder, uploaded);
                uploaded
            }
        };
        let limit_bytes = limit_mib.saturating_mul(MIB);
        if uploaded.bytes.saturating_add(incoming) <= limit_bytes {
            continue;
        }
        // The count falls when its first upload is a day old; an upload larger than the quota never fits.
        let frees_at = uploaded.earliest_ms.map_or(now, |earliest| earliest + WINDOW.as_millis() as u64);
        let retry_after_secs = frees_at.saturating_sub(now).div_ceil(1000).max(1);
        tracing::info!(
            quota = quota.reason_label(),
            uploaded_bytes = uploaded.bytes,
            incoming_bytes = incoming,
            limit_bytes,
            ?client,
            "Refused an upload over a daily quota."
        );
        return Err(AppError::QuotaReached { quota, limit_bytes, retry_after_secs });
    }
    Ok(())
}
