//! Starting the app for a test, talking to it, and waiting on conditions with deadlines.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use reqwest::{Response, StatusCode, header};
use thumbq_broker::lapin::options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use thumbq_broker::lapin::types::FieldTable;
use thumbq_contract::{ImageId, Topology};
use thumbq_deployment::Deployment;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// An HTTP client for a test. reqwest has no TLS provider of its own here
/// (thumbq-store builds it so): ring is installed first, as thumbq's
/// processes install it before their S3 client.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    thumbq_store::install_tls_provider();
    reqwest::Client::builder()
}

/// [`http_client_builder`], built as it is.
pub fn http_client() -> reqwest::Client {
    http_client_builder().build().expect("an HTTP client")
}

/// The broker the tests use; `THUMBQ_TEST_AMQP_URL` points them elsewhere.
pub fn amqp_url() -> String {
    std::env::var("THUMBQ_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Fails the test, with the fix, when RabbitMQ is not there.
pub async fn require_rabbitmq() {
    if let Err(error) = thumbq_broker::connect(&amqp_url(), "thumbq-tests").await {
        panic!(
            "RabbitMQ is not reachable at {} ({error}).\n\
             These tests need it. Run `scripts/test`, which installs and starts it, \
             or start it yourself with `rabbitmq-server -detached`.",
            amqp_url()
        );
    }
}

/// A running web server (and, unless asked otherwise, a worker) with its own data directory and queue.
pub struct TestApp {
    pub address: String,
    /// `http://…` of `--ops-bind`, when the test set one.
    pub ops_address: Option<String>,
    pub client: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    pub queue: String,
    /// The broker web and worker use; `None` in embedded mode.
    pub amqp_url: Option<String>,
    /// Where web and worker store, when not in the data directory (an S3 bucket).
    pub store: thumbq_store::StoreSettings,
    /// The test's own PostgreSQL database, when its processes share one rather than the data directory's SQLite.
    pub postgres: Option<thumbq_repo::testing::TestDatabase>,
    pub retry_delays: thumbq_contract::RetryDelays,
    worker: Option<(watch::Sender<bool>, JoinHandle<anyhow::Result<()>>)>,
}

/// What a test may change before the app starts.
pub struct Options {
    pub with_worker: bool,
    pub max_upload_bytes: u64,
    /// The AMQP URL of web and worker; `None` is embedded mode.
    pub amqp_url: Option<String>,
    /// Another AMQP URL for the web server alone (a proxy the test can cut).
    pub web_amqp_url: Option<String>,
    /// Opens the dashboard.
    pub admin_token: Option<String>,
    /// Changes any other setting of the web server.
    pub web: fn(&mut thumbq_web::Settings),
    /// Where the data directory is made; the system's temporary directory when `None`.
    pub data_dir_in: Option<PathBuf>,
    /// Fills the data directory before any process starts on it.
    pub before_start: fn(&Path),
    /// Where web and in-process worker store; the data directory by default.
    pub store: thumbq_store::StoreSettings,
    /// Keep the records in a PostgreSQL database of the test's own rather than SQLite in the data directory.
    pub postgres: bool,
    /// How long failed tries wait; a second each by default, so that a job that keeps failing ends in seconds.
    pub retry_delays: thumbq_contract::RetryDelays,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            with_worker: true,
            max_upload_bytes: 50 * 1024 * 1024,
            amqp_url: Some(amqp_url()),
            web_amqp_url: None,
            admin_token: None,
            web: |_| {},
            data_dir_in: None,
            before_start: |_| {},
            store: thumbq_store::StoreSettings::default(),
            postgres: all_on_postgresql(),
            retry_delays: "1,1,1,1".parse().expect("valid delays"),
        }
    }
}

/// Whether every test keeps its records in PostgreSQL (`THUMBQ_TEST_DATABASE=postgres`),
/// not only those about more than one machine: the whole suite runs on either backend.
fn all_on_postgresql() -> bool {
    std::env::var("THUMBQ_TEST_DATABASE").is_ok_and(|backend| backend == "postgres")
}

/// How a test's processes pass jobs.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    RabbitMq,
    Embedded,
}

impl TestApp {
    /// Web server and worker.
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    /// Web server only: jobs stay on the queue until [`TestApp::start_worker`].
    pub async fn spawn_without_worker() -> Self {
        Self::spawn_with(Options { with_worker: false, ..Options::default() }).await
    }

    /// Web server only, its settings changed by `web`.
    pub async fn spawn_without_worker_and(web: fn(&mut thumbq_web::Settings)) -> Self {
        Self::spawn_with(Options { with_worker: false, web, ..Options::default() }).await
    }

    /// Web server and worker, passing jobs as `mode` says.
    pub async fn spawn_in(mode: Mode) -> Self {
        let amqp_url = match mode {
            Mode::RabbitMq => Some(amqp_url()),
            Mode::Embedded => None,
        };
        Self::spawn_with(Options { amqp_url, ..Options::default() }).await
    }

    pub async fn spawn_with(options: Options) -> Self {
        require_rabbitmq().await;
        let data_dir = match &options.data_dir_in {
            Some(parent) => tempfile::tempdir_in(parent).expect("a temporary directory"),
            None => tempfile::tempdir().expect("a temporary directory"),
        };
        (options.before_start)(data_dir.path());
        let queue = format!("thumbq.test.{}", uuid::Uuid::now_v7().simple());
        let web_amqp_url = options.web_amqp_url.clone().or_else(|| options.amqp_url.clone());
        let postgres = match options.postgres {
            true => Some(thumbq_repo::testing::TestDatabase::create().await),
            false => None,
        };
        let mut deployment =
            Deployment::new(data_dir.path(), web_amqp_url, &queue).with_store(options.store.clone()).with_retry_delays(options.retry_delays.clone());
        if let Some(database) = &postgres {
            deployment = deployment.with_database(thumbq_repo::Location::Postgres(database.url().to_owned()));
        }
        let mut settings = thumbq_web::Settings::for_tests(deployment);
        settings.media.max_upload_bytes = options.max_upload_bytes;
        settings.admin_token = options.admin_token.clone();
        (options.web)(&mut settings);
        let web = thumbq_web::Application::build(settings).await.expect("the web server starts");
        let address = format!("http://{}", web.local_addr());
        let ops_address = web.ops_addr().map(|ops| format!("http://{ops}"));
        tokio::spawn(web.run_until_stopped(std::future::pending()));
        let client = http_client_builder().redirect(reqwest::redirect::Policy::none()).build().expect("an HTTP client");
        let mut app = Self {
            address,
            ops_address,
            client,
            data_dir,
            queue,
            amqp_url: options.amqp_url,
            store: options.store,
            postgres,
            retry_delays: options.retry_delays,
            worker: None,
        };
        if options.with_worker {
            app.start_worker().await;
        }
        app
    }

    pub async fn start_worker(&mut self) {
        self.start_worker_with(|_| {}).await;
    }

    /// Starts the worker with its job context changed by `prepare` (a hook, say).
    pub async fn start_worker_with(&mut self, prepare: impl FnOnce(&mut thumbq_worker::job::JobContext) + Send + 'static) {
        let deployment = Deployment::new(self.data_dir.path(), self.amqp_url.clone(), &self.queue)
            .with_store(self.store.clone())
            .with_database(self.database())
            .with_retry_delays(self.retry_delays.clone());
        let settings = thumbq_worker::Settings::for_tests(deployment);
        let (stop, shutdown) = watch::channel(false);
        let handle = tokio::spawn(thumbq_worker::run_with(settings, prepare, shutdown));
        self.worker = Some((stop, handle));
    }

    /// Stops the worker and waits until it has settled every job it held.
    pub async fn stop_worker(&mut self) {
        let (stop, handle) = self.worker.take().expect("a worker is running");
        let _ = stop.send(true);
        tokio::time::timeout(Duration::from_secs(60), handle)
            .await
            .expect("the worker stops within a minute")
            .expect("the worker task ends")
            .expect("the worker ends well");
    }

    /// GET as the owner of `token` (an `owner_key`).
    pub async fn get_as(&self, path: &str, token: &str) -> Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.expect("the server answers")
    }

    /// DELETE, with the owner key `token` when given.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.client.delete(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("the server answers")
    }

    /// Where web and workers keep their records: the test's PostgreSQL database, or SQLite in the data directory.
    pub fn database(&self) -> thumbq_repo::Location {
        match &self.postgres {
            Some(database) => thumbq_repo::Location::Postgres(database.url().to_owned()),
            None => thumbq_repo::DatabaseSettings::default().location(self.data_dir.path()),
        }
    }

    /// The environment that points a `thumbq-web` or `thumbq-worker` process at the test's PostgreSQL database, if it has one.
    pub fn database_environment(&self) -> Vec<(&'static str, String)> {
        self.postgres.iter().map(|database| ("THUMBQ_DATABASE_URL", database.url().to_owned())).collect()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("the server answers")
    }

    pub async fn head(&self, path: &str) -> Response {
        self.client.head(self.url(path)).send().await.expect("the server answers")
    }

    /// Posts `files` (name, bytes, declared content type) as a browser form does.
    pub async fn upload_form(&self, files: &[(&str, Vec<u8>, &str)]) -> Response {
        self.post_files(files, "text/html").await
    }

    /// Posts `files` asking for JSON, as an API client does.
    pub async fn upload_json(&self, files: &[(&str, Vec<u8>, &str)]) -> Response {
        self.post_files(files, "application/json").await
    }

    async fn post_files(&self, files: &[(&str, Vec<u8>, &str)], accept: &str) -> Response {
        let mut form = Form::new();
        for (name, bytes, content_type) in files {
            let part = Part::bytes(bytes.clone()).file_name(name.to_string()).mime_str(content_type).expect("a valid MIME type");
            form = form.part("file", part);
        }
        self.client.post(self.url("/images")).header(header::ACCEPT, accept).multipart(form).send().await.expect("the server answers")
    }

    /// Uploads one file as JSON and returns its id.
    pub async fn upload_one(&self, name: &str, bytes: Vec<u8>) -> ImageId {
        self.upload_owned(name, bytes).await.0
    }

    /// Uploads one file as JSON and returns its id and its owner key (`owner_key`).
    pub async fn upload_owned(&self, name: &str, bytes: Vec<u8>) -> (ImageId, String) {
        let response = self.upload_json(&[(name, bytes, "application/octet-stream")]).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{}", response.text().await.unwrap_or_default());
        let body: serde_json::Value = response.json().await.expect("a JSON answer");
        let id = body["images"][0]["id"].as_str().expect("an id").parse().expect("a valid id");
        (id, body["images"][0]["owner_key"].as_str().expect("an owner key").to_owned())
    }

    /// Every file or directory below the data directory whose path names `id`.
    pub fn paths_naming(&self, id: ImageId) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut stack = vec![self.data_dir.path().to_owned()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).expect("a readable directory").flatten() {
                let path = entry.path();
                if path.to_string_lossy().contains(&id.to_string()) {
                    found.push(path.clone());
                }
                if path.is_dir() {
                    stack.push(path);
                }
            }
        }
        found
    }

    /// The image's state from `/api/images/{id}`.
    pub async fn status(&self, id: ImageId) -> serde_json::Value {
        let response = self.get(&format!("/api/images/{id}")).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("a JSON answer")
    }

    /// Waits until the image's state is no longer `pending` and, when it is
    /// `done`, until its job has written its last file: the large WebP, whose
    /// step ends the worker's timeline (written after the three sizes). Returns the status.
    pub async fn wait_until_settled(&self, id: ImageId) -> serde_json::Value {
        wait_for(Duration::from_secs(60), &format!("image {id}'s job to end"), || async {
            let status = self.status(id).await;
            let last_step_written = status["timeline"].as_array().is_some_and(|steps| steps.iter().any(|step| step["step"] == "WebP written"));
            (status["state"] == "failed" || (status["state"] == "done" && last_step_written)).then_some(status)
        })
        .await
    }

    /// Waits for every thumbnail of `id` to answer 200, and returns their bytes, smallest first.
    pub async fn wait_for_thumbnails(&self, id: ImageId) -> Vec<(Response, Vec<u8>)> {
        let mut thumbnails = Vec::new();
        for size in ["small", "medium", "large"] {
            let path = format!("/thumbs/{id}/{size}");
            let response = wait_for(Duration::from_secs(60), &format!("{path} to answer 200"), || async {
                let response = self.get(&path).await;
                match response.status() {
                    StatusCode::OK => Some(response),
                    StatusCode::NOT_FOUND => None,
                    other => panic!("{path} answered {other}: {}", response.text().await.unwrap_or_default()),
                }
            })
            .await;
            let bytes = response.bytes().await.expect("the thumbnail's bytes").to_vec();
            let head = self.head(&path).await;
            thumbnails.push((head, bytes));
        }
        thumbnails
    }

    /// How many of `ids` have all three thumbnails on disk (cheaper than asking the API for each).
    pub fn count_done(&self, ids: &[ImageId]) -> usize {
        ids.iter()
            .filter(|id| {
                let dir = self.data_dir.path().join("thumbs").join(id.to_string());
                // The baseline files (JPEG or PNG) say a size is ready; the WebPs come after them.
                std::fs::read_dir(dir).is_ok_and(|files| {
                    files.flatten().filter(|file| file.path().extension().is_some_and(|extension| extension == "jpg" || extension == "png")).count() == 3
                })
            })
            .count()
    }

    /// How many jobs wait in this test's resize queue.
    pub async fn queue_depth(&self) -> u32 {
        self.queue_depth_of(&self.queue).await
    }

    /// How many messages wait in `queue`.
    pub async fn queue_depth_of(&self, queue: &str) -> u32 {
        let url = self.amqp_url.clone().unwrap_or_else(amqp_url);
        let connection = thumbq_broker::connect(&url, "thumbq-tests").await.expect("the broker");
        let channel = connection.create_channel().await.expect("a channel");
        let options = QueueDeclareOptions { passive: true, ..Default::default() };
        let declared = channel.queue_declare(queue.into(), options, FieldTable::default()).await.expect("the queue exists");
        declared.message_count()
    }

    /// Every file below the data directory, as paths relative to it, but the
    /// manifest and the SQLite database (which names no image in a path).
    pub fn stored_files(&self) -> Vec<PathBuf> {
        fn walk(root: &Path, dir: &Path, found: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).expect("a readable directory").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(root, &path, found);
                } else if path.file_name().is_some_and(|name| {
                    let name = name.to_string_lossy();
                    name != ".readyz" && name != "thumbq.json" && !name.ends_with(".lock") && !name.starts_with(thumbq_repo::Location::DEFAULT_FILE)
                }) {
                    found.push(path.strip_prefix(root).expect("below the root").to_owned());
                }
            }
        }
        let mut found = Vec::new();
        walk(self.data_dir.path(), self.data_dir.path(), &mut found);
        found
    }
}

impl Drop for TestApp {
    /// Stops the worker and deletes the test's queues, so the broker does not fill with them.
    fn drop(&mut self) {
        if let Some((stop, _)) = &self.worker {
            let _ = stop.send(true);
        }
        let topology = Topology::new(self.queue.clone()).with_retry_delays(self.retry_delays.clone());
        let url = self.amqp_url.clone().unwrap_or_else(amqp_url);
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let connection = thumbq_broker::connect(&url, "thumbq-tests-cleanup").await.ok()?;
                let channel = connection.create_channel().await.ok()?;
                for queue in topology.queues() {
                    let _ = channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
                }
                let exchange = topology.dead_letter_exchange();
                let _ = channel.exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default()).await;
                Some(())
            })
        })
        .join();
    }
}

/// Polls `check` until it returns `Some`, failing the test after `deadline`.
pub async fn wait_for<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < deadline, "gave up after {deadline:?} waiting for {what}");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// Reads an event stream until it carries `wanted`; returns all it carried.
/// Fails the test when the stream ends first or `deadline` passes.
pub async fn read_events_until(mut stream: Response, wanted: &str, deadline: Duration) -> String {
    tokio::time::timeout(deadline, async {
        let mut received = String::new();
        while let Some(chunk) = stream.chunk().await.expect("the stream stays open") {
            received.push_str(&String::from_utf8_lossy(&chunk));
            if received.contains(wanted) {
                return received;
            }
        }
        panic!("the stream ended before it carried {wanted}: {received}")
    })
    .await
    .unwrap_or_else(|_| panic!("the stream did not carry {wanted} within {deadline:?}"))
}
