// Hash routing: "#/traces/<id>?obs=<id>". The hash keeps deep links working under any path
// prefix and needs nothing from the server.

export function parseHash(hash = location.hash) {
  const raw = hash.replace(/^#\/?/, "");
  const q = raw.indexOf("?");
  const pathPart = q === -1 ? raw : raw.slice(0, q);
  const query = q === -1 ? "" : raw.slice(q + 1);
  const path = pathPart
    .split("/")
    .filter(Boolean)
    .map((p) => {
      try {
        return decodeURIComponent(p);
      } catch (_e) {
        return p;
      }
    });
  return { path: path.length ? path : ["traces"], params: new URLSearchParams(query) };
}

/** "#/traces/a%2Fb?obs=x" from ["traces", "a/b"] and {obs: "x"} (empty values dropped). */
export function hashFor(path, params) {
  const p = path.map((x) => encodeURIComponent(x)).join("/");
  const search = new URLSearchParams();
  if (params) {
    const entries = params instanceof URLSearchParams ? params.entries() : Object.entries(params);
    for (const [k, v] of entries) {
      if (v === undefined || v === null || v === "") continue;
      if (Array.isArray(v)) for (const x of v) search.append(k, x);
      else search.append(k, v);
    }
  }
  const qs = search.toString();
  return `#/${p}${qs ? `?${qs}` : ""}`;
}

/** Change the URL without a navigation (filters typed, a node chosen). */
export function replaceHash(hash) {
  if (location.hash !== hash) history.replaceState(history.state, "", hash);
}

export function go(hash) {
  location.hash = hash;
}

let listHash = "#/traces";

/** The traces list as last seen (filters included), for "back to the list" links. */
export function rememberList(hash) {
  listHash = hash;
}

export function lastList() {
  return listHash;
}
