// Following thumbnails: each appears the moment a worker writes it, smallest
// first, pushed over Server-Sent Events (/events) or, where those are not
// available, found by polling its URL until 404 turns into 200 (or 410:
// failed, or deleted). A page shows at once when one of its images was deleted.

import { paintPlaceholder } from "./thumbhash.js";

// Poll soon (small images are ready in tens of milliseconds), then back off
// up to MAX_POLL_MS; the server's Retry-After is the least wait between looks.
const FIRST_POLL_MS = 150;
const POLL_GROWTH = 1.6;
const MAX_POLL_MS = 4000;
const GIVE_UP_AFTER_MS = 15 * 60 * 1000;

export const live = {
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
  // The open stream's name, to add images to it; and the images to add at the end of this turn.
  streamName: null,
  adding: new Set(),
  // Streams refused in a row (the server full, or without live updates): the next try waits longer.
  refusals: 0,
  // After a refused stream the page polls, and asks for a stream again after
  // this long, doubling each time it is refused, up to MAX_STREAM_RETRY_MS.
  streamRetryMs: 30000,
  // When the page began to wait for each image's first thumbnail, and the look at the queue while some wait.
  waitingSince: new Map(),
  queueWatch: null,
  // When the page last looked whether its finished images still exist.
  lookedAgainAt: Date.now(),
};

// A first thumbnail takes well under a second when a worker is free: after
// this long, the page says what the queue holds (no worker running, a long line).
const SLOW_AFTER_MS = 10000;
const LOOK_AT_QUEUE_EVERY_MS = 5000;

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
export function follow(root) {
  const fresh = [];
  root.querySelectorAll("[data-thumb][data-state=pending]").forEach((figure) => {
    // A placeholder the server already knew of when it made the page.
    if (figure.dataset.placeholder) paintPlaceholder([figure], figure.dataset.placeholder);
    const id = figure.closest("[data-image]")?.dataset.image;
    if (!id) return;
    if (!live.figures.has(id)) live.figures.set(id, new Set());
    live.figures.get(id).add(figure);
    if (!live.waitingSince.has(id)) live.waitingSince.set(id, Date.now());
    live.unchecked.add(figure);
    fresh.push(figure);
  });
  if (fresh.length === 0) return;
  if (!live.queueWatch) live.queueWatch = setInterval(watchQueue, LOOK_AT_QUEUE_EVERY_MS);
  if (live.mode === "poll" || !("EventSource" in window)) {
    setMode("poll");
    fresh.forEach(poll);
  } else if (live.source && live.source.readyState !== EventSource.CLOSED) {
    // One stream for the page: images added later join the stream it has (once it has its name).
    fresh.forEach((figure) => live.adding.add(figure.closest("[data-image]").dataset.image));
    if (live.streamName) queueMicrotask(addToStream);
  } else {
    // No stream yet: one for all the images added in the same turn, at once,
    // since the first thumbnail may be written a few dozen milliseconds from now.
    clearTimeout(live.reopen);
    live.reopen = setTimeout(openStream, 0);
  }
}

// A page left open in a tab learns, when it is looked at again, of its
// images deleted meanwhile (in another tab, say): a finished image has no
// stream to hear it on. One look per image, at most every half minute.
const LOOK_AGAIN_AFTER_MS = 30000;
const MOST_LOOKED_AGAIN = 50;

export function lookAgainWhenShown() {
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState !== "visible" || Date.now() - live.lookedAgainAt < LOOK_AGAIN_AFTER_MS) return;
    live.lookedAgainAt = Date.now();
    const shown = [...document.querySelectorAll("[data-image]")].filter((image) => !["deleted", "failed"].includes(image.dataset.state) && image.querySelector("[data-thumb]"));
    for (const image of shown.slice(0, MOST_LOOKED_AGAIN)) {
      fetch(image.querySelector("[data-thumb]").dataset.thumb, { method: "HEAD", cache: "no-store" })
        .then((response) => {
          if (response.status === 410 && response.headers.get("X-Image-State") === "deleted") showDeleted(image);
        })
        .catch(() => {});
    }
  });
}

// Says, under each image still without any thumbnail long after it was
// accepted, why: what the queue holds, as the server sees it.
async function watchQueue() {
  const slow = [];
  for (const [id, since] of live.waitingSince) {
    const figures = [...(live.figures.get(id) ?? [])];
    if (!figures.every((figure) => figure.dataset.state === "pending")) {
      live.waitingSince.delete(id);
      document.querySelectorAll(`[data-image="${CSS.escape(id)}"] .waiting`).forEach((note) => note.remove());
    } else if (Date.now() - since >= SLOW_AFTER_MS) {
      slow.push(id);
    }
  }
  if (live.waitingSince.size === 0) {
    clearInterval(live.queueWatch);
    live.queueWatch = null;
  }
  if (slow.length === 0) return;
  let queue;
  try {
    queue = await (await fetch("/api/queue", { cache: "no-store" })).json();
  } catch {
    return;
  }
  const words = waitingWords(queue);
  for (const id of slow) {
    document.querySelectorAll(`[data-image="${CSS.escape(id)}"]`).forEach((image) => {
      if (image.dataset.state === "deleted") return;
      let note = image.querySelector(".waiting");
      if (!note) {
        note = document.createElement("p");
        note.className = "waiting";
        note.setAttribute("role", "status");
        const after = image.querySelector(".card-status, .status, .name");
        if (after) after.after(note);
        else image.append(note);
      }
      if (note.textContent !== words) note.textContent = words;
    });
  }
}

function waitingWords({ jobs, workers }) {
  if (workers === 0) return "Waiting for a worker: none is running just now. Its thumbnails will be made as soon as one starts; nothing is lost.";
  const line = jobs > 0 ? `${jobs} job${jobs === 1 ? "" : "s"} in the queue` : null;
  const hands = workers > 0 ? `${workers} worker${workers === 1 ? "" : "s"} at work` : null;
  if (line) return `Waiting for a worker: ${[line, hands].filter(Boolean).join(", ")}.`;
  return "Taking longer than usual: a worker is on it.";
}

// Asks the open stream to follow the images added since it opened (all of
// them, in one request per turn); should it not (it ended, or a web server
// behind the same address does not know it), a new stream follows them.
function addToStream() {
  const ids = [...live.adding].filter((id) => !live.streamed.has(id));
  live.adding.clear();
  if (ids.length > 0) tellStream(ids);
}

function tellStream(ids) {
  const source = live.source;
  fetch(`/events/${live.streamName}?ids=${ids.join(",")}`, { method: "POST" })
    .then((response) => {
      if (response.status !== 204) throw new Error(`the stream was not told: ${response.status}`);
      if (live.source !== source) return;
      ids.forEach((id) => live.streamed.add(id));
      // What was written before the stream followed it is found by one look.
      for (const id of ids) {
        for (const figure of live.figures.get(id) ?? []) {
          live.unchecked.delete(figure);
          if (figure.dataset.state === "pending") checkOnce(figure);
        }
      }
    })
    .catch(() => {
      if (live.source !== source) return;
      clearTimeout(live.reopen);
      live.reopen = setTimeout(openStream, 0);
    });
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
  live.streamName = null;
  live.streamed = new Set(ids);
  live.adding.clear();
  // Each connection (the first, and the browser's own after a drop) is a stream
  // of its own name, following the ids of its URL: those added since are told again.
  source.addEventListener("stream", (message) => {
    if (live.source !== source) return;
    live.streamName = JSON.parse(message.data).stream;
    const added = [...live.streamed].filter((id) => !ids.includes(id));
    if (added.length > 0) tellStream(added);
    addToStream();
  });
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
    // The WebP beside it, once a worker wrote it: smaller, for the browsers that show it.
    const webp = /<([^>]+\.webp)>/.exec(response.headers.get("Link") ?? "")?.[1];
    if (webp) figure.dataset.webp = webp;
    if (response.headers.get("X-Image-Warning") === "cut-off") showCutOff(figure.closest("[data-image]"));
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
    figure.closest("[data-image]")?.querySelector(".waiting")?.remove();
    updateStatus(figure.closest("[data-image]"));
  };
  let tries = 0;
  image.onerror = () => {
    // A browser that cannot show WebP, or a WebP that went missing: the baseline file does.
    if (figure.dataset.webp) {
      delete figure.dataset.webp;
      image.src = figure.dataset.thumb;
      return;
    }
    tries += 1;
    if (tries >= IMAGE_LOAD_TRIES) return showFailure(figure, "The thumbnail could not be shown.");
    // A dropped connection, say: try again a little later, bypassing the cache.
    setTimeout(() => {
      image.src = `${figure.dataset.thumb}?try=${tries}`;
    }, 500 * tries);
  };
  // The smaller WebP once a worker wrote it (the baseline file's answer named it), as the server's pages list it.
  image.src = figure.dataset.webp ?? figure.dataset.thumb;
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
export function showDeleted(image) {
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

const CUT_OFF = "This file was cut off: part of the picture is missing (grey in the thumbnails). Upload the whole file again.";

// A thumbnail's answer says whether its file was cut off; one that came by
// push was loaded without asking, so a finished image is asked once.
const asked = new WeakSet();

async function askForWarnings(image) {
  const figure = image.querySelector("[data-thumb]");
  if (!figure || asked.has(image) || image.dataset.cutOff) return;
  asked.add(image);
  try {
    const response = await fetch(figure.dataset.thumb, { method: "HEAD", cache: "no-store" });
    if (response.headers.get("X-Image-Warning") === "cut-off") showCutOff(image);
  } catch {
    // Only a warning: the thumbnails are there either way.
  }
}

// The file ended before its picture did: its thumbnails show what there was. Said once, under its name.
function showCutOff(image) {
  if (!image || image.dataset.cutOff) return;
  image.dataset.cutOff = "true";
  if (image.querySelector(".card-status")) return updateStatus(image);
  if (image.querySelector(".warning")) return;
  const warning = document.createElement("p");
  warning.className = "warning";
  warning.setAttribute("role", "status");
  warning.textContent = CUT_OFF;
  const after = image.querySelector(".status, .name");
  if (after) after.after(warning);
  else image.append(warning);
}

// Says on the page what the thumbnails say one by one.
function updateStatus(image) {
  if (!image) return;
  const figures = [...image.querySelectorAll("[data-thumb]")];
  const cardStatus = image.querySelector(".card-status");
  if (cardStatus) {
    // An upload card: keep its link to the image page.
    // A photo uploaded before keeps saying so: this card follows the image the owner already had.
    const ready = image.dataset.cutOff
      ? "Ready, but the file was cut off: part of the picture is missing. Upload the whole file again. "
      : image.dataset.duplicate
        ? "Ready: you uploaded this photo before, so no copy was made. "
        : "Ready. ";
    const words = image.dataset.state === "failed" ? `Failed: ${image.dataset.reason} ` : ready;
    if (image.dataset.state === "failed" || figures.every((figure) => figure.dataset.state === "ready")) {
      const text = document.createElement("span");
      text.textContent = words;
      if (image.dataset.state === "failed") {
        text.className = "failure";
        text.setAttribute("role", "alert");
      } else {
        if (image.dataset.cutOff) text.className = "cut-off";
        image.dataset.state = "done";
        askForWarnings(image);
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
    askForWarnings(image);
    if (status) status.textContent = "All thumbnails are ready.";
    if (status) drawTimeline(image);
  }
}

// An image page opened while its thumbnails were being made draws the
// image's way once they are there, as the server draws it for a finished
// one: for its owner only, folded.
async function drawTimeline(image) {
  if (!image.dataset.owned) return;
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
  const summary = document.createElement("summary");
  summary.textContent = `How thumbq made it: ${steps[steps.length - 1].at - steps[0].at} ms`;
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
  const drawn = image.querySelector(".timeline");
  if (drawn) drawn.replaceWith(details);
  else image.append(details);
}
