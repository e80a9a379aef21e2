// The photos of a folder, picked ("Choose a folder") or dropped: people move
// albums, not single files. A folder also holds what is no photo (sidecars,
// notes, videos): those are left out and counted, never sent to be refused.

// What the server takes, by type or, where the browser knows none (HEIC and
// JPEG XL in most), by extension.
const PHOTO_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp", "image/heic", "image/heif", "image/avif", "image/jxl"];
const PHOTO_EXTENSIONS = ["jpg", "jpeg", "jpe", "jfif", "png", "gif", "webp", "heic", "heif", "hif", "avif", "jxl"];

// A folder of a whole phone's camera roll is added a part at a time.
export const MOST_FILES_AT_ONCE = 500;

export function isPhoto(file) {
  const extension = file.name.includes(".") ? file.name.split(".").pop().toLowerCase() : "";
  return PHOTO_TYPES.includes(file.type) || PHOTO_EXTENSIONS.includes(extension);
}

// `files` of a folder: its photos in order, and how many other files it held.
export function photosOf(files) {
  const photos = [...files].filter((file) => !file.name.startsWith(".") && isPhoto(file));
  // By name, as cameras number them (IMG_0009 before IMG_0010), whichever subfolder each is in.
  const byName = (a, b) => a.localeCompare(b, undefined, { numeric: true });
  photos.sort((a, b) => byName(a.name, b.name) || byName(a.webkitRelativePath, b.webkitRelativePath));
  return { photos, skipped: files.length - photos.length };
}

// What was dropped, as entries to walk, taken while the drop event runs;
// `null` when no folder is among them (the files are then taken as they are).
export function droppedFolders(dataTransfer) {
  const entries = [...(dataTransfer?.items ?? [])].filter((item) => item.kind === "file").map((item) => item.webkitGetAsEntry?.());
  return entries.some((entry) => entry?.isDirectory) ? entries : null;
}

// The photos of dropped `entries` (folders walked, files beside them kept).
export async function photosOfDrop(entries) {
  const found = [];
  for (const entry of entries) await walk(entry, found);
  return photosOf(found);
}

async function walk(entry, found) {
  if (!entry) return;
  if (entry.isFile) {
    const file = await fileOf(entry);
    // Its place in the folder, as a picked folder's files have it.
    Object.defineProperty(file, "webkitRelativePath", { value: entry.fullPath.replace(/^\//, "") });
    return found.push(file);
  }
  const reader = entry.createReader();
  for (;;) {
    const batch = await new Promise((done, failed) => reader.readEntries(done, failed));
    if (batch.length === 0) return;
    for (const child of batch) await walk(child, found);
  }
}

function fileOf(entry) {
  return new Promise((done, failed) => entry.file(done, failed));
}
