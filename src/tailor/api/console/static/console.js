// The Tailor console: a hash-routed single page over the server's JSON API, signed in with a bearer token.
"use strict";
(function () {
  const TOKEN_KEY = "tailor.token";
  const POLL_MS = 2000; // live pages refresh every 2 s: a job's epoch lasts seconds, a sample every 0.5-5 s
  const TERMINAL = ["Completed", "Failed", "Stopped"];
  const main = document.getElementById("main");
  let timer = null; // the one live-refresh timer of the current page
  let generation = 0; // bumps on every navigation so stale responses of the previous page are dropped

  // ---- small helpers ----------------------------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "class") el.className = v;
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const enc = encodeURIComponent;
  const badge = (s) => h("span", { class: "badge " + (s || "") }, s || "—");
  const when = (t) => (t ? new Date(t).toLocaleString() : "—");
  const num = (v, d = 4) => (v === undefined || v === null ? "—" : (+v).toFixed(d));
  const bytes = (b) => (b >= 1 << 30 ? (b / (1 << 30)).toFixed(2) + " GiB" : (b / (1 << 20)).toFixed(0) + " MiB");
  function duration(a, b) {
    if (!a) return "—";
    const s = Math.max(0, Math.round(((b ? new Date(b) : new Date()) - new Date(a)) / 1000));
    return s >= 3600 ? `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m` : s >= 60 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${s}s`;
  }
  // What ends training, in words: under a time budget `epochs` is only an upper bound (as the job log says).
  function trainsFor(hp) {
    if (!hp.architecture) return ""; // a user's own training command: its hyperparameters are its own
    const net = hp.architecture === "resnet" ? `ResNet-${hp.num_layers}` : (hp.architecture || "");
    const stop = hp.time_budget ? `${Number(hp.time_budget)} s of training (time_budget; epochs ${hp.epochs} is an upper bound)`
      : `${hp.epochs} epochs`;
    return h("p", { class: "muted", id: "trains-for" }, `${net} trains for ${stop}.`);
  }
  function kv(pairs) {
    return h("dl", { class: "kv" }, pairs.filter((p) => p[1] !== undefined).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  }
  function showError(msg) {
    const el = document.getElementById("error");
    el.textContent = msg || "";
    el.hidden = !msg;
  }

  // ---- the API: every call carries the bearer token; errors become one readable line ------------------
  class ApiError extends Error {
    constructor(status, code, message) {
      super(`${status} ${code}: ${message}`);
      this.status = status;
      this.code = code;
    }
  }
  async function api(path, opts = {}) {
    const headers = Object.assign({ Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY) }, opts.headers || {});
    const res = await fetch(path, Object.assign({}, opts, { headers }));
    const text = await res.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
    if (!res.ok) {
      const err = (body && (body.error || body)) || {};
      const code = err.code || err.__type || (res.status === 403 ? "AccessDenied" : "Error");
      throw new ApiError(res.status, code, err.message || err.Message || text || res.statusText);
    }
    return body;
  }
  // The token itself is bad (unknown, expired, revoked): AWS answers these 403 too, told apart by code.
  const AUTH_CODES = ["UnrecognizedClientException", "MissingAuthenticationTokenException", "InvalidSignatureException", "ExpiredTokenException"];
  const badToken = (err) => err instanceof ApiError && (err.status === 401 || AUTH_CODES.includes(err.code));
  function failed(err) {
    if (badToken(err)) return signOut("Your token is invalid, expired or revoked: sign in again.");
    showError(err instanceof ApiError && err.status === 403 ? `Access denied — ${err.message}` : String(err.message || err));
  }

  // ---- navigation -------------------------------------------------------------------------------------
  const routes = [
    [/^#\/jobs\/(.+)$/, jobPage, "jobs"],
    [/^#\/jobs$/, jobsPage, "jobs"],
    [/^#\/tuning\/(.+)$/, tuningPage, "tuning"],
    [/^#\/tuning$/, tuningJobsPage, "tuning"],
    [/^#\/models\/(.+)$/, modelPage, "models"],
    [/^#\/models$/, modelsPage, "models"],
    [/^#\/endpoint-configs\/(.+)$/, configPage, "endpoint-configs"],
    [/^#\/endpoint-configs$/, configsPage, "endpoint-configs"],
    [/^#\/endpoints\/(.+)$/, endpointPage, "endpoints"],
    [/^#\/endpoints$/, endpointsPage, "endpoints"],
    [/^#\/transform-jobs\/(.+)$/, transformJobPage, "transform-jobs"],
    [/^#\/transform-jobs$/, transformJobsPage, "transform-jobs"],
  ];
  function route() {
    clearTimeout(timer);
    generation += 1;
    showError("");
    if (!sessionStorage.getItem(TOKEN_KEY)) return signInPage();
    const hash = location.hash || "#/jobs";
    for (const [re, page, section] of routes) {
      const m = hash.match(re);
      if (!m) continue;
      document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.dataset.section === section));
      main.replaceChildren();
      return page(...m.slice(1).map(decodeURIComponent));
    }
    location.hash = "#/jobs";
  }
  // Runs `fn` now and every POLL_MS while it returns true and the page is still the current one.
  function live(fn) {
    const mine = generation;
    const tick = async () => {
      if (mine !== generation) return;
      let again = false;
      try { again = await fn(); } catch (err) { failed(err); again = !(err instanceof ApiError && err.status < 500); }
      if (again && mine === generation) timer = setTimeout(tick, POLL_MS);
    };
    return tick();
  }

  // ---- sign in ----------------------------------------------------------------------------------------
  function signInPage() {
    document.getElementById("nav").hidden = true;
    document.getElementById("signout").hidden = true;
    document.getElementById("who").textContent = "";
    const input = h("input", { type: "password", id: "token", placeholder: "tailor_…", autocomplete: "off" });
    const form = h("form", { class: "card signin", id: "signin" },
      h("h1", {}, "Sign in"),
      h("p", { class: "muted" }, "Paste a bearer token of your access key. Get one with ",
        h("code", {}, "tailor keys token <key>"), "; the console can do what the key's policy allows."),
      input, h("button", { type: "submit" }, "Sign in"));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, tokenFrom(input.value));
      try {
        await start();
        if (!location.hash || location.hash === "#/signin") location.hash = "#/jobs"; else route();
      } catch (err) {
        sessionStorage.removeItem(TOKEN_KEY);
        showError(badToken(err) ? "That token is not valid (unknown, expired or revoked)." : String(err.message));
      }
    });
    main.replaceChildren(form);
    input.focus();
  }
  // `tailor keys token --json` prints {"Token": …, "Expiration": …}: a pasted JSON signs in with its Token.
  function tokenFrom(text) {
    const value = text.trim();
    if (!value.startsWith("{")) return value;
    try { return String(JSON.parse(value).Token || value); } catch (e) { return value; }
  }
  async function start() {
    const me = await api("/console/api/whoami");
    document.getElementById("who").textContent = `${me.UserName} · ${me.AccessKeyId}`;
    document.getElementById("nav").hidden = false;
    document.getElementById("signout").hidden = false;
    return me;
  }
  async function signOut(message) {
    try { await api("/auth/tokens", { method: "DELETE" }); } catch (e) { /* the token may already be dead */ }
    sessionStorage.removeItem(TOKEN_KEY);
    route();
    if (message) showError(message);
  }
  document.getElementById("signout").addEventListener("click", () => signOut(""));

  // ---- training jobs ----------------------------------------------------------------------------------
  const jobsState = { NameContains: "", StatusEquals: "", SortBy: "CreationTime", SortOrder: "Descending", tokens: [""] };
  function jobsPage() {
    const st = jobsState;
    const filter = h("input", { type: "text", id: "job-filter", placeholder: "Filter by name", value: st.NameContains });
    const status = h("select", { id: "job-status" }, ["", "InProgress", "Completed", "Failed", "Stopping", "Stopped"].map(
      (s) => h("option", { value: s, selected: s === st.StatusEquals }, s || "Any status")));
    const counts = h("div", { class: "counts" });
    const body = h("tbody", { id: "jobs-body" });
    const headCell = (label, key) => {
      if (!key) return h("th", {}, label);
      const arrow = st.SortBy === key ? (st.SortOrder === "Ascending" ? "▲" : "▼") : "";
      return h("th", { class: "sortable", "data-sort": key, onclick: () => {
        st.SortOrder = st.SortBy === key && st.SortOrder === "Descending" ? "Ascending" : "Descending";
        st.SortBy = key; st.tokens = [""]; jobsPage();
      } }, label, h("span", { class: "arrow" }, arrow));
    };
    const prev = h("button", { class: "ghost", id: "prev", disabled: st.tokens.length < 2, onclick: () => { st.tokens.pop(); load(); } }, "← Previous");
    const next = h("button", { class: "ghost", id: "next", disabled: true }, "Next →");
    const pageInfo = h("span", { class: "muted" });
    let debounce = null;
    filter.addEventListener("input", () => { clearTimeout(debounce); debounce = setTimeout(() => { st.NameContains = filter.value; st.tokens = [""]; load(); }, 250); });
    status.addEventListener("change", () => { st.StatusEquals = status.value; st.tokens = [""]; load(); });
    main.replaceChildren(
      h("h1", {}, "Training jobs"),
      h("div", { class: "toolbar" }, filter, status, counts),
      h("div", { class: "card" },
        h("table", { id: "jobs" },
          h("thead", {}, h("tr", {}, headCell("Name", "Name"), headCell("Status", "Status"), headCell("Created", "CreationTime"),
            headCell("Duration"), headCell("Validation acc."), headCell("Train acc."), headCell("Train loss"))),
          body),
        h("div", { class: "pager" }, pageInfo, prev, next)));
    const mine = generation;
    async function load() {
      const token = st.tokens[st.tokens.length - 1];
      const q = new URLSearchParams({ SortBy: st.SortBy, SortOrder: st.SortOrder, MaxResults: "25" });
      if (st.NameContains) q.set("NameContains", st.NameContains);
      if (st.StatusEquals) q.set("StatusEquals", st.StatusEquals);
      if (token) q.set("NextToken", token);
      const page = await api("/console/api/training-jobs?" + q);
      if (mine !== generation) return false;
      body.replaceChildren(...page.TrainingJobSummaries.map((j) => h("tr", { "data-job": j.TrainingJobName },
        h("td", {}, h("a", { href: "#/jobs/" + enc(j.TrainingJobName) }, j.TrainingJobName)),
        h("td", {}, badge(j.TrainingJobStatus), " ", j.SecondaryStatus !== j.TrainingJobStatus ? h("span", { class: "muted" }, j.SecondaryStatus) : null),
        h("td", {}, when(j.CreationTime)),
        h("td", { class: "num" }, duration(j.CreationTime, j.TrainingEndTime || (TERMINAL.includes(j.TrainingJobStatus) ? j.LastModifiedTime : null))),
        ...["validation:accuracy", "train:accuracy", "train:loss"].map((m) => j.KeyMetrics === null
          ? h("td", { class: "num muted", title: "Access denied: the key may not DescribeTrainingJob on this job" }, "denied")
          : h("td", { class: "num" }, num(j.KeyMetrics[m]))))));
      if (!page.TrainingJobSummaries.length) body.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No training jobs match.")));
      counts.replaceChildren(...Object.entries(page.StatusCounts).filter(([, n]) => n).map(([s, n]) => h("span", { class: "badge " + s }, `${s} ${n}`)));
      pageInfo.textContent = `Page ${st.tokens.length}`;
      prev.disabled = st.tokens.length < 2;
      next.disabled = !page.NextToken;
      next.onclick = () => { st.tokens.push(page.NextToken); load(); };
      return page.TrainingJobSummaries.some((j) => !TERMINAL.includes(j.TrainingJobStatus));
    }
    return live(load);
  }

  function jobPage(name) {
    const base = "/api/v1/training-jobs/" + enc(name);
    const title = h("h1", {}, name);
    const failure = h("div", { id: "failure" });
    const summary = h("div", { class: "card" });
    const hyper = h("div", { class: "card", id: "hyperparameters" });
    const channels = h("div", { class: "card", id: "channels" });
    const timeline = h("div", { class: "card", id: "timeline" });
    const acc = h("div", { id: "chart-accuracy" });
    const loss = h("div", { id: "chart-loss" });
    const cpu = h("div", { id: "chart-cpu" });
    const mem = h("div", { id: "chart-memory" });
    const gpu = h("div", { id: "chart-gpu", hidden: true });
    const log = h("pre", { class: "log", id: "log" });
    const stop = h("button", { class: "danger", id: "stop", hidden: true, onclick: async () => {
      if (!confirm(`Stop training job ${name}?`)) return;
      stop.disabled = true;
      try { await api(base + "/stop", { method: "POST" }); } catch (err) { failed(err); stop.disabled = false; }
    } }, "Stop");
    const liveTag = h("span", { class: "live", hidden: true }, "live");
    main.replaceChildren(
      h("p", {}, h("a", { href: "#/jobs" }, "← Training jobs")),
      title, failure,
      h("div", { class: "grid2" }, summary, timeline),
      h("div", { class: "grid2", style: "margin-top:16px" }, h("div", { class: "card" }, acc), h("div", { class: "card" }, loss)),
      h("div", { class: "grid2", style: "margin-top:16px" }, h("div", { class: "card" }, cpu), h("div", { class: "card" }, mem)),
      h("div", { class: "card", style: "margin-top:16px" }, gpu),
      h("div", { class: "grid2" }, hyper, channels),
      h("div", { class: "card", style: "margin-top:16px" }, h("h2", {}, "Log"), log));
    let logOffset = 0;
    const mine = generation;
    return live(async () => {
      const [d, metrics, resources, chunk] = await Promise.all([
        api(base), api(base + "/metrics"), api(base + "/resources"), api(`${base}/logs?offset=${logOffset}`),
      ]);
      if (mine !== generation) return false;
      const running = !TERMINAL.includes(d.TrainingJobStatus);
      title.replaceChildren(name, badge(d.TrainingJobStatus), h("span", { class: "muted", style: "font-size:14px;font-weight:400" }, d.SecondaryStatus), liveTag, stop);
      liveTag.hidden = !running;
      stop.hidden = d.TrainingJobStatus !== "InProgress";
      failure.replaceChildren(...(d.FailureReason ? [h("div", { class: "failure" }, h("strong", {}, "Failure reason"), d.FailureReason)] : []));
      const algo = d.AlgorithmSpecification || {};
      summary.replaceChildren(h("h2", {}, "Summary"), kv([
        ["Algorithm", algo.TrainingImage || (algo.ContainerEntrypoint || []).join(" ") || "built-in"],
        ["Created", when(d.CreationTime)], ["Started", when(d.TrainingStartTime)], ["Ended", when(d.TrainingEndTime)],
        ["Duration", duration(d.TrainingStartTime || d.CreationTime, d.TrainingEndTime)],
        ["Instance", `${(d.ResourceConfig || {}).InstanceType || "—"} × ${(d.ResourceConfig || {}).InstanceCount || 1}`],
        ["Output", (d.OutputDataConfig || {}).S3OutputPath],
        ["Model artifact", (d.ModelArtifacts || {}).S3ModelArtifacts || "—"],
        ...(d.FinalMetricDataList || []).map((m) => [m.MetricName, num(m.Value)]),
      ]));
      const trs = d.SecondaryStatusTransitions || [];
      timeline.replaceChildren(h("h2", {}, "Status transitions"), h("ol", { class: "timeline" }, trs.map((t, i) =>
        h("li", { class: i === trs.length - 1 && !running ? "last" : null }, h("strong", {}, t.Status), " ",
          h("span", { class: "when" }, when(t.StartTime), t.EndTime ? ` · ${duration(t.StartTime, t.EndTime)}` : ""),
          h("div", { class: "muted" }, t.StatusMessage)))));
      hyper.replaceChildren(h("h2", {}, "Hyperparameters"), trainsFor(d.HyperParameters || {}),
        kv(Object.entries(d.HyperParameters || {}).sort()));
      channels.replaceChildren(h("h2", {}, "Input channels"), h("table", {}, h("tbody", {}, (d.InputDataConfig || []).map((c) =>
        h("tr", {}, h("td", {}, h("strong", {}, c.ChannelName)), h("td", {}, ((c.DataSource || {}).S3DataSource || {}).S3Uri),
          h("td", { class: "muted" }, c.ContentType || ""))))));
      drawMetrics(metrics.Metrics, acc, loss);
      drawResources(resources.Samples, cpu, mem, gpu);
      if (chunk.Text) {
        const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        log.textContent = (log.textContent + chunk.Text).slice(-200000); // the tail: 200 kB keeps the DOM light
        if (atEnd) log.scrollTop = log.scrollHeight;
      }
      logOffset = chunk.NextOffset;
      return running || !chunk.Complete;
    });
  }

  // Curves per epoch; a metric without epochs is plotted against its sample index.
  function drawMetrics(points, accEl, lossEl) {
    const by = {};
    for (const p of points) (by[p.MetricName] = by[p.MetricName] || []).push(p);
    const series = (names) => names.filter((n) => by[n]).map((n) => ({
      name: n, points: by[n].map((p, i) => [p.Epoch === null || p.Epoch === undefined ? i : p.Epoch, p.Value]),
    }));
    const names = Object.keys(by).sort();
    const accNames = names.filter((n) => /acc/i.test(n));
    const lossNames = names.filter((n) => !/acc/i.test(n) && !/time|throughput|speed/i.test(n));
    const epochTicks = (a, b) => { const out = []; const step = Math.max(1, Math.ceil((b - a) / 8)); for (let e = Math.ceil(a); e <= b; e += step) out.push(e); return out; };
    TailorCharts.line(accEl, { title: "Accuracy per epoch", series: series(accNames), xTicks: epochTicks, yFormat: (v) => v.toFixed(2) });
    TailorCharts.line(lossEl, { title: "Loss per epoch", series: series(lossNames), xTicks: epochTicks });
  }
  function drawResources(samples, cpuEl, memEl, gpuEl) {
    const t0 = samples.length ? new Date(samples[0].Timestamp).getTime() : 0;
    const at = (s) => (new Date(s.Timestamp).getTime() - t0) / 1000;
    const xf = (v) => `${Math.round(v)}s`;
    TailorCharts.line(cpuEl, { title: "CPU utilisation (%)", series: [{ name: "CPU %", points: samples.map((s) => [at(s), s.CPUUtilization]) }], xFormat: xf, yMin: 0 });
    TailorCharts.line(memEl, { title: "Memory (RSS)", series: [{ name: "RSS", color: "#7c3aed", points: samples.map((s) => [at(s), s.MemoryRSSBytes]) }], xFormat: xf, yMin: 0, yFormat: bytes });
    const g = samples.filter((s) => s.GPUUtilization !== null && s.GPUUtilization !== undefined);
    gpuEl.hidden = !g.length;
    gpuEl.parentElement.hidden = !g.length;
    if (g.length) {
      TailorCharts.line(gpuEl, { title: "GPU utilisation (%) and memory (GiB)", series: [
        { name: "GPU %", points: g.map((s) => [at(s), s.GPUUtilization]) },
        { name: "GPU memory GiB", points: g.map((s) => [at(s), (s.GPUMemoryBytes || 0) / (1 << 30)]) },
      ], xFormat: xf, yMin: 0 });
    }
  }

  // ---- hosting: models, endpoint configs, endpoints -------------------------------------------------
  const HOSTING = window.TailorHosting;
  function listPage(kind) { return HOSTING.listPage(kind, { api, h, badge, when, kv, main, failed, live, enc }); }
  function modelsPage() { return listPage("models"); }
  function configsPage() { return listPage("endpoint-configs"); }
  function endpointsPage() { return listPage("endpoints"); }
  function modelPage(name) { return HOSTING.detailPage("models", name, { api, h, badge, when, kv, main, failed, live, enc }); }
  function configPage(name) { return HOSTING.detailPage("endpoint-configs", name, { api, h, badge, when, kv, main, failed, live, enc }); }
  function endpointPage(name) { return HOSTING.detailPage("endpoints", name, { api, h, badge, when, kv, main, failed, live, enc, num }); }

  // ---- tuning jobs --------------------------------------------------------------------------------------
  function tuningJobsPage() { return window.TailorTuning.listPage({ api, h, badge, when, kv, main, failed, live, enc, num }); }
  function tuningPage(name) { return window.TailorTuning.detailPage(name, { api, h, badge, when, kv, main, failed, live, enc, num }); }

  // ---- batch transform ------------------------------------------------------------------------------
  function transformJobsPage() { return window.TailorTransform.listPage({ api, h, badge, when, kv, main, live, enc, failed }); }
  function transformJobPage(name) { return window.TailorTransform.detailPage(name, { api, h, badge, when, kv, main, live, enc, failed }); }

  window.addEventListener("hashchange", route);
  (async () => {
    if (sessionStorage.getItem(TOKEN_KEY)) {
      try { await start(); } catch (err) { if (badToken(err)) sessionStorage.removeItem(TOKEN_KEY); else failed(err); }
    }
    route();
  })();
})();
