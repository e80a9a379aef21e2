//! The per-client upload rate: a token bucket per address (`governor`'s
//! GCRA), `--upload-burst` requests at once, then `--uploads-per-minute`.
//! The defaults let a person drop 50 photos at once (the page sends one
//! request per photo) and do it again a minute later.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::error::AppError;

pub struct UploadLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl UploadLimiter {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self { limiter: governor::RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)), clock: DefaultClock::default() }
    }

    /// Takes one upload from `client`'s bucket, or says how long to wait (429).
    pub fn check(&self, client: IpAddr) -> Result<(), AppError> {
        self.limiter.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            tracing::info!(client.address = %client, wait_ms = wait.as_millis() as u64, "Refused an upload over the client's rate.");
            AppError::TooManyUploads { retry_after_secs: wait.as_secs() + 1 }
        })
    }

    /// Forgets clients whose buckets are full again, so memory stays bounded.
    pub fn forget_idle_clients(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}
