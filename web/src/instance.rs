//! Who this web server is: its name in timelines, and as a lease holder.

use std::sync::LazyLock;

use thumbq_contract::Step;

/// This web server in timelines: `web@host:pid`.
pub static PROCESS: LazyLock<String> = LazyLock::new(|| thumbq_contract::timeline::process_name("web"));

/// This web server as a lease holder: its process name and a random part, since
/// containers may share a host name and a process id.
pub static INSTANCE: LazyLock<String> = LazyLock::new(|| format!("{} {}", *PROCESS, &uuid::Uuid::new_v4().simple().to_string()[..8]));

/// A step of an image's way that this web server took at `at`.
pub fn step(name: &str, at: u64) -> Step {
    Step { step: name.to_owned(), at, by: PROCESS.clone() }
}
