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

function blockQuery() {
  const q = new URLSearchParams({ decision: $("filter-decision").value || "block,scale_down", limit: "50" });
  if ($("filter-account").value) q.set("account", $("filter-account").value);
  if ($("filter-code").value) q.set("code", $("filter-code").value);
  return `/v1/decisions?${q}`;
}

function fillSelect(select, values) {
  // Keep the choice; add what is new (accounts from the state, codes seen in the rows).
  const have = new Set([...select.options].map((o) => o.value));
  for (const v of values) if (v && !have.has(v)) select.append(el("option", { value: v, text: v }));
}

async function pollDecisions() {
  const r = await api(blockQuery());
  if (r.status === 401) return;
  if (r.status === 503 && r.body) { $("blocks-note").textContent = r.body.detail || "the journal is off"; drawBlocks([]); return; }
  if (!r.ok || !Array.isArray(r.body)) return;
  $("blocks-note").textContent = r.body.length ? "" : "nothing in the journal matches yet";
  fillSelect($("filter-code"), r.body.map((row) => row.reason_code));
  drawBlocks(r.body);
}

async function pollRates() {
  const r = await api(`/v1/decisions/series?range=${chartRange}`);
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
  // A gate that does not answer takes no action either: its buttons say so rather than fail.
  for (const b of document.querySelectorAll("#banner .buttons button:not(#token-button), #overrides button")) b.disabled = old;
  $("token-button").hidden = !needsToken && readToken === null;
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
  // For people: the detail's own times and figures rounded; its source named once; "since" once.
  const said = (c) => {
    // A halt names where it comes from once ("ESS http: ...", "kill switch file PATH: ..."); the operator's
    // says so itself ("operator halt by alice since ...").
    const raw = String(c.detail || "");
    const halt = c.kind === "halt" && c.source && c.source.startsWith("ess/") ? c.source.slice(4) : null;
    const detail = humanReason(halt === "kill_switch_file" ? `kill switch file ${raw.replace(/^kill switch /, "")}`
      : halt && halt !== "operator_halt" ? `ESS ${halt}: ${raw}` : raw);
    const when = since(c);
    return when && !/ since /.test(detail) ? `${detail} — since ${clock(when)}` : detail;
  };
  const lines = banner.causes.map(said);
  for (const c of banner.also || []) lines.push(`also ${said(c)}`);
  if ((banner.accounts_blocked || []).length) lines.push(`accounts failing closed: ${banner.accounts_blocked.join(", ")}`);
  const locked = banner.accounts_locked || [];
  if (locked.length) lines.push(`${locked.length} account${locked.length === 1 ? "" : "s"} locked (new risk blocked): ${locked.join(", ")}`);
  const paused = banner.symbols_paused || [], unpriced = banner.symbols_unpriced || [];
  if (paused.length) lines.push(`paused after a price spike (opening orders block): ${paused.join(", ")}`);
  if (unpriced.length) lines.push(`no fresh price (opening orders block): ${unpriced.join(", ")}`);
  if (banner.state === "TRADING" && !lines.length) lines.push(`risk level ${doc.risk_level || "?"}, every source fresh`);
  setList($("banner-causes"), lines);
  // The buttons follow the state: Resume only while an operator halt holds (an ESS or kill-switch halt
  // is lifted at its source); Reduce-only only while nothing halts every order already.
  const halts = halt.active ? (halt.halts || [halt]) : [];
  $("resume-button").hidden = !halts.length;
  $("reduce-button").hidden = halts.some((h) => h.mode === "reduce_only") || halt.mode === "all" || banner.state === "HALTED";
  const blocking = new Set([...banner.causes, ...(banner.also || [])].filter((c) => c.kind === "fail_closed").map((c) => c.source));
  drawSources(doc.sources || {}, blocking);
  drawAccounts(doc.accounts || {});
  fillSelect($("filter-account"), Object.keys(doc.accounts || {}));
  drawInstances(doc.store || { backend: "sqlite" });
  drawPrices(doc.prices || {}, (doc.sources || {}).prices);
  drawShadow(doc.shadow || { enabled: false });
  if (changed("overrides", [doc.overrides, doc.operator_halt])) drawOverrides(doc.overrides || {}, doc.operator_halt || {});
  drawAlerts(doc.alerts || { enabled: false });
}

// An upstream failure in words: "no answer (the connection closed)", not "transport: RemoteProtocolError: ...".
function plainError(cause, detail) {
  const text = `${cause}: ${detail}`;
  const known = [[/Connection refused|ConnectError/, "cannot connect (connection refused)"],
    [/RemoteProtocolError|disconnected without/, "the connection closed without an answer"],
    [/timed? ?out|Timeout/i, "no answer in time"], [/^http_status|HTTP [45]\d\d/, null]];
  for (const [re, words] of known) if (re.test(text)) return words ? words : humanReason(text);
  return humanReason(text);
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
  const halting = name === "ess" && s.active === true; // fresh, and halting: the pill says HALT, not a green "fresh"
  extra = humanReason(extra);
  const err = s.last_error ? `${plainError(s.last_error.cause, s.last_error.detail)} (since ${clock(s.last_error.since)})` : "";
  const ok = fresh && !unusable;
  const label = unusable ? "unusable" : fresh ? "fresh" : (s.age_s === null ? "no state" : "stale");
  return el("tr", { class: ok ? "" : "stale", "data-source": name },
    el("th", { scope: "row", text: name }),
    el("td", {}, el("span", { class: halting && ok ? "pill halt" : ok ? "pill ok" : "pill bad", text: halting && ok ? "halt" : label })),
    el("td", { class: "num", "data-label": "age / limit", text: `${fmtAge(s.age_s)} / ${fmtAge(s.max_age_s)}` }),
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
    el("td", { class: "num", "data-label": "age", text: `oldest ${fmtAge(oldest)}` }),
    el("td", { text: "" }),
    el("td", { class: "reason", text: stale.length ? `stale or missing: ${stale.join(", ")}` : "" })));
  $("sources").tBodies[0].replaceChildren(...rows);
}

function drawPrices(prices, source) {
  // [prices]: each symbol's reference; a stale one blocks its opening orders, a paused one too (until when, why).
  $("prices-section").hidden = !source;
  if (!source) return;
  const rows = Object.entries(prices).map(([symbol, p]) => {
    const paused = !!p.pause;
    const label = paused ? "paused" : p.fresh ? "fresh" : (p.price === null ? "no price" : "stale");
    const pause = paused ? `until ${clock(p.paused_until)}: ${p.pause}` : (p.fresh ? "" : "opening orders block");
    return el("tr", { class: p.fresh && !paused ? "" : "stale", "data-symbol": symbol },
      el("th", { scope: "row", text: symbol }),
      el("td", {}, el("span", { class: p.fresh && !paused ? "pill ok" : "pill bad", text: label })),
      el("td", { class: "num", "data-label": "price", text: typeof p.price === "number" ? p.price.toLocaleString() : "—" }),
      el("td", { class: "num", "data-label": "age", text: fmtAge(p.age_s) }),
      el("td", { class: "reason", text: pause }));
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "5", class: "note", text: "no price from the source yet" })));
  $("prices").tBodies[0].replaceChildren(...rows);
}

function drawShadow(shadow) {
  // [shadow] config: what the candidate decides otherwise (docs/replay.md); promoted with `riskgate shadow promote`.
  $("shadow-section").hidden = !shadow.enabled;
  if (!shadow.enabled) return;
  const file = String(shadow.candidate || "").split("/").pop();
  const state = shadow.state === "failed" ? `failed: ${shadow.problem || "?"}` : shadow.state;
  const n = (count, one, many) => `${Number(count || 0).toLocaleString()} ${Number(count) === 1 ? one : many}`;
  $("shadow-summary").textContent = `${file}: ${state}. ${n(shadow.decided, "order", "orders")} decided again, `
    + `${n(shadow.disagreements, "decided", "decided")} otherwise.`;
  $("shadow-summary").className = shadow.state === "failed" ? "stale" : "";
  const said = (pair) => `${pair[0]} ${pair[1]}`;
  const rows = (shadow.transitions || []).map((t) => el("tr", {},
    el("td", { "data-label": "live", text: said(t.from) }),
    el("td", { "data-label": "shadow", text: said(t.to) }),
    el("td", { class: "num", "data-label": "orders", text: Number(t.count).toLocaleString() })));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "3", class: "note", text: "no disagreement so far" })));
  $("shadow").tBodies[0].replaceChildren(...rows);
  setList($("shadow-latest"), (shadow.latest || []).slice(0, 5).map((d) =>
    `${clock(d.time)} ${d.order_id} (${d.account}, ${d.order}): ${d.live[0]} ${d.live[1]} → ${d.shadow[0]} ${d.shadow[1]}: ${humanReason(d.reason)}`));
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
      el("td", { class: "num", "data-label": "heartbeat", text: fmtAge(i.heartbeat_age_s) }),
      el("td", { text: `${i.host} (pid ${i.pid})` }),
      el("td", { class: "reason", "data-label": "leases", text: leases }));
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
  if (isNaN(d)) return String(iso);
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return d.toDateString() === new Date().toDateString() ? time : `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
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
    // blocked_kind: "fail_closed" (its own state: every order blocks) or "lockout" (new risk blocked).
    const failing = a.blocked_kind === "fail_closed";
    const locked = (a.lockouts || []).length > 0;
    const status = !a.has_state ? ["no state yet", "pill bad"]
      : a.fresh === false ? ["stale", "pill bad"]
      : failing ? ["blocked", "pill bad"]
      : locked ? ["locked", "pill bad"]
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
    if (failing) parts.splice(2, 0, el("p", { class: "blocked", text: `every order blocks: ${humanReason(a.blocked_by)}` }));
    else if (locked) parts.splice(2, 0, ...a.lockouts.map(lockoutLine));
    if (a.override) parts.push(el("p", { class: "note", text: `override ${a.override.id} active, ${fmtAge(a.override.s_left)} left` }));
    const recent = Object.entries(a.decisions_last_minute || {}).map(([code, n]) => `${code} ${n}`);
    if (recent.length) parts.push(el("p", { class: "note", text: `last minute: ${recent.join(", ")}` }));
    return el("article", { class: "account", "data-account": name, "data-locked": String(locked), "data-fresh": String(a.fresh === true && a.new_risk_allowed !== false && !locked) }, ...parts);
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
        el("td", { "data-label": "override", text: o.id }), el("td", { "data-label": "account", text: o.account }),
        el("td", { "data-label": "state", text: state }),
        el("td", { "data-label": "by", text: o.approved_by ? `${o.proposed_by}, ${o.approved_by}` : o.proposed_by }),
        el("td", { class: "reason", text: o.reason }),
        el("td", { "data-label": "ends", title: fmtTime(o.expires_at), text: clock(o.expires_at) }), actions));
    }
  }
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "7", class: "note", text: "no active overrides or pending approvals" })));
  $("overrides").tBodies[0].replaceChildren(...rows);
  const halts = halt.active ? (halt.halts || [halt]) : [];
  // Local times, UTC on hover (the halt's own time: it may predate a restart).
  $("operator-halt").textContent = halts.length
    ? halts.map((h) => `${h.mode === "reduce_only" ? "reduce-only" : "operator halt"} by ${h.by} since ${clock(h.since)}: ${h.reason}`).join(" · ")
    : "no operator halt";
  $("operator-halt").title = halts.map((h) => `${h.by} since ${fmtTime(h.since)}`).join(" · ");
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
      $("auth-error").textContent = "refused: this gate knows no such token (an operator's token is needed)";
    } else if (r.status === 403) {
      $("auth-error").textContent = "refused: this token is not an operator's (a client's, or one limited to other accounts)";
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
// A gate's reason, for people: `risk_pct=1.9872 > max_single_trade_risk_pct=0.5 (equity=49800.00)` reads
// "risk 1.99 % > max single trade risk 0.5 % (equity $49,800)"; ISO times become local times.
function humanReason(text) {
  if (typeof text !== "string") return "";
  return text
    // An ESS source named once: "operator_halt: operator halt by alice" is "operator halt by alice".
    .replace(/operator_halt: (?=operator halt by )/g, "")
    .replace(/kill_switch_file: kill switch /g, "kill switch file ")
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)/g, (iso) => clock(iso))
    .replace(/([A-Za-z_]+)=(-?\d+(?:\.\d+)?)/g, (all, key, raw) => {
      const v = Number(raw);
      const name = key.replace(/_(pct|usd|s)$/, "").replace(/_/g, " ");
      if (/_pct$/.test(key)) return `${name} ${+v.toFixed(2)} %`;
      if (/_usd$|^equity$/.test(key)) return `${name} ${usd.format(v)}`;
      if (/_s$/.test(key)) return `${name} ${+v.toFixed(1)} s`;
      return `${name} ${+v.toPrecision(6)}`;
    })
    .replace(/\b([a-z]+(?:_[a-z]+)*)=([A-Za-z]\w*)/g, (all, key, word) => `${key.replace(/_/g, " ")} ${word}`)
    .replace(/\b([a-z]+(?:_[a-z]+)+)\b/g, (all, key) => key.replace(/_usd$/, " (USD)").replace(/_pct$/, " (%)").replace(/_/g, " "))
    .replace(/\b(\d+)\.(\d{3,})\b/g, (all, whole, frac) => (+`${whole}.${frac}`).toPrecision(Math.max(whole.length + 2, 3)).replace(/\.?0+$/, ""))
    // Thousands separated ("650,000 > 71,500"), never inside a name, an id, a path or a time.
    .replace(/(?<![\w.\-\/:'"])(\d{4,})(?=\.\d|(?![\w\-\/:'"]))/g, (all, whole) => Number(whole).toLocaleString("en-US"));
}

function notional(r) {
  const q = r.adjusted_quantity || r.quantity;
  const p = r.price || r.reference_price;
  return typeof q === "number" && typeof p === "number" ? usd.format(q * p) : "—";
}

function drawBlocks(rows) {
  if (!changed("blocks", rows)) return; // unchanged: keep the rows (and the keyboard focus)
  lastRows = rows;
  const body = rows.map((r, i) => el("tr", { "data-order": r.order_id, "data-code": r.reason_code, "data-decision": r.decision },
    el("td", { class: "time", title: fmtTime(r.time) }, el("button", { type: "button", class: "link", text: clock(r.time),
      "aria-label": `journal entry of ${r.order_id}`, onclick: () => openEntry(i) })),
    el("td", { text: r.account }), el("td", { text: r.symbol }), el("td", { text: r.side }),
    el("td", { class: "num", "data-label": "qty", text: r.quantity === null ? "—"
      : r.decision === "scale_down" && typeof r.adjusted_quantity === "number" ? `${qty.format(r.quantity)} → ${qty.format(r.adjusted_quantity)}`
      : qty.format(r.quantity) }),
    el("td", { class: "num", "data-label": "notional", text: notional(r) }),
    el("td", { class: "code", text: r.decision === "scale_down" ? "scaled down" : r.decision }),
    el("td", { class: "code", text: r.reason_code }), el("td", { class: "reason", title: r.reason, text: humanReason(r.reason) })));
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

function fieldName(key) {
  // snake_case for people: day_pnl_pct -> "day PnL (%)", reserved_usd -> "reserved (USD)"
  return key.replace(/_pct$/, " (%)").replace(/_usd$/, " (USD)").replace(/_age_s$/, " age").replace(/_s$/, " (s)")
    .replace(/pnl/g, "PnL").replace(/ess/g, "ESS").replace(/_/g, " ");
}

async function openEntry(index) {
  const row = lastRows[index];
  if (!row) return;
  $("entry-title").textContent = `Journal entry: ${row.order_id}`;
  const fields = [];
  const add = (name, value) => fields.push(el("dt", { text: name }), el("dd", { text: value }));
  add("decision", `${row.decision === "scale_down" ? "scaled down" : row.decision}: ${row.reason_code}`);
  add("reason", humanReason(row.reason));
  const first = fields.length;
  for (const [key, value] of Object.entries(row)) {
    // The instants again for machines (_us), what is said above, and fields with no value are left out.
    if (key.endsWith("_us") || ["decision", "reason_code", "reason"].includes(key) || value === null || value === undefined) continue;
    add(fieldName(key), entryValue(key, value));
  }
  $("entry-fields").replaceChildren(...fields);
  $("entry").showModal();
  // Which check decided, and what happened just before: the journal's explanation of this order.
  const r = await api(`/v1/decisions/explain?order_id=${encodeURIComponent(row.order_id)}`);
  const found = r.ok && Array.isArray(r.body) ? r.body.find((d) => d.time === row.time) || r.body[r.body.length - 1] : null;
  if (!found) return;
  const decided = [el("dt", { text: "decided by" }), el("dd", { class: "decided-by", text: found.decided_by })];
  const events = (found.events_in_the_minute_before || []).map((e) => {
    const about = [e.account, e.period, e.active === true ? "halted" : e.active === false ? "clear" : null, e.by ? `by ${e.by}` : null]
      .filter(Boolean).join(", ");
    return `${clock(e.time)} ${e.kind.replace(/_/g, " ")}${about ? ` (${about})` : ""}${e.reason ? `: ${humanReason(String(e.reason))}` : ""}`;
  });
  fields.splice(first, 0, ...decided);
  fields.push(el("dt", { text: "before it" }), el("dd", { class: "events-before" },
    ...(events.length ? events.map((t) => el("div", { text: t })) : [el("div", { text: "no event in the minute before" })])));
  $("entry-fields").replaceChildren(...fields);
}

// -- the chart (uPlot, vendored: dashboard/VENDORED.md) -------------------------------------------------
// Distinct hues: allowed green, scaled down amber, blocked red; the top block codes each their own.
const SERIES_COLORS = { allow: "#1a7f37", scale_down: "#bf8700", block: "#cf222e" };
const CODE_COLORS = ["#8250df", "#0969da", "#1b7c83", "#bc4c00", "#bf3989", "#57606a", "#6e7781"];
const MARK_COLORS = { halt: "#cf222e", reduce_only: "#bf8700", clear: "#1a7f37", unknown: "#57606a" };
let chartRange = "15m";
let plot = null;
let plotKeys = "";
let chartMarks = [];

function drawMarks(u) {
  // Halts begun (red), reduce-only (amber), cleared (green): a vertical line each, at its time.
  const ctx = u.ctx;
  ctx.save();
  for (const m of chartMarks) {
    const x = Math.round(u.valToPos(m.at, "x", true));
    if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
    ctx.strokeStyle = MARK_COLORS[m.kind] || MARK_COLORS.unknown;
    ctx.lineWidth = 2 * devicePixelRatio;
    ctx.setLineDash(m.kind === "clear" ? [4 * devicePixelRatio, 4 * devicePixelRatio] : []);
    ctx.beginPath();
    ctx.moveTo(x, u.bbox.top);
    ctx.lineTo(x, u.bbox.top + u.bbox.height);
    ctx.stroke();
  }
  ctx.restore();
}

function drawChart(doc) {
  const times = doc.times || [];
  const per = doc.per_s || {};
  const codes = doc.blocks_by_code || {};
  chartMarks = doc.marks || [];
  const series = [{}];
  const data = [times];
  const label = { allow: "allowed", scale_down: "scaled down", block: "blocked" };
  for (const key of ["allow", "scale_down", "block"]) {
    series.push({ label: label[key], stroke: SERIES_COLORS[key], width: key === "block" ? 2.5 : 2, value: (u, v) => v == null ? "—" : `${v.toFixed(2)}/s` });
    data.push(per[key] || times.map(() => 0));
  }
  Object.keys(codes).forEach((code, i) => {
    series.push({ label: code, stroke: CODE_COLORS[i % CODE_COLORS.length], width: 1.5, dash: [6, 3], value: (u, v) => v == null ? "—" : `${v.toFixed(2)}/s` });
    data.push(codes[code]);
  });
  const box = $("chart");
  const width = Math.max(280, box.clientWidth || 600);
  const keys = series.map((s) => s.label).join("|");
  if (typeof uPlot === "undefined") {
    box.textContent = "the chart library did not load";
  } else if (plot && plotKeys === keys) {
    plot.setData(data);
  } else {
    if (plot) plot.destroy();
    box.replaceChildren();
    plotKeys = keys;
    plot = new uPlot({
      width, height: 240, series,
      scales: { x: { time: true }, y: { range: (u, lo, hi) => [0, Math.max(0.1, hi * 1.1)] } },
      axes: [{ grid: { stroke: "#eaeef2" } }, { grid: { stroke: "#eaeef2" }, values: (u, ticks) => ticks.map((t) => `${t}/s`), size: 60 }],
      legend: { live: true },
      cursor: { points: { size: 6 } },
      hooks: { draw: [drawMarks] },
    }, data, box);
  }
  const totals = doc.totals || {};
  const words = [["allow", "allowed"], ["scale_down", "scaled down"], ["block", "blocked"]]
    .map(([k, w]) => `${w} ${totals[k] || 0}`);
  const span = { "15m": "15 minutes", "1h": "hour", "24h": "24 hours" }[doc.range] || doc.range;
  const none = !(totals.allow || totals.scale_down || totals.block);
  $("chart-summary").textContent = `last ${span}: ${words.join(", ")}${none && doc.range !== "24h" ? " (a longer range may show more)" : ""}`;
  $("chart-summary").dataset.totals = JSON.stringify(totals);
  $("chart-marks").replaceChildren(...chartMarks.map((m) =>
    el("li", { "data-kind": m.kind, title: fmtTime(new Date(m.at * 1000).toISOString()), text: `${clock(new Date(m.at * 1000).toISOString())} ${humanReason(m.text)}` })));
}

function chooseRange(range) {
  chartRange = range;
  for (const b of document.querySelectorAll("#ranges button")) b.setAttribute("aria-pressed", String(b.dataset.range === range));
  pollRates();
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
  for (const b of document.querySelectorAll("#ranges button")) b.addEventListener("click", () => chooseRange(b.dataset.range));
  for (const id of ["filter-account", "filter-decision", "filter-code"]) $(id).addEventListener("change", pollDecisions);
  new ResizeObserver(() => { if (plot) plot.setSize({ width: Math.max(280, $("chart").clientWidth), height: 240 }); }).observe($("chart"));
  every(STATE_EVERY_MS, pollState);
  every(DECISIONS_EVERY_MS, pollDecisions);
  every(RATES_EVERY_MS, pollRates);
  setInterval(tickFreshness, 500);
}

start();
