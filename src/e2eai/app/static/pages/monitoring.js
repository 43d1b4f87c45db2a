// Monitoring: the reports monitoring has written (GET /api/monitoring/reports), newest
// first, each a link to its HTML; an empty state until monitoring has run.

import { api } from "../api.js";
import { h, notice, page } from "../dom.js";
import { when } from "../format.js";

export async function show(view, signal) {
  const { reports } = await api("/api/monitoring/reports", { signal });
  if (signal.aborted) return;
  view.replaceChildren(page("Monitoring",
    reports.length
      ? h("ul", { class: "reports" }, reports.map((r) => h("li", {},
        h("a", { href: r.url }, r.window), " ", h("span", { class: "hint" }, "written ", when(r.created_at)))))
      : notice("info", "Monitoring has not produced reports yet. Each monitoring run over stored predictions and their outcomes adds its report here.")));
}
