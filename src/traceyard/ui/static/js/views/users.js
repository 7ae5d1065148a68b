// Users: per-user traces, sessions, tokens and cost; a row opens that user's traces.

import { api } from "../api.js";
import { h, replace } from "../dom.js";
import * as fmt from "../format.js";
import { hashFor } from "../router.js";
import { emptyState, errorState, loading, pageHeader } from "./common.js";

export function usersView(container) {
  const body = h("div", { class: "table-wrap" });
  const pager = h("div", { class: "pager" });
  const cursors = [null];
  let next = null;
  container.appendChild(h("div", { class: "page" }, pageHeader("Users"), body, pager));

  async function load() {
    replace(body, loading());
    try {
      const page = await api("users", { limit: 50, cursor: cursors[cursors.length - 1] });
      next = page.next_cursor || null;
      render(page.data || []);
    } catch (err) {
      replace(body, errorState(err, load));
    }
  }

  function render(rows) {
    if (!rows.length && cursors.length === 1) {
      replace(body, emptyState("No users yet", 'Set a user on a trace: tracer.update_trace(user_id="…") or LangChain metadata {"user_id": …}.'));
      replace(pager);
      return;
    }
    const maxCost = Math.max(...rows.map((u) => u.total_cost || 0), 1e-12);
    replace(
      body,
      h(
        "table",
        { class: "table" },
        h("thead", {}, h("tr", {}, h("th", {}, "User"), h("th", { class: "num" }, "Traces"), h("th", { class: "num" }, "Sessions"), h("th", { class: "num" }, "Tokens"), h("th", { class: "num" }, "Cost"), h("th", {}, ""), h("th", { class: "num" }, "Errors"), h("th", {}, "First seen"), h("th", {}, "Last seen"))),
        h(
          "tbody",
          {},
          rows.map((u) => {
            const href = hashFor(["traces"], { user_id: u.id });
            const tr = h(
              "tr",
              { class: "row-link", dataset: { id: u.id } },
              h("td", {}, h("a", { href, class: "trace-link" }, u.id)),
              h("td", { class: "num mono" }, fmt.count(u.trace_count)),
              h("td", { class: "num mono" }, fmt.count(u.session_count)),
              h("td", { class: "num mono" }, fmt.tokens(u.total_tokens)),
              h("td", { class: "num mono" }, fmt.cost(u.total_cost)),
              h("td", { class: "col-bar" }, h("div", { class: "mini-bar" }, h("div", { style: { width: `${((u.total_cost || 0) / maxCost) * 100}%` } }))),
              h("td", { class: "num" }, u.error_count ? h("span", { class: "badge badge-error" }, String(u.error_count)) : h("span", { class: "muted" }, "–")),
              h("td", { class: "mono muted" }, fmt.dateTime(u.first_seen)),
              h("td", { class: "mono" }, fmt.dateTime(u.last_seen)),
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
