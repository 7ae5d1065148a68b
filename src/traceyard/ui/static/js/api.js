// The HTTP API and the live stream. Every URL is relative to the page, so the UI works under a
// reverse-proxy prefix. When the server has a token, the first 401 asks for it once; it is kept
// in sessionStorage (this browser tab session only) and sent as a Bearer header.

import { h } from "./dom.js";

const TOKEN_KEY = "traceyard.token";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch (_e) {
    return "";
  }
}

function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch (_e) {
    /* storage disabled: the token lives for this page only */
  }
  memoryToken = token;
}

let memoryToken = getToken();
let pendingPrompt = null;
// Resolved by the first API answer that was not a 401: from then on the token (if the server
// needs one) is known, so the live stream does not knock without it.
let markAuthorized;
const authorized = new Promise((resolve) => {
  markAuthorized = resolve;
});

/** Ask for the token once, however many requests are waiting for it. */
function askForToken(refused) {
  if (!pendingPrompt) {
    pendingPrompt = showTokenDialog(refused).finally(() => {
      pendingPrompt = null;
    });
  }
  return pendingPrompt;
}

function showTokenDialog(refused) {
  return new Promise((resolve) => {
    const input = h("input", {
      type: "password",
      class: "input",
      id: "token-input",
      autocomplete: "current-password",
      placeholder: "TRACEYARD_AUTH_TOKEN",
      "aria-label": "API token",
    });
    const error = h("div", { class: "form-error" }, refused ? "That token was refused. Try again." : "");
    const form = h(
      "form",
      { class: "modal", role: "dialog", "aria-modal": "true", "aria-labelledby": "token-title" },
      h("div", { class: "modal-title", id: "token-title" }, "This traceyard server needs a token"),
      h(
        "p",
        { class: "muted" },
        "Paste the value of auth_token (TRACEYARD_AUTH_TOKEN). It is kept for this browser session only.",
      ),
      input,
      error,
      h("div", { class: "modal-actions" }, h("button", { class: "btn btn-primary", type: "submit" }, "Continue")),
    );
    const overlay = h("div", { class: "overlay" }, form);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const value = input.value.trim();
      if (!value) {
        error.textContent = "Enter the token.";
        return;
      }
      setToken(value);
      overlay.remove();
      resolve(value);
    });
    document.body.appendChild(overlay);
    input.focus();
  });
}

function headers(extra) {
  const out = { Accept: "application/json", ...extra };
  if (memoryToken) out.Authorization = `Bearer ${memoryToken}`;
  return out;
}

function describe(status, body) {
  if (body && typeof body === "object") {
    const err = body.error || body.detail || body.message;
    if (typeof err === "string") return err;
    if (err && typeof err === "object" && typeof err.message === "string") return err.message;
    if (Array.isArray(err)) return err.map((e) => e.msg || JSON.stringify(e)).join("; ");
  }
  return `HTTP ${status}`;
}

/** `api("traces", {limit: 50})` → parsed JSON. Arrays in params become repeated keys. */
export async function api(path, params, options = {}) {
  const url = new URL(`./api/${path}`, document.baseURI);
  if (params) {
    for (const [key, value] of Object.entries(params)) {
      if (value === undefined || value === null || value === "") continue;
      if (Array.isArray(value)) for (const v of value) url.searchParams.append(key, v);
      else url.searchParams.set(key, value);
    }
  }
  for (let attempt = 0; attempt < 4; attempt += 1) {
    const init = { method: options.method || "GET", headers: headers(options.headers), signal: options.signal };
    if (options.body !== undefined) {
      init.body = JSON.stringify(options.body);
      init.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(url, init);
    if (response.status === 401) {
      await askForToken(Boolean(memoryToken)); // a token was sent: it was refused
      continue;
    }
    if (path !== "health") markAuthorized(); // health is open even when the rest is not
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (_e) {
      body = text;
    }
    if (!response.ok) throw new ApiError(response.status, describe(response.status, body), body);
    return body;
  }
  throw new ApiError(401, "the server refused the token");
}

/**
 * A live stream of changes from `./api/ws`, reconnecting with backoff. `onMessage` gets each
 * parsed message; `onState` gets "connecting" | "live" | "offline".
 */
export function liveStream(params, onMessage, onState) {
  let socket = null;
  let closed = false;
  let retry = 0;
  let timer = null;

  const open = () => {
    if (closed) return;
    const url = new URL("./api/ws", document.baseURI);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    for (const [k, v] of Object.entries(params || {})) if (v) url.searchParams.set(k, v);
    onState && onState("connecting");
    try {
      // The token travels as a subprotocol (kept out of URLs and logs); "traceyard" is the
      // one the server selects. A token that is not a valid protocol token goes as ?token=.
      socket = memoryToken ? new WebSocket(url, ["traceyard", `traceyard.bearer.${memoryToken}`]) : new WebSocket(url);
    } catch (_e) {
      try {
        url.searchParams.set("token", memoryToken);
        socket = new WebSocket(url);
      } catch (_e2) {
        schedule();
        return;
      }
    }
    socket.addEventListener("open", () => {
      retry = 0;
      onState && onState("live");
    });
    socket.addEventListener("message", (ev) => {
      let msg = null;
      try {
        msg = JSON.parse(ev.data);
      } catch (_e) {
        return;
      }
      onMessage(msg);
    });
    socket.addEventListener("close", () => {
      socket = null;
      if (!closed) schedule();
    });
  };

  const schedule = () => {
    onState && onState("offline");
    retry = Math.min(retry + 1, 6);
    timer = setTimeout(open, 500 * 2 ** retry);
  };

  authorized.then(open);
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      if (socket) socket.close();
    },
  };
}

/** The trace ids a live message talks about (tolerant of single, batched and nested shapes). */
export function traceIdsOf(msg) {
  const ids = new Set();
  const visit = (m, depth) => {
    if (!m || typeof m !== "object" || depth > 3) return;
    if (Array.isArray(m)) {
      for (const x of m) visit(x, depth + 1);
      return;
    }
    if (typeof m.trace_id === "string" && m.trace_id) ids.add(m.trace_id);
    const kind = String(m.entity || m.kind || m.type || "");
    if (kind.startsWith("trace") && typeof m.id === "string") ids.add(m.id);
    for (const key of ["data", "events", "changes", "items", "trace", "observation", "score"]) {
      if (m[key] && typeof m[key] === "object") visit(m[key], depth + 1);
    }
  };
  visit(msg, 0);
  return ids;
}
