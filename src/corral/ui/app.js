// corral dashboard: plain JS, no framework, nothing from the network but this daemon.
// Every text that comes from a job (names, commands, logs, messages) goes in through
// textContent, never as HTML.
"use strict";

const STATES = ["Pending", "Running", "Succeeded", "Failed", "Cancelled"];
const TERMINAL = ["Succeeded", "Failed", "Cancelled"];
const PALETTE = ["#1f6feb", "#b7791f", "#1a7f37", "#8250df", "#cf222e", "#0a7ea4", "#bf3989", "#6e7781",
                 "#57606a", "#953800"];
const READINGS_EVERY = 3000;     // ms between live readings (top, nodes, the open job)
const PENDING_SHOWN = 100, RUNNING_SHOWN = 200, RECENT_SHOWN = 15;

let me = null;                   // /v1/whoami
let page = null;                 // the current page: {name, refresh(), stop()}
let timer = null;
let refreshQueued = null;

// -- small helpers ------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "style") el.style.cssText = v;        // CSSOM: allowed under the page's CSP
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children.flat()) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

class ApiError extends Error {}

async function api(path, options) {
  const opts = Object.assign({credentials: "same-origin", headers: {}}, options || {});
  if (opts.body !== undefined && typeof opts.body !== "string") {
    opts.body = JSON.stringify(opts.body);
    opts.headers["content-type"] = "application/json";
  }
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    throw new ApiError("the daemon cannot be reached (" + e.message + ")");
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!res.ok) {
    if (res.status === 401) throw new ApiError((data && data.error || "not signed in") +
                                               " -- run `corral ui` for a new link");
    throw new ApiError(data && data.error ? data.error : `${res.status} ${res.statusText}`);
  }
  return data;
}

function banner(text) {
  const el = document.getElementById("banner");
  el.textContent = text || "";
  el.hidden = !text;
}

function toast(text, err) {
  const box = document.getElementById("toasts");
  const el = h("div", {class: "toast" + (err ? " err" : "")}, text);
  box.append(el);
  setTimeout(() => el.remove(), err ? 7000 : 3500);
  while (box.children.length > 5) box.firstChild.remove();
}

function badge(state, held) {
  if (held && state === "Pending") return h("span", {class: "badge held"}, "Held");
  return h("span", {class: "badge state-" + state}, state);
}

const now = () => Date.now() / 1000;

function dur(s) {
  if (s === null || s === undefined || isNaN(s)) return "-";
  s = Math.max(0, Math.floor(s));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m";
  return Math.floor(s / 86400) + "d" + String(Math.floor(s % 86400 / 3600)).padStart(2, "0") + "h";
}

function when(ts) {
  if (!ts) return "-";
  const d = new Date(ts * 1000);
  const today = new Date();
  const t = d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit"});
  return d.toDateString() === today.toDateString() ? t : d.toLocaleDateString() + " " + t;
}

function bytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(n < 10 ? 1 : 0) : n) + " " + units[i];
}

function num(x, digits) {
  if (x === null || x === undefined) return "-";
  return Number(x).toFixed(digits === undefined ? 1 : digits);
}

function pct(x) { return x === null || x === undefined ? "-" : Math.round(x) + "%"; }

function bar(fraction, cls) {
  const f = Math.max(0, Math.min(1, fraction || 0));
  return h("div", {class: "bar" + (cls ? " " + cls : "")}, h("span", {style: `width:${(f * 100).toFixed(1)}%`}));
}

function requests(r) {
  if (!r) return "-";
  return Object.entries(r).map(([k, v]) => `${k === "nvidia.com/gpu" ? "gpu" : k} ${v}`).join(", ");
}

function jobLink(id, text) { return h("a", {href: "#/job/" + id}, text === undefined ? String(id) : text); }

// A time bucket's start, as short as the window allows.
function bucketLabel(ts, window) {
  const d = new Date(ts * 1000);
  const hm = d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
  return window <= 86400 ? hm : d.toLocaleDateString([], {month: "short", day: "numeric"}) + " " + hm;
}

function mayAct(job) {
  return !!(me && me.may_act && (me.admin || job.user === me.user));
}

// The row's actions: only those this caller may take on this job (owner or admin, not a
// read-only token); cancel asks once more by turning into "Confirm" for a few seconds.
function actions(job, after) {
  if (!mayAct(job) || TERMINAL.includes(job.state)) return h("span", {class: "muted"}, "");
  const box = h("div", {class: "actions"});
  const act = async (verb, btn) => {
    btn.disabled = true;
    try {
      const out = await api(`/v1/jobs/${verb}`, {method: "POST", body: {ids: [job.id]}});
      const failed = out && out.results ? out.results.filter(r => !r.ok) : [];
      if (failed.length) toast(failed[0].result, true);
      else toast(`job ${job.id}: ${verb === "cancel" ? "cancelled" : verb === "hold" ? "held" : "released"}`);
    } catch (e) { toast(e.message, true); }
    btn.disabled = false;
    if (after) after();
  };
  if (job.state === "Pending") {
    if (job.held) box.append(h("button", {"data-action": "release", onclick: e => act("release", e.target)}, "Release"));
    else box.append(h("button", {"data-action": "hold", onclick: e => act("hold", e.target)}, "Hold"));
  }
  const cancel = h("button", {class: "danger", "data-action": "cancel"}, "Cancel");
  let armed = null;
  cancel.addEventListener("click", () => {
    if (!armed) {
      cancel.textContent = "Confirm";
      cancel.classList.add("confirm");
      armed = setTimeout(() => { armed = null; cancel.textContent = "Cancel"; cancel.classList.remove("confirm"); }, 4000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    act("cancel", cancel);
  });
  box.append(cancel);
  return box;
}

function table(headers, rows, empty) {
  if (!rows.length) return h("div", {class: "empty"}, empty || "none");
  return h("table", {},
    h("thead", {}, h("tr", {}, headers.map(x => h("th", {class: /^(#|GPUs|Runtime|Waited|CPU|Memory|GPU)/.test(x) ? "num" : ""}, x)))),
    h("tbody", {}, rows));
}

// -- charts: hand-written SVG ------------------------------------------------------------------

// A line chart of several series of [t, v] points; fmt formats a value for the axis.
function lineChart(title, series, fmt, opts) {
  opts = opts || {};
  const W = 400, H = 140, L = 58, R = 8, T = 8, B = 18;
  const pts = series.flatMap(s => s.points.filter(p => p[1] !== null && p[1] !== undefined));
  const box = h("div", {class: "chart"});
  const last = series.length === 1 && pts.length ? fmt(series[0].points[series[0].points.length - 1][1]) : "";
  box.append(h("div", {class: "ct"}, h("span", {}, title), h("span", {}, last)));
  const el = svg("svg", {viewBox: `0 0 ${W} ${H}`});
  box.append(el);
  if (!pts.length) {
    el.append(svg("text", {x: W / 2, y: H / 2, "text-anchor": "middle"}, "no readings yet"));
    return box;
  }
  const t0 = Math.min(...pts.map(p => p[0])), t1 = Math.max(...pts.map(p => p[0]));
  const vmax = Math.max(opts.max || 0, ...pts.map(p => p[1])) || 1;
  const x = t => L + (t1 > t0 ? (t - t0) / (t1 - t0) : 0.5) * (W - L - R);
  const y = v => T + (1 - v / vmax) * (H - T - B);
  for (const f of [0, 0.5, 1]) {
    el.append(svg("line", {class: "axis", x1: L, x2: W - R, y1: y(vmax * f), y2: y(vmax * f)}));
    el.append(svg("text", {x: L - 4, y: y(vmax * f) + 3, "text-anchor": "end"}, fmt(vmax * f)));
  }
  el.append(svg("text", {x: L, y: H - 4}, when(t0)));
  el.append(svg("text", {x: W - R, y: H - 4, "text-anchor": "end"}, when(t1)));
  series.forEach((s, i) => {
    const p = s.points.filter(q => q[1] !== null && q[1] !== undefined);
    if (!p.length) return;
    const d = p.map((q, j) => (j ? "L" : "M") + x(q[0]).toFixed(1) + "," + y(q[1]).toFixed(1)).join("");
    el.append(svg("path", {d, fill: "none", stroke: s.color || PALETTE[i % PALETTE.length], "stroke-width": 1.8,
                           "vector-effect": "non-scaling-stroke"}));
  });
  if (series.length > 1) box.append(legend(series.map(s => s.name)));
  return box;
}

// Stacked bars: buckets x keys; values[key] = [v per bucket].
function stackedBars(title, keys, values, labels, fmt) {
  const W = 400, H = 150, L = 58, R = 8, T = 8, B = 18;
  const n = labels.length;
  const totals = labels.map((_, b) => keys.reduce((a, k) => a + (values[k] ? values[k][b] : 0), 0));
  const vmax = Math.max(...totals, 0) || 1;
  const box = h("div", {class: "chart"});
  const sum = totals.reduce((a, b) => a + b, 0);
  box.append(h("div", {class: "ct"}, h("span", {}, title), h("span", {}, fmt(sum) + " total")));
  const el = svg("svg", {viewBox: `0 0 ${W} ${H}`});
  box.append(el);
  const bw = (W - L - R) / Math.max(n, 1);
  const y = v => T + (1 - v / vmax) * (H - T - B);
  for (const f of [0, 0.5, 1]) {
    el.append(svg("line", {class: "axis", x1: L, x2: W - R, y1: y(vmax * f), y2: y(vmax * f)}));
    el.append(svg("text", {x: L - 4, y: y(vmax * f) + 3, "text-anchor": "end"}, fmt(vmax * f)));
  }
  for (let b = 0; b < n; b++) {
    let acc = 0;
    keys.forEach((k, i) => {
      const v = values[k] ? values[k][b] : 0;
      if (!v) return;
      const r = svg("rect", {x: (L + b * bw + 1).toFixed(1), width: Math.max(bw - 2, 1).toFixed(1),
                             y: y(acc + v).toFixed(1), height: (y(acc) - y(acc + v)).toFixed(1),
                             fill: PALETTE[i % PALETTE.length]});
      r.append(svg("title", {}, `${k}: ${fmt(v)} (${labels[b]})`));
      el.append(r);
      acc += v;
    });
  }
  if (n) {
    el.append(svg("text", {x: L, y: H - 4}, labels[0]));
    el.append(svg("text", {x: W - R, y: H - 4, "text-anchor": "end"}, "now"));
  }
  box.append(legend(keys));
  return box;
}

function legend(names) {
  return h("div", {class: "legend"}, names.map((n, i) =>
    h("span", {}, h("i", {style: `background:${PALETTE[i % PALETTE.length]}`}), n)));
}

// -- pages ------------------------------------------------------------------------------------

const pages = {};

pages.queue = function (main) {
  let seen = new Set(), first = true;
  async function refresh() {
    const [pending, running, recent] = await Promise.all([
      api(`/v1/jobs?state=Pending&limit=${PENDING_SHOWN}`),
      api(`/v1/jobs?state=Running&limit=${RUNNING_SHOWN}`),
      api(`/v1/jobs?state=Succeeded&state=Failed&state=Cancelled&last=${RECENT_SHOWN}`),
    ]);
    const t = now();
    const fresh = id => { const is = !first && !seen.has(id); seen.add(id); return is ? "flash" : null; };
    const runRows = running.jobs.map(j => h("tr", {"data-job": j.id, "data-state": j.state, class: fresh(j.id)},
      h("td", {}, jobLink(j.id)), h("td", {}, jobLink(j.id, j.name || "-")), h("td", {}, j.user || "-"),
      h("td", {}, j.queue), h("td", {}, badge(j.state)), h("td", {}, j.node || "-"),
      h("td", {class: "num"}, j.gpus.length ? j.gpus.join(",") : "-"),
      h("td", {class: "num"}, j.live && j.live.cpu !== null && j.live.cpu !== undefined ? num(j.live.cpu) : "-"),
      h("td", {class: "num"}, j.live ? bytes(j.live.memory) : "-"),
      h("td", {class: "num"}, j.live && j.live.gpu_util !== null && j.live.gpu_util !== undefined ? pct(j.live.gpu_util) : "-"),
      h("td", {class: "num"}, dur(t - j.started_at)), h("td", {}, actions(j, refresh))));
    const pendRows = pending.jobs
      .slice().sort((a, b) => (a.queue_position || 1e9) - (b.queue_position || 1e9) || a.id - b.id)
      .map(j => h("tr", {"data-job": j.id, "data-state": j.state, class: fresh(j.id)},
        h("td", {class: "num"}, j.queue_position ? "#" + j.queue_position : "-"),
        h("td", {}, jobLink(j.id)), h("td", {}, jobLink(j.id, j.name || "-")), h("td", {}, j.user || "-"),
        h("td", {}, j.queue), h("td", {}, badge(j.state, j.held)), h("td", {}, requests(j.requests)),
        h("td", {class: "reason"}, h("div", {"data-reason": j.reason}, j.message || j.reason),
          h("div", {class: "reason-code"}, j.reason)),
        h("td", {}, j.estimated_start ? (j.estimated_start <= t + 1 ? "now" : "in " + dur(j.estimated_start - t)) : "-"),
        h("td", {class: "num"}, dur(t - j.submitted_at)), h("td", {}, actions(j, refresh))));
    const recentRows = recent.jobs.slice().reverse().map(j => h("tr", {"data-job": j.id, "data-state": j.state},
      h("td", {}, jobLink(j.id)), h("td", {}, jobLink(j.id, j.name || "-")), h("td", {}, j.user || "-"),
      h("td", {}, j.queue), h("td", {}, badge(j.state)),
      h("td", {}, j.exit_code !== null && j.exit_code !== undefined ? "exit " + j.exit_code : j.signal ? j.signal : "-"),
      h("td", {class: "reason"}, j.message || j.reason), h("td", {}, when(j.ended_at)),
      h("td", {class: "num"}, dur((j.ended_at || t) - (j.started_at || j.ended_at || t)))));
    const gpusHeld = running.jobs.reduce((a, j) => a + j.gpus.length, 0);
    first = false;
    main.replaceChildren(
      h("div", {class: "cards"},
        card(running.jobs.length, "running", "Running"), card(pending.jobs.length + (pending.jobs.length >= PENDING_SHOWN ? "+" : ""), "pending", "Pending"),
        card(gpusHeld, "GPUs held"), card(pending.jobs.filter(j => j.held).length, "held")),
      h("h2", {}, "Running ", h("span", {class: "count"}, `(${running.jobs.length})`)),
      table(["ID", "Name", "User", "Queue", "State", "Node", "GPUs", "CPU", "Memory", "GPU util", "Runtime", ""],
            runRows, "nothing running"),
      h("h2", {}, "Pending ", h("span", {class: "count"}, `(${pending.jobs.length}${pending.jobs.length >= PENDING_SHOWN ? ", first " + PENDING_SHOWN : ""})`)),
      table(["#", "ID", "Name", "User", "Queue", "State", "Requests", "Reason", "Est. start", "Waited", ""],
            pendRows, "nothing waiting"),
      h("h2", {}, "Recently finished"),
      table(["ID", "Name", "User", "Queue", "State", "Exit", "Reason", "Ended", "Ran"], recentRows, "nothing yet"));
  }
  return {refresh, every: READINGS_EVERY, onEvent: () => true};
};

function card(value, label, state) {
  return h("div", {class: "card"}, h("div", {class: "big", style: state ? `color:var(--${state.toLowerCase()})` : null}, value),
           h("div", {class: "label"}, label));
}

pages.nodes = function (main) {
  async function refresh() {
    const [nodes, top] = await Promise.all([api("/v1/nodes"), api("/v1/top")]);
    const jobs = Object.fromEntries(top.jobs.map(j => [j.id, j]));
    const samples = Object.fromEntries(top.gpus.map(g => [g.node + "/" + g.index, g.sample]));
    main.replaceChildren(h("h1", {}, "Nodes & GPUs"), h("div", {class: "nodes"}, nodes.nodes.map(n => {
      const res = ["cpu", "memory", "nvidia.com/gpu"].filter(k => n.resources[k]).map(k => {
        const r = n.resources[k];
        const f = r.raw.allocatable ? r.raw.allocated / r.raw.allocatable : 0;
        return [h("div", {}, k === "nvidia.com/gpu" ? "GPUs" : k), bar(f, f > 0.9 ? "warn" : ""),
                h("div", {class: "muted"}, `${r.allocated} of ${r.allocatable} allocated`)];
      });
      return h("div", {class: "panel node", "data-node": n.name},
        h("h3", {}, n.name, " ", h("span", {class: "badge " + (n.state === "Ready" ? "state-Succeeded" : "state-Pending")}, n.state),
          " ", h("span", {class: "muted"}, [n.gpu_model, n.simulated_gpus ? "(simulated GPUs)" : null, n.engine].filter(Boolean).join(" \u00b7 "))),
        h("div", {class: "resources"}, res.flat()),
        n.gpus.length ? h("div", {class: "gpus"}, n.gpus.map(g => gpuCard(n, g, samples[n.name + "/" + g.index], jobs[g.job])))
                      : h("div", {class: "empty"}, "no GPUs on this node"));
    })));
  }
  return {refresh, every: READINGS_EVERY, onEvent: () => true};
};

function gpuCard(node, g, s, job) {
  const util = s ? s.utilization : null, mem = s ? s.memory_used : null, power = s ? s.power : null;
  return h("div", {class: "gpu " + (g.job ? "taken" : "free"), "data-gpu": g.index},
    h("div", {class: "title"}, h("span", {}, `GPU ${g.index}`), h("span", {class: "muted"}, g.model)),
    h("div", {class: "holder"}, g.job ? ["job ", jobLink(g.job), job ? ` \u00b7 ${job.user} \u00b7 ${job.name}` : ""]
                                      : h("span", {class: "muted"}, "free")),
    h("div", {class: "row"}, h("span", {}, "util"), bar((util || 0) / 100, util !== null && util < 5 && g.job ? "idle" : ""), h("span", {}, pct(util))),
    h("div", {class: "row"}, h("span", {}, "memory"), bar(mem && g.memory ? mem / g.memory : 0), h("span", {}, mem === null ? "-" : `${bytes(mem)}`)),
    h("div", {class: "row"}, h("span", {}, "power"), h("span", {}), h("span", {}, power === null ? "-" : `${Math.round(power)} W`)));
}

pages.job = function (main, id) {
  let log = {stream: "stdout", next: null, text: "", done: false};
  let shell = null;
  async function refresh() {
    const job = await api(`/v1/jobs/${id}`);
    const series = await api(`/v1/ui/jobs/${id}/series?points=300`);
    if (!shell) shell = buildJob(main, job);
    fillJob(shell, job, series, refresh);
    await tail(job);
  }
  async function tail(job) {
    if (!mayRead(job)) { shell.log.textContent = "(the log is for the job's owner and admins)"; return; }
    if (log.done) return;                              // the job has ended and all of it is read
    const q = log.next === null ? "" : `&offset=${log.next}`;
    const out = await api(`/v1/ui/jobs/${id}/log?stream=${log.stream}${q}`);
    if (log.next === null) log.text = (out.offset > 0 ? `[... ${bytes(out.offset)} before]\n` : "") + out.text;
    else log.text += out.text;
    if (log.text.length > 200000) log.text = log.text.slice(-150000);
    log.next = out.next;
    log.done = TERMINAL.includes(out.state) && (out.size === null || out.next >= out.size);
    const pre = shell.log, atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
    pre.textContent = log.text || "(empty)";
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  }
  function mayRead(job) { return me && (me.admin || job.user === me.user); }
  function buildJob(main, job) {
    const s = {head: h("div"), spec: h("dl", {class: "spec"}), eff: h("div"), charts: h("div", {class: "charts"}),
               events: h("div"), log: h("pre", {class: "log", id: "log"}, "loading\u2026"), tabs: h("div", {class: "tabs"})};
    for (const name of ["stdout", "stderr"]) {
      const b = h("button", {class: name === log.stream ? "on" : ""}, name);
      b.addEventListener("click", () => {
        log = {stream: name, next: null, text: "", done: false};
        for (const x of s.tabs.children) x.classList.toggle("on", x === b);
        refresh();
      });
      s.tabs.append(b);
    }
    main.replaceChildren(s.head, s.charts,
      h("div", {class: "grid2"},
        h("div", {}, h("h2", {}, "Efficiency"), h("div", {class: "panel"}, s.eff),
          h("h2", {}, "Log"), s.tabs, s.log),
        h("div", {}, h("h2", {}, "Spec"), h("div", {class: "panel"}, s.spec), h("h2", {}, "Events"), s.events)));
    return s;
  }
  return {refresh, every: READINGS_EVERY, onEvent: e => e.job === id};
};

function fillJob(s, job, series, refresh) {
  const t = now();
  s.head.replaceChildren(h("h1", {}, `Job ${job.id} `, h("span", {class: "muted"}, job.name || ""), " ", badge(job.state, job.held)),
    h("div", {class: "toolbar"},
      h("span", {"data-reason": job.reason}, job.message || job.reason),
      job.state === "Pending" && job.queue_position ? h("span", {class: "muted"}, `position #${job.queue_position}`) : null,
      job.estimated_start ? h("span", {class: "muted"}, `estimated start ${when(job.estimated_start)}`) : null,
      actions(job, refresh)));
  const rows = [
    ["user", job.user], ["queue", job.queue], ["priority", job.priority],
    ["command", h("code", {}, (job.command || []).join(" "))], ["workdir", job.workdir],
    ["requests", requests(job.requests)], ["limits", requests(job.limits)],
    ["node", job.node || "-"], ["GPUs", job.gpus && job.gpus.length ? job.gpus.join(", ") + (job.gpus_simulated ? " (simulated)" : "") : "-"],
    ["CPUs", job.cpus && job.cpus.length ? job.cpus.join(",") : "-"],
    ["time limit", job.time_limit ? dur(job.time_limit) : "none"],
    ["submitted", when(job.submitted_at)], ["started", when(job.started_at)], ["ended", when(job.ended_at)],
    ["runtime", job.started_at ? dur((job.ended_at || t) - job.started_at) : "-"],
    ["exit", job.exit_code !== null && job.exit_code !== undefined ? job.exit_code : job.signal || "-"],
    ["attempts", job.attempts],
    ["labels", job.labels && Object.keys(job.labels).length ? Object.entries(job.labels).map(([k, v]) => `${k}=${v}`).join(", ") : "-"],
    ["enforcement", job.enforcement ? job.enforcement.limits.join("; ") || job.enforcement.description : "-"],
  ];
  if (job.dependencies) rows.push(["after", job.dependencies.join(", ")]);
  if (job.resumable) rows.push(["resumable", `yes: ${dur(job.served || 0)} run in earlier attempts, kept`]);
  s.spec.replaceChildren(...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v === null || v === undefined ? "-" : v)]));
  const e = job.efficiency || {hints: []};
  const effRows = [];
  if (e.cpu_efficiency !== undefined) effRows.push(["CPU", `${num(e.cpu_used, 2)} cores used on average, ${pct(e.cpu_efficiency * 100)} of the request`]);
  if (e.memory_peak !== undefined) effRows.push(["memory", `peak ${bytes(e.memory_peak)}` + (e.memory_efficiency !== undefined ? `, ${pct(e.memory_efficiency * 100)} of the request` : "")]);
  if (e.gpu_hours !== undefined) {
    effRows.push(["GPU", `mean utilization ${pct(e.gpu_util)}, peak memory ${bytes(e.gpu_memory_peak)}`]);
    effRows.push(["GPU-hours", `${num(e.gpu_hours, 3)} (${num(e.idle_gpu_hours, 3)} idle, wasted)`]);
    effRows.push(["energy", `${num(e.energy_kwh, 4)} kWh`]);
  }
  const live = job.live;
  if (live) effRows.push(["now", [live.cpu !== null && live.cpu !== undefined ? `CPU ${num(live.cpu)}` : null, live.memory ? `mem ${bytes(live.memory)}` : null,
                                   live.gpu_util !== null && live.gpu_util !== undefined ? `GPU ${pct(live.gpu_util)}` : null,
                                   live.gpu_power ? `${Math.round(live.gpu_power)} W` : null].filter(Boolean).join(" \u00b7 ") || "-"]);
  s.eff.replaceChildren(
    effRows.length ? h("dl", {class: "spec"}, effRows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))
                   : h("div", {class: "muted"}, job.started_at ? "no usage recorded yet" : "not started yet"),
    ...(e.hints || []).map(x => h("div", {class: "hint", "data-hint": ""}, "\u2192 " + x)));
  s.events.replaceChildren(table(["Time", "From", "To", "Reason", "Message"], (job.events || []).map(ev => h("tr", {},
    h("td", {}, when(ev.ts)), h("td", {}, ev.from ? badge(ev.from) : "-"), h("td", {}, badge(ev.to)),
    h("td", {class: "reason-code"}, ev.reason), h("td", {}, ev.message || "")))));
  const p = series.points;
  const gpuJob = job.gpus && job.gpus.length;
  const charts = [
    lineChart("CPU (cores)", [{name: "cpu", points: p.map(q => [q.t, q.cpu])}], v => v === 0 ? "0" : String(Number(v.toPrecision(2)))),
    lineChart("Memory", [{name: "memory", points: p.map(q => [q.t, q.memory])}], bytes),
  ];
  if (gpuJob) {
    charts.push(lineChart("GPU utilization", [{name: "util", points: p.map(q => [q.t, q.gpu_util])}], v => Math.round(v) + "%", {max: 100}));
    charts.push(lineChart("GPU memory", [{name: "gpu memory", points: p.map(q => [q.t, q.gpu_memory])}], bytes));
    charts.push(lineChart("GPU power (W)", [{name: "power", points: p.map(q => [q.t, q.power])}], v => Math.round(v) + " W"));
  }
  s.charts.replaceChildren(...charts);
}

pages.usage = function (main) {
  const state = {since: "24h", buckets: 24};
  const tools = h("div", {class: "toolbar"});
  const body = h("div");
  const pick = h("select", {id: "window"}, [["1h", 12], ["24h", 24], ["7d", 28], ["30d", 30]].map(([v]) =>
    h("option", {value: v, selected: v === state.since}, "last " + v)));
  pick.addEventListener("change", () => { state.since = pick.value; state.buckets = {"1h": 12, "24h": 24, "7d": 28, "30d": 30}[pick.value]; refresh(); });
  tools.append(h("span", {class: "muted"}, "window"), pick);
  main.replaceChildren(h("h1", {}, "Usage"), tools, body);
  async function refresh() {
    const q = `since=${state.since}`;
    // One bounded call per grouping: the buckets, the lines and the total together.
    const [tUser, tQueue] = await Promise.all([
      api(`/v1/ui/usage/timeline?${q}&by=user&buckets=${state.buckets}`),
      api(`/v1/ui/usage/timeline?${q}&by=queue&buckets=${state.buckets}`)]);
    const byUser = tUser, byQueue = tQueue;
    const cur = byUser.currency || "";
    const tot = byUser.total;
    const labels = Array.from({length: tUser.buckets}, (_, b) => bucketLabel(tUser.since + b * tUser.step, tUser.step * tUser.buckets));
    const pick = (t, field) => Object.fromEntries(t.keys.map(k => [k, t.series[k][field] || []]));
    const short = v => v === 0 ? "0" : v < 1 ? String(Number(v.toPrecision(2))) : num(v, v < 10 ? 2 : 1);
    const hrs = v => short(v) + " h", kwh = v => short(v) + " kWh", money = v => `${short(v)} ${cur}`.trim();
    const charts = [
      stackedBars("GPU-hours by user", tUser.keys, pick(tUser, "gpu_hours"), labels, hrs),
      stackedBars("Wasted GPU-hours by user", tUser.keys, pick(tUser, "wasted_gpu_hours"), labels, hrs),
      stackedBars("Energy by user", tUser.keys, pick(tUser, "energy_kwh"), labels, kwh),
      stackedBars("GPU-hours by queue", tQueue.keys, pick(tQueue, "gpu_hours"), labels, hrs),
    ];
    if (tUser.currency !== undefined && Object.values(tUser.series).some(s => s.cost)) {
      charts.push(stackedBars("Cost by user (GPU + energy)", tUser.keys, pick(tUser, "cost"), labels, money));
      charts.push(stackedBars("Cost by queue (GPU + energy)", tQueue.keys, pick(tQueue, "cost"), labels, money));
    }
    const lines = (r, what) => table([what, "Jobs", "GPU-hours", "Wasted GPU-h", "CPU-hours", "CPU eff.", "Energy kWh", "Cost"],
      r.lines.map(l => h("tr", {}, h("td", {}, l.key), h("td", {class: "num"}, l.jobs), h("td", {class: "num"}, num(l.gpu_hours, 2)),
        h("td", {class: "num"}, num(l.wasted_gpu_hours, 2)), h("td", {class: "num"}, num(l.cpu_hours, 2)),
        h("td", {class: "num"}, l.cpu_efficiency === null ? "-" : pct(l.cpu_efficiency * 100)),
        h("td", {class: "num"}, num(l.energy_kwh, 3)), h("td", {class: "num"}, l.cost === null ? "-" : money(l.cost)))), "no usage in this window");
    body.replaceChildren(
      h("div", {class: "cards"}, card(num(tot.gpu_hours, 2), "GPU-hours"), card(num(tot.wasted_gpu_hours, 2), "wasted GPU-hours"),
        card(num(tot.energy_kwh, 3), "energy, kWh"), card(num(tot.cpu_hours, 2), "CPU-hours"),
        card(tot.cost === null ? "-" : money(tot.cost), "cost")),
      h("h2", {}, "Over time"), h("div", {class: "charts"}, charts),
      h("h2", {}, "By user"), lines(byUser, "User"), h("h2", {}, "By queue"), lines(byQueue, "Queue"));
  }
  return {refresh, every: 30000, onEvent: () => false};
};

// -- routing and live updates ------------------------------------------------------------------

async function show() {
  const [, name, arg] = (location.hash || "#/queue").split("/");
  const kind = pages[name] ? name : "queue";
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === kind);
  if (timer) clearInterval(timer);
  // Each page draws into a container of its own: a page left while its data was still
  // on the way then draws into a container no longer shown, never over the new page.
  const main = h("div");
  document.getElementById("main").replaceChildren(main);
  main.replaceChildren(h("p", {class: "muted"}, "loading\u2026"));
  const id = kind === "job" ? parseInt(arg, 10) : null;
  if (kind === "job" && !(id > 0)) { main.replaceChildren(h("p", {}, "no such job: " + arg)); return; }
  const current = page = Object.assign(pages[kind](main, id), {name: kind});
  document.title = kind === "job" ? `job ${id} \u00b7 corral` : `${kind} \u00b7 corral`;
  await run(current);
  if (page === current) timer = setInterval(() => run(current), current.every);
}

async function run(p) {
  if (p !== page || p.busy) return;
  p.busy = true;
  try {
    await p.refresh();
    banner("");
  } catch (e) {
    banner(e.message);
  } finally {
    p.busy = false;
  }
}

function refreshSoon() {
  if (refreshQueued) return;
  refreshQueued = setTimeout(() => { refreshQueued = null; if (page) run(page); }, 250);
}

function listen() {
  const live = document.getElementById("live"), text = document.getElementById("live-text");
  const es = new EventSource("/v1/events");
  es.onopen = () => { live.classList.remove("off"); text.textContent = "live"; };
  es.onerror = () => { live.classList.add("off"); text.textContent = "reconnecting"; };
  es.addEventListener("job", msg => {
    let e;
    try { e = JSON.parse(msg.data); } catch (err) { return; }
    if (page && page.onEvent(e)) refreshSoon();
    if (e.to !== "Pending" || e.from) toast(`job ${e.job} ${e.name ? "(" + e.name + ") " : ""}\u2192 ${e.to}`);
  });
}

async function start() {
  try {
    me = await api("/v1/whoami");
    const who = document.getElementById("me");
    who.textContent = `${me.user}${me.admin ? " (admin)" : ""}${me.scope ? " \u00b7 " + me.scope + " token" : ""}`;
  } catch (e) {
    banner(e.message);
  }
  window.addEventListener("hashchange", show);
  listen();
  show();
}

start();
