// thumbq's pages work without this script. With it, the home page uploads
// with a card per file and resumable transfers (uploads.js), thumbnails
// appear the moment they exist (live.js), and the dashboard keeps itself
// current (dashboard.js); a delete can be undone in place (trash.js); an
// image's page copies its link (image.js). Each
// module has one job; there is no bundler.

import { setUpDashboard } from "./dashboard.js";
import { setUpImagePage } from "./image.js";
import { follow, live, lookAgainWhenShown } from "./live.js";
import { setUpDeleteForms } from "./trash.js";
import { setUpUploads } from "./uploads.js";

// A delete's or an Undo's notice is shown once: a reload shows the page as it is.
const params = new URLSearchParams(location.search);
if (params.has("deleted") || params.has("restored")) {
  ["deleted", "restored"].forEach((name) => params.delete(name));
  history.replaceState(null, "", location.pathname + (params.size ? `?${params}` : ""));
}
document.querySelectorAll("form.upload").forEach(setUpUploads);
setUpDeleteForms(document);
document.querySelectorAll("main[data-dashboard]").forEach(setUpDashboard);
document.querySelectorAll(".image-page").forEach(setUpImagePage);
follow(document);
lookAgainWhenShown();
// How the page follows its thumbnails, for the browser tests (and whoever looks in the console).
window.thumbqLive = live;
