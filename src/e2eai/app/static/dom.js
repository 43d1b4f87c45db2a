// Building DOM nodes. Text always goes in as text nodes (never innerHTML), so nothing a
// client or the API sends can become markup.

/**
 * An element: h("a", {href: "#/x", class: "link", onclick: fn}, "text", child, [more]).
 * Attributes that are null/undefined/false are left out; true sets an empty attribute.
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value == null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  element.append(...children.flat(Infinity).filter((c) => c != null && c !== false));
  return element;
}

/** A page's frame: its heading (focused on arrival, for screen readers) and its body. */
export function page(title, ...children) {
  document.title = `${title} · e2eai`;
  return h("section", { class: "page", "aria-labelledby": "page-title" },
    h("h1", { id: "page-title", tabindex: "-1" }, title),
    ...children);
}

/** A message box: kind is "error", "info" or "ok"; errors are announced at once. */
export function notice(kind, ...text) {
  return h("p", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" },
    ...text);
}

/** A key → value list (metrics, lineage, request fields). */
export function definitions(entries, className = "pairs") {
  return h("dl", { class: className },
    Object.entries(entries).map(([key, value]) => h("div", {},
      h("dt", {}, key),
      h("dd", {}, typeof value === "object" && value !== null ? JSON.stringify(value) : String(value)))));
}
