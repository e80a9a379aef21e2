//! When each step of an image's way happened, and who did it: the web
//! server's steps (received, stored, queued) and the worker's (taken,
//! decoded, resized, encoded, each size written, done or failed), each side
//! kept in a file of its own beside the image.

use serde::{Deserialize, Serialize};

/// One step of an image's way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// What happened: `received`, `stored`, `queued`, `taken`, `decoded`, …
    pub step: String,
    /// When, in milliseconds since the Unix epoch.
    pub at: u64,
    /// Which process: `web@host:pid`, `worker@host:pid`.
    pub by: String,
}

/// The steps one side recorded, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    pub steps: Vec<Step>,
}

impl Timeline {
    pub fn push(&mut self, step: &str, at: u64, by: &str) {
        self.steps.push(Step { step: step.to_owned(), at, by: by.to_owned() });
    }

    /// Both sides' steps as one timeline, oldest first (ties keep their order).
    pub fn merged(sides: impl IntoIterator<Item = Timeline>) -> Vec<Step> {
        let mut steps: Vec<Step> = sides.into_iter().flat_map(|side| side.steps).collect();
        steps.sort_by_key(|step| step.at);
        steps
    }
}

/// Who this process is in a timeline: its role, host and process id.
pub fn process_name(role: &str) -> String {
    // The host's name as the kernel holds it (uname(2), no file to read).
    let host = rustix::system::uname().nodename().to_string_lossy().into_owned();
    format!("{role}@{host}:{}", std::process::id())
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_process_is_named_by_its_role_host_and_id() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(super::process_name("worker"), format!("worker@{}:{}", host.trim(), std::process::id()));
    }
}
