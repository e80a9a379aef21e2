//! The binaries refuse bad settings at start, naming the one at fault.

use std::process::Command;

use crate::processes::binary;

#[test]
fn bad_settings_are_refused_at_start_with_a_message_naming_them() {
    let cases = [
        ("thumbq-web", "THUMBQ_SIZES", "small=abc", "--sizes"),
        ("thumbq-web", "THUMBQ_MAX_UPLOAD_BYTES", "0", "--max-upload-bytes"),
        ("thumbq-web", "THUMBQ_BIND", "localhost", "--bind"),
        ("thumbq-web", "THUMBQ_AMQP_URL", "http://nope", "--amqp-url"),
        ("thumbq-worker", "THUMBQ_CONCURRENCY", "0", "--concurrency"),
        ("thumbq-worker", "THUMBQ_QUEUE", "amq.mine", "--queue"),
        ("thumbq-worker", "THUMBQ_SIZES", "small=900", "--sizes"),
    ];
    for (program, variable, value, flag) in cases {
        let output = Command::new(binary(program)).env(variable, value).output().expect("the binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{program} with {variable}={value} must not start");
        assert!(stderr.contains(flag), "{program} with {variable}={value} names {flag}:\n{stderr}");
    }
}
