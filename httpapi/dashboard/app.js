// The dashboard reads only creditd's public API with the tenant's key,
// kept in this tab's sessionStorage.
"use strict";
const $ = (id) => document.getElementById(id);
const colors = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
const pageSize = 10;
let ledgerOffset = 0;

async function api(path) {
  const key = sessionStorage.getItem("creditd-key");
  const res = await fetch(path, { headers: { Authorization: "Bearer " + key } });
  const body = await res.json();
  if (!res.ok) throw new Error(body.detail || res.statusText);
  return body;
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

async function showBalances() {
  const b = await api("/v1/balance");
  const tbody = $("balances").querySelector("tbody");
  tbody.replaceChildren();
  b.lines.forEach((l) => {
    const tr = row(tbody, [[l.credit_type], [String(l.available), true], [String(l.reserved), true], [String(l.used), true], [String(l.expiring_soon), true]]);
    tr.dataset.creditType = l.credit_type;
  });
}

function isoDay(d) { return d.toISOString().slice(0, 10); }

function drawChart(daily) {
  const modules = [...new Set(daily.flatMap((d) => Object.keys(d.by_module)))].sort();
  const width = 900, height = 240, pad = 30;
  const max = Math.max(1, ...daily.map((d) => Number(d.total)));
  const barW = daily.length ? (width - pad) / daily.length : 0;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height + 20}`);
  daily.forEach((d, i) => {
    let y = height;
    modules.forEach((m, k) => {
      const v = Number(d.by_module[m] || 0);
      if (!v) return;
      const h = (v / max) * (height - 10);
      y -= h;
      const rect = document.createElementNS(ns, "rect");
      rect.setAttribute("x", pad + i * barW + 1);
      rect.setAttribute("y", y);
      rect.setAttribute("width", Math.max(1, barW - 2));
      rect.setAttribute("height", h);
      rect.setAttribute("fill", colors[k % colors.length]);
      rect.setAttribute("data-date", d.date);
      rect.setAttribute("data-module", m);
      const title = document.createElementNS(ns, "title");
      title.textContent = `${d.date} ${m}: ${d.by_module[m]}`;
      rect.appendChild(title);
      svg.appendChild(rect);
    });
  });
  const legend = document.createElement("div");
  legend.className = "legend";
  modules.forEach((m, k) => {
    const span = document.createElement("span");
    const i = document.createElement("i");
    i.style.background = colors[k % colors.length];
    span.append(i, m || "(none)");
    legend.appendChild(span);
  });
  $("chart").replaceChildren(svg, legend);
}

function fillTop(id, entries) {
  const ol = $(id);
  ol.replaceChildren();
  entries.forEach((e) => {
    const li = document.createElement("li");
    li.textContent = `${e.key || "(none)"}: ${e.total}`;
    li.dataset.total = String(e.total);
    ol.appendChild(li);
  });
}

async function showStats() {
  const s = await api(`/v1/stats?from=${$("from").value}&to=${$("to").value}`);
  $("spent").textContent = String(s.spent);
  $("previous").textContent = String(s.previous_period_spent);
  $("change").textContent = s.previous_period_change_pct === null ? "n/a" : `${s.previous_period_change_pct}%`;
  drawChart(s.daily);
  fillTop("top-services", s.top_services);
  fillTop("top-users", s.top_users);
}

async function showLedger() {
  const l = await api(`/v1/ledger?limit=${pageSize}&offset=${ledgerOffset}`);
  const tbody = $("ledger").querySelector("tbody");
  tbody.replaceChildren();
  l.entries.forEach((e) => row(tbody, [[e.created_at.replace("T", " ").slice(0, 19)], [e.credit_type], [e.type], [String(e.amount), true], [String(e.balance_after), true], [e.description]]));
  $("page").textContent = `${l.total ? ledgerOffset + 1 : 0}–${ledgerOffset + l.entries.length} of ${l.total}`;
  $("prev").disabled = ledgerOffset === 0;
  $("next").disabled = ledgerOffset + l.entries.length >= l.total;
}

async function showAll() {
  const summary = await api("/v1/summary");
  $("who").textContent = summary.name;
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  await Promise.all([showBalances(), showStats(), showLedger()]);
  document.body.dataset.ready = "true";
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("creditd-key", $("api-key").value.trim());
  try {
    await showAll();
  } catch (err) {
    sessionStorage.removeItem("creditd-key");
    $("login-error").textContent = "Could not log in: " + err.message;
  }
});
$("logout").addEventListener("click", () => { sessionStorage.removeItem("creditd-key"); location.reload(); });
$("range").addEventListener("submit", (ev) => { ev.preventDefault(); showStats(); });
$("prev").addEventListener("click", () => { ledgerOffset = Math.max(0, ledgerOffset - pageSize); showLedger(); });
$("next").addEventListener("click", () => { ledgerOffset += pageSize; showLedger(); });

const today = new Date();
$("to").value = isoDay(today);
$("from").value = isoDay(new Date(today.getTime() - 29 * 86400000));
if (sessionStorage.getItem("creditd-key")) showAll().catch(() => sessionStorage.removeItem("creditd-key"));
