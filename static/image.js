// An image's page, besides its thumbnails: its link copied in one press, and
// times in the reader's own zone (the server writes them in UTC).

export function setUpImagePage(section) {
  section.querySelectorAll("time[data-local]").forEach((time) => {
    const date = new Date(time.dateTime);
    if (!Number.isNaN(date.getTime())) time.textContent = date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  });
  const copy = section.querySelector("button.copy-link");
  if (!copy || !navigator.clipboard) return;
  copy.hidden = false;
  copy.addEventListener("click", async () => {
    const link = new URL(copy.dataset.link, location.href).href;
    try {
      await navigator.clipboard.writeText(link);
      copy.textContent = "Link copied";
    } catch {
      // Refused (no permission, or not a secure page): the link, selected, to copy by hand.
      const field = document.createElement("input");
      field.readOnly = true;
      field.value = link;
      field.setAttribute("aria-label", "The image's link");
      copy.replaceWith(field);
      field.select();
    }
  });
}
