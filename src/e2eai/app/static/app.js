// The single-page app: hash routes → pages, and the admin token form in the header.

import { adminToken, getTask } from "./api.js";
import { h, notice, page } from "./dom.js";
import { destroyCharts } from "./charts.js";
import * as predict from "./pages/predict.js";
import * as historyPage from "./pages/history.js";
import * as models from "./pages/models.js";
import * as monitoring from "./pages/monitoring.js";

const ROUTES = {
  "#/predict": predict,
  "#/history": historyPage,
  "#/models": models,
  "#/monitoring": monitoring,
};
const DEFAULT_ROUTE = "#/predict";
const view = document.getElementById("view");
let navigation = new AbortController();

async function route() {
  const hash = ROUTES[location.hash] ? location.hash : DEFAULT_ROUTE;
  navigation.abort();
  navigation = new AbortController();
  const { signal } = navigation;
  for (const link of document.querySelectorAll(".nav a")) {
    if (link.getAttribute("href") === hash) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  destroyCharts();
  view.replaceChildren(h("p", { class: "loading", role: "status" }, "Loading…"));
  try {
    await ROUTES[hash].show(view, signal);
  } catch (error) {
    if (signal.aborted || error.name === "AbortError") return;
    view.replaceChildren(page("Something went wrong",
      notice("error", error.message),
      h("button", { type: "button", onclick: route }, "Try again")));
  }
  if (!signal.aborted && document.activeElement?.closest?.(".nav")) {
    // Arriving by the nav (mouse or keyboard): move focus to the new page's heading.
    document.getElementById("page-title")?.focus();
  }
}

function showTokenState(status) {
  status.textContent = adminToken.get()
    ? "Saved for this tab."
    : "Not set: needed to record outcomes and change the rollout.";
}

function setUpTokenForm() {
  const form = document.getElementById("token-form");
  const input = document.getElementById("admin-token");
  const status = document.getElementById("admin-token-status");
  input.value = adminToken.get();
  showTokenState(status);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    adminToken.set(input.value.trim());
    showTokenState(status);
  });
  document.getElementById("admin-token-clear").addEventListener("click", () => {
    input.value = "";
    adminToken.set("");
    showTokenState(status);
  });
}

setUpTokenForm();
getTask().then((task) => {
  document.getElementById("task-name").textContent = task.name;
}).catch(() => {});
window.addEventListener("hashchange", route);
if (!ROUTES[location.hash]) history.replaceState(null, "", DEFAULT_ROUTE);
route();
