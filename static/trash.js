// Deleting with a way back. An owner's delete puts the image in the server's
// trash for a while (the delete form's data-undo-secs): the item becomes
// "Deleted “name”. Undo" for that long, and Undo puts it back as it was,
// buttons and all. Leaving the page loses nothing: the trash is the server's,
// and the home page offers Undo too after a delete without this script.

import { follow, showDeleted } from "./live.js";

// Undo goes this long before the server's time is up: a click on it is never too late.
const MARGIN_MS = 2000;

// Deletes the image of `item` (its page is `page`, its name `name`); `button` is the one pressed.
export async function deleteWithUndo(item, { page, name, undoSecs, button }) {
  button.disabled = true;
  item.querySelector(".delete-problem")?.remove();
  let response;
  try {
    response = await fetch(page, { method: "DELETE" });
  } catch {
    return notDeleted(button, "Not deleted: the connection failed.");
  }
  button.disabled = false;
  if (response.status === 410 || (response.status === 204 && !(undoSecs > 0))) {
    showDeleted(item);
    // The button pressed is gone: the keyboard's place is the words that say why, not the page's top.
    const said = item.querySelector(".card-status, .status") ?? item;
    said.tabIndex = -1;
    said.focus();
    return;
  }
  if (response.status !== 204) {
    const answer = await response.json().catch(() => null);
    return notDeleted(button, `Not deleted: ${answer?.error ?? `the server answered ${response.status}.`}`);
  }
  putInTrash(item, page, name, undoSecs);
}

// The image is still there: say why below the button, and leave the item as it was.
function notDeleted(button, message) {
  const problem = document.createElement("p");
  problem.className = "failure delete-problem";
  problem.setAttribute("role", "alert");
  problem.textContent = message;
  (button.closest("form") ?? button).after(problem);
  button.disabled = false;
}

function putInTrash(item, page, name, undoSecs) {
  const kept = [...item.childNodes];
  const state = item.dataset.state;
  // "deleted" to everything that counts the page's images; "trashed" to this module.
  item.dataset.state = "deleted";
  item.dataset.trashed = "true";
  const bar = document.createElement("p");
  bar.className = "undo";
  bar.setAttribute("role", "status");
  const words = document.createElement("span");
  words.textContent = `Deleted “${name}”.`;
  const undo = document.createElement("button");
  undo.type = "button";
  undo.textContent = "Undo";
  undo.setAttribute("aria-label", `Undo deleting ${name}`);
  bar.append(words, " ", undo);
  item.replaceChildren(bar);
  // Keyboard users stay where they were, on the way back.
  undo.focus();
  const expiry = setTimeout(() => {
    undo.remove();
    delete item.dataset.trashed;
  }, Math.max(undoSecs * 1000 - MARGIN_MS, 0));
  undo.addEventListener("click", async () => {
    undo.disabled = true;
    try {
      const response = await fetch(`${page}/restore`, { method: "POST", headers: { Accept: "application/json" } });
      if (response.status === 204) {
        clearTimeout(expiry);
        item.replaceChildren(...kept);
        item.dataset.state = state;
        delete item.dataset.trashed;
        // Thumbnails made meanwhile were kept from the page (410 while in the trash): look again.
        follow(item);
        (item.querySelector("form.delete button, button.delete") ?? item).focus();
        return;
      }
      const answer = await response.json().catch(() => null);
      words.textContent = `Not restored: ${answer?.error ?? `the server answered ${response.status}.`}`;
      if (response.status === 410) {
        clearTimeout(expiry);
        undo.remove();
        return;
      }
    } catch {
      words.textContent = `Not restored yet: the connection failed. Try again.`;
    }
    undo.disabled = false;
  });
}

// The pages' delete forms (the home page's list, a batch, an image's page)
// delete in place, with Undo, instead of leaving the page.
export function setUpDeleteForms(root) {
  root.addEventListener("submit", (event) => {
    const form = event.target.closest("form.delete");
    const item = form?.closest("[data-image]");
    if (!item) return;
    event.preventDefault();
    const page = `/images/${item.dataset.image}`;
    deleteWithUndo(item, { page, name: form.dataset.name, undoSecs: Number(form.dataset.undoSecs), button: form.querySelector("button") });
  });
}
