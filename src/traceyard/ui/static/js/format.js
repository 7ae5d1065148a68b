// Number, time and size formatting shared by every view.

export function parseTime(value) {
  if (value === null || value === undefined) return null;
  const t = Date.parse(value);
  return Number.isNaN(t) ? null : t;
}

/** Milliseconds since the epoch with sub-ms precision kept from ISO strings with microseconds. */
export function preciseTime(value) {
  if (!value) return null;
  const base = parseTime(value);
  if (base === null) return null;
  const m = /\.(\d{3})(\d{1,3})/.exec(value);
  return m ? base + Number(`0.${m[2].padEnd(3, "0")}`) : base;
}

export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  if (ms === 0) return "0";
  if (ms < 1) return `${ms.toFixed(2)}ms`;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)}s`;
  const secs = Math.round(ms / 1000);
  const m = Math.floor(secs / 60);
  if (m < 60) return `${m}m ${secs % 60}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

export function tokens(n) {
  if (n === null || n === undefined) return "–";
  if (n === 0) return "0";
  if (Math.abs(n) < 10_000) return Math.round(n).toLocaleString("en-US");
  if (Math.abs(n) < 1_000_000) return `${(n / 1000).toFixed(1)}k`;
  return `${(n / 1_000_000).toFixed(2)}M`;
}

export function cost(usd) {
  if (usd === null || usd === undefined) return "–";
  if (usd === 0) return "$0";
  const a = Math.abs(usd);
  if (a < 0.000001) return "<$0.000001";
  if (a >= 1000) return `$${Math.round(usd).toLocaleString("en-US")}`;
  if (a >= 1) return `$${usd.toFixed(2)}`;
  // Two significant digits past the leading zeros, at least cents: $0.00027, $0.0336, $0.90.
  const decimals = Math.max(2, 1 - Math.floor(Math.log10(a)));
  let text = usd.toFixed(decimals);
  while (text.endsWith("0") && text.split(".")[1].length > 2) text = text.slice(0, -1);
  return `$${text}`;
}

export function count(n) {
  if (n === null || n === undefined) return "–";
  return Number(n).toLocaleString("en-US");
}

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

/** Local date-time, compact: "Nov 22, 08:33:25" (with the year when not this year). */
export function dateTime(value) {
  const t = parseTime(value);
  if (t === null) return "–";
  const d = new Date(t);
  const now = new Date();
  const month = d.toLocaleString("en-US", { month: "short" });
  const year = d.getFullYear() === now.getFullYear() ? "" : ` ${d.getFullYear()}`;
  return `${month} ${d.getDate()}${year}, ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function timeOfDay(value) {
  const t = parseTime(value);
  if (t === null) return "–";
  const d = new Date(t);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function relative(value) {
  const t = parseTime(value);
  if (t === null) return "";
  const diff = (Date.now() - t) / 1000;
  if (diff < 0) return "just now";
  if (diff < 60) return `${Math.floor(diff)}s ago`;
  if (diff < 3600) return `${Math.floor(diff / 60)}m ago`;
  if (diff < 86400) return `${Math.floor(diff / 3600)}h ago`;
  return `${Math.floor(diff / 86400)}d ago`;
}

export function shortId(id) {
  if (!id) return "";
  const s = String(id);
  return s.length > 12 ? `${s.slice(0, 8)}…` : s;
}

/** A nice round step for axis ticks. */
export function niceStep(range, ticks) {
  if (range <= 0) return 1;
  const raw = range / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
  return step * mag;
}

/** Value for a datetime-local input from an ISO string, and back. */
export function toLocalInput(iso) {
  const t = parseTime(iso);
  if (t === null) return "";
  const d = new Date(t);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function fromLocalInput(value) {
  if (!value) return "";
  const t = Date.parse(value);
  return Number.isNaN(t) ? "" : new Date(t).toISOString();
}
