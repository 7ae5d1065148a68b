// The traces table: filters in the URL, keyset paging that stays put while data arrives, and
// live updates over the WebSocket with a pause toggle.

import { api, liveStream, traceIdsOf } from "../api.js";
import { debounce, h, replace, throttle } from "../dom.js";
import * as fmt from "../format.js";
import { icon } from "../icons.js";
import { hashFor, rememberList, replaceHash } from "../router.js";
import { emptyState, errorState, latencyClass, loading, pageHeader, scoreChip, statusDot, tagChip } from "./common.js";

const TEXT_FILTERS = [
  ["name", "Name contains", "text"],
  ["user_id", "User id", "text"],
  ["session_id", "Session id", "text"],
  ["model", "Model", "text"],
  ["prompt_name", "Prompt name", "text"],
  ["prompt_version", "Prompt version", "number"],
  ["min_latency_ms", "Min latency (ms)", "number"],
  ["max_latency_ms", "Max latency (ms)", "number"],
  ["min_cost", "Min cost ($)", "number"],
  ["project", "Project", "text"],
];
const LIST_FILTERS = [
  ["tags", "Tags (all of)", "prod, support"],
  ["metadata", "Metadata", "key:value, key2:value2"],
];
const SELECT_FILTERS = {
  status: ["", "running", "ok", "error", "incomplete"],
  level: ["", "DEBUG", "DEFAULT", "WARNING", "ERROR"],
};
const RANGES = { "": "All time", "15m": "Last 15 min", "1h": "Last hour", "24h": "Last 24 h", "7d": "Last 7 days", "30d": "Last 30 days" };
const RANGE_MS = { "15m": 9e5, "1h": 3.6e6, "24h": 8.64e7, "7d": 6.048e8, "30d": 2.592e9 };
const SORTS = { start_time: "Start time", latency: "Latency", cost: "Cost", tokens: "Tokens" };
const FILTER_LABELS = {
  text: "Search",
  name: "Name",
  user_id: "User",
  session_id: "Session",
  tags: "Tag",
  status: "Status",
  level: "Level",
  model: "Model",
  min_latency_ms: "Latency ≥",
  max_latency_ms: "Latency ≤",
  min_cost: "Cost ≥",
  metadata: "Metadata",
  start_after: "After",
  start_before: "Before",
  range: "Range",
  project: "Project",
  prompt_name: "Prompt",
  prompt_version: "Prompt version",
};
const MULTI = new Set(["tags", "metadata"]);

function stateFrom(params) {
  const st = { filters: {}, sort: "start_time", order: "desc", limit: 50 };
  for (const key of Object.keys(FILTER_LABELS)) {
    if (MULTI.has(key)) {
      const values = params.getAll(key).filter(Boolean);
      if (values.length) st.filters[key] = values;
    } else if (params.get(key)) st.filters[key] = params.get(key);
  }
  if (SORTS[params.get("sort")]) st.sort = params.get("sort");
  if (params.get("order") === "asc") st.order = "asc";
  const limit = Number(params.get("limit"));
  if ([25, 50, 100, 200].includes(limit)) st.limit = limit;
  return st;
}

function hashOf(st) {
  return hashFor(["traces"], {
    ...st.filters,
    sort: st.sort === "start_time" ? "" : st.sort,
    order: st.order === "desc" ? "" : st.order,
    limit: st.limit === 50 ? "" : st.limit,
  });
}

function apiParams(st, cursor) {
  const { range, ...filters } = st.filters;
  const out = { ...filters, sort: st.sort, order: st.order, limit: st.limit, cursor };
  if (range && RANGE_MS[range] && !filters.start_after) out.start_after = new Date(Date.now() - RANGE_MS[range]).toISOString();
  return out;
}

export function tracesView(container, route) {
  let st = stateFrom(route.params);
  let cursors = [null]; // cursor of each page visited; the last is the current page's
  let rows = [];
  let nextCursor = null;
  let paused = false;
  let liveState = "connecting";
  const pendingNew = new Set();
  let flash = new Set();
  let controller = null;
  let filtersOpen = false;
  // Scores per trace id: the list API does not embed them, so the visible rows' scores are
  // fetched (a few at a time) and kept until a live change says a trace's scores changed.
  const scoreCache = new Map();

  const liveBtn = h("button", { class: "btn live-btn", type: "button", title: "Pause or resume live updates" });
  const refreshBtn = h("button", { class: "btn btn-ghost", type: "button", title: "Refresh", onClick: () => load() }, icon("refresh", 14));
  const search = h("input", {
    class: "input search",
    type: "search",
    placeholder: "Search names, inputs, outputs…   /",
    "aria-label": "Search traces",
    "data-search": "",
    value: st.filters.text || "",
  });
  const rangeSel = h(
    "select",
    { class: "input select", "aria-label": "Time range" },
    Object.entries(RANGES).map(([v, l]) => h("option", { value: v }, l)),
  );
  const statusSel = h(
    "select",
    { class: "input select", "aria-label": "Status" },
    SELECT_FILTERS.status.map((v) => h("option", { value: v }, v ? `Status: ${v}` : "Any status")),
  );
  const sortSel = h(
    "select",
    { class: "input select", "aria-label": "Sort by" },
    Object.entries(SORTS).map(([v, l]) => h("option", { value: v }, `Sort: ${l}`)),
  );
  const orderBtn = h("button", { class: "btn", type: "button", title: "Sort order" });
  const filterBtn = h("button", { class: "btn", type: "button" }, icon("filter", 14), "Filters");
  const panel = h("div", { class: "filter-panel", hidden: true });
  const chips = h("div", { class: "chips" });
  const newPill = h("button", { class: "new-pill", type: "button", hidden: true });
  const body = h("div", { class: "table-wrap" });
  const pager = h("div", { class: "pager" });

  container.appendChild(
    h(
      "div",
      { class: "page" },
      pageHeader("Traces", newPill, liveBtn, refreshBtn),
      h("div", { class: "toolbar" }, h("div", { class: "search-box" }, icon("search", 14), search), rangeSel, statusSel, filterBtn, sortSel, orderBtn),
      panel,
      chips,
      body,
      pager,
    ),
  );

  // ---------------------------------------------------------------- state → URL → load

  const commit = (reset = true) => {
    if (reset) cursors = [null];
    replaceHash(hashOf(st));
    syncControls();
    load();
  };

  const setFilter = (key, value) => {
    if (value === undefined || value === null || value === "" || (Array.isArray(value) && !value.length)) delete st.filters[key];
    else st.filters[key] = value;
    if (!st.filters.prompt_name) delete st.filters.prompt_version; // a version needs its prompt
    commit();
  };

  search.addEventListener("input", debounce(() => setFilter("text", search.value.trim()), 300));
  search.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") {
      search.value = "";
      setFilter("text", "");
      search.blur();
    }
  });
  rangeSel.addEventListener("change", () => setFilter("range", rangeSel.value));
  statusSel.addEventListener("change", () => setFilter("status", statusSel.value));
  sortSel.addEventListener("change", () => {
    st.sort = sortSel.value;
    commit();
  });
  orderBtn.addEventListener("click", () => {
    st.order = st.order === "desc" ? "asc" : "desc";
    commit();
  });
  filterBtn.addEventListener("click", () => {
    filtersOpen = !filtersOpen;
    panel.hidden = !filtersOpen;
    filterBtn.classList.toggle("active", filtersOpen);
    if (filtersOpen) buildPanel();
  });
  liveBtn.addEventListener("click", () => {
    paused = !paused;
    renderLive();
    if (!paused && pendingNew.size && isLiveView()) showNew();
  });
  newPill.addEventListener("click", () => showNew());

  function buildPanel() {
    const inputs = {};
    const field = (key, label, type, placeholder) => {
      const value = MULTI.has(key) ? (st.filters[key] || []).join(", ") : st.filters[key] || "";
      const input = h("input", { class: "input", type, name: key, value, placeholder, "aria-label": label, step: type === "number" ? "any" : undefined });
      inputs[key] = input;
      return h("label", { class: "field" }, h("span", { class: "field-label" }, label), input);
    };
    const levelSel = h(
      "select",
      { class: "input select", name: "level" },
      SELECT_FILTERS.level.map((v) => h("option", { value: v, selected: (st.filters.level || "") === v }, v || "Any level")),
    );
    inputs.level = levelSel;
    const after = h("input", { class: "input", type: "datetime-local", name: "start_after", value: fmt.toLocalInput(st.filters.start_after) });
    const before = h("input", { class: "input", type: "datetime-local", name: "start_before", value: fmt.toLocalInput(st.filters.start_before) });
    const form = h(
      "form",
      { class: "filter-grid" },
      TEXT_FILTERS.map(([k, l, t]) => field(k, l, t)),
      LIST_FILTERS.map(([k, l, p]) => field(k, l, "text", p)),
      h("label", { class: "field" }, h("span", { class: "field-label" }, "Level (some observation)"), levelSel),
      h("label", { class: "field" }, h("span", { class: "field-label" }, "Started after"), after),
      h("label", { class: "field" }, h("span", { class: "field-label" }, "Started before"), before),
      h(
        "div",
        { class: "filter-actions" },
        h("button", { class: "btn btn-primary", type: "submit" }, "Apply"),
        h(
          "button",
          {
            class: "btn btn-ghost",
            type: "button",
            onClick: () => {
              st.filters = {};
              search.value = "";
              commit();
              buildPanel();
            },
          },
          "Clear all",
        ),
      ),
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      for (const [key, input] of Object.entries(inputs)) {
        const v = input.value.trim();
        if (MULTI.has(key)) {
          const list = v.split(",").map((x) => x.trim()).filter(Boolean);
          if (list.length) st.filters[key] = list;
          else delete st.filters[key];
        } else if (v) st.filters[key] = v;
        else delete st.filters[key];
      }
      const a = fmt.fromLocalInput(after.value);
      const b = fmt.fromLocalInput(before.value);
      if (a) st.filters.start_after = a;
      else delete st.filters.start_after;
      if (b) st.filters.start_before = b;
      else delete st.filters.start_before;
      commit();
    });
    replace(panel, form);
  }

  function syncControls() {
    if (document.activeElement !== search) search.value = st.filters.text || "";
    rangeSel.value = st.filters.range || "";
    statusSel.value = st.filters.status || "";
    sortSel.value = st.sort;
    replace(orderBtn, st.order === "desc" ? "↓ Desc" : "↑ Asc");
    const active = [];
    for (const [key, value] of Object.entries(st.filters)) {
      if (key === "text") continue;
      const values = Array.isArray(value) ? value : [value];
      for (const v of values) {
        const shown = key === "start_after" || key === "start_before" ? fmt.dateTime(v) : key === "range" ? RANGES[v] || v : v;
        active.push(
          h(
            "span",
            { class: "chip" },
            h("span", { class: "chip-key" }, FILTER_LABELS[key] || key),
            h("span", { class: "chip-val" }, shown),
            h(
              "button",
              {
                class: "chip-x",
                type: "button",
                title: "Remove filter",
                "aria-label": `Remove filter ${FILTER_LABELS[key] || key}`,
                onClick: () => setFilter(key, Array.isArray(value) ? value.filter((x) => x !== v) : ""),
              },
              icon("close", 10),
            ),
          ),
        );
      }
    }
    replace(chips, active);
    chips.hidden = !active.length;
  }

  function isLiveView() {
    return cursors.length === 1 && st.sort === "start_time" && st.order === "desc";
  }

  function renderLive() {
    liveBtn.className = `btn live-btn ${paused ? "paused" : liveState}`;
    const label = paused ? "Paused" : liveState === "live" ? "Live" : liveState === "connecting" ? "Connecting" : "Offline";
    replace(liveBtn, h("span", { class: "live-dot" }), label, icon(paused ? "play" : "pause", 12));
    liveBtn.setAttribute("aria-pressed", paused ? "true" : "false");
  }

  function renderNewPill() {
    newPill.hidden = pendingNew.size === 0;
    newPill.textContent = `${pendingNew.size} new trace${pendingNew.size === 1 ? "" : "s"} · show`;
  }

  function showNew() {
    pendingNew.clear();
    renderNewPill();
    if (!isLiveView()) {
      cursors = [null];
      if (st.sort !== "start_time" || st.order !== "desc") {
        st.sort = "start_time";
        st.order = "desc";
        replaceHash(hashOf(st));
        syncControls();
      }
    }
    load({ live: true });
  }

  // ---------------------------------------------------------------- loading and rendering

  async function load({ live = false } = {}) {
    rememberList(hashOf(st));
    if (controller) controller.abort();
    controller = new AbortController();
    const signal = controller.signal;
    if (!live) replace(body, loading());
    const previous = new Set(rows.map((r) => r.id));
    try {
      const page = await api("traces", apiParams(st, cursors[cursors.length - 1]), { signal });
      if (signal.aborted) return;
      rows = page.data || [];
      nextCursor = page.next_cursor || null;
      flash = live ? new Set(rows.filter((r) => !previous.has(r.id)).map((r) => r.id)) : new Set();
      renderTable();
      loadScores(signal);
    } catch (err) {
      if (err.name === "AbortError") return;
      replace(body, errorState(err, () => load()));
      replace(pager);
    }
  }

  async function loadScores(signal) {
    const missing = rows.filter((r) => !r.scores && !scoreCache.has(r.id)).map((r) => r.id);
    const fetchOne = async (id) => {
      try {
        const res = await api("scores", { trace_id: id, limit: 20 }, { signal });
        scoreCache.set(id, (res && res.data) || []);
      } catch (_e) {
        scoreCache.set(id, []);
      }
      if (signal.aborted) return;
      const cell = body.querySelector(`tr[data-id="${CSS.escape(id)}"] .col-scores`);
      if (cell) replace(cell, scoreCells(id, null));
    };
    const queue = [...missing];
    const worker = async () => {
      while (queue.length && !signal.aborted) await fetchOne(queue.shift());
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
  }

  function scoreCells(id, embedded) {
    const list = (embedded || scoreCache.get(id) || []).filter((sc) => !sc.observation_id);
    return list.slice(0, 2).map(scoreChip).concat(list.length > 2 ? [h("span", { class: "muted small" }, ` +${list.length - 2}`)] : []);
  }

  function sortHeader(label, key, cls) {
    const activeSort = st.sort === key;
    return h(
      "th",
      {
        class: ["sortable", cls, activeSort ? "sorted" : ""],
        title: `Sort by ${label.toLowerCase()}`,
        onClick: () => {
          if (st.sort === key) st.order = st.order === "desc" ? "asc" : "desc";
          else {
            st.sort = key;
            st.order = "desc";
          }
          commit();
        },
      },
      label,
      activeSort ? (st.order === "desc" ? " ↓" : " ↑") : "",
    );
  }

  function renderTable() {
    if (!rows.length) {
      const filtered = Object.keys(st.filters).length > 0;
      replace(
        body,
        filtered
          ? h(
              "div",
              {},
              emptyState("No traces match these filters", "Loosen or clear the filters to see more."),
              h("div", { class: "center" }, h("button", { class: "btn", type: "button", onClick: () => ((st.filters = {}), (search.value = ""), commit()) }, "Clear filters")),
            )
          : emptyState("No traces yet", "Run your app with the tracer attached and its runs show up here live.", true),
      );
      renderPager();
      return;
    }
    const table = h(
      "table",
      { class: "table traces-table" },
      h(
        "colgroup",
        {},
        ["time", "name", "user", "session", "tags", "lat", "tok", "cost", "level", "scores"].map((c) => h("col", { class: `w-${c}` })),
      ),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          sortHeader("Start time", "start_time", "col-time"),
          h("th", { class: "col-name" }, "Name"),
          h("th", {}, "User"),
          h("th", {}, "Session"),
          h("th", {}, "Tags"),
          sortHeader("Latency", "latency", "num"),
          sortHeader("Tokens", "tokens", "num"),
          sortHeader("Cost", "cost", "num"),
          h("th", {}, "Level"),
          h("th", {}, "Scores"),
        ),
      ),
      h("tbody", {}, rows.map(rowView)),
    );
    replace(body, table);
    renderPager();
  }

  function rowView(t) {
    const href = hashFor(["traces", t.id]);
    const level =
      t.error_count > 0
        ? h("span", { class: "badge badge-error" }, `${t.error_count} error${t.error_count === 1 ? "" : "s"}`)
        : t.status === "running" || t.status === "incomplete"
          ? h("span", { class: `badge badge-${t.status}` }, t.status)
          : h("span", { class: "muted" }, "–");
    const tags = t.tags || [];
    const tr = h(
      "tr",
      { class: ["row-link", flash.has(t.id) ? "row-new" : ""], dataset: { id: t.id } },
      h("td", { class: "col-time mono", title: fmt.relative(t.start_time) }, fmt.dateTime(t.start_time)),
      h(
        "td",
        { class: "col-name" },
        h("div", { class: "cell-name" }, statusDot(t.status), h("a", { class: "trace-link", href, title: t.id }, t.name || "(unnamed)")),
      ),
      h("td", { class: "col-user" }, t.user_id ? h("button", { class: "link-btn", type: "button", title: `Filter by user ${t.user_id}`, onClick: (ev) => (ev.stopPropagation(), setFilter("user_id", t.user_id)) }, t.user_id) : h("span", { class: "muted" }, "–")),
      h("td", { class: "col-session" }, t.session_id ? h("a", { class: "link-btn", href: hashFor(["sessions", t.session_id]), title: t.session_id, onClick: (ev) => ev.stopPropagation() }, t.session_id) : h("span", { class: "muted" }, "–")),
      h(
        "td",
        { class: "col-tags" },
        tags.slice(0, 2).map((tag) => tagChip(tag, (ev) => (ev.stopPropagation(), setFilter("tags", [...new Set([...(st.filters.tags || []), tag])])))),
        tags.length > 2 ? h("span", { class: "muted small", title: tags.join(", ") }, ` +${tags.length - 2}`) : null,
      ),
      h("td", { class: ["num mono", latencyClass(t.latency_ms)] }, fmt.duration(t.latency_ms)),
      h("td", { class: "num mono" }, fmt.tokens(t.total_tokens)),
      h("td", { class: "num mono" }, fmt.cost(t.total_cost)),
      h("td", {}, level),
      h("td", { class: "col-scores" }, scoreCells(t.id, t.scores)),
    );
    tr.addEventListener("click", (ev) => {
      if (ev.target.closest("a, button")) return;
      if (ev.metaKey || ev.ctrlKey) window.open(href, "_blank");
      else location.hash = href;
    });
    return tr;
  }

  function renderPager() {
    const page = cursors.length;
    const sizeSel = h(
      "select",
      { class: "input select select-sm", "aria-label": "Rows per page" },
      [25, 50, 100, 200].map((n) => h("option", { value: n, selected: n === st.limit }, `${n} / page`)),
    );
    sizeSel.addEventListener("change", () => {
      st.limit = Number(sizeSel.value);
      commit();
    });
    replace(
      pager,
      h("span", { class: "muted" }, rows.length ? `Page ${page} · ${rows.length} traces` : ""),
      h("div", { class: "spacer" }),
      sizeSel,
      h(
        "button",
        {
          class: "btn",
          type: "button",
          disabled: page <= 1,
          onClick: () => {
            cursors.pop();
            load();
          },
        },
        "← Prev",
      ),
      h(
        "button",
        {
          class: "btn",
          type: "button",
          disabled: !nextCursor,
          onClick: () => {
            cursors.push(nextCursor);
            load();
          },
        },
        "Next →",
      ),
    );
  }

  // ---------------------------------------------------------------- live stream

  const refreshLive = throttle(() => load({ live: true }), 1000);
  const stream = liveStream(
    { project: st.filters.project },
    (msg) => {
      const ids = traceIdsOf(msg);
      if (!ids.size) return;
      for (const id of ids) scoreCache.delete(id);
      const visible = new Set(rows.map((r) => r.id));
      const fresh = [...ids].filter((id) => !visible.has(id));
      if (paused || !isLiveView()) {
        for (const id of fresh) pendingNew.add(id);
        renderNewPill();
        return;
      }
      refreshLive();
    },
    (state) => {
      liveState = state;
      renderLive();
    },
  );

  syncControls();
  renderLive();
  load();

  return {
    update(newRoute) {
      const next = stateFrom(newRoute.params);
      if (hashOf(next) === hashOf(st)) return;
      st = next;
      cursors = [null];
      syncControls();
      if (filtersOpen) buildPanel();
      load();
    },
    unmount() {
      stream.close();
      if (controller) controller.abort();
    },
  };
}
