//! The page's modules checked outside the browser, under Node.js, against
//! reference implementations.

use std::process::Command;

#[test]
fn the_pages_thumbhash_decoder_gives_the_reference_implementations_pixels() {
    let root = env!("CARGO_MANIFEST_DIR");
    let output = Command::new("node")
        .arg(format!("{root}/clients/check-thumbhash.mjs"))
        .arg(format!("{root}/../static/thumbhash.js"))
        .arg(format!("{root}/fixtures/thumbhash/vectors.json"))
        .output()
        .expect("Node.js runs the check: install it with `scripts/ensure-tus-js-client` (scripts/test does), or `apt-get install nodejs`");
    assert!(output.status.success(), "the check failed: {}", String::from_utf8_lossy(&output.stderr));
    let results: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(results.len(), 6, "every vector was decoded");
    for result in results {
        assert_eq!(result["size"], result["expectedSize"], "{result}");
        assert_eq!(result["largestDifference"], 0, "the same pixels as the reference: {result}");
    }
}
