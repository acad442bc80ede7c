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
    if (kind === "models") return modelsList(ui);
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

  const bytes = (n) => (n >= 1048576 ? (n / 1048576).toFixed(1) + " MB" : Math.max(1, Math.round(n / 1024)) + " kB");
  // "1×28×28" reads as channels × height × width; grey or colour said in words.
  const shapeText = (s) => (Array.isArray(s) ? `${s[1]}×${s[2]} ${s[0] === 1 ? "grayscale" : s[0] === 3 ? "RGB" : s[0] + "-channel"}` : "–");

  // Models with what tells them apart: the job that trained each, its input, classes, size and who serves it.
  function modelsList(ui) {
    const body = ui.h("tbody", { id: "models-body" });
    const cols = ["Name", "Training job", "Input", "Classes", "Size", "Endpoints", "Created"];
    ui.main.replaceChildren(ui.h("h1", {}, "Models"), ui.h("div", { class: "card" }, ui.h("table", { id: "models" },
      ui.h("thead", {}, ui.h("tr", {}, ...cols.map((c) => ui.h("th", {}, c)))), body)));
    return ui.live(async () => {
      const items = (await ui.api("/console/api/models?MaxResults=100")).Models || [];
      const list = (names, to) => (names && names.length
        ? names.map((n, i) => [i ? ", " : "", ui.h("a", { href: `#/${to}/${ui.enc(n)}` }, n)]).flat()
        : [ui.h("span", { class: "muted" }, names ? "none" : "–")]);
      body.replaceChildren(...items.map((m) => ui.h("tr", { "data-name": m.ModelName },
        ui.h("td", {}, ui.h("a", { href: `#/models/${ui.enc(m.ModelName)}` }, m.ModelName)),
        ui.h("td", { class: "job" }, ...list(m.SourceTrainingJob ? [m.SourceTrainingJob] : m.SourceTrainingJob === null ? [] : null, "jobs")),
        ui.h("td", { class: "shape" }, shapeText(m.ImageShape)),
        ui.h("td", { class: "classes", title: (m.ClassNames || []).join(", ") },
          m.NumClasses == null ? "–" : `${m.NumClasses}${m.ClassNames ? ": " + m.ClassNames.slice(0, 4).join(", ") + (m.ClassNames.length > 4 ? ", …" : "") : ""}`),
        ui.h("td", { class: "size num" }, m.SizeBytes == null ? "–" : bytes(m.SizeBytes)),
        ui.h("td", { class: "endpoints" }, ...list(m.Endpoints, "endpoints")),
        ui.h("td", {}, ui.when(m.CreationTime)))));
      if (!items.length) body.replaceChildren(ui.h("tr", {}, ui.h("td", { colspan: cols.length, class: "muted" }, "No models yet.")));
      return false;
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
    const preview = ui.h("canvas", { id: "tryit-preview", hidden: true });
    const note = ui.h("div", { class: "tryit-note muted", id: "tryit-note" });
    const preds = ui.h("div", { class: "preds", id: "tryit-result" }, ui.h("span", { class: "muted" }, "Choose an image to classify it."));
    const input = ui.api(`/console/api/endpoints/${ui.enc(name)}/input`).then((r) => (r.Variants[0] || {}).ImageShape).catch(() => null);
    file.addEventListener("change", async () => {
      const f = file.files[0];
      if (!f) return;
      preds.replaceChildren(ui.h("span", { class: "muted" }, "Classifying…"));
      const shape = await input;
      try { note.textContent = await showAsModelSees(f, shape, preview); } catch (err) { note.textContent = ""; }
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
    // The runtime log, tailed live like a job's: worker starts, model loads, crashes, restarts, failed calls.
    const log = ui.h("pre", { class: "log", id: "endpoint-log" });
    let logOffset = 0;
    host.replaceChildren(
      ui.h("div", { class: "card" }, ui.h("h2", {}, "Try it"), ui.h("div", { class: "tryit" }, ui.h("div", {}, file, ui.h("div", { style: "margin-top:8px" }, preview), note), preds)),
      ui.h("div", { class: "grid2" }, ...charts.map((c) => ui.h("div", { class: "card" }, c))),
      ui.h("div", { class: "card", style: "margin-top:16px" }, ui.h("h2", {}, "Runtime log"), log),
      ui.h("div", { style: "height:16px" }));
    const mine = () => document.body.contains(host);
    const tick = async () => {
      if (!mine()) return;
      try {
        const [m, chunk] = await Promise.all([
          ui.api(`/api/v1/endpoints/${ui.enc(name)}/metrics`),
          ui.api(`/api/v1/endpoints/${ui.enc(name)}/logs?offset=${logOffset}`),
        ]);
        drawEndpointMetrics(m, charts);
        if (chunk.Text) {
          const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
          log.textContent = (log.textContent + chunk.Text).slice(-200000); // the tail: 200 kB keeps the DOM light
          if (atEnd) log.scrollTop = log.scrollHeight;
        }
        logOffset = chunk.NextOffset;
      } catch (err) { ui.failed(err); }
      if (mine()) setTimeout(tick, 2000);
    };
    tick();
  }

  // Draws the image as the server feeds it to the model (SageMaker's rule: resized to the model's height × width
  // without keeping the aspect ratio, converted to grey with ITU-R 601 luma or to RGB) and says what changed.
  async function showAsModelSees(file, shape, canvas) {
    const img = await createImageBitmap(file);
    const [c, h, w] = shape || [3, img.height, img.width];
    const full = new OffscreenCanvas(img.width, img.height).getContext("2d");
    full.drawImage(img, 0, 0);
    const px = full.getImageData(0, 0, img.width, img.height).data;
    let colour = false;
    for (let i = 0; i < px.length && !colour; i += 4) colour = px[i] !== px[i + 1] || px[i + 1] !== px[i + 2];
    canvas.width = w; canvas.height = h;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0, w, h);
    if (c === 1) {
      const d = ctx.getImageData(0, 0, w, h);
      for (let i = 0; i < d.data.length; i += 4) {
        const y = Math.round(0.299 * d.data[i] + 0.587 * d.data[i + 1] + 0.114 * d.data[i + 2]);
        d.data[i] = d.data[i + 1] = d.data[i + 2] = y;
      }
      ctx.putImageData(d, 0, 0);
    }
    canvas.hidden = false;
    canvas.title = `What the model sees: ${w}×${h}`;
    if (!shape) return "";
    const changes = [];
    if (img.width !== w || img.height !== h) {
      const kept = Math.abs(img.width / img.height - w / h) < 0.01;
      changes.push(`resized ${img.width}×${img.height} → ${w}×${h}${kept ? "" : " (aspect ratio not kept)"}`);
    }
    if (c === 1 && colour) changes.push("colour → grayscale");
    if (c === 3 && !colour) changes.push("grayscale → RGB");
    const model = `${w}×${h} ${c === 1 ? "grayscale" : "RGB"}`;
    return changes.length
      ? `The model takes ${model} images: ${changes.join(", ")}. Shown as the model sees it; predictions on images unlike the training data may mean little.`
      : `Matches the model's input (${model}).`;
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
    // Minutes without a row had no traffic: count charts show them as 0, latency and batch size leave a gap.
    const known = [...minutes.keys()];
    if (known.length) {
      for (let t = Math.min(...known); t <= Math.max(...known); t += 60) if (!minutes.has(t)) minutes.set(t, { n: 0, Invocations: 0, Invocation4XXErrors: 0, Invocation5XXErrors: 0 });
    }
    const rows = [...minutes.entries()].sort((a, b) => a[0] - b[0]);
    const val = (acc, k) => (acc["w_" + k] ? acc[k] / acc["w_" + k] : acc[k]);
    const pts = (k, scale = 1) => rows.filter(([, a]) => a[k] !== undefined).map(([t, a]) => [t, val(a, k) * scale]);
    const time = { xFormat: (v) => new Date(v * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }), xTicks: TailorCharts.timeTicks, gap: 60 };
    const ms = 1 / 1000; // the server reports microseconds
    const has = (k) => rows.some(([, a]) => a[k] !== undefined);
    TailorCharts.line(inv, { title: "Invocations per minute", series: [{ name: "Invocations", points: pts("Invocations") }], ...time, yMin: 0 });
    const latency = has("ModelLatencyP50")
      ? [{ name: "p50", points: pts("ModelLatencyP50", ms) }, { name: "p99", points: pts("ModelLatencyP99", ms) }]
      : [{ name: "mean", points: pts("ModelLatency", ms) }, { name: "max", points: pts("MaxModelLatency", ms) }];
    TailorCharts.line(lat, { title: "ModelLatency (ms)", series: latency, ...time, yMin: 0 });
    TailorCharts.line(errs, { title: "Errors per minute", series: [{ name: "4XX", color: "#d97706", points: pts("Invocation4XXErrors") }, { name: "5XX", color: "#dc2626", points: pts("Invocation5XXErrors") }], ...time, yMin: 0 });
    TailorCharts.line(batch, has("BatchSize")
      ? { title: "Realised batch size", series: [{ name: "mean batch", color: "#7c3aed", points: pts("BatchSize") }], ...time, yMin: 0 }
      : { title: "Invocations per instance", series: [{ name: "per instance", color: "#7c3aed", points: pts("InvocationsPerInstance") }], ...time, yMin: 0 });
  }

  window.TailorHosting = { listPage, detailPage, topPredictions };
})();
