// Time-series charts drawn as inline SVG: bars (optionally stacked) and lines, with axes and a
// hover read-out. Drawn at the container's pixel size and redrawn when it changes.

import { h, replace, s } from "./dom.js";
import * as fmt from "./format.js";

const PAD = { top: 10, right: 12, bottom: 22, left: 52 };

function timeLabel(t, spanMs) {
  const d = new Date(t);
  const p = (n) => String(n).padStart(2, "0");
  if (spanMs <= 2 * 86400e3) return `${p(d.getHours())}:${p(d.getMinutes())}`;
  return `${d.toLocaleString("en-US", { month: "short" })} ${d.getDate()}`;
}

/**
 * `timeChart(host, {times, series: [{name, values, kind: "bar"|"line", cls}], stacked, format})`
 * `times` are bucket starts (ms), `values[i]` belongs to `times[i]` (null = no data).
 */
export function timeChart(host, spec) {
  const wrap = h("div", { class: "chart" });
  const tip = h("div", { class: "chart-tip", hidden: true });
  const legend = h(
    "div",
    { class: "chart-legend" },
    spec.series.length > 1 ? spec.series.map((sr) => h("span", { class: "legend-item" }, h("span", { class: `swatch ${sr.cls}` }), sr.name)) : null,
  );
  replace(host, wrap, legend);
  host.appendChild(tip);

  const draw = () => {
    const width = Math.max(wrap.clientWidth, 200);
    const height = spec.height || 160;
    const { times, series } = spec;
    const n = times.length;
    let max = 0;
    if (spec.stacked) {
      for (let i = 0; i < n; i += 1) max = Math.max(max, series.reduce((a, sr) => a + (sr.values[i] || 0), 0));
    } else {
      for (const sr of series) for (const v of sr.values) if (v !== null && v !== undefined) max = Math.max(max, v);
    }
    const step = fmt.niceStep(max || 1, 4);
    const top = Math.max(step * Math.ceil((max || 1) / step), step);
    const ticks = [];
    for (let v = 0; v <= top + step * 0.01; v += step) ticks.push(v);
    // Room on the left for the widest y label (monospace digits at ~6.4px).
    const padLeft = Math.max(36, Math.max(...ticks.map((v) => spec.format(v).length)) * 6.4 + 12);
    const plotW = width - padLeft - PAD.right;
    const plotH = height - PAD.top - PAD.bottom;
    const y = (v) => PAD.top + plotH - (v / top) * plotH;
    const slot = plotW / Math.max(n, 1);
    const x = (i) => padLeft + slot * i + slot / 2;
    const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "chart-svg", role: "img", "aria-label": spec.label || "chart" });

    // grid and y axis
    for (const v of ticks) {
      svg.appendChild(s("line", { x1: padLeft, x2: width - PAD.right, y1: y(v), y2: y(v), class: "grid" }));
      svg.appendChild(s("text", { x: padLeft - 6, y: y(v) + 3, class: "axis-label", "text-anchor": "end" }, spec.format(v)));
    }
    // x labels: about one per 90px
    const every = Math.max(1, Math.ceil(n / Math.max(1, Math.floor(plotW / 90))));
    const spanMs = n > 1 ? times[n - 1] - times[0] : 0;
    for (let i = 0; i < n; i += every) {
      svg.appendChild(s("text", { x: x(i), y: height - 6, class: "axis-label", "text-anchor": "middle" }, timeLabel(times[i], spanMs)));
    }
    // bars
    const bars = series.filter((sr) => sr.kind !== "line");
    const bw = Math.max(1, Math.min(28, slot * (spec.stacked || bars.length <= 1 ? 0.7 : 0.8 / bars.length)));
    for (let i = 0; i < n; i += 1) {
      let base = 0;
      bars.forEach((sr, j) => {
        const v = sr.values[i] || 0;
        if (v <= 0) return;
        let bx;
        let y0;
        if (spec.stacked) {
          bx = x(i) - bw / 2;
          y0 = base;
          base += v;
        } else {
          bx = bars.length > 1 ? x(i) - (bw * bars.length) / 2 + j * bw : x(i) - bw / 2;
          y0 = 0;
        }
        const yTop = y(y0 + v);
        svg.appendChild(s("rect", { x: bx, y: yTop, width: bw, height: Math.max(y(y0) - yTop, 1), rx: 1.5, class: `bar ${sr.cls}` }));
      });
    }
    // lines
    for (const sr of series.filter((x2) => x2.kind === "line")) {
      let d = "";
      let pen = false;
      sr.values.forEach((v, i) => {
        if (v === null || v === undefined) {
          pen = false;
          return;
        }
        d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
      });
      if (d) svg.appendChild(s("path", { d, class: `line ${sr.cls}`, fill: "none" }));
      sr.values.forEach((v, i) => {
        if (v !== null && v !== undefined && n <= 60) svg.appendChild(s("circle", { cx: x(i), cy: y(v), r: 2.2, class: `pt ${sr.cls}` }));
      });
    }
    const cursor = s("line", { x1: 0, x2: 0, y1: PAD.top, y2: PAD.top + plotH, class: "cursor", visibility: "hidden" });
    svg.appendChild(cursor);
    svg.addEventListener("mousemove", (ev) => {
      const rect = svg.getBoundingClientRect();
      const i = Math.floor((ev.clientX - rect.left - padLeft) / slot);
      if (i < 0 || i >= n) {
        tip.hidden = true;
        cursor.setAttribute("visibility", "hidden");
        return;
      }
      cursor.setAttribute("x1", x(i));
      cursor.setAttribute("x2", x(i));
      cursor.setAttribute("visibility", "visible");
      replace(
        tip,
        h("div", { class: "tip-time" }, new Date(times[i]).toLocaleString()),
        series.map((sr) =>
          sr.values[i] === null || sr.values[i] === undefined ? null : h("div", { class: "tip-row" }, h("span", { class: `swatch ${sr.cls}` }), h("span", { class: "tip-name" }, sr.name), h("span", { class: "tip-val mono" }, spec.format(sr.values[i]))),
        ),
      );
      tip.hidden = false;
      const hostRect = host.getBoundingClientRect();
      const left = Math.min(ev.clientX - hostRect.left + 12, hostRect.width - 180);
      tip.style.left = `${Math.max(0, left)}px`;
      tip.style.top = `${ev.clientY - hostRect.top + 12}px`;
    });
    svg.addEventListener("mouseleave", () => {
      tip.hidden = true;
      cursor.setAttribute("visibility", "hidden");
    });
    replace(wrap, svg);
  };

  let lastWidth = 0;
  const observer = new ResizeObserver(() => {
    if (Math.abs(wrap.clientWidth - lastWidth) > 2) {
      lastWidth = wrap.clientWidth;
      draw();
    }
  });
  observer.observe(wrap);
  draw();
  return { destroy: () => observer.disconnect() };
}

/** A horizontal bar list: [{label, value, href?}] with formatted values. */
export function barList(items, format, emptyText = "No data in this range.") {
  if (!items.length) return h("div", { class: "muted small pad" }, emptyText);
  const max = Math.max(...items.map((i) => i.value), 1e-12);
  return h(
    "div",
    { class: "bar-list" },
    items.map((it) =>
      h(
        "div",
        { class: "bar-item", title: it.note ? `${it.label} · ${format(it.value)} · ${it.note}` : it.label },
        h("div", { class: "bar-fill", style: { width: `${(it.value / max) * 100}%` } }),
        it.href ? h("a", { class: "bar-label", href: it.href }, it.label) : h("span", { class: "bar-label" }, it.label),
        h("span", { class: "bar-value mono" }, format(it.value), it.note ? h("span", { class: "muted" }, ` · ${it.note}`) : null),
      ),
    ),
  );
}
