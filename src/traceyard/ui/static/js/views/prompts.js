// Managed prompts: the list, and one prompt's versions with the traces that used each.
// URLs: "#/prompts" and "#/prompts/<name>?project=<p>&version=<n>" (the chosen version).

import { api } from "../api.js";
import { copyButton, h, replace } from "../dom.js";
import * as fmt from "../format.js";
import { icon } from "../icons.js";
import { jsonView } from "../json_view.js";
import { asMessages, conversationView } from "../messages.js";
import { hashFor, replaceHash } from "../router.js";
import { emptyState, errorState, latencyClass, loading, pageHeader, stat, statusDot } from "./common.js";

const DEFAULT_PROJECT = "default";
/** Traces shown under a version; the rest are one click away in the Traces list. */
const VERSION_TRACES = 10;

function promptHash(project, name, version) {
  return hashFor(["prompts", name], { project: project === DEFAULT_PROJECT ? "" : project, version });
}

/** The traces list filtered to a prompt version (the full explorer: paging, sort, live). */
export function tracesOfVersion(project, name, version) {
  return hashFor(["traces"], { prompt_name: name, prompt_version: version, project });
}

/** A use count; "10,000+" when counting stopped at the server's limit. */
function useCount(n, capped) {
  return `${fmt.count(n)}${capped ? "+" : ""}`;
}

function labelBadges(labels) {
  return labels.map((label) => h("span", { class: ["badge", "label-badge", label === "production" ? "label-production" : label === "latest" ? "label-latest" : ""] }, label));
}

// ------------------------------------------------------------------------ list

export function promptsView(container) {
  const body = h("div", { class: "table-wrap" });
  container.appendChild(h("div", { class: "page" }, pageHeader("Prompts"), body));

  async function load() {
    replace(body, loading());
    try {
      const res = await api("prompts");
      render(res.data || []);
    } catch (err) {
      replace(body, errorState(err, load));
    }
  }

  function render(rows) {
    if (!rows.length) {
      replace(
        body,
        emptyState(
          "No prompts yet",
          'Create one with the Langfuse SDK (langfuse.create_prompt(name="…", prompt="…")) pointed at this server; generations that use it link back here.',
        ),
      );
      return;
    }
    const multiProject = new Set(rows.map((p) => p.project)).size > 1;
    replace(
      body,
      h(
        "table",
        { class: "table prompts-table" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", {}, "Name"),
            multiProject ? h("th", {}, "Project") : null,
            h("th", {}, "Type"),
            h("th", { class: "num" }, "Latest"),
            h("th", { class: "num" }, "Versions"),
            h("th", {}, "Labels"),
            h("th", { class: "num" }, "Traces"),
            h("th", { class: "num" }, "Generations"),
            h("th", {}, "Updated"),
          ),
        ),
        h(
          "tbody",
          {},
          rows.map((p) => {
            const href = promptHash(p.project, p.name);
            const labels = Object.entries(p.labels || {}).map(([label, v]) => h("span", { class: "badge label-badge", title: `on version ${v}` }, `${label} → v${v}`));
            const tr = h(
              "tr",
              { class: "row-link", dataset: { name: p.name } },
              h("td", {}, h("a", { class: "trace-link", href, title: p.name }, p.name)),
              multiProject ? h("td", { class: "muted" }, p.project) : null,
              h("td", {}, h("span", { class: "type-label" }, p.type)),
              h("td", { class: "num mono" }, `v${p.latest_version}`),
              h("td", { class: "num mono" }, fmt.count(p.version_count)),
              h("td", { class: "col-labels" }, labels),
              h("td", { class: "num mono" }, useCount(p.traces, p.counts_capped)),
              h("td", { class: "num mono" }, useCount(p.observations, p.counts_capped)),
              h("td", { class: "mono muted" }, fmt.dateTime(p.updated_at)),
            );
            tr.addEventListener("click", (ev) => {
              if (!ev.target.closest("a")) location.hash = href;
            });
            return tr;
          }),
        ),
      ),
    );
  }

  load();
  return {};
}

// ------------------------------------------------------------------------ one prompt

export function promptView(container, route) {
  const name = route.path[1];
  let project = route.params.get("project") || DEFAULT_PROJECT;
  let chosen = Number(route.params.get("version")) || null;
  let prompt = null;
  let controller = null;

  const header = h("div", { class: "trace-head" }, loading());
  const list = h("div", { class: "version-list", role: "listbox", "aria-label": "Versions", tabindex: "0" });
  const detail = h("div", { class: "version-detail" });
  container.appendChild(h("div", { class: "page page-prompt" }, header, h("div", { class: "prompt-split" }, list, detail)));

  list.addEventListener("keydown", (ev) => {
    if (!prompt || !["ArrowDown", "ArrowUp", "j", "k", "Home", "End"].includes(ev.key)) return;
    ev.preventDefault();
    const versions = prompt.versions.map((v) => v.version);
    const at = Math.max(0, versions.indexOf(chosen));
    const next = ev.key === "Home" ? 0 : ev.key === "End" ? versions.length - 1 : ev.key === "ArrowDown" || ev.key === "j" ? Math.min(versions.length - 1, at + 1) : Math.max(0, at - 1);
    choose(versions[next], true);
  });

  async function load() {
    try {
      prompt = await api(`prompts/${encodeURIComponent(name)}`, { project });
    } catch (err) {
      replace(header);
      replace(list);
      replace(detail, errorState(err.status === 404 ? { message: `No prompt ${name} in project ${project}.`, status: 404 } : err, load));
      return;
    }
    renderHeader();
    const known = prompt.versions.some((v) => v.version === chosen);
    choose(known ? chosen : prompt.versions[0].version, false);
  }

  function renderHeader() {
    const latest = prompt.versions[0];
    const traces = prompt.versions.reduce((a, v) => a + v.traces, 0);
    const capped = prompt.versions.some((v) => v.counts_capped);
    replace(
      header,
      h(
        "div",
        { class: "trace-title-row" },
        h("a", { class: "crumb", href: "#/prompts" }, "Prompts"),
        h("span", { class: "crumb-sep" }, "/"),
        icon("prompts", 15),
        h("h1", { class: "trace-title", title: name }, name),
        project !== DEFAULT_PROJECT ? h("span", { class: "id-pill" }, project) : null,
        copyButton(name, "Copy name"),
      ),
      h(
        "div",
        { class: "trace-stats" },
        stat("Versions", fmt.count(prompt.versions.length)),
        stat("Latest", `v${latest.version}`),
        stat("Type", latest.type),
        stat("Traces", h("a", { href: hashFor(["traces"], { prompt_name: name, project }), title: "Every trace that used this prompt" }, useCount(traces, capped))),
        prompt.unversioned ? stat("Without version", fmt.count(prompt.unversioned.traces)) : null,
        (latest.tags || []).length ? stat("Tags", h("span", { class: "tags" }, latest.tags.map((t) => h("span", { class: "tag" }, t)))) : null,
      ),
    );
  }

  function renderList() {
    replace(
      list,
      prompt.versions.map((v) =>
        h(
          "a",
          {
            class: ["version-item", v.version === chosen ? "active" : ""],
            href: promptHash(project, name, v.version),
            role: "option",
            "aria-selected": v.version === chosen ? "true" : "false",
            dataset: { version: v.version },
            tabindex: "-1",
          },
          h("div", { class: "version-row" }, h("span", { class: "version-no mono" }, `v${v.version}`), labelBadges(v.labels || [])),
          h(
            "div",
            { class: "version-meta muted small" },
            `${useCount(v.traces, v.counts_capped)} trace${v.traces === 1 ? "" : "s"} · ${fmt.relative(v.created_at)}`,
          ),
          v.commit_message ? h("div", { class: "version-msg small", title: v.commit_message }, v.commit_message) : null,
        ),
      ),
    );
  }

  function choose(version, fromUser) {
    chosen = version;
    if (fromUser) replaceHash(promptHash(project, name, version));
    renderList();
    const item = list.querySelector(`[data-version="${version}"]`);
    if (item && item.scrollIntoView) item.scrollIntoView({ block: "nearest" });
    renderVersion(prompt.versions.find((v) => v.version === version));
  }

  function renderVersion(v) {
    const tracesHost = h("div", { class: "table-wrap version-traces" }, loading());
    const allHref = tracesOfVersion(project, name, v.version);
    replace(
      detail,
      h(
        "div",
        { class: "detail-head" },
        h("div", { class: "detail-title" }, `${name} · v${v.version}`),
        h("span", { class: "type-label" }, v.type),
        labelBadges(v.labels || []),
        h("span", { class: "spacer" }),
        copyButton(() => (typeof v.prompt === "string" ? v.prompt : JSON.stringify(v.prompt, null, 2)), "Copy prompt"),
      ),
      h(
        "div",
        { class: "facts" },
        fact("Created", fmt.dateTime(v.created_at)),
        fact("Traces", useCount(v.traces, v.counts_capped)),
        fact("Generations", useCount(v.observations, v.counts_capped)),
        v.commit_message ? fact("Message", v.commit_message) : null,
      ),
      section("Prompt", promptContent(v)),
      section("Config", v.config && Object.keys(v.config).length ? jsonView(v.config) : h("div", { class: "muted small" }, "none")),
      section(`Traces that used v${v.version}`, h("div", {}, tracesHost, h("div", { class: "version-traces-foot" }, h("a", { class: "btn btn-ghost", href: allHref }, icon("traces", 14), "Open in the Traces list"))), { cls: "traces" }),
    );
    loadTraces(v, tracesHost);
  }

  async function loadTraces(v, host) {
    if (controller) controller.abort();
    controller = new AbortController();
    const signal = controller.signal;
    try {
      const page = await api("traces", { prompt_name: name, prompt_version: v.version, project, limit: VERSION_TRACES }, { signal });
      if (signal.aborted) return;
      replace(host, traceTable(page.data || [], v));
    } catch (err) {
      if (err.name === "AbortError") return;
      replace(host, errorState(err, () => loadTraces(v, host)));
    }
  }

  function traceTable(rows, v) {
    if (!rows.length) return h("div", { class: "empty empty-sm muted" }, `No trace has used v${v.version} yet.`);
    return h(
      "table",
      { class: "table table-compact" },
      h("thead", {}, h("tr", {}, h("th", {}, "Start time"), h("th", {}, "Name"), h("th", {}, "User"), h("th", { class: "num" }, "Latency"), h("th", { class: "num" }, "Tokens"), h("th", { class: "num" }, "Cost"))),
      h(
        "tbody",
        {},
        rows.map((t) =>
          h(
            "tr",
            { dataset: { id: t.id } },
            h("td", { class: "mono" }, fmt.dateTime(t.start_time)),
            h("td", {}, h("div", { class: "cell-name" }, statusDot(t.status), h("a", { class: "trace-link", href: hashFor(["traces", t.id]), title: t.id }, t.name || "(unnamed)"))),
            h("td", { class: "muted" }, t.user_id || "–"),
            h("td", { class: ["num mono", latencyClass(t.latency_ms)] }, fmt.duration(t.latency_ms)),
            h("td", { class: "num mono" }, fmt.tokens(t.total_tokens)),
            h("td", { class: "num mono" }, fmt.cost(t.total_cost)),
          ),
        ),
      ),
    );
  }

  load();

  return {
    update(newRoute) {
      const nextProject = newRoute.params.get("project") || DEFAULT_PROJECT;
      const nextVersion = Number(newRoute.params.get("version")) || null;
      if (nextProject !== project) {
        project = nextProject;
        chosen = nextVersion;
        load();
      } else if (prompt && nextVersion && nextVersion !== chosen) choose(nextVersion, false);
    },
    unmount() {
      if (controller) controller.abort();
    },
  };
}

// ------------------------------------------------------------------------ content

/** A text prompt with its {{variables}} marked, or a chat prompt as a conversation. */
function promptContent(v) {
  if (v.type === "chat") {
    const msgs = asMessages(v.prompt);
    if (msgs) return conversationView(msgs);
    return jsonView(v.prompt, { openDepth: 4 });
  }
  if (typeof v.prompt !== "string") return jsonView(v.prompt, { openDepth: 4 });
  return h("pre", { class: "prompt-text" }, withVariables(v.prompt));
}

function withVariables(text) {
  const parts = [];
  const re = /\{\{\s*[^{}]+?\s*\}\}/g;
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > last) parts.push(text.slice(last, m.index));
    parts.push(h("span", { class: "prompt-var" }, m[0]));
    last = m.index + m[0].length;
  }
  if (last < text.length) parts.push(text.slice(last));
  return parts;
}

function section(title, content, { cls = "" } = {}) {
  return h("details", { class: `section ${cls}`.trim(), open: true }, h("summary", { class: "section-head" }, icon("chevron", 12, "section-caret"), h("span", { class: "section-title" }, title)), h("div", { class: "section-body" }, content));
}

function fact(label, value) {
  return h("div", { class: "fact" }, h("span", { class: "fact-label" }, label), h("span", { class: "fact-value" }, value));
}
