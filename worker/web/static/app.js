// docsync's page: plain JavaScript, no library, no build step. Every piece of data is put
// into the page as text (textContent, text nodes), never as HTML.
"use strict";

const TOKEN_KEY = "docsync-token";
const HITS = 10;
const FOLDERS_EVERY_MS = 2000;
const HEALTH_EVERY_MS = 5000;
const VIEWS = ["search", "read", "folders", "health"];

let pollTimer = null;
let lastSearch = "/";

const $ = (id) => document.getElementById(id);

// el("p", {class: "x"}, "text", child): an element; strings become text nodes.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

class Unauthorized extends Error {}

async function api(path) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const response = await fetch(path, { headers, cache: "no-store" });
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    askToken(token ? "That token was refused." : "");
    throw new Unauthorized();
  }
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function notice(message) {
  $("notice").textContent = message || "";
  $("notice").hidden = !message;
}

function askToken(message) {
  stopPolling();
  for (const view of VIEWS) $(`view-${view}`).hidden = true;
  notice(message);
  $("token-form").hidden = false;
  $("token").focus();
}

function failed(error) {
  if (!(error instanceof Unauthorized)) notice(String(error.message || error));
}

// Routing: the URL holds the view and its arguments (/?q=..., /?view=folders).

function params() {
  return new URLSearchParams(location.search);
}

function go(url) {
  history.pushState(null, "", url);
  route();
}

function route() {
  stopPolling();
  notice("");
  $("token-form").hidden = true;
  const p = params();
  const view = VIEWS.includes(p.get("view")) ? p.get("view") : "search";
  for (const name of VIEWS) $(`view-${name}`).hidden = true;
  for (const link of document.querySelectorAll("nav a")) {
    const current = link.dataset.view === view || (view === "read" && link.dataset.view === "search");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const show = { search: showSearch, read: showRead, folders: showFolders, health: showHealth };
  about()
    .then(() => {
      $(`view-${view}`).hidden = false;
      return show[view](p);
    })
    .catch(failed);
}

// What the header names (the collection and its store); asked once, and first: a page
// without the token asks for it here, before any view has shown anything.
let known = null;
async function about() {
  if (known) return;
  known = await api("/api/about");
  $("store").textContent = `${known.collection} · ${known.store}${known.live ? "" : " · not watching"}`;
}

function stopPolling() {
  if (pollTimer !== null) clearTimeout(pollTimer);
  pollTimer = null;
}

function poll(load, every) {
  const turn = async () => {
    try {
      if (!document.hidden) await load(); // a tab in the background asks nothing
    } catch (error) {
      failed(error);
      if (error instanceof Unauthorized) return;
    }
    pollTimer = setTimeout(turn, every);
  };
  return turn();
}

// Search -------------------------------------------------------------------------------

const FILTERS = ["format", "path", "tags"];

async function showSearch(p) {
  const q = p.get("q") || "";
  $("q").value = q;
  $("mode").value = p.get("mode") || "";
  for (const name of FILTERS) $(name).value = p.get(name) || "";
  if (FILTERS.some((name) => p.get(name))) $("view-search").querySelector("details").open = true;
  clear($("hits"));
  $("search-info").textContent = "";
  if (!q.trim()) {
    $("q").focus();
    return;
  }
  lastSearch = location.pathname + location.search;
  const ask = new URLSearchParams({ q, limit: String(HITS) });
  if (p.get("mode")) ask.set("mode", p.get("mode"));
  for (const name of FILTERS) {
    if (p.get(name)) ask.append("where", `${name}=${p.get(name)}`);
  }
  $("search-info").textContent = "Searching…";
  const hits = await api(`/search?${ask}`);
  $("search-info").textContent = hits.length ? `${hits.length} passages` : "No passage found.";
  hits.forEach((hit, i) => $("hits").append(hitItem(hit, i)));
}

function where(hit) {
  if (hit.page_start === null || hit.page_start === undefined) return "";
  const first = hit.page_label || String(hit.page_start);
  const last = hit.page_label_end || String(hit.page_end || hit.page_start);
  return first === last ? `p. ${first}` : `pp. ${first}–${last}`;
}

function readUrl(root, path, start, end) {
  const p = new URLSearchParams({ view: "read", path, start: String(start), end: String(end) });
  if (root) p.set("root", root);
  return `/?${p}`;
}

function hitItem(hit, i) {
  const url = readUrl(hit.root, hit.path, hit.match_start, hit.match_end);
  const link = el("a", { href: url, class: "hit-link", "data-hit": i }, hit.path);
  link.addEventListener("click", (event) => {
    if (event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    go(url);
  });
  const meta = el("p", { class: "meta" },
    el("span", { class: "page" }, where(hit)),
    el("span", { class: "section" }, hit.section || ""),
    el("span", { class: "format" }, hit.format || ""),
    el("span", { class: "score" }, `score ${Number(hit.score).toFixed(3)}`));
  return el("li", { class: "hit" }, el("h3", {}, link), meta, passage(hit));
}

// The passage with the chunk that matched in <mark>, as text nodes whatever the text; in the
// list only the match and a few lines around it (the Read view has all of it), and the
// whole passage a click away.
const AROUND = 240; // characters of the passage shown each side of the match

function passage(hit) {
  const text = hit.text;
  const from = Math.max(0, Math.min(text.length, hit.match_start - hit.start));
  const to = Math.max(from, Math.min(text.length, hit.match_end - hit.start));
  // A passage that is the matched chunk alone is not painted over: nothing to tell apart.
  const whole = from === 0 && to === text.length;
  const before = lineStart(text, Math.max(0, from - AROUND), from);
  const after = lineEnd(text, Math.min(text.length, to + AROUND), to);
  const shown = el("p", { class: whole ? "passage whole" : "passage" },
    before > 0 ? el("span", { class: "muted" }, "… ") : null,
    text.slice(before, from), el("mark", {}, text.slice(from, to)), text.slice(to, after),
    after < text.length ? el("span", { class: "muted" }, " …") : null);
  const more = el("button", { type: "button", class: "more", hidden: "" }, "show all");
  more.addEventListener("click", () => {
    shown.classList.add("open");
    clear(shown);
    shown.append(text.slice(0, from), el("mark", {}, text.slice(from, to)), text.slice(to));
    more.hidden = true;
  });
  requestAnimationFrame(() => {
    more.hidden = !(before > 0 || after < text.length || shown.scrollHeight > shown.clientHeight);
  });
  return el("div", {}, shown, more);
}

// Where a cut at `at` best starts: the next line's start when one is near, else `at`.
function lineStart(text, at, limit) {
  if (at === 0) return 0;
  const newline = text.indexOf("\n", at);
  return newline !== -1 && newline < limit ? newline + 1 : at;
}

function lineEnd(text, at, limit) {
  if (at === text.length) return at;
  const newline = text.lastIndexOf("\n", at);
  return newline > limit ? newline : at;
}

// Read ---------------------------------------------------------------------------------

async function showRead(p) {
  $("back").setAttribute("href", lastSearch);
  const ask = new URLSearchParams({
    path: p.get("path") || "", start: p.get("start") || "0", end: p.get("end") || "0",
  });
  if (p.get("root")) ask.set("root", p.get("root"));
  clear($("doc-text"));
  const doc = await api(`/api/document?${ask}`);
  $("doc-path").textContent = doc.title && doc.title !== doc.path ? `${doc.path} — ${doc.title}` : doc.path;
  let page = "";
  if (doc.page !== null) {
    const last = doc.page_end || doc.page;
    page = last === doc.page ? `p. ${doc.page_label || doc.page}` : `pp. ${doc.page}–${last}`;
  }
  const parts = [page, doc.section, doc.format, `characters ${doc.span.start}–${doc.span.end} of ${doc.length}`];
  $("doc-where").textContent = parts.filter(Boolean).join(" · ");
  step($("doc-prev"), doc, doc.previous);
  step($("doc-next"), doc, doc.next);
  const w = doc.window;
  const from = Math.max(0, doc.span.start - w.start);
  const to = Math.max(from, doc.span.end - w.start);
  const mark = el("mark", { id: "span", tabindex: "-1" }, w.text.slice(from, to));
  const pieces = [
    w.start > 0 ? el("span", { class: "muted" }, "… ") : null,
    w.text.slice(0, from), mark, w.text.slice(to),
    w.end < doc.length ? el("span", { class: "muted" }, " …") : null,
  ];
  $("doc-text").append(...pieces.filter((piece) => piece !== null)); // append(null) writes "null"
  mark.scrollIntoView({ block: "center" });
  mark.focus({ preventScroll: true });
}

function step(button, doc, place) {
  button.disabled = !place;
  button.onclick = place ? () => go(readUrl(doc.root, doc.path, place.start, place.end)) : null;
}

// Folders ------------------------------------------------------------------------------

const filters = { text: "", reason: "" };

function showFolders() {
  return poll(loadFolders, FOLDERS_EVERY_MS);
}

let shownFolders = "";

async function loadFolders() {
  const data = await api("/api/folders");
  const seen = JSON.stringify(data);
  if (seen === shownFolders && $("roots").childElementCount) return; // as shown: keep the caret
  shownFolders = seen;
  const summary = data.live
    ? `Live: ${data.ready ? "watching" : "initial sync under way"} · last sync ${data.last_sync || "not yet"} · ${data.pending_changes} change(s) pending`
    : "Not watching (docsync serve): the store as the last sync left it.";
  $("folders-summary").textContent = data.refused
    ? `${summary} · NOT SYNCING: ${data.refused}`
    : summary;
  const bar = $("sync-progress");
  bar.hidden = !data.progress;
  if (data.progress) {
    bar.max = Math.max(1, data.progress.total);
    bar.value = data.progress.done;
    bar.textContent = `${data.progress.done} of ${data.progress.total} files`;
  }
  const roots = $("roots");
  const focused = document.activeElement && document.activeElement.id;
  clear(roots);
  for (const root of data.roots) roots.append(rootCard(root));
  if (focused && $(focused)) $(focused).focus();
  notIncluded(data);
}

function rootCard(root) {
  const stats = el("p", { class: "stats" },
    stat(root.files, "files"), stat(root.points, "points"),
    stat(root.skipped, "skipped"), stat(root.failed, "failed"));
  const card = el("div", { class: "card root" }, el("h3", {}, root.root), stats);
  if (root.set_aside.length) card.append(asideTable(root));
  return card;
}

function stat(n, label) {
  return el("span", { class: `stat ${label}` }, el("b", {}, Number(n).toLocaleString()), ` ${label}`);
}

function asideTable(root) {
  const reasons = [...new Set(root.set_aside.map((s) => s.reason))].sort();
  const text = el("input", { id: "aside-filter", type: "search", placeholder: "filter by path", "aria-label": "filter by path" });
  text.value = filters.text;
  const reason = el("select", { id: "aside-reason", "aria-label": "reason" }, el("option", { value: "" }, "every reason"));
  for (const r of reasons) reason.append(el("option", { value: r }, r));
  reason.value = reasons.includes(filters.reason) ? filters.reason : "";
  const body = el("tbody");
  const fill = () => {
    filters.text = text.value;
    filters.reason = reason.value;
    clear(body);
    for (const s of root.set_aside) {
      if (filters.reason && s.reason !== filters.reason) continue;
      if (filters.text && !s.path.toLowerCase().includes(filters.text.toLowerCase())) continue;
      body.append(el("tr", { class: s.failed ? "failed" : "skipped" },
        el("td", {}, s.path), el("td", {}, s.failed ? "failed" : "skipped"),
        el("td", { class: "reason" }, s.reason), el("td", { class: "muted" }, s.detail)));
    }
  };
  text.addEventListener("input", fill);
  reason.addEventListener("change", fill);
  fill();
  const more = root.skipped + root.failed > root.set_aside_listed
    ? el("p", { class: "muted" }, `the first ${root.set_aside_listed} of ${root.skipped + root.failed} are listed`)
    : null;
  const head = el("thead", {}, el("tr", {}, el("th", {}, "file"), el("th", {}, ""), el("th", {}, "reason"), el("th", {}, "detail")));
  return el("div", { class: "aside" }, el("p", { class: "tools" }, text, reason), el("table", {}, head, body), more);
}

function notIncluded(data) {
  const entries = Object.entries(data.not_included || {});
  $("not-included").hidden = !entries.length;
  clear($("not-included-list"));
  for (const [ext, n] of entries) $("not-included-list").append(el("li", {}, el("b", {}, n), ` ${ext}`));
  const names = data.not_included_names || [];
  $("not-included-names").textContent = names.length ? `for example ${names.join(", ")}` : "";
}

// Health -------------------------------------------------------------------------------

function showHealth() {
  return poll(loadHealth, HEALTH_EVERY_MS);
}

function seconds(value) {
  if (value === null || value === undefined) return "–";
  return value < 10 ? `${value.toFixed(2)} s` : `${Math.round(value)} s`;
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

async function loadHealth() {
  const data = await api("/api/health");
  const lag = data.lag;
  $("lag-p50").textContent = seconds(lag && lag.p50);
  $("lag-p95").textContent = seconds(lag && lag.p95);
  $("lag-note").textContent = !data.live
    ? "Not watching (docsync serve): nothing is synced here."
    : `${lag.samples} change(s) made searchable in the last hour`;
  chart(lag ? lag.series : []);
  table($("errors"), data.errors ? Object.entries(data.errors) : [["—", "not watching"]]);
  const profile = data.profile || {};
  table($("profile"), Object.entries(profile).map(([k, v]) => [k, v !== null && typeof v === "object" ? JSON.stringify(v) : v]));
  const s = data.store;
  table($("store-info"), [["kind", s.kind], ["where", s.description], ["collection", s.collection],
    ["points", Number(s.points).toLocaleString()], ["size", bytes(s.bytes)]]);
}

function table(node, rows) {
  clear(node);
  for (const [k, v] of rows) {
    const shown = v === null || v === undefined || v === "" ? "–" : String(v);
    node.append(el("tr", {}, el("th", {}, k), el("td", {}, shown)));
  }
}

// A bar per change, its height its lag (the newest on the right), on a square-root scale.
function chart(series) {
  const svg = $("lag-chart");
  clear(svg);
  const ns = "http://www.w3.org/2000/svg";
  const most = Math.max(1, ...series.map(([, lag]) => lag));
  $("lag-scale").textContent = series.length
    ? `each bar a change, the newest on the right; the top is ${seconds(most)}`
    : "";
  const width = 240 / Math.max(series.length, 1);
  series.forEach(([age, lag], i) => {
    const h = Math.max(1, 58 * Math.sqrt(lag / most));
    const bar = document.createElementNS(ns, "rect");
    bar.setAttribute("x", String(i * width));
    bar.setAttribute("y", String(60 - h));
    bar.setAttribute("width", String(Math.max(1, width - 1)));
    bar.setAttribute("height", String(h));
    const title = document.createElementNS(ns, "title");
    title.textContent = `${seconds(lag)}, ${Math.round(age)} s ago`;
    bar.append(title);
    svg.append(bar);
  });
}

// Start --------------------------------------------------------------------------------

function searchSubmitted(event) {
  event.preventDefault();
  const p = new URLSearchParams();
  const q = $("q").value.trim();
  if (q) p.set("q", q);
  if ($("mode").value) p.set("mode", $("mode").value);
  for (const name of FILTERS) if ($(name).value.trim()) p.set(name, $(name).value.trim());
  go(p.toString() ? `/?${p}` : "/");
}

function tokenSubmitted(event) {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token").value = "";
  route();
}

function keyboard(event) {
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
  if (event.key === "/" && !typing) {
    event.preventDefault();
    go(lastSearch === "/" ? "/" : lastSearch);
    $("q").focus();
    $("q").select();
  } else if ((event.key === "j" || event.key === "k") && !typing && !$("view-search").hidden) {
    const links = [...document.querySelectorAll(".hit-link")];
    if (!links.length) return;
    const at = links.indexOf(document.activeElement);
    const next = event.key === "j" ? Math.min(links.length - 1, at + 1) : Math.max(0, at - 1);
    links[next].focus();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("search-form").addEventListener("submit", searchSubmitted);
  $("token-form").addEventListener("submit", tokenSubmitted);
  for (const link of document.querySelectorAll("nav a, a.brand, #back")) {
    link.addEventListener("click", (event) => {
      if (event.ctrlKey || event.metaKey || event.shiftKey) return;
      event.preventDefault();
      go(link.getAttribute("href"));
    });
  }
  document.addEventListener("keydown", keyboard);
  window.addEventListener("popstate", route);
  route();
});
