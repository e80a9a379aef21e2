//! The offload table's comparison server (`scripts/bench --only offload`):
//! the same upload as `thumbq-web` takes (`POST /images`, field `file`),
//! handled without a queue.
//!
//! - `--mode inline` makes the three thumbnails inside the request, with the
//!   worker's own code (`thumbq_worker::job::process`), and answers 202 only
//!   once they are written: what a server without a queue does.
//! - `--mode store-only` stores the upload the same way and answers with no job
//!   at all: the floor of the request path.
//!
//! Both store the upload as `thumbq-web` does: streamed to a temporary file,
//! fsynced, renamed to the original, the rename made durable. Nothing else of
//! `thumbq-web` (owners, timelines, rate limits, a confirm) is here, which is
//! the point of a floor. This is a bench tool: never deploy it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Parser;
use thumbq_contract::{ImageId, Manifest, MediaLimits, ResizeJob, Sizes, SourceFormat, Storage, StorageKey};
use thumbq_worker::job::{JobContext, Outcome};
use tokio::io::AsyncWriteExt;

#[derive(Debug, Parser)]
#[command(name = "thumbq-bench-inline", about = "The offload bench's comparison server: thumbnails made inside the request, or none.")]
struct Options {
    /// `inline`: thumbnails inside the request; `store-only`: none.
    #[arg(long, value_enum)]
    mode: Mode,

    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    bind: SocketAddr,

    /// The data directory; set up like thumbq's when new.
    #[arg(long)]
    data_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Inline,
    StoreOnly,
}

#[derive(Clone)]
struct Server {
    mode: Mode,
    storage: Storage,
    /// What the worker's step needs; its concurrency is never consulted by
    /// `job::process`, so nothing here bounds the pipelines in flight.
    context: JobContext,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let storage = Storage::new(&options.data_dir);
    thumbq_store::data_dir::create_dirs(&storage).with_context(|| format!("cannot set up {}", options.data_dir.display()))?;
    thumbq_store::data_dir::init_manifest(&storage, &Manifest::new(&Sizes::default(), &MediaLimits::default()))?;
    let repo = thumbq_repo::Repository::open_now(&thumbq_repo::Location::Sqlite(options.data_dir.join("thumbq.db"))).await?;
    let context = JobContext::new(storage.clone(), repo, Sizes::default(), MediaLimits::default(), 1);
    let server = Server { mode: options.mode, storage, context };
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/images", post(upload))
        // thumbq-web's default limit on one file, and a little for the form around it.
        .layer(DefaultBodyLimit::max(MediaLimits::DEFAULT_MAX_FILE_BYTES as usize + 64 * 1024))
        .with_state(server);
    let listener = tokio::net::TcpListener::bind(options.bind).await.with_context(|| format!("cannot listen on {}", options.bind))?;
    axum::serve(listener, app).with_graceful_shutdown(terminated()).await?;
    Ok(())
}

/// SIGTERM or Ctrl-C.
async fn terminated() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Stores the first file of the form, then (inline) makes its thumbnails, then answers 202.
///
/// Inline mode runs each request's pipeline on tokio's blocking pool with no
/// bound of its own: a naive server without a queue does just that, and under
/// load its pipelines share the cores with everything else the server does.
async fn upload(State(server): State<Server>, mut form: Multipart) -> Result<Response, Refusal> {
    while let Some(field) = form.next_field().await.map_err(Refusal::bad_form)? {
        if field.name() != Some("file") {
            continue;
        }
        let (id, format) = store(&server.storage, field).await?;
        if server.mode == Mode::Inline {
            // The record the worker's step reads, as thumbq-web writes it.
            let image = thumbq_repo::NewImage {
                id,
                owner: thumbq_contract::OwnerId::of_secret(b"inline"),
                name: "upload".into(),
                format,
                bytes: 0,
                content_hash: String::new(),
                width: 0,
                height: 0,
                created_ms: id.uploaded_at_ms(),
                delete_token_hash: None,
                client: None,
            };
            server.context.repo.add_image(&image, &[], None, &thumbq_repo::Lease::none()).await.map_err(Refusal::internal)?;
            let (context, job) = (server.context.clone(), ResizeJob::new(id, format, thumbq_contract::timeline::now_ms()));
            let outcome = tokio::task::spawn_blocking(move || thumbq_worker::job::process(&context, &job, &thumbq_worker::job::JobOptions::silent()))
                .await
                .map_err(Refusal::internal)?;
            match outcome {
                Ok(Outcome::Made { .. } | Outcome::AlreadyDone) => {}
                Ok(Outcome::Deleted) => return Err(Refusal::internal("the image was deleted")),
                Err(error) => return Err(Refusal::internal(error)),
            }
        }
        let body = serde_json::json!({ "images": [{ "id": id.to_string() }] });
        return Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response());
    }
    Err(Refusal(StatusCode::BAD_REQUEST, "the form has no `file` field".into()))
}

/// Streams a file to `incoming/`, fsyncs it, renames it to the original and
/// makes the rename durable, as `thumbq-web` does; returns its id and format.
async fn store(storage: &Storage, mut field: axum::extract::multipart::Field<'_>) -> Result<(ImageId, SourceFormat), Refusal> {
    let id = ImageId::new();
    let incoming = RemoveOnDrop(Some(storage.path(&StorageKey::Incoming(id))));
    let path = incoming.0.as_deref().expect("a path");
    let mut out = tokio::fs::File::create(path).await.map_err(Refusal::internal)?;
    let mut head = Vec::with_capacity(SourceFormat::SNIFF_LEN);
    while let Some(chunk) = field.chunk().await.map_err(Refusal::bad_form)? {
        let wanted = SourceFormat::SNIFF_LEN - head.len();
        head.extend_from_slice(&chunk[..wanted.min(chunk.len())]);
        out.write_all(&chunk).await.map_err(Refusal::internal)?;
    }
    let format = SourceFormat::sniff(&head).ok_or_else(|| Refusal(StatusCode::UNSUPPORTED_MEDIA_TYPE, "not an image".into()))?;
    out.sync_all().await.map_err(Refusal::internal)?;
    drop(out);
    let original = storage.path(&StorageKey::Original(id));
    tokio::fs::rename(path, &original).await.map_err(Refusal::internal)?;
    incoming.disarm();
    let originals = original.parent().unwrap_or(Path::new(".")).to_owned();
    tokio::task::spawn_blocking(move || thumbq_store::durable::sync_dir(&originals)).await.map_err(Refusal::internal)?.map_err(Refusal::internal)?;
    Ok((id, format))
}

/// A file removed when dropped unless disarmed: a failed upload leaves nothing.
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// An answer other than 202, with a short reason (a bench tool may show its causes).
struct Refusal(StatusCode, String);

impl Refusal {
    fn bad_form(error: impl std::fmt::Display) -> Self {
        Self(StatusCode::BAD_REQUEST, format!("the form cannot be read: {error}"))
    }

    fn internal(error: impl std::fmt::Display) -> Self {
        eprintln!("thumbq-bench-inline: {error}");
        Self(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}
