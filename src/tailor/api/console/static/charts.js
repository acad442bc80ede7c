// Plain SVG line charts for the Tailor console: no library, no network.
// TailorCharts.line(el, {title, series: [{name, points: [[x, y], ...]}], xFormat, xTicks, yFormat, yMin, yMax, gap})
// `gap`: the largest x step a line joins; a longer one (minutes without traffic) leaves the line broken.
// `scatter`: dots only, no line (e.g. an objective against a hyperparameter's values); `xLog`: log-scaled x.
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2"];
  const W = 560, H = 220, M = { top: 12, right: 16, bottom: 28, left: 52 };

  function svg(tag, attrs, parent) {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    if (parent) parent.appendChild(el);
    return el;
  }

  // 1-2-5 steps so axis labels read as round numbers.
  function ticks(lo, hi, count) {
    if (!(hi > lo)) { hi = lo + 1; }
    const raw = (hi - lo) / count, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }

  function fmt(v) {
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(0) + "k";
    if (a >= 100 || Number.isInteger(v)) return String(Math.round(v));
    return v.toFixed(a < 1 ? 2 : 1);
  }

  // Clock-aligned ticks for epoch seconds: whole 1/2/5/10/15/30/60-minute (then hour) steps, at most ~6.
  const TIME_STEPS = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  function timeTicks(lo, hi) {
    const step = TIME_STEPS.find((s) => (hi - lo) / s <= 6) || 86400 * Math.ceil((hi - lo) / 86400 / 6);
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) out.push(t);
    return out;
  }

  function line(el, opts) {
    const series = (opts.series || []).filter((s) => s.points && s.points.length);
    const total = series.reduce((n, s) => n + s.points.length, 0);
    el.replaceChildren();
    el.classList.add("chart");
    el.dataset.points = String(total);
    const head = document.createElement("div");
    head.className = "chart-head";
    const title = document.createElement("span");
    title.className = "chart-title";
    title.textContent = opts.title || "";
    head.appendChild(title);
    series.forEach((s, i) => {
      const key = document.createElement("span");
      key.className = "chart-key";
      key.style.setProperty("--c", s.color || COLORS[i % COLORS.length]);
      key.textContent = s.name;
      head.appendChild(key);
    });
    el.appendChild(head);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": opts.title || "chart" }, el);
    if (!total) {
      svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "chart-empty" }, root).textContent =
        opts.empty || "No data yet";
      return;
    }
    const lx = (x) => (opts.xLog ? Math.log10(x) : x);
    const xs = series.flatMap((s) => s.points.map((p) => lx(p[0])));
    const ys = series.flatMap((s) => s.points.map((p) => p[1]));
    let x0 = Math.min(...xs), x1 = Math.max(...xs);
    if (x1 === x0) { const pad = opts.gap || 1; x0 -= pad; x1 += pad; }
    if (opts.scatter) { const pad = (x1 - x0) * 0.04; x0 -= pad; x1 += pad; } // no dot cut in half at an edge
    let y0 = opts.yMin !== undefined ? opts.yMin : Math.min(...ys);
    let y1 = opts.yMax !== undefined ? Math.max(opts.yMax, ...ys) : Math.max(...ys);
    if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
    const yt = ticks(y0, y1, 4);
    y0 = Math.min(y0, yt[0]); y1 = Math.max(y1, yt[yt.length - 1]);
    const pw = W - M.left - M.right, ph = H - M.top - M.bottom;
    const sx = (x) => M.left + ((lx(x) - x0) / (x1 - x0)) * pw;
    const sy = (y) => M.top + ph - ((y - y0) / (y1 - y0)) * ph;
    const yf = opts.yFormat || fmt, xf = opts.xFormat || fmt;
    for (const t of yt) {
      svg("line", { x1: M.left, x2: W - M.right, y1: sy(t), y2: sy(t), class: "grid" }, root);
      svg("text", { x: M.left - 6, y: sy(t) + 4, "text-anchor": "end", class: "tick" }, root).textContent = yf(t);
    }
    const xt = opts.xTicks ? opts.xTicks(x0, x1) : opts.xLog ? ticks(x0, x1, 5).map((t) => Math.pow(10, t)) : ticks(x0, x1, 5);
    for (const t of xt) {
      if (lx(t) < x0 - 1e-9 || lx(t) > x1 + 1e-9) continue;
      svg("text", { x: sx(t), y: H - 8, "text-anchor": "middle", class: "tick" }, root).textContent = xf(t);
    }
    svg("line", { x1: M.left, x2: W - M.right, y1: M.top + ph, y2: M.top + ph, class: "axis" }, root);
    series.forEach((s, i) => {
      const color = s.color || COLORS[i % COLORS.length];
      const joined = (j) => j > 0 && !(opts.gap && s.points[j][0] - s.points[j - 1][0] > opts.gap);
      const d = s.points.map((p, j) => `${joined(j) ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
      if (!opts.scatter) svg("path", { d, fill: "none", stroke: color, "stroke-width": 2, class: "series" }, root);
      if (s.points.length <= 60 || opts.gap || opts.scatter) {  // broken lines need their dots: a lone minute has no segment
        for (const p of s.points) {
          const dot = svg("circle", { cx: sx(p[0]), cy: sy(p[1]), r: p[2] ? 5 : 3, fill: color, class: p[2] ? "dot best" : "dot" }, root);
          svg("title", {}, dot).textContent = `${s.name}: ${yf(p[1])} at ${xf(p[0])}`;
        }
      }
    });
  }

  window.TailorCharts = { line, fmt, timeTicks };
})();
