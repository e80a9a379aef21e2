// thumbq's pages work without this script. With it:
// - uploads from the home page show a card per file, with real progress, a
//   local preview, then the thumbnail as soon as it exists;
// - thumbnails appear the moment a worker writes them, smallest first: pushed
//   over Server-Sent Events (/events), or, where those are not available, by
//   polling each thumbnail URL until 404 turns into 200 (or 410: failed, or deleted);
// - an upload card has a delete button, and a page shows at once when one of
//   its images was deleted (by its owner elsewhere, say).
"use strict";

// ---- Placeholders ----------------------------------------------------------

// A ThumbHash (https://evanw.github.io/thumbhash/, base64) as RGBA pixels, at
// most 32 a side: a blurred stand-in that a worker announces with the first
// size it writes. The format is a few DCT coefficients of luminance, two
// colour channels (and alpha), four bits each after a small header.
function decodeThumbHash(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  if (bytes.length < 5) return null;
  const header = bytes[0] | (bytes[1] << 8) | (bytes[2] << 16);
  const header2 = bytes[3] | (bytes[4] << 8);
  const alpha = (header >> 23) & 1;
  const landscape = (header2 >> 15) & 1;
  const longSide = alpha ? 5 : 7;
  const shortSide = header2 & 7;
  const [lx, ly] = landscape ? [longSide, shortSide] : [shortSide, longSide];
  if (!lx || !ly || (alpha && bytes.length < 6)) return null;
  const ratio = lx / ly;
  const dc = {
    l: (header & 63) / 63,
    p: ((header >> 6) & 63) / 31.5 - 1,
    q: ((header >> 12) & 63) / 31.5 - 1,
    a: alpha ? (bytes[5] & 15) / 15 : 1,
  };
  const scale = {
    l: ((header >> 18) & 31) / 31,
    // Colour is boosted a quarter, as the encoder's quantisation dulls it.
    p: (((header2 >> 3) & 63) / 63) * 1.25,
    q: (((header2 >> 9) & 63) / 63) * 1.25,
    a: alpha ? (bytes[5] >> 4) / 15 : 0,
  };
  let nibble = 0;
  let short = false;
  const at = alpha ? 6 : 5;
  const next = () => {
    const byte = bytes[at + (nibble >> 1)];
    if (byte === undefined) short = true;
    const value = nibble & 1 ? byte >> 4 : byte & 15;
    nibble += 1;
    return value;
  };
  // The coefficients of a channel, over a triangle of nx × ny frequencies, DC left out.
  const channel = (nx, ny, factor) => {
    const terms = [];
    for (let cy = 0; cy < ny; cy++) {
      for (let cx = cy ? 0 : 1; cx * ny < nx * (ny - cy); cx++) terms.push({ cx, cy, value: (next() / 7.5 - 1) * factor });
    }
    return terms;
  };
  const l = channel(Math.max(3, lx), Math.max(3, ly), scale.l);
  const p = channel(3, 3, scale.p);
  const q = channel(3, 3, scale.q);
  const a = alpha ? channel(5, 5, scale.a) : [];
  if (short) return null;
  const width = ratio > 1 ? 32 : Math.round(32 * ratio);
  const height = ratio > 1 ? Math.round(32 / ratio) : 32;
  const cosines = (size) => Array.from({ length: size }, (_, i) => Array.from({ length: 7 }, (_, c) => Math.cos((Math.PI / size) * (i + 0.5) * c)));
  const [fx, fy] = [cosines(width), cosines(height)];
  const sum = (start, terms, x, y) => terms.reduce((total, t) => total + t.value * fx[x][t.cx] * fy[y][t.cy] * 2, start);
  const pixels = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const lum = sum(dc.l, l, x, y);
      const pc = sum(dc.p, p, x, y);
      const qc = sum(dc.q, q, x, y);
      const b = lum - (2 / 3) * pc;
      const r = (3 * lum - b + qc) / 2;
      // Clamped, then cut to 8 bits (not rounded): the pixels the format's reference decoder gives.
      const to8 = (value) => Math.floor(Math.min(1, Math.max(0, value)) * 255);
      pixels.set([to8(r), to8(r - qc), to8(b), to8(sum(dc.a, a, x, y))], (y * width + x) * 4);
    }
  }
  return { width, height, pixels };
}

// Paints `placeholder` into each of `figures` still waiting for its thumbnail.
function paintPlaceholder(figures, placeholder) {
  let image;
  try {
    image = placeholder && decodeThumbHash(placeholder);
  } catch {
    return;
  }
  if (!image) return;
  for (const figure of figures) {
    if (figure.dataset.state !== "pending" || figure.querySelector("canvas.blurred")) continue;
    const canvas = document.createElement("canvas");
    canvas.className = "blurred";
    canvas.width = image.width;
    canvas.height = image.height;
    canvas.getContext("2d").putImageData(new ImageData(image.pixels, image.width, image.height), 0, 0);
    figure.dataset.placeholder = placeholder;
    const frame = figure.querySelector(".frame");
    // The large slot has no height of its own: the placeholder gives it the photo's shape.
    if (figure.dataset.size === "large") frame.style.aspectRatio = `${image.width} / ${image.height}`;
    frame.prepend(canvas);
  }
}

// ---- Following thumbnails -------------------------------------------------

// Poll soon (small images are ready in tens of milliseconds), then back off
// up to MAX_POLL_MS; the server's Retry-After is the least wait between looks.
const FIRST_POLL_MS = 150;
const POLL_GROWTH = 1.6;
const MAX_POLL_MS = 4000;
const GIVE_UP_AFTER_MS = 15 * 60 * 1000;

const live = {
  figures: new Map(), // image id -> Set of pending figures
  source: null,
  mode: "push",
  reopen: null,
  // Figures no stream has covered yet: one look each when the next stream opens.
  unchecked: new Set(),
  // Set when a stream dropped: events may have been missed, so everything pending is looked at once.
  dropped: false,
  retiring: [],
  // The images the open stream follows: polling leaves them to it.
  streamed: new Set(),
  // Streams refused in a row (the server full, or without live updates): the next try waits longer.
  refusals: 0,
  // After a refused stream the page polls, and asks for a stream again after
  // this long, doubling each time it is refused, up to MAX_STREAM_RETRY_MS.
  streamRetryMs: 30000,
};

// A stream follows at most this many images (the server's --max-files), the
// newest first: those further down the page are polled.
const STREAM_IDS = 50;
const MAX_STREAM_RETRY_MS = 10 * 60 * 1000;

// A 404 without Retry-After says the image does not exist; a proxy's hiccup
// can say it too, so it counts only when it keeps saying it.
const GONE_AFTER_404S = 4;
// An image that fails to load is tried again this many times before it counts as failed.
const IMAGE_LOAD_TRIES = 3;

// Follows every pending thumbnail inside `root`.
function follow(root) {
  const fresh = [];
  root.querySelectorAll("[data-thumb][data-state=pending]").forEach((figure) => {
    // A placeholder the server already knew of when it made the page.
    if (figure.dataset.placeholder) paintPlaceholder([figure], figure.dataset.placeholder);
    const id = figure.closest("[data-image]")?.dataset.image;
    if (!id) return;
    if (!live.figures.has(id)) live.figures.set(id, new Set());
    live.figures.get(id).add(figure);
    live.unchecked.add(figure);
    fresh.push(figure);
  });
  if (fresh.length === 0) return;
  if (live.mode === "poll" || !("EventSource" in window)) {
    setMode("poll");
    fresh.forEach(poll);
  } else {
    // One stream for all the images on the page, opened anew when images are
    // added: once for all those added in the same turn, and at once, since
    // the first thumbnail may be written a few dozen milliseconds from now.
    clearTimeout(live.reopen);
    live.reopen = setTimeout(openStream, 0);
  }
}

function setMode(mode) {
  live.mode = mode;
  document.body.dataset.live = mode;
}

// A slow look at every pending thumbnail even while events flow: an event
// lost on the way (a web server reconnecting to RabbitMQ, say) costs seconds, not forever.
const SAFETY_POLL_MS = 15000;

function openStream() {
  // Only images still pending, the latest added first: the stream's list stays
  // short on a long-lived page, and the uploads of now are the ones it follows.
  const pending = [...live.figures.keys()].filter((id) => [...live.figures.get(id)].some((figure) => figure.dataset.state === "pending")).reverse();
  const ids = pending.slice(0, STREAM_IDS);
  // Earlier streams stay open until the new one is: no event falls between them.
  if (live.source) live.retiring.push(live.source);
  live.source = null;
  if (ids.length === 0) return retireStreams();
  if (!live.safetyPoll) live.safetyPoll = setInterval(() => pendingFigures().forEach(checkOnce), SAFETY_POLL_MS);
  const source = new EventSource(`/events?ids=${ids.join(",")}`);
  live.source = source;
  live.streamed = new Set(ids);
  setMode("push");
  pending.slice(STREAM_IDS).forEach((id) => live.figures.get(id).forEach(poll));
  // Whatever finished before the stream opened is found by one look at each
  // thumbnail not looked at since: opening anew for every image added must not
  // look at all the earlier ones again each time (n² requests for n uploads).
  source.addEventListener("open", () => {
    live.refusals = 0;
    retireStreams();
    const figures = live.dropped ? pendingFigures() : [...live.unchecked].filter((figure) => figure.dataset.state === "pending");
    live.unchecked.clear();
    live.dropped = false;
    figures.forEach(checkOnce);
  });
  source.addEventListener("resync", () => pendingFigures().forEach(checkOnce));
  // One size is on disk: load it at once, without asking first; the others wait for theirs.
  source.addEventListener("size", (message) => {
    const { id, size, placeholder } = JSON.parse(message.data);
    const figures = [...(live.figures.get(id) ?? [])];
    // The first size brings the placeholder: the larger sizes' slots show it until theirs land.
    if (placeholder) paintPlaceholder(figures.filter((figure) => figure.dataset.size !== size), placeholder);
    for (const figure of figures) {
      if (figure.dataset.size === size) showThumbnail(figure);
    }
  });
  source.addEventListener("image", (message) => {
    const { id, state } = JSON.parse(message.data);
    for (const figure of live.figures.get(id) ?? []) {
      if (state === "done") checkOnce(figure);
      else if (state === "deleted") showDeleted(figure.closest("[data-image]"));
      else failureReason(figure.dataset.thumb).then((reason) => showFailure(figure, reason));
    }
  });
  source.addEventListener("error", () => {
    // A refused stream (the server full, or without RabbitMQ) is closed: poll
    // meanwhile, and ask again later. A dropped one reconnects by itself and looks again on "open".
    if (source.readyState === EventSource.CLOSED && live.source === source) {
      retireStreams();
      live.source = null;
      live.streamed = new Set();
      setMode("poll");
      pendingFigures().forEach(poll);
      const wait = Math.min(live.streamRetryMs * 2 ** live.refusals, MAX_STREAM_RETRY_MS);
      live.refusals += 1;
      clearTimeout(live.reopen);
      live.reopen = setTimeout(() => {
        setMode("push");
        openStream();
      }, wait * (0.75 + Math.random() / 2));
    } else if (live.source === source) {
      live.dropped = true;
    }
  });
}

// Nothing left to follow: the stream closes, and gives its place on the server back.
function closeStreamWhenSettled() {
  if (live.source && pendingFigures().length === 0) {
    live.source.close();
    live.source = null;
    retireStreams();
  }
}

function retireStreams() {
  live.retiring.forEach((stream) => stream.close());
  live.retiring = [];
}

function pendingFigures() {
  return [...live.figures.values()].flatMap((figures) => [...figures]).filter((figure) => figure.dataset.state === "pending");
}

// Asks once whether a thumbnail is there; true when it was settled.
async function checkOnce(figure) {
  let response = null;
  try {
    response = await fetch(figure.dataset.thumb, { method: "HEAD", cache: "no-store" });
  } catch {
    return { settled: false, response };
  }
  if (response.ok) {
    showThumbnail(figure);
    return { settled: true, response };
  }
  if (response.status === 410 && response.headers.get("X-Image-State") === "deleted") {
    showDeleted(figure.closest("[data-image]"));
    return { settled: true, response };
  }
  if (response.status === 410) {
    showFailure(figure, await failureReason(figure.dataset.thumb));
    return { settled: true, response };
  }
  if (response.status === 404 && !response.headers.has("Retry-After")) {
    figure.dataset.missing = String(Number(figure.dataset.missing ?? 0) + 1);
    if (Number(figure.dataset.missing) >= GONE_AFTER_404S) {
      showFailure(figure, "This image no longer exists.");
      return { settled: true, response };
    }
    return { settled: false, response };
  }
  delete figure.dataset.missing;
  return { settled: false, response };
}

// Figures being polled, each by one loop at most.
const polling = new WeakSet();

function poll(figure) {
  if (polling.has(figure)) return;
  polling.add(figure);
  const started = Date.now();
  let delay = FIRST_POLL_MS;
  async function again() {
    const settled = await lookAgain();
    if (settled) polling.delete(figure);
  }
  // One look; true when the loop ends.
  async function lookAgain() {
    if (figure.dataset.state !== "pending") return true;
    // A stream follows it now (opened again after a refusal): polling stops.
    if (live.mode === "push" && live.streamed.has(figure.closest("[data-image]")?.dataset.image)) return true;
    const { settled, response } = await checkOnce(figure);
    if (settled) return true;
    if (Date.now() - started > GIVE_UP_AFTER_MS) {
      showFailure(figure, "This is taking much longer than it should. Reload the page to try again.");
      return true;
    }
    // The server's Retry-After is the least wait: backing off still reaches
    // its maximum when it says "1" every time, and a longer one is honoured.
    const hintMs = Number(response?.headers.get("Retry-After")) * 1000 || 0;
    delay = Math.max(Math.min(delay * POLL_GROWTH, MAX_POLL_MS), hintMs);
    setTimeout(again, delay);
    return false;
  }
  setTimeout(again, delay);
}

async function failureReason(url) {
  try {
    const text = (await (await fetch(url, { cache: "no-store" })).text()).trim();
    return text.replace(/^No thumbnail will be made: /, "") || "The image could not be processed.";
  } catch {
    return "The image could not be processed.";
  }
}

function showThumbnail(figure) {
  if (figure.dataset.state !== "pending") return;
  figure.dataset.state = "loading";
  closeStreamWhenSettled();
  const image = new Image();
  image.alt = figure.querySelector("figcaption")?.textContent ?? "thumbnail";
  image.onload = () => {
    // Settled otherwise meanwhile (failed, or deleted): that stands.
    if (figure.dataset.state !== "loading") return;
    const frame = figure.querySelector(".frame");
    frame.style.aspectRatio = "";
    frame.replaceChildren(image);
    figure.dataset.state = "ready";
    updateStatus(figure.closest("[data-image]"));
  };
  let tries = 0;
  image.onerror = () => {
    tries += 1;
    if (tries >= IMAGE_LOAD_TRIES) return showFailure(figure, "The thumbnail could not be shown.");
    // A dropped connection, say: try again a little later, bypassing the cache.
    setTimeout(() => {
      image.src = `${figure.dataset.thumb}?try=${tries}`;
    }, 500 * tries);
  };
  image.src = figure.dataset.thumb;
}

function showFailure(figure, reason) {
  const placeholder = document.createElement("span");
  placeholder.className = "placeholder failed";
  placeholder.textContent = "No thumbnail";
  figure.querySelector(".frame").replaceChildren(placeholder);
  figure.dataset.state = "failed";
  const image = figure.closest("[data-image]");
  if (image) {
    image.dataset.state = "failed";
    image.dataset.reason = reason;
  }
  updateStatus(image);
  closeStreamWhenSettled();
}

// Shows that an image is gone: its thumbnails, its buttons and links to it.
function showDeleted(image) {
  if (!image || image.dataset.state === "deleted") return;
  image.dataset.state = "deleted";
  image.querySelectorAll("[data-thumb]").forEach((figure) => {
    const placeholder = document.createElement("span");
    placeholder.className = "placeholder";
    placeholder.textContent = "Deleted";
    figure.querySelector(".frame").replaceChildren(placeholder);
    figure.dataset.state = "deleted";
  });
  closeStreamWhenSettled();
  image.querySelectorAll("form.delete, button.delete, a[href^='/images/'], a[href^='/originals/']").forEach((element) => element.remove());
  const words = "This image was deleted.";
  const status = image.querySelector(".card-status, .status");
  if (status) status.replaceChildren(words);
  else {
    const note = document.createElement("p");
    note.className = "status";
    note.textContent = words;
    image.append(note);
  }
}

// Says on the page what the thumbnails say one by one.
function updateStatus(image) {
  if (!image) return;
  const figures = [...image.querySelectorAll("[data-thumb]")];
  const cardStatus = image.querySelector(".card-status");
  if (cardStatus) {
    // An upload card: keep its link to the image page.
    // A photo uploaded before keeps saying so: this card follows the image the owner already had.
    const ready = image.dataset.duplicate ? "Ready: you uploaded this photo before, so no copy was made. " : "Ready. ";
    const words = image.dataset.state === "failed" ? `Failed: ${image.dataset.reason} ` : ready;
    if (image.dataset.state === "failed" || figures.every((figure) => figure.dataset.state === "ready")) {
      const text = document.createElement("span");
      text.textContent = words;
      if (image.dataset.state === "failed") {
        text.className = "failure";
        text.setAttribute("role", "alert");
      } else {
        image.dataset.state = "done";
      }
      cardStatus.firstChild.replaceWith(text);
    }
    return;
  }
  const status = image.querySelector(".status");
  if (image.dataset.state === "failed") {
    let alert = image.querySelector(".failure");
    if (!alert) {
      alert = document.createElement(status ? "strong" : "p");
      alert.className = "failure";
      alert.setAttribute("role", "alert");
      if (status) status.replaceChildren(alert);
      else image.append(alert);
    }
    alert.textContent = `This image could not be processed: ${image.dataset.reason}`;
  } else if (figures.every((figure) => figure.dataset.state === "ready")) {
    image.dataset.state = "done";
    if (status) status.textContent = "All thumbnails are ready.";
    if (status) drawTimeline(image);
  }
}

// An image page opened while its thumbnails were being made draws the
// image's way once they are there, as the server draws it for a finished one.
async function drawTimeline(image) {
  let answer = null;
  try {
    answer = await (await fetch(`/api/images/${image.dataset.image}`, { cache: "no-store" })).json();
  } catch {
    return;
  }
  const steps = answer?.timeline ?? [];
  if (steps.length === 0) return;
  const details = document.createElement("details");
  details.className = "timeline";
  details.open = true;
  const summary = document.createElement("summary");
  summary.textContent = `Its way through thumbq: ${steps[steps.length - 1].at - steps[0].at} ms`;
  const list = document.createElement("ol");
  steps.forEach((step, index) => {
    const item = document.createElement("li");
    if (index > 0) {
      const gap = document.createElement("span");
      gap.className = "gap";
      gap.textContent = `+${step.at - steps[index - 1].at} ms`;
      item.append(gap);
    }
    const name = document.createElement("span");
    name.className = "step";
    name.title = step.by;
    name.textContent = step.step;
    item.append(name);
    list.append(item);
  });
  details.append(summary, list);
  image.querySelector(".timeline")?.remove();
  image.querySelector(".thumbs")?.before(details);
}

// ---- Uploading from the home page -----------------------------------------

const PARALLEL_UPLOADS = 3;
const ACCEPTED_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp", "image/heic", "image/heif", "image/avif", "image/jxl"];
// What a browser can show itself, for the preview while the upload goes (not HEIC or JPEG XL in most).
const PREVIEWABLE_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp", "image/avif"];

// `keyed`: whether this browser holds its owner key (an HttpOnly cookie,
// which the page says it has). Until it does, one upload at a time: the
// first answer brings the key, and every later upload must carry the same.
const uploads = { waiting: [], running: 0, keyed: false, seen: new Set(), started: Date.now(), batch: 0 };

// A transient failure (the network, the server busy or out of room) is tried
// again by itself this many times, waiting longer each time.
const AUTOMATIC_RETRIES = 3;
// Waits longer than this are left to the person, with a button to try again.
const MAX_AUTOMATIC_WAIT_MS = 5 * 60 * 1000;

function setUpUploads(form) {
  const input = form.querySelector("input[type=file]");
  const cards = document.querySelector("#uploads");
  const maxBytes = Number(input.dataset.maxBytes);
  uploads.keyed = form.dataset.keyed === "true";
  input.required = false;

  const add = (files) => {
    // Files added while nothing uploads start a new batch; added meanwhile, they join it.
    if (!uploadsActive()) uploads.batch += 1;
    for (const file of files) {
      // The same file picked twice in one batch is uploaded once.
      const identity = `${file.name}\u0000${file.size}\u0000${file.lastModified}`;
      if (uploads.seen.has(identity)) continue;
      uploads.seen.add(identity);
      // In the order chosen.
      const card = newCard(file);
      card.dataset.identity = identity;
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
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    add([...input.files]);
    form.reset();
  });
  input.addEventListener("change", () => {
    add([...input.files]);
    form.reset();
  });
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
    add([...(event.dataTransfer?.files ?? [])]);
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
  restoreCards(cards, maxBytes);
  new MutationObserver(() => {
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
    card.querySelector(".frame").replaceChildren();
    card.dataset.batch = String(uploads.batch);
    cards.append(card);
    if (entry.image) {
      card.dataset.sent = card.dataset.bytes = "0";
      showAccepted(card, { id: entry.image, page: entry.page, thumbnails: { small: entry.small } });
    } else {
      setCardError(card, `The upload of “${entry.name}” stopped when the page was left: pick it again.`, null);
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
    return;
  }
  summary.hidden = false;
  const count = (...states) => cards.filter((card) => states.includes(card.dataset.state)).length;
  // A card that has an image was uploaded, whatever became of its thumbnails since.
  const uploaded = cards.filter((card) => card.dataset.image).length;
  const ready = count("done");
  const refused = count("failed");
  const parts = [`${uploaded} of ${cards.length} uploaded`, `${ready} thumbnail${ready === 1 ? "" : "s"} ready`];
  if (refused > 0) parts.push(`${refused} failed`);
  const total = cards.reduce((sum, card) => sum + Number(card.dataset.bytes ?? 0), 0);
  const sent = cards.reduce((sum, card) => sum + Number(card.dataset.sent ?? 0), 0);
  const finished = count("done", "failed", "deleted") === cards.length;
  if (finished) {
    parts.unshift("All done");
  } else if (uploadsActive() && sent > 0) {
    const elapsed = (Date.now() - uploads.started) / 1000;
    const left = Math.max(0, Math.round(((total - sent) / sent) * elapsed));
    parts.push(`${humanBytes(sent)} of ${humanBytes(total)}${left > 0 ? `, about ${left} s left` : ""}`);
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

const LOCAL_PREVIEW_AFTER_MS = 300;

// The file as the person chose it, small: decoded off the main thread and
// scaled down there, so that a phone photo (a tenth of a second to decode)
// never holds back painting the thumbnail that replaces it.
function localPreview(file) {
  const canvas = document.createElement("canvas");
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `Preview of ${file.name}`);
  const noPreview = () => {
    const placeholder = document.createElement("span");
    placeholder.className = "placeholder";
    placeholder.textContent = "No preview";
    canvas.replaceWith(placeholder);
  };
  if (!("createImageBitmap" in window)) {
    queueMicrotask(noPreview);
    return canvas;
  }
  // Twice the card's box, for sharp pictures on high-density screens.
  createImageBitmap(file, { resizeWidth: 400, resizeQuality: "medium" })
    .then((bitmap) => {
      canvas.width = bitmap.width;
      canvas.height = bitmap.height;
      canvas.getContext("2d").drawImage(bitmap, 0, 0);
      canvas.dataset.state = "ready";
      bitmap.close();
    })
    // Not an image the browser can show (a text file named .jpg, say): no broken picture.
    .catch(noPreview);
  return canvas;
}

function newCard(file) {
  const card = document.createElement("li");
  card.className = "card";
  card.dataset.state = "uploading";
  const preview = document.createElement("div");
  preview.className = "frame";
  // Only when the wait shows: the server's thumbnail often comes first, and
  // then the browser need not decode the whole photo at all.
  if (PREVIEWABLE_TYPES.includes(file.type)) {
    setTimeout(() => {
      if (preview.childElementCount === 0) preview.append(localPreview(file));
    }, LOCAL_PREVIEW_AFTER_MS);
  }
  const name = document.createElement("p");
  name.className = "name";
  name.textContent = file.name;
  const progress = document.createElement("progress");
  progress.max = 100;
  progress.value = 0;
  progress.setAttribute("aria-label", `Upload of ${file.name}`);
  const status = document.createElement("p");
  status.className = "card-status";
  status.setAttribute("aria-live", "polite");
  status.textContent = "Waiting to upload…";
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "remove";
  remove.textContent = "Remove";
  remove.setAttribute("aria-label", `Remove ${file.name}`);
  remove.addEventListener("click", () => removeCard(card));
  card.dataset.state = "waiting";
  card.dataset.bytes = String(file.size);
  card.dataset.sent = "0";
  card.append(preview, name, progress, status, remove);
  return card;
}

function queueUpload(card, file) {
  if (uploads.waiting.some((entry) => entry.card === card)) return;
  if (!uploadsActive()) uploads.started = Date.now();
  card.dataset.state = "waiting";
  card.querySelector(".card-status").textContent = "Waiting to upload…";
  uploads.waiting.push({ card, file });
  pump();
}

// Takes a card away: a waiting file is never sent, one being sent is cancelled
// (the server keeps nothing of it), a failed one is just gone from the batch.
function removeCard(card) {
  uploads.waiting = uploads.waiting.filter((entry) => entry.card !== card);
  card.request?.abort();
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

function upload(card, file, tries = 0) {
  return new Promise((resolve) => {
    const request = new XMLHttpRequest();
    card.request = request;
    const body = new FormData();
    body.append("file", file, file.name);
    const progress = card.querySelector("progress");
    const status = card.querySelector(".card-status");
    card.dataset.state = "uploading";
    status.textContent = "Uploading…";
    request.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      progress.value = Math.round((event.loaded / event.total) * 100);
      card.dataset.sent = String(Math.min(file.size, event.loaded));
      updateSummary();
    });
    // 409: the server is still answering an earlier try of this very request.
    const transient = (status) => status === 0 || status === 408 || status === 409 || status === 429 || status === 507 || status >= 500;
    const failed = (message, status) => {
      card.request = null;
      card.dataset.sent = "0";
      const wait = Number(request.getResponseHeader?.("Retry-After")) * 1000 || 1000 * 2 ** tries;
      // A wait of hours (a daily quota) is said, not waited out behind the person's back.
      if (transient(status) && tries < AUTOMATIC_RETRIES && wait <= MAX_AUTOMATIC_WAIT_MS) {
        status_(card, `${message} Trying again…`);
        setTimeout(() => {
          // Removed meanwhile: it is not sent again.
          if (!card.isConnected) return resolve();
          upload(card, file, tries + 1).then(resolve);
        }, Math.min(wait, 30000));
        return;
      }
      setCardError(card, message, transient(status) ? file : null);
      resolve();
    };
    request.addEventListener("load", () => {
      let answer = null;
      try {
        answer = JSON.parse(request.responseText);
      } catch {
        // Not JSON: a proxy's error page, say.
      }
      if (request.status === 202 && answer?.images?.[0]) {
        uploads.keyed = true;
        card.request = null;
        card.dataset.sent = String(file.size);
        showAccepted(card, answer.images[0]);
        resolve();
      } else {
        failed(answer?.error ?? `The server answered ${request.status}.`, request.status);
      }
    });
    request.addEventListener("error", () => failed("The upload was interrupted.", 0));
    request.addEventListener("abort", () => resolve());
    request.open("POST", "/images");
    request.setRequestHeader("Accept", "application/json");
    // One key per card, kept across its tries: a try whose answer was lost is answered again, not kept twice.
    card.dataset.requestKey ||= requestKey();
    request.setRequestHeader("Idempotency-Key", card.dataset.requestKey);
    request.send(body);
  });
}

// A random key for one file's upload request (crypto.randomUUID needs a secure context; this does not).
function requestKey() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function showAccepted(card, image) {
  card.dataset.state = "processing";
  card.dataset.image = image.id;
  card.dataset.page = image.page;
  card.dataset.small = image.thumbnails.small;
  card.querySelector("progress").value = 100;
  const figure = document.createElement("figure");
  figure.className = "thumb thumb-small";
  figure.dataset.size = "small";
  figure.dataset.thumb = image.thumbnails.small;
  figure.dataset.state = "pending";
  const caption = document.createElement("figcaption");
  caption.textContent = "small thumbnail";
  const frame = card.querySelector(".frame");
  frame.remove();
  figure.append(frame, caption);
  card.prepend(figure);
  const status = card.querySelector(".card-status");
  // The same photo was uploaded before: this card follows that image, no second copy was made.
  if (image.duplicate_of) card.dataset.duplicate = "true";
  status.replaceChildren(image.duplicate_of ? "You uploaded this photo before. " : "Making thumbnails… ");
  const link = document.createElement("a");
  link.href = image.page;
  link.textContent = "Open";
  // While others still upload, the page opens in a new tab: leaving would end them.
  link.addEventListener("click", (event) => {
    if (!uploadsActive()) return;
    event.preventDefault();
    window.open(link.href, "_blank", "noopener");
  });
  status.append(link);
  card.append(deleteButton(card, image.page));
  follow(card);
}

// The card's delete button: the same as the page's form, without leaving the page.
function deleteButton(card, page) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "delete";
  button.textContent = "Delete";
  const problem = document.createElement("p");
  problem.className = "failure";
  problem.setAttribute("role", "alert");
  button.addEventListener("click", async () => {
    button.disabled = true;
    problem.remove();
    try {
      const response = await fetch(page, { method: "DELETE" });
      if (response.status === 204 || response.status === 410) return showDeleted(card);
      const answer = await response.json().catch(() => null);
      problem.textContent = `Not deleted: ${answer?.error ?? `the server answered ${response.status}.`}`;
    } catch {
      problem.textContent = "Not deleted: the connection failed.";
    }
    // The image is still there: say why below the button, and leave the card as it was.
    button.after(problem);
    button.disabled = false;
  });
  return button;
}

function status_(card, message) {
  card.querySelector(".card-status").textContent = message;
}

// A failed card says why. A transient failure (`file` given) offers "Try again";
// a file refused for what it is offers only "Remove": trying again would fail again.
function setCardError(card, message, file) {
  card.dataset.state = "failed";
  const status = card.querySelector(".card-status");
  const text = document.createElement("span");
  text.className = "failure";
  text.setAttribute("role", "alert");
  text.textContent = message;
  status.replaceChildren(text);
  if (file) {
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "retry";
    retry.textContent = "Try again";
    retry.addEventListener("click", () => queueUpload(card, file));
    status.append(" ", retry);
  }
}

// ---- The dashboard -----------------------------------------------------------

// A takedown's notice is shown once: a reload shows the dashboard as it is,
// not the notice again (the page of reasons stays). The numbers, and a
// replay's progress, refresh by themselves.
function setUpDashboard(main) {
  const params = new URLSearchParams(location.search);
  ["takedown", "image"].forEach((name) => params.delete(name));
  const here = location.pathname + (params.size ? `?${params}` : "");
  history.replaceState(null, "", here);
  setInterval(async () => {
    // Someone is typing, or has typed something not sent yet.
    if (document.activeElement?.closest("form")) return;
    if ([...main.querySelectorAll("input")].some((input) => input.value !== input.defaultValue)) return;
    try {
      const response = await fetch(here, { cache: "no-store" });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html").querySelector("main[data-dashboard]");
      if (fresh) main.replaceChildren(...fresh.childNodes);
    } catch {
      // The next look will do.
    }
  }, 10000);
}

// ---- Start -----------------------------------------------------------------

document.querySelectorAll("form.upload").forEach(setUpUploads);
document.querySelectorAll("main[data-dashboard]").forEach(setUpDashboard);
follow(document);
