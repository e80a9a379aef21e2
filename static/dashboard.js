// The operators' dashboard (/admin).

// A takedown's notice is shown once: a reload shows the dashboard as it is,
// not the notice again (the page of reasons stays). The numbers, and a
// replay's progress, refresh by themselves.
export function setUpDashboard(main) {
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
