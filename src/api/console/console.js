// The pushgate console: a page on the JSON API, with no build step. The key
// lives in sessionStorage (this tab only) and goes out as a bearer header;
// everything shown is put in the page as text, never as HTML.
"use strict";

const store = window.sessionStorage;
const state = { key: store.getItem("pushgate.key"), app: store.getItem("pushgate.app"), admin: store.getItem("pushgate.admin") === "1", timer: null, shown: null };
const $ = (id) => document.getElementById(id);

/** An element with attributes (`on*` as listeners) and children (strings become text). */
function el(tag, attrs, ...children) {
  const node = tag === "svg" || tag === "rect" || tag === "text" || tag === "line" || tag === "title" || tag === "desc" || tag === "g"
    ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** Calls the API; answers `{status, body}`. The admin reads the chosen app. */
async function api(path, params) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  if (state.admin && state.app && !url.searchParams.has("app_id") && path !== "/v1/apps") url.searchParams.set("app_id", state.app);
  const res = await fetch(url, { headers: { authorization: "Bearer " + state.key }, cache: "no-store" });
  let body = null;
  try { body = await res.json(); } catch (_) { body = null; }
  // A key that stops working (revoked) while signed in: back to the sign-in form.
  if (res.status === 401 && store.getItem("pushgate.key")) signOut("Your key was refused (401 unauthorized); sign in again.");
  return { status: res.status, body };
}

function errorText(r) {
  const e = r.body && r.body.error;
  return e ? `${e.code}: ${e.message}` : `HTTP ${r.status}`;
}

const fmt = (n) => Number(n || 0).toLocaleString("en");
const when = (t) => t ? t.replace("T", " ").replace(/\.\d+Z$/, "Z") : "";

function table(caption, headers, rows, attrs) {
  return el("table", attrs || {},
    el("caption", { class: "visually-hidden" }, caption),
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) =>
      typeof c === "number" ? el("td", { class: "num" }, fmt(c)) : el("td", {}, c))))));
}

/** Replaces the page; focus moves to its heading only when the user went to another page (not on a refresh). */
function show(title, ...content) {
  const page = $("page");
  const moved = state.shown !== location.hash;
  state.shown = location.hash;
  page.replaceChildren(el("h2", { id: "page-title", tabindex: "-1" }, title), ...content.flat(Infinity).filter((c) => c !== null && c !== undefined));
  page.hidden = false;
  page.dataset.route = location.hash;
  document.title = `${title} · pushgate console`;
  if (moved) $("page-title").focus();
}

function fail(r) {
  return el("p", { class: "error", role: "alert" }, errorText(r));
}

// ---- sign in / out

async function signIn(key) {
  for (const k of ["pushgate.key", "pushgate.app", "pushgate.admin"]) store.removeItem(k);
  state.key = key; state.admin = false; state.app = null;
  let r = await api("/v1/stats");
  if (r.status === 200) {
    state.app = null;
  } else if (r.status === 403 && (r = await api("/v1/apps")).status === 200) {
    state.admin = true;
  } else {
    state.key = null;
    const why = r.status === 401 ? "This key is not known (401 unauthorized)."
      : r.status === 403 ? "This key may not open the console: use an app's server key or the admin key." : errorText(r);
    $("sign-in-error").textContent = why;
    return;
  }
  store.setItem("pushgate.key", key);
  store.setItem("pushgate.admin", state.admin ? "1" : "0");
  $("sign-in-error").textContent = "";
  location.hash = state.admin ? "#/apps" : "#/overview";
  route();
}

function signOut(message) {
  for (const k of ["pushgate.key", "pushgate.app", "pushgate.admin"]) store.removeItem(k);
  state.key = null; state.app = null; state.admin = false; state.shown = null;
  $("page").replaceChildren();
  $("sign-in-error").textContent = message || "";
  location.hash = "";
  route();
}

// ---- pages

async function apps() {
  const r = await api("/v1/apps", { limit: 1000 });
  if (r.status !== 200) return show("Apps", fail(r));
  show("Apps", el("p", {}, "The admin key reads every app: choose one."),
    table("Apps", ["Name", "Id", ""], r.body.items.map((a) => [a.name, a.id,
      el("button", { type: "button", onclick: () => { state.app = a.id; store.setItem("pushgate.app", a.id); location.hash = "#/overview"; } }, `Open ${a.name}`)])));
}

const WINDOWS = { hour: ["minute", 60, "Last hour, per minute"], day: ["hour", 24, "Last day, per hour"], month: ["day", 30, "Last 30 days, per day"] };

async function overview(params) {
  const win = WINDOWS[params.get("window")] ? params.get("window") : "hour";
  const [bucket, count] = WINDOWS[win];
  const since = new Date(Date.now() - count * { minute: 60e3, hour: 3600e3, day: 86400e3 }[bucket]).toISOString();
  const r = await api("/v1/stats", { bucket, since });
  if (r.status !== 200) return show("Overview", fail(r));
  const s = r.body;
  const total = { delivered: 0, failed: 0, expired: 0 };
  const reasons = {};
  for (const b of s.buckets) {
    for (const k of Object.keys(total)) total[k] += b[k];
    for (const [reason, n] of Object.entries(b.by_reason)) reasons[reason] = (reasons[reason] || 0) + n;
  }
  const picker = el("form", { onsubmit: (e) => { e.preventDefault(); location.hash = "#/overview?window=" + e.target.window.value; } },
    el("label", { for: "window" }, "Window"),
    el("select", { id: "window", name: "window" }, Object.entries(WINDOWS).map(([k, w]) => el("option", { value: k, selected: k === win }, w[2]))),
    el("button", { type: "submit" }, "Show"));
  const cards = el("div", { class: "cards" }, Object.entries(total).map(([k, n]) =>
    el("div", { class: "card" }, el("div", {}, k), el("div", { class: "value " + k, id: "total-" + k }, fmt(n)))));
  const reasonRows = Object.entries(reasons).sort((a, b) => b[1] - a[1]).map(([k, n]) => [k, n]);
  const deviceRows = Object.entries(s.devices).map(([p, d]) => [p, d.active, d.inactive]);
  const providerRows = Object.entries(s.providers).map(([p, v]) => [p, v.configured ? (v.status || "ok") : "not configured", v.last_error || "", when(v.since)]);
  show("Overview", picker, cards,
    el("h3", {}, "Deliveries"), chart(s.buckets, bucket),
    el("h3", {}, "Failure reasons"),
    reasonRows.length ? table("Failure reasons", ["Reason", "Deliveries"], reasonRows, { id: "reasons" }) : el("p", {}, "No failures in this window."),
    el("h3", {}, "Devices"), table("Devices by platform and state", ["Platform", "Active", "Inactive"], deviceRows, { id: "devices" }),
    el("h3", {}, "Provider credentials"), table("Provider credentials", ["Provider", "Status", "Last error", "Failing since"], providerRows, { id: "providers" }));
  state.timer = setTimeout(() => route(), 15000);
}

/** Stacked bars of delivered / failed / expired per bucket, with the data as a table too. */
function chart(buckets, bucket) {
  const W = 720, H = 180, pad = 30, n = Math.max(buckets.length, 1);
  const max = Math.max(1, ...buckets.map((b) => b.delivered + b.failed + b.expired));
  const bw = (W - pad) / n;
  const label = (t) => bucket === "day" ? t.slice(5, 10) : t.slice(11, 16);
  const bars = buckets.map((b, i) => {
    let y = H - pad;
    const g = el("g", {}, el("title", {}, `${label(b.start)}: ${b.delivered} delivered, ${b.failed} failed, ${b.expired} expired`));
    for (const k of ["delivered", "failed", "expired"]) {
      const h = (b[k] / max) * (H - pad - 10);
      y -= h;
      if (h > 0) g.append(el("rect", { class: "bar-" + k, x: pad + i * bw + 1, y, width: Math.max(bw - 2, 1), height: h }));
    }
    return g;
  });
  const ticks = buckets.map((b, i) => i % Math.ceil(n / 8) === 0 ? el("text", { x: pad + i * bw, y: H - 12 }, label(b.start)) : null);
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-labelledby": "chart-title chart-desc", id: "chart" },
    el("title", { id: "chart-title" }, "Deliveries per " + bucket),
    el("desc", { id: "chart-desc" }, `Stacked bars of delivered, failed and expired deliveries; the highest bar is ${fmt(max)}.`),
    el("line", { class: "axis", x1: pad, y1: H - pad, x2: W, y2: H - pad }),
    el("text", { x: 0, y: 18 }, fmt(max)), el("text", { x: 0, y: H - pad }, "0"), bars, ticks);
  const rows = buckets.filter((b) => b.delivered + b.failed + b.expired > 0).map((b) => [when(b.start), b.delivered, b.failed, b.expired]);
  return el("div", {}, svg,
    el("p", { class: "legend" }, ["delivered", "failed", "expired"].map((k) => el("span", { class: k }, el("i", {}), k))),
    el("details", {}, el("summary", {}, "Chart data as a table"),
      table("Deliveries per " + bucket, ["Start", "Delivered", "Failed", "Expired"], rows)));
}

function pager(params, next) {
  const nav = el("p", {});
  if (params.get("cursor")) {
    const first = new URLSearchParams(params); first.delete("cursor");
    nav.append(el("a", { href: location.hash.split("?")[0] + "?" + first }, "First page"), " ");
  }
  if (next) {
    const p = new URLSearchParams(params); p.set("cursor", next);
    nav.append(el("a", { href: location.hash.split("?")[0] + "?" + p, id: "next-page" }, "Next page"));
  }
  return nav;
}

async function notifications(params) {
  const r = await api("/v1/notifications", { limit: 25, cursor: params.get("cursor") });
  if (r.status !== 200) return show("Notifications", fail(r));
  show("Notifications",
    table("Notifications, newest first", ["Notification", "Status", "Created", "Targeted", "Delivered", "Failed", "Expired"],
      r.body.items.map((n) => [el("a", { href: "#/notifications/" + encodeURIComponent(n.id) }, n.notification.title || n.id),
        n.status, when(n.created_at), n.counts.targeted, n.counts.delivered, n.counts.failed, n.counts.expired]), { id: "notifications" }),
    pager(params, r.body.next_cursor));
}

const STATUSES = ["", "pending", "delivered", "failed", "expired", "cancelled"];

/** A form of labelled selects, `[name, label, values]` each ("" is "any"); submitting starts again at the first page. */
function filters(params, base, selects) {
  const sel = (name, label, values) => [el("label", { for: "f-" + name }, label),
    el("select", { id: "f-" + name, name }, values.map((v) => el("option", { value: v, selected: (params.get(name) || "") === v }, v || "any")))];
  return el("form", { id: "filters", onsubmit: (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const [f] of selects) if (e.target[f].value) p.set(f, e.target[f].value);
    location.hash = base + "?" + p;
  } }, selects.map(([name, label, values]) => sel(name, label, values)), el("button", { type: "submit" }, "Filter"));
}

function deliveryTable(items, withDevice) {
  return table("Deliveries, newest first",
    [withDevice ? "Device" : "Notification", "Platform", "Status", "Attempts", "Provider status", "Reason", "Updated"],
    items.map((d) => [withDevice
      ? (d.device_id ? el("a", { href: "#/devices/" + encodeURIComponent(d.device_id) }, d.device_id) : "(token)")
      : el("a", { href: "#/notifications/" + encodeURIComponent(d.notification_id) }, d.notification_id),
      d.platform, d.status, d.attempts, d.provider_status === null ? "" : String(d.provider_status), d.reason || "", when(d.updated_at)]),
    { id: "deliveries" });
}

async function notification(id, params) {
  const [n, d] = await Promise.all([api("/v1/notifications/" + encodeURIComponent(id)),
    api("/v1/deliveries", { notification_id: id, status: params.get("status"), platform: params.get("platform"), limit: 50, cursor: params.get("cursor") })]);
  if (n.status !== 200) return show("Notification", fail(n));
  const c = n.body.counts;
  show("Notification " + id,
    el("p", {}, `${n.body.status} · created ${when(n.body.created_at)}`, n.body.notification.title ? ` · “${n.body.notification.title}”` : ""),
    table("Counts", ["Targeted", "Pending", "Delivered", "Failed", "Expired", "Cancelled"],
      [[c.targeted, c.pending, c.delivered, c.failed, c.expired, c.cancelled]], { id: "counts" }),
    el("h3", {}, "Delivery log"), filters(params, "#/notifications/" + encodeURIComponent(id), [["status", "Status", STATUSES], ["platform", "Platform", ["", "ios", "android"]]]),
    d.status === 200 ? deliveryTable(d.body.items, true) : fail(d), d.status === 200 ? pager(params, d.body.next_cursor) : null);
}

async function devices(params) {
  const by = params.get("by") || "id", q = params.get("q") || "";
  const form = el("form", { id: "lookup", onsubmit: (e) => {
    e.preventDefault();
    const f = e.target, p = new URLSearchParams({ by: f.by.value, q: f.q.value.trim() });
    if (f.by.value === "token") p.set("platform", f.platform.value);
    location.hash = f.by.value === "id" ? "#/devices/" + encodeURIComponent(f.q.value.trim()) : "#/devices?" + p;
  } },
    el("label", { for: "by" }, "Look up by"),
    el("select", { id: "by", name: "by" }, [["id", "device id"], ["user", "user id"], ["token", "token"]].map(([v, t]) => el("option", { value: v, selected: v === by }, t))),
    el("label", { for: "platform" }, "Platform (for a token)"),
    el("select", { id: "platform", name: "platform" }, ["ios", "android"].map((v) => el("option", { value: v, selected: params.get("platform") === v }, v))),
    el("label", { for: "q" }, "Value"), el("input", { id: "q", name: "q", value: q, required: true }),
    el("button", { type: "submit" }, "Look up"));
  if (!q) return show("Devices", form);
  const r = await api("/v1/devices", by === "user" ? { user_id: q, limit: 100 } : { token: q, platform: params.get("platform"), limit: 10 });
  if (r.status !== 200) return show("Devices", form, fail(r));
  show("Devices", form, r.body.items.length ? table("Devices found", ["Device", "Platform", "User", "Active", "Last seen"],
    r.body.items.map((d) => [el("a", { href: "#/devices/" + encodeURIComponent(d.id) }, d.id), d.platform, d.user_id || "", d.active ? "yes" : "no", when(d.last_seen_at)]), { id: "found" })
    : el("p", { id: "found" }, "No device found."));
}

async function device(id, params) {
  const [d, log] = await Promise.all([api("/v1/devices/" + encodeURIComponent(id)),
    api("/v1/deliveries", { device_id: id, status: params.get("status"), limit: 50, cursor: params.get("cursor") })]);
  if (d.status !== 200) return show("Device", fail(d));
  const v = d.body;
  const fields = [["Platform", v.platform], ["Token", v.token], ["User", v.user_id], ["Groups", (v.groups || []).join(", ")],
    ["Active", v.active ? "yes" : `no (${v.deactivated_reason || "deactivated"})`], ["Environment", v.environment],
    ["Locale", v.locale], ["Time zone", v.timezone], ["App version", v.app_version], ["Registered", when(v.created_at)], ["Last seen", when(v.last_seen_at)]];
  show("Device " + id,
    el("dl", { id: "device" }, fields.filter(([, x]) => x !== undefined && x !== null && x !== "").map(([k, x]) => [el("dt", {}, k), el("dd", {}, x)])),
    v.metadata && typeof v.metadata === "object" && Object.keys(v.metadata).length
      ? [el("h3", {}, "Metadata"), el("pre", {}, JSON.stringify(v.metadata, null, 2))] : null,
    el("h3", {}, "Delivery history"),
    log.status === 200 ? deliveryTable(log.body.items, false) : fail(log), log.status === 200 ? pager(params, log.body.next_cursor) : null);
}

async function sockets(params) {
  const r = await api("/v1/socket/clients", { limit: 100, cursor: params.get("cursor") });
  if (r.status !== 200) return show("Socket clients", fail(r));
  show("Socket clients", r.body.items.length
    ? table("Connected socket clients", Object.keys(r.body.items[0]), r.body.items.map((c) => Object.values(c).map((x) => typeof x === "object" && x !== null ? JSON.stringify(x) : String(x ?? ""))), { id: "clients" })
    : el("p", { id: "clients" }, "No client connected."), pager(params, r.body.next_cursor));
}

/** The state of a webhook in words: enabled, failing since when, or disabled and why. */
function hookState(h) {
  if (!h.enabled) return "disabled" + (h.disabled_reason ? ` (${h.disabled_reason})` : "");
  return h.failing_since ? `enabled, failing since ${when(h.failing_since)}` : "enabled";
}

async function webhooks(params) {
  const r = await api("/v1/webhooks", { limit: 100, cursor: params.get("cursor") });
  if (r.status !== 200) return show("Webhooks", fail(r));
  // Fields are picked one by one: a secret is never part of what is shown.
  show("Webhooks", r.body.items.length
    ? table("Webhooks", ["URL", "Events", "State", "Description"], r.body.items.map((h) => [
      el("a", { href: "#/webhooks/" + encodeURIComponent(h.id) }, h.url), h.events.join(", "), hookState(h), h.description || ""]), { id: "webhooks" })
    : el("p", { id: "webhooks" }, "No webhook."), pager(params, r.body.next_cursor));
}

async function webhook(id, params) {
  const [h, log] = await Promise.all([api("/v1/webhooks/" + encodeURIComponent(id)),
    api("/v1/webhooks/" + encodeURIComponent(id) + "/attempts", { status: params.get("status"), limit: 50, cursor: params.get("cursor") })]);
  if (h.status !== 200) return show("Webhook", webhooksFail(h));
  const v = h.body;
  const fields = [["URL", v.url], ["Events", v.events.join(", ")], ["State", hookState(v)], ["Description", v.description],
    ["Created", when(v.created_at)], ["Updated", when(v.updated_at)]];
  show("Webhook " + id,
    el("dl", { id: "webhook" }, fields.filter(([, x]) => x).map(([k, x]) => [el("dt", {}, k), el("dd", {}, x)])),
    el("h3", {}, "Attempts"), filters(params, "#/webhooks/" + encodeURIComponent(id), [["status", "Status", ["", "succeeded", "failed"]]]),
    log.status !== 200 ? fail(log) : log.body.items.length
      ? table("Attempts, newest first", ["Event", "Type", "Attempt", "Status", "HTTP status", "Latency (ms)", "Error", "At"],
        log.body.items.map((a) => [a.msg_id, a.type, a.attempt, a.status, a.http_status === null ? "" : String(a.http_status), a.latency_ms, a.error || "", when(a.at)]),
        { id: "attempts" })
      : el("p", { id: "attempts" }, "No attempt."),
    log.status === 200 ? pager(params, log.body.next_cursor) : null);
}

// ---- routing

async function route() {
  clearTimeout(state.timer);
  const signedIn = !!state.key;
  $("sign-in").hidden = signedIn;
  $("nav").hidden = !signedIn;
  $("page").hidden = !signedIn;
  if (!signedIn) { $("key").focus(); return; }
  $("nav-apps").hidden = !state.admin;
  $("who").textContent = state.admin ? `admin · app ${state.app || "(none chosen)"}` : "server key";
  const [path, query] = (location.hash.slice(1) || "/overview").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  for (const a of document.querySelectorAll("nav a")) {
    if (a.getAttribute("href") === "#/" + parts[0]) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  if (state.admin && (!state.app || parts[0] === "apps")) return apps();
  switch (parts[0]) {
    case "notifications": return parts[1] ? notification(parts[1], params) : notifications(params);
    case "devices": return parts[1] ? device(parts[1], params) : devices(params);
    case "sockets": return sockets(params);
    case "webhooks": return parts[1] ? webhook(parts[1], params) : webhooks(params);
    default: return overview(params);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("key").value.trim()); });
  $("sign-out").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", route);
  route();
});
