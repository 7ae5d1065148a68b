// Sessions: the list, and one session as a conversation of turns (each turn is a trace).

import { api } from "../api.js";
import { h, replace } from "../dom.js";
import * as fmt from "../format.js";
import { icon, typeBadge } from "../icons.js";
import { foldedText, jsonView } from "../json_view.js";
import { asMessages, conversationView, summaryText } from "../messages.js";
import { hashFor } from "../router.js";
import { emptyState, errorState, latencyClass, loading, pageHeader, stat, statusPill } from "./common.js";

export function sessionsView(container) {
  const body = h("div", { class: "table-wrap" });
  const pager = h("div", { class: "pager" });
  const cursors = [null];
  let next = null;
  container.appendChild(h("div", { class: "page" }, pageHeader("Sessions"), body, pager));

  async function load() {
    replace(body, loading());
    try {
      const page = await api("sessions", { limit: 50, cursor: cursors[cursors.length - 1] });
      next = page.next_cursor || null;
      render(page.data || []);
    } catch (err) {
      replace(body, errorState(err, load));
    }
  }

  function render(rows) {
    if (!rows.length && cursors.length === 1) {
      replace(body, emptyState("No sessions yet", 'Traces that share a session_id form a session: tracer.update_trace(session_id="…") or LangChain metadata {"session_id": …}.'));
      replace(pager);
      return;
    }
    replace(
      body,
      h(
        "table",
        { class: "table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Session"), h("th", {}, "Users"), h("th", { class: "num" }, "Turns"), h("th", {}, "Started"), h("th", { class: "num" }, "Duration"), h("th", { class: "num" }, "Tokens"), h("th", { class: "num" }, "Cost"), h("th", {}, "Errors"))),
        h(
          "tbody",
          {},
          rows.map((sess) => {
            const href = hashFor(["sessions", sess.id]);
            const dur = fmt.parseTime(sess.end_time) !== null && fmt.parseTime(sess.start_time) !== null ? fmt.parseTime(sess.end_time) - fmt.parseTime(sess.start_time) : null;
            const tr = h(
              "tr",
              { class: "row-link", dataset: { id: sess.id } },
              h("td", {}, h("a", { href, class: "trace-link" }, sess.id)),
              h("td", {}, (sess.user_ids || []).join(", ") || h("span", { class: "muted" }, "–")),
              h("td", { class: "num mono" }, fmt.count(sess.trace_count)),
              h("td", { class: "mono" }, fmt.dateTime(sess.start_time)),
              h("td", { class: "num mono" }, fmt.duration(dur)),
              h("td", { class: "num mono" }, fmt.tokens(sess.total_tokens)),
              h("td", { class: "num mono" }, fmt.cost(sess.total_cost)),
              h("td", {}, sess.error_count ? h("span", { class: "badge badge-error" }, String(sess.error_count)) : h("span", { class: "muted" }, "–")),
            );
            tr.addEventListener("click", (ev) => {
              if (!ev.target.closest("a")) location.hash = href;
            });
            return tr;
          }),
        ),
      ),
    );
    replace(
      pager,
      h("div", { class: "spacer" }),
      h("button", { class: "btn", type: "button", disabled: cursors.length <= 1, onClick: () => (cursors.pop(), load()) }, "← Prev"),
      h("button", { class: "btn", type: "button", disabled: !next, onClick: () => (cursors.push(next), load()) }, "Next →"),
    );
  }

  load();
  return {};
}

function bubble(role, value) {
  const msgs = asMessages(value);
  if (msgs && msgs.length) {
    // The turn's new message: the last of the wanted side.
    const wanted = role === "user" ? ["user", "human"] : ["assistant", "ai", "model"];
    const pick = [...msgs].reverse().find((m) => wanted.includes(m.role)) || msgs[msgs.length - 1];
    return conversationView([pick]).firstChild;
  }
  let content;
  if (typeof value === "string") content = foldedText(value, "msg-text");
  else {
    const text = summaryText(value);
    content = text && text.length < 400 && typeof value === "object" && Object.values(value).filter((v) => typeof v === "string").length === 1 ? foldedText(text, "msg-text") : jsonView(value, { openDepth: 1, copy: false });
  }
  return h("div", { class: `msg msg-${role}` }, h("div", { class: "msg-head" }, h("span", { class: `role role-${role}` }, role === "user" ? "input" : "output")), h("div", { class: "msg-body" }, content));
}

export function sessionView(container, route) {
  const sessionId = route.path[1];
  const body = h("div", {}, loading());
  container.appendChild(h("div", { class: "page page-session" }, body));

  async function load() {
    try {
      const sess = await api(`sessions/${encodeURIComponent(sessionId)}`);
      render(sess);
    } catch (err) {
      replace(body, errorState(err.status === 404 ? { status: 404, message: `No session with id ${sessionId}.` } : err, load));
    }
  }

  function render(sess) {
    const traces = sess.traces || [];
    const t0 = fmt.parseTime(sess.start_time);
    const t1 = fmt.parseTime(sess.end_time);
    const totalLatency = traces.reduce((a, t) => a + (t.latency_ms || 0), 0);
    replace(
      body,
      h(
        "div",
        { class: "trace-head" },
        h("div", { class: "trace-title-row" }, h("a", { class: "crumb", href: "#/sessions" }, "Sessions"), h("span", { class: "crumb-sep" }, "/"), icon("sessions", 15), h("h1", { class: "trace-title" }, sess.id)),
        h(
          "div",
          { class: "trace-stats" },
          stat("Turns", fmt.count(traces.length)),
          stat("Users", (sess.user_ids || []).join(", ") || "–"),
          stat("Started", fmt.dateTime(sess.start_time)),
          stat("Wall time", fmt.duration(t0 !== null && t1 !== null ? t1 - t0 : null)),
          stat("Total latency", fmt.duration(totalLatency)),
          stat("Tokens", fmt.tokens(sess.total_tokens)),
          stat("Cost", fmt.cost(sess.total_cost)),
          sess.error_count ? stat("Errors", fmt.count(sess.error_count), "stat-error") : null,
        ),
      ),
      h(
        "div",
        { class: "turns" },
        traces.map((t, i) =>
          h(
            "article",
            { class: ["turn", t.error_count ? "turn-error" : ""], dataset: { traceId: t.id } },
            h(
              "header",
              { class: "turn-head" },
              h("span", { class: "turn-no" }, `Turn ${i + 1}`),
              typeBadge("trace", 12),
              h("a", { class: "turn-name", href: hashFor(["traces", t.id]), title: "Open the trace" }, t.name || "(unnamed)"),
              statusPill(t.status),
              h("span", { class: "spacer" }),
              h("span", { class: "turn-meta mono", title: "start" }, fmt.timeOfDay(t.start_time)),
              h("span", { class: ["turn-meta mono", latencyClass(t.latency_ms)], title: "latency" }, icon("clock", 12), fmt.duration(t.latency_ms)),
              h("span", { class: "turn-meta mono", title: "tokens" }, `${fmt.tokens(t.total_tokens)} tok`),
              h("span", { class: "turn-meta mono", title: "cost" }, fmt.cost(t.total_cost)),
              h("a", { class: "btn btn-xs", href: hashFor(["traces", t.id]) }, "Open trace", icon("external", 11)),
            ),
            h("div", { class: "turn-body" }, t.input !== null && t.input !== undefined ? bubble("user", t.input) : null, t.output !== null && t.output !== undefined ? bubble("assistant", t.output) : h("div", { class: "muted small" }, t.status === "running" ? "running…" : "no output")),
          ),
        ),
      ),
    );
  }

  load();
  return {};
}
