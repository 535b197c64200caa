// The Review tab: the decision log's queues and one action per item (add as an example of a
// route, add to the evaluation file, mark right, dismiss). Adding shows the file's diff and the
// guard's figures first; saving writes exactly what was shown. Admin only: texts are user data.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const view = { queue: "feedback", pending: null, routes: [], defaultRoute: "default" };

  function P() {
    return window.Playground;
  }

  function status(text, bad = false) {
    const box = $("review-status");
    box.textContent = text || "";
    box.className = bad ? "err" : "";
  }

  async function load() {
    const { api, state } = P();
    $("review-items").replaceChildren();
    hidePreview();
    if (!state.ready || !state.admin) {
      $("review-area").hidden = true;
      $("review-off").hidden = false;
      $("review-off").textContent = state.ready
        ? "Reviewing logged queries needs the admin token: enter it as the key."
        : "";
      return;
    }
    $("review-off").hidden = true;
    $("review-area").hidden = false;
    view.routes = state.routes.routes.map((r) => r.name);
    view.defaultRoute = state.routes.default_route;
    status("Loading…");
    try {
      const found = await api("GET", `/admin/review?queue=${encodeURIComponent(view.queue)}&limit=50`);
      $("review-items").replaceChildren(...found.items.map(itemView));
      $("review-items").dataset.queue = found.queue;
      status(found.items.length ? `${found.items.length} item(s).` : "Nothing to review in this queue.");
    } catch (error) {
      if (error.status === 409) {
        $("review-area").hidden = true;
        $("review-off").hidden = false;
        $("review-off").textContent = error.message;
        status("");
        return;
      }
      status(P().errorText(error), true);
    }
  }

  function facts(item) {
    const { el, fixed } = P();
    const fb = item.feedback;
    return el(
      "p",
      { class: "facts" },
      el("span", {}, "went to ", el("b", { class: "decided", text: item.route }), item.fallback ? " (fallback)" : ""),
      el("span", { text: `${item.reason}, score ${fixed(item.score)}` }),
      item.runner_up ? el("span", { text: `runner-up ${item.runner_up}` }) : null,
      fb ? el("span", { class: "said" }, "feedback: ", el("b", { text: fb.verdict === "correct" ? "correct" : `should go to ${fb.expected || "?"}` }), ` (${fb.source})`) : null,
      el("span", { text: `${item.created_at} · version ${item.index_version}` }),
    );
  }

  function itemView(item) {
    const { el } = P();
    const li = el("li", { class: "review-item", "data-id": item.id, "data-request-id": item.request_id });
    li.append(el("p", { class: "text", text: item.text }), facts(item));
    if (item.turns.length) {
      li.append(el("p", { class: "hint", text: `conversation: decided by ${item.turns.map((t) => `message ${t.index + 1}`).join(", ")}` }));
    }
    if (item.near) {
      const n = item.near;
      li.append(
        el("p", { class: "hint near", "data-if-added": n.if_added },
          `near the misroute “${n.anchor_text}” (${n.similarity}); goes to ${n.now} now, to ${n.if_added} if that is added to ${n.anchor_route}`),
      );
    }
    if (item.live) {
      const expected = item.review_route || (item.feedback && item.feedback.expected) || item.route;
      const right = item.live.route === expected;
      li.append(
        el(
          "p",
          { class: "before-after", "data-before": item.route, "data-after": item.live.route },
          "before ",
          el("b", { class: "before", text: item.route }),
          ` (${item.index_version}) → now `,
          el("b", { class: `after ${right ? "right" : "wrong"}`, text: item.live.route }),
          ` (${item.live.index_version})`,
          item.review_state ? ` · ${item.review_state}${item.review_route ? ` into ${item.review_route}` : ""}` : "",
        ),
      );
      return li;
    }
    const selectId = `review-route-${item.id}`;
    const select = el("select", { id: selectId, class: "route-choice" }, [...view.routes, view.defaultRoute].map((r) => el("option", { value: r, text: r })));
    select.value = (item.feedback && item.feedback.expected) || item.runner_up || item.route;
    const act = (cls, text, fn) => {
      const b = el("button", { type: "button", class: cls, text });
      b.addEventListener("click", () => fn(item, select.value, b));
      return b;
    };
    li.append(
      el(
        "div",
        { class: "actions" },
        el("label", { for: selectId, text: "route" }),
        select,
        act("act-example", "Add as example", (it, route) => preview(it, "example", route)),
        act("act-eval", "Add to evaluation file", (it, route) => preview(it, "eval", route)),
        act("act-right", "Mark right", (it) => mark(it, "right")),
        act("act-dismiss", "Dismiss", (it) => mark(it, "dismissed")),
      ),
    );
    return li;
  }

  async function mark(item, state) {
    try {
      await P().api("POST", "/admin/review/mark", { ids: [item.id], state });
      status(`Marked ${state === "right" ? "right" : "dismissed"}: “${item.text}”.`);
      await load();
    } catch (error) {
      status(P().errorText(error), true);
    }
  }

  function diffView(text) {
    const { el } = P();
    return text.split("\n").map((line) =>
      el("span", { class: line.startsWith("+") && !line.startsWith("+++") ? "add" : line.startsWith("-") && !line.startsWith("---") ? "del" : line.startsWith("@@") ? "hunk" : "" }, `${line}\n`),
    );
  }

  function figuresView(g) {
    const { el, pct } = P();
    const row = (name, key) => el("tr", {}, el("td", { text: name }), el("td", { class: "n", text: pct(g.eval_before[key]) }), el("td", { class: "n", text: pct(g.eval_after[key]) }));
    const moved = (title, list) =>
      list.length ? el("div", {}, el("h4", { text: title }), el("ul", {}, list.slice(0, 10).map((m) => el("li", { text: `“${m.text}” (${m.label}): ${m.before} → ${m.after}` })))) : null;
    return [
      el(
        "div",
        { class: "table-wrap" },
        el(
          "table",
          { id: "review-figures-table" },
          el("thead", {}, el("tr", {}, el("th", { text: `evaluation files (${g.eval_before.queries} queries)` }), el("th", { class: "n", text: "before" }), el("th", { class: "n", text: "after" }))),
          el("tbody", {}, row("in-scope accuracy", "in_scope_accuracy"), row("fallback recall", "fallback_recall"), row("fallback precision", "fallback_precision"), row("accuracy", "accuracy")),
        ),
      ),
      moved("Evaluation queries it breaks", g.broken),
      moved("Reviewed queries still going elsewhere", g.unfixed),
    ].filter(Boolean);
  }

  async function preview(item, action, route) {
    hidePreview();
    status("Preparing the change…");
    try {
      const p = await P().api("POST", "/admin/review/preview", { ids: [item.id], action, route });
      view.pending = { ids: p.ids, action, route: p.route, token: p.token, text: item.text };
      $("review-preview-title").textContent = action === "example" ? `Add as an example of ${p.route}: ${p.file}` : `Add to ${p.file} as ${p.route}`;
      const guard = $("review-guard");
      guard.textContent = p.guard ? p.guard.summary : p.changed ? "Held out: an evaluation query, never an example." : "";
      guard.className = `guard${p.guard && p.guard.breaks ? " bad" : ""}`;
      guard.dataset.fixes = p.guard ? String(p.guard.fixes) : "";
      guard.dataset.breaks = p.guard ? String(p.guard.breaks) : "";
      $("review-figures").replaceChildren(...(p.guard ? figuresView(p.guard) : []));
      $("review-diff").replaceChildren(...diffView(p.diff || "(no change: the file already holds it)"));
      $("review-save").disabled = !p.changed;
      $("review-preview").hidden = false;
      status(p.rewritten ? "Note: this file's layout cannot be edited line by line; saving rewrites it (comments lost)." : "Check the change, then save.");
      $("review-save").focus();
    } catch (error) {
      status(P().errorText(error), true);
    }
  }

  function hidePreview() {
    view.pending = null;
    $("review-preview").hidden = true;
  }

  async function save() {
    const pending = view.pending;
    if (!pending) return;
    $("review-save").disabled = true;
    try {
      const done = await P().api("POST", "/admin/review/accept", {
        ids: pending.ids,
        action: pending.action,
        route: pending.route,
        token: pending.token,
      });
      hidePreview();
      await load();
      status(`Saved to ${done.file}: “${pending.text}”. Next: ${done.next}.`);
    } catch (error) {
      status(P().errorText(error), true);
      $("review-save").disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const radio of document.querySelectorAll("input[name=review-queue]")) {
      radio.addEventListener("change", () => {
        view.queue = radio.value;
        load();
      });
    }
    $("review-refresh").addEventListener("click", load);
    $("review-save").addEventListener("click", save);
    $("review-cancel").addEventListener("click", () => {
      hidePreview();
      status("Nothing was saved.");
    });
    $("tab-review").addEventListener("click", load);
  });
  document.addEventListener("playground:ready", load);
  document.addEventListener("playground:reindexed", () => {
    if (view.queue === "reviewed") load();
  });
})();
