// Monitoring: the windows `e2eai monitor` reported (GET /api/monitoring/reports), newest
// first: ROC-AUC of the labelled predictions over time against the reference version's
// holdout figure, the drift share, drift per input per window, and links to every report.

import { api } from "../api.js";
import { chart, color } from "../charts.js";
import { h, notice, page } from "../dom.js";
import { humanize } from "../format.js";

export async function show(view, signal) {
  const { reports } = await api("/api/monitoring/reports", { signal });
  if (signal.aborted) return;
  if (!reports.length) {
    view.replaceChildren(page("Monitoring",
      notice("info", "Monitoring has not produced reports yet. Each `e2eai monitor` pass over stored predictions and their outcomes adds its windows here.")));
    return;
  }
  const oldestFirst = [...reports].reverse();
  const canvas = h("canvas", { role: "img", "aria-label": trendSummary(oldestFirst) });
  view.replaceChildren(page("Monitoring",
    h("section", { class: "card", "aria-labelledby": "trend-title" },
      h("h2", { id: "trend-title" }, "Quality and drift over time"),
      h("div", { class: "chart-box tall" }, canvas)),
    h("section", { class: "card", "aria-labelledby": "windows-title" },
      h("h2", { id: "windows-title" }, "Windows"),
      windowsTable(reports)),
    h("section", { class: "card", "aria-labelledby": "drift-title" },
      h("h2", { id: "drift-title" }, "Drift per input"),
      driftTable(oldestFirst))));
  chart(canvas, trendChart(oldestFirst));
}

const fixed = (value, digits = 3) => (value == null ? "—" : value.toFixed(digits));

function trendSummary(windows) {
  const last = windows[windows.length - 1];
  return `ROC-AUC and drift share over ${windows.length} windows; latest ${last.window}: ROC-AUC ${fixed(last.roc_auc)}, drift share ${fixed(last.drift_share, 2)}`;
}

function windowsTable(reports) {
  return h("table", { class: "windows" },
    h("thead", {}, h("tr", {}, ["Window", "Predictions", "Labelled", "ROC-AUC (95 %)", "Holdout", "Drift share", "Reports"]
      .map((title) => h("th", { scope: "col" }, title)))),
    h("tbody", {}, reports.map((r) => h("tr", { "data-window": r.window },
      h("th", { scope: "row" }, r.window),
      h("td", {}, String(r.rows)),
      h("td", {}, String(r.labelled)),
      h("td", { class: "auc" }, r.roc_auc == null ? "—" : `${fixed(r.roc_auc)} (${fixed(r.roc_auc_low)}–${fixed(r.roc_auc_high)})`),
      h("td", {}, fixed(r.holdout_roc_auc)),
      h("td", { class: "drift-share" }, fixed(r.drift_share, 2)),
      h("td", {}, h("a", { href: r.url }, "window"),
        r.drift_url ? [" · ", h("a", { href: r.drift_url }, "drift (Evidently)")] : null)))));
}

/** Inputs as rows, windows as columns; a drifted cell is marked in words, not colour only. */
function driftTable(windows) {
  const names = [...new Set(windows.flatMap((w) => w.features.map((f) => f.name)))];
  if (!names.length) return h("p", { class: "hint" }, "No window had enough predictions for a drift check yet.");
  return h("div", { class: "table-scroll" }, h("table", { class: "drift" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Input"),
      windows.map((w) => h("th", { scope: "col" }, w.window.slice(0, 10))))),
    h("tbody", {}, names.map((name) => h("tr", {},
      h("th", { scope: "row" }, humanize(name)),
      windows.map((w) => {
        const f = w.features.find((x) => x.name === name);
        if (!f) return h("td", {}, "—");
        return h("td", { class: f.drifted ? "drifted" : "stable", title: `score ${fixed(f.score, 4)}` },
          f.drifted ? "drift" : "·");
      }))))));
}

function trendChart(windows) {
  const labels = windows.map((w) => w.window.slice(0, 10));
  return {
    type: "line",
    data: {
      labels,
      datasets: [
        { label: "ROC-AUC", data: windows.map((w) => w.roc_auc), borderColor: color("slot-stable"), yAxisID: "auc", spanGaps: true },
        { label: "Holdout ROC-AUC", data: windows.map((w) => w.holdout_roc_auc), borderColor: color("muted"), borderDash: [6, 4], pointRadius: 0, yAxisID: "auc", spanGaps: true },
        { label: "Drift share", data: windows.map((w) => w.drift_share), borderColor: color("slot-canary"), yAxisID: "share", spanGaps: true },
      ],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      scales: {
        auc: { position: "left", title: { display: true, text: "ROC-AUC" } },
        share: { position: "right", min: 0, max: 1, grid: { drawOnChartArea: false }, title: { display: true, text: "Drift share" } },
      },
    },
  };
}
