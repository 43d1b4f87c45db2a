// Predict for a multi-class task: a text box for a message (task.input.kind "text") or a file
// picker with a preview for a photo ("image"), and the answer: every class's probability as
// bars, and why — the word pieces highlighted by their attribution, or the saliency map laid
// over the photo.

import { ApiError, api } from "../api.js";
import { h, notice } from "../dom.js";
import { humanize, milliseconds, modelName, percent, when } from "../format.js";

const SALIENCY_SIZE = 224; // canvas pixels: 8 per model pixel at 28×28

/** The form for a message: a textarea limited to the task's max_chars, with a live count. */
export function messageForm(task, result) {
  const { field, max_chars: maxChars } = task.input;
  const id = `field-${field}`;
  const input = h("textarea", {
    id, name: field, rows: 4, maxlength: maxChars, required: true, spellcheck: "true",
    "aria-describedby": `${id}-hint ${id}-count ${id}-error`,
  });
  const count = h("p", { class: "hint char-count", id: `${id}-count`, "aria-live": "polite" });
  const showCount = () => { count.textContent = `${input.value.length} / ${maxChars} characters`; };
  showCount();
  const description = task.fields.find((f) => f.name === field)?.description ?? "";
  const control = control_(field, input, h("div", { class: "field field-wide" },
    h("label", { for: id }, humanize(field)),
    input,
    h("p", { class: "hint", id: `${id}-hint` }, `${description} At most ${maxChars} characters.`),
    count));
  input.addEventListener("input", () => {
    showCount();
    if (input.getAttribute("aria-invalid") === "true") showError(control, checkMessage(input.value, maxChars));
  });
  return submitForm(task, result, control, {
    check: () => checkMessage(input.value, maxChars),
    value: () => input.value,
    preview: () => null,
  });
}

function checkMessage(text, maxChars) {
  if (!text.trim()) return "Write a message.";
  if (text.length > maxChars) return `At most ${maxChars} characters (this has ${text.length}).`;
  return "";
}

/** The form for a photo: a file picker for PNG/JPEG, with a preview of the chosen file. */
export function photoForm(task, result) {
  const { field, formats = ["JPEG", "PNG"], shape = [1, 28, 28] } = task.input;
  const id = `field-${field}`;
  const types = formats.map((f) => `image/${f.toLowerCase()}`);
  const input = h("input", {
    id, name: field, type: "file", accept: types.join(","), required: true,
    "aria-describedby": `${id}-hint ${id}-error`,
  });
  const preview = h("img", { class: "photo-preview", alt: "", hidden: true });
  let chosen = null; // {dataUrl, name}
  const control = control_(field, input, h("div", { class: "field field-wide" },
    h("label", { for: id }, humanize(field)),
    input,
    h("p", { class: "hint", id: `${id}-hint` },
      `A ${formats.join(" or ")} file. The model reads it in ${shape[0] === 1 ? "grayscale" : "colour"} at ${shape[2]}×${shape[1]} pixels: a light object on a dark background.`),
    preview));
  input.addEventListener("change", async () => {
    chosen = null;
    preview.hidden = true;
    showError(control, "");
    const file = input.files?.[0];
    if (!file) return;
    if (!types.includes(file.type)) {
      showError(control, `Choose a ${formats.join(" or ")} file (this is ${file.type || "of an unknown type"}).`);
      return;
    }
    chosen = { dataUrl: await readAsDataUrl(file), name: file.name };
    preview.src = chosen.dataUrl;
    preview.alt = `The chosen photo, ${file.name}`;
    preview.hidden = false;
  });
  return submitForm(task, result, control, {
    check: () => (chosen ? "" : input.files?.length ? "Choose a PNG or JPEG file." : "Choose a photo."),
    value: () => chosen.dataUrl, // the API takes data: URLs as they are
    preview: () => chosen.dataUrl,
  });
}

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function control_(name, input, wrapper) {
  const error = h("p", { class: "field-error", id: `${input.id}-error` });
  wrapper.append(error);
  return { name, input, error, wrapper };
}

function showError(control, message) {
  control.error.textContent = message;
  if (message) control.input.setAttribute("aria-invalid", "true");
  else control.input.removeAttribute("aria-invalid");
  return Boolean(message);
}

function submitForm(task, result, control, { check, value, preview }) {
  const status = h("div", { class: "form-status" });
  const submit = h("button", { type: "submit", class: "primary" }, "Predict");
  const form = h("form", { class: "predict-form", novalidate: true },
    h("div", { class: "fields" }, control.wrapper),
    status,
    h("div", { class: "actions" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.replaceChildren();
    if (showError(control, check())) {
      control.input.focus();
      return;
    }
    const photo = preview();
    submit.disabled = true;
    submit.textContent = "Predicting…";
    try {
      const body = { request: { [control.name]: value() } };
      const { predictions } = await api("/api/predictions", { method: "POST", body });
      result.replaceChildren(...classResultView(task, predictions[0], photo).filter(Boolean));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      result.replaceChildren();
      if (error.field && error.field.replace(/^request\./, "") === control.name) {
        const prefix = `${error.field}: `;
        const text = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
        showError(control, text.charAt(0).toUpperCase() + text.slice(1));
        status.replaceChildren(notice("error", `The API did not accept the ${control.name}: see the message next to it.`));
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

/** The answer: the predicted class, every class's probability, and its explanation. */
export function classResultView(task, prediction, photo = null) {
  return [
    h("h2", {}, "Result"),
    h("p", { class: "probability" },
      h("strong", { class: "predicted-class" }, prediction.predicted_class), " ",
      h("span", { class: "probability-value-small" }, percent(prediction.probability))),
    classProbabilities(task, prediction),
    h("dl", { class: "pairs result-facts" },
      fact("Model", modelName(prediction.model_version, prediction.slot)),
      fact("Latency", milliseconds(prediction.latency_ms)),
      fact("Answered", when(prediction.created_at)),
      fact("Prediction id", h("code", {}, prediction.id))),
    tokensView(task, prediction.explanation),
    saliencyView(task, prediction.explanation, photo),
    h("p", {}, h("a", { href: "#/history" }, "Record the actual class in History")),
  ];
}

function fact(name, value) {
  return h("div", {}, h("dt", {}, name), h("dd", { "data-fact": name.toLowerCase() }, value));
}

/** One bar per class, in the task's order; the predicted one marked. */
function classProbabilities(task, prediction) {
  const probabilities = prediction.class_probabilities ?? {};
  const names = task.classes ?? Object.keys(probabilities);
  return h("section", { class: "class-probabilities-box", "aria-labelledby": "classes-title" },
    h("h3", { id: "classes-title" }, "Class probabilities"),
    h("ol", { class: "class-probabilities" }, names.map((name) => {
      const p = probabilities[name] ?? 0;
      const chosen = name === prediction.predicted_class;
      return h("li", { class: `class-probability${chosen ? " class-predicted" : ""}`, "data-class": name },
        h("span", { class: "class-name" }, name),
        h("span", { class: "class-track", "aria-hidden": "true" },
          h("span", { class: "bar", style: `width: ${(p * 100).toFixed(2)}%` })),
        h("span", { class: "class-amount" }, percent(p)));
    })));
}

/** A message's word pieces, each shaded by how much the predicted class depends on it. */
function tokensView(task, explanation) {
  if (explanation?.kind !== "tokens" || !explanation.tokens?.length) return null;
  const largest = Math.max(...explanation.tokens.map((t) => Math.abs(t.attribution))) || 1;
  const className = task.classes?.[explanation.class_index] ?? `class ${explanation.class_index}`;
  return h("section", { class: "explanation", "aria-labelledby": "explanation-title" },
    h("h3", { id: "explanation-title" }, "Why"),
    h("p", { class: "hint" },
      `Each word piece shaded by how much the chance of “${className}” falls without it: red pieces support it, blue ones count against it.`),
    h("p", { class: "pieces" }, explanation.tokens.map((t) => {
      const strength = Math.min(Math.abs(t.attribution) / largest, 1);
      const sign = t.attribution >= 0 ? "up" : "down";
      const piece = t.token.startsWith("##") ? t.token.slice(2) : t.token;
      return h("mark", {
        class: `piece piece-${sign}${t.token.startsWith("##") ? " piece-continued" : ""}`,
        style: `--strength: ${strength.toFixed(3)}`,
        title: `${t.attribution >= 0 ? "+" : "−"}${Math.abs(t.attribution).toFixed(4)}`,
        "data-attribution": t.attribution,
      }, piece);
    })));
}

/** The saliency squares over the photo: red where hiding the square lowers the predicted
 * class's chance, blue where it raises it, stronger the more. */
function saliencyView(task, explanation, photo) {
  if (explanation?.kind !== "saliency" || !explanation.squares?.length) return null;
  const canvas = h("canvas", {
    class: "saliency", width: SALIENCY_SIZE, height: SALIENCY_SIZE, role: "img",
    "aria-label": "Saliency map over the photo",
  });
  const draw = (image) => drawSaliency(canvas, explanation, image);
  if (photo) {
    const image = new Image();
    image.onload = () => draw(image);
    image.onerror = () => draw(null);
    image.src = photo;
  } else {
    draw(null);
  }
  const className = task.classes?.[explanation.class_index] ?? `class ${explanation.class_index}`;
  return h("section", { class: "explanation", "aria-labelledby": "explanation-title" },
    h("h3", { id: "explanation-title" }, "Why"),
    h("p", { class: "hint" },
      `Each ${explanation.patch}×${explanation.patch}-pixel square coloured by how much the chance of “${className}” falls when it is hidden: red squares support it, blue ones count against it.`),
    canvas,
    h("p", { class: "hint" }, strongestSquare(explanation)));
}

function drawSaliency(canvas, explanation, image) {
  const context = canvas.getContext("2d");
  context.imageSmoothingEnabled = false;
  context.fillStyle = "#000";
  context.fillRect(0, 0, canvas.width, canvas.height);
  if (image) context.drawImage(image, 0, 0, canvas.width, canvas.height);
  const rows = explanation.squares.length;
  const cols = explanation.squares[0].length;
  const largest = Math.max(...explanation.squares.flat().map(Math.abs)) || 1;
  const w = canvas.width / cols;
  const hgt = canvas.height / rows;
  explanation.squares.forEach((row, r) => row.forEach((value, c) => {
    const alpha = Math.min(Math.abs(value) / largest, 1) * 0.6;
    if (alpha < 0.02) return;
    context.fillStyle = value >= 0 ? `rgba(220, 50, 40, ${alpha})` : `rgba(40, 110, 220, ${alpha})`;
    context.fillRect(c * w, r * hgt, w, hgt);
  }));
  canvas.dataset.drawn = image ? "photo" : "map";
}

/** The map's text equivalent: where the square that matters most is. */
function strongestSquare(explanation) {
  let best = { value: 0, r: 0, c: 0 };
  explanation.squares.forEach((row, r) => row.forEach((value, c) => {
    if (value > best.value) best = { value, r, c };
  }));
  if (best.value <= 0) return "No square's hiding lowers the chance of this class.";
  const rows = explanation.squares.length;
  const cols = explanation.squares[0].length;
  const vertical = best.r < rows / 3 ? "top" : best.r >= (2 * rows) / 3 ? "bottom" : "middle";
  const horizontal = best.c < cols / 3 ? "left" : best.c >= (2 * cols) / 3 ? "right" : "centre";
  return `The square that matters most is at the ${vertical} ${horizontal} (row ${best.r + 1}, column ${best.c + 1}): hiding it lowers the chance by ${percent(best.value, 2)}.`;
}
