// One trace: header with totals, the tree + waterfall, and the chosen node's details.
// The URL names the trace and the chosen observation: "#/traces/<id>?obs=<id>".

import { api, liveStream, traceIdsOf } from "../api.js";
import { copyButton, h, replace, throttle } from "../dom.js";
import * as fmt from "../format.js";
import { icon, typeBadge } from "../icons.js";
import { jsonView, valueView } from "../json_view.js";
import { asMessages, conversationView } from "../messages.js";
import { hashFor, lastList, replaceHash } from "../router.js";
import { scoreForm, scoreList } from "../scores.js";
import { createTree } from "../tree.js";
import { errorState, latencyClass, loading, scoreChip, stat, statusPill, tagChip } from "./common.js";

const USAGE_ORDER = ["input", "output", "cache_read", "cache_write", "reasoning"];

export function traceView(container, route) {
  const traceId = route.path[1];
  let trace = null;
  let obsId = route.params.get("obs");
  let ioMode = "pretty";

  const header = h("div", { class: "trace-head" }, loading());
  const treeHost = h("div", { class: "pane pane-tree" });
  const detail = h("div", { class: "pane pane-detail", tabindex: "-1" });
  const root = h("div", { class: "page page-trace" }, header, h("div", { class: "split" }, treeHost, h("div", { class: "splitter" }), detail));
  container.appendChild(root);

  const tree = createTree(treeHost, {
    onSelect(node, fromUser) {
      obsId = node.kind === "trace" ? null : node.id;
      if (fromUser) replaceHash(hashFor(["traces", traceId], { obs: obsId }));
      renderDetail(node);
    },
  });

  setupSplitter(root.querySelector(".splitter"), treeHost);

  async function load(first = false) {
    try {
      trace = await api(`traces/${encodeURIComponent(traceId)}`);
    } catch (err) {
      if (first) {
        replace(header);
        replace(treeHost, errorState(err.status === 404 ? { message: `No trace with id ${traceId}.`, status: 404 } : err, () => load(true)));
        replace(detail);
      }
      return;
    }
    renderHeader();
    tree.setData(trace, trace.observations || []);
    if (first) {
      if (!(obsId && tree.selectId(obsId))) tree.selectId(trace.id);
      tree.focus();
    } else {
      const sel = tree.selected();
      if (sel) renderDetail(sel, { force: false });
    }
  }

  function renderHeader() {
    const t = trace;
    const obsCount = (t.observations || []).length;
    replace(
      header,
      h(
        "div",
        { class: "trace-title-row" },
        h("a", { class: "crumb", href: lastList() }, "Traces"),
        h("span", { class: "crumb-sep" }, "/"),
        typeBadge("trace", 14),
        h("h1", { class: "trace-title", title: t.name || "" }, t.name || "(unnamed trace)"),
        statusPill(t.status),
        h("span", { class: "id-pill mono", title: t.id }, fmt.shortId(t.id)),
        copyButton(t.id, "Copy id"),
        copyButton(() => location.href, "Copy link"),
      ),
      h(
        "div",
        { class: "trace-stats" },
        stat("Started", fmt.dateTime(t.start_time)),
        stat("Latency", fmt.duration(t.latency_ms), latencyClass(t.latency_ms)),
        stat("Observations", fmt.count(obsCount)),
        stat("Tokens", fmt.tokens(t.total_tokens)),
        stat("Cost", fmt.cost(t.total_cost)),
        t.error_count ? stat("Errors", fmt.count(t.error_count), "stat-error") : null,
        t.user_id ? stat("User", h("a", { href: hashFor(["traces"], { user_id: t.user_id }), title: "Traces of this user" }, t.user_id)) : null,
        t.session_id ? stat("Session", h("a", { href: hashFor(["sessions", t.session_id]), title: "Open the session" }, t.session_id)) : null,
        (t.tags || []).length ? stat("Tags", h("span", { class: "tags" }, t.tags.map((tag) => tagChip(tag)))) : null,
        (t.scores || []).length ? stat("Scores", h("span", { class: "tags" }, t.scores.filter((sc) => !sc.observation_id).map(scoreChip))) : null,
      ),
    );
  }

  // ---------------------------------------------------------------- detail pane

  function section(title, content, { actions = null, open = true, cls = "" } = {}) {
    const det = h("details", { class: `section ${cls}`.trim(), open }, h("summary", { class: "section-head" }, icon("chevron", 12, "section-caret"), h("span", { class: "section-title" }, title), h("span", { class: "spacer" }), actions), h("div", { class: "section-body" }, content));
    return det;
  }

  function ioSection(title, value) {
    if (value === null || value === undefined) return section(title, h("div", { class: "muted small" }, "none"), { cls: "io" });
    const msgs = ioMode === "pretty" ? asMessages(value) : null;
    const content = msgs ? conversationView(msgs) : ioMode === "json" ? jsonView(value, { openDepth: 6 }) : valueView(value);
    const modeBtn = h(
      "span",
      { class: "seg" },
      ["pretty", "json"].map((m) =>
        h(
          "button",
          {
            class: ["seg-btn", ioMode === m ? "active" : ""],
            type: "button",
            onClick: (ev) => {
              ev.preventDefault();
              ioMode = m;
              const sel = tree.selected();
              if (sel) renderDetail(sel);
            },
          },
          m === "pretty" ? "Formatted" : "JSON",
        ),
      ),
    );
    return section(title, content, { actions: modeBtn, cls: "io" });
  }

  function kvGrid(obj) {
    return h(
      "dl",
      { class: "kv" },
      Object.entries(obj).map(([k, v]) => [h("dt", {}, k), h("dd", { class: "mono" }, typeof v === "string" ? v : JSON.stringify(v))]),
    );
  }

  function usageTable(usage, costs) {
    const keys = [...new Set([...USAGE_ORDER.filter((k) => k in usage || k in costs), ...Object.keys(usage), ...Object.keys(costs)])].filter((k) => k !== "total");
    const rows = keys.map((k) =>
      h("tr", { dataset: { bucket: k } }, h("td", {}, k.replace(/_/g, " ")), h("td", { class: "num mono" }, k in usage ? fmt.tokens(usage[k]) : "–"), h("td", { class: "num mono" }, k in costs ? fmt.cost(costs[k]) : "–")),
    );
    const totalTokens = typeof usage.total === "number" ? usage.total : keys.reduce((a, k) => a + (usage[k] || 0), 0);
    const totalCost = typeof costs.total === "number" ? costs.total : keys.reduce((a, k) => a + (costs[k] || 0), 0);
    return h(
      "table",
      { class: "table table-compact usage-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Bucket"), h("th", { class: "num" }, "Tokens"), h("th", { class: "num" }, "Cost"))),
      h("tbody", {}, rows),
      h("tfoot", {}, h("tr", { dataset: { bucket: "total" } }, h("td", {}, "total"), h("td", { class: "num mono" }, fmt.tokens(totalTokens)), h("td", { class: "num mono" }, fmt.cost(totalCost)))),
    );
  }

  function scoresFor(observationId) {
    return (trace.scores || []).filter((sc) => (observationId ? sc.observation_id === observationId : !sc.observation_id));
  }

  function scoresSection(observationId) {
    const reload = async () => {
      const res = await api("scores", { trace_id: traceId, limit: 500 });
      trace = { ...trace, scores: res && Array.isArray(res.data) ? res.data : Array.isArray(res) ? res : trace.scores };
      renderHeader();
      tree.setData(trace, trace.observations || []);
      const sel = tree.selected();
      if (sel) renderDetail(sel);
    };
    const own = scoresFor(observationId);
    return section(
      `Scores${own.length ? ` (${own.length})` : ""}`,
      h("div", {}, scoreList(own), scoreForm({ traceId, observationId, onAdded: reload })),
      { cls: "scores" },
    );
  }

  let detailKey = "";

  /** Re-render the detail pane when its data changed; never under the user's typing. */
  function renderDetail(node, { force = true } = {}) {
    const own = node.obs || { ...trace, observations: null }; // the root: not the whole tree
    const key = JSON.stringify([node.id, own, scoresFor(node.obs ? node.id : null), ioMode]);
    const sameNode = detail.dataset.node === node.id;
    if (!force && sameNode) {
      if (key === detailKey) return;
      const typing = [...detail.querySelectorAll("input, textarea")].some((el) => el.value) || detail.contains(document.activeElement);
      if (typing) return;
    }
    detailKey = key;
    const scroll = detail.scrollTop;
    detail.dataset.node = node.id;
    if (node.kind === "trace") renderTraceDetail();
    else renderObservationDetail(node.obs);
    if (sameNode) detail.scrollTop = scroll;
  }

  function renderTraceDetail() {
    const t = trace;
    const facts = {};
    for (const k of ["release", "version", "environment", "project"]) if (t[k]) facts[k] = t[k];
    replace(
      detail,
      h(
        "div",
        { class: "detail-head" },
        typeBadge("trace", 16),
        h("div", { class: "detail-title" }, t.name || "(unnamed trace)"),
        h("span", { class: "type-label" }, "trace"),
      ),
      h(
        "div",
        { class: "facts" },
        fact("Start", fmt.dateTime(t.start_time)),
        fact("Latency", fmt.duration(t.latency_ms)),
        fact("Tokens", fmt.tokens(t.total_tokens)),
        fact("Cost", fmt.cost(t.total_cost)),
        Object.entries(facts).map(([k, v]) => fact(k, v)),
      ),
      t.usage && Object.keys(t.usage).length ? section("Usage", usageTable(t.usage, {})) : null,
      ioSection("Input", t.input),
      ioSection("Output", t.output),
      section("Metadata", t.metadata && Object.keys(t.metadata).length ? jsonView(t.metadata) : h("div", { class: "muted small" }, "none"), { open: !!(t.metadata && Object.keys(t.metadata).length) }),
      scoresSection(null),
    );
  }

  /** The prompt version a generation used, linking to it on the prompt's page. */
  function promptLink(o) {
    const params = { project: trace.project && trace.project !== "default" ? trace.project : "", version: o.prompt_version };
    const label = `${o.prompt_name}${o.prompt_version ? ` v${o.prompt_version}` : ""}`;
    return h("a", { href: hashFor(["prompts", o.prompt_name], params), title: "Open this prompt version" }, label);
  }

  function fact(label, value, cls = "") {
    return h("div", { class: `fact ${cls}`.trim() }, h("span", { class: "fact-label" }, label), h("span", { class: "fact-value" }, value));
  }

  function renderObservationDetail(o) {
    const usage = o.usage || {};
    const costs = o.cost || {};
    const hasUsage = Object.keys(usage).length || Object.keys(costs).length;
    const level = o.level || "DEFAULT";
    const linkHash = hashFor(["traces", traceId], { obs: o.id });
    replace(
      detail,
      h(
        "div",
        { class: "detail-head" },
        typeBadge(o.type || "span", 16),
        h("div", { class: "detail-title", title: o.name || "" }, o.name || `(${o.type})`),
        h("span", { class: `type-label t-text-${o.type}` }, o.type),
        h("span", { class: "spacer" }),
        copyButton(() => new URL(linkHash, location.href).href, "Copy link"),
      ),
      h(
        "div",
        { class: "facts" },
        fact("Start", fmt.timeOfDay(o.start_time)),
        fact("Duration", o.end_time ? fmt.duration(o.latency_ms) : "running"),
        o.time_to_first_token_ms !== null && o.time_to_first_token_ms !== undefined ? fact("Time to first token", fmt.duration(o.time_to_first_token_ms), "fact-ttft") : null,
        level !== "DEFAULT" ? fact("Level", level, `lvl-fact lvl-${level.toLowerCase()}`) : null,
        o.model ? fact("Model", o.model, "fact-model") : null,
        hasUsage ? fact("Tokens", fmt.tokens(typeof usage.total === "number" ? usage.total : Object.values(usage).reduce((a, b) => a + b, 0)), "fact-tokens") : null,
        hasUsage ? fact("Cost", fmt.cost(typeof costs.total === "number" ? costs.total : Object.values(costs).reduce((a, b) => a + b, 0)), "fact-cost") : null,
        o.prompt_name ? fact("Prompt", promptLink(o), "fact-prompt") : null,
      ),
      o.status_message
        ? h("div", { class: `callout ${level === "ERROR" ? "callout-error" : level === "WARNING" ? "callout-warn" : ""}`, role: level === "ERROR" ? "alert" : undefined }, icon("alert", 14), h("pre", { class: "callout-text" }, o.status_message))
        : null,
      hasUsage ? section("Usage and cost", usageTable(usage, costs), { cls: "usage" }) : null,
      o.model_parameters && Object.keys(o.model_parameters).length ? section("Model parameters", kvGrid(o.model_parameters), { cls: "params" }) : null,
      ioSection("Input", o.input),
      ioSection("Output", o.output),
      section("Metadata", o.metadata && Object.keys(o.metadata).length ? jsonView(o.metadata) : h("div", { class: "muted small" }, "none"), { open: !!(o.metadata && Object.keys(o.metadata).length), cls: "metadata" }),
      scoresSection(o.id),
      h(
        "div",
        { class: "ids muted small mono" },
        h("span", {}, `id ${o.id}`),
        o.parent_id ? h("a", { href: hashFor(["traces", traceId], { obs: o.parent_id }) }, `parent ${o.parent_id}`) : null,
      ),
    );
  }

  // ---------------------------------------------------------------- live refresh

  const refresh = throttle(() => load(false), 1000);
  const stream = liveStream({ trace_id: traceId }, (msg) => {
    if (traceIdsOf(msg).has(traceId)) refresh();
  });

  load(true);

  return {
    update(newRoute) {
      const next = newRoute.params.get("obs");
      if (next === obsId) return;
      obsId = next;
      if (trace) tree.selectId(obsId || traceId);
    },
    unmount() {
      stream.close();
      tree.destroy();
    },
  };
}

/** Drag the divider between the tree and the detail pane. */
function setupSplitter(handle, left) {
  let startX = 0;
  let startW = 0;
  const move = (ev) => {
    const w = Math.max(320, Math.min(window.innerWidth - 420, startW + ev.clientX - startX));
    left.style.flexBasis = `${w}px`;
  };
  const up = () => {
    document.removeEventListener("pointermove", move);
    document.removeEventListener("pointerup", up);
    document.body.classList.remove("resizing");
  };
  handle.addEventListener("pointerdown", (ev) => {
    startX = ev.clientX;
    startW = left.getBoundingClientRect().width;
    document.body.classList.add("resizing");
    document.addEventListener("pointermove", move);
    document.addEventListener("pointerup", up);
  });
}
