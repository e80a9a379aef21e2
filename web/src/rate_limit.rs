//! The per-client upload rates: a token bucket per address (`governor`'s
//! GCRA) for files, `--upload-burst` at once then `--uploads-per-minute`, and
//! one for bytes, charged by the mebibyte begun, `--upload-mib-burst` at once
//! then `--upload-mib-per-minute`. The defaults let a person drop 50 photos at
//! once (the page sends one request per photo) and do it again a minute
//! later; one request of many files is charged for each, as it arrives.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::error::AppError;

const MIB: u64 = 1024 * 1024;

pub struct UploadLimiter {
    files: DefaultKeyedRateLimiter<IpAddr>,
    mebibytes: DefaultKeyedRateLimiter<IpAddr>,
    mib_per_minute: u32,
    clock: DefaultClock,
}

impl UploadLimiter {
    pub fn new(files_per_minute: u32, file_burst: u32, mib_per_minute: u32, mib_burst: u32) -> Self {
        let quota = |per_minute: u32, burst: u32| {
            Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN)).allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
        };
        Self {
            files: governor::RateLimiter::keyed(quota(files_per_minute, file_burst)),
            mebibytes: governor::RateLimiter::keyed(quota(mib_per_minute, mib_burst)),
            mib_per_minute,
            clock: DefaultClock::default(),
        }
    }

    /// Charges a request's first file and first mebibyte to `client`, before its
    /// body is read, or says how long to wait (429). The rest is charged as it
    /// arrives, to the [`Charge`] this returns.
    pub fn admit(&self, client: Option<IpAddr>) -> Result<Charge<'_>, AppError> {
        let mut charge = Charge { limiter: self, client, files_seen: 0, files_charged: 0, bytes: 0, mib_charged: 0 };
        charge.file()?;
        charge.bytes(1)?;
        // The request's first file, when it comes, is the one charged now.
        (charge.files_seen, charge.bytes) = (0, 0);
        Ok(charge)
    }

    /// Charges a request that carries bytes of a file already charged (a
    /// resumable upload's): its first mebibyte now, the rest as it arrives.
    pub fn admit_bytes(&self, client: Option<IpAddr>) -> Result<Charge<'_>, AppError> {
        let mut charge = Charge { limiter: self, client, files_seen: 0, files_charged: 0, bytes: 0, mib_charged: 0 };
        charge.bytes(1)?;
        charge.bytes = 0;
        Ok(charge)
    }

    /// Forgets clients whose buckets are full again, so memory stays bounded.
    pub fn forget_idle_clients(&self) {
        for limiter in [&self.files, &self.mebibytes] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// What one request has been charged so far: each file it carries, and each
/// mebibyte begun. A client without an address (a Unix socket) is not charged.
pub struct Charge<'a> {
    limiter: &'a UploadLimiter,
    client: Option<IpAddr>,
    files_seen: u64,
    files_charged: u64,
    bytes: u64,
    mib_charged: u64,
}

impl Charge<'_> {
    /// Charges a file of the request (the first was charged by [`UploadLimiter::admit`]).
    pub fn file(&mut self) -> Result<(), AppError> {
        self.files_seen += 1;
        if self.files_seen <= self.files_charged {
            return Ok(());
        }
        self.files_charged += 1;
        let Some(client) = self.client else { return Ok(()) };
        self.limiter.files.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock.now());
            tracing::info!(client.address = %client, wait_ms = wait.as_millis() as u64, "Refused an upload over the client's rate of files.");
            AppError::TooManyUploads { retry_after_secs: wait.as_secs() + 1 }
        })
    }

    /// Charges `bytes` more of the request's body: a token for each mebibyte begun.
    pub fn bytes(&mut self, bytes: u64) -> Result<(), AppError> {
        self.bytes += bytes;
        let begun = self.bytes.div_ceil(MIB);
        let Some(client) = self.client else { return Ok(()) };
        while self.mib_charged < begun {
            let more = u32::try_from(begun - self.mib_charged).unwrap_or(u32::MAX);
            let more = NonZeroU32::new(more).expect("more than charged");
            let refused = |wait: std::time::Duration| {
                tracing::info!(client.address = %client, wait_ms = wait.as_millis() as u64, "Refused an upload over the client's rate of bytes.");
                AppError::TooManyBytes { bytes_per_minute: u64::from(self.limiter.mib_per_minute) * MIB, retry_after_secs: wait.as_secs() + 1 }
            };
            match self.limiter.mebibytes.check_key_n(&client, more) {
                Ok(Ok(())) => self.mib_charged += u64::from(more.get()),
                Ok(Err(not_until)) => return Err(refused(not_until.wait_time_from(self.limiter.clock.now()))),
                // More at once than the bucket holds: charge it a mebibyte at a time.
                Err(_) => match self.limiter.mebibytes.check_key(&client) {
                    Ok(()) => self.mib_charged += 1,
                    Err(not_until) => return Err(refused(not_until.wait_time_from(self.limiter.clock.now()))),
                },
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7)));

    #[test]
    fn each_file_of_a_request_is_charged() {
        let limiter = UploadLimiter::new(1, 3, 1000, 1000);
        let mut charge = limiter.admit(CLIENT).unwrap();
        for _ in 0..3 {
            charge.file().unwrap();
        }
        assert!(matches!(charge.file(), Err(AppError::TooManyUploads { retry_after_secs }) if retry_after_secs > 1), "the fourth file of a burst of three");
        assert!(limiter.admit(CLIENT).is_err(), "the next request waits too");
        assert!(limiter.admit(Some("192.0.2.8".parse().unwrap())).is_ok(), "another address has its own bucket");
    }

    #[test]
    fn each_mebibyte_begun_is_charged() {
        let limiter = UploadLimiter::new(1000, 1000, 60, 4);
        let mut charge = limiter.admit(CLIENT).unwrap();
        charge.bytes(MIB - 1).unwrap();
        charge.bytes(1).unwrap();
        charge.bytes(3 * MIB).unwrap();
        let refused = charge.bytes(1);
        assert!(matches!(refused, Err(AppError::TooManyBytes { bytes_per_minute, .. }) if bytes_per_minute == 60 * MIB), "{refused:?}");
        let mut unknown = limiter.admit(None).unwrap();
        unknown.bytes(100 * MIB).unwrap();
    }

    #[test]
    fn a_chunk_larger_than_the_burst_is_charged_in_mebibytes() {
        let limiter = UploadLimiter::new(1000, 1000, 60, 4);
        let mut charge = limiter.admit(CLIENT).unwrap();
        assert!(matches!(charge.bytes(10 * MIB), Err(AppError::TooManyBytes { .. })));
    }
}
