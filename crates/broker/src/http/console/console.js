// The Sluice console: a few views over /api/v1, rendered with DOM calls
// only (textContent, never innerHTML), so that record contents and names
// cannot inject markup or script.
"use strict";

const view = document.getElementById("view");

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function link(href, text) {
  return el("a", { href }, text);
}

function table(headers, rows, numeric = []) {
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h, i) => el("th", numeric.includes(i) ? { class: "num", scope: "col" } : { scope: "col" }, h)))),
    el("tbody", {}, rows.map((row) => el("tr", {}, row.map((cell, i) => el("td", numeric.includes(i) ? { class: "num" } : {}, cell))))));
}

function card(label, value, bad) {
  return el("div", { class: "card" }, el("div", { class: bad ? "value bad" : "value" }, value), el("div", { class: "label" }, label));
}

async function api(path, method = "GET", body = undefined) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch("/api/v1" + path, init);
  const answer = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

// A form whose submit runs `action(data)`; its outcome or error shows below it.
function actionForm(label, fields, submitText, action) {
  const outcome = el("div", { role: "status" });
  const form = el("form", { class: "browse", "aria-label": label }, fields, el("button", { type: "submit" }, submitText));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    outcome.replaceChildren();
    try {
      const shown = await action(new FormData(form), event.submitter);
      if (shown) outcome.replaceChildren(shown);
    } catch (e) {
      outcome.replaceChildren(el("p", { class: "error", role: "alert" }, e.message));
    }
  });
  return [form, outcome];
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

// A key or value: text (JSON pretty-printed), or the base64 of binary data.
function content(c) {
  if (c === null) return el("em", {}, "null");
  if ("base64" in c) return el("pre", { title: "binary, base64" }, "base64:" + c.base64);
  try {
    const parsed = JSON.parse(c.text);
    if (typeof parsed === "object" && parsed !== null) return el("pre", {}, JSON.stringify(parsed, null, 2));
  } catch (_) { /* not JSON */ }
  return el("pre", {}, c.text);
}

// Samples taken while a view is open; a view's timer stops when it is left.
let viewTimer = null;
function every(ms, fn) {
  clearInterval(viewTimer);
  viewTimer = setInterval(fn, ms);
}

// A line chart of `series` ({label, points: [[t, value]...]}) as inline SVG.
function chart(title, series, unit) {
  const svgNs = "http://www.w3.org/2000/svg";
  const width = 640, height = 160, pad = 30;
  const svg = document.createElementNS(svgNs, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  svg.setAttribute("class", "chart");
  const all = series.flatMap((s) => s.points);
  const t0 = Math.min(...all.map((p) => p[0]), Date.now() - 60_000);
  const t1 = Math.max(...all.map((p) => p[0]), t0 + 1);
  const max = Math.max(1, ...all.map((p) => p[1]));
  const colors = ["#1f6feb", "#d1242f", "#1a7f37"];
  series.forEach((s, i) => {
    const line = document.createElementNS(svgNs, "polyline");
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", colors[i % colors.length]);
    line.setAttribute("stroke-width", "2");
    line.setAttribute("points", s.points.map(([t, v]) =>
      `${pad + ((t - t0) / (t1 - t0)) * (width - 2 * pad)},${height - pad - (v / max) * (height - 2 * pad)}`).join(" "));
    svg.append(line);
  });
  const label = document.createElementNS(svgNs, "text");
  label.setAttribute("x", pad);
  label.setAttribute("y", 14);
  label.textContent = `max ${unit(max)}`;
  svg.append(label);
  const legend = el("p", { class: "legend" }, series.map((s, i) =>
    el("span", { class: `series-${i % colors.length}` }, "■ ", s.label, " ")));
  return el("figure", {}, el("figcaption", {}, title), svg, legend);
}

// Bytes in and out per second across topics, over the last five minutes.
const traffic = { samples: [] };
async function sampleTraffic() {
  const list = await api("/topics");
  const sum = (key) => list.reduce((n, t) => n + (t[key] || 0), 0);
  traffic.samples.push([Date.now(), sum("bytes_in_total"), sum("bytes_out_total")]);
  const cutoff = Date.now() - 5 * 60_000;
  traffic.samples = traffic.samples.filter((s) => s[0] >= cutoff);
}
function rates(index) {
  const points = [];
  for (let i = 1; i < traffic.samples.length; i++) {
    const [t, ...now] = traffic.samples[i];
    const [t0, ...before] = traffic.samples[i - 1];
    points.push([t, Math.max(0, (now[index] - before[index]) / ((t - t0) / 1000))]);
  }
  return points;
}
function trafficChart() {
  return chart("Throughput (last 5 minutes)", [
    { label: "bytes in/s", points: rates(0) },
    { label: "bytes out/s", points: rates(1) },
  ], (v) => bytes(v) + "/s");
}

async function overview() {
  const c = await api("/cluster");
  await sampleTraffic();
  const holder = el("div", { id: "traffic" }, trafficChart());
  every(2000, async () => {
    await sampleTraffic().catch(() => {});
    holder.replaceChildren(trafficChart());
  });
  return [
    el("h1", {}, "Overview"),
    el("p", {}, "Cluster ", el("code", {}, c.cluster_id || "?"), ", controller ", String(c.controller ?? "none")),
    el("div", { class: "cards" },
      card("brokers", c.brokers.length),
      card("topics", c.topics),
      card("partitions", c.partitions),
      card("under-replicated", c.under_replicated_partitions, c.under_replicated_partitions > 0),
      card("offline", c.offline_partitions, c.offline_partitions > 0)),
    holder,
    el("h2", {}, "Brokers"),
    table(["id", "host", "port"], c.brokers.map((b) => [b.id, b.host, b.port]), [0, 2]),
  ];
}

async function topics() {
  const list = await api("/topics");
  const shown = list.filter((t) => !t.internal);
  return [
    el("h1", {}, "Topics"),
    shown.length === 0 ? el("p", {}, "No topics yet.") :
      table(["topic", "partitions", "records", "size"],
        shown.map((t) => [link("#/topics/" + encodeURIComponent(t.name), t.name), t.partitions, t.records, bytes(t.size_bytes)]), [1, 2, 3]),
    el("p", {}, list.length - shown.length, " internal topics (", list.filter((t) => t.internal).map((t) => t.name).join(", "), ") not shown."),
    el("h2", {}, "Create a topic"),
    actionForm("Create a topic", [
      el("label", {}, "name", el("input", { name: "name", required: "", maxlength: "249" })),
      el("label", {}, "partitions", el("input", { name: "partitions", type: "number", min: "1", value: "1" })),
    ], "Create", async (data) => {
      const created = await api("/topics", "POST", { name: data.get("name"), partitions: Number(data.get("partitions")) });
      location.hash = "#/topics/" + encodeURIComponent(created.name);
    }),
  ];
}

async function topic(name) {
  const t = await api("/topics/" + encodeURIComponent(name));
  return [
    el("h1", {}, t.name),
    el("p", {}, link("#/topics/" + encodeURIComponent(name) + "/messages", "Browse messages")),
    el("h2", {}, "Partitions"),
    table(["partition", "leader", "epoch", "replicas", "in sync", "log start", "high watermark", "size"],
      t.partitions.map((p) => [p.partition, p.leader, p.leader_epoch, p.replicas.join(", "), p.isr.join(", "),
        p.log_start_offset ?? "offline", p.high_watermark ?? "offline", bytes(p.size_bytes)]), [0, 1, 2, 5, 6, 7]),
    el("h2", {}, "Configs"),
    table(["name", "value", "source"], t.configs.map((c) => [c.name, c.value, c.source])),
    el("h2", {}, "Delete"),
    actionForm("Delete the topic", [
      el("label", {}, "type the topic's name to confirm", el("input", { name: "confirm", autocomplete: "off" })),
    ], "Delete topic", async (data) => {
      if (data.get("confirm") !== t.name) throw new Error("type the topic's name to confirm");
      await api("/topics/" + encodeURIComponent(t.name), "DELETE");
      location.hash = "#/topics";
    }),
  ];
}

async function messages(name, params) {
  const t = await api("/topics/" + encodeURIComponent(name));
  const partition = Number(params.get("partition") || 0);
  const query = new URLSearchParams({ limit: params.get("limit") || "50" });
  if (params.get("offset")) query.set("offset", params.get("offset"));
  const page = await api(`/topics/${encodeURIComponent(name)}/partitions/${partition}/records?${query}`);
  const form = el("form", { class: "browse", "aria-label": "Choose records" },
    el("label", {}, "partition", el("select", { name: "partition" },
      t.partitions.map((p) => {
        const option = el("option", { value: p.partition }, p.partition);
        if (p.partition === partition) option.selected = true;
        return option;
      }))),
    el("label", {}, "from offset", el("input", { name: "offset", type: "number", min: page.log_start_offset, value: params.get("offset") || page.log_start_offset })),
    el("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    location.hash = `#/topics/${encodeURIComponent(name)}/messages?partition=${data.get("partition")}&offset=${data.get("offset")}`;
  });
  const next = `#/topics/${encodeURIComponent(name)}/messages?partition=${partition}&offset=${page.next_offset}`;
  // The live tail: new records as they arrive, newest first.
  const tailRows = el("tbody", {});
  const tailBox = el("section", { "aria-label": "Live tail", hidden: "" },
    el("h2", {}, "Live tail"),
    el("table", {}, el("thead", {}, el("tr", {}, ["offset", "timestamp", "key", "value"].map((h) => el("th", { scope: "col" }, h)))), tailRows));
  const tailButton = el("button", { type: "button" }, "Start live tail");
  tailButton.addEventListener("click", () => {
    let from = page.high_watermark;
    tailBox.hidden = false;
    tailButton.disabled = true;
    tailButton.textContent = "Tailing…";
    every(1000, async () => {
      const latest = await api(`/topics/${encodeURIComponent(name)}/partitions/${partition}/records?offset=${from}&limit=100`).catch(() => null);
      if (!latest) return;
      for (const r of latest.records) {
        tailRows.prepend(el("tr", {}, [r.offset, new Date(r.timestamp).toISOString(), content(r.key), content(r.value)].map((c) => el("td", {}, c))));
      }
      while (tailRows.children.length > 200) tailRows.lastChild.remove();
      from = latest.next_offset;
    });
  });
  return [
    el("h1", {}, "Messages of ", link("#/topics/" + encodeURIComponent(name), name)),
    form,
    el("p", {}, tailButton),
    tailBox,
    el("p", {}, `Offsets ${page.log_start_offset} to ${page.high_watermark - 1} in partition ${partition}.`),
    page.records.length === 0 ? el("p", {}, "No records from here.") :
      table(["offset", "timestamp", "key", "value", "headers"],
        page.records.map((r) => [r.offset, new Date(r.timestamp).toISOString(), content(r.key), content(r.value),
          el("div", {}, r.headers.map((h) => el("div", {}, h.key, ": ", content(h.value))))]), [0]),
    page.next_offset < page.high_watermark ? link(next, "Next records") : el("p", {}, "End of the partition."),
  ];
}

async function groups() {
  const list = await api("/groups");
  return [
    el("h1", {}, "Consumer groups"),
    list.length === 0 ? el("p", {}, "No groups yet.") :
      table(["group", "state", "protocol", "members"],
        list.map((g) => [link("#/groups/" + encodeURIComponent(g.group_id), g.group_id), g.state, g.protocol, g.members]), [3]),
  ];
}

const lagHistory = { group: null, points: [] };
async function group(id) {
  const g = await api("/groups/" + encodeURIComponent(id));
  const total = g.offsets.reduce((sum, o) => sum + (o.lag || 0), 0);
  if (lagHistory.group !== id) Object.assign(lagHistory, { group: id, points: [] });
  lagHistory.points.push([Date.now(), total]);
  const lagChart = el("div", {}, chart("Total lag", [{ label: "records behind", points: lagHistory.points }], String));
  every(2000, async () => {
    const now = await api("/groups/" + encodeURIComponent(id)).catch(() => null);
    if (!now) return;
    lagHistory.points.push([Date.now(), now.offsets.reduce((sum, o) => sum + (o.lag || 0), 0)]);
    lagHistory.points = lagHistory.points.slice(-150);
    lagChart.replaceChildren(chart("Total lag", [{ label: "records behind", points: lagHistory.points }], String));
  });
  return [
    el("h1", {}, g.group_id),
    el("div", { class: "cards" }, card("total lag", total, total > 0)),
    lagChart,
    table(["topic", "partition", "committed", "high watermark", "lag"],
      g.offsets.map((o) => [o.topic, o.partition, o.committed_offset, o.high_watermark ?? "–", o.lag ?? "–"]), [1, 2, 3, 4]),
    el("h2", {}, "Reset offsets"),
    el("p", {}, "The group's consumers must be stopped. Preview first: it changes nothing."),
    actionForm("Reset offsets", [
      el("label", {}, "topic", el("select", { name: "topic" },
        [...new Set(g.offsets.map((o) => o.topic))].map((t) => el("option", { value: t }, t)))),
      el("label", {}, "to", el("select", { name: "to" },
        ["earliest", "latest", "offset"].map((t) => el("option", { value: t }, t)))),
      el("label", {}, "offset (for to=offset)", el("input", { name: "offset", type: "number", min: "0" })),
      el("button", { type: "submit", name: "preview", value: "1" }, "Preview"),
    ], "Reset", async (data, submitter) => {
      const dryRun = submitter && submitter.name === "preview";
      const request = { topic: data.get("topic"), to: data.get("to"), dry_run: dryRun };
      if (data.get("offset")) request.offset = Number(data.get("offset"));
      const result = await api("/groups/" + encodeURIComponent(g.group_id) + "/offsets/reset", "POST", request);
      if (!dryRun) {
        await render();
        return null;
      }
      return el("div", {}, el("p", {}, "Preview (nothing changed):"),
        table(["partition", "current", "new"], result.offsets.map((o) => [o.partition, o.current ?? "–", o.target]), [0, 1, 2]));
    }),
  ];
}

async function render() {
  clearInterval(viewTimer);
  const [path, search] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(search || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  let content;
  try {
    if (parts.length === 0) content = await overview();
    else if (parts[0] === "topics" && parts.length === 1) content = await topics();
    else if (parts[0] === "topics" && parts.length === 2) content = await topic(parts[1]);
    else if (parts[0] === "topics" && parts[2] === "messages") content = await messages(parts[1], params);
    else if (parts[0] === "groups" && parts.length === 1) content = await groups();
    else if (parts[0] === "groups" && parts.length === 2) content = await group(parts[1]);
    else content = [el("h1", {}, "Not found"), el("p", {}, "No such page: ", path)];
  } catch (e) {
    content = [el("p", { class: "error", role: "alert" }, e.message)];
  }
  view.replaceChildren(...content.flat());
  document.title = (view.querySelector("h1")?.textContent || "Sluice") + " – Sluice console";
}

window.addEventListener("hashchange", render);
render();
