// History: stored predictions (GET /api/predictions), filtered and paged, each with its
// outcome once known, or buttons to record it (POST .../feedback, admin token). A
// multi-class task's rows show the photo's thumbnail or the message, the predicted class, and
// a choice of class to record.

import { ApiError, api, getTask } from "../api.js";
import { h, notice, page } from "../dom.js";
import { humanize, modelName, outcomeName, percent, when } from "../format.js";

const PAGE_SIZE = 20;
// Kept across visits: coming back to History shows the same filters and page.
const state = {
  filters: { model_version: "", slot: "", has_feedback: "", since: "", until: "" },
  cursors: [null],
};

export async function show(view, signal) {
  const task = await getTask();
  if (signal.aborted) return;
  const results = h("div", { class: "history-results", "aria-live": "polite" });
  const reload = () => load(task, results);
  view.replaceChildren(page("History",
    h("p", { class: "lead" }, "Every prediction the app answered, newest first. Record the actual outcome once it is known."),
    filterForm(reload),
    results));
  await load(task, results, signal);
}

function filterForm(reload) {
  const { filters } = state;
  const versions = h("datalist", { id: "model-versions" });
  api("/api/models").then(({ models }) => versions.append(...models.map((m) => h("option", { value: m.version })))).catch(() => {});
  const field = (name, label, control) => h("div", { class: "field" }, h("label", { for: `filter-${name}` }, label), control);
  const select = (name, options) => h("select", { id: `filter-${name}`, name },
    options.map(([value, text]) => h("option", { value, selected: filters[name] === value }, text)));
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter predictions" },
    field("model_version", "Model version",
      h("input", { id: "filter-model_version", name: "model_version", type: "text", inputmode: "numeric", list: "model-versions", value: filters.model_version, autocomplete: "off" })),
    versions,
    field("slot", "Slot", select("slot", [["", "Any"], ["stable", "Stable"], ["canary", "Canary"]])),
    field("has_feedback", "Outcome", select("has_feedback", [["", "Any"], ["true", "Recorded"], ["false", "Not recorded yet"]])),
    field("since", "From", h("input", { id: "filter-since", name: "since", type: "datetime-local", value: filters.since })),
    field("until", "Until", h("input", { id: "filter-until", name: "until", type: "datetime-local", value: filters.until })),
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "primary" }, "Apply"),
      h("button", { type: "reset" }, "Clear")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    for (const name of Object.keys(filters)) filters[name] = form.elements[name].value.trim();
    state.cursors = [null];
    reload();
  });
  form.addEventListener("reset", () => {
    // After the browser has reset the controls to their initial values: empty them.
    setTimeout(() => {
      for (const name of Object.keys(filters)) form.elements[name].value = filters[name] = "";
      state.cursors = [null];
      reload();
    });
  });
  return form;
}

/** datetime-local is the browser's local time; the API wants an aware instant. */
function instant(local) {
  return local ? new Date(local).toISOString() : undefined;
}

async function load(task, results, signal) {
  const { filters, cursors } = state;
  results.replaceChildren(h("p", { class: "loading", role: "status" }, "Loading…"));
  let data;
  try {
    data = await api("/api/predictions", {
      signal,
      query: {
        model_version: filters.model_version,
        slot: filters.slot,
        has_feedback: filters.has_feedback,
        since: instant(filters.since),
        until: instant(filters.until),
        limit: PAGE_SIZE,
        cursor: cursors.at(-1),
      },
    });
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    results.replaceChildren(notice("error", error.message));
    return;
  }
  if (!data.items.length) {
    results.replaceChildren(notice("info", cursors.length > 1 || Object.values(filters).some(Boolean)
      ? "No predictions match these filters."
      : "No predictions yet: make one on the Predict page."));
    return;
  }
  const first = (cursors.length - 1) * PAGE_SIZE + 1;
  const reload = () => load(task, results);
  results.replaceChildren(
    h("p", { class: "count" }, `Showing ${first}–${first + data.items.length - 1} of ${data.total}`),
    h("table", { class: "history" },
      h("caption", { class: "visually-hidden" }, "Predictions, newest first"),
      h("thead", {}, h("tr", {}, ["Time", "Request", task.classes ? "Class" : "Probability", "Model", "Outcome"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, data.items.map((item) => row(task, item)))),
    h("nav", { class: "pager", "aria-label": "Pages of predictions" },
      h("button", {
        type: "button", disabled: cursors.length === 1,
        onclick: () => { cursors.pop(); reload(); },
      }, "← Newer"),
      h("button", {
        type: "button", disabled: !data.next_cursor,
        onclick: () => { cursors.push(data.next_cursor); reload(); },
      }, "Older →")));
}

function row(task, item) {
  const outcome = h("td", { class: "outcome", "data-label": "Outcome" });
  showOutcome(task, item, outcome);
  return h("tr", { "data-prediction-id": item.id },
    h("td", { "data-label": "Time" }, when(item.created_at)),
    h("td", { "data-label": "Request", class: "request" }, requestView(task, item)),
    task.classes
      ? h("td", { "data-label": "Class" }, h("strong", { class: "predicted-class-cell" }, item.predicted_class), " ", percent(item.probability))
      : h("td", { "data-label": "Probability" }, percent(item.probability), " ",
        h("span", { class: `band band-${item.band}` }, item.band)),
    h("td", { "data-label": "Model" }, modelName(item.model_version, item.slot)),
    outcome);
}

/** What was asked: the photo as the model read it, the message, or the request fields. */
function requestView(task, item) {
  const kind = task.input?.kind;
  const value = item.request?.[task.input?.field];
  if (kind === "image") {
    if (!value?.b64) return "—";
    const upload = value.upload ?? {};
    return h("img", {
      class: "thumbnail", src: `data:image/png;base64,${value.b64}`, width: 56, height: 56,
      alt: `The photo (${upload.format ?? "image"}, ${upload.width ?? "?"}×${upload.height ?? "?"} pixels)`,
    });
  }
  if (kind === "text") return h("span", { class: "request-message" }, String(value ?? "—"));
  return task.fields.map((f) => h("span", { class: "request-field" },
    h("span", { class: "request-name" }, humanize(f.name)), " ", String(item.request?.[f.name] ?? "—")));
}

function showOutcome(task, item, cell, message = null) {
  const messages = h("div", { class: "outcome-messages" }, message);
  if (item.feedback) {
    const { label, source, created_at: at } = item.feedback;
    cell.replaceChildren(
      h("span", { class: task.classes ? "outcome-known" : `outcome-known outcome-${label}` }, outcomeName(task, label)),
      h("span", { class: "hint" }, ` (${source}, `, when(at), ")"),
      messages);
    return;
  }
  const status = h("span", { class: "outcome-status", role: "status" });
  const at = new Date(item.created_at).toLocaleString();
  if (task.classes) {
    // Many classes: choose one, then record it.
    const id = `outcome-${item.id}`;
    const choice = h("select", { id, name: "label" },
      task.classes.map((name, index) => h("option", { value: index, selected: index === item.class_index }, name)));
    const buttons = [choice];
    buttons.push(h("button", {
      type: "button", class: "outcome-button",
      onclick: () => record(task, item, Number(choice.value), { cell, buttons, status, messages }),
    }, "Record"));
    cell.replaceChildren(
      h("div", { class: "outcome-buttons", role: "group", "aria-label": `Outcome of the prediction of ${at}` },
        h("label", { for: id, class: "visually-hidden" }, `Actual class of the prediction of ${at}`),
        buttons),
      status, messages);
    return;
  }
  const buttons = [1, 0].map((label) => h("button", {
    type: "button",
    class: `outcome-button outcome-${label}`,
    onclick: () => record(task, item, label, { cell, buttons, status, messages }),
  }, outcomeName(task, label)));
  cell.replaceChildren(
    h("div", { class: "outcome-buttons", role: "group", "aria-label": `Outcome of the prediction of ${at}` }, buttons),
    status, messages);
}

async function record(task, item, label, { cell, buttons, status, messages }) {
  const url = `/api/predictions/${encodeURIComponent(item.id)}`;
  for (const button of buttons) button.disabled = true;
  status.textContent = "Recording…";
  messages.replaceChildren();
  try {
    const answer = await api(`${url}/feedback`, { method: "POST", admin: true, body: { label, source: "ui" } });
    const stored = await api(url);
    showOutcome(task, stored, cell, answer.status === "duplicate" ? notice("info", "It was already recorded.") : null);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    for (const button of buttons) button.disabled = false;
    status.textContent = "";
    if (error.status === 409) {
      // Another label was recorded first: show it, with the API's words naming both.
      const stored = await api(url).catch(() => item);
      showOutcome(task, stored, cell, notice("error", error.message));
      return;
    }
    messages.replaceChildren(notice("error", error.message));
  }
}
