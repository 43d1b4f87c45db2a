// Models: what serves now (GET /api/rollout: the canary split, health, the decisions with
// their reasons), the rollout actions (admin token), and every registered version
// (GET /api/models: stage, metrics, lineage, stage history).

import { ApiError, api } from "../api.js";
import { chart, color } from "../charts.js";
import { definitions, h, notice, page } from "../dom.js";
import { humanize, when } from "../format.js";

export async function show(view, signal) {
  const [models, rollout] = await Promise.allSettled([
    api("/api/models", { signal }),
    api("/api/rollout", { signal }),
  ]);
  if (signal.aborted) return;
  const versions = models.status === "fulfilled" ? models.value.models : [];
  const split = rollout.status === "fulfilled" ? rolloutView(rollout.value) : { element: notice("error", rollout.reason.message) };
  view.replaceChildren(page("Models",
    h("section", { class: "card", "aria-labelledby": "rollout-title" },
      h("h2", { id: "rollout-title" }, "Rollout"),
      split.element),
    rollout.status === "fulfilled" && rollout.value.serving
      ? actionsView(rollout.value, versions, () => show(view, signal)) : null,
    h("section", { class: "card", "aria-labelledby": "versions-title" },
      h("h2", { id: "versions-title" }, "Versions"),
      models.status === "fulfilled" ? versionsView(versions) : notice("error", models.reason.message))));
  split.draw?.();
}

function slotsOf(rollout) {
  return ["stable", "canary"].filter((name) => rollout[name]).map((name) => ({ name, ...rollout[name] }));
}

function rolloutView(rollout) {
  if (!rollout.serving) {
    return { element: notice("info", "Nothing is being served: start serving a model, then come back.") };
  }
  const slots = slotsOf(rollout);
  const summary = slots.map((s) => `${s.name} v${s.version} ${s.weight} %`).join(", ");
  const canvas = h("canvas", { role: "img", "aria-label": `Traffic split: ${summary}` });
  const element = h("div", {},
    rollout.endpoint ? h("p", {}, "Endpoint ", h("code", {}, rollout.endpoint)) : null,
    slots.length
      ? h("figure", { class: "split" },
        h("div", { class: "chart-box" }, canvas),
        h("figcaption", {},
          h("ul", { class: "slots" }, slots.map((s) => h("li", { class: `slot slot-${s.name}`, "data-slot": s.name },
            h("span", { class: "slot-name" }, humanize(s.name)), " ",
            h("span", { class: "slot-version" }, `v${s.version}`), " ",
            h("strong", { class: "slot-weight" }, `${s.weight} %`), " ",
            h("span", { class: `health ${s.healthy ? "health-ok" : "health-bad"}` }, s.healthy ? "healthy" : "unhealthy"))))))
      : notice("info", "The serving endpoint does not report its split."),
    h("h3", {}, "Decisions"),
    rollout.decisions.length
      ? h("ol", { class: "timeline" }, [...rollout.decisions].reverse().map((d) => h("li", {},
        when(d.decided_at), " ",
        h("strong", { class: "decision-action" }, humanize(d.action)), " ",
        h("span", { class: "decision-weights" }, `canary ${d.weight_before} % → ${d.weight_after} %`),
        h("p", { class: "decision-reason" }, d.reason),
        evidenceView(d.evidence))))
      : h("p", { class: "hint" }, "No canary decisions yet."));
  const draw = () => slots.length && chart(canvas, splitChart(slots));
  return { element, draw };
}

/** A decision's checks, when the API sends them ({metric, test, stable, canary, verdict…}). */
function evidenceView(evidence) {
  if (!evidence?.length) return null;
  const number = (value) => (value == null ? "—" : Number(value.toPrecision(4)));
  return h("details", {}, h("summary", {}, `Evidence (${evidence.length} checks)`),
    h("ul", { class: "evidence" }, evidence.map((e) => h("li", {},
      h("strong", {}, e.metric), `: stable ${number(e.stable)} (n=${e.n_stable}) vs canary ${number(e.canary)} (n=${e.n_canary})`,
      e.p_value == null ? "" : `, ${e.test} p=${number(e.p_value)}`,
      ` → ${e.verdict}`, e.note ? ` (${e.note})` : ""))));
}

function splitChart(slots) {
  return {
    type: "bar",
    data: {
      labels: ["Traffic"],
      datasets: slots.map((s) => ({
        label: `${humanize(s.name)} v${s.version}`,
        data: [s.weight],
        backgroundColor: color(`slot-${s.name}`),
      })),
    },
    options: {
      indexAxis: "y",
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      scales: {
        x: { stacked: true, min: 0, max: 100, ticks: { callback: (value) => `${value} %` } },
        y: { stacked: true, display: false },
      },
      plugins: {
        legend: { position: "bottom" },
        tooltip: { callbacks: { label: (context) => `${context.dataset.label}: ${context.parsed.x} %` } },
      },
    },
  };
}

function actionsView(rollout, versions, refresh) {
  const status = h("div", { class: "form-status", "aria-live": "polite" });
  const run = async (form, path, body, busy) => {
    const buttons = [...form.closest("section").querySelectorAll("button")];
    for (const button of buttons) button.disabled = true;
    status.replaceChildren(notice("info", busy));
    try {
      await api(path, { method: "POST", admin: true, body });
      await refresh();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      status.replaceChildren(notice("error", error.message));
      for (const button of buttons) button.disabled = false;
    }
  };
  const candidates = versions.filter((v) => String(v.version) !== rollout.stable?.version);
  const deploy = h("form", { class: "inline-form", "aria-label": "Deploy a canary" },
    h("div", { class: "field" }, h("label", { for: "canary-version" }, "Version"),
      h("select", { id: "canary-version", name: "version", required: true },
        candidates.map((v) => h("option", { value: v.version }, `v${v.version} (${v.stage})`)))),
    h("div", { class: "field" }, h("label", { for: "canary-percent" }, "Traffic to the canary (%)"),
      h("input", { id: "canary-percent", name: "percent", type: "number", min: 1, max: 100, step: 1, value: 10, required: true })),
    h("div", { class: "field field-wide" }, h("label", { for: "canary-reason" }, "Reason"),
      h("input", { id: "canary-reason", name: "reason", type: "text", maxlength: 500 })),
    h("div", { class: "actions" }, h("button", { type: "submit", disabled: !candidates.length || Boolean(rollout.canary) }, "Deploy canary")));
  deploy.addEventListener("submit", (event) => {
    event.preventDefault();
    const percent = Number(deploy.elements.percent.value);
    if (!Number.isInteger(percent) || percent < 1 || percent > 100) {
      status.replaceChildren(notice("error", "Traffic to the canary: a whole number from 1 to 100."));
      deploy.elements.percent.focus();
      return;
    }
    run(deploy, "/api/rollout/canary", {
      version: Number(deploy.elements.version.value), percent, reason: deploy.elements.reason.value.trim(),
    }, "Deploying the canary (its predictor is starting)…");
  });
  const decide = h("form", { class: "inline-form", "aria-label": "Promote or roll back the canary" },
    h("div", { class: "field field-wide" }, h("label", { for: "decision-reason" }, "Reason for promoting or rolling back"),
      h("input", { id: "decision-reason", name: "reason", type: "text", maxlength: 500 })),
    h("div", { class: "actions" },
      h("button", { type: "submit", name: "promote", disabled: !rollout.canary }, "Promote canary"),
      h("button", { type: "button", name: "rollback", disabled: !rollout.canary, onclick: () => run(decide, "/api/rollout/rollback", { reason: decide.elements.reason.value.trim() }, "Rolling back…") }, "Roll back")));
  decide.addEventListener("submit", (event) => {
    event.preventDefault();
    run(decide, "/api/rollout/promote", { reason: decide.elements.reason.value.trim() }, "Promoting…");
  });
  return h("section", { class: "card", "aria-labelledby": "actions-title" },
    h("h2", { id: "actions-title" }, "Rollout actions"),
    h("p", { class: "hint" }, "These need the admin token; each goes to the audit log with who and why."),
    deploy, decide, status);
}

function versionsView(versions) {
  if (!versions.length) return notice("info", "No versions registered yet: train and register a model first.");
  return h("table", { class: "versions" },
    h("thead", {}, h("tr", {}, ["Version", "Stage", "Family", "Metrics", "Registered", "Lineage"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, versions.map((v) => h("tr", { "data-version": v.version },
      h("td", { "data-label": "Version" }, `v${v.version}`),
      h("td", { "data-label": "Stage" }, h("span", { class: `stage stage-${v.stage}` }, v.stage)),
      h("td", { "data-label": "Family" }, v.family),
      h("td", { "data-label": "Metrics" }, definitions(rounded(v.metrics))),
      h("td", { "data-label": "Registered" }, when(v.created_at)),
      h("td", { "data-label": "Lineage" },
        h("details", {}, h("summary", {}, "Lineage"), definitions(v.lineage)),
        h("details", {}, h("summary", {}, `Stage history (${v.transitions.length})`),
          h("ol", { class: "transitions" }, v.transitions.map((t) => h("li", {},
            `${t.from_stage ?? "new"} → ${t.to_stage}: ${t.reason} (`, when(t.at), ")")))))))));
}

function rounded(metrics) {
  return Object.fromEntries(Object.entries(metrics ?? {}).map(([k, v]) => [k, typeof v === "number" ? Number(v.toFixed(4)) : v]));
}
