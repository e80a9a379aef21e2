//! Debian's headless Chromium, driven over WebDriver by chromedriver.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;

use crate::harness::wait_for;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A headless Chromium session; the driver process is stopped when dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// A browser with more command-line arguments (a window size, a colour scheme).
    pub async fn start_with(extra: &[&str]) -> Self {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing. These tests need Debian's Chromium and its driver: run `scripts/test`, \
                 which installs them, or `apt-get install -y chromium chromium-driver`."
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("a free port").port();
        let driver = Command::new(CHROMEDRIVER).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("chromedriver starts");
        wait_for(Duration::from_secs(20), "chromedriver to listen", || async { TcpStream::connect(("127.0.0.1", port)).ok().map(drop) }).await;
        let profile = tempfile::tempdir().expect("a profile directory");
        // Without the background-networking flags Chromium keeps trying to reach
        // Google's services, which a closed network refuses.
        let mut arguments = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--hide-scrollbars".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if !extra.iter().any(|argument| argument.starts_with("--window-size")) {
            arguments.push("--window-size=1280,1000".to_owned());
        }
        arguments.extend(extra.iter().map(|argument| (*argument).to_owned()));
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), serde_json::json!({ "binary": CHROMIUM, "args": arguments }));
        // ChromeDriver listens on loopback, over plain HTTP: no TLS to set up.
        let client =
            ClientBuilder::new(HttpConnector::new()).capabilities(capabilities).connect(&format!("http://127.0.0.1:{port}")).await.expect("a Chromium session");
        Self { client, driver, _profile: profile }
    }

    /// Goes to `home` and gives the browser `owner_key` as its cookie, as its
    /// first upload would have: from then on it is that uploader.
    pub async fn become_owner(&self, home: &str, owner_key: &str) {
        self.client.goto(home).await.unwrap();
        let host = reqwest::Url::parse(home).expect("a URL").host_str().expect("a host").to_owned();
        // SameSite as the server sets it: WebDriver's default, None, needs a secure page.
        let cookie = fantoccini::cookies::Cookie::parse(format!("thumbq_owner={owner_key}; Path=/; Domain={host}; SameSite=Lax")).expect("a cookie");
        self.client.add_cookie(cookie).await.expect("the owner's cookie set");
    }

    /// Runs `script` in the page and returns its result.
    pub async fn eval(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, Vec::new()).await.expect("the script runs")
    }

    /// Saves a screenshot where CI keeps artifacts: `target/test-artifacts/{name}.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
        std::fs::create_dir_all(&directory).expect("an artifacts directory");
        let path = directory.join(format!("{name}.png"));
        std::fs::write(&path, self.client.screenshot().await.expect("a screenshot")).expect("the screenshot is saved");
        path
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    /// Stops the driver, and the Chromium it started (its processes are the
    /// ones running on this browser's own profile directory), also when a
    /// test failed before it could close the session.
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let profile = format!("--user-data-dir={}", self._profile.path().display());
        for pid in processes_with_argument(&profile) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

/// The ids of the processes whose command line has `argument`.
fn processes_with_argument(argument: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|line| line.split(|byte| *byte == 0).any(|part| part == argument.as_bytes())))
        .collect()
}
