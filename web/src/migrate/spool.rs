//! A durable queue in a directory, one file per job: how releases before the
//! database kept the embedded queue (no AMQP URL configured) and each web
//! server's outbox. A web server reads such a directory at its start and moves
//! its jobs into the database (see `super::earlier_spools`); nothing writes it any more
//! but the tests that play an earlier release.
//!
//! Every step is a rename, which is atomic within one file system, so any
//! number of processes sharing the directory can push and claim at once:
//!
//! ```text
//! ready/{key}.job              waiting, oldest key first
//! claimed/{owner}/{key}.job    taken by a live process
//! owners/{owner}.lock          locked (flock) for as long as that process lives
//! dead/{key}.job               gave up on; kept for an operator
//! ```
//!
//! A process that dies keeps its claims only until another process notices
//! that the owner's lock is free ([`Spool::recover_orphans`]) and puts them
//! back in `ready/`. A key is `{unix ms}-{uuid v7}-{attempt}`: the time it was
//! due (an earlier release's retry waited for it; moving jobs does not).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use thumbq_store::durable::sync_dir;

/// One process's handle on a spool directory.
#[derive(Debug)]
pub struct Spool {
    root: PathBuf,
    owner: String,
    /// Held locked while this handle lives; the lock dies with the process.
    _owner_lock: File,
    /// The waiting keys as last listed, oldest first: claims take from here,
    /// and the directory is listed again only once it is used up, so that
    /// draining n jobs costs O(n), not O(n²).
    listed: std::sync::Mutex<std::collections::VecDeque<String>>,
    /// How many times `ready/` was listed for claims (the tests check it stays small).
    listings: std::sync::atomic::AtomicUsize,
}

/// A job taken from the spool, to be acked, put back or dead-lettered.
#[derive(Debug)]
pub struct Claim {
    pub payload: Vec<u8>,
    /// How many times the job was claimed before this time.
    pub attempts: u32,
    key: String,
    path: PathBuf,
}

impl Spool {
    /// Opens (creating it if needed) the spool at `root` for this process.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        for dir in ["ready", "claimed", "owners", "dead"] {
            fs::create_dir_all(root.join(dir))?;
        }
        let owner = uuid::Uuid::now_v7().simple().to_string();
        fs::create_dir_all(root.join("claimed").join(&owner))?;
        // Locked before it appears in owners/, so that no other process can
        // take this new owner for a dead one and recover its claims.
        let unlisted = root.join("claimed").join(&owner).join("owner.lock.tmp");
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(&unlisted)?;
        lock.try_lock().map_err(io::Error::other)?;
        fs::rename(&unlisted, root.join("owners").join(format!("{owner}.lock")))?;
        let spool = Self { root, owner, _owner_lock: lock, listed: Default::default(), listings: Default::default() };
        spool.recover_orphans()?;
        Ok(spool)
    }

    /// Adds a job; when this returns, the job is on disk and survives a crash.
    pub fn push(&self, payload: &[u8]) -> io::Result<()> {
        // Not added to this handle's list: a process that only pushes (the web
        // server) would keep it growing; whoever claims lists the directory.
        self.write_ready(&new_key(0), payload)
    }

    /// Takes the oldest waiting job, if any, due or not. Another process may take
    /// the same file at the same moment: the rename decides, and the loser tries the next.
    pub fn claim(&self) -> io::Result<Option<Claim>> {
        let mut listed_again = false;
        loop {
            let next = self.lock_listed().pop_front();
            let Some(key) = next else {
                if listed_again {
                    return Ok(None);
                }
                let keys = self.ready_keys()?;
                self.listings.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // Keys put back meanwhile may be listed twice: the second rename just misses.
                self.lock_listed().extend(keys);
                listed_again = true;
                continue;
            };
            let from = self.ready_path(&key);
            let to = self.claimed_dir().join(format!("{key}.job"));
            match fs::rename(&from, &to) {
                Ok(()) => {
                    let payload = fs::read(&to)?;
                    let attempts = attempts_of(&key);
                    return Ok(Some(Claim { payload, attempts, key, path: to }));
                }
                // Another process took it first; unless our own directory is gone.
                Err(error) if error.kind() == io::ErrorKind::NotFound && self.claimed_dir().is_dir() => continue,
                Err(error) => return Err(error),
            }
        }
    }

    fn lock_listed(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<String>> {
        self.listed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The job is done: forget it.
    pub fn ack(&self, claim: Claim) -> io::Result<()> {
        fs::remove_file(&claim.path)?;
        sync_dir(&self.claimed_dir())
    }

    /// Gives up on the job; it stays in `dead/` for an operator.
    pub fn dead_letter(&self, claim: Claim) -> io::Result<()> {
        fs::rename(&claim.path, self.root.join("dead").join(format!("{}.job", claim.key)))?;
        sync_dir(&self.root.join("dead"))
    }

    /// How many jobs wait.
    #[cfg(test)]
    fn len(&self) -> io::Result<usize> {
        Ok(self.ready_keys()?.len())
    }

    /// Puts back the claims of processes that died; returns how many.
    pub fn recover_orphans(&self) -> io::Result<usize> {
        let mut recovered = 0;
        for entry in fs::read_dir(self.root.join("owners"))? {
            let lock_path = entry?.path();
            let Some(owner) = lock_path.file_stem().and_then(|stem| stem.to_str()).map(str::to_owned) else { continue };
            if owner == self.owner {
                continue;
            }
            let Ok(lock) = OpenOptions::new().write(true).open(&lock_path) else { continue };
            if lock.try_lock().is_err() {
                continue; // Its process is alive.
            }
            let claimed = self.root.join("claimed").join(&owner);
            if let Ok(entries) = fs::read_dir(&claimed) {
                for entry in entries {
                    let path = entry?.path();
                    match path.file_name().and_then(|name| name.to_str()).and_then(|name| name.strip_suffix(".job")) {
                        Some(key) => {
                            // Its owner may have died mid-job: count that as an attempt.
                            match fs::rename(&path, self.ready_path(&with_attempts(key, attempts_of(key) + 1))) {
                                Ok(()) => recovered += 1,
                                // Another process recovered it first.
                                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                                Err(error) => return Err(error),
                            }
                        }
                        None => {
                            let _ = fs::remove_file(&path); // a push cut short
                        }
                    }
                }
                let _ = fs::remove_dir(&claimed);
            }
            let _ = fs::remove_file(&lock_path);
        }
        Ok(recovered)
    }

    fn write_ready(&self, key: &str, payload: &[u8]) -> io::Result<()> {
        // (Also below: every rename is followed by an fsync of the directory it
        // lands in, so that it survives a power cut.)
        self.write_whole(key, payload, &self.ready_path(key))?;
        sync_dir(&self.root.join("ready"))
    }

    /// Writes `payload` to `path` whole: first to a temporary file in this
    /// owner's directory, so that a crash mid-write leaves a partial file
    /// nobody takes for a job, and one that a failed write (a full disk)
    /// does not leave behind.
    fn write_whole(&self, key: &str, payload: &[u8], path: &Path) -> io::Result<()> {
        let temporary = self.claimed_dir().join(format!("{key}.tmp"));
        let written = File::create(&temporary).and_then(|mut file| {
            file.write_all(payload)?;
            file.sync_all()
        });
        match written.and_then(|()| fs::rename(&temporary, path)) {
            Ok(()) => Ok(()),
            Err(error) => {
                let _ = fs::remove_file(&temporary);
                Err(error)
            }
        }
    }

    fn ready_keys(&self) -> io::Result<Vec<String>> {
        let mut keys = Vec::new();
        for entry in fs::read_dir(self.root.join("ready"))? {
            let name = entry?.file_name();
            if let Some(key) = name.to_str().and_then(|name| name.strip_suffix(".job")) {
                keys.push(key.to_owned());
            }
        }
        keys.sort_unstable();
        Ok(keys)
    }

    fn ready_path(&self, key: &str) -> PathBuf {
        self.root.join("ready").join(format!("{key}.job"))
    }

    fn claimed_dir(&self) -> PathBuf {
        self.root.join("claimed").join(&self.owner)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

fn new_key(attempts: u32) -> String {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis());
    format!("{now_ms:013}-{}-{attempts}", uuid::Uuid::now_v7().simple())
}

fn attempts_of(key: &str) -> u32 {
    key.rsplit('-').next().and_then(|attempts| attempts.parse().ok()).unwrap_or(0)
}

fn with_attempts(key: &str, attempts: u32) -> String {
    match key.rsplit_once('-') {
        Some((stem, _)) => format!("{stem}-{attempts}"),
        None => format!("{key}-{attempts}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_come_out_oldest_first_and_are_gone_once_acked() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        for payload in [b"one", b"two", b"thr"] {
            spool.push(payload).unwrap();
        }
        assert_eq!(spool.len().unwrap(), 3);
        let first = spool.claim().unwrap().unwrap();
        assert_eq!(first.payload, b"one");
        assert_eq!(spool.len().unwrap(), 2);
        spool.ack(first).unwrap();
        assert_eq!(spool.claim().unwrap().unwrap().payload, b"two");
    }

    #[test]
    fn draining_many_jobs_lists_the_directory_a_constant_number_of_times() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        // Pushed by another process, so this one must list them.
        let other = Spool::open(dir.path()).unwrap();
        for n in 0..3000u32 {
            other.push(&n.to_be_bytes()).unwrap();
        }
        let mut order = Vec::new();
        while let Some(claim) = spool.claim().unwrap() {
            order.push(u32::from_be_bytes(claim.payload.clone().try_into().unwrap()));
            spool.ack(claim).unwrap();
        }
        assert_eq!(order, (0..3000).collect::<Vec<_>>(), "oldest first, none lost");
        assert!(spool.listings.load(std::sync::atomic::Ordering::Relaxed) <= 3, "listed {} times", spool.listings.load(std::sync::atomic::Ordering::Relaxed));
    }

    #[test]
    fn the_claims_of_a_process_that_died_return_to_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let survivor = Spool::open(dir.path()).unwrap();
        let doomed = Spool::open(dir.path()).unwrap();
        survivor.push(b"job").unwrap();
        let claim = doomed.claim().unwrap().unwrap();
        assert_eq!(survivor.recover_orphans().unwrap(), 0, "its owner still lives");
        assert!(survivor.claim().unwrap().is_none());
        drop(claim);
        drop(doomed); // as if the process had died: its lock is gone

        assert_eq!(survivor.recover_orphans().unwrap(), 1);
        let recovered = survivor.claim().unwrap().unwrap();
        assert_eq!((recovered.payload.as_slice(), recovered.attempts), (&b"job"[..], 1));
    }

    #[test]
    fn two_handles_never_claim_the_same_job() {
        let dir = tempfile::tempdir().unwrap();
        let spools: Vec<_> = (0..4).map(|_| Spool::open(dir.path()).unwrap()).collect();
        for _ in 0..200 {
            spools[0].push(b"x").unwrap();
        }
        let claimed: usize = std::thread::scope(|scope| {
            let workers: Vec<_> = spools.iter().map(|spool| scope.spawn(move || std::iter::from_fn(|| spool.claim().unwrap()).count())).collect();
            workers.into_iter().map(|worker| worker.join().unwrap()).sum()
        });
        assert_eq!(claimed, 200);
    }
}
