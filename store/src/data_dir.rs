//! Setting up a local data directory: its folders and its manifest. The
//! paths are [`Storage`]'s (the contract's); making them is the store's.

use std::io::{self, Write};

use thumbq_contract::{Manifest, Storage};

use crate::durable::sync_dir;

/// The manifest, or `None` when this is not (yet) a thumbq data directory.
fn read_manifest(storage: &Storage) -> io::Result<Option<Manifest>> {
    match std::fs::read(storage.manifest_path()) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Writes the manifest whole, unless one is there already; returns the one in force.
pub fn init_manifest(storage: &Storage, manifest: &Manifest) -> io::Result<Manifest> {
    if let Some(existing) = read_manifest(storage)? {
        return Ok(existing);
    }
    let root = storage.root();
    std::fs::create_dir_all(root)?;
    let mut temporary = tempfile::Builder::new().prefix(".tmp-").tempfile_in(root)?;
    temporary.write_all(&serde_json::to_vec_pretty(manifest).map_err(io::Error::other)?)?;
    temporary.as_file().sync_all()?;
    // Never over another: of two first starts at once, one wins, and the
    // other reads what it wrote instead of overwriting it.
    match temporary.persist_noclobber(storage.manifest_path()) {
        Ok(_) => {
            sync_dir(root)?;
            Ok(manifest.clone())
        }
        Err(error) if error.error.kind() == io::ErrorKind::AlreadyExists => {
            read_manifest(storage)?.ok_or_else(|| io::Error::other("thumbq.json vanished as it was written"))
        }
        Err(error) => Err(error.error),
    }
}

/// Creates the directory of uploads being received: all a web server needs
/// locally when it stores in a bucket (the spools make their own).
pub fn create_incoming_dir(storage: &Storage) -> io::Result<()> {
    std::fs::create_dir_all(storage.root().join("incoming"))
}

/// Creates the directories every process expects to exist when it stores here.
pub fn create_dirs(storage: &Storage) -> io::Result<()> {
    for dir in ["incoming", "originals", "thumbs", "uploads"] {
        std::fs::create_dir_all(storage.root().join(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_manifest_written_stays_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::new(dir.path());
        assert!(read_manifest(&storage).unwrap().is_none());
        let first = Manifest::new(&thumbq_contract::Sizes::default(), &thumbq_contract::MediaLimits::default());
        assert_eq!(init_manifest(&storage, &first).unwrap(), first);
        let mut second = first.clone();
        second.layout += 1;
        assert_eq!(init_manifest(&storage, &second).unwrap(), first, "a second start reads the manifest in force");
        assert_eq!(read_manifest(&storage).unwrap(), Some(first));
    }
}
