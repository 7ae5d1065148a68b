// Status: the backend, the writer's health (dropped events, queue depth, write latency), data
// size and version. Unknown fields the server adds are shown too, as they come.

import { api } from "../api.js";
import { h, replace } from "../dom.js";
import * as fmt from "../format.js";
import { errorState, loading, pageHeader, stat } from "./common.js";

const NICE = {
  uptime_s: (v) => fmt.duration(v * 1000),
  size_bytes: fmt.bytes,
  data_size_bytes: fmt.bytes,
  last_write_latency_ms: fmt.duration,
  p99_write_latency_ms: fmt.duration,
};

function flatten(obj, prefix = "", out = []) {
  for (const [k, v] of Object.entries(obj || {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === "object" && !Array.isArray(v)) flatten(v, key, out);
    else out.push([key, v]);
  }
  return out;
}

function show(key, value) {
  const leaf = key.split(".").pop();
  if (value === null || value === undefined) return "–";
  if (NICE[leaf] && typeof value === "number") return NICE[leaf](value);
  if (typeof value === "number") return fmt.count(value);
  if (typeof value === "boolean") return value ? "yes" : "no";
  return Array.isArray(value) ? value.join(", ") : String(value);
}

function find(obj, key) {
  for (const [k, v] of flatten(obj)) if (k === key || k.endsWith(`.${key}`)) return v;
  return undefined;
}

export function statusView(container) {
  const body = h("div", {}, loading());
  const refresh = h("button", { class: "btn btn-ghost", type: "button", onClick: () => load() }, "Refresh");
  container.appendChild(h("div", { class: "page" }, pageHeader("Status", refresh), body));
  let timer = null;

  async function load() {
    try {
      const [health, stats] = await Promise.all([api("health"), api("stats")]);
      render(health || {}, stats || {});
    } catch (err) {
      replace(body, errorState(err, load));
    }
    clearTimeout(timer);
    timer = setTimeout(load, 5000);
  }

  function table(rows) {
    return h("table", { class: "table table-compact kv-table" }, h("tbody", {}, rows.map(([k, v]) => h("tr", { dataset: { key: k } }, h("td", { class: "muted" }, k), h("td", { class: "mono" }, show(k, v))))));
  }

  function render(health, stats) {
    const dropped = find(stats, "events_dropped");
    const sizeBytes = find(stats, "size_bytes") ?? find(stats, "data_size_bytes");
    replace(
      body,
      h(
        "div",
        { class: "kpis" },
        stat("Status", health.status || "–", health.status === "ok" ? "stat-ok" : "stat-error"),
        stat("Backend", show("backend", health.backend ?? find(stats, "backend"))),
        stat("Version", show("version", health.version)),
        stat("Traces", show("traces", find(stats, "traces"))),
        stat("Data size", sizeBytes !== undefined ? fmt.bytes(sizeBytes) : "–"),
        stat("Dropped events", show("events_dropped", dropped), dropped ? "stat-error" : ""),
        stat("Queue", `${show("queue_depth", find(stats, "queue_depth"))} / ${show("queue_max", find(stats, "queue_max"))}`),
        stat("Write latency p99", show("p99_write_latency_ms", find(stats, "p99_write_latency_ms"))),
      ),
      h(
        "div",
        { class: "grid-2" },
        h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", { class: "card-title" }, "Server")), table(flatten(health))),
        h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", { class: "card-title" }, "Pipeline and store")), table(flatten(stats))),
      ),
    );
  }

  load();
  return { unmount: () => clearTimeout(timer) };
}
