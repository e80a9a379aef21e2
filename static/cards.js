// A card per file chosen on the home page: its name, progress and local
// preview while it uploads, then its small thumbnail, a link and a delete
// button once the server has it, or why it failed.

import { follow } from "./live.js";
import { deleteWithUndo } from "./trash.js";

// What a browser can show itself, for the preview while the upload goes (not HEIC or JPEG XL in most).
const PREVIEWABLE_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp", "image/avif"];

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

export function newCard(file) {
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
  } else {
    // A HEIC, say: the browser cannot show it, the server's thumbnail will.
    const kind = file.name.includes(".") ? file.name.split(".").pop().toUpperCase() : "This file";
    const placeholder = document.createElement("span");
    placeholder.className = "placeholder";
    placeholder.textContent = `${kind}: its picture comes with its thumbnail`;
    preview.append(placeholder);
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
  card.dataset.state = "waiting";
  card.dataset.bytes = String(file.size);
  card.dataset.sent = "0";
  card.append(preview, name, progress, status, remove);
  return card;
}

export function showAccepted(card, image, busy) {
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
    if (!busy()) return;
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
  const name = card.querySelector(".name").textContent;
  button.setAttribute("aria-label", `Delete ${name}`);
  const undoSecs = Number(document.querySelector("form.upload")?.dataset.undoSecs ?? 0);
  button.addEventListener("click", () => deleteWithUndo(card, { page, name, undoSecs, button }));
  return button;
}

export function setStatus(card, message) {
  card.querySelector(".card-status").textContent = message;
}

// A failed card says why. A transient failure (`retry` given) offers "Try again";
// a file refused for what it is offers only "Remove": trying again would fail again.
export function setCardError(card, message, retry) {
  card.dataset.state = "failed";
  const status = card.querySelector(".card-status");
  const text = document.createElement("span");
  text.className = "failure";
  text.setAttribute("role", "alert");
  text.textContent = message;
  status.replaceChildren(text);
  if (retry) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "retry";
    button.textContent = "Try again";
    button.addEventListener("click", retry);
    status.append(" ", button);
  }
}
