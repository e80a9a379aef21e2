//! The daily quotas: the bytes one owner, and one client address, may upload
//! in any 24 hours. They are counted in the repository, so every web server
//! sees the same; the rates of `rate_limit` bound a burst, these a day.
//!
//! An upload is checked before its body is read, with its `Content-Length`
//! when it sends one; uploads running at once are each checked alone, so a
//! client may pass its quota by what it sends at once, at most
//! `--max-uploads-per-client` requests.

use std::net::IpAddr;
use std::time::Duration;

use thumbq_contract::OwnerId;

use crate::AppState;
use crate::error::AppError;
use crate::progress::now_ms;

/// How far back a quota counts.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);

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
    /// Who has uploaded, as the user reads it.
    pub fn holder(self) -> &'static str {
        match self {
            Self::Owner => "You have",
            Self::Client => "Your address has",
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

/// Refuses (429) an upload of `incoming` bytes that would take `owner`, or `client`, past its quota.
pub async fn check(app: &AppState, owner: &OwnerId, client: Option<IpAddr>, incoming: u64) -> Result<(), AppError> {
    let now = now_ms();
    let since = now.saturating_sub(WINDOW.as_millis() as u64);
    let client = client.map(|client| client.to_string());
    let (by_owner, by_client) = app.repo.uploaded_since(owner, client.as_deref(), since).await?;
    let settings = &app.settings;
    for (quota, uploaded, limit_mib) in [(Quota::Owner, by_owner, settings.owner_mib_per_day), (Quota::Client, by_client, settings.client_mib_per_day)] {
        let limit_bytes = limit_mib.saturating_mul(MIB);
        if uploaded.bytes.saturating_add(incoming) <= limit_bytes {
            continue;
        }
        // The count falls when its first upload is a day old; an upload larger than the quota never fits.
        let frees_at = uploaded.earliest_ms.map_or(now, |earliest| earliest + WINDOW.as_millis() as u64);
        let retry_after_secs = frees_at.saturating_sub(now).div_ceil(1000).max(1);
        tracing::info!(quota = quota.reason_label(), uploaded_bytes = uploaded.bytes, incoming_bytes = incoming, limit_bytes, client.address = ?client, "Refused an upload over a daily quota.");
        return Err(AppError::QuotaReached { quota, limit_bytes, retry_after_secs });
    }
    Ok(())
}
