// The console's one script: what server-rendered pages cannot do alone. Loaded from this
// origin only (the CSP forbids inline script); every page works without it.
"use strict";

// New interactions appear on the first page of a listing without a reload: the same listing,
// rendered as rows only, is fetched every few seconds and rows not shown yet are put on top.
function pollInteractions(table) {
  const url = table.dataset.poll;
  const live = document.getElementById("live");
  const tbody = table.tBodies[0];
  async function poll() {
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) return;
      const holder = document.createElement("tbody");
      holder.innerHTML = await response.text(); // server-rendered, escaped HTML of this origin
      const fresh = Array.from(holder.rows).filter(
        (row) => !tbody.querySelector(`tr[data-id="${row.dataset.id}"]`)
      );
      fresh.reverse().forEach((row) => {
        row.classList.add("new");
        tbody.insertBefore(row, tbody.firstChild);
      });
      if (fresh.length && live) live.textContent = `${fresh.length} new interaction(s) added.`;
      const empty = document.getElementById("empty");
      if (fresh.length && empty) empty.remove();
    } catch (error) {
      // The gateway restarting: try again at the next tick.
    }
  }
  setInterval(poll, 3000);
}

// An export run in progress: reload its page until it has finished.
function followRun(element) {
  setTimeout(() => window.location.reload(), 1500);
}

document.addEventListener("DOMContentLoaded", () => {
  const table = document.querySelector("table[data-poll]");
  if (table) pollInteractions(table);
  const running = document.querySelector("[data-running]");
  if (running) followRun(running);
});

// "Count new examples" links of the datasets page: the count is fetched in place.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("a[data-preview]").forEach(async (link) => {
    link.textContent = "counting…";
    try {
      const response = await fetch(link.href, { credentials: "same-origin" });
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const count = page.getElementById("preview-count");
      if (response.ok && count) link.textContent = count.textContent;
      else link.textContent = "Count new examples";
    } catch (error) {
      link.textContent = "Count new examples";
    }
  });
});
