// Hosting pages of the Tailor console: models, endpoint configs, endpoints (lists, details, live charts, try it).
"use strict";
(function () {
  const KINDS = {
    models: { title: "Models", api: "/api/v1/models", list: "Models", name: "ModelName", status: null },
    "endpoint-configs": { title: "Endpoint configs", api: "/api/v1/endpoint-configs", list: "EndpointConfigs", name: "EndpointConfigName", status: null },
    endpoints: { title: "Endpoints", api: "/api/v1/endpoints", list: "Endpoints", name: "EndpointName", status: "EndpointStatus" },
  };
  const scalar = (v) => v === null || ["string", "number", "boolean"].includes(typeof v);

  function listPage(kind, ui) {
    const k = KINDS[kind];
    const body = ui.h("tbody", { id: kind + "-body" });
    ui.main.replaceChildren(ui.h("h1", {}, k.title), ui.h("div", { class: "card" }, ui.h("table", { id: kind },
      ui.h("thead", {}, ui.h("tr", {}, ui.h("th", {}, "Name"), k.status ? ui.h("th", {}, "Status") : null, ui.h("th", {}, "Created"))), body)));
    return ui.live(async () => {
      const page = await ui.api(k.api + "?MaxResults=100");
      const items = page[k.list] || [];
      body.replaceChildren(...items.map((it) => ui.h("tr", { "data-name": it[k.name] },
        ui.h("td", {}, ui.h("a", { href: `#/${kind}/${ui.enc(it[k.name])}` }, it[k.name])),
        k.status ? ui.h("td", {}, ui.badge(it[k.status])) : null,
        ui.h("td", {}, ui.when(it.CreationTime)))));
      if (!items.length) body.replaceChildren(ui.h("tr", {}, ui.h("td", { colspan: 3, class: "muted" }, `No ${k.title.toLowerCase()} yet.`)));
      return k.status !== null && items.some((it) => ["Creating", "Updating", "Deleting"].includes(it[k.status]));
    });
  }

  function detailPage(kind, name, ui) {
    const k = KINDS[kind];
    const title = ui.h("h1", {}, name);
    const facts = ui.h("div", { class: "card" });
    const parts = ui.h("div", { class: "card" });
    const extra = ui.h("div", {});
    ui.main.replaceChildren(ui.h("p", {}, ui.h("a", { href: "#/" + kind }, "← " + k.title)), title, extra,
      ui.h("div", { class: "grid2" }, facts, parts));
    let first = true;
    return ui.live(async () => {
      const d = await ui.api(`${k.api}/${ui.enc(name)}`);
      title.replaceChildren(name, k.status ? ui.badge(d[k.status]) : null);
      facts.replaceChildren(ui.h("h2", {}, "Details"), ui.kv(Object.entries(d).filter(([key, v]) => scalar(v) && key !== k.status)
        .map(([key, v]) => [key, /Time$/.test(key) ? ui.when(v) : String(v)])));
      parts.replaceChildren(...Object.entries(d).filter(([, v]) => !scalar(v)).flatMap(([key, v]) =>
        [ui.h("h2", {}, key), nested(v, ui)]));
      if (d.FailureReason) extra.replaceChildren(ui.h("div", { class: "failure" }, ui.h("strong", {}, "Failure reason"), d.FailureReason));
      if (kind === "endpoints" && first) { first = false; endpointExtras(name, d, extra, ui); }
      return k.status !== null && ["Creating", "Updating", "Deleting"].includes(d[k.status]);
    });
  }

  // Objects and lists of objects as definition lists, links where a value names another resource.
  function nested(v, ui) {
    const link = (key, val) => {
      const to = { ModelName: "models", EndpointConfigName: "endpoint-configs", EndpointName: "endpoints" }[key];
      return to ? ui.h("a", { href: `#/${to}/${ui.enc(val)}` }, val) : /Time$/.test(key) ? ui.when(val) : String(val);
    };
    if (Array.isArray(v)) return ui.h("div", {}, v.map((item) => ui.h("div", { style: "margin-bottom:10px" }, nested(item, ui))));
    if (v && typeof v === "object") {
      return ui.kv(Object.entries(v).map(([key, val]) => [key, scalar(val) ? link(key, val) : nested(val, ui)]));
    }
    return ui.h("span", {}, String(v));
  }

  function endpointExtras(name, d, host, ui) {
    const charts = ["invocations", "latency", "errors", "batch"].map((id) => ui.h("div", { id: "chart-" + id }));
    const file = ui.h("input", { type: "file", id: "tryit-file", accept: "image/*" });
    const preview = ui.h("img", { id: "tryit-preview", alt: "", hidden: true });
    const preds = ui.h("div", { class: "preds", id: "tryit-result" }, ui.h("span", { class: "muted" }, "Choose an image to classify it."));
    file.addEventListener("change", async () => {
      const f = file.files[0];
      if (!f) return;
      preview.src = URL.createObjectURL(f);
      preview.hidden = false;
      preds.replaceChildren(ui.h("span", { class: "muted" }, "Classifying…"));
      try {
        const out = await ui.api(`/endpoints/${ui.enc(name)}/invocations?verbose=1&top_k=5`, {
          method: "POST", body: f, headers: { "Content-Type": f.type || "application/x-image", Accept: "application/json" },
        });
        preds.replaceChildren(...topPredictions(out, 5).map(([label, p]) => ui.h("div", { class: "pred" },
          ui.h("span", {}, label), ui.h("div", { class: "bar" }, ui.h("span", { style: `width:${(p * 100).toFixed(1)}%` })),
          ui.h("span", { class: "num" }, (p * 100).toFixed(1) + "%"))));
      } catch (err) {
        preds.replaceChildren(ui.h("div", { class: "failure" }, err.message));
      }
    });
    host.replaceChildren(
      ui.h("div", { class: "card" }, ui.h("h2", {}, "Try it"), ui.h("div", { class: "tryit" }, ui.h("div", {}, file, ui.h("div", { style: "margin-top:8px" }, preview)), preds)),
      ui.h("div", { class: "grid2" }, ...charts.map((c) => ui.h("div", { class: "card" }, c))),
      ui.h("div", { style: "height:16px" }));
    const mine = () => document.body.contains(host);
    const tick = async () => {
      if (!mine()) return;
      try {
        const m = await ui.api(`/api/v1/endpoints/${ui.enc(name)}/metrics`);
        drawEndpointMetrics(m, charts);
      } catch (err) { ui.failed(err); }
      if (mine()) setTimeout(tick, 2000);
    };
    tick();
  }

  // The answer of an image-classification endpoint: a list of probabilities (SageMaker's shape), or
  // objects carrying labels; either way the top `n` as [label, probability].
  function topPredictions(out, n) {
    let pairs;
    if (out && Array.isArray(out.top_k)) pairs = out.top_k.map((p) => [p.label, p.probability]);
    else if (Array.isArray(out) && out.length && typeof out[0] === "number") pairs = out.map((p, i) => [`class ${i}`, p]);
    else if (out && Array.isArray(out.predictions)) pairs = out.predictions.map((p) => [p.label, p.probability]);
    else if (out && Array.isArray(out.probabilities)) pairs = out.probabilities.map((p, i) => [(out.labels || [])[i] || `class ${i}`, p]);
    else pairs = Object.entries(out || {}).filter(([, v]) => typeof v === "number");
    return pairs.sort((a, b) => b[1] - a[1]).slice(0, n);
  }

  // Per-minute points of every variant, summed (counts) or invocation-weighted (latency, batch size) per minute.
  // Percentiles and batch size are drawn when the server reports them; otherwise mean and max latency.
  function drawEndpointMetrics(m, [inv, lat, errs, batch]) {
    const minutes = new Map();
    for (const p of m.Metrics || []) {
      const t = new Date(p.Timestamp).getTime() / 1000;
      const acc = minutes.get(t) || { n: 0 };
      const n = p.Invocations || 0;
      for (const [k, v] of Object.entries(p)) {
        if (typeof v !== "number") continue;
        if (/Invocations$|Errors$/.test(k)) acc[k] = (acc[k] || 0) + v;
        else if (/^Max/.test(k)) acc[k] = Math.max(acc[k] || 0, v);
        else { acc[k] = (acc[k] || 0) + v * Math.max(n, 1); acc["w_" + k] = (acc["w_" + k] || 0) + Math.max(n, 1); }
      }
      acc.n += n;
      minutes.set(t, acc);
    }
    const rows = [...minutes.entries()].sort((a, b) => a[0] - b[0]);
    const val = (acc, k) => (acc["w_" + k] ? acc[k] / acc["w_" + k] : acc[k]);
    const pts = (k, scale = 1) => rows.filter(([, a]) => a[k] !== undefined).map(([t, a]) => [t, val(a, k) * scale]);
    const ms = 1 / 1000; // the server reports microseconds
    const xf = (v) => new Date(v * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const has = (k) => rows.some(([, a]) => a[k] !== undefined);
    TailorCharts.line(inv, { title: "Invocations per minute", series: [{ name: "Invocations", points: pts("Invocations") }], xFormat: xf, yMin: 0 });
    const latency = has("ModelLatencyP50")
      ? [{ name: "p50", points: pts("ModelLatencyP50", ms) }, { name: "p99", points: pts("ModelLatencyP99", ms) }]
      : [{ name: "mean", points: pts("ModelLatency", ms) }, { name: "max", points: pts("MaxModelLatency", ms) }];
    TailorCharts.line(lat, { title: "ModelLatency (ms)", series: latency, xFormat: xf, yMin: 0 });
    TailorCharts.line(errs, { title: "Errors per minute", series: [{ name: "4XX", color: "#d97706", points: pts("Invocation4XXErrors") }, { name: "5XX", color: "#dc2626", points: pts("Invocation5XXErrors") }], xFormat: xf, yMin: 0 });
    TailorCharts.line(batch, has("BatchSize")
      ? { title: "Realised batch size", series: [{ name: "mean batch", color: "#7c3aed", points: pts("BatchSize") }], xFormat: xf, yMin: 0 }
      : { title: "Invocations per instance", series: [{ name: "per instance", color: "#7c3aed", points: pts("InvocationsPerInstance") }], xFormat: xf, yMin: 0 });
  }

  window.TailorHosting = { listPage, detailPage, topPredictions };
})();
