// The dashboard reads only creditd's public API with the tenant's key,
// kept in this tab's sessionStorage.
//
// Amounts stay exact from the API to the screen: every JSON number is kept
// as its source text (parseExact) and sums are scaled BigInts
// (addDecimals). Floating point only places pixels.
"use strict";
const $ = (id) => document.getElementById(id);
const svgNS = "http://www.w3.org/2000/svg";
const colors = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const keyName = "creditd-key";
const pageSize = 10;
const dayMs = 86400000;
// The chart's box in SVG units; the page scales it to its width.
const box = { width: 900, height: 300, left: 110, right: 16, top: 12, bottom: 56 };
// Up to dayTicksMax days the date axis marks every day.
const dayTicksMax = 120;
// At most dateLabelsMax dates are written under the axis, so none overlap;
// they fall every labelEveryDays[i] days, the first that fits.
const dateLabelsMax = 10;
const labelEveryDays = [1, 2, 7, 14, 28, 56, 91, 182, 364];
// The amount axis takes about amountStepsTarget steps.
const amountStepsTarget = 4;

let ledgerOffset = 0;
// loggingIn: a 401 now means a wrong key, not a session that ended.
let loggingIn = false;
let loads = 0;
// latest holds the newest load of each section: an older answer arriving
// late is dropped instead of drawn over the newer one.
const latest = {};

// ---- Exact numbers

// jsonTokens matches a whole JSON string or a JSON number. Strings come
// first, so digits inside them are never taken for numbers.
const jsonTokens = /"(?:[^"\\]|\\.)*"|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/g;

// parseExact parses JSON keeping every number as its exact source text:
// JSON.parse alone makes 999999999999.999998 the float 1000000000000.
// Each number token is quoted before parsing. (A reviver's context.source
// gives the same text, but only in recent browsers; this works in all.)
function parseExact(text) {
  return JSON.parse(text.replace(jsonTokens, (token) => (token[0] === '"' ? token : `"${token}"`)));
}

// scaled reads a decimal's text as units / 10^scale. The API writes
// decimals in plain notation, never with an exponent.
function scaled(text) {
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text);
  if (!m) throw new Error(`the API sent ${JSON.stringify(text)} where a decimal belongs`);
  const fraction = m[3] || "";
  const units = BigInt(m[2] + fraction);
  return { units: m[1] ? -units : units, scale: fraction.length };
}

function unitsAt(decimal, scale) {
  return decimal.units * 10n ** BigInt(scale - decimal.scale);
}

// decimalText writes units / 10^scale without trailing zeros, as the API
// writes its decimals.
function decimalText(units, scale) {
  const sign = units < 0n ? "-" : "";
  const digits = (units < 0n ? -units : units).toString().padStart(scale + 1, "0");
  const fraction = digits.slice(digits.length - scale).replace(/0+$/, "");
  return sign + digits.slice(0, digits.length - scale) + (fraction ? "." + fraction : "");
}

function scaleOf(texts) {
  return Math.max(0, ...texts.map((t) => scaled(t).scale));
}

function addDecimals(texts) {
  const scale = scaleOf(texts);
  return decimalText(texts.reduce((sum, t) => sum + unitsAt(scaled(t), scale), 0n), scale);
}

// ---- Calls

// ApiError is a call the API answered with an error: its status and, when
// the body was a problem document, its title, detail and located errors.
class ApiError extends Error {
  constructor(status, title, detail, errors) {
    super(`HTTP ${status}`);
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.errors = Array.isArray(errors) ? errors : [];
  }
}

async function api(path) {
  let res, text;
  try {
    res = await fetch(path, { headers: { Authorization: "Bearer " + sessionStorage.getItem(keyName) } });
    text = await res.text();
  } catch (err) {
    throw new Error(`the server could not be reached (${err.message})`);
  }
  let body = null;
  try {
    body = parseExact(text);
  } catch {
    // Not JSON: a proxy's error page, say. A success must be JSON.
    if (res.ok) throw new Error(`the answer was not JSON (HTTP ${res.status})`);
  }
  if (res.ok) return body;
  const problem = body !== null && typeof body === "object" ? body : {};
  throw new ApiError(res.status, problem.title || res.statusText, problem.detail, problem.errors);
}

// describe says what went wrong in a sentence for the page.
function describe(err) {
  if (!(err instanceof ApiError)) return err.message;
  const what = [err.title, err.detail].filter(Boolean).join(": ") || "the server answered with an error";
  const located = err.errors.map((e) => `${e.location} ${e.message}`).join("; ");
  return `${what}${located ? ` (${located})` : ""} (HTTP ${err.status})`;
}

// ---- Sections: each loads, shows, and says on its own what went wrong.

const sections = {
  account: { name: "the account", path: () => "/v1/summary", show: showAccount, clear: () => { $("who").textContent = ""; } },
  balances: { name: "balances", path: () => "/v1/balance", show: showBalances, clear: () => $("balances").tBodies[0].replaceChildren() },
  stats: {
    name: "usage",
    path: () => `/v1/stats?from=${encodeURIComponent($("from").value)}&to=${encodeURIComponent($("to").value)}`,
    show: showStats,
    clear: clearStats,
  },
  ledger: { name: "the ledger", path: () => `/v1/ledger?limit=${pageSize}&offset=${ledgerOffset}`, show: showLedger, clear: clearLedger },
};

function setState(name, text, isError) {
  const state = $(`${name}-state`);
  state.textContent = text;
  state.classList.toggle("error", Boolean(isError));
}

async function load(name) {
  const section = sections[name];
  const seq = (latest[name] = (latest[name] || 0) + 1);
  setState(name, "");
  try {
    const body = await api(section.path());
    if (seq !== latest[name]) return;
    section.show(body);
  } catch (err) {
    if (seq !== latest[name]) return;
    // Only a refused key ends the session; any other failure is shown
    // where it happened and the rest of the page carries on.
    if (err instanceof ApiError && err.status === 401) {
      logOut(err);
      return;
    }
    section.clear();
    setState(name, `Could not load ${section.name}: ${describe(err)}`, true);
  }
}

// loaded counts finished loads, so a watcher (the end-to-end test) knows
// when the page has answered.
function loaded() {
  document.body.dataset.loads = String(++loads);
}

function logOut(err) {
  sessionStorage.removeItem(keyName);
  for (const name in sections) {
    latest[name] = (latest[name] || 0) + 1;
    sections[name].clear();
    setState(name, "");
  }
  $("app").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = (loggingIn ? "Could not log in: " : "Logged out, the API refused this key: ") + describe(err);
}

async function showAll() {
  await load("account");
  if (sessionStorage.getItem(keyName) !== null) {
    $("login").hidden = true;
    $("login-error").textContent = "";
    $("app").hidden = false;
    $("logout").hidden = false;
    await Promise.all(["balances", "stats", "ledger"].map(load));
  }
  loggingIn = false;
  document.body.dataset.ready = "true";
  loaded();
}

function cell(text, numeric) {
  const td = document.createElement("td");
  td.textContent = text;
  if (numeric) td.className = "num";
  return td;
}

function row(tbody, cells) {
  const tr = document.createElement("tr");
  cells.forEach(([text, numeric]) => tr.appendChild(cell(text, numeric)));
  tbody.appendChild(tr);
  return tr;
}

function showAccount(summary) {
  $("who").textContent = summary.name;
}

function showBalances(b) {
  const tbody = $("balances").tBodies[0];
  tbody.replaceChildren();
  b.lines.forEach((l) => {
    const tr = row(tbody, [[l.credit_type], [l.available, true], [l.reserved, true], [l.used, true], [l.expiring_soon ?? "–", true]]);
    tr.dataset.creditType = l.credit_type;
  });
  if (b.lines.length === 0) setState("balances", "No credit lines yet: nothing was granted.");
}

// ---- Usage

function isoDay(d) { return d.toISOString().slice(0, 10); }

function moduleName(m) { return m || "(none)"; }

// withUnnamedModule is a day's spend by module with the usage without a
// module, which the API keeps in the total only (no "" key), under "".
function withUnnamedModule(d) {
  const named = Object.values(d.by_module);
  const scale = scaleOf([d.total, ...named]);
  const rest = named.reduce((left, t) => left - unitsAt(scaled(t), scale), unitsAt(scaled(d.total), scale));
  return rest === 0n ? d.by_module : { ...d.by_module, "": decimalText(rest, scale) };
}

// dailySeries spreads the API's days with spend over every UTC day of the
// range asked, the days without spend at zero.
function dailySeries(stats) {
  const from = stats.from.slice(0, 10), to = stats.to.slice(0, 10);
  const daily = stats.daily.map((d) => ({ ...d, by_module: withUnnamedModule(d) }));
  const byDate = new Map(daily.map((d) => [d.date, d]));
  const modules = [...new Set(daily.flatMap((d) => Object.keys(d.by_module)))].sort();
  const days = [];
  for (let t = Date.parse(from + "T00:00:00Z"), end = Date.parse(to + "T00:00:00Z"); t <= end; t += dayMs) {
    const date = isoDay(new Date(t));
    const d = byDate.get(date);
    days.push({ date, total: d ? d.total : "0", byModule: d ? d.by_module : {} });
  }
  return { from, to, days, modules };
}

// amountTicks are the amount axis' marks, in units of 10^-scale: from 0 by
// a step of 1, 2 or 5 times a power of ten, up to the first at or past max.
function amountTicks(max) {
  const least = (max + BigInt(amountStepsTarget) - 1n) / BigInt(amountStepsTarget);
  let step = 0n;
  for (let power = 1n; step === 0n; power *= 10n) {
    step = [1n, 2n, 5n].map((m) => m * power).find((s) => s >= least) || 0n;
  }
  const ticks = [0n];
  while (ticks[ticks.length - 1] < max) ticks.push(ticks[ticks.length - 1] + step);
  return ticks;
}

function svg(name, attributes, text) {
  const node = document.createElementNS(svgNS, name);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function dateLabel(date, withYear) {
  const [year, month, day] = date.split("-");
  return { text: `${months[Number(month) - 1]} ${Number(day)}`, year: withYear ? year : "" };
}

function drawChart(series, spent) {
  const { days, modules } = series;
  const amounts = days.flatMap((d) => Object.values(d.byModule));
  const scale = scaleOf(amounts);
  // A day's bar stacks its modules' positive amounts.
  const stacks = days.map((d) => modules.map((m) => {
    const v = d.byModule[m];
    return v === undefined ? 0n : unitsAt(scaled(v), scale);
  }));
  const max = stacks.reduce((top, units) => {
    const day = units.reduce((sum, u) => (u > 0n ? sum + u : sum), 0n);
    return day > top ? day : top;
  }, 0n);
  const ticks = amountTicks(max > 0n ? max : 1n);
  const top = Number(ticks[ticks.length - 1]);
  const plotWidth = box.width - box.left - box.right, plotHeight = box.height - box.top - box.bottom;
  const base = box.top + plotHeight;
  const dayWidth = plotWidth / days.length;
  const heightOf = (units) => (Number(units) / top) * plotHeight;

  const chart = svg("svg", {
    viewBox: `0 0 ${box.width} ${box.height}`,
    role: "img",
    "aria-label": `Daily spend by module, ${series.from} to ${series.to} (UTC days): ${spent} credits in all. The table below the chart lists every day.`,
  });

  const amountAxis = svg("g", { class: "y-axis" });
  ticks.forEach((units) => {
    const y = base - heightOf(units);
    amountAxis.append(svg("line", { class: units === 0n ? "axis" : "grid", x1: box.left, x2: box.width - box.right, y1: y, y2: y }));
    amountAxis.append(svg("text", { x: box.left - 6, y, dy: "0.32em", "text-anchor": "end" }, decimalText(units, scale)));
  });
  chart.append(amountAxis);
  chart.append(svg("text", { class: "axis-title", transform: `translate(14 ${box.top + plotHeight / 2}) rotate(-90)`, "text-anchor": "middle" }, "Credits"));

  const every = labelEveryDays.find((n) => Math.ceil(days.length / n) <= dateLabelsMax) || labelEveryDays[labelEveryDays.length - 1];
  const dateAxis = svg("g", { class: "x-axis" });
  let lastYear = "";
  days.forEach((d, i) => {
    const centre = box.left + (i + 0.5) * dayWidth;
    if (days.length <= dayTicksMax) dateAxis.append(svg("line", { x1: centre, x2: centre, y1: base, y2: base + 4 }));
    if (i % every !== 0) return;
    const year = d.date.slice(0, 4);
    const label = dateLabel(d.date, year !== lastYear);
    lastYear = year;
    const text = svg("text", { x: centre, y: base + 18, "text-anchor": "middle", "data-date": d.date }, label.text);
    if (label.year) text.append(svg("tspan", { x: centre, dy: "1.2em" }, label.year));
    dateAxis.append(text);
  });
  chart.append(dateAxis);
  chart.append(svg("text", { class: "axis-title", x: box.left + plotWidth / 2, y: box.height - 4, "text-anchor": "middle" }, "Date (UTC)"));

  days.forEach((d, i) => {
    const x = box.left + i * dayWidth;
    const group = svg("g", { class: "day" });
    const total = d.total === "0" ? "no usage" : `${d.total} in all`;
    group.append(svg("rect", { class: "slot", x, y: box.top, width: dayWidth, height: plotHeight, "data-date": d.date, "data-label": `${d.date}: ${total}` }));
    let y = base;
    modules.forEach((m, k) => {
      const units = stacks[i][k];
      if (units <= 0n) return;
      // A bar too small to see still gets a pixel, so no spend is hidden.
      const height = Math.max(1, heightOf(units));
      y -= height;
      group.append(svg("rect", {
        class: "bar", x: x + dayWidth * 0.1, y, width: dayWidth * 0.8, height, fill: colors[k % colors.length],
        "data-date": d.date, "data-module": m, "data-label": `${d.date} · ${moduleName(m)}: ${d.byModule[m]}`,
      }));
    });
    chart.append(group);
  });
  chart.addEventListener("pointermove", pointTo);
  chart.addEventListener("pointerdown", pointTo);
  chart.addEventListener("pointerleave", () => { $("chart-tip").hidden = true; });
  $("chart").replaceChildren(chart);
}

// pointTo shows the label of the bar or day under the pointer beside it.
function pointTo(ev) {
  const tip = $("chart-tip");
  const target = ev.target.closest("[data-label]");
  if (!target) {
    tip.hidden = true;
    return;
  }
  tip.textContent = target.dataset.label;
  tip.hidden = false;
  const area = $("chart-area").getBoundingClientRect();
  let left = ev.clientX - area.left + 12;
  if (left + tip.offsetWidth > area.width) left = ev.clientX - area.left - tip.offsetWidth - 12;
  tip.style.left = `${Math.max(0, left)}px`;
  tip.style.top = `${ev.clientY - area.top + 12}px`;
}

function drawLegend(series) {
  const legend = $("legend");
  legend.replaceChildren();
  series.modules.forEach((m, k) => {
    const li = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colors[k % colors.length];
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = moduleName(m);
    const total = document.createElement("span");
    total.className = "total";
    total.textContent = addDecimals(series.days.map((d) => d.byModule[m] ?? "0"));
    li.dataset.module = m;
    li.append(swatch, name, total);
    legend.appendChild(li);
  });
}

// drawTable is the chart in words: every day, every module, every amount.
function drawTable(series) {
  const table = $("daily");
  const head = document.createElement("tr");
  ["Date", ...series.modules.map(moduleName), "Total"].forEach((text, i) => {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = text;
    if (i > 0) th.className = "num";
    head.appendChild(th);
  });
  table.tHead.replaceChildren(head);
  const tbody = table.tBodies[0];
  tbody.replaceChildren();
  series.days.forEach((d) => row(tbody, [[d.date], ...series.modules.map((m) => [d.byModule[m] ?? "0", true]), [d.total, true]]));
}

function fillTop(id, entries) {
  const ol = $(id);
  ol.replaceChildren();
  entries.forEach((e) => {
    const li = document.createElement("li");
    li.textContent = `${e.key || "(none)"}: ${e.total}`;
    li.dataset.total = e.total;
    ol.appendChild(li);
  });
  if (entries.length === 0) {
    const li = document.createElement("li");
    li.className = "none";
    li.textContent = "None in this range";
    ol.appendChild(li);
  }
}

function clearChart() {
  $("chart").replaceChildren();
  $("chart-tip").hidden = true;
  $("legend").replaceChildren();
  $("daily").tHead.replaceChildren();
  $("daily").tBodies[0].replaceChildren();
  $("daily-details").hidden = true;
}

function clearStats() {
  ["spent", "previous", "change"].forEach((id) => { $(id).textContent = "–"; });
  clearChart();
  $("top-services").replaceChildren();
  $("top-users").replaceChildren();
}

function showStats(s) {
  $("spent").textContent = s.spent;
  $("previous").textContent = s.previous_period_spent;
  $("change").textContent = s.previous_period_change_pct === null ? "n/a" : `${s.previous_period_change_pct}%`;
  const series = dailySeries(s);
  if (s.daily.length === 0) {
    clearChart();
    setState("stats", `No usage between ${series.from} and ${series.to}.`);
  } else {
    drawChart(series, s.spent);
    drawLegend(series);
    drawTable(series);
    $("daily-details").hidden = false;
  }
  fillTop("top-services", s.top_services);
  fillTop("top-users", s.top_users);
}

// ---- Ledger

function clearLedger() {
  $("ledger").tBodies[0].replaceChildren();
  $("page").textContent = "";
  $("prev").disabled = true;
  $("next").disabled = true;
}

function showLedger(l) {
  const tbody = $("ledger").tBodies[0];
  tbody.replaceChildren();
  l.entries.forEach((e) => row(tbody, [[e.created_at.replace("T", " ").slice(0, 19)], [e.credit_type], [e.type], [e.amount, true], [e.balance_after, true], [e.description]]));
  // Counts arrive as text like every number; they are small integers.
  const total = Number(l.total);
  $("page").textContent = `${total ? ledgerOffset + 1 : 0}–${ledgerOffset + l.entries.length} of ${l.total}`;
  $("prev").disabled = ledgerOffset === 0;
  $("next").disabled = ledgerOffset + l.entries.length >= total;
  if (total === 0) setState("ledger", "No ledger entries yet.");
}

// ---- Wiring

$("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(keyName, $("api-key").value.trim());
  loggingIn = true;
  $("login-error").textContent = "";
  showAll();
});
$("logout").addEventListener("click", () => { sessionStorage.removeItem(keyName); location.reload(); });
$("range").addEventListener("submit", (ev) => { ev.preventDefault(); load("stats").then(loaded); });
$("prev").addEventListener("click", () => { ledgerOffset = Math.max(0, ledgerOffset - pageSize); load("ledger").then(loaded); });
$("next").addEventListener("click", () => { ledgerOffset += pageSize; load("ledger").then(loaded); });

// The API's days are UTC days, so the default range is too.
const today = new Date();
$("to").value = isoDay(today);
$("from").value = isoDay(new Date(today.getTime() - 29 * dayMs));
if (sessionStorage.getItem(keyName) !== null) showAll();
