// riskgate dashboard: polls the gate's HTTP API and draws what it says.
// Plain ES2020, no build step, no external requests. Everything from the API
// is written with textContent (never parsed as HTML): reasons and names come
// from callers and upstreams.
"use strict";

const STATE_EVERY_MS = 1000;
const DECISIONS_EVERY_MS = 2000;
const RATES_EVERY_MS = 5000;
const STALE_AFTER_MS = 5000; // no fresh answer for this long: the page says NO DATA

let readToken = null; // kept in this tab's memory only, for read_access = "token"
let needsToken = false;
let lastOk = null; // performance.now() of the last good state: immune to the wall clock being set back
let lastRows = [];
const drawn = {}; // what each redrawn part last showed: unchanged parts are left alone (focus stays)

function changed(part, data) {
  const signature = JSON.stringify(data);
  if (drawn[part] === signature) return false;
  drawn[part] = signature;
  return true;
}

const usd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 0 });
const qty = new Intl.NumberFormat("en-US", { maximumFractionDigits: 8 });
const pct = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2, signDisplay: "exceptZero" });

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function fmtUsd(v) { return typeof v === "number" && isFinite(v) ? usd.format(v) : "—"; }
function fmtPct(v) { return typeof v === "number" && isFinite(v) ? `${pct.format(v)} %` : "—"; }
function fmtAge(s) {
  if (typeof s !== "number" || !isFinite(s)) return "never";
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "").replace("Z", "") + " UTC";
}
function shortTime(iso) {
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toISOString().slice(11, 19);
}

async function api(path, options = {}, token = readToken) {
  const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, Object.assign({}, options, { headers, cache: "no-store" }));
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  return { status: response.status, ok: response.ok, body };
}

// -- polling ------------------------------------------------------------------------------------
function every(ms, fn) {
  const run = async () => {
    try { await fn(); } catch (err) { /* shown by the freshness line */ }
    setTimeout(run, ms);
  };
  run();
}

async function pollState() {
  const r = await api("/v1/state");
  needsToken = r.status === 401;
  if (!r.ok || !r.body) return;
  lastOk = performance.now();
  drawState(r.body);
}

async function pollDecisions() {
  const r = await api("/v1/decisions?decision=block,scale_down&limit=50");
  if (r.status === 401) return;
  if (r.status === 503 && r.body) { $("blocks-note").textContent = r.body.detail || "the journal is off"; drawBlocks([]); return; }
  if (!r.ok || !Array.isArray(r.body)) return;
  $("blocks-note").textContent = r.body.length ? "" : "no blocks or scale-downs in the journal yet";
  drawBlocks(r.body);
}

async function pollRates() {
  const r = await api("/v1/decisions/rates");
  if (!r.ok || !r.body) return;
  drawChart(r.body);
}

function tickFreshness() {
  const line = $("freshness");
  if (needsToken) {
    line.textContent = "this gate needs a token to read its state: press “Read token…”";
  }
  if (lastOk === null) {
    if (!needsToken) line.textContent = "no answer from the gate yet";
    return;
  }
  const elapsed = performance.now() - lastOk;
  const ago = elapsed / 1000;
  if (!needsToken) line.textContent = `updated ${fmtAge(ago)} ago`;
  const old = !(elapsed >= 0 && elapsed <= STALE_AFTER_MS);
  document.body.classList.toggle("stale", old); // what the panels show is old: greyed out
  if (old) {
    // What this page shows is old: never leave TRADING on screen.
    $("banner").dataset.state = "NO DATA";
    $("banner-state").textContent = "NO DATA";
    setList($("banner-causes"), [`the gate has not answered for ${fmtAge(ago)}: what follows is old`]);
  }
}

// -- banner and sources ----------------------------------------------------------------------------
function setList(list, lines) {
  list.replaceChildren(...lines.map((line) => el("li", { text: line })));
}

function drawState(doc) {
  const banner = doc.banner || { state: "FAIL-CLOSED", causes: [{ detail: "no banner in the state document" }], also: [] };
  $("banner").dataset.state = banner.state;
  $("banner-state").textContent = banner.state;
  const halt = doc.operator_halt || {};
  const since = (c) => (c.source === "ess/operator_halt" && halt.active && halt.since) || c.since; // persisted: survives a restart
  const lines = banner.causes.map((c) => since(c) ? `${c.source}: ${c.detail} — since ${fmtTime(since(c))}` : c.detail);
  for (const c of banner.also || []) lines.push(`also ${c.detail}`);
  if ((banner.accounts_blocked || []).length) lines.push(`accounts failing closed: ${banner.accounts_blocked.join(", ")}`);
  const locked = banner.accounts_locked || [];
  if (locked.length) lines.push(`${locked.length} account${locked.length === 1 ? "" : "s"} locked (new risk blocked): ${locked.join(", ")}`);
  if (banner.state === "TRADING" && !lines.length) lines.push(`risk level ${doc.risk_level || "?"}, every source fresh`);
  setList($("banner-causes"), lines);
  const blocking = new Set([...banner.causes, ...(banner.also || [])].filter((c) => c.kind === "fail_closed").map((c) => c.source));
  drawSources(doc.sources || {}, blocking);
  drawAccounts(doc.accounts || {});
  drawInstances(doc.store || { backend: "sqlite" });
  if (changed("overrides", [doc.overrides, doc.operator_halt])) drawOverrides(doc.overrides || {}, doc.operator_halt || {});
  drawAlerts(doc.alerts || { enabled: false });
}

function sourceRow(name, s, blocking) {
  const fresh = s.fresh === true;
  // Fresh by age yet what makes the gate block (an unreadable ESS source, a signal stamped long ago): said so.
  const unusable = fresh && blocking.has(name);
  let extra = "";
  if (name === "risk_v3") {
    const tier = s.ess_tier_recommendation ? `, ESS tier ${s.ess_tier_recommendation}` : "";
    extra = `${fresh ? "" : "last known: "}${s.risk_level || "—"}${tier}`;
  } else if (name === "ess") {
    extra = s.active === true ? `HALT: ${s.reason || ""}` : s.active === false ? "no halt" : "unknown";
  }
  const err = s.last_error ? `${s.last_error.cause}: ${s.last_error.detail} (since ${fmtTime(s.last_error.since)})` : "";
  const ok = fresh && !unusable;
  const label = unusable ? "unusable" : fresh ? "fresh" : (s.age_s === null ? "no state" : "stale");
  return el("tr", { class: ok ? "" : "stale", "data-source": name },
    el("th", { scope: "row", text: name }),
    el("td", {}, el("span", { class: ok ? "pill ok" : "pill bad", text: label })),
    el("td", { class: "num", text: `${fmtAge(s.age_s)} / ${fmtAge(s.max_age_s)}` }),
    el("td", { text: extra }),
    el("td", { class: "reason", text: err }));
}

function drawSources(sources, blocking) {
  // Risk v3 and ESS each get a row; accounts are summed up here (each has its own card below).
  const rows = Object.entries(sources).filter(([name]) => !name.startsWith("account:")).map(([name, s]) => sourceRow(name, s, blocking));
  const accounts = Object.entries(sources).filter(([name]) => name.startsWith("account:"));
  const stale = accounts.filter(([, s]) => s.fresh !== true).map(([name]) => name.slice(8));
  const oldest = Math.max(0, ...accounts.map(([, s]) => (typeof s.age_s === "number" ? s.age_s : 0)));
  rows.push(el("tr", { class: stale.length ? "stale" : "", "data-source": "accounts" },
    el("th", { scope: "row", text: `accounts (${accounts.length})` }),
    el("td", {}, el("span", { class: stale.length ? "pill bad" : "pill ok", text: stale.length ? `${stale.length} stale` : "fresh" })),
    el("td", { class: "num", text: `oldest ${fmtAge(oldest)}` }),
    el("td", { text: "" }),
    el("td", { class: "reason", text: stale.length ? `stale or missing: ${stale.join(", ")}` : "" })));
  $("sources").tBodies[0].replaceChildren(...rows);
}

function drawInstances(store) {
  // Several instances (store.backend = "postgresql"): each one's state, heartbeat and leases.
  $("instances-section").hidden = store.backend !== "postgresql";
  if (store.backend !== "postgresql") return;
  const rows = (store.instances || []).map((i) => {
    const ok = i.state === "ready";
    const leases = Object.entries(i.leases_usd || {}).map(([cap, v]) => `${cap} ${fmtUsd(v)}`).join(", ") || "none";
    return el("tr", { class: ok ? "" : "stale", "data-instance": i.name },
      el("th", { scope: "row", text: i.this ? `${i.name} (this one)` : i.name }),
      el("td", {}, el("span", { class: ok ? "pill ok" : "pill bad", text: i.state })),
      el("td", { class: "num", text: fmtAge(i.heartbeat_age_s) }),
      el("td", { text: `${i.host} (pid ${i.pid})` }),
      el("td", { class: "reason", text: leases }));
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "5", class: "note", text: store.error || "no round with the store yet" })));
  $("instances").tBodies[0].replaceChildren(...rows);
}

// -- accounts ---------------------------------------------------------------------------------------
function meter(label, used, limit, text, name) {
  // `used` and `limit` are positive amounts; over when used >= limit.
  const ok = typeof used === "number" && isFinite(used) && typeof limit === "number" && limit > 0;
  const share = ok ? used / limit : 0;
  const fill = el("div", { class: "fill" });
  fill.style.width = `${Math.max(0, Math.min(1, share)) * 100}%`;
  return el("div", {
      class: "meter", "data-meter": name, "data-over": ok && share >= 1 ? "true" : "false",
      "data-level": share >= 0.8 ? "warn" : "ok",
    },
    el("div", { class: "label" }, el("span", { text: label }), el("span", { text })),
    el("div", {
      class: "track", role: "meter", "aria-label": label,
      "aria-valuemin": "0", "aria-valuemax": String(limit || 0), "aria-valuenow": String(ok ? used : 0),
    }, fill));
}

function clock(iso) {
  // a local time of day (UTC in the tooltip the caller adds)
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}
function left(s) {
  if (typeof s !== "number" || !isFinite(s)) return "";
  if (s < 90) return `${Math.max(0, Math.round(s))} s left`;
  if (s < 5400) return `${Math.round(s / 60)} min left`;
  if (s < 172800) return `${Math.round(s / 3600)} h left`;
  return `${Math.round(s / 86400)} days left`;
}
function lockoutLine(lock) {
  const until = lock.until ? `new risk blocked until ${clock(lock.until)}, ${left(lock.left_s)}` : "new risk blocked until an operator lifts it";
  return el("p", { class: "blocked lockout", "data-code": lock.code, title: `${lock.code}${lock.since ? ` since ${fmtTime(lock.since)}` : ""}${lock.until ? `, until ${fmtTime(lock.until)}` : ""}; lifts ${lock.lifts}`, text: `${until}: ${lock.cause}` });
}

function lossMeter(label, pnl, limit, name) {
  // pnl and limit in percent; limits are negative (-2.0 means a 2 % loss stops new risk).
  const loss = typeof pnl === "number" ? Math.max(0, -pnl) : null;
  return meter(label, loss, Math.abs(limit), `${fmtPct(pnl)} of ${fmtPct(limit)} limit`, name);
}

function drawAccounts(accounts) {
  const cards = Object.entries(accounts).map(([name, a]) => {
    const status = !a.has_state ? ["no state yet", "pill bad"]
      : a.fresh === false ? ["stale", "pill bad"]
      : a.blocked_by ? ["blocked", "pill bad"]
      : (a.lockouts || []).length ? ["locked", "pill bad"]
      : ["fresh", "pill ok"];
    const caps = [a.max_notional_usd, a.exchange_max_notional_usd].filter((v) => typeof v === "number");
    const cap = caps.length ? Math.min(...caps) : null;
    const parts = [
      el("h3", {}, el("span", { text: name }), el("span", { class: status[1], text: status[0] })),
      el("p", { class: "note", text: `${a.exchange} · ${a.capital_profile} · equity ${fmtUsd(a.equity_usd)} · state ${fmtAge(a.age_s)} old` }),
      lossMeter("day PnL", a.day_pnl_pct, a.max_daily_loss_pct, "day"),
      lossMeter("week PnL", a.week_pnl_pct, a.max_weekly_loss_pct, "week"),
      meter("gross exposure + reserved", a.exposure_with_reservations_usd, cap,
        `${fmtUsd(a.gross_exposure_usd)} + ${fmtUsd(a.reserved_usd)} of ${fmtUsd(cap)}`, "exposure"),
      meter("open positions", a.open_positions, a.max_open_positions,
        `${a.open_positions ?? "—"} of ${a.max_open_positions}`, "positions"),
    ];
    if (a.blocked_by) parts.splice(2, 0, el("p", { class: "blocked", text: `every order blocks: ${a.blocked_by}` }));
    else if ((a.lockouts || []).length) parts.splice(2, 0, ...a.lockouts.map(lockoutLine));
    if (a.override) parts.push(el("p", { class: "note", text: `override ${a.override.id} active, ${fmtAge(a.override.s_left)} left` }));
    const recent = Object.entries(a.decisions_last_minute || {}).map(([code, n]) => `${code} ${n}`);
    if (recent.length) parts.push(el("p", { class: "note", text: `last minute: ${recent.join(", ")}` }));
    const locked = (a.lockouts || []).length > 0;
    return el("article", { class: "account", "data-account": name, "data-locked": String(locked), "data-fresh": String(a.fresh === true && !a.blocked_by && !locked) }, ...parts);
  });
  $("accounts").replaceChildren(...cards);
}

// -- overrides and controls ----------------------------------------------------------------------------
function drawOverrides(overrides, halt) {
  const rows = [];
  for (const state of ["active", "proposed"]) {
    for (const o of overrides[state] || []) {
      const actions = el("td", {});
      if (state === "proposed") {
        actions.append(el("button", { type: "button", text: "Approve…", onclick: () => ask(
          `Approve override ${o.id} for ${o.account} (proposed by ${o.proposed_by}: ${o.reason})`, false,
          (token) => api(`/v1/overrides/${encodeURIComponent(o.id)}/approve`, { method: "POST" }, token)) }));
      }
      actions.append(" ", el("button", { type: "button", class: "quiet", text: "Revoke…", onclick: () => ask(
        `Revoke override ${o.id} for ${o.account}`, false,
        (token) => api(`/v1/overrides/${encodeURIComponent(o.id)}`, { method: "DELETE" }, token)) }));
      rows.push(el("tr", { "data-override": o.id },
        el("td", { text: o.id }), el("td", { text: o.account }), el("td", { text: state }),
        el("td", { text: o.approved_by ? `${o.proposed_by}, ${o.approved_by}` : o.proposed_by }),
        el("td", { class: "reason", text: o.reason }), el("td", { text: fmtTime(o.expires_at) }), actions));
    }
  }
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "7", class: "note", text: "no active overrides or pending approvals" })));
  $("overrides").tBodies[0].replaceChildren(...rows);
  const halts = halt.active ? (halt.halts || [halt]) : [];
  $("operator-halt").textContent = halts.length
    ? halts.map((h) => `${h.mode === "reduce_only" ? "reduce-only" : "operator halt"} by ${h.by} since ${fmtTime(h.since)}: ${h.reason}`).join(" · ")
    : "no operator halt";
  // Resume is offered only when an operator halt holds (an ESS or kill-switch halt is lifted at its source).
  $("resume-button").hidden = !halts.length;
  $("reduce-button").hidden = halts.some((h) => h.mode === "reduce_only") || halt.mode === "all";
}

function drawAlerts(alerts) {
  if (!alerts.enabled) {
    $("alerts-line").textContent = "alerting is off ([alerts] enabled = false)";
    return;
  }
  const firing = alerts.firing.length ? `alerts firing: ${alerts.firing.join(", ")}` : "no alerts firing";
  const hooks = alerts.webhooks.map((w) =>
    `${w.name}: ${w.failing ? "FAILING" : "ok"}, ${w.queued} queued, ${w.delivered} delivered${w.dropped ? `, ${w.dropped} dropped` : ""}`);
  $("alerts-line").textContent = `${firing} · webhooks: ${hooks.join("; ") || "none"}`;
}

let pending = null; // the action the auth dialog will send

function ask(what, withReason, send) {
  pending = send;
  $("auth-what").textContent = what;
  $("auth-reason-label").hidden = !withReason;
  $("auth-reason").required = withReason;
  $("auth-reason").value = "";
  $("auth-token").value = "";
  $("auth-error").textContent = "";
  $("auth").showModal();
  (withReason ? $("auth-reason") : $("auth-token")).focus();
}

async function submitAuth(event) {
  event.preventDefault();
  const token = $("auth-token").value.trim();
  if (!token) { $("auth-error").textContent = "a token is required"; return; }
  if (!pending) { $("auth").close(); return; }
  $("auth-submit").disabled = true;
  try {
    const r = await pending(token, $("auth-reason").value.trim());
    if (r.ok) {
      $("auth").close();
      pending = null;
      pollState();
    } else if (r.status === 401) {
      $("auth-error").textContent = "refused (401): not a token this gate knows for this action (an operator's token is needed)";
    } else {
      $("auth-error").textContent = `refused (${r.status}): ${(r.body && r.body.detail) || "no detail"}`;
    }
  } catch (err) {
    $("auth-error").textContent = `the gate did not answer: ${err}`;
  } finally {
    $("auth-submit").disabled = false;
  }
}

function jsonPost(path, body, token) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) }, token);
}

// -- blocks and the journal entry ---------------------------------------------------------------------------
function drawBlocks(rows) {
  if (!changed("blocks", rows)) return; // unchanged: keep the rows (and the keyboard focus)
  lastRows = rows;
  const body = rows.map((r, i) => el("tr", { "data-order": r.order_id, "data-code": r.reason_code },
    el("td", { class: "time" }, el("button", { type: "button", class: "link", text: fmtTime(r.time).replace(" UTC", ""),
      "aria-label": `journal entry of ${r.order_id}`, onclick: () => openEntry(i) })),
    el("td", { text: r.account }), el("td", { text: r.symbol }), el("td", { text: r.side }),
    el("td", { class: "num", text: r.quantity === null ? "—" : qty.format(r.quantity) }),
    el("td", { class: "code", text: r.decision }), el("td", { class: "code", text: r.reason_code }), el("td", { class: "reason", text: r.reason })));
  $("blocks").tBodies[0].replaceChildren(...body);
}

function entryValue(key, value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (key === "time" || key === "signal_time") return fmtTime(value);
  if (typeof value === "number") {
    if (key.endsWith("_age_s")) return fmtAge(value);
    if (key === "equity" || key === "reserved_usd") return usd.format(value);
    if (key.endsWith("_pct")) return `${pct.format(value)} %`;
    return qty.format(value);
  }
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function openEntry(index) {
  const row = lastRows[index];
  if (!row) return;
  $("entry-title").textContent = `Journal entry: ${row.order_id}`;
  const fields = [];
  for (const [key, value] of Object.entries(row)) {
    if (key.endsWith("_us")) continue; // the same instants as `time` and `signal_time`, for machines
    fields.push(el("dt", { text: key }), el("dd", { text: entryValue(key, value) }));
  }
  $("entry-fields").replaceChildren(...fields);
  $("entry").showModal();
}

// -- the chart -------------------------------------------------------------------------------------------------
const COLORS = { allow: ["#1a7f37", "#2da44e", "#4ac26b"], scale_down: ["#9a6700", "#bf8700", "#d4a72c", "#e3b341"],
  block: ["#cf222e", "#a40e26", "#fa4549", "#82071e", "#ff8182", "#8250df", "#6639ba", "#0969da", "#54aeff"] };
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function drawChart(doc) {
  const points = doc.points || [];
  const chart = $("chart");
  const W = 800, H = 220, left = 44, bottom = 20, top = 8;
  const end = points.length ? new Date(points[points.length - 1].end).getTime() : Date.now();
  const start = end - 15 * 60 * 1000;
  const keys = [...new Set(points.flatMap((p) => Object.keys(p.per_s)))].sort();
  const peak = Math.max(0.1, ...points.filter((p) => p.seconds >= (doc.interval_s || 5) / 2).flatMap((p) => Object.values(p.per_s)));
  const x = (t) => left + ((t - start) / (end - start)) * (W - left - 4);
  const y = (v) => H - bottom - (v / peak) * (H - bottom - top);
  const nodes = [
    svg("line", { class: "axis", x1: left, y1: H - bottom, x2: W, y2: H - bottom }),
    svg("line", { class: "axis", x1: left, y1: top, x2: left, y2: H - bottom }),
  ];
  const label = (text, attrs) => { const t = svg("text", attrs); t.textContent = text; return t; };
  nodes.push(label((peak < 1 ? peak.toFixed(2) : peak.toFixed(peak < 10 ? 1 : 0)) + "/s", { x: 2, y: top + 10 }), label("0", { x: 30, y: H - bottom }));
  for (let m = 15; m >= 0; m -= 5) {
    const t = end - m * 60000;
    nodes.push(label(m ? `−${m} min` : shortTime(new Date(end).toISOString()), { x: Math.min(W - 60, x(t) - 10), y: H - 5 }));
  }
  const legend = [];
  const used = { allow: 0, scale_down: 0, block: 0 };
  let summary = [];
  const interval = doc.interval_s || 5;
  const shown = points.filter((p) => new Date(p.end).getTime() >= start && p.seconds >= interval / 2);
  for (const key of keys) {
    const decision = key.split("/")[0];
    const palette = COLORS[decision] || COLORS.block;
    const color = palette[used[decision]++ % palette.length];
    // Each interval is a step: its rate from its start to its end; zero between intervals with nothing.
    const coords = [];
    for (const p of shown) {
      const v = y(p.per_s[key] || 0);
      coords.push(`${x(new Date(p.start).getTime()).toFixed(1)},${v.toFixed(1)}`, `${x(new Date(p.end).getTime()).toFixed(1)},${v.toFixed(1)}`);
    }
    if (coords.length) nodes.push(svg("polyline", { points: coords.join(" "), stroke: color, "data-series": key }));
    const total = points.reduce((sum, p) => sum + (p.per_s[key] || 0) * p.seconds, 0);
    if (Math.round(total) === 0) continue;
    summary.push(`${key}: ${Math.round(total)}`);
    const swatch = el("span", { class: "swatch" });
    swatch.style.background = color;
    legend.push(el("li", {}, swatch, `${key} (${Math.round(total)})`));
  }
  chart.replaceChildren(...nodes);
  $("legend").replaceChildren(...legend);
  $("chart-summary").textContent = summary.length ? `decisions in the last 15 minutes: ${summary.join(", ")}` : "no decisions in the last 15 minutes";
}

// -- start ---------------------------------------------------------------------------------------------------------
function start() {
  $("auth-form").addEventListener("submit", submitAuth);
  $("auth-cancel").addEventListener("click", () => { pending = null; $("auth").close(); });
  $("auth").addEventListener("close", () => { $("auth-token").value = ""; $("auth-reason").value = ""; });
  $("halt-button").addEventListener("click", () => ask("Halt every order now (an operator halt: persisted, journaled).", true,
    (token, reason) => jsonPost("/v1/halt", { reason: reason || "halted from the dashboard" }, token)));
  $("reduce-button").addEventListener("click", () => ask("Reduce-only: block every order that opens or grows a position; reducing orders pass (persisted, journaled).", true,
    (token, reason) => jsonPost("/v1/halt", { reason: reason || "reduce-only from the dashboard", mode: "reduce_only" }, token)));
  $("resume-button").addEventListener("click", () => ask("Lift every operator halt (an ESS or kill-switch halt stays).", true,
    (token, reason) => jsonPost("/v1/resume", { reason: reason || "resumed from the dashboard" }, token)));
  $("token-button").addEventListener("click", () => ask("Token for reading the gate's state (kept in this tab's memory only).", false,
    async (token) => { readToken = token; const r = await api("/v1/state"); if (!r.ok) readToken = null; return r; }));
  every(STATE_EVERY_MS, pollState);
  every(DECISIONS_EVERY_MS, pollDecisions);
  every(RATES_EVERY_MS, pollRates);
  setInterval(tickFreshness, 500);
}

start();
