// Transform-job pages of the Tailor console: the list and one job's progress, status and summary (live).
"use strict";
(function () {
  const API = "/api/v1/transform-jobs";
  const ACTIVE = ["InProgress", "Stopping"];
  const int = (v) => (v === null || v === undefined ? "—" : Number(v).toLocaleString());

  function listPage(ui) {
    const body = ui.h("tbody", { id: "transform-jobs-body" });
    const cols = ["Name", "Status", "Created", "Ended"];
    ui.main.replaceChildren(ui.h("h1", {}, "Transform jobs"), ui.h("div", { class: "card" }, ui.h("table", { id: "transform-jobs" },
      ui.h("thead", {}, ui.h("tr", {}, ...cols.map((c) => ui.h("th", {}, c)))), body)));
    return ui.live(async () => {
      const items = (await ui.api(API + "?MaxResults=100")).TransformJobSummaries || [];
      body.replaceChildren(...items.map((j) => ui.h("tr", { "data-name": j.TransformJobName },
        ui.h("td", {}, ui.h("a", { href: `#/transform-jobs/${ui.enc(j.TransformJobName)}` }, j.TransformJobName)),
        ui.h("td", {}, ui.badge(j.TransformJobStatus)),
        ui.h("td", {}, ui.when(j.CreationTime)),
        ui.h("td", {}, ui.when(j.TransformEndTime)))));
      if (!items.length) body.replaceChildren(ui.h("tr", {}, ui.h("td", { colspan: cols.length, class: "muted" }, "No transform jobs yet.")));
      return items.some((j) => ACTIVE.includes(j.TransformJobStatus));
    });
  }

  function detailPage(name, ui) {
    const title = ui.h("h1", {}, name);
    const failure = ui.h("div", {});
    const progress = ui.h("div", { class: "card", id: "transform-progress" });
    const summary = ui.h("div", { class: "card", id: "transform-summary" });
    const facts = ui.h("div", { class: "card" });
    ui.main.replaceChildren(ui.h("p", {}, ui.h("a", { href: "#/transform-jobs" }, "← Transform jobs")), title, failure,
      progress, ui.h("div", { class: "grid2" }, summary, facts));
    return ui.live(async () => {
      const d = await ui.api(`${API}/${ui.enc(name)}`);
      const p = d.TransformProgress || {};
      const stop = ACTIVE.includes(d.TransformJobStatus) && d.TransformJobStatus !== "Stopping"
        ? ui.h("button", { class: "danger", id: "stop", onclick: () => ui.api(`${API}/${ui.enc(name)}/stop`, { method: "POST" }).catch(ui.failed) }, "Stop")
        : null;
      title.replaceChildren(...[name, ui.badge(d.TransformJobStatus), stop].filter(Boolean));
      failure.replaceChildren(...(d.FailureReason ? [ui.h("div", { class: "failure" }, ui.h("strong", {}, "Failure reason"), d.FailureReason)] : []));
      const handled = (p.RecordsDone || 0) + (p.RecordsFailed || 0);
      const pct = p.RecordsTotal ? Math.min(100, (100 * handled) / p.RecordsTotal) : 0;
      progress.replaceChildren(ui.h("h2", {}, "Progress"),
        ui.h("div", { class: "pred" }, ui.h("span", { id: "records" }, `${int(handled)} / ${int(p.RecordsTotal)} records`),
          ui.h("div", { class: "bar" }, ui.h("span", { style: `width:${pct.toFixed(1)}%` })), ui.h("span", {}, `${pct.toFixed(0)} %`)),
        ui.kv([["Records per second", int(Math.round(p.RecordsPerSecond || 0))], ["Records failed", int(p.RecordsFailed)],
          ["Input objects written", `${int(p.ObjectsDone)} / ${int(p.ObjectsTotal)}`],
          ["Output", d.TransformOutput.S3OutputPath]]));
      summary.replaceChildren(ui.h("h2", {}, "Summary"), ...summaryParts(p.Summary || {}, ui));
      facts.replaceChildren(ui.h("h2", {}, "Details"), ui.kv([
        ["Model", ui.h("a", { href: `#/models/${ui.enc(d.ModelName)}` }, d.ModelName)],
        ["Input", d.TransformInput.DataSource.S3DataSource.S3Uri],
        ["Content type", `${d.TransformInput.ContentType} (split ${d.TransformInput.SplitType})`],
        ["Batch strategy", d.BatchStrategy], ["Instances", String(d.TransformResources.InstanceCount)],
        ["In flight per instance", String(d.MaxConcurrentTransforms)], ["Accept", d.TransformOutput.Accept],
        ["Created", ui.when(d.CreationTime)], ["Started", ui.when(d.TransformStartTime)], ["Ended", ui.when(d.TransformEndTime)],
      ]));
      return ACTIVE.includes(d.TransformJobStatus);
    });
  }

  // Counts per predicted class; accuracy and the confusion matrix (rows true, columns predicted) when labelled.
  function summaryParts(s, ui) {
    const counts = Object.entries(s.PredictedCounts || {}).sort((a, b) => b[1] - a[1]);
    if (!counts.length) return [ui.h("p", { class: "muted" }, "No predictions yet.")];
    const parts = [ui.h("table", { id: "predicted-counts" }, ui.h("thead", {}, ui.h("tr", {}, ui.h("th", {}, "Predicted class"), ui.h("th", {}, "Images"))),
      ui.h("tbody", {}, ...counts.map(([k, v]) => ui.h("tr", {}, ui.h("td", {}, k), ui.h("td", { class: "num" }, int(v))))))];
    if (s.Labelled) {
      parts.push(ui.h("p", { id: "accuracy" }, `Accuracy ${(100 * s.Accuracy).toFixed(2)} % (${int(s.Correct)} of ${int(s.Labelled)} images labelled by their class folder)`));
      const names = s.ConfusionClasses;
      parts.push(ui.h("table", { id: "confusion" },
        ui.h("thead", {}, ui.h("tr", {}, ui.h("th", {}, "true \\ predicted"), ...names.map((n) => ui.h("th", {}, n)))),
        ui.h("tbody", {}, ...s.ConfusionMatrix.map((row, i) => ui.h("tr", {}, ui.h("th", {}, names[i]),
          ...row.map((v, j) => ui.h("td", { class: "num", style: i === j && v ? "font-weight:700" : null }, int(v))))))));
    }
    return parts;
  }

  window.TailorTransform = { listPage, detailPage };
})();
