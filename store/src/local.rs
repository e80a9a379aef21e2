//! The local data directory: each file written to a temporary file beside
//! it, fsynced and renamed; directories fsynced so that renames survive too.

use std::io;
use std::path::Path;

use thumbq_contract::{ImageId, Listing, Storage, StorageKey, UploadId};

use crate::Durability;
use crate::durable::{remove_dir_if_present, sync_dir, write_atomically_without_dir_sync, write_whole};

pub fn put(storage: &Storage, key: &StorageKey, bytes: &[u8], durability: Durability) -> io::Result<()> {
    let path = storage.path(key);
    let directory = path.parent().unwrap_or(Path::new("."));
    if durability == Durability::BestEffort {
        return write_whole(&path, bytes);
    }
    // A directory made now (an owner's first list entry, an image's first
    // thumbnail) needs its own entry made durable too, once.
    let new_directory = !directory.is_dir();
    if new_directory {
        std::fs::create_dir_all(directory)?;
    }
    if bytes.is_empty() {
        // An empty file is whole from the start: no temporary file needed.
        std::fs::File::create(&path)?;
    } else {
        write_atomically_without_dir_sync(&path, bytes)?;
    }
    if durability == Durability::Now {
        sync_dir(directory)?;
        if new_directory && let Some(parent) = directory.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Makes the renames in an image's thumbnail directory durable, and the
/// directory's own entry (an earlier try may have made it and been cut off).
pub fn sync_thumbnails(storage: &Storage, id: ImageId) -> io::Result<()> {
    let directory = storage.thumbnail_dir(id);
    sync_dir(&directory)?;
    directory.parent().map_or(Ok(()), sync_dir)
}

pub fn get(storage: &Storage, key: &StorageKey) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(storage.path(key)) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if absent(&error) => Ok(None),
        Err(error) => Err(error),
    }
}

pub fn get_at_most(storage: &Storage, key: &StorageKey, limit: u64) -> io::Result<Option<Result<Vec<u8>, u64>>> {
    let Some(size) = size(storage, key)? else { return Ok(None) };
    if size > limit {
        return Ok(Some(Err(size)));
    }
    Ok(get(storage, key)?.map(Ok))
}

pub fn first_bytes(storage: &Storage, key: &StorageKey, count: u64) -> io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let file = match std::fs::File::open(storage.path(key)) {
        Ok(file) => file,
        Err(error) if absent(&error) => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut bytes = Vec::new();
    file.take(count).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

pub fn size(storage: &Storage, key: &StorageKey) -> io::Result<Option<u64>> {
    match std::fs::metadata(storage.path(key)) {
        Ok(metadata) => Ok(metadata.is_file().then_some(metadata.len())),
        Err(error) if absent(&error) => Ok(None),
        Err(error) => Err(error),
    }
}

/// A missing file, or one below something that is not a directory, is simply not there.
fn absent(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

pub fn remove(storage: &Storage, key: &StorageKey) -> io::Result<()> {
    let path = storage.path(key);
    match std::fs::remove_file(&path) {
        // Only a removal that happened needs making durable.
        Ok(()) => sync_dir(path.parent().unwrap_or(Path::new("."))),
        Err(error) if absent(&error) => Ok(()),
        Err(error) => Err(error),
    }
}

pub fn remove_thumbnails(storage: &Storage, id: ImageId) -> io::Result<()> {
    remove_dir_retrying(&storage.thumbnail_dir(id))
}

/// Removes an image's directory. A worker may be writing into it right now,
/// so a file may appear while it is being emptied: try again a few times.
fn remove_dir_retrying(directory: &Path) -> io::Result<()> {
    let mut tries = 0;
    loop {
        match remove_dir_if_present(directory) {
            Ok(()) => return Ok(()),
            Err(_) if tries < 3 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(error) => return Err(error),
        }
    }
}

pub fn list(storage: &Storage, listing: Listing) -> io::Result<Vec<ImageId>> {
    let entries = match std::fs::read_dir(storage.root().join(listing.prefix())) {
        Ok(entries) => entries,
        Err(error) if absent(&error) => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut ids = Vec::new();
    for entry in entries {
        if let Some(id) = entry?.file_name().to_str().and_then(|name| listing.image_of(name)) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Makes the file at `part` the stored file `key` (an original, a resumable upload's part), durably.
///
/// Renamed first, flushed after: nothing reads an original before its image
/// is recorded, and that waits for this to return, so a crash leaves at worst
/// an original no record names, which the reconciler removes. In this order
/// one journal commit carries the file's bytes and its new name, and the
/// directory's fsync finds them committed: one commit per upload, not two.
pub fn store_file(storage: &Storage, key: &StorageKey, part: &Path) -> io::Result<()> {
    let stored = storage.path(key);
    let folder = stored.parent().unwrap_or(Path::new("."));
    if let Err(error) = std::fs::rename(part, &stored) {
        if !absent(&error) || !part.exists() {
            return Err(error);
        }
        // A folder of its own (a resumable upload's): made, and made durable, at its first file.
        std::fs::create_dir_all(folder)?;
        sync_dir(folder.parent().unwrap_or(Path::new(".")))?;
        std::fs::rename(part, &stored)?;
    }
    std::fs::File::open(&stored)?.sync_all()?;
    sync_dir(folder)
}

/// Removes the parts of a resumable upload, and their folder.
pub fn remove_upload(storage: &Storage, upload: UploadId) -> io::Result<()> {
    remove_dir_retrying(&storage.upload_dir(upload))
}
