// uxstream dashboard: draws /api/data (live) or the embedded data (static report) with uPlot.
// Live: new final windows arrive as server-sent events (`windows`), then the data is fetched again; the
// page never reloads. window.uxDashboard exposes the data drawn (tests read it).
(function () {
  "use strict";
  const embedded = window.UX_EMBEDDED || null;
  const params = Object.assign({}, window.UX_PARAMS || {});
  const token = new URLSearchParams(location.search).get("token");
  const state = (window.uxDashboard = { data: null, loads: 0, renders: 0, realtime: null, errors: [], mode: embedded ? "report" : "live" });
  const plots = [];
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#ca8a04", "#db2777", "#65a30d"];

  const $ = (sel) => document.querySelector(sel);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

  function query(extra) {
    const q = new URLSearchParams(Object.assign({}, params, extra || {}));
    if (token) q.set("token", token);
    return q.toString();
  }

  function showError(message) {
    const box = $("#error");
    if (message) {
      box.textContent = message;
      box.hidden = false;
    } else {
      box.textContent = "";
      box.hidden = true;
    }
  }

  function fmtTime(sec) {
    if (sec == null) return "–";
    const d = new Date(sec * 1000);
    return d.toLocaleString("en-GB", { timeZone: params.tz, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false });
  }

  function fmtNum(v, digits) {
    if (v == null) return "–";
    return typeof digits === "number" ? Number(v).toFixed(digits) : String(v);
  }

  // Union of time axes; each column re-aligned to it (null where missing).
  function align(parts) {
    const all = new Set();
    parts.forEach((p) => p.times.forEach((t) => all.add(t)));
    const times = Array.from(all).sort((a, b) => a - b);
    const cols = [];
    parts.forEach((p) => {
      const index = new Map(p.times.map((t, i) => [t, i]));
      p.cols.forEach((col) => cols.push(times.map((t) => (index.has(t) ? col[index.get(t)] : null))));
    });
    return [times, ...cols];
  }

  function alertsFor(chart, data) {
    return data.alerts.filter((a) => {
      if (a.chart !== chart) return false;
      if (chart === "lcp_p75") return a.dimension === "global";
      return a.dimension === data.params.dimension && data.kpi.values.includes(a.dimension_value);
    });
  }

  function markAlerts(alerts) {
    return (u) => {
      const ctx = u.ctx;
      ctx.save();
      alerts.forEach((a, i) => {
        const x0 = u.valToPos(a.opened_window_start, "x", true);
        const x1 = u.valToPos(a.resolved_at != null ? a.resolved_at : a.last_window_end, "x", true);
        const left = Math.max(u.bbox.left, Math.min(x0, x1));
        const right = Math.min(u.bbox.left + u.bbox.width, Math.max(x0, x1, x0 + 2));
        if (right <= left) return;
        ctx.fillStyle = a.status === "open" ? "rgba(220,38,38,0.18)" : "rgba(234,88,12,0.12)";
        ctx.fillRect(left, u.bbox.top, right - left, u.bbox.height);
        ctx.fillStyle = "#b91c1c";
        ctx.font = `${Math.round(11 * devicePixelRatio)}px sans-serif`;
        const label = `⚠ ${a.dimension_value} ${a.severity}`;
        ctx.fillText(label, left + 4, u.bbox.top + 14 * (i + 1) * devicePixelRatio);
      });
      ctx.restore();
    };
  }

  function plot(target, title, yLabel, seriesDefs, columns, alerts, opts) {
    const el = document.createElement("div");
    el.className = "uplot-wrap";
    el.dataset.title = title;
    el.dataset.points = String(columns[0].length);
    el.dataset.alertMarks = String((alerts || []).length);
    target.appendChild(el);
    const width = Math.max(320, target.clientWidth || 800);
    const options = {
      title: title,
      width: width,
      height: (opts && opts.height) || 220,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), params.tz),
      scales: { x: { time: true } },
      axes: [
        { label: `time (${params.tz})`, labelSize: 18 },
        { label: yLabel, labelSize: 18, size: 60 },
      ],
      series: [{ label: "time" }].concat(
        seriesDefs.map((s, i) =>
          Object.assign({ stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false, points: { show: columns[0].length < 60 } }, s),
        ),
      ),
      hooks: alerts && alerts.length ? { draw: [markAlerts(alerts)] } : {},
      legend: { live: true },
    };
    if (opts && opts.yRange) options.scales.y = { range: opts.yRange };
    plots.push(new uPlot(options, columns, el));
    return el;
  }

  function setNote(key, text) {
    const note = document.querySelector(`[data-note="${key}"]`);
    if (note) {
      note.textContent = text || "";
      note.hidden = !text;
    }
  }

  function clear() {
    while (plots.length) plots.pop().destroy();
    document.querySelectorAll("section.chart .plot").forEach((p) => (p.innerHTML = ""));
  }

  function render(data) {
    clear();
    state.data = data;
    state.renders += 1;
    const kpi = data.kpi;
    const dim = data.dimension_title;
    const label = (v) => (data.params.dimension === "global" ? "" : ` · ${v}`);
    const host = (key) => document.querySelector(`#chart-${key} .plot`);

    // Active users: 1-minute windows and the sliding 5 minutes, per dimension value.
    const au = align([
      { times: kpi.times, cols: kpi.values.map((v) => kpi.series[v].active_users) },
      { times: kpi.sliding.times, cols: kpi.values.map((v) => kpi.sliding.series[v].active_users_5m) },
    ]);
    const auSeries = kpi.values
      .map((v, i) => ({ label: `1 min${label(v)}`, stroke: COLORS[i % COLORS.length] }))
      .concat(kpi.values.map((v, i) => ({ label: `5 min${label(v)}`, stroke: COLORS[i % COLORS.length], dash: [6, 4] })));
    plot(host("active_users"), `Active users by ${dim}`, "users", auSeries, au, alertsFor("active_users", data));

    const pv = [kpi.times, ...kpi.values.map((v) => kpi.series[v].page_views)];
    plot(host("page_views"), `Page views per minute by ${dim}`, "page views / min", kpi.values.map((v) => ({ label: v })), pv, alertsFor("page_views", data));

    const er = [kpi.times, ...kpi.values.map((v) => kpi.series[v].error_rate.map((x) => (x == null ? null : x * 100)))];
    plot(host("error_rate"), `Error rate per minute by ${dim}`, "error rate (%)", kpi.values.map((v) => ({ label: v })), er, alertsFor("error_rate", data));

    // Web vitals p75 with the good / poor thresholds.
    const vit = data.vitals;
    const vitalsHost = host("vitals");
    [
      ["lcp_p75", "LCP p75", "ms"],
      ["inp_p75", "INP p75", "ms"],
      ["cls_p75", "CLS p75", "score (unitless)"],
    ].forEach(([key, name, unit]) => {
      const t = vit.thresholds[key];
      const cols = [vit.times, vit[key], vit.times.map(() => t.good), vit.times.map(() => t.poor)];
      plot(
        vitalsHost,
        `${name} (good ≤ ${t.good}${t.unit}, poor > ${t.poor}${t.unit})`,
        unit,
        [{ label: `${name}` }, { label: "good", stroke: "#16a34a", dash: [4, 4], points: { show: false } }, { label: "poor", stroke: "#dc2626", dash: [4, 4], points: { show: false } }],
        cols,
        alertsFor("lcp_p75", data).filter(() => key === "lcp_p75"),
        { height: 180 },
      );
    });

    renderFunnels(host("funnels"), data);
    renderAlerts(host("alerts"), data);

    const h = data.health;
    plot(
      host("health"),
      "Events, late and duplicate events per minute",
      "events / min",
      [{ label: "counted events" }, { label: "late (ledger)" }, { label: "duplicates" }],
      [h.times, h.events, h.late, h.duplicates],
      [],
    );
    const dl = h.dead_letters;
    const dlText = dl == null ? "dead letters: not counted (no Kafka topic configured)" : dl.error ? `dead letters: ${dl.error}` : `dead-lettered records in ${dl.topic}: ${dl.count}`;
    const totals = document.createElement("p");
    totals.className = "totals";
    totals.dataset.health = "totals";
    totals.textContent = `late events in range: ${h.late_total}; ${dlText}. Consumer lag: the jobs keep their offsets in checkpoints, not in consumer groups, so there is no group lag to show.`;
    host("health").appendChild(totals);

    renderUniques(host("uniques"), data.uniques);

    Object.entries(data.notes).forEach(([k, v]) => setNote(k, v));
    const status = $("#status");
    const latest = data.latest_window_end == null ? "none yet" : fmtTime(data.latest_window_end);
    status.textContent = `${fmtTime(data.range.from)} – ${fmtTime(data.range.to)} (${params.tz}) · newest final window ends ${latest}` + (embedded ? ` · report generated ${embedded.generated_at}` : "");
    document.body.dataset.renders = String(state.renders);
  }

  function renderFunnels(target, data) {
    data.funnels.forEach((f) => {
      const card = document.createElement("div");
      card.className = "funnel";
      card.dataset.funnel = f.funnel;
      const global = f.segments.find((s) => s.dimension === "global") || f.segments[0];
      const top = Math.max(1, ...global.steps.map((s) => s.reached));
      const rows = global.steps
        .map(
          (s) =>
            `<tr data-step="${s.step}"><td>${s.step}. ${esc(s.name)}</td><td class="num">${s.reached}</td>` +
            `<td><div class="bar" style="width:${((100 * s.reached) / top).toFixed(1)}%"></div></td>` +
            `<td class="num">${s.conversion_from_previous == null ? "–" : (100 * s.conversion_from_previous).toFixed(1) + " %"}</td>` +
            `<td class="num">${s.drop_off == null ? "–" : s.drop_off}</td></tr>`,
        )
        .join("");
      const breakdown = f.segments
        .filter((s) => s.dimension !== "global")
        .map(
          (s) =>
            `<tr data-segment="${esc(s.dimension)}=${esc(s.dimension_value)}"><td>${esc(s.dimension)}</td><td>${esc(s.dimension_value)}</td><td class="num">${s.entered}</td>` +
            `<td class="num">${s.converted}</td><td class="num">${s.conversion_rate == null ? "–" : (100 * s.conversion_rate).toFixed(1) + " %"}</td></tr>`,
        )
        .join("");
      const alerts = f.alerts.map((a) => `<li class="alert ${a.status}">⚠ ${esc(a.metric)} ${a.status} since ${fmtTime(a.opened_window_start)}</li>`).join("");
      card.innerHTML =
        `<h3>${esc(f.funnel)}: ${global.entered} entered, ${global.converted} converted` +
        ` (${global.conversion_rate == null ? "–" : (100 * global.conversion_rate).toFixed(1) + " %"}), ${global.dropped} dropped, ${global.excluded} excluded</h3>` +
        (alerts ? `<ul class="alerts">${alerts}</ul>` : "") +
        `<table class="steps"><thead><tr><th>step</th><th>reached (attempts)</th><th>share of step 1</th><th>conversion from previous</th><th>drop-off to next (attempts)</th></tr></thead><tbody>${rows}</tbody></table>` +
        (breakdown
          ? `<details><summary>breakdowns</summary><table class="breakdown"><thead><tr><th>dimension</th><th>value</th><th>entered</th><th>converted</th><th>conversion</th></tr></thead><tbody>${breakdown}</tbody></table></details>`
          : "");
      target.appendChild(card);
    });
  }

  function renderAlerts(target, data) {
    if (!data.alerts.length) return;
    const rows = data.alerts
      .map(
        (a) =>
          `<tr class="alert ${a.status}" data-alert="${esc(a.alert_id)}"><td>${a.status}</td><td>${a.severity}</td><td>${esc(a.metric)}</td>` +
          `<td>${esc(a.dimension)} = ${esc(a.dimension_value)}</td><td>${fmtTime(a.opened_window_start)}</td>` +
          `<td>${a.resolved_at == null ? "–" : fmtTime(a.resolved_at)}</td><td class="num">${fmtNum(a.value, 4)}</td>` +
          `<td class="num">${fmtNum(a.baseline, 4)}</td><td class="num">${fmtNum(a.peak_z, 1)}</td><td>${a.chart ? "marked on " + a.chart : a.source === "funnel" ? "on its funnel" : "–"}</td></tr>`,
      )
      .join("");
    target.innerHTML =
      `<table class="alerts"><thead><tr><th>status</th><th>severity</th><th>metric</th><th>segment</th><th>opened (window start)</th>` +
      `<th>resolved</th><th>value</th><th>baseline</th><th>peak z</th><th>chart</th></tr></thead><tbody>${rows}</tbody></table>`;
  }

  // Unique users over the range: the union of the minute windows' sketches (estimate ± bounds).
  function renderUniques(target, u) {
    const fmt = (v) => Math.round(v).toLocaleString("en-US");
    const rows = u.rows
      .map(
        (r) =>
          `<tr data-uniques="${esc(r.dimension)}=${esc(r.value)}"><td>${r.dimension === "global" ? "all users" : esc(r.dimension) + " = " + esc(r.value)}</td>` +
          `<td class="num">${r.windows ? "≈ " + fmt(r.estimate) : "–"}</td>` +
          `<td class="num">${r.windows ? fmt(r.lower_bound) + " – " + fmt(r.upper_bound) : "–"}</td><td class="num">${r.windows}</td></tr>`,
      )
      .join("");
    const std = u.rows.length ? u.rows[0].std_devs : 2;
    target.innerHTML =
      `<table class="uniques"><thead><tr><th>segment</th><th>unique users</th><th>bounds (${std} std. dev.)</th><th>minute windows merged</th></tr></thead>` +
      `<tbody>${rows}</tbody></table>` +
      `<p class="totals">${fmtTime(u.from)} – ${fmtTime(u.to)}: a user active in many minutes counts once (summing the per-minute active users would not).</p>`;
  }

  function renderRealtime(rt) {
    state.realtime = rt;
    const set = (k, v) => {
      const el = document.querySelector(`[data-rt="${k}"]`);
      if (el) el.textContent = v;
    };
    if (!rt.configured) {
      ["active_users_1m", "active_users_5m", "events_per_second"].forEach((k) => set(k, "–"));
      setNote("realtime", "The right-now tier is off (the dashboard runs without Redis).");
    } else if (rt.error) {
      ["active_users_1m", "active_users_5m", "events_per_second"].forEach((k) => set(k, "–"));
      setNote("realtime", `Redis is unreachable: ${rt.error}`);
    } else {
      set("active_users_1m", String(rt.active_users_1m));
      set("active_users_5m", String(rt.active_users_5m));
      set("events_per_second", rt.events_per_second.toFixed(1));
      setNote(
        "realtime",
        rt.fed
          ? "Counted by the collector as it acknowledges events (HyperLogLog, ±0.81 %), ahead of the final windows."
          : "No collector feeds these counters (nothing written in the last 5 minutes): start `uxstream collect`.",
      );
    }
  }

  async function load() {
    state.loads += 1;
    let response;
    try {
      response = await fetch(`/api/data?${query()}`, { credentials: "same-origin" });
    } catch (e) {
      showError(`The dashboard server is unreachable: ${e}`);
      return;
    }
    if (!response.ok) {
      const text = (response.headers.get("content-type") || "").includes("json") ? (await response.json()).error : await response.text();
      state.errors.push(text);
      showError(response.status === 503 ? `Database unreachable: ${text}` : text);
      return;
    }
    showError("");
    render(await response.json());
  }

  function listen() {
    if (state.source) state.source.close();
    const source = (state.source = new EventSource(`/api/events?${query()}`));
    source.addEventListener("windows", (e) => {
      const marker = JSON.parse(e.data).marker;
      if (!state.data || state.data.marker !== marker || !$("#error").hidden) load();
    });
    source.addEventListener("realtime", (e) => renderRealtime(JSON.parse(e.data)));
    source.addEventListener("db-error", (e) => {
      const message = JSON.parse(e.data).error;
      state.errors.push(message);
      showError(`Database unreachable: ${message}`);
    });
  }

  function onChange() {
    ["dimension", "range", "tz"].forEach((k) => {
      const el = document.getElementById(k);
      if (el) params[k] = el.value;
    });
    if (embedded) {
      render(embedded.data[params.dimension]);
      return;
    }
    const q = new URLSearchParams(params);
    if (token) q.set("token", token);
    history.replaceState(null, "", `?${q}`);
    load();
    listen();
  }

  document.getElementById("controls").addEventListener("change", onChange);
  if (embedded) {
    document.getElementById("range").disabled = true;
    render(embedded.data[params.dimension]);
  } else {
    load().then(listen);
  }
})();
