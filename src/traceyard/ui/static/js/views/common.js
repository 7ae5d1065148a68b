// Pieces several views share: page header, status pills, score chips, empty and error states.

import { copyButton, h } from "../dom.js";
import * as fmt from "../format.js";
import { icon } from "../icons.js";

export const SNIPPET = 'tracer = traceyard.Tracer.create(); chain.invoke(x, config={"callbacks": [tracer.handler]})';

export function pageHeader(title, ...right) {
  return h("header", { class: "page-head" }, h("h1", { class: "page-title" }, title), h("div", { class: "page-actions" }, right));
}

export function statusPill(status) {
  const s = ["running", "ok", "error", "incomplete"].includes(status) ? status : "unknown";
  return h("span", { class: `status status-${s}`, title: `status: ${status}` }, h("span", { class: "dot" }), s);
}

export function statusDot(status) {
  const s = ["running", "ok", "error", "incomplete"].includes(status) ? status : "unknown";
  return h("span", { class: `dot dot-${s}`, title: s });
}

export function scoreValue(score) {
  if (score.data_type === "boolean") {
    if (score.string_value) return score.string_value;
    return score.value ? "true" : "false";
  }
  if (score.data_type === "categorical") return score.string_value ?? String(score.value ?? "");
  if (score.value === null || score.value === undefined) return score.string_value ?? "–";
  const v = Number(score.value);
  return Number.isInteger(v) ? String(v) : v.toFixed(3).replace(/0+$/, "");
}

export function scoreChip(score) {
  const title = [score.name, score.comment ? `— ${score.comment}` : "", score.source ? `(${score.source})` : ""].join(" ");
  return h("span", { class: "score-chip", title }, h("span", { class: "score-name" }, score.name), h("span", { class: "score-val" }, scoreValue(score)));
}

export function tagChip(tag, onClick) {
  return h("span", { class: ["tag", onClick ? "clickable" : ""], title: tag, onClick }, tag);
}

export function emptyState(title, detail, withSnippet = false) {
  return h(
    "div",
    { class: "empty" },
    h("div", { class: "empty-icon" }, icon("traces", 28)),
    h("div", { class: "empty-title" }, title),
    detail ? h("p", { class: "muted" }, detail) : null,
    withSnippet
      ? h(
          "div",
          { class: "snippet" },
          h("div", { class: "snippet-head" }, h("span", { class: "muted" }, "Add one line to your app"), copyButton(SNIPPET)),
          h("pre", { class: "mono" }, SNIPPET),
        )
      : null,
  );
}

export function errorState(err, retry) {
  const status = err && err.status ? ` (HTTP ${err.status})` : "";
  return h(
    "div",
    { class: "empty error-state" },
    h("div", { class: "empty-icon danger" }, icon("alert", 28)),
    h("div", { class: "empty-title" }, `Could not load${status}`),
    h("p", { class: "muted" }, err && err.message ? err.message : String(err)),
    retry ? h("button", { class: "btn", type: "button", onClick: retry }, icon("refresh", 14), "Retry") : null,
  );
}

export function loading(label = "Loading…") {
  return h("div", { class: "loading" }, h("span", { class: "spinner" }), label);
}

/** A labelled metric ("Latency 1.2s") for headers. */
export function stat(label, value, cls = "") {
  return h("div", { class: `stat ${cls}` }, h("div", { class: "stat-label" }, label), h("div", { class: "stat-value" }, value));
}

export function latencyClass(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms >= 10_000) return "lat-slow";
  if (ms >= 3_000) return "lat-mid";
  return "";
}

export function usageTotal(usage) {
  if (!usage) return 0;
  if (typeof usage.total === "number") return usage.total;
  return Object.values(usage).reduce((a, b) => a + (typeof b === "number" ? b : 0), 0);
}

export { fmt };
