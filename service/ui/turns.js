// The Evaluation tab's report for a file of labelled conversations: accuracy by kind of turn
// beside the last message alone, the decisions' reasons and the misrouted turns with the
// messages before them; what `python -m indexer eval` prints for the same file and index.
(() => {
  "use strict";

  const TYPES = ["all", "first of domain", "follow-up", "switch"];

  function render(result) {
    const { el, pct } = window.Playground;
    const r = result.report;
    const counts = r.scores.counts;
    const conv = result.params.conversation || {};
    const kpi = (type) =>
      el("div", { class: "kpi" }, el("b", { id: `eval-turns-${type.replace(/ /g, "-")}`, "data-value": r.scores[type], text: pct(r.scores[type]) }), `${type} (${counts[type]})`);
    const row = (name, scores) =>
      el("tr", {}, el("th", { scope: "row", text: name }), TYPES.map((t) => el("td", { class: "n", "data-type": t, text: pct(scores[t]) })));
    const reasons = Object.entries(r.reasons).map(([name, n]) => `${name} ${n}`).join(", ");
    const shown = r.misrouted.length < r.misrouted_total ? `the first ${r.misrouted.length} of ${r.misrouted_total}` : `all ${r.misrouted_total}`;
    const misrouted = r.misrouted.map((m) =>
      el(
        "li",
        { class: "misrouted" },
        el("b", { text: `${m.conversation} turn ${m.position}: labelled ${m.expected}, decided ${m.decided} (${m.reason})` }),
        el("ol", {}, m.context.map((c) => el("li", {}, el("span", { class: "muted", text: `${c.role}: ` }), c.text))),
      ),
    );
    return [
      el(
        "p",
        { class: "hint" },
        `${result.source} on index version ${result.index_version} (model ${result.model}); ${counts.all} labelled turns, ` +
          `each routed with the messages before it (strategy ${conv.strategy}, window ${conv.window}).`,
      ),
      el("div", { class: "kpis", id: "eval-turn-kpis" }, TYPES.map(kpi)),
      el("h3", { text: "Accuracy by kind of turn" }),
      el(
        "div",
        { class: "table-wrap" },
        el(
          "table",
          { id: "eval-turn-types" },
          el("thead", {}, el("tr", {}, el("th", { text: "" }), TYPES.map((t) => el("th", { class: "n", text: `${t} (${counts[t]})` })))),
          el("tbody", {}, row("this router", r.scores), row("last message alone", r.last_message)),
        ),
      ),
      el("p", { id: "eval-reasons", class: "hint", text: `reasons: ${reasons}` }),
      el("h3", { text: `Misrouted turns (${shown})` }),
      misrouted.length
        ? el("ol", { id: "eval-misrouted", class: "misrouted-list" }, misrouted)
        : el("p", { class: "ok", text: "No misrouted turn: every labelled turn went where its label says." }),
    ];
  }

  window.PlaygroundTurns = { render };
})();
