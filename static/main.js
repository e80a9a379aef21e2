// thumbq's pages work without this script. With it, the home page uploads
// with a card per file and resumable transfers (uploads.js), thumbnails
// appear the moment they exist (live.js), and the dashboard keeps itself
// current (dashboard.js). Each module has one job; there is no bundler.

import { setUpDashboard } from "./dashboard.js";
import { follow, live } from "./live.js";
import { setUpUploads } from "./uploads.js";

document.querySelectorAll("form.upload").forEach(setUpUploads);
document.querySelectorAll("main[data-dashboard]").forEach(setUpDashboard);
follow(document);
// How the page follows its thumbnails, for the browser tests (and whoever looks in the console).
window.thumbqLive = live;
