// One file's way to the server, as a resumable upload (tus, at /uploads): a
// dropped connection, a restarted server or a reload of the page costs the
// bytes the server had not stored yet, not the whole file. The protocol is
// tus-js-client's (vendored: static/VENDORED.md), loaded by the pages that upload.
//
// Each upload's URL is kept in localStorage under the file's fingerprint
// (name, type, size, date): the same file picked again after a reload or a
// crash of the tab goes on where it stopped; one the server no longer knows
// (expired, cancelled) starts again from its first byte.

// A transient failure (the network, the server busy or out of room) is tried
// again by itself after each of these waits; the server's stored bytes stay.
const RETRY_DELAYS_MS = [0, 1000, 3000, 5000, 10000];
// Waits longer than this (a daily quota) are left to the person, with a button to try again.
export const MAX_AUTOMATIC_WAIT_MS = 5 * 60 * 1000;

// 409: the upload stands elsewhere than the client thought; 423: another request has it. Both resolve on a retry.
export function transient(status) {
  return status === 0 || status === 408 || status === 409 || status === 423 || status === 429 || status === 507 || status >= 500;
}

// Sends `file`; says how it goes through `on`: `started()` once the server
// made the upload (and gave this browser its key), `progress(sent, total)`,
// `retrying(why)`, then `accepted(image)` or `failed(why, canRetry)`.
// Returns what cancels it: the server then keeps nothing of it.
//
// `bytesWithCreation` sends the bytes with the creation (tus's creation-with-upload): a round
// trip fewer before the server has the file; a creation cut short stands at what arrived, and
// the rest follows. Only for a browser that holds its owner key: otherwise the creation's quick
// answer is what gives it the key that the page's other files wait for.
export function send(file, on, { bytesWithCreation = false } = {}) {
  // The creation, retried after its answer was lost, is answered with the upload it made (a PATCH is safe to repeat by its offset).
  const creationKey = Array.from(crypto.getRandomValues(new Uint8Array(16)), (byte) => byte.toString(16).padStart(2, "0")).join("");
  const upload = new globalThis.tus.Upload(file, {
    endpoint: "/uploads",
    uploadDataDuringCreation: bytesWithCreation,
    metadata: { filename: file.name, filetype: file.type },
    retryDelays: RETRY_DELAYS_MS,
    removeFingerprintOnSuccess: true,
    onBeforeRequest(request) {
      if (request.getMethod() === "POST") request.setHeader("Idempotency-Key", creationKey);
    },
    onShouldRetry(error) {
      const { status, waitMs } = failure(error);
      const retry = transient(status) && waitMs <= MAX_AUTOMATIC_WAIT_MS;
      if (retry) on.retrying(reason(error));
      return retry;
    },
    onUploadUrlAvailable: () => on.started(),
    onProgress: (sent, total) => on.progress(sent, total),
    onSuccess: () => answer(upload.url).then(on.accepted, (why) => on.failed(why, true)),
    onError(error) {
      const { status } = failure(error);
      on.failed(reason(error), transient(status));
    },
  });
  upload.findPreviousUploads().then((previous) => {
    if (previous.length > 0) upload.resumeFromPreviousUpload(previous[0]);
    upload.start();
  });
  return { cancel: () => upload.abort(true).catch(() => {}) };
}

// The image a finished upload became, as `POST /images` would have answered for it.
async function answer(url) {
  for (let tries = 0; ; tries += 1) {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
      const json = await response.json();
      if (response.ok && json.images?.[0]) return json.images[0];
      throw new Error(json.error ?? `The server answered ${response.status}.`);
    } catch (error) {
      if (tries >= RETRY_DELAYS_MS.length) throw error.message ?? "The upload's answer did not arrive.";
      await new Promise((resolve) => setTimeout(resolve, RETRY_DELAYS_MS[tries] || 500));
    }
  }
}

// The status the server answered (0: none came), and how long it asked to wait.
function failure(error) {
  const response = error.originalResponse;
  const status = response?.getStatus() ?? 0;
  const waitMs = Number(response?.getHeader("Retry-After")) * 1000 || 0;
  return { status, waitMs };
}

// What to tell the person: the server's own sentence when it gave one.
function reason(error) {
  try {
    const said = JSON.parse(error.originalResponse?.getBody() ?? "");
    if (said?.error) return said.error;
  } catch {
    // Not JSON: a proxy's error page, say.
  }
  const status = error.originalResponse?.getStatus();
  return status ? `The server answered ${status}.` : "The upload was interrupted.";
}
