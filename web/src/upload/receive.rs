//! Receiving one file of an upload into `incoming/`: streamed, never held
//! whole, its format known from its first bytes, its hash taken as it goes,
//! its header checked against the pixel limits; removed if anything fails.

use std::path::{Path, PathBuf};

use thumbq_contract::{ImageId, MediaLimits, SourceFormat, Storage, StorageKey};

use super::Refusal;
use crate::error::AppError;
use crate::form::BoundedField;
use crate::rate_limit::Charge;

/// Receives one file; a refusal for what the file is comes back as `Ok(Err)`,
/// after the rest of it was read and dropped, so that the next file can be read.
pub(super) async fn receive_file(
    storage: &Storage,
    mut field: BoundedField<'_>,
    number: usize,
    limits: &MediaLimits,
    earlier: &[PathBuf],
    charge: &mut Charge<'_>,
) -> Result<Result<ReceivedFile, Refusal>, AppError> {
    let name = display_name(field.file_name(), number);
    match stream_file(storage, &mut field, name.clone(), limits, earlier, charge).await {
        Ok(file) => Ok(Ok(file)),
        Err(error) if error.is_about_one_file() => {
            // Read past, to reach the next file: as far as one file may be long.
            // A refused file longer than that ends the request, as it always did.
            let (mut drained, mut touched) = (0u64, std::time::Instant::now());
            while let Some(chunk) = field.chunk().await? {
                charge.bytes(chunk.len() as u64)?;
                drained += chunk.len() as u64;
                if drained > limits.max_file_bytes {
                    return Err(error);
                }
                if touched.elapsed() > crate::cleanup::TOUCH_EVERY {
                    touched = std::time::Instant::now();
                    touch(earlier).await;
                }
            }
            Ok(Err(Refusal { file: name, error }))
        }
        Err(error) => Err(error),
    }
}

/// Streams one form field to `incoming/`, checking its size and format as it goes.
///
/// The parts of the request's `earlier` files are touched now and then, so
/// that the sweeper of leftovers (see `cleanup`) sees them as alive.
async fn stream_file(
    storage: &Storage,
    field: &mut BoundedField<'_>,
    file: String,
    limits: &MediaLimits,
    earlier: &[PathBuf],
    charge: &mut Charge<'_>,
) -> Result<ReceivedFile, AppError> {
    let id = ImageId::new();
    let part = IncomingFile::new(storage.path(&StorageKey::Incoming(id)));
    let mut out = IncomingWriter::new(part.path());
    let (format, size, hash) = match read_into(&mut out, field, &file, limits, earlier, charge).await {
        Ok(read) => read,
        Err(error) => {
            // Answered once the write under way is over and the file gone, so
            // that nothing of a refused file outlives its answer.
            out.abandon().await;
            return Err(error);
        }
    };
    // Not synced here: storing it as the original does (locally), or sends it away (a bucket).
    let dimensions = out.finish(move |path| header_dimensions(path, format)).await?;
    let (width, height) = within_limits(dimensions, format, file.clone(), limits)?;
    Ok(ReceivedFile { id, format, size, part, name: file, content_hash: hash.finish(), width, height })
}

/// Reads the field into `out` as far as its limits allow: its format (from
/// its first bytes), its size and its hash.
async fn read_into(
    out: &mut IncomingWriter,
    field: &mut BoundedField<'_>,
    file: &str,
    limits: &MediaLimits,
    earlier: &[PathBuf],
    charge: &mut Charge<'_>,
) -> Result<(SourceFormat, u64, crate::content_hash::ContentHasher), AppError> {
    let not_an_image = || AppError::NotAnImage { file: file.to_owned() };
    let mut hash = crate::content_hash::ContentHasher::new();
    let mut head = Vec::with_capacity(SourceFormat::SNIFF_LEN);
    let mut format = None;
    let mut size: u64 = 0;
    let mut touched = std::time::Instant::now();
    while let Some(chunk) = field.chunk().await? {
        if touched.elapsed() > crate::cleanup::TOUCH_EVERY {
            touched = std::time::Instant::now();
            touch(earlier).await;
        }
        charge.bytes(chunk.len() as u64)?;
        size += chunk.len() as u64;
        if size > limits.max_file_bytes {
            return Err(AppError::TooLarge { file: file.to_owned(), limit_bytes: limits.max_file_bytes });
        }
        if format.is_none() {
            let wanted = SourceFormat::SNIFF_LEN - head.len();
            head.extend_from_slice(&chunk[..wanted.min(chunk.len())]);
            if head.len() == SourceFormat::SNIFF_LEN {
                // Refuse as soon as the first bytes tell, rather than after the whole file.
                format = Some(SourceFormat::sniff(&head).ok_or_else(not_an_image)?);
            }
        }
        hash.update(&chunk);
        out.write(&chunk).await?;
    }
    if size == 0 {
        return Err(AppError::EmptyFile { file: file.to_owned() });
    }
    let format = match format {
        Some(format) => format,
        None => SourceFormat::sniff(&head).ok_or_else(not_an_image)?,
    };
    Ok((format, size, hash))
}

/// A request's bytes on their way to a file in `incoming/`, in few trips to
/// a blocking thread: the file is created while the first bytes gather, then
/// they are written [`WRITE_BUFFER_BYTES`] at a time while the next piece
/// gathers, and the last write also reads what the caller asks of it (the
/// image's header). A photo that fits the buffer costs two trips in all.
///
/// Dropped with a write under way (an error, or the client hanging up), that
/// write removes the file it made once it is done: declared after the file's
/// [`IncomingFile`], the writer is dropped first, and the guard's removal may
/// come before the write has created the file.
struct IncomingWriter {
    path: PathBuf,
    buffer: Vec<u8>,
    /// The file, once created, unless a write holds it.
    file: Option<std::fs::File>,
    /// The write under way, which gives the file back.
    writing: Option<tokio::task::JoinHandle<std::io::Result<std::fs::File>>>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for IncomingWriter {
    fn drop(&mut self) {
        self.dropped.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl IncomingWriter {
    fn new(path: &Path) -> Self {
        let (path, dropped) = (path.to_owned(), std::sync::Arc::<std::sync::atomic::AtomicBool>::default());
        let creating = tokio::task::spawn_blocking({
            let (path, dropped) = (path.clone(), std::sync::Arc::clone(&dropped));
            move || Self::write_out(&path, None, &[], &dropped)
        });
        Self { path, buffer: Vec::with_capacity(WRITE_BUFFER_BYTES), file: None, writing: Some(creating), dropped }
    }

    /// Writes `bytes` at the end of the file (made now if need be) on this
    /// blocking thread, and removes it if the writer was dropped meanwhile.
    fn write_out(path: &Path, file: Option<std::fs::File>, bytes: &[u8], dropped: &std::sync::atomic::AtomicBool) -> std::io::Result<std::fs::File> {
        use std::io::Write;
        let mut file = match file {
            Some(file) => file,
            None => std::fs::File::create(path)?,
        };
        let written = file.write_all(bytes);
        if dropped.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = std::fs::remove_file(path);
        }
        written.map(|()| file)
    }

    async fn write(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            let room = WRITE_BUFFER_BYTES - self.buffer.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.buffer.extend_from_slice(now);
            bytes = later;
            if self.buffer.len() == WRITE_BUFFER_BYTES {
                self.written().await?;
                let (path, file, dropped) = (self.path.clone(), self.file.take(), std::sync::Arc::clone(&self.dropped));
                let full = std::mem::replace(&mut self.buffer, Vec::with_capacity(WRITE_BUFFER_BYTES));
                self.writing = Some(tokio::task::spawn_blocking(move || Self::write_out(&path, file, &full, &dropped)));
            }
        }
        Ok(())
    }

    /// Waits for the write under way, if any.
    async fn written(&mut self) -> std::io::Result<()> {
        if let Some(writing) = self.writing.take() {
            self.file = Some(writing.await.map_err(std::io::Error::other)??);
        }
        Ok(())
    }

    /// Waits for the write under way, whatever its outcome, before the writer
    /// goes: the file it may still be creating then exists for its guard to remove.
    async fn abandon(mut self) {
        let _ = self.written().await;
    }

    /// Writes what is left, closes the file, and runs `then` on its path, in one trip.
    async fn finish<T: Send + 'static>(mut self, then: impl FnOnce(&Path) -> T + Send + 'static) -> std::io::Result<T> {
        self.written().await?;
        let (path, file, buffer, dropped) = (self.path.clone(), self.file.take(), std::mem::take(&mut self.buffer), std::sync::Arc::clone(&self.dropped));
        tokio::task::spawn_blocking(move || {
            drop(Self::write_out(&path, file, &buffer, &dropped)?);
            Ok(then(&path))
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// What a request's body gathers before each write to its file: one trip to a
/// blocking thread per this many bytes, not one per chunk of the body (a few
/// kilobytes each, as its TCP segments came).
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// Creates a file in `incoming/` for a request's bytes, written in large pieces.
pub(crate) async fn incoming_file(path: &std::path::Path) -> std::io::Result<tokio::io::BufWriter<tokio::fs::File>> {
    Ok(tokio::io::BufWriter::with_capacity(WRITE_BUFFER_BYTES, tokio::fs::File::create(path).await?))
}

/// A file whole in `incoming/` (at `part`), of `format` by its first bytes:
/// received once its header is within the pixel limits.
pub(crate) async fn recognised(
    id: ImageId,
    part: IncomingFile,
    name: String,
    size: u64,
    format: SourceFormat,
    hash: crate::content_hash::ContentHasher,
    limits: &MediaLimits,
) -> Result<ReceivedFile, AppError> {
    let (width, height) = check_dimensions(part.path(), format, name.clone(), limits).await?;
    let content_hash = hash.finish();
    Ok(ReceivedFile { id, format, size, part, name, content_hash, width, height })
}

/// Marks `parts` as still being written.
pub(crate) async fn touch(parts: &[PathBuf]) {
    let parts = parts.to_vec();
    let _ = tokio::task::spawn_blocking(move || {
        for part in parts {
            let _ = std::fs::File::options().write(true).open(&part).and_then(|file| file.set_modified(std::time::SystemTime::now()));
        }
    })
    .await;
}

/// Refuses an image whose header says it is over the pixel limits, before any
/// worker tries to decode it. Only the header is read; nothing is decoded.
/// Returns the width and height the header gives.
async fn check_dimensions(path: &Path, format: SourceFormat, file: String, limits: &MediaLimits) -> Result<(u32, u32), AppError> {
    let path = path.to_owned();
    let dimensions = tokio::task::spawn_blocking(move || header_dimensions(&path, format)).await.map_err(anyhow::Error::from)?;
    within_limits(dimensions, format, file, limits)
}

/// The width and height the header of the file at `path` gives, if it can be read.
fn header_dimensions(path: &Path, format: SourceFormat) -> Option<(u32, u32)> {
    let side = |pixels: usize| u32::try_from(pixels).unwrap_or(u32::MAX);
    match format {
        // imagesize refuses a JPEG with stray bytes between its segments, which libjpeg and every browser show.
        SourceFormat::Jpeg => std::fs::File::open(path).and_then(|file| crate::jpeg_header::dimensions(std::io::BufReader::new(file))).ok().flatten(),
        _ => imagesize::size(path).ok().map(|size| (side(size.width), side(size.height))),
    }
}

/// `dimensions` read from a header, if within the pixel limits.
fn within_limits(dimensions: Option<(u32, u32)>, format: SourceFormat, file: String, limits: &MediaLimits) -> Result<(u32, u32), AppError> {
    let Some((width, height)) = dimensions else {
        return Err(AppError::DamagedHeader { file, format: format.name() });
    };
    limits.check_dimensions(width, height).map_err(|reason| AppError::OverPixelLimits { file, reason })?;
    Ok((width, height))
}

/// A file fully received into `incoming/` and recognised.
pub(crate) struct ReceivedFile {
    pub(super) id: ImageId,
    pub(super) format: SourceFormat,
    pub(super) size: u64,
    pub(super) part: IncomingFile,
    /// The name it was sent under, for people: never part of a path.
    pub(super) name: String,
    /// The hash of its bytes (see [`crate::content_hash`]).
    pub(crate) content_hash: String,
    pub(super) width: u32,
    pub(super) height: u32,
}

/// A file in `incoming/`, removed when this is dropped unless kept: so that
/// an error, or a client hanging up mid-request (which drops the handler's
/// future), leaves nothing behind.
pub(crate) struct IncomingFile(Option<PathBuf>);

impl IncomingFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self(Some(path))
    }

    pub(crate) fn path(&self) -> &Path {
        self.0.as_deref().expect("kept only by `keep`, which takes it")
    }

    /// The file stays: it was moved, or is the store's now.
    pub(crate) fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for IncomingFile {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The client's file name, for messages only: never part of a path.
pub(crate) fn display_name(client_name: Option<&str>, number: usize) -> String {
    let base = client_name.map(|name| name.rsplit(['/', '\\']).next().unwrap_or(name).trim()).unwrap_or("");
    if base.is_empty() {
        return format!("File {number}");
    }
    // Nor the marks that reorder text: a name must read as what it is ("gpj.exe" shown as "exe.jpg").
    let reorders = |c: &char| matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    let mut name: String = base.chars().filter(|c| !c.is_control() && !reorders(c)).take(80).collect();
    if base.chars().count() > 80 {
        name.push('…');
    }
    name
}
