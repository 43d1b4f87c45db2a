// Charts through the vendored Chart.js (a classic script: window.Chart). Every chart has a
// text equivalent on its page, so a missing library only loses the picture.

const charts = [];

/** A Chart.js chart on ``canvas`` (already in the document), or null without the library. */
export function chart(canvas, config) {
  if (!window.Chart) return null;
  const instance = new window.Chart(canvas, config);
  charts.push(instance);
  return instance;
}

/** Called on every route change: the old page's canvases are gone. */
export function destroyCharts() {
  while (charts.length) charts.pop().destroy();
}

/** The colours of the stylesheet, so charts follow the theme. */
export function color(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(`--${name}`).trim();
}
