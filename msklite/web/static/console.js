// msklite web console: polls /console/api/state and renders the pages; no dependencies.
"use strict";

const params = new URLSearchParams(location.search);
const POLL_MS = Number(params.get("interval")) || 2000;
const COLORS = ["#0969da", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7480", "#57606a"];
let clusterName = params.get("cluster") || "";
let last = null;
const openTopics = new Set();

function esc(v) {
  return String(v).replace(/[&<>"']/g, (c) => (
    { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(Math.round(n))) + " " + units[i];
}

function rate(n) { return bytes(n) + "/s"; }

function api(path) {
  return "api/" + path + (clusterName ? "?cluster=" + encodeURIComponent(clusterName) : "");
}

// ---- pages ----

function showPage() {
  const page = (location.hash || "#brokers").slice(1);
  document.querySelectorAll("main section").forEach((s) => { s.hidden = s.dataset.page !== page; });
  document.querySelectorAll("nav a").forEach((a) => {
    a.classList.toggle("active", a.dataset.page === page);
  });
}

function renderHeader(s) {
  document.getElementById("cluster-name").textContent = s.cluster.name;
  document.getElementById("cluster-info").textContent =
    `${s.cluster.id} · Kafka ${s.cluster.kafka_version} · ${s.cluster.bootstrap}`;
  const select = document.getElementById("cluster-select");
  select.hidden = s.clusters.length < 2;
  if (!select.hidden && select.options.length !== s.clusters.length) {
    select.innerHTML = s.clusters.map((n) =>
      `<option${n === s.cluster.name ? " selected" : ""}>${esc(n)}</option>`).join("");
  }
}

function renderBrokers(s) {
  const byAz = new Map(s.azs.map((az) => [az, []]));
  for (const b of s.brokers) {
    if (!byAz.has(b.az)) byAz.set(b.az, []);
    byAz.get(b.az).push(b);
  }
  let html = "";
  for (const [az, brokers] of byAz) {
    const up = brokers.filter((b) => b.up).length;
    html += `<div class="card" data-az="${esc(az)}"><h2>${esc(az)}
      <span class="meta">${up}/${brokers.length} up</span>
      <span class="actions">
        <button class="danger" data-action="stop-az" data-az="${esc(az)}"
          ${up ? "" : "disabled"}>Stop AZ ${esc(az)}</button>
        <button class="start" data-action="start-az" data-az="${esc(az)}"
          ${up === brokers.length ? "disabled" : ""}>Start AZ ${esc(az)}</button>
      </span></h2>
      <table class="fixed"><thead><tr><th>Broker</th><th>Address</th><th>Status</th>
        <th class="num">Leaders</th><th class="num">Partitions</th>
        <th class="num">Under-replicated</th><th class="num" title="one-minute rate">Bytes in</th>
        <th class="num" title="one-minute rate">Bytes out</th><th class="num" title="one-minute rate">Messages in</th><th style="width:11em"></th></tr></thead><tbody>`;
    for (const b of brokers) {
      html += `<tr data-broker="${b.node_id}" class="${b.up ? "" : "down-row"}">
        <td>b-${b.node_id}${b.controller ? ' <span class="meta" title="active controller">(controller)</span>' : ""}</td>
        <td>${esc(b.host)}:${b.port}</td>
        <td class="status ${b.up ? "up" : "down"}">${b.up ? "up" : "down"}</td>
        <td class="num leaders">${b.up ? b.leaders : "–"}</td>
        <td class="num partitions">${b.up ? b.partitions : "–"}</td>
        <td class="num under-replicated ${b.under_replicated ? "warn" : ""}">${b.up ? b.under_replicated : "–"}</td>
        <td class="num bytes-in">${rate(b.bytes_in_per_sec)}</td>
        <td class="num bytes-out">${rate(b.bytes_out_per_sec)}</td>
        <td class="num messages-in">${b.messages_in_per_sec.toFixed(1)}/s</td>
        <td>${b.up
          ? `<button class="danger" data-action="stop-broker" data-broker="${b.node_id}">Stop broker ${b.node_id}</button>`
          : `<button class="start" data-action="start-broker" data-broker="${b.node_id}">Start broker ${b.node_id}</button>`}</td>
      </tr>`;
    }
    html += "</tbody></table></div>";
  }
  document.getElementById("page-brokers").innerHTML = html;
}

function renderTopics(s) {
  const internal = document.getElementById("show-internal").checked;
  const topics = s.topics.filter((t) => internal || !t.internal);
  if (!topics.length) {
    document.getElementById("topics").innerHTML = '<p class="empty">No topics.</p>';
    return;
  }
  let html = "";
  for (const t of topics) {
    const size = t.partitions.reduce((a, p) => a + p.size, 0);
    const messages = t.partitions.reduce((a, p) => a + Math.max(p.log_end - p.log_start, 0), 0);
    const under = t.partitions.filter((p) => p.isr.length < p.replicas.length).length;
    const configs = Object.entries(t.configs);
    html += `<details class="card" data-topic="${esc(t.name)}"${openTopics.has(t.name) ? " open" : ""}>
      <summary>${esc(t.name)}
        <span class="meta">${t.partitions.length} partition(s) · RF ${t.partitions[0] ? t.partitions[0].replicas.length : 0}
        · <span class="messages">${messages}</span> record(s) · ${bytes(size)}
        ${under ? `· <span class="warn">${under} under-replicated</span>` : ""}</span></summary>
      <table><thead><tr><th>Partition</th><th>Leader</th><th>Replicas</th><th>ISR</th>
        <th class="num">High watermark</th><th class="num">Log start</th><th class="num">Log end</th>
        <th class="num">Size</th></tr></thead><tbody>`;
    for (const p of t.partitions) {
      const short = p.isr.length < p.replicas.length;
      html += `<tr data-partition="${p.partition}">
        <td>${p.partition}</td>
        <td class="leader ${p.leader < 0 ? "down" : ""}">${p.leader < 0 ? "none" : p.leader}</td>
        <td class="replicas">${p.replicas.join(", ")}</td>
        <td class="isr ${short ? "warn" : ""}">${p.isr.join(", ")}</td>
        <td class="num hw">${p.high_watermark < 0 ? "–" : p.high_watermark}</td>
        <td class="num log-start">${p.log_start < 0 ? "–" : p.log_start}</td>
        <td class="num log-end">${p.log_end < 0 ? "–" : p.log_end}</td>
        <td class="num size" data-bytes="${p.size}">${bytes(p.size)}</td></tr>`;
    }
    html += `</tbody></table><div class="configs">${configs.length
      ? "Configs: " + configs.map(([k, v]) => `<code>${esc(k)}=${esc(v)}</code>`).join(" ")
      : "Configs: cluster defaults"}</div></details>`;
  }
  document.getElementById("topics").innerHTML = html;
}

function lagChart(g) {
  const history = g.history;
  if (history.length < 2) return '<p class="empty">The lag chart fills in as samples arrive (one every 5 s).</p>';
  const keys = [...new Set(history.flatMap((h) => Object.keys(h.lags)))].sort().slice(0, COLORS.length);
  const t0 = history[0].t, t1 = history[history.length - 1].t;
  const max = Math.max(1, ...history.flatMap((h) => Object.values(h.lags)));
  const W = 600, H = 110;
  const x = (t) => ((t - t0) / Math.max(t1 - t0, 1)) * (W - 10) + 5;
  const y = (v) => H - 5 - (v / max) * (H - 15);
  const lines = keys.map((k, i) => {
    const pts = history.filter((h) => k in h.lags).map((h) => `${x(h.t).toFixed(1)},${y(h.lags[k]).toFixed(1)}`);
    return `<polyline fill="none" stroke="${COLORS[i]}" stroke-width="2" points="${pts.join(" ")}"/>`;
  }).join("");
  const secs = Math.round((t1 - t0) / 1000);
  const span = secs < 120 ? `${secs} s` : `${(secs / 60).toFixed(1)} min`;
  return `<svg viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" role="img"
      aria-label="lag per partition over the last ${span}">${lines}
      <text x="5" y="12" font-size="10" fill="#5b6573">max ${max}</text></svg>
    <div class="legend">${keys.map((k, i) => `<span style="color:${COLORS[i]}">■ ${esc(k)}</span>`).join("")}
      <span class="meta">last ${span}</span></div>`;
}

function renderGroups(s) {
  const el = document.getElementById("page-groups");
  if (!s.groups.length) { el.innerHTML = '<p class="empty">No consumer groups.</p>'; return; }
  let html = "";
  for (const g of s.groups) {
    html += `<div class="card" data-group="${esc(g.group_id)}"><h2>${esc(g.group_id)}
      <span class="meta">state <span class="state">${esc(g.state)}</span> · ${g.members.length} member(s)
      · generation ${g.generation} · coordinator b-${g.coordinator}
      ${g.protocol ? "· " + esc(g.protocol_type) + "/" + esc(g.protocol) : ""}</span>
      <span class="actions">total lag <b class="total-lag">${g.total_lag}</b></span></h2>`;
    if (g.members.length) {
      html += `<table class="members"><thead><tr><th>Member</th><th>Client id</th><th>Host</th>
        <th>Assignment</th></tr></thead><tbody>`;
      for (const m of g.members) {
        html += `<tr><td>${esc(m.member_id)}</td><td>${esc(m.client_id)}</td><td>${esc(m.client_host)}</td>
          <td>${m.assignment.map(([t, p]) => esc(t) + "-" + p).join(", ")}</td></tr>`;
      }
      html += "</tbody></table>";
    }
    html += `<table class="lag"><thead><tr><th>Topic</th><th>Partition</th>
      <th class="num">Committed</th><th class="num">End</th><th class="num">Lag</th>
      <th class="num">Time lag</th></tr></thead><tbody>`;
    for (const p of g.lags) {
      html += `<tr data-topic="${esc(p.topic)}" data-partition="${p.partition}"><td>${esc(p.topic)}</td>
        <td>${p.partition}</td><td class="num committed">${p.committed}</td>
        <td class="num end">${p.end}</td><td class="num lag">${p.lag}</td>
        <td class="num">${(p.time_lag_ms / 1000).toFixed(1)} s</td></tr>`;
    }
    html += `</tbody></table><div class="chart">${lagChart(g)}</div></div>`;
  }
  el.innerHTML = html;
}

function renderTransactions(s) {
  const el = document.getElementById("page-transactions");
  if (!s.transactions.length) { el.innerHTML = '<p class="empty">No transactional ids.</p>'; return; }
  let html = `<div class="card"><table><thead><tr><th>Transactional id</th><th>State</th>
    <th>Producer id/epoch</th><th>Coordinator</th><th class="num">Open for</th><th>Partitions</th>
    </tr></thead><tbody>`;
  for (const t of s.transactions) {
    html += `<tr data-transactional-id="${esc(t.transactional_id)}"><td>${esc(t.transactional_id)}</td>
      <td class="state">${esc(t.state)}</td><td>${t.producer_id}/${t.producer_epoch}</td>
      <td>b-${t.coordinator}</td><td class="num">${t.age_ms >= 0 ? t.age_ms + " ms" : "–"}</td>
      <td>${t.partitions.map(([n, p]) => esc(n) + "-" + p).join(", ")}</td></tr>`;
  }
  el.innerHTML = html + "</tbody></table></div>";
}

function render(s) {
  last = s;
  renderHeader(s);
  renderBrokers(s);
  renderTopics(s);
  renderGroups(s);
  renderTransactions(s);
  document.body.dataset.updated = String(s.now);
}

// ---- live refresh ----

async function refresh() {
  const live = document.getElementById("live");
  try {
    const resp = await fetch(api("state"), { cache: "no-store" });
    if (!resp.ok) throw new Error((await resp.json()).error || resp.statusText);
    render(await resp.json());
    live.classList.remove("stale");
    document.getElementById("error").hidden = true;
  } catch (e) {
    live.classList.add("stale");
    const err = document.getElementById("error");
    err.textContent = "Cannot reach msklite: " + e.message;
    err.hidden = false;
  }
}

async function poll() {
  await refresh();
  setTimeout(poll, POLL_MS);
}

// ---- fault buttons ----

function confirmAction(text) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

async function act(button) {
  const { action, broker, az } = button.dataset;
  const [verb, what] = action.split("-");
  const target = what === "az" ? `AZ ${az} (every broker in it)` : `broker ${broker}`;
  if (!(await confirmAction(`${verb === "stop" ? "Stop" : "Start"} ${target}?`))) return;
  const path = what === "az"
    ? `azs/${encodeURIComponent(az)}/${verb}` : `brokers/${encodeURIComponent(broker)}/${verb}`;
  button.disabled = true;
  const resp = await fetch(api(path), { method: "POST" });
  if (!resp.ok) {
    const err = document.getElementById("error");
    err.textContent = (await resp.json()).error || resp.statusText;
    err.hidden = false;
  }
  await refresh();
}

document.addEventListener("click", (e) => {
  const button = e.target.closest("button[data-action]");
  if (button) act(button);
});
document.addEventListener("toggle", (e) => {
  const t = e.target.dataset && e.target.dataset.topic;
  if (t !== undefined) { if (e.target.open) openTopics.add(t); else openTopics.delete(t); }
}, true);
document.getElementById("show-internal").addEventListener("change", () => last && renderTopics(last));
document.getElementById("cluster-select").addEventListener("change", (e) => {
  clusterName = e.target.value;
  refresh();
});
window.addEventListener("hashchange", showPage);
showPage();
poll();
