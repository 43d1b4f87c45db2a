// Monitoring: the windows `e2eai monitor` reported (GET /api/monitoring/reports), newest
// first: ROC-AUC of the labelled predictions (accuracy for image and text tasks) over time
// against the reference version's holdout figure, the drift share, drift per input (or per
// image/text statistic) per window, and links to every report.

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
  const m = metricOf(reports);
  const canvas = h("canvas", { role: "img", "aria-label": trendSummary(oldestFirst, m) });
  view.replaceChildren(page("Monitoring",
    h("section", { class: "card", "aria-labelledby": "trend-title" },
      h("h2", { id: "trend-title" }, "Quality and drift over time"),
      h("div", { class: "chart-box tall" }, canvas)),
    h("section", { class: "card", "aria-labelledby": "windows-title" },
      h("h2", { id: "windows-title" }, "Windows"),
      windowsTable(reports, m)),
    h("section", { class: "card", "aria-labelledby": "drift-title" },
      h("h2", { id: "drift-title" }, "Drift per input"),
      driftTable(oldestFirst))));
  chart(canvas, trendChart(oldestFirst, m));
}

const fixed = (value, digits = 3) => (value == null ? "—" : value.toFixed(digits));

/** The quality figure the windows carry: accuracy (multi-class tasks) or ROC-AUC. */
function metricOf(reports) {
  return reports.some((r) => r.accuracy != null)
    ? { title: "Accuracy", value: "accuracy", low: "accuracy_low", high: "accuracy_high", holdout: "holdout_accuracy" }
    : { title: "ROC-AUC", value: "roc_auc", low: "roc_auc_low", high: "roc_auc_high", holdout: "holdout_roc_auc" };
}

function trendSummary(windows, m) {
  const last = windows[windows.length - 1];
  return `${m.title} and drift share over ${windows.length} windows; latest ${last.window}: ${m.title} ${fixed(last[m.value])}, drift share ${fixed(last.drift_share, 2)}`;
}

function windowsTable(reports, m) {
  return h("table", { class: "windows" },
    h("thead", {}, h("tr", {}, ["Window", "Predictions", "Labelled", `${m.title} (95 %)`, "Holdout", "Drift share", "Reports"]
      .map((title) => h("th", { scope: "col" }, title)))),
    h("tbody", {}, reports.map((r) => h("tr", { "data-window": r.window },
      h("th", { scope: "row" }, r.window),
      h("td", {}, String(r.rows)),
      h("td", {}, String(r.labelled)),
      h("td", { class: "auc" }, r[m.value] == null ? "—" : `${fixed(r[m.value])} (${fixed(r[m.low])}–${fixed(r[m.high])})`),
      h("td", {}, fixed(r[m.holdout])),
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

function trendChart(windows, m) {
  const labels = windows.map((w) => w.window.slice(0, 10));
  return {
    type: "line",
    data: {
      labels,
      datasets: [
        { label: m.title, data: windows.map((w) => w[m.value]), borderColor: color("slot-stable"), yAxisID: "auc", spanGaps: true },
        { label: `Holdout ${m.title}`, data: windows.map((w) => w[m.holdout]), borderColor: color("muted"), borderDash: [6, 4], pointRadius: 0, yAxisID: "auc", spanGaps: true },
        { label: "Drift share", data: windows.map((w) => w.drift_share), borderColor: color("slot-canary"), yAxisID: "share", spanGaps: true },
      ],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      scales: {
        auc: { position: "left", title: { display: true, text: m.title } },
        share: { position: "right", min: 0, max: 1, grid: { drawOnChartArea: false }, title: { display: true, text: "Drift share" } },
      },
    },
  };
}
