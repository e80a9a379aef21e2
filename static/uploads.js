// The uploads of the home page: files picked, dropped or pasted join a
// queue, go three at a time (one until this browser has its key), and the
// batch reads as one in the summary above the cards. A reload shows the batch
// as it stood. Each file's way to the server is `transfer.js`'s.

import { newCard, setCardError, setStatus, showAccepted } from "./cards.js";
import { MOST_FILES_AT_ONCE, droppedFolders, photosOf, photosOfDrop } from "./folders.js";
import { send } from "./transfer.js";

const PARALLEL_UPLOADS = 3;
const ACCEPTED_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp", "image/heic", "image/heif", "image/avif", "image/jxl"];

// `keyed`: whether this browser holds its owner key (an HttpOnly cookie,
// which the page says it has). Until it does, one upload at a time: the
// first upload made brings the key, and every later one must carry the same.
// A card's "Try again": on a file not sent, or cut off.
const RETRY_BUTTONS = ".card .card-status button.retry";
const uploads = { waiting: [], running: 0, keyed: false, seen: new Set(), started: Date.now(), batch: 0 };

export function setUpUploads(form) {
  const input = form.querySelector("input[type=file]");
  const cards = document.querySelector("#uploads");
  const maxBytes = Number(input.dataset.maxBytes);
  uploads.keyed = form.dataset.keyed === "true";
  input.required = false;

  // Says why a file picked again got no card of its own.
  const notice = document.createElement("p");
  notice.className = "notice";
  notice.id = "picked-again";
  notice.setAttribute("role", "status");
  notice.hidden = true;
  cards.before(notice);

  // `skipped`: files of a folder that are no photos, left out.
  const add = (files, skipped = 0) => {
    // The same file picked twice is uploaded once, until its card is removed or its image deleted.
    const identity = (file) => `${file.name}\u0000${file.size}\u0000${file.lastModified}`;
    const [again, fresh, picked] = [[], [], new Set()];
    for (const file of files) {
      (uploads.seen.has(identity(file)) || picked.has(identity(file)) ? again : fresh).push(file);
      picked.add(identity(file));
    }
    const later = fresh.splice(MOST_FILES_AT_ONCE);
    const said = [];
    if (again.length === 1) said.push(`“${again[0].name}” is already on this page: it is uploaded once.`);
    if (again.length > 1) said.push(`${again.length} of these files are already on this page: each is uploaded once.`);
    if (skipped > 0) said.push(`${skipped} file${skipped === 1 ? " that is" : "s that are"} not a photo ${skipped === 1 ? "was" : "were"} left out.`);
    if (later.length > 0) said.push(`${MOST_FILES_AT_ONCE} photos are added at a time: pick the folder again once these are up, and the ${later.length} others follow.`);
    notice.hidden = said.length === 0;
    notice.textContent = said.join(" ");
    if (again.length > 0) [...cards.querySelectorAll(".card")].find((card) => card.dataset.identity === identity(again[0]))?.scrollIntoView({ block: "nearest" });
    if (fresh.length === 0) return;
    // Files added while nothing uploads start a new batch; added meanwhile, they join it.
    if (!uploadsActive()) uploads.batch += 1;
    for (const file of fresh) {
      uploads.seen.add(identity(file));
      // The card of this file's upload stopped by a reload gives way to the upload going on.
      [...cards.querySelectorAll(".card[data-state=stopped]")].find((stopped) => stopped.querySelector(".name")?.textContent === file.name)?.remove();
      // In the order chosen.
      const card = newCard(file);
      card.querySelector("button.remove").addEventListener("click", () => removeCard(card));
      card.dataset.identity = identity(file);
      card.dataset.batch = String(uploads.batch);
      cards.append(card);
      const problem = clientSideProblem(file, maxBytes);
      if (problem) {
        card.dataset.bytes = "0";
        setCardError(card, problem, null);
      } else queueUpload(card, file);
    }
    cards.querySelector(".card[data-state=uploading], .card[data-state=waiting]")?.scrollIntoView({ block: "nearest" });
    updateSummary();
  };
  // With this script a photo uploads as soon as it is chosen: no Upload button,
  // and a large control to choose with (the input itself stays, for the keyboard).
  form.classList.add("scripted");
  form.querySelector("button[type=submit]").hidden = true;
  if (matchMedia("(pointer: fine)").matches) form.querySelector(".drop-title").textContent = "Choose photos, or drop them anywhere on this page";
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    add([...input.files]);
    form.reset();
  });
  input.addEventListener("change", () => {
    add([...input.files]);
    form.reset();
  });
  // A whole folder, where the browser can pick one.
  if ("webkitdirectory" in input) {
    const folder = document.createElement("input");
    folder.type = "file";
    folder.webkitdirectory = true;
    folder.multiple = true;
    folder.hidden = true;
    folder.id = "folder";
    const choose = document.createElement("button");
    choose.type = "button";
    choose.className = "secondary choose-folder";
    choose.textContent = "Choose a folder";
    choose.addEventListener("click", () => folder.click());
    folder.addEventListener("change", () => {
      const { photos, skipped } = photosOf([...folder.files]);
      add(photos, skipped);
      folder.value = "";
    });
    form.append(choose, folder);
  }
  // Drop anywhere on the page.
  let depth = 0;
  document.addEventListener("dragenter", (event) => {
    if (!event.dataTransfer?.types.includes("Files")) return;
    depth += 1;
    document.body.classList.add("dragging");
  });
  document.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) document.body.classList.remove("dragging");
  });
  document.addEventListener("dragover", (event) => event.preventDefault());
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    depth = 0;
    document.body.classList.remove("dragging");
    const folders = droppedFolders(event.dataTransfer);
    if (folders) photosOfDrop(folders).then(({ photos, skipped }) => add(photos, skipped));
    else add([...(event.dataTransfer?.files ?? [])]);
  });
  // Images pasted from the clipboard (Ctrl/Cmd+V), except into a text field.
  document.addEventListener("paste", (event) => {
    if (event.target instanceof HTMLInputElement && event.target.type === "text") return;
    const files = [...(event.clipboardData?.files ?? [])];
    if (files.length === 0) return;
    event.preventDefault();
    add(files);
  });
  // Leaving the page would end the uploads still running: ask first.
  window.addEventListener("beforeunload", (event) => {
    if (!uploadsActive()) return;
    event.preventDefault();
    event.returnValue = "";
  });
  // For the batch as a whole: cancel what is still to go, try again what was cut off.
  const summary = document.querySelector("#summary");
  const batchActions = document.createElement("div");
  batchActions.className = "batch-actions";
  const cancelAll = document.createElement("button");
  cancelAll.type = "button";
  cancelAll.className = "secondary cancel-all";
  cancelAll.textContent = "Cancel all";
  cancelAll.hidden = true;
  cancelAll.addEventListener("click", () => {
    [...cards.querySelectorAll(".card[data-state=waiting], .card[data-state=uploading]")].forEach(removeCard);
    input.focus();
  });
  const retryAll = document.createElement("button");
  retryAll.type = "button";
  retryAll.className = "secondary retry-all";
  retryAll.textContent = "Try all again";
  retryAll.hidden = true;
  retryAll.addEventListener("click", () => cards.querySelectorAll(RETRY_BUTTONS).forEach((button) => button.click()));
  batchActions.append(cancelAll, retryAll);
  // Beside the summary, not in it: its words are read out as they change, buttons need not be.
  summary?.after(batchActions);
  restoreCards(cards, maxBytes);
  new MutationObserver(() => {
    // A deleted image's file may be picked again, and uploaded anew.
    cards.querySelectorAll(".card[data-state=deleted]").forEach((card) => uploads.seen.delete(card.dataset.identity));
    updateSummary();
    saveCards(cards);
  }).observe(cards, { subtree: true, attributes: true, attributeFilter: ["data-state"], childList: true });
}

// Back, or a reload, shows the batch as it stands: cards still being made
// come back and go on; files that were still to be sent when the page was
// left say so. (A page cannot send a file again without being given it.)
const SAVED_CARDS = "thumbq.cards";

function saveCards(cards) {
  const unfinished = [...cards.querySelectorAll(".card")]
    .filter((card) => ["waiting", "uploading", "processing"].includes(card.dataset.state))
    .map((card) => ({ name: card.querySelector(".name")?.textContent ?? "", image: card.dataset.image, page: card.dataset.page, small: card.dataset.small }));
  try {
    sessionStorage.setItem(SAVED_CARDS, JSON.stringify(unfinished));
  } catch {
    // Storage full or off: the batch is just not restored.
  }
}

function restoreCards(cards) {
  let saved = [];
  try {
    saved = JSON.parse(sessionStorage.getItem(SAVED_CARDS) ?? "[]");
  } catch {
    return;
  }
  for (const entry of saved) {
    // Already on the page, under "Your uploads": followed there.
    if (entry.image && document.querySelector(`.yours [data-image="${CSS.escape(entry.image)}"]`)) continue;
    const card = newCard(new File([], entry.name));
    card.querySelector("button.remove").addEventListener("click", () => removeCard(card));
    card.querySelector(".frame").replaceChildren();
    card.dataset.batch = String(uploads.batch);
    cards.append(card);
    if (entry.image) {
      card.dataset.sent = card.dataset.bytes = "0";
      showAccepted(card, { id: entry.image, page: entry.page, thumbnails: { small: entry.small } }, uploadsActive);
    } else {
      setCardError(card, `The upload of “${entry.name}” stopped when the page was left: pick it again, and it goes on where it stopped.`, null);
      // Not failed: waiting for the person. Picking the file again takes its place.
      card.dataset.state = "stopped";
    }
  }
  updateSummary();
}

function uploadsActive() {
  return uploads.running > 0 || uploads.waiting.length > 0;
}

// "4 of 10 uploaded · 3 thumbnails ready · 1 refused", with a bar over the batch's bytes.
function updateSummary() {
  const summary = document.querySelector("#summary");
  if (!summary) return;
  // The batch in hand: the cards added since uploads last stood still.
  const cards = [...document.querySelectorAll(`#uploads .card[data-batch="${uploads.batch}"]`)].filter((card) => card.dataset.state !== "removed");
  if (cards.length === 0) {
    summary.hidden = true;
    document.querySelectorAll(".batch-actions button").forEach((button) => (button.hidden = true));
    return;
  }
  summary.hidden = false;
  const count = (...states) => cards.filter((card) => states.includes(card.dataset.state)).length;
  // A card that has an image was uploaded, whatever became of its thumbnails since.
  const uploaded = cards.filter((card) => card.dataset.image).length;
  const ready = count("done");
  const failed = cards.filter((card) => card.dataset.state === "failed");
  // Refused for what the file is: trying again would not help. Cut off on the way: "Try again" may.
  // Uploaded, then its thumbnails could not be made: failed.
  const refused = failed.filter((card) => !card.dataset.image && !card.querySelector("button.retry")).length;
  const notSent = failed.filter((card) => !card.dataset.image && card.querySelector("button.retry")).length;
  const notMade = failed.filter((card) => card.dataset.image).length;
  const parts = [`${uploaded} of ${cards.length} uploaded`];
  if (uploaded > 0) parts.push(`${ready} ready`);
  if (notMade > 0) parts.push(`${notMade} failed`);
  if (refused > 0) parts.push(`${refused} refused`);
  if (notSent > 0) parts.push(`${notSent} not sent`);
  const stopped = count("stopped");
  if (stopped > 0) parts.push(`${stopped} to pick again`);
  const deleted = count("deleted");
  if (deleted > 0) parts.push(`${deleted} deleted`);
  const total = cards.reduce((sum, card) => sum + Number(card.dataset.bytes ?? 0), 0);
  const sent = cards.reduce((sum, card) => sum + Number(card.dataset.sent ?? 0), 0);
  const finished = count("done", "failed", "deleted") === cards.length;
  if (finished) {
    // "All done" only when it is: a batch that kept nothing, or lost some, is just finished.
    parts.unshift(uploaded === 0 ? "Nothing uploaded" : failed.length > 0 ? "Finished" : "All done");
  } else if (uploadsActive() && sent > 0) {
    const elapsed = (Date.now() - uploads.started) / 1000;
    const moved = cards.reduce((sum, card) => sum + Number(card.dataset.moved ?? 0), 0);
    // Said once the rate can be told: a resume's first progress is the server's bytes, not a speed.
    const left = moved > 256 * 1024 ? Math.max(0, Math.round(((total - sent) / moved) * elapsed)) : 0;
    parts.push(`${humanBytes(sent)} of ${humanBytes(total)}${left > 0 ? `, about ${left} s left` : ""}`);
  }
  const actions = document.querySelector(".batch-actions");
  if (actions) {
    actions.querySelector(".cancel-all").hidden = count("waiting", "uploading") < 2;
    actions.querySelector(".retry-all").hidden = cards.filter((card) => card.querySelector(RETRY_BUTTONS)).length < 2;
  }
  summary.dataset.state = finished ? "done" : "working";
  summary.querySelector(".summary-text").textContent = parts.join(" · ");
  const bar = summary.querySelector("progress");
  bar.max = Math.max(total, 1);
  bar.value = finished ? bar.max : sent;
}

function humanBytes(bytes) {
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / 1048576).toFixed(1)} MB`;
}

// What the browser can tell at once. A type it reports is only a guess from
// the name, so only a known non-image type is refused here; a file of no known
// type goes to the server, which judges the bytes.
function clientSideProblem(file, maxBytes) {
  if (file.type && !ACCEPTED_TYPES.includes(file.type)) return `“${file.name}” is not a JPEG, PNG, GIF, WebP, HEIC, AVIF or JPEG XL image.`;
  if (file.size === 0) return `“${file.name}” is empty.`;
  if (file.size > maxBytes) return `“${file.name}” is larger than the limit of ${Math.round(maxBytes / 1048576)} MB.`;
  return null;
}

function queueUpload(card, file) {
  if (uploads.waiting.some((entry) => entry.card === card)) return;
  if (!uploadsActive()) uploads.started = Date.now();
  card.dataset.state = "waiting";
  setStatus(card, "Waiting to upload…");
  uploads.waiting.push({ card, file });
  pump();
}

// Takes a card away: a waiting file is never sent, one being sent is cancelled
// (the server keeps nothing of it), a failed one is just gone from the batch.
function removeCard(card) {
  // The keyboard's place goes to the next card's button, or back to the chooser: never to the page's top.
  if (card.contains(document.activeElement)) {
    const next = [card.nextElementSibling, card.previousElementSibling].find((other) => other?.classList.contains("card"));
    const target = [...(next?.querySelectorAll("button") ?? [])].find((button) => button.offsetParent !== null) ?? document.querySelector("form.upload input#file");
    queueMicrotask(() => target?.focus());
  }
  // What was said of files picked again is about cards that may be gone now.
  const notice = document.querySelector("#picked-again");
  if (notice) notice.hidden = true;
  uploads.waiting = uploads.waiting.filter((entry) => entry.card !== card);
  card.transfer?.cancel();
  card.settle?.();
  // Removed, it may be picked again.
  uploads.seen.delete(card.dataset.identity);
  card.dataset.state = "removed";
  card.remove();
  updateSummary();
}

function pump() {
  while (uploads.running < (uploads.keyed ? PARALLEL_UPLOADS : 1) && uploads.waiting.length > 0) {
    const { card, file } = uploads.waiting.shift();
    uploads.running += 1;
    upload(card, file).finally(() => {
      uploads.running -= 1;
      pump();
    });
  }
}

// Sends one card's file; settles when it is accepted, has failed, or was removed.
function upload(card, file) {
  return new Promise((resolve) => {
    const progress = card.querySelector("progress");
    card.dataset.state = "uploading";
    setStatus(card, "Uploading…");
    let firstSent = null;
    const settle = () => {
      card.transfer = null;
      card.settle = null;
      resolve();
    };
    card.settle = settle;
    card.transfer = send(file, {
      started() {
        // The server made the upload and gave this browser its key: the others may go now.
        uploads.keyed = true;
        pump();
      },
      progress(sent, total) {
        progress.value = Math.round((sent / total) * 100);
        card.dataset.sent = String(Math.min(file.size, sent));
        // Bytes this page moved, not those the server had before a resume: the time left comes from them.
        firstSent ??= sent;
        card.dataset.moved = String(sent - firstSent);
        if (card.dataset.retrying) {
          delete card.dataset.retrying;
          setStatus(card, "Uploading…");
        }
        updateSummary();
      },
      retrying(why) {
        card.dataset.retrying = "true";
        setStatus(card, `${why} Trying again…`);
      },
      accepted(image) {
        // Removed meanwhile: it stays removed.
        if (!card.isConnected) return settle();
        card.dataset.sent = String(file.size);
        showAccepted(card, image, uploadsActive);
        settle();
      },
      failed(why, canRetry) {
        card.dataset.sent = "0";
        if (card.isConnected) setCardError(card, why, canRetry ? () => queueUpload(card, file) : null);
        settle();
      },
    }, { bytesWithCreation: uploads.keyed });
  });
}
