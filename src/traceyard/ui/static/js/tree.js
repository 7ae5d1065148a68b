// The observation tree beside its waterfall, virtualised: only the rows in view exist in the
// DOM, so a trace of thousands of observations scrolls as smoothly as one of ten.

import { h, replace } from "./dom.js";
import * as fmt from "./format.js";
import { icon, typeBadge } from "./icons.js";

const ROW = 28;
const OVERSCAN = 12;

/** Build the node tree: a synthetic root for the trace, observations under their parents. */
export function buildTree(trace, observations) {
  const root = { id: trace.id, kind: "trace", obs: null, children: [], depth: 0, parent: null };
  const byId = new Map([[root.id, root]]);
  for (const o of observations) byId.set(o.id, { id: o.id, kind: o.type || "span", obs: o, children: [], depth: 0, parent: null });
  for (const o of observations) {
    const node = byId.get(o.id);
    const parent = (o.parent_id && o.parent_id !== o.id && byId.get(o.parent_id)) || root;
    node.parent = parent;
    parent.children.push(node);
  }
  // Depths iteratively (a deep chain must not overflow the stack); cycles fall back to the root.
  const stack = [root];
  const seen = new Set();
  while (stack.length) {
    const n = stack.pop();
    seen.add(n);
    for (const c of n.children) {
      c.depth = n.depth + 1;
      stack.push(c);
    }
  }
  for (const n of byId.values()) {
    if (!seen.has(n)) {
      n.parent = root;
      n.depth = 1;
      root.children.push(n);
    }
  }
  // Timing, relative to the trace's start (the root's).
  let t0 = fmt.preciseTime(trace.start_time);
  let tEnd = fmt.preciseTime(trace.end_time);
  for (const n of byId.values()) {
    if (!n.obs) continue;
    n.start = fmt.preciseTime(n.obs.start_time);
    n.end = fmt.preciseTime(n.obs.end_time);
    if (n.start !== null && (t0 === null || n.start < t0)) t0 = n.start;
    const e = n.end ?? n.start;
    if (e !== null && (tEnd === null || e > tEnd)) tEnd = e;
  }
  for (const n of byId.values()) n.children.sort((a, b) => (a.start ?? 0) - (b.start ?? 0) || (a.id < b.id ? -1 : 1));
  root.start = t0;
  root.end = tEnd;
  return { root, byId, t0: t0 ?? 0, span: Math.max((tEnd ?? t0 ?? 0) - (t0 ?? 0), 0.001) };
}

function durationOf(n) {
  if (n.kind === "event") return null;
  if (n.kind === "trace") return n.end !== null && n.start !== null ? n.end - n.start : null;
  if (n.obs && typeof n.obs.latency_ms === "number") return n.obs.latency_ms;
  return n.end !== null && n.start !== null ? n.end - n.start : null;
}

function axisTicks(span) {
  const step = fmt.niceStep(span, 5);
  const out = [];
  for (let t = 0; t <= span + step * 0.01; t += step) out.push(t);
  return out;
}

/**
 * The tree component. `onSelect(node)` fires when the selection changes (click, keys, API).
 */
export function createTree(host, { onSelect }) {
  let model = null;
  let collapsed = new Set();
  let visible = [];
  let selected = null;
  let frame = 0;

  const axis = h("div", { class: "wf-axis" });
  let query = "";
  let keep = null; // with a filter: the ids shown (matches and their ancestors)
  const filterInput = h("input", {
    class: "tree-filter",
    type: "search",
    placeholder: "Filter observations…",
    "aria-label": "Filter observations by name, type or model",
    "data-search": "", // "/" focuses it
  });
  const counter = h("span", { class: "tree-count" });
  const head = h("div", { class: "tree-head" }, h("div", { class: "tree-head-name" }, filterInput, counter), axis);
  const spacer = h("div", { class: "tree-spacer" });
  const scroller = h(
    "div",
    { class: "tree-scroll", tabindex: "0", role: "tree", "aria-label": "Observation tree" },
    spacer,
  );
  replace(host, h("div", { class: "tree" }, head, scroller));

  function computeKeep() {
    keep = null;
    if (!model || !query) return;
    keep = new Set([model.root.id]);
    let matches = 0;
    for (const n of model.byId.values()) {
      const o = n.obs;
      if (!o) continue;
      const text = `${o.name || ""} ${o.type || ""} ${o.model || ""} ${o.level === "ERROR" ? "error" : ""}`.toLowerCase();
      if (!text.includes(query)) continue;
      matches += 1;
      for (let p = n; p && !keep.has(p.id); p = p.parent) keep.add(p.id);
    }
    counter.textContent = `${matches.toLocaleString("en-US")} match${matches === 1 ? "" : "es"}`;
  }

  function flatten() {
    visible = [];
    if (!model) return;
    const stack = [model.root];
    while (stack.length) {
      const n = stack.pop();
      if (keep && !keep.has(n.id)) continue;
      visible.push(n);
      // A filter shows every match, even under collapsed nodes.
      if (keep || !collapsed.has(n.id)) for (let i = n.children.length - 1; i >= 0; i -= 1) stack.push(n.children[i]);
    }
    if (!keep) counter.textContent = `${(model.byId.size - 1).toLocaleString("en-US")} observations`;
    spacer.style.height = `${visible.length * ROW}px`;
  }

  filterInput.addEventListener("input", () => {
    query = filterInput.value.trim().toLowerCase();
    computeKeep();
    flatten();
    paint();
  });
  filterInput.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") {
      filterInput.value = "";
      filterInput.dispatchEvent(new Event("input"));
      scroller.focus();
    } else if (ev.key === "ArrowDown" || ev.key === "Enter") {
      ev.preventDefault();
      scroller.focus();
      if (visible.length > 1 && (!selected || !visible.includes(selected))) select(visible[1], true);
    }
  });

  function renderAxis() {
    if (!model) return;
    replace(
      axis,
      axisTicks(model.span).map((t) =>
        h("span", { class: "wf-tick", style: { left: `${(t / model.span) * 100}%` } }, fmt.duration(t)),
      ),
    );
  }

  function bar(n) {
    const cls = `wf-bar t-${n.kind}${n.obs && n.obs.level === "ERROR" ? " wf-error" : ""}`;
    if (n.start === null || n.start === undefined) return null;
    const left = ((n.start - model.t0) / model.span) * 100;
    if (n.kind === "event") return h("div", { class: "wf-event t-event", style: { left: `${left}%` } });
    const running = n.end === null || n.end === undefined;
    const end = running ? model.t0 + model.span : n.end;
    const width = Math.max(((end - n.start) / model.span) * 100, 0.15);
    const label = fmt.duration(durationOf(n));
    const labelEl = h("span", { class: "wf-label" }, label);
    const b = h("div", { class: `${cls}${running ? " wf-running" : ""}`, style: { left: `${left}%`, width: `${width}%` } });
    const ttft = n.obs && n.obs.time_to_first_token_ms;
    if (ttft && durationOf(n)) b.appendChild(h("div", { class: "wf-ttft", style: { width: `${Math.min((ttft / durationOf(n)) * 100, 100)}%` } }));
    const wrap = h("div", { class: "wf-bar-wrap" }, b);
    // The label sits right of the bar, or inside its left end when the bar reaches the edge.
    if (left + width > 82) {
      labelEl.classList.add("inside");
      labelEl.style.right = `${Math.max(100 - left - width, 0)}%`;
    } else {
      labelEl.style.left = `calc(${left + width}% + 4px)`;
    }
    wrap.appendChild(labelEl);
    return wrap;
  }

  function rowView(n, index) {
    const o = n.obs;
    const hasKids = n.children.length > 0;
    const isCollapsed = collapsed.has(n.id);
    const level = o ? o.level : null;
    const name = n.kind === "trace" ? model.traceName || "(trace)" : (o && o.name) || `(${n.kind})`;
    const chevron = hasKids
      ? h(
          "button",
          {
            class: `chev${isCollapsed ? "" : " open"}`,
            type: "button",
            tabindex: "-1",
            "aria-label": isCollapsed ? "Expand" : "Collapse",
            onClick: (ev) => {
              ev.stopPropagation();
              toggle(n);
            },
          },
          icon("chevron", 12),
        )
      : h("span", { class: "chev-space" });
    const extra = [];
    if (level === "ERROR") extra.push(h("span", { class: "lvl lvl-error", title: o.status_message || "error" }, icon("alert", 11), "error"));
    else if (level === "WARNING") extra.push(h("span", { class: "lvl lvl-warn", title: o.status_message || "warning" }, "warn"));
    if (o && o.model) extra.push(h("span", { class: "tree-model" }, o.model));
    const scores = model.scores.get(n.id);
    if (scores) extra.push(h("span", { class: "tree-score", title: `scores: ${scores.map((sc) => sc.name).join(", ")}` }, icon("evaluator", 10), String(scores.length)));
    if (n.kind === "trace" && hasKids && isCollapsed) extra.push(h("span", { class: "muted small" }, `${n.children.length} hidden`));
    const row = h(
      "div",
      {
        class: ["tree-row", selected === n ? "selected" : "", level === "ERROR" ? "has-error" : ""],
        role: "treeitem",
        "aria-level": n.depth + 1,
        "aria-selected": selected === n ? "true" : "false",
        "aria-expanded": hasKids ? String(!isCollapsed) : undefined,
        dataset: { id: n.id, type: n.kind },
        style: { top: `${index * ROW}px` },
      },
      h(
        "div",
        { class: "tree-cell", style: { paddingLeft: `${8 + n.depth * 16}px` } },
        n.depth > 0 ? h("span", { class: "guides", style: { width: `${n.depth * 16}px` } }) : null,
        chevron,
        typeBadge(n.kind, 12),
        h("span", { class: "tree-name", title: name }, name),
        extra,
        h("span", { class: "tree-dur" }, n.kind === "event" ? "" : fmt.duration(durationOf(n))),
      ),
      h("div", { class: "wf-cell" }, bar(n)),
    );
    row.addEventListener("click", () => select(n, true));
    return row;
  }

  function paint() {
    frame = 0;
    if (!model) return;
    const top = scroller.scrollTop;
    const height = scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const last = Math.min(visible.length, Math.ceil((top + height) / ROW) + OVERSCAN);
    const rows = [];
    for (let i = first; i < last; i += 1) rows.push(rowView(visible[i], i));
    replace(spacer, rows);
  }

  const schedule = () => {
    if (!frame) frame = requestAnimationFrame(paint);
  };
  scroller.addEventListener("scroll", schedule, { passive: true });
  const resize = new ResizeObserver(schedule);
  resize.observe(scroller);

  function toggle(n, force) {
    if (!n.children.length) return;
    const collapse = force === undefined ? !collapsed.has(n.id) : force;
    if (collapse) collapsed.add(n.id);
    else collapsed.delete(n.id);
    flatten();
    paint();
  }

  function ensureVisible(n) {
    // Expand the ancestors of a deep-linked node.
    let changed = false;
    for (let p = n.parent; p; p = p.parent) if (collapsed.delete(p.id)) changed = true;
    if (changed) flatten();
  }

  function scrollTo(n) {
    const i = visible.indexOf(n);
    if (i < 0) return;
    const top = i * ROW;
    if (top < scroller.scrollTop) scroller.scrollTop = top;
    else if (top + ROW > scroller.scrollTop + scroller.clientHeight) scroller.scrollTop = top + ROW - scroller.clientHeight;
  }

  function select(n, fromUser = false) {
    if (!n) return;
    ensureVisible(n);
    selected = n;
    scrollTo(n);
    paint();
    if (fromUser) scroller.focus({ preventScroll: true });
    onSelect(n, fromUser);
  }

  scroller.addEventListener("keydown", (ev) => {
    if (!model || !visible.length) return;
    const i = Math.max(0, visible.indexOf(selected));
    const n = visible[i];
    let handled = true;
    switch (ev.key) {
      case "ArrowDown":
        select(visible[Math.min(visible.length - 1, i + 1)], true);
        break;
      case "ArrowUp":
        select(visible[Math.max(0, i - 1)], true);
        break;
      case "ArrowRight":
        if (n.children.length && collapsed.has(n.id)) toggle(n, false);
        else if (n.children.length) select(n.children[0], true);
        break;
      case "ArrowLeft":
        if (n.children.length && !collapsed.has(n.id)) toggle(n, true);
        else if (n.parent) select(n.parent, true);
        break;
      case "Home":
        select(visible[0], true);
        break;
      case "End":
        select(visible[visible.length - 1], true);
        break;
      case "Enter":
      case " ":
        toggle(n);
        break;
      default:
        handled = false;
    }
    if (handled) ev.preventDefault();
  });

  return {
    setData(trace, observations) {
      const previous = selected ? selected.id : null;
      model = buildTree(trace, observations);
      model.traceName = trace.name;
      model.scores = new Map();
      for (const sc of trace.scores || []) {
        const key = sc.observation_id || trace.id;
        if (!model.scores.has(key)) model.scores.set(key, []);
        model.scores.get(key).push(sc);
      }
      collapsed = new Set([...collapsed].filter((id) => model.byId.has(id)));
      computeKeep();
      flatten();
      renderAxis();
      selected = previous ? model.byId.get(previous) || null : null;
      paint();
    },
    selectId(id, fromUser = false) {
      if (!model) return false;
      const n = model.byId.get(id);
      if (!n) return false;
      select(n, fromUser);
      return true;
    },
    selected: () => selected,
    focus: () => scroller.focus(),
    destroy() {
      resize.disconnect();
      if (frame) cancelAnimationFrame(frame);
    },
    rowHeight: ROW,
  };
}

