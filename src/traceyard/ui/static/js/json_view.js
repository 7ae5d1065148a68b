// A collapsible JSON viewer. Children of a collapsed node are built only when it opens, so a
// huge payload costs nothing until looked at. Long strings are folded.

import { copyButton, h } from "./dom.js";

const FOLD_CHARS = 600;
const MAX_CHILDREN = 500;

export function isPlainObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

export function pretty(value) {
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value, null, 2);
  } catch (_e) {
    return String(value);
  }
}

/** A long text, folded to its first lines with a toggle. */
export function foldedText(text, cls = "text-block") {
  const str = String(text);
  const lines = str.split("\n");
  const long = str.length > FOLD_CHARS * 2 || lines.length > 24;
  const pre = h("pre", { class: cls });
  if (!long) {
    pre.textContent = str;
    return pre;
  }
  let open = false;
  const preview = lines.length > 24 ? lines.slice(0, 16).join("\n") : str.slice(0, FOLD_CHARS * 2);
  const toggle = h("button", { class: "btn btn-link btn-xs fold-toggle", type: "button" });
  const render = () => {
    pre.textContent = open ? str : `${preview}…`;
    toggle.textContent = open ? "Show less" : `Show all (${str.length.toLocaleString("en-US")} chars)`;
  };
  toggle.addEventListener("click", () => {
    open = !open;
    render();
  });
  render();
  return h("div", { class: "folded" }, pre, toggle);
}

function scalar(value) {
  if (value === null) return h("span", { class: "j-null" }, "null");
  switch (typeof value) {
    case "string": {
      if (value.length > FOLD_CHARS) {
        let open = false;
        const span = h("span", { class: "j-str" });
        const more = h("button", { class: "btn btn-link btn-xs", type: "button" });
        const render = () => {
          span.textContent = JSON.stringify(open ? value : `${value.slice(0, FOLD_CHARS)}…`);
          more.textContent = open ? "less" : `+${(value.length - FOLD_CHARS).toLocaleString("en-US")} chars`;
        };
        more.addEventListener("click", (ev) => {
          ev.stopPropagation();
          open = !open;
          render();
        });
        render();
        return h("span", {}, span, " ", more);
      }
      return h("span", { class: "j-str" }, JSON.stringify(value));
    }
    case "number":
      return h("span", { class: "j-num" }, String(value));
    case "boolean":
      return h("span", { class: "j-bool" }, String(value));
    default:
      return h("span", { class: "j-null" }, String(value));
  }
}

function node(key, value, depth, openDepth) {
  const keyEl =
    key === null ? null : h("span", { class: "j-key" }, typeof key === "number" ? String(key) : JSON.stringify(key), ": ");
  if (value === null || typeof value !== "object") {
    return h("div", { class: "j-row" }, keyEl, scalar(value));
  }
  const isArr = Array.isArray(value);
  const entries = isArr ? value.map((v, i) => [i, v]) : Object.entries(value);
  const [open, close] = isArr ? ["[", "]"] : ["{", "}"];
  if (entries.length === 0) return h("div", { class: "j-row" }, keyEl, h("span", { class: "j-punct" }, open + close));
  const summary = h("span", { class: "j-summary" }, isArr ? `${entries.length} items` : `${entries.length} keys`);
  const caret = h("span", { class: "j-caret" });
  const body = h("div", { class: "j-body" });
  const row = h(
    "div",
    { class: "j-row j-toggle", role: "button", tabindex: "0" },
    caret,
    keyEl,
    h("span", { class: "j-punct" }, open),
    summary,
  );
  const wrap = h("div", { class: "j-node" }, row, body, h("div", { class: "j-row j-close" }, h("span", { class: "j-punct" }, close)));
  let expanded = false;
  let built = false;
  const set = (v) => {
    expanded = v;
    wrap.classList.toggle("collapsed", !expanded);
    if (expanded && !built) {
      built = true;
      for (const [k, v2] of entries.slice(0, MAX_CHILDREN)) body.appendChild(node(k, v2, depth + 1, openDepth));
      if (entries.length > MAX_CHILDREN) {
        body.appendChild(h("div", { class: "j-row muted" }, `… ${entries.length - MAX_CHILDREN} more (copy the JSON to see all)`));
      }
    }
  };
  const toggle = (ev) => {
    ev.stopPropagation();
    set(!expanded);
  };
  row.addEventListener("click", toggle);
  row.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      toggle(ev);
    }
  });
  set(depth < openDepth);
  return wrap;
}

/** The viewer, with a copy button. */
export function jsonView(value, { openDepth = 2, copy = true } = {}) {
  const tree = h("div", { class: "json" }, node(null, value, 0, openDepth));
  if (!copy) return tree;
  return h("div", { class: "json-wrap" }, h("div", { class: "json-tools" }, copyButton(() => pretty(value), "Copy JSON")), tree);
}

/** Text for strings, the JSON viewer for everything else. */
export function valueView(value, opts) {
  if (value === null || value === undefined) return h("div", { class: "muted empty-value" }, "null");
  if (typeof value === "string") {
    return h("div", { class: "json-wrap" }, h("div", { class: "json-tools" }, copyButton(() => value)), foldedText(value));
  }
  return jsonView(value, opts);
}
