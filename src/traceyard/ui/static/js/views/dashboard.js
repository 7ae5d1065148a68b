// The dashboard: traces, errors, latency p50/p95, tokens and cost over a chosen range, broken
// down by model or by name, with the costliest and slowest names and users.

import { api } from "../api.js";
import { h, replace } from "../dom.js";
import * as fmt from "../format.js";
import { barList, timeChart } from "../charts.js";
import { hashFor, replaceHash } from "../router.js";
import { errorState, loading, pageHeader, stat } from "./common.js";

const RANGES = {
  "1h": { ms: 3.6e6, interval: 120, label: "1 h" },
  "24h": { ms: 8.64e7, interval: 3600, label: "24 h" },
  "7d": { ms: 6.048e8, interval: 6 * 3600, label: "7 d" },
  "30d": { ms: 2.592e9, interval: 86400, label: "30 d" },
};
const METRICS = {
  total_cost: { label: "Cost", format: fmt.cost },
  total_tokens: { label: "Tokens", format: fmt.tokens },
  traces: { label: "Traces", format: fmt.count },
  latency_p95_ms: { label: "Latency p95", format: fmt.duration },
};
const PALETTE = 8;

function pointsOf(res) {
  if (Array.isArray(res)) return res;
  if (res && Array.isArray(res.data)) return res.data;
  if (res && Array.isArray(res.points)) return res.points;
  return [];
}

/** Bucket starts covering [start, end), aligned on the buckets the server returned. */
function grid(points, startMs, endMs, intervalMs) {
  const anchor = points.length ? fmt.parseTime(points[0].bucket_start) : Math.floor(startMs / intervalMs) * intervalMs;
  let t = anchor - Math.ceil((anchor - startMs) / intervalMs) * intervalMs;
  if (t > startMs) t -= intervalMs;
  const out = [];
  for (; t < endMs && out.length < 2000; t += intervalMs) if (t + intervalMs > startMs) out.push(t);
  return out;
}

function byTime(points, times, intervalMs) {
  const index = new Map(times.map((t, i) => [t, i]));
  const rows = times.map(() => null);
  for (const p of points) {
    const t = fmt.parseTime(p.bucket_start);
    let i = index.get(t);
    if (i === undefined) i = Math.round((t - times[0]) / intervalMs);
    if (i >= 0 && i < rows.length) rows[i] = p;
  }
  return rows;
}

function sumPoints(points) {
  const out = { traces: 0, errors: 0, total_tokens: 0, total_cost: 0, observations: 0, p50: null, p95: null };
  for (const p of points) {
    out.traces += p.traces || 0;
    out.errors += p.errors || 0;
    out.total_tokens += p.total_tokens || 0;
    out.total_cost += p.total_cost || 0;
    out.observations += p.observations || 0;
  }
  // With one bucket for the whole range the percentiles are exact; otherwise the busiest bucket's.
  const busiest = [...points].sort((a, b) => (b.traces || 0) - (a.traces || 0))[0];
  if (busiest) {
    out.p50 = busiest.latency_p50_ms ?? null;
    out.p95 = busiest.latency_p95_ms ?? null;
  }
  return out;
}

export function dashboardView(container, route) {
  let range = RANGES[route.params.get("range")] ? route.params.get("range") : "24h";
  let groupBy = route.params.get("group_by") === "name" ? "name" : "model";
  let metric = METRICS[route.params.get("metric")] ? route.params.get("metric") : "total_cost";
  let charts = [];
  let token = 0;

  const rangeSeg = h("span", { class: "seg" });
  const body = h("div", { class: "dash" }, loading());
  container.appendChild(h("div", { class: "page" }, pageHeader("Dashboard", rangeSeg), body));

  const sync = () => {
    replace(
      rangeSeg,
      Object.entries(RANGES).map(([key, r]) =>
        h("button", { class: ["seg-btn", key === range ? "active" : ""], type: "button", dataset: { range: key }, onClick: () => ((range = key), commit()) }, r.label),
      ),
    );
  };
  const commit = () => {
    replaceHash(hashFor(["dashboard"], { range, group_by: groupBy, metric }));
    sync();
    load();
  };

  async function load() {
    const mine = ++token;
    const r = RANGES[range];
    const endMs = Date.now();
    // Buckets start on a multiple of the interval (whole UTC hours or more), which the
    // server answers from its hourly rollup instead of scanning every trace of the range.
    const step = r.interval * 1000;
    const startMs = Math.floor((endMs - r.ms) / step) * step;
    const window = { start: new Date(startMs).toISOString(), end: new Date(endMs).toISOString() };
    // One bucket from the aligned start past the end: whole multiples of the interval, so the
    // "whole range" series is a single point per group (and still starts on the hour).
    const wholeS = Math.ceil((endMs - startMs) / step) * r.interval;
    try {
      const [series, total, grouped, groupedTotal, names, users, slow] = await Promise.all([
        api("metrics/timeseries", { ...window, interval_s: r.interval }),
        api("metrics/timeseries", { ...window, interval_s: wholeS }),
        api("metrics/timeseries", { ...window, interval_s: r.interval, group_by: groupBy }),
        api("metrics/timeseries", { ...window, interval_s: wholeS, group_by: groupBy }),
        groupBy === "name" ? null : api("metrics/timeseries", { ...window, interval_s: wholeS, group_by: "name" }),
        api("users", { limit: 200 }),
        api("traces", { sort: "latency", order: "desc", limit: 200, start_after: window.start }),
      ]);
      if (mine !== token) return;
      render({
        series: pointsOf(series),
        total: sumPoints(pointsOf(total)),
        grouped: pointsOf(grouped),
        groupedTotal: pointsOf(groupedTotal),
        names: groupBy === "name" ? pointsOf(groupedTotal) : pointsOf(names),
        users: (users && users.data) || [],
        slow: (slow && slow.data) || [],
        startMs,
        endMs,
        intervalMs: r.interval * 1000,
      });
    } catch (err) {
      if (mine === token) replace(body, errorState(err, load));
    }
  }

  function card(title, content, cls = "") {
    return h("section", { class: `card ${cls}`.trim() }, h("div", { class: "card-head" }, h("h2", { class: "card-title" }, title)), content);
  }

  function render(d) {
    for (const c of charts) c.destroy();
    charts = [];
    const times = grid(d.series, d.startMs, d.endMs, d.intervalMs);
    const rows = byTime(d.series, times, d.intervalMs);
    const col = (key) => rows.map((p) => (p ? p[key] ?? 0 : 0));
    const colOrNull = (key) => rows.map((p) => (p && p.traces ? p[key] ?? null : null));
    const errorRate = d.total.traces ? (d.total.errors / d.total.traces) * 100 : 0;

    const chartHosts = {
      traces: h("div", { class: "chart-host", dataset: { chart: "traces" } }),
      latency: h("div", { class: "chart-host", dataset: { chart: "latency" } }),
      tokens: h("div", { class: "chart-host", dataset: { chart: "tokens" } }),
      cost: h("div", { class: "chart-host", dataset: { chart: "cost" } }),
      breakdown: h("div", { class: "chart-host", dataset: { chart: "breakdown" } }),
    };

    // Breakdown: the top groups by the chosen metric over the range, the rest folded in "other".
    const m = METRICS[metric];
    const totals = [...d.groupedTotal].sort((a, b) => (b[metric] || 0) - (a[metric] || 0));
    const top = totals.slice(0, PALETTE - 1).map((p) => p.group ?? "(none)");
    const groupSeries = top.map((g, i) => ({ name: g, values: times.map(() => 0), kind: metric === "latency_p95_ms" ? "line" : "bar", cls: `c${i}` }));
    const other = { name: "other", values: times.map(() => 0), kind: "bar", cls: `c${PALETTE - 1}` };
    for (const p of d.grouped) {
      const t = fmt.parseTime(p.bucket_start);
      const i = Math.round((t - times[0]) / d.intervalMs);
      if (i < 0 || i >= times.length) continue;
      const gi = top.indexOf(p.group ?? "(none)");
      const v = p[metric] || 0;
      if (gi >= 0) groupSeries[gi].values[i] = metric === "latency_p95_ms" ? Math.max(groupSeries[gi].values[i] || 0, v) : groupSeries[gi].values[i] + v;
      else if (metric !== "latency_p95_ms") other.values[i] += v;
    }
    if (metric === "latency_p95_ms") for (const sr of groupSeries) sr.values = sr.values.map((v) => v || null);
    if (other.values.some((v) => v > 0)) groupSeries.push(other);

    const metricSeg = h(
      "span",
      { class: "seg seg-sm" },
      Object.entries(METRICS).map(([key, mm]) => h("button", { class: ["seg-btn", key === metric ? "active" : ""], type: "button", onClick: () => ((metric = key), commit()) }, mm.label)),
    );
    const groupSeg = h(
      "span",
      { class: "seg seg-sm" },
      ["model", "name"].map((g) => h("button", { class: ["seg-btn", g === groupBy ? "active" : ""], type: "button", dataset: { group: g }, onClick: () => ((groupBy = g), commit()) }, `By ${g}`)),
    );

    const names = d.names.filter((p) => p.group !== null && p.group !== undefined);
    const costlyNames = [...names].sort((a, b) => b.total_cost - a.total_cost).slice(0, 8).map((p) => ({ label: p.group, value: p.total_cost || 0, note: `${fmt.count(p.traces)} traces`, href: hashFor(["traces"], { name: p.group }) }));
    const slowNames = names.filter((p) => p.latency_p95_ms !== null && p.latency_p95_ms !== undefined).sort((a, b) => b.latency_p95_ms - a.latency_p95_ms).slice(0, 8).map((p) => ({ label: p.group, value: p.latency_p95_ms, note: `p50 ${fmt.duration(p.latency_p50_ms)}`, href: hashFor(["traces"], { name: p.group }) }));
    const costlyUsers = [...d.users].sort((a, b) => b.total_cost - a.total_cost).slice(0, 8).map((u) => ({ label: u.id, value: u.total_cost || 0, note: `${fmt.count(u.trace_count)} traces`, href: hashFor(["traces"], { user_id: u.id }) }));
    const perUser = new Map();
    for (const t of d.slow) {
      if (!t.user_id || t.latency_ms === null || t.latency_ms === undefined) continue;
      const e = perUser.get(t.user_id) || { max: 0, n: 0 };
      e.max = Math.max(e.max, t.latency_ms);
      e.n += 1;
      perUser.set(t.user_id, e);
    }
    const slowUsers = [...perUser.entries()].sort((a, b) => b[1].max - a[1].max).slice(0, 8).map(([u, e]) => ({ label: u, value: e.max, note: `${e.n} slow traces`, href: hashFor(["traces"], { user_id: u, sort: "latency" }) }));

    replace(
      body,
      h(
        "div",
        { class: "kpis" },
        stat("Traces", fmt.count(d.total.traces)),
        stat("Errors", `${fmt.count(d.total.errors)} · ${errorRate.toFixed(1)}%`, d.total.errors ? "stat-error" : ""),
        stat("Latency p50", fmt.duration(d.total.p50)),
        stat("Latency p95", fmt.duration(d.total.p95)),
        stat("Tokens", fmt.tokens(d.total.total_tokens)),
        stat("Cost", fmt.cost(d.total.total_cost)),
      ),
      h(
        "div",
        { class: "grid-2" },
        card("Traces and errors", chartHosts.traces),
        card("Latency", chartHosts.latency),
        card("Tokens", chartHosts.tokens),
        card("Cost", chartHosts.cost),
      ),
      h(
        "section",
        { class: "card card-wide" },
        h("div", { class: "card-head" }, h("h2", { class: "card-title" }, `${m.label} by ${groupBy}`), h("span", { class: "spacer" }), groupSeg, metricSeg),
        chartHosts.breakdown,
      ),
      h(
        "div",
        { class: "grid-4" },
        card("Costliest names", barList(costlyNames, fmt.cost)),
        card("Slowest names (p95)", barList(slowNames, fmt.duration)),
        card("Costliest users (all time)", barList(costlyUsers, fmt.cost, "No users yet.")),
        card("Slowest users", barList(slowUsers, fmt.duration, "No user-tagged traces in this range.")),
      ),
    );
    charts.push(
      timeChart(chartHosts.traces, {
        times,
        label: "traces and errors",
        format: fmt.count,
        series: [
          { name: "traces", values: col("traces"), kind: "bar", cls: "c-accent" },
          { name: "errors", values: col("errors"), kind: "bar", cls: "c-error" },
        ],
      }),
      timeChart(chartHosts.latency, {
        times,
        label: "latency",
        format: fmt.duration,
        series: [
          { name: "p50", values: colOrNull("latency_p50_ms"), kind: "line", cls: "c-accent" },
          { name: "p95", values: colOrNull("latency_p95_ms"), kind: "line", cls: "c-warn" },
        ],
      }),
      timeChart(chartHosts.tokens, { times, label: "tokens", format: fmt.tokens, series: [{ name: "tokens", values: col("total_tokens"), kind: "bar", cls: "c1" }] }),
      timeChart(chartHosts.cost, { times, label: "cost", format: fmt.cost, series: [{ name: "cost", values: col("total_cost"), kind: "bar", cls: "c2" }] }),
      timeChart(chartHosts.breakdown, { times, label: `${m.label} by ${groupBy}`, format: m.format, stacked: metric !== "latency_p95_ms", height: 200, series: groupSeries.length ? groupSeries : [{ name: m.label, values: times.map(() => 0), kind: "bar", cls: "c0" }] }),
    );
  }

  sync();
  load();
  return {
    update(newRoute) {
      const r = newRoute.params.get("range");
      if (RANGES[r] && r !== range) {
        range = r;
        sync();
        load();
      }
    },
    unmount() {
      for (const c of charts) c.destroy();
    },
  };
}
