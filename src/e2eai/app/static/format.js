// How numbers, times and labels read on the pages.

export function percent(probability, digits = 1) {
  return `${(probability * 100).toFixed(digits)} %`;
}

export function milliseconds(ms) {
  return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
}

/** A time in the browser's locale, with the ISO value kept for machines (<time datetime>). */
export function when(iso) {
  const date = new Date(iso);
  const text = Number.isNaN(date.getTime())
    ? String(iso)
    : date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  const element = document.createElement("time");
  element.dateTime = iso;
  element.textContent = text;
  return element;
}

/** "scheduled_departure" → "Scheduled departure". */
export function humanize(name) {
  const words = String(name).replaceAll("_", " ").replaceAll("-", " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** The words for a label: a multi-class task's class name; for a binary task 1 is its
 * positive class ("delayed"), 0 its negation. */
export function outcomeName(task, label) {
  if (task?.classes) return task.classes[label] ?? `Class ${label}`;
  const positive = task?.positive_name ?? "positive";
  const negative = task?.negative_name ?? `not ${positive}`;
  return humanize(label === 1 ? positive : negative);
}

export function modelName(version, slot) {
  return slot ? `v${version} (${slot})` : `v${version}`;
}
