// The status page: a snapshot, then every change, from GET /api/events (server-sent
// events). EventSource reconnects by itself and resumes with the last event id; after
// an agent restart the agent sends a fresh snapshot. Admin actions go through the REST
// API with the token the user typed (kept for this tab only, in sessionStorage).
"use strict";

const TOKEN_KEY = "resource-agent-admin-token";
const COLUMNS = ["Resource", "State", "Holder", "Since", "Expires", "Health", "Details", "Actions"];
const rows = new Map(); // resource id -> {tr, res, actionsKey}
let clockOffset = 0; // agent's clock minus ours, in ms
let started = null;
let source = null;
let lastId = null;

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
};

// ------------------------------------------------------------------ times

const now = () => Date.now() + clockOffset;

function span(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

function timeCell(iso, future) {
  if (!iso) return null;
  return el("time", { datetime: iso, title: new Date(iso).toLocaleString(), "data-future": future ? "1" : "" });
}

function tick() {
  for (const t of document.querySelectorAll("time[datetime]")) {
    const ms = Date.parse(t.getAttribute("datetime")) - now();
    t.textContent = t.dataset.future ? (ms > 0 ? `in ${span(ms)}` : "now") : `${span(-ms)} ago`;
  }
  if (started !== null) $("uptime").textContent = span(now() - started);
}

// -------------------------------------------------------------- rendering

function holderCell(hold) {
  if (!hold) return [];
  const who = hold.holder;
  const system = who.id.replace(/^https?:\/\//, "").replace(/\/$/, "");
  const label = `${hold.kind} by ${system}${who.url ? " · " + who.url : ""}`;
  if (/^https?:\/\//.test(who.id)) {
    return [el("a", { href: who.id + who.url, text: label, rel: "noreferrer" })];
  }
  return [document.createTextNode(label)];
}

function healthText(res) {
  const parts = [];
  if (!res.enabled) parts.push(`disabled${res.disabled_reason ? ": " + res.disabled_reason : ""}`);
  if (res.problem) parts.push(res.problem);
  if (!res.present && res.state !== "absent") parts.push("not connected");
  return parts.join("; ");
}

function details(res) {
  const out = [];
  const meta = Object.entries(res.metadata);
  if (res.metadata.battery) out.push(el("div", { text: `battery ${res.metadata.battery}%` }));
  if (res.sessions) {
    out.push(el("a", {
      href: `/api/sessions?resource=${encodeURIComponent(res.id)}&limit=1`,
      class: "log", text: "session log", onclick: (ev) => openLog(ev, res.id),
    }));
  }
  if (meta.length) {
    const dl = el("dl");
    for (const [k, v] of meta) dl.append(el("dt", { text: k }), el("dd", { text: v }));
    out.push(el("details", {}, el("summary", { text: `metadata (${meta.length})` }), dl));
  }
  return out;
}

function actions(res) {
  const box = el("div", { class: "actions" });
  if (res.holder) {
    const release = el("button", { type: "button", text: "Force release", "aria-label": `Force release ${res.id}` });
    release.addEventListener("click", () => {
      if (release.dataset.armed) act(res.id, "release", { force: true });
      else { release.dataset.armed = "1"; release.textContent = "Confirm release"; setTimeout(() => { delete release.dataset.armed; release.textContent = "Force release"; }, 5000); }
    });
    box.append(release);
  }
  if (!res.enabled || res.state === "quarantined" || (res.problem && !res.health)) {
    box.append(el("button", { type: "button", text: "Enable", "aria-label": `Enable ${res.id}`, onclick: () => act(res.id, "enable", {}) }));
  }
  if (res.enabled) {
    const reason = el("input", { type: "text", placeholder: "reason", "aria-label": `Reason for disabling ${res.id}` });
    const disable = el("button", { type: "button", text: "Disable", "aria-label": `Disable ${res.id}` });
    disable.addEventListener("click", () => act(res.id, "disable", { reason: reason.value }));
    reason.addEventListener("keydown", (ev) => { if (ev.key === "Enter") disable.click(); });
    box.append(reason, disable);
  }
  return box;
}

function render(res) {
  let row = rows.get(res.id);
  if (!row) {
    const tr = el("tr", { "data-id": res.id });
    for (const label of COLUMNS) tr.append(el("td", { "data-label": label, class: label === "Actions" ? "admin-only" : "" }));
    row = { tr, res, actionsKey: null };
    rows.set(res.id, row);
    placeRow(tr, res.id);
  }
  row.res = res;
  const cells = row.tr.children;
  const hold = res.holder;
  cells[0].replaceChildren(...[
    el("div", { class: "name", text: res.name }),
    el("div", { class: "sub", text: res.name === res.id ? res.kind : `${res.id} · ${res.kind}` }),
    res.description ? el("div", { class: "sub", text: res.description }) : null,
  ].filter(Boolean));
  cells[1].replaceChildren(el("span", { class: `state state-${res.state}`, text: res.state }));
  cells[2].replaceChildren(...holderCell(hold));
  cells[3].replaceChildren(...[hold ? timeCell(hold.since, false) : null].filter(Boolean));
  cells[4].replaceChildren(...[hold ? timeCell(hold.expires, true) : null].filter(Boolean));
  const health = healthText(res);
  cells[5].replaceChildren(health ? el("span", { class: "problem", text: health }) : "");
  cells[6].replaceChildren(...details(res));
  // The actions cell is rebuilt only when what it offers changes: a reason being typed survives.
  const key = JSON.stringify([!!hold, res.enabled, res.state, res.problem]);
  if (row.actionsKey !== key) {
    const focused = row.tr.contains(document.activeElement) && cells[7].contains(document.activeElement);
    cells[7].replaceChildren(actions(res));
    row.actionsKey = key;
    if (focused) cells[7].querySelector("button, input")?.focus();
  }
  row.tr.dataset.state = res.state;
}

function placeRow(tr, id) {
  const body = $("resources").tBodies[0];
  const after = [...body.rows].find((r) => r.dataset.id > id);
  body.insertBefore(tr, after || null);
}

function remove(id) {
  const row = rows.get(id);
  if (row) { row.tr.remove(); rows.delete(id); }
}

function summarize() {
  const counts = {};
  for (const { res } of rows.values()) counts[res.state] = (counts[res.state] || 0) + 1;
  $("summary").textContent = `(${rows.size}: ${Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(", ") || "none"})`;
  $("empty").hidden = rows.size > 0;
  tick();
}

function renderCoordinators(list) {
  const ul = $("coordinators");
  if (!list.length) { ul.replaceChildren(el("li", { text: "none configured" })); return; }
  ul.replaceChildren(...list.map((c) => {
    const err = c.last_error && c.state !== "in sync" ? ` — ${c.last_error.message}` : "";
    const pending = c.pending ? `, ${c.pending} pending` : "";
    const ok = c.state === "in sync" || c.state === "syncing";
    return el("li", {},
      el("a", { href: c.url, text: c.url.replace(/^https?:\/\//, "").replace(/\/$/, "") }),
      el("span", { class: ok ? "" : "problem", text: `: ${c.state}${pending}${err}` }));
  }));
}

// ----------------------------------------------------------------- stream

function onSnapshot(data) {
  $("node").textContent = data.agent.node;
  document.title = `resource-agent on ${data.agent.node}`;
  $("version").textContent = data.agent.version;
  clockOffset = Date.parse(data.agent.now) - Date.now();
  started = Date.parse(data.agent.started);
  const ids = new Set(data.resources.map((r) => r.id));
  for (const id of [...rows.keys()]) if (!ids.has(id)) remove(id);
  data.resources.forEach(render);
  renderCoordinators(data.coordinators);
  summarize();
}

function onChange(change) {
  if (change.type === "removed") remove(change.resource.id);
  else render(change.resource);
  summarize();
}

function setConnection(state, text) {
  const p = $("connection");
  p.dataset.state = state;
  p.textContent = text;
}

function connect() {
  const url = lastId ? `/api/events?last_event_id=${encodeURIComponent(lastId)}` : "/api/events";
  source = new EventSource(url);
  const handle = (fn) => (ev) => { lastId = ev.lastEventId || lastId; fn(JSON.parse(ev.data)); };
  source.addEventListener("snapshot", handle(onSnapshot));
  source.addEventListener("resource", handle(onChange));
  source.addEventListener("coordinators", handle((d) => renderCoordinators(d.coordinators)));
  source.addEventListener("open", () => setConnection("live", "Live: changes show as they happen."));
  source.addEventListener("error", () => {
    setConnection("reconnecting", "Connection to the agent lost; reconnecting…");
    if (source.readyState === EventSource.CLOSED) { source.close(); setTimeout(connect, 1000); }
  });
}

// ------------------------------------------------------------------ admin

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function showMode() {
  const admin = !!token();
  document.body.classList.toggle("admin", admin);
  $("mode").textContent = admin
    ? "Administrator actions are on (the token is kept for this tab only)."
    : "Read-only. Enter an admin token to enable, disable or force-release resources.";
}

function say(text) { $("message").textContent = text; }

async function act(id, action, body) {
  const done = { release: "force-released", enable: "enabled", disable: "disabled" }[action];
  try {
    const resp = await fetch(`/api/resources/${encodeURIComponent(id)}/${action}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token()}` },
      body: JSON.stringify(body),
    });
    if (resp.ok) { say(`${id}: ${done}.`); return; }
    let why = resp.statusText;
    try { why = (await resp.json()).error.message; } catch (e) { /* not the agent's error body */ }
    say(`${action} ${id} refused (HTTP ${resp.status}): ${why}`);
  } catch (e) {
    say(`${action} ${id} failed: the agent did not answer (${e.message})`);
  }
}

async function openLog(ev, id) {
  ev.preventDefault();
  const resp = await fetch(`/api/sessions?resource=${encodeURIComponent(id)}&limit=1`);
  const found = resp.ok ? (await resp.json()).sessions : [];
  if (found.length) window.location.href = `/api/sessions/${encodeURIComponent(found[0].id)}/log`;
  else say(`${id} has had no session yet.`);
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = $("token").value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    $("token").value = "";
    showMode();
    say(value ? "Token set for this tab." : "");
  });
  $("drop-token").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); showMode(); say("Token forgotten."); });
  showMode();
  connect();
  setInterval(tick, 1000);
});
