// Tuning pages of the Tailor console: the tuning jobs list, and one job's trials (sortable by objective, the
// best highlighted) with charts of the objective per trial and against each tuned hyperparameter.
"use strict";
(function () {
  const TERMINAL = ["Completed", "Failed", "Stopped"];
  const objectiveOf = (t) => (t.FinalHyperParameterTuningJobObjectiveMetric || {}).Value;

  function listPage(ui) {
    const body = ui.h("tbody", { id: "tuning-body" });
    const cols = ["Name", "Status", "Strategy", "Training jobs", "Created"];
    ui.main.replaceChildren(ui.h("h1", {}, "Tuning jobs"), ui.h("div", { class: "card" }, ui.h("table", { id: "tuning-jobs" },
      ui.h("thead", {}, ui.h("tr", {}, ...cols.map((c) => ui.h("th", {}, c)))), body)));
    return ui.live(async () => {
      const items = (await ui.api("/api/v1/tuning-jobs?MaxResults=100")).HyperParameterTuningJobSummaries || [];
      body.replaceChildren(...items.map((j) => {
        const c = j.TrainingJobStatusCounters;
        const done = c.Completed + c.Stopped + c.NonRetryableError;
        return ui.h("tr", { "data-name": j.HyperParameterTuningJobName },
          ui.h("td", {}, ui.h("a", { href: "#/tuning/" + ui.enc(j.HyperParameterTuningJobName) }, j.HyperParameterTuningJobName)),
          ui.h("td", {}, ui.badge(j.HyperParameterTuningJobStatus)),
          ui.h("td", {}, j.Strategy),
          ui.h("td", { class: "num" }, `${done} / ${(j.ResourceLimits || {}).MaxNumberOfTrainingJobs || "grid"}` + (c.InProgress ? ` (${c.InProgress} running)` : "")),
          ui.h("td", {}, ui.when(j.CreationTime)));
      }));
      if (!items.length) body.replaceChildren(ui.h("tr", {}, ui.h("td", { colspan: cols.length, class: "muted" }, "No tuning jobs yet.")));
      return items.some((j) => !TERMINAL.includes(j.HyperParameterTuningJobStatus));
    });
  }

  async function allTrials(ui, base) {
    const out = [];
    let token = "";
    do {
      const q = new URLSearchParams({ MaxResults: "100" });
      if (token) q.set("NextToken", token);
      const page = await ui.api(`${base}/training-jobs?${q}`);
      out.push(...page.TrainingJobSummaries);
      token = page.NextToken || "";
    } while (token);
    return out;
  }

  function detailPage(name, ui) {
    const base = "/api/v1/tuning-jobs/" + ui.enc(name);
    const sort = { key: "objective", descending: true };
    const title = ui.h("h1", {}, name);
    const failure = ui.h("div", { id: "failure" });
    const summary = ui.h("div", { class: "card", id: "tuning-summary" });
    const best = ui.h("div", { class: "card", id: "tuning-best" });
    const perTrial = ui.h("div", { id: "chart-objective" });
    const perParam = ui.h("div", { class: "grid2", id: "chart-params", style: "margin-top:16px" });
    const trialCard = ui.h("div", { class: "card" }, perTrial);
    const head = ui.h("thead");
    const body = ui.h("tbody", { id: "trials-body" });
    const stop = ui.h("button", { class: "danger", id: "stop", hidden: true, onclick: async () => {
      if (!confirm(`Stop tuning job ${name}?`)) return;
      stop.disabled = true;
      try { await ui.api(base + "/stop", { method: "POST" }); } catch (err) { ui.failed(err); stop.disabled = false; }
    } }, "Stop");
    ui.main.replaceChildren(
      ui.h("p", {}, ui.h("a", { href: "#/tuning" }, "← Tuning jobs")),
      title, failure,
      ui.h("div", { class: "grid2" }, summary, best),
      perParam,
      ui.h("div", { class: "card", style: "margin-top:16px" }, ui.h("h2", {}, "Training jobs"), ui.h("table", { id: "trials" }, head, body)));
    let last = null;
    function render() {
      if (!last) return;
      const [d, trials] = last;
      const bestName = (d.BestTrainingJob || {}).TrainingJobName;
      const params = [...new Set(trials.flatMap((t) => Object.keys(t.TunedHyperParameters)))].sort();
      const col = (label, key) => ui.h("th", { class: "sortable", "data-sort": key, onclick: () => {
        sort.descending = sort.key === key ? !sort.descending : key === "objective";
        sort.key = key; render();
      } }, label, ui.h("span", { class: "arrow" }, sort.key === key ? (sort.descending ? "▼" : "▲") : ""));
      head.replaceChildren(ui.h("tr", {}, col("Training job", "name"), col("Status", "status"),
        col(objectiveName(d), "objective"), ...params.map((p) => col(p, "hp:" + p)), ui.h("th", {}, "Reason")));
      const value = (t) => (sort.key === "objective" ? objectiveOf(t) : sort.key === "name" ? t.TrainingJobName
        : sort.key === "status" ? t.TrainingJobStatus : numeric(t.TunedHyperParameters[sort.key.slice(3)]));
      const rows = [...trials].sort((a, b) => {
        const va = value(a), vb = value(b);
        if (va === undefined || vb === undefined) return va === vb ? 0 : va === undefined ? 1 : -1; // no value: last
        return (va < vb ? -1 : va > vb ? 1 : 0) * (sort.descending ? -1 : 1);
      });
      body.replaceChildren(...rows.map((t) => ui.h("tr", { "data-job": t.TrainingJobName, class: t.TrainingJobName === bestName ? "best" : null },
        ui.h("td", {}, ui.h("a", { href: "#/jobs/" + ui.enc(t.TrainingJobName) }, t.TrainingJobName), t.TrainingJobName === bestName ? ui.h("span", { class: "badge Completed best-tag" }, "best") : null),
        ui.h("td", {}, ui.badge(t.TrainingJobStatus)),
        ui.h("td", { class: "num objective" }, ui.num(objectiveOf(t))),
        ...params.map((p) => ui.h("td", { class: "num" }, t.TunedHyperParameters[p] || "—")),
        ui.h("td", { class: "muted" }, t.FailureReason || ""))));
      if (!rows.length) body.replaceChildren(ui.h("tr", {}, ui.h("td", { colspan: 4 + params.length, class: "muted" }, "No training jobs yet.")));
    }
    function objectiveName(d) {
      const c = d.HyperParameterTuningJobConfig || {};
      const o = c.HyperParameterTuningJobObjective || (d.TrainingJobDefinition || {}).TuningObjective || {};
      return `${o.MetricName || "objective"} (${o.Type === "Minimize" ? "min" : "max"})`;
    }
    return ui.live(async () => {
      const [d, trials] = await Promise.all([ui.api(base), allTrials(ui, base)]);
      last = [d, trials];
      const running = !TERMINAL.includes(d.HyperParameterTuningJobStatus);
      title.replaceChildren(name, ui.badge(d.HyperParameterTuningJobStatus), stop);
      stop.hidden = d.HyperParameterTuningJobStatus !== "InProgress";
      failure.replaceChildren(...(d.FailureReason ? [ui.h("div", { class: "failure" }, ui.h("strong", {}, "Failure reason"), d.FailureReason)] : []));
      const c = d.HyperParameterTuningJobConfig || {};
      const limits = c.ResourceLimits || {};
      summary.replaceChildren(ui.h("h2", {}, "Summary"), ui.kv([
        ["Strategy", c.Strategy + (c.TrainingJobEarlyStoppingType === "Auto" ? " · early stopping" : "")],
        ["Objective", objectiveName(d)],
        ["Limits", `${limits.MaxNumberOfTrainingJobs || "grid"} jobs, ${limits.MaxParallelTrainingJobs} in parallel`],
        ["Training jobs", Object.entries(d.TrainingJobStatusCounters).filter(([, n]) => n).map(([k, n]) => `${k} ${n}`).join(", ") || "none yet"],
        ["Created", ui.when(d.CreationTime)], ["Ended", ui.when(d.HyperParameterTuningEndTime)],
      ]));
      const b = d.BestTrainingJob;
      best.replaceChildren(ui.h("h2", {}, "Best training job"), b ? ui.kv([
        ["Training job", ui.h("a", { href: "#/jobs/" + ui.enc(b.TrainingJobName), id: "best-job" }, b.TrainingJobName)],
        [objectiveName(d), ui.num(objectiveOf(b))],
        ...Object.entries(b.TunedHyperParameters).sort(),
      ]) : ui.h("p", { class: "muted" }, "None completed yet."));
      render();
      drawCharts(d, trials, perTrial, perParam, trialCard);
      return running;
    });
  }

  const numeric = (v) => (v !== undefined && v !== "" && !isNaN(+v) ? +v : v);

  // The objective per trial first, then one chart per hyperparameter, two to a row.
  function drawCharts(d, trials, perTrial, perParam, trialCard) {
    const bestName = (d.BestTrainingJob || {}).TrainingJobName;
    const scored = trials.filter((t) => objectiveOf(t) !== undefined);
    const number = (t) => +((t.TrainingJobName.match(/-(\d{3})-[0-9a-f]{8}$/) || [])[1] || 0);
    const byNumber = [...scored].sort((a, b) => number(a) - number(b));
    TailorCharts.line(perTrial, { title: "Objective per training job", empty: "No objective values yet",
      series: [{ name: "objective", points: byNumber.map((t) => [number(t), objectiveOf(t), t.TrainingJobName === bestName]) }],
      xFormat: (v) => String(Math.round(v)), yFormat: (v) => v.toFixed(3), scatter: true });
    const ranges = (d.HyperParameterTuningJobConfig || {}).ParameterRanges || {};
    const logScale = new Set([...(ranges.ContinuousParameterRanges || []), ...(ranges.IntegerParameterRanges || [])]
      .filter((r) => r.ScalingType === "Logarithmic").map((r) => r.Name));
    const params = [...new Set(trials.flatMap((t) => Object.keys(t.TunedHyperParameters)))].sort();
    perParam.replaceChildren(trialCard, ...params.map((p) => {
      const el = document.createElement("div");
      el.id = "chart-hp-" + p;
      const card = document.createElement("div");
      card.className = "card";
      card.appendChild(el);
      const values = scored.map((t) => t.TunedHyperParameters[p]);
      const categorical = values.some((v) => isNaN(+v));
      const labels = categorical ? [...new Set(values)].sort() : [];
      const x = (v) => (categorical ? labels.indexOf(v) : +v);
      TailorCharts.line(el, { title: `Objective vs ${p}`, empty: "No objective values yet", scatter: true,
        series: [{ name: p, points: scored.map((t) => [x(t.TunedHyperParameters[p]), objectiveOf(t), t.TrainingJobName === bestName]) }],
        xLog: logScale.has(p), yFormat: (v) => v.toFixed(3),
        xFormat: categorical ? (v) => labels[Math.round(v)] || "" : logScale.has(p) ? (v) => String(+v.toPrecision(2)) : undefined,
        xTicks: categorical ? () => labels.map((_, i) => i) : undefined });
      return card;
    }));
  }

  window.TailorTuning = { listPage, detailPage };
})();
