// Boot: the shell (navigation, theme), the hash router and the global keyboard shortcuts.

import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { icon } from "./icons.js";
import { parseHash } from "./router.js";
import { dashboardView } from "./views/dashboard.js";
import { promptsView, promptView } from "./views/prompts.js";
import { sessionsView, sessionView } from "./views/sessions.js";
import { statusView } from "./views/status.js";
import { traceView } from "./views/trace.js";
import { tracesView } from "./views/traces.js";
import { usersView } from "./views/users.js";

const NAV = [
  ["traces", "Traces"],
  ["sessions", "Sessions"],
  ["users", "Users"],
  ["prompts", "Prompts"],
  ["dashboard", "Dashboard"],
  ["status", "Status"],
];

function viewFor(route) {
  const [section, id] = route.path;
  if (section === "traces" && id) return { key: `trace:${id}`, make: traceView };
  if (section === "sessions" && id) return { key: `session:${id}`, make: sessionView };
  if (section === "sessions") return { key: "sessions", make: sessionsView };
  if (section === "users") return { key: "users", make: usersView };
  if (section === "prompts" && id) return { key: `prompt:${id}`, make: promptView };
  if (section === "prompts") return { key: "prompts", make: promptsView };
  if (section === "dashboard") return { key: "dashboard", make: dashboardView };
  if (section === "status") return { key: "status", make: statusView };
  return { key: "traces", make: tracesView };
}

let current = null;

function render() {
  const route = parseHash();
  const target = viewFor(route);
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.section === route.path[0]);
  }
  if (current && current.key === target.key && current.view.update) {
    current.view.update(route);
    return;
  }
  if (current && current.view.unmount) current.view.unmount();
  const container = document.getElementById("view");
  replace(container);
  const view = target.make(container, route) || {};
  current = { key: target.key, view };
}

function buildNav() {
  const nav = document.getElementById("nav");
  replace(
    nav,
    NAV.map(([section, label]) =>
      h("a", { class: "nav-item", href: `#/${section}`, dataset: { section } }, icon(section, 16), h("span", {}, label)),
    ),
  );
}

const THEMES = ["auto", "dark", "light"];

function applyTheme(theme) {
  const root = document.documentElement;
  if (theme === "auto") root.removeAttribute("data-theme");
  else root.setAttribute("data-theme", theme);
  const btn = document.getElementById("theme-toggle");
  replace(btn, icon(theme === "auto" ? "auto" : theme === "dark" ? "moon" : "sun", 16), h("span", {}, `Theme: ${theme}`));
}

function setupTheme() {
  let theme = "auto";
  try {
    theme = localStorage.getItem("traceyard.theme") || "auto";
  } catch (_e) {
    /* no storage */
  }
  if (!THEMES.includes(theme)) theme = "auto";
  applyTheme(theme);
  document.getElementById("theme-toggle").addEventListener("click", () => {
    theme = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
    try {
      localStorage.setItem("traceyard.theme", theme);
    } catch (_e) {
      /* no storage */
    }
    applyTheme(theme);
    window.dispatchEvent(new Event("traceyard:theme"));
  });
}

function setupKeys() {
  document.addEventListener("keydown", (ev) => {
    const target = ev.target;
    const typing = target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
    if (ev.key === "/" && !typing && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
      const search = document.querySelector("[data-search]");
      if (search) {
        ev.preventDefault();
        search.focus();
        search.select && search.select();
      }
    }
  });
}

async function showVersion() {
  try {
    const health = await api("health");
    if (health && health.version) document.getElementById("version").textContent = `v${health.version}`;
  } catch (_e) {
    /* the status page reports problems */
  }
}

buildNav();
setupTheme();
setupKeys();
window.addEventListener("hashchange", render);
render();
showVersion();
