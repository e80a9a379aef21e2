// thumbq's pages work without this script; with it, thumbnails appear as soon
// as a worker writes them, without reloading the page.
"use strict";

// Poll soon after the upload (small images are ready in tens of milliseconds),
// then back off. The server's Retry-After caps the wait, so it sets the pace.
const FIRST_DELAY_MS = 150;
const GROWTH = 1.6;
const MAX_DELAY_MS = 4000;
const GIVE_UP_AFTER_MS = 15 * 60 * 1000;

function watchThumbnail(figure) {
  const url = figure.dataset.thumb;
  const started = Date.now();
  let delay = FIRST_DELAY_MS;

  async function poll() {
    let response = null;
    try {
      response = await fetch(url, { method: "HEAD", cache: "no-store" });
    } catch {
      // The network or the server is away for a moment: keep trying.
    }
    if (response && response.ok) return showThumbnail(figure, url);
    if (response && response.status === 410) return showFailure(figure, await failureReason(url));
    if (response && response.status === 404 && !response.headers.has("Retry-After")) {
      return showFailure(figure, "This image no longer exists.");
    }
    if (Date.now() - started > GIVE_UP_AFTER_MS) {
      return showFailure(figure, "This is taking much longer than it should. Reload the page to try again.");
    }
    const hintMs = Number(response?.headers.get("Retry-After")) * 1000;
    delay = Math.min(delay * GROWTH, hintMs > 0 ? hintMs : MAX_DELAY_MS, MAX_DELAY_MS);
    setTimeout(poll, delay);
  }
  setTimeout(poll, delay);
}

async function failureReason(url) {
  try {
    const text = (await (await fetch(url, { cache: "no-store" })).text()).trim();
    return text || "The image could not be processed.";
  } catch {
    return "The image could not be processed.";
  }
}

function showThumbnail(figure, url) {
  const image = new Image();
  image.alt = `${figure.querySelector("figcaption")?.textContent ?? "thumbnail"}`;
  image.onload = () => {
    figure.querySelector(".frame").replaceChildren(image);
    figure.dataset.state = "ready";
    updateStatus(figure.closest("[data-image]"));
  };
  image.onerror = () => showFailure(figure, "The thumbnail could not be shown.");
  image.src = url;
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
}

// Says on the page what the thumbnails say one by one.
function updateStatus(image) {
  if (!image) return;
  const figures = [...image.querySelectorAll("[data-thumb]")];
  const status = image.querySelector(".status");
  if (image.dataset.state === "failed") {
    const message = `This image could not be processed: ${image.dataset.reason.replace(/^No thumbnail will be made: /, "")}`;
    let alert = image.querySelector(".failure");
    if (!alert) {
      alert = document.createElement(status ? "strong" : "p");
      alert.className = "failure";
      alert.setAttribute("role", "alert");
      (status ?? image).prepend(alert);
      if (status) status.replaceChildren(alert);
    }
    alert.textContent = message;
  } else if (figures.every((figure) => figure.dataset.state === "ready")) {
    image.dataset.state = "done";
    if (status) status.textContent = "All thumbnails are ready.";
  }
}

// Refuses files the server would refuse, before sending a byte.
function checkUploadForm(form) {
  const input = form.querySelector("input[type=file]");
  const maxBytes = Number(input.dataset.maxBytes);
  form.addEventListener("submit", (event) => {
    const tooLarge = [...input.files].filter((file) => file.size > maxBytes);
    let message = form.querySelector(".failure");
    if (tooLarge.length === 0) return message?.remove();
    event.preventDefault();
    if (!message) {
      message = document.createElement("p");
      message.className = "failure";
      message.setAttribute("role", "alert");
      form.append(message);
    }
    message.textContent = `Too large: ${tooLarge.map((file) => file.name).join(", ")}.`;
  });
}

document.querySelectorAll("[data-thumb][data-state=pending]").forEach(watchThumbnail);
document.querySelectorAll("form.upload").forEach(checkUploadForm);
