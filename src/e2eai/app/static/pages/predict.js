// Predict: a form generated from the task's request fields (GET /api/task), checked in the
// browser against the fields' constraints and by the API (whose 4xx names the field), and
// the answer: probability, risk band, model version and slot, latency, explanation. Tasks
// whose request is a message or a photo get a text box or a file picker (predict_media.js).

import { ApiError, api, getTask } from "../api.js";
import { h, notice, page } from "../dom.js";
import { humanize, milliseconds, modelName, percent, when } from "../format.js";
import { messageForm, photoForm } from "./predict_media.js";

const INPUT_TYPES = { str: "text", int: "number", float: "number", datetime: "text" };
// The API wants aware times: a date, a time, and Z or an offset.
const AWARE_TIME = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i;
const BAND_NAMES = { low: "Low risk", medium: "Medium risk", high: "High risk" };

export async function show(view, signal) {
  const task = await getTask();
  if (signal.aborted) return;
  const result = h("section", { class: "result", id: "result", "aria-live": "polite", "aria-label": "Result" });
  const kind = task.input?.kind ?? "fields";
  const form = kind === "text" ? messageForm(task, result)
    : kind === "image" ? photoForm(task, result)
      : predictionForm(task, result);
  view.replaceChildren(page("Predict",
    h("p", { class: "lead" }, task.description),
    form,
    result));
}

function predictionForm(task, result) {
  const controls = task.fields.map((field) => fieldControl(field));
  const status = h("div", { class: "form-status" });
  const submit = h("button", { type: "submit", class: "primary" }, "Predict");
  const fillExample = () => {
    for (const c of controls) {
      if (c.field.example != null) c.input.value = String(c.field.example);
      showError(c, "");
    }
  };
  const form = h("form", { class: "predict-form", novalidate: true },
    h("div", { class: "fields" }, controls.map((c) => c.wrapper)),
    status,
    h("div", { class: "actions" },
      submit,
      h("button", { type: "button", onclick: fillExample }, "Fill in the example")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.replaceChildren();
    const invalid = controls.filter((c) => showError(c, validate(c.field, c.input)));
    if (invalid.length) {
      status.replaceChildren(notice("error",
        `Fix ${invalid.length === 1 ? "this field" : `these ${invalid.length} fields`}: `,
        invalid.map((c) => humanize(c.field.name)).join(", "), "."));
      invalid[0].input.focus();
      return;
    }
    const request = Object.fromEntries(controls.map((c) => [c.field.name, valueOf(c.field, c.input)]));
    submit.disabled = true;
    submit.textContent = "Predicting…";
    try {
      const { predictions } = await api("/api/predictions", { method: "POST", body: { request } });
      result.replaceChildren(...resultView(task, predictions[0]).filter(Boolean));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      result.replaceChildren();
      const control = controlFor(controls, error.field);
      if (control) {
        showError(control, withoutPath(error.message, error.field));
        status.replaceChildren(notice("error", `The API did not accept ${humanize(control.field.name)}: see the message next to it.`));
        control.input.focus();
      } else {
        status.replaceChildren(notice("error", error.message));
      }
    } finally {
      submit.disabled = false;
      submit.textContent = "Predict";
    }
  });
  return form;
}

function fieldControl(field) {
  const id = `field-${field.name}`;
  const input = h("input", {
    id,
    name: field.name,
    type: INPUT_TYPES[field.type] ?? "text",
    required: field.required,
    min: field.minimum,
    max: field.maximum,
    step: field.type === "int" ? 1 : field.type === "float" ? "any" : null,
    inputmode: field.type === "int" ? "numeric" : field.type === "float" ? "decimal" : null,
    placeholder: field.example == null ? null : String(field.example),
    autocomplete: "off",
    spellcheck: "false",
    "aria-describedby": `${id}-hint ${id}-error`,
  });
  const error = h("p", { class: "field-error", id: `${id}-error` });
  const control = { field, input, error };
  control.wrapper = h("div", { class: "field" },
    h("label", { for: id }, humanize(field.name), field.required ? "" : h("span", { class: "optional" }, " (optional)")),
    input,
    h("p", { class: "hint", id: `${id}-hint` }, hint(field)),
    error);
  // Checked on submit, then live while wrong; not on blur, whose message would move the
  // Predict button away from the pointer between mouse down and up.
  input.addEventListener("input", () => {
    if (input.getAttribute("aria-invalid") === "true") showError(control, validate(field, input));
  });
  return control;
}

function hint(field) {
  const parts = [field.description];
  if (field.type === "int") parts.push("A whole number.");
  if (field.minimum != null && field.maximum != null) parts.push(`From ${field.minimum} to ${field.maximum}.`);
  else if (field.minimum != null) parts.push(`At least ${field.minimum}.`);
  else if (field.maximum != null) parts.push(`At most ${field.maximum}.`);
  if (field.max_length != null) parts.push(`At most ${field.max_length} characters.`);
  if (field.type === "datetime" && field.example) parts.push(`For example ${field.example}.`);
  return parts.join(" ");
}

/** What is wrong with the input's value under the field's constraints ("" when nothing). */
function validate(field, input) {
  const raw = input.value.trim();
  if (raw === "") {
    if (input.validity?.badInput) return "Enter a number.";
    return field.required ? "Required." : "";
  }
  if (field.type === "int" || field.type === "float") {
    const number = Number(raw);
    if (!Number.isFinite(number)) return "Enter a number.";
    if (field.type === "int" && !Number.isInteger(number)) return "Enter a whole number.";
    if (field.minimum != null && number < field.minimum) return `Must be at least ${field.minimum}.`;
    if (field.maximum != null && number > field.maximum) return `Must be at most ${field.maximum}.`;
  }
  if (field.type === "str" && field.max_length != null && raw.length > field.max_length) {
    return `At most ${field.max_length} characters (this has ${raw.length}).`;
  }
  if (field.type === "datetime" && (!AWARE_TIME.test(raw) || Number.isNaN(Date.parse(raw.replace(" ", "T"))))) {
    return `Give a date and time with its offset, e.g. ${field.example ?? "2013-06-01T08:00:00-04:00"}.`;
  }
  return "";
}

function valueOf(field, input) {
  const raw = input.value.trim();
  if (raw === "") return null;
  if (field.type === "int" || field.type === "float") return Number(raw);
  if (field.type === "datetime") return raw.replace(" ", "T");
  return raw;
}

/** Show (or clear, with "") the message under an input; true when there is one. */
function showError(control, message) {
  const { input } = control;
  const error = control.error ?? document.getElementById(`${input.id}-error`);
  error.textContent = message;
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
  return Boolean(message);
}

/** The control the API's ``field`` ("request.distance", "distance") points at. */
function controlFor(controls, path) {
  if (!path) return null;
  const name = path.replace(/^request\./, "").split(/[.[]/)[0];
  return controls.find((c) => c.field.name === name) ?? null;
}

/** "request.distance: must be ≥ 1" next to the distance input reads "must be ≥ 1". */
function withoutPath(message, path) {
  const prefix = `${path}: `;
  const text = message.startsWith(prefix) ? message.slice(prefix.length) : message;
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function resultView(task, prediction) {
  const positive = task.positive_name;
  return [
    h("h2", {}, "Result"),
    h("p", { class: "probability" },
      h("strong", { class: "probability-value" }, percent(prediction.probability)),
      ` chance of being ${positive}`),
    h("p", {}, h("span", { class: `band band-${prediction.band}` }, BAND_NAMES[prediction.band] ?? prediction.band)),
    h("dl", { class: "pairs result-facts" },
      fact("Model", modelName(prediction.model_version, prediction.slot)),
      fact("Latency", milliseconds(prediction.latency_ms)),
      fact("Answered", when(prediction.created_at)),
      fact("Prediction id", h("code", {}, prediction.id))),
    explanationView(task, prediction.explanation),
    h("p", {}, h("a", { href: "#/history" }, "Record its outcome in History")),
  ];
}

function fact(name, value) {
  return h("div", {}, h("dt", {}, name), h("dd", { "data-fact": name.toLowerCase() }, value));
}

/**
 * The explanation's top features as diverging bars, and what the others add. Reads
 * {base_value, contributions: [{feature, value, contribution}], rest: {features, contribution}}.
 */
function explanationView(task, explanation) {
  const contributions = Array.isArray(explanation) ? explanation : explanation?.contributions;
  if (!contributions?.length) return null;
  const top = [...contributions].sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution));
  const largest = Math.max(...top.map((c) => Math.abs(c.contribution))) || 1;
  const base = explanation?.base_value;
  const rest = explanation?.rest;
  return h("section", { class: "explanation", "aria-labelledby": "explanation-title" },
    h("h3", { id: "explanation-title" }, "Why"),
    h("p", { class: "hint" },
      `The features that moved this prediction most, in log-odds. Bars to the right raise the chance of being ${task.positive_name}, bars to the left lower it`,
      base == null ? "." : ` (from the model's average, ${(100 / (1 + Math.exp(-base))).toFixed(1)} %, log-odds ${signed(base)}).`),
    h("ol", { class: "contributions" }, top.map((c) => {
      const width = `${(Math.abs(c.contribution) / largest) * 100}%`;
      const bar = h("span", { class: "bar", style: `width: ${width}` });
      const sign = c.contribution >= 0 ? "up" : "down";
      return h("li", { class: `contribution contribution-${sign}` },
        h("span", { class: "contribution-name" }, contributionName(c.feature),
          c.value == null ? "" : h("span", { class: "contribution-value" }, ` = ${shortValue(c.value)}`)),
        h("span", { class: "track", "aria-hidden": "true" },
          h("span", { class: "half half-down" }, sign === "down" ? bar : ""),
          h("span", { class: "half half-up" }, sign === "up" ? bar : "")),
        h("span", { class: "contribution-amount" }, signed(c.contribution)));
    })),
    rest?.features
      ? h("p", { class: "hint contributions-rest" },
        `${rest.features} smaller contributions add ${signed(rest.contribution)}.`)
      : null);
}

/** A model input as a person reads it: numbers to at most three decimals. */
function shortValue(value) {
  return typeof value === "number" ? String(Number(value.toFixed(3))) : String(value);
}

function signed(value) {
  return `${value >= 0 ? "+" : "−"}${Math.abs(value).toFixed(3)}`;
}

/** The deep part of a Wide & Deep model belongs to no single input. */
function contributionName(feature) {
  return feature === "deep" ? "Interactions (deep part)" : humanize(feature);
}
