//! What pages and the API show of an image's record besides its state: its
//! timeline, with the processes named for strangers, and the placeholders workers announce.

pub use thumbq_contract::timeline::now_ms;

/// The most bytes a ThumbHash has (25 with alpha); anything longer is not one.
const MAX_PLACEHOLDER_BYTES: usize = 32;

/// Whether a worker's announced placeholder is a ThumbHash in base64, as pages expect it.
pub fn is_placeholder(placeholder: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(placeholder).is_ok_and(|hash| (5..=MAX_PLACEHOLDER_BYTES).contains(&hash.len()))
}

/// The steps of an image's way as anyone with its link may see them.
///
/// A process is named by its role and a short digest of `role@host:pid`:
/// enough to tell two workers apart, and no host name or process id for a
/// stranger (the database and logs keep them).
pub fn public_timeline(mut steps: Vec<thumbq_contract::Step>) -> Vec<thumbq_contract::Step> {
    for step in &mut steps {
        step.by = public_name(&step.by);
    }
    steps
}

/// `worker 3f2a9c` for `worker@host:1234`.
fn public_name(by: &str) -> String {
    use sha2::Digest;
    let role = by.split('@').next().unwrap_or("process");
    let digest = sha2::Sha256::digest(by.as_bytes());
    format!("{role} {:02x}{:02x}{:02x}", digest[0], digest[1], digest[2])
}
