//! The binaries refuse bad settings at start, naming the one at fault, and wait for what is not there yet.

use std::process::Command;
use std::time::Duration;

use crate::harness::wait_for;
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
        ("thumbq-worker", "THUMBQ_RETRY_DELAYS_SECS", "1,5", "--retry-delays-secs"),
        ("thumbq-web", "THUMBQ_OPS_BIND", "nowhere", "--ops-bind"),
    ];
    for (program, variable, value, flag) in cases {
        let output = Command::new(binary(program)).env(variable, value).output().expect("the binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{program} with {variable}={value} must not start");
        assert!(stderr.contains(flag), "{program} with {variable}={value} names {flag}:\n{stderr}");
    }
}

#[test]
fn an_empty_admin_token_stops_the_web_server_instead_of_opening_the_dashboard() {
    for token in ["", "too-short"] {
        let output = Command::new(binary("thumbq-web")).env("THUMBQ_ADMIN_TOKEN", token).output().expect("the binary runs");
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("at least 16 characters"), "{}", String::from_utf8_lossy(&output.stderr));
    }
}

#[tokio::test]
async fn a_worker_started_before_any_web_server_waits_for_the_directory_to_be_set_up_and_sets_nothing_up_itself() {
    let empty = tempfile::tempdir().unwrap();
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("worker.log");
    let mut worker = Command::new(binary("thumbq-worker"))
        .env_clear()
        .env("THUMBQ_DATA_DIR", empty.path())
        .env("RUST_LOG", "info")
        // The log goes to stdout, a failed start's error to stderr: both into one file.
        .stdout(std::fs::File::options().create(true).append(true).open(&log).unwrap())
        .stderr(std::fs::File::options().append(true).open(&log).unwrap())
        .spawn()
        .expect("the worker starts");
    let stop = scopeguard(|| {
        let _ = worker.kill();
        let _ = worker.wait();
    });
    let said = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for(Duration::from_secs(20), "the worker to say it waits", || {
        let said = said();
        assert!(!said.contains("Error"), "{said}");
        async move { said.contains("waiting for thumbq-web to set it up").then_some(()) }
    })
    .await;
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0, "it set nothing up there");

    // The web server sets the directory up (as thumbq-web does at its start): the worker goes on.
    let storage = thumbq_contract::Storage::new(empty.path());
    thumbq_store::data_dir::init_manifest(
        &storage,
        &thumbq_contract::Manifest::new(&thumbq_contract::Sizes::default(), &thumbq_contract::MediaLimits::default()),
    )
    .unwrap();
    wait_for(Duration::from_secs(20), "the worker to go on", || async { empty.path().join("originals").is_dir().then_some(()) }).await;
    assert_eq!(said().matches("waiting for thumbq-web").count(), 1, "said once: {}", said());
    drop(stop);
}

/// Runs `cleanup` when dropped, also when the test panics.
fn scopeguard(cleanup: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(cleanup) = self.0.take() {
                cleanup();
            }
        }
    }
    Guard(Some(cleanup))
}

#[test]
fn a_worker_refuses_a_directory_set_up_otherwise() {
    let worker = |data_dir: &std::path::Path, environment: &[(&str, &str)]| {
        let mut command = Command::new(binary("thumbq-worker"));
        command.env_clear().env("THUMBQ_DATA_DIR", data_dir).envs(environment.iter().copied());
        let output = command.output().expect("the worker runs");
        assert!(!output.status.success(), "the worker must not start");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };

    let set_up = tempfile::tempdir().unwrap();
    let storage = thumbq_contract::Storage::new(set_up.path());
    thumbq_store::data_dir::init_manifest(
        &storage,
        &thumbq_contract::Manifest::new(&thumbq_contract::Sizes::default(), &thumbq_contract::MediaLimits::default()),
    )
    .unwrap();
    let said = worker(set_up.path(), &[("THUMBQ_SIZES", "small=100,medium=600,large=1200")]);
    assert!(said.contains("--sizes"), "{said}");
    let said = worker(set_up.path(), &[("THUMBQ_MAX_PIXELS", "1000")]);
    assert!(said.contains("--max-pixels"), "{said}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let said = worker(set_up.path(), &[("THUMBQ_METRICS_BIND", &address)]);
    assert!(said.contains("--metrics-bind"), "{said}");
}

#[tokio::test]
async fn a_web_server_refuses_a_data_directory_set_up_with_other_sizes() {
    let data_dir = tempfile::tempdir().unwrap();
    let deployment = thumbq_deployment::Deployment::new(data_dir.path(), None, "thumbq.unused");
    let first = thumbq_web::Settings::for_tests(deployment.clone());
    drop(thumbq_web::Application::build(first).await.expect("the first start sets the directory up"));
    let mut other = thumbq_web::Settings::for_tests(deployment);
    other.sizes = "small=100,medium=600,large=1200".parse().unwrap();
    let refused = thumbq_web::Application::build(other).await.err().expect("a server with other sizes does not start");
    assert!(refused.to_string().contains("set up with --sizes small=200"), "{refused}");
}
