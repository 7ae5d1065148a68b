// Line icons drawn as inline SVG (24x24 grid, stroke = currentColor).

import { s } from "./dom.js";

const PATHS = {
  span: ["M4 12h16", "M4 8v8", "M20 8v8"],
  generation: ["M12 3l1.9 5.1L19 10l-5.1 1.9L12 17l-1.9-5.1L5 10l5.1-1.9z", "M18 16l.8 2.2L21 19l-2.2.8L18 22l-.8-2.2L15 19l2.2-.8z"],
  event: ["M12 8a4 4 0 1 0 0 8a4 4 0 1 0 0-8z", "M12 2v3", "M12 19v3"],
  agent: ["M5 9h14v10H5z", "M12 9V5", "M10 5h4", "M9 13v1", "M15 13v1", "M2 13v3", "M22 13v3"],
  tool: ["M14.7 6.3a4 4 0 0 0-5.4 5.2L3 17.8 6.2 21l6.3-6.3a4 4 0 0 0 5.2-5.4l-2.4 2.4-2.8-.6-.6-2.8z"],
  chain: ["M9 15l6-6", "M11 6l1.5-1.5a4 4 0 0 1 5.7 5.7L16.7 11.7", "M13 18l-1.5 1.5a4 4 0 0 1-5.7-5.7L7.3 12.3"],
  retriever: ["M11 5a6 6 0 1 0 0 12a6 6 0 1 0 0-12z", "M16 16l5 5"],
  embedding: ["M12 3l8 4.5v9L12 21l-8-4.5v-9z", "M12 12l8-4.5", "M12 12v9", "M12 12L4 7.5"],
  evaluator: ["M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18z", "M8 12l3 3 5-6"],
  guardrail: ["M12 3l7 3v6c0 4.5-3 7.5-7 9-4-1.5-7-4.5-7-9V6z"],
  trace: ["M4 6h16", "M8 12h12", "M12 18h8", "M4 6v12"],
  // navigation and actions
  traces: ["M4 6h16", "M4 12h16", "M4 18h10"],
  sessions: ["M4 5h12v9H9l-4 3v-3H4z", "M19 9h1v9h-1v3l-4-3h-5v-2"],
  users: ["M9 11a4 4 0 1 0 0-8a4 4 0 1 0 0 8z", "M2 21c0-4 3-6 7-6s7 2 7 6", "M17 3.5a4 4 0 0 1 0 7", "M19 15c2 .7 3 2.5 3 6"],
  prompts: ["M5 3h10l4 4v14H5z", "M15 3v4h4", "M8 11h8", "M8 15h8", "M8 19h5"],
  dashboard: ["M4 20V10", "M10 20V4", "M16 20v-7", "M22 20H2"],
  status: ["M3 12h4l3-8 4 16 3-8h4"],
  chevron: ["M9 6l6 6-6 6"],
  search: ["M11 4a7 7 0 1 0 0 14a7 7 0 1 0 0-14z", "M21 21l-5-5"],
  filter: ["M3 5h18l-7 8v6l-4 2v-8z"],
  link: ["M10 14a4 4 0 0 0 6 0l3-3a4 4 0 0 0-6-6l-1 1", "M14 10a4 4 0 0 0-6 0l-3 3a4 4 0 0 0 6 6l1-1"],
  close: ["M6 6l12 12", "M18 6L6 18"],
  pause: ["M8 5v14", "M16 5v14"],
  play: ["M7 4l13 8-13 8z"],
  sun: ["M12 8a4 4 0 1 0 0 8a4 4 0 1 0 0-8z", "M12 2v2", "M12 20v2", "M4.9 4.9l1.4 1.4", "M17.7 17.7l1.4 1.4", "M2 12h2", "M20 12h2", "M4.9 19.1l1.4-1.4", "M17.7 6.3l1.4-1.4"],
  moon: ["M21 13A9 9 0 1 1 11 3a7 7 0 0 0 10 10z"],
  auto: ["M12 3a9 9 0 1 0 0 18z", "M12 3a9 9 0 0 1 0 18"],
  alert: ["M12 3l10 18H2z", "M12 10v5", "M12 18v.5"],
  clock: ["M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18z", "M12 7v5l3 2"],
  coins: ["M9 4c4 0 7 1.3 7 3s-3 3-7 3-7-1.3-7-3 3-3 7-3z", "M2 7v5c0 1.7 3 3 7 3", "M2 12v5c0 1.7 3 3 7 3s7-1.3 7-3", "M16 11c3 .3 6 1.5 6 3v5c0 1.7-3 3-7 3"],
  hash: ["M5 9h14", "M4 15h14", "M10 3L8 21", "M16 3l-2 18"],
  refresh: ["M20 11a8 8 0 0 0-14.7-4.4L4 8", "M4 3v5h5", "M4 13a8 8 0 0 0 14.7 4.4L20 16", "M20 21v-5h-5"],
  plus: ["M12 5v14", "M5 12h14"],
  external: ["M14 4h6v6", "M20 4l-9 9", "M18 14v6H4V6h6"],
  logo: ["M4 18l5-12 4 8 3-5 4 9"],
};

export function icon(name, size = 14, extraClass = "") {
  const paths = PATHS[name] || PATHS.span;
  return s(
    "svg",
    {
      class: `icon ${extraClass}`.trim(),
      width: size,
      height: size,
      viewBox: "0 0 24 24",
      fill: "none",
      stroke: "currentColor",
      "stroke-width": 2,
      "stroke-linecap": "round",
      "stroke-linejoin": "round",
      "aria-hidden": "true",
    },
    paths.map((d) => s("path", { d })),
  );
}

export const OBSERVATION_TYPES = [
  "span",
  "generation",
  "event",
  "agent",
  "tool",
  "chain",
  "retriever",
  "embedding",
  "evaluator",
  "guardrail",
];

/** A coloured badge for an observation type (colour from CSS: .t-<type>). */
export function typeBadge(type, size = 13) {
  const t = OBSERVATION_TYPES.includes(type) || type === "trace" ? type : "span";
  const box = document.createElement("span");
  box.className = `type-icon t-${t}`;
  box.title = t;
  box.appendChild(icon(t, size));
  return box;
}
