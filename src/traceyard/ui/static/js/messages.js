// Chat messages rendered as a conversation: roles, text, tool calls and tool results. Accepts
// the shapes the capture paths produce (LangChain-as-chat, OpenAI, Anthropic, OTel GenAI parts).

import { h } from "./dom.js";
import { icon } from "./icons.js";
import { foldedText, isPlainObject, jsonView } from "./json_view.js";

const LC_ROLES = { human: "user", ai: "assistant", system: "system", tool: "tool", function: "tool" };
const ROLES = new Set(["user", "assistant", "system", "tool", "developer", "function", "model"]);

function looksLikeMessage(m) {
  if (!isPlainObject(m)) return false;
  const role = typeof m.role === "string" ? m.role : LC_ROLES[m.type];
  if (!role) return false;
  return "content" in m || "tool_calls" in m || "parts" in m || "function_call" in m;
}

/** The messages in a value, or null when it is not a conversation. */
export function asMessages(value) {
  if (Array.isArray(value)) {
    if (value.length && value.every((b) => Array.isArray(b)) && value.length === 1) return asMessages(value[0]);
    if (value.length && value.every(looksLikeMessage)) return value.map(normalize);
    return null;
  }
  if (isPlainObject(value)) {
    if (Array.isArray(value.messages)) return asMessages(value.messages);
    if (Array.isArray(value.choices) && value.choices.every((c) => isPlainObject(c) && looksLikeMessage(c.message))) {
      return value.choices.map((c) => normalize(c.message));
    }
    if (looksLikeMessage(value)) return [normalize(value)];
  }
  return null;
}

function parseMaybeJson(v) {
  if (typeof v !== "string") return v;
  const t = v.trim();
  if (!(t.startsWith("{") || t.startsWith("["))) return v;
  try {
    return JSON.parse(t);
  } catch (_e) {
    return v;
  }
}

function normalize(m) {
  const role = typeof m.role === "string" ? m.role : LC_ROLES[m.type] || "unknown";
  const parts = [];
  const content = m.content !== undefined ? m.content : m.parts;
  const toolCalls = [];
  if (typeof content === "string") parts.push({ kind: "text", text: content });
  else if (Array.isArray(content)) {
    for (const p of content) {
      if (typeof p === "string") parts.push({ kind: "text", text: p });
      else if (isPlainObject(p)) {
        const t = p.type;
        if ((t === "text" || t === "output_text" || t === "input_text") && (typeof p.text === "string" || typeof p.content === "string")) {
          parts.push({ kind: "text", text: typeof p.text === "string" ? p.text : p.content });
        } else if (t === "tool_use" || t === "tool_call" || t === "function_call") {
          toolCalls.push({ id: p.id, name: p.name, args: parseMaybeJson(p.input !== undefined ? p.input : p.arguments) });
        } else if (t === "tool_result" || t === "tool_call_response") {
          parts.push({ kind: "result", id: p.tool_use_id || p.id, value: p.content !== undefined ? p.content : p.response });
        } else if (t === "image_url" || t === "image" || t === "input_image") {
          parts.push({ kind: "media", label: "image" });
        } else if (t === "reasoning" || t === "thinking") {
          parts.push({ kind: "thinking", text: p.thinking || p.text || p.content || "" });
        } else parts.push({ kind: "json", value: p });
      }
    }
  } else if (content !== null && content !== undefined) parts.push({ kind: "json", value: content });
  for (const c of Array.isArray(m.tool_calls) ? m.tool_calls : []) {
    if (!isPlainObject(c)) continue;
    const fn = isPlainObject(c.function) ? c.function : null;
    toolCalls.push({
      id: c.id,
      name: fn ? fn.name : c.name,
      args: parseMaybeJson(fn ? fn.arguments : c.arguments !== undefined ? c.arguments : c.args),
    });
  }
  if (isPlainObject(m.function_call)) {
    toolCalls.push({ name: m.function_call.name, args: parseMaybeJson(m.function_call.arguments) });
  }
  return { role, name: typeof m.name === "string" ? m.name : null, toolCallId: m.tool_call_id || null, parts, toolCalls };
}

function argsView(args) {
  if (args === undefined || args === null) return h("span", { class: "muted" }, "no arguments");
  if (typeof args === "string") return foldedText(args, "text-block small");
  return jsonView(args, { openDepth: 2, copy: false });
}

function messageView(m) {
  const roleClass = ROLES.has(m.role) ? m.role : "other";
  const header = h(
    "div",
    { class: "msg-head" },
    h("span", { class: `role role-${roleClass}` }, m.role),
    m.name ? h("span", { class: "msg-name" }, m.name) : null,
    m.toolCallId ? h("span", { class: "msg-ref mono", title: "tool call id" }, `↳ ${m.toolCallId}`) : null,
  );
  const body = h("div", { class: "msg-body" });
  for (const p of m.parts) {
    if (p.kind === "text") {
      if (p.text) body.appendChild(foldedText(p.text, "msg-text"));
    } else if (p.kind === "thinking") body.appendChild(h("div", { class: "msg-thinking" }, foldedText(p.text, "msg-text")));
    else if (p.kind === "media") body.appendChild(h("div", { class: "msg-media muted" }, `[${p.label} not shown]`));
    else if (p.kind === "result")
      body.appendChild(
        h("div", { class: "tool-result" }, h("div", { class: "tool-label" }, "tool result", p.id ? ` · ${p.id}` : ""), typeof p.value === "string" ? foldedText(p.value, "text-block small") : jsonView(p.value, { copy: false })),
      );
    else body.appendChild(jsonView(p.value, { copy: false }));
  }
  for (const c of m.toolCalls) {
    body.appendChild(
      h(
        "div",
        { class: "tool-call" },
        h("div", { class: "tool-label" }, icon("tool", 12), h("span", { class: "tool-name" }, c.name || "tool"), c.id ? h("span", { class: "muted mono" }, ` ${c.id}`) : null),
        argsView(c.args),
      ),
    );
  }
  if (!body.childNodes.length) body.appendChild(h("span", { class: "muted" }, "(empty)"));
  return h("div", { class: `msg msg-${roleClass}` }, header, body);
}

export function conversationView(messages) {
  return h("div", { class: "conversation" }, messages.map(messageView));
}

/** A one-line text summary of an input/output (for turns and table cells). */
export function summaryText(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  const msgs = asMessages(value);
  if (msgs && msgs.length) {
    const last = msgs[msgs.length - 1];
    const text = last.parts.filter((p) => p.kind === "text").map((p) => p.text).join(" ");
    if (text) return text;
    if (last.toolCalls.length) return `→ ${last.toolCalls.map((c) => c.name).join(", ")}`;
  }
  if (isPlainObject(value)) {
    const strings = Object.values(value).filter((v) => typeof v === "string");
    if (strings.length === 1) return strings[0];
  }
  try {
    return JSON.stringify(value);
  } catch (_e) {
    return String(value);
  }
}

/** The last message of a role in a value, as parts (for session turns). */
export function lastMessageOf(value, roles) {
  const msgs = asMessages(value);
  if (!msgs) return null;
  for (let i = msgs.length - 1; i >= 0; i -= 1) if (roles.includes(msgs[i].role)) return messageView(msgs[i]);
  return null;
}
