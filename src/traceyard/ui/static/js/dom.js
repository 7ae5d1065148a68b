// Safe DOM building. Data is only ever placed with textContent / text nodes / setAttribute on
// a fixed set of non-script attributes; nothing here parses HTML. Every view goes through `h`.

const SVG_NS = "http://www.w3.org/2000/svg";
const BLOCKED_ATTRS = /^(on|style$|srcdoc$|formaction$)/i;
const URL_ATTRS = new Set(["href", "src", "action", "xlink:href"]);

function setAttr(el, key, value) {
  if (value === undefined || value === null || value === false) return;
  if (BLOCKED_ATTRS.test(key)) throw new Error(`refusing to set attribute ${key}`);
  if (URL_ATTRS.has(key)) {
    // Only our own routes and relative assets: never a data-provided scheme.
    const s = String(value);
    if (!(s.startsWith("#") || s.startsWith("./"))) throw new Error(`unsafe URL ${s}`);
  }
  el.setAttribute(key, value === true ? "" : String(value));
}

function append(el, child) {
  if (child === undefined || child === null || child === false) return;
  if (Array.isArray(child)) {
    for (const c of child) append(el, c);
  } else if (child instanceof Node) {
    el.appendChild(child);
  } else {
    el.appendChild(document.createTextNode(String(child)));
  }
}

function build(el, props, children) {
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (key === "class") {
        if (value) el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
      } else if (key === "text") {
        el.textContent = value === undefined || value === null ? "" : String(value);
      } else if (key === "dataset") {
        for (const [k, v] of Object.entries(value)) if (v !== undefined && v !== null) el.dataset[k] = String(v);
      } else if (key === "style") {
        // CSSOM only (allowed under a strict CSP), never a style attribute string.
        for (const [k, v] of Object.entries(value)) {
          if (k.startsWith("--")) el.style.setProperty(k, v);
          else el.style[k] = v;
        }
      } else if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2).toLowerCase(), value);
      } else if (key === "value" || key === "checked" || key === "disabled" || key === "selected") {
        el[key] = value;
      } else {
        setAttr(el, key, value);
      }
    }
  }
  append(el, children);
  return el;
}

/** `h("div", {class: "x", onClick: fn}, "text", child)` — an element with text children. */
export function h(tag, props, ...children) {
  return build(document.createElement(tag), props, children);
}

/** The same for SVG elements. */
export function s(tag, props, ...children) {
  return build(document.createElementNS(SVG_NS, tag), props, children);
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

/** Copy text to the clipboard; falls back to a hidden textarea off secure contexts. */
export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch (_e) {
    /* fall through */
  }
  const area = h("textarea", { class: "offscreen", readonly: true });
  area.value = text;
  document.body.appendChild(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch (_e) {
    ok = false;
  }
  area.remove();
  return ok;
}

/** A small button that copies `getText()` and flashes "Copied". */
export function copyButton(getText, label = "Copy") {
  const btn = h("button", { class: "btn btn-ghost btn-xs", type: "button", title: "Copy to clipboard" }, label);
  btn.addEventListener("click", async (ev) => {
    ev.stopPropagation();
    const ok = await copyText(typeof getText === "function" ? getText() : String(getText));
    btn.textContent = ok ? "Copied" : "Copy failed";
    setTimeout(() => (btn.textContent = label), 1200);
  });
  return btn;
}

let toastTimer = null;
export function toast(message, kind = "info") {
  let el = document.getElementById("toast");
  if (!el) {
    el = h("div", { id: "toast", role: "status" });
    document.body.appendChild(el);
  }
  el.className = `toast toast-${kind} show`;
  el.textContent = message;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("show"), 3200);
}

export function debounce(fn, ms) {
  let t = null;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

/** Run `fn` at most once per `ms`, always once more after the last call (live refreshes:
 * a steady stream of changes must not starve the refresh the way a debounce would). */
export function throttle(fn, ms) {
  let last = 0;
  let timer = null;
  return () => {
    if (timer) return;
    const wait = Math.max(0, last + ms - Date.now());
    timer = setTimeout(() => {
      timer = null;
      last = Date.now();
      fn();
    }, wait);
  };
}
