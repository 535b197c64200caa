// The route playground. Plain JavaScript, no build step, no third-party code: every figure it
// shows comes from the service's own API, called same-origin with the key typed in this tab
// (session storage only) as a bearer token, JSON bodies sent as application/json.
"use strict";

(() => {
  const KEY_STORE = "router.playground.key";
  const SET_STORE = "router.playground.set";
  const DEBOUNCE_MS = 150;
  const PUBLIC_MODE = document.body.dataset.public; // "open" or "keyed"
  const ADMIN_MODE = document.body.dataset.admin; // "open", "token" or "disabled"
  const REASONS = {
    vote: "the vote of the nearest examples decided",
    below_threshold: "no example was similar enough: the default route",
    ambiguous: "the winner's lead over the runner-up was under the margin: the default route",
    no_neighbours: "the index returned no examples: the default route",
    continued: "the route carried over from earlier messages (this one has no evidence for it)",
    context: "the conversation's messages together decided, the last one among them",
    standalone: "a new, unrelated request in the conversation, routed on its own",
    off_topic: "a new, unrelated request that no route takes: the default route",
    llm: "the decision model chose the route",
    llm_none: "the decision model said no route fits: the default route",
    llm_unrecognised: "the decision model answered outside the allowed routes: the default route",
    llm_failed: "the decision model failed: the default route",
  };

  const state = { ready: false, routes: null, admin: false, seq: 0, timer: 0, inputAt: 0, set: "", defaultSet: "" };
  const $ = (id) => document.getElementById(id);

  // -- small DOM helpers (no innerHTML: the style policy forbids inline styles, and texts are data)
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }
  const present = (...nodes) => nodes.filter((n) => n !== null && n !== undefined && n !== false);
  // Decimals rounded half to even, as Python formats them (the indexer's reports agree).
  const formats = new Map();
  const fixed = (x, digits = 4) => {
    if (typeof x !== "number" || !Number.isFinite(x)) return "–";
    if (!formats.has(digits)) {
      const options = { minimumFractionDigits: digits, maximumFractionDigits: digits, roundingMode: "halfEven", useGrouping: false };
      formats.set(digits, new Intl.NumberFormat("en-US", options));
    }
    return formats.get(digits).format(x);
  };
  const pct = (x) => `${fixed(100 * x, 1)}%`;
  const clamp01 = (x) => Math.max(0, Math.min(1, x));

  function bar(fraction, { cls = "", mark = null, label = "" } = {}) {
    const fill = el("span", { class: `fill ${cls}` });
    fill.style.width = `${(100 * clamp01(fraction)).toFixed(2)}%`;
    const track = el("span", { class: "track", role: "img", "aria-label": label }, fill);
    if (mark !== null && Number.isFinite(mark)) {
      const line = el("span", { class: "mark" });
      line.style.left = `${(100 * clamp01(mark)).toFixed(2)}%`;
      track.append(line);
    }
    return track;
  }

  // -- the API -------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, body) {
      const detail = body && typeof body.detail === "string" ? body.detail : `HTTP ${status}`;
      super(detail);
      this.status = status;
      this.body = body;
    }
  }

  const storedKey = () => sessionStorage.getItem(KEY_STORE) || "";

  // The route set chosen in the header: classify goes to /v1/sets/<set>/classify, the routes,
  // evaluation and admin endpoints take ?set=<set>; the default set uses the plain paths.
  const SET_PATHS = /^\/(v1\/(routes|evals|evaluate)|admin\/)/;
  function withSet(path) {
    const set = state.set;
    if (!set || set === state.defaultSet) return path;
    if (path === "/v1/classify" || path.startsWith("/v1/classify/")) {
      return `/v1/sets/${encodeURIComponent(set)}/${path.slice("/v1/".length)}`;
    }
    if (SET_PATHS.test(path)) return `${path}${path.includes("?") ? "&" : "?"}set=${encodeURIComponent(set)}`;
    return path;
  }

  async function api(method, path, data) {
    const headers = { Accept: "application/json" };
    const key = storedKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    const init = { method, headers, credentials: "same-origin", cache: "no-store" };
    if (data !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(data);
    }
    const response = await fetch(withSet(path), init);
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  function errorText(error) {
    if (!(error instanceof ApiError)) return `The service could not be reached (${error.message}).`;
    if (error.status === 401) return `The service needs a valid API key: ${error.message}`;
    if (error.status === 403) return `This key may not do that: ${error.message}`;
    if (error.status === 429) return `Rate limited: ${error.message}`;
    return `${error.status} ${(error.body && error.body.title) || ""}: ${error.message}`;
  }

  function notice(text, bad = false) {
    const box = $("notice");
    box.textContent = text || "";
    box.hidden = !text;
    box.classList.toggle("bad", bad);
  }

  // -- tabs ----------------------------------------------------------------------------------
  function setupTabs() {
    const tabs = [...document.querySelectorAll("[role=tab]")];
    const select = (tab, focus) => {
      for (const t of tabs) {
        const on = t === tab;
        t.setAttribute("aria-selected", String(on));
        t.tabIndex = on ? 0 : -1;
        $(t.getAttribute("aria-controls")).hidden = !on;
      }
      if (focus) tab.focus();
    };
    for (const tab of tabs) {
      tab.addEventListener("click", () => select(tab, false));
      tab.addEventListener("keydown", (event) => {
        const i = tabs.indexOf(tab);
        const next = {
          ArrowRight: tabs[(i + 1) % tabs.length],
          ArrowLeft: tabs[(i - 1 + tabs.length) % tabs.length],
          Home: tabs[0],
          End: tabs[tabs.length - 1],
        }[event.key];
        if (next) {
          event.preventDefault();
          select(next, true);
        }
      });
    }
  }

  // -- the key -------------------------------------------------------------------------------
  function setupKey() {
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("api-key").value.trim();
      if (value) sessionStorage.setItem(KEY_STORE, value);
      $("api-key").value = "";
      start();
    });
    $("forget-key").addEventListener("click", () => {
      sessionStorage.removeItem(KEY_STORE);
      $("api-key").value = "";
      start();
    });
  }

  function showKeyState() {
    const hint = storedKey()
      ? "A key is set for this tab (session storage only), sent as a bearer token."
      : PUBLIC_MODE === "keyed"
        ? "This service requires an API key. It stays in this tab (session storage) and is sent as a bearer token."
        : "No key needed on this service (open on loopback); a key would stay in this tab only.";
    $("key-hint").textContent = hint;
  }

  // -- start, and everything that depends on the key ------------------------------------------
  function clearAll() {
    state.ready = false;
    state.routes = null;
    state.admin = false;
    $("live-version").textContent = "";
    $("routes-summary").replaceChildren();
    $("routes-list").replaceChildren();
    $("index-view").replaceChildren();
    $("reindex-area").hidden = true;
    $("eval-result").replaceChildren();
    $("eval-status").textContent = "";
    const files = $("eval-file");
    while (files.options.length > 1) files.remove(1);
    showEmptyDecision("The decision appears here as you type.");
  }

  async function start() {
    clearAll();
    showKeyState();
    if (PUBLIC_MODE === "keyed" && !storedKey()) {
      notice("This service requires an API key: enter it above to use the playground.");
      return;
    }
    try {
      await chooseSet(await api("GET", "/v1/sets"));
      state.routes = await api("GET", "/v1/routes");
      state.admin =
        ADMIN_MODE === "open"
          ? true
          : ADMIN_MODE === "disabled"
            ? false
            : (await api("GET", "/v1/caller")).admin_sets.includes(state.set);
    } catch (error) {
      notice(errorText(error), true);
      return;
    }
    notice("");
    state.ready = true;
    renderLive();
    renderRoutes();
    loadIndex();
    loadEvalFiles();
    classifyNow();
    document.dispatchEvent(new CustomEvent("playground:ready"));
  }

  // -- the route set ------------------------------------------------------------------------------
  async function chooseSet(found) {
    const serving = found.sets.filter((s) => s.serving).map((s) => s.name);
    const stored = sessionStorage.getItem(SET_STORE) || "";
    state.defaultSet = found.default;
    state.set = serving.includes(stored) ? stored : serving.includes(found.default) ? found.default : serving[0] || "";
    const select = $("route-set");
    select.replaceChildren(
      ...found.sets.map((s) =>
        el("option", {
          value: s.name,
          text: s.serving ? `${s.name}${s.router ? ` (${s.router}, ${s.routes} routes)` : ""}` : `${s.name} (cannot serve)`,
          disabled: !s.serving,
        }),
      ),
    );
    select.value = state.set;
    $("set-picker").hidden = found.sets.length < 2;
    if (!state.set) throw new Error("no route set this key may use can serve now");
  }

  function setupSets() {
    $("route-set").addEventListener("change", () => {
      sessionStorage.setItem(SET_STORE, $("route-set").value);
      start();
    });
  }

  function renderLive() {
    const r = state.routes;
    $("live-version").textContent =
      `${state.set && state.set !== state.defaultSet ? `route set ${state.set} · ` : ""}` +
      `${r.router}: ${r.routes.length} routes, index version ${r.index_version}` +
      ` · k ${r.k}, threshold ${r.threshold}, margin ${r.margin}`;
    const m = r.model;
    $("live-model").textContent = m
      ? `model ${m.id} · languages: ${m.languages.length ? `${m.languages.join(", ")} (${m.languages_note})` : m.languages_note}`
      : "";
  }

  function thresholdFor(route) {
    const r = state.routes;
    const found = r && r.routes.find((x) => x.name === route);
    return found && found.threshold !== null ? found.threshold : r ? r.threshold : NaN;
  }

  // -- try a query ---------------------------------------------------------------------------
  function mode() {
    return document.querySelector("input[name=mode]:checked").value;
  }

  function addTurn(role, text) {
    const list = $("turns");
    const n = list.children.length + 1;
    const roleId = `turn-role-${n}-${Date.now()}`;
    const textId = `turn-text-${n}-${Date.now()}`;
    const select = el(
      "select",
      { id: roleId },
      el("option", { value: "user", text: "user" }),
      el("option", { value: "assistant", text: "assistant" }),
    );
    select.value = role;
    const area = el("textarea", { id: textId, rows: 1, maxlength: 2000 });
    area.value = text || "";
    const remove = el("button", { type: "button", class: "remove", text: "Remove" });
    const item = el(
      "li",
      { class: "turn" },
      el("div", {}, el("label", { for: roleId, class: "hint", text: `Message ${n}, role` }), select),
      el("div", {}, el("label", { for: textId, class: "hint", text: `Message ${n}, text` }), area),
      remove,
      el("p", { class: "share", hidden: true }),
    );
    remove.setAttribute("aria-label", `Remove message ${n}`);
    remove.addEventListener("click", () => {
      item.remove();
      scheduleClassify();
    });
    list.append(item);
    return area;
  }

  function setupTry() {
    $("query").addEventListener("input", onInput);
    $("turns").addEventListener("input", onInput);
    $("turns").addEventListener("change", onInput);
    for (const radio of document.querySelectorAll("input[name=mode]")) {
      radio.addEventListener("change", () => {
        const single = mode() === "single";
        $("single-input").hidden = !single;
        $("conversation-input").hidden = single;
        if (!single && $("turns").children.length === 0) addTurn("user", $("query").value);
        classifyNow();
      });
    }
    $("add-turn").addEventListener("click", () => {
      const last = $("turns").lastElementChild;
      const role = last && last.querySelector("select").value === "user" ? "assistant" : "user";
      addTurn(role, "").focus();
    });
  }

  function onInput() {
    state.inputAt = performance.now();
    scheduleClassify();
  }

  function scheduleClassify() {
    clearTimeout(state.timer);
    state.timer = setTimeout(classifyNow, DEBOUNCE_MS);
  }

  function currentRequest() {
    if (mode() === "single") {
      const query = $("query").value;
      if (!query.trim()) return null;
      return { body: { query, explain: true }, label: query, sent: [] };
    }
    const sent = [];
    const messages = [];
    for (const item of $("turns").children) {
      const content = item.querySelector("textarea").value;
      if (!content.trim()) continue;
      messages.push({ role: item.querySelector("select").value, content });
      sent.push(item);
    }
    if (!messages.some((m) => m.role === "user")) return null;
    return { body: { messages, explain: true }, label: JSON.stringify(messages), sent };
  }

  function clearTurnMarks() {
    for (const item of $("turns").children) {
      item.classList.remove("decided");
      const share = item.querySelector(".share");
      share.hidden = true;
      share.textContent = "";
    }
  }

  async function classifyNow() {
    clearTimeout(state.timer);
    if (!state.ready) return;
    const request = currentRequest();
    const mine = ++state.seq;
    if (!request) {
      clearTurnMarks();
      showEmptyDecision(mode() === "single" ? "The decision appears here as you type." : "Type a user message.");
      return;
    }
    const startedAt = state.inputAt || performance.now();
    try {
      const decision = await api("POST", "/v1/classify", request.body);
      if (mine === state.seq) renderDecision(decision, request, startedAt);
    } catch (error) {
      if (mine === state.seq) showDecisionError(error);
    }
  }

  function showEmptyDecision(text) {
    const box = $("decision");
    box.dataset.state = "empty";
    delete box.dataset.query;
    box.replaceChildren(el("p", { class: "muted", id: "decision-empty", text }));
  }

  function showDecisionError(error) {
    const box = $("decision");
    box.dataset.state = "error";
    box.replaceChildren(el("p", { class: "err", id: "decision-error", text: errorText(error) }));
  }

  function renderDecision(d, request, startedAt) {
    const box = $("decision");
    const routes = state.routes;
    const k = routes.k;
    const neighbours = d.neighbours || [];
    const top = neighbours[0];
    const scoreThreshold = thresholdFor(top ? top.route : d.route);

    const verdict = el(
      "div",
      { class: `verdict${d.fallback ? " fallback" : ""}` },
      el("span", { class: "route", id: "decision-route", text: d.route }),
      el("span", { class: `badge ${d.fallback ? "fallback" : "routed"}`, text: d.fallback ? "fallback" : "routed" }),
      el("span", {}, "agent ", el("b", { id: "decision-agent", text: d.agent })),
      d.decided_by === "llm" ? el("span", { class: "badge", text: "decided by the LLM" }) : null,
      el("p", { class: "reason", id: "decision-reason", "data-reason": d.reason }, el("b", { text: d.reason }), ": ", REASONS[d.reason] || ""),
    );

    const score = el(
      "section",
      {},
      el("h3", { text: "Score against the threshold" }),
      el(
        "div",
        { class: "bar-row" },
        el("span", { class: "name", text: "best similarity" }),
        bar(d.score, {
          cls: d.score >= scoreThreshold ? "win" : "off",
          mark: scoreThreshold,
          label: `best similarity ${fixed(d.score)}, threshold ${scoreThreshold}`,
        }),
        el("span", { class: "num", id: "decision-score", "data-value": d.score, text: fixed(d.score) }),
      ),
      el(
        "p",
        { class: "legend" },
        el("span", { class: "key-mark" }),
        `threshold ${scoreThreshold}${top ? ` (for ${top.route})` : ""}; ` +
          (d.score >= scoreThreshold ? "cleared" : "not cleared"),
      ),
    );

    const votes = Object.entries(d.votes || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    const total = votes.reduce((sum, [, n]) => sum + n, 0);
    const runnerUp = votes.length > 1 ? votes[1][1] : null;
    const voteRows = votes.map(([route, count], i) => {
      const winner = i === 0 && route === d.route;
      // The winner must lead the runner-up by the margin, as a share of the votes cast.
      const mark = winner && runnerUp !== null ? (runnerUp + routes.margin * total) / k : null;
      return el(
        "div",
        { class: "bar-row", "data-route": route },
        el("span", { class: "name", text: route }),
        bar(count / k, {
          cls: winner && !d.fallback ? "win" : "",
          mark,
          label: `${route}: ${count} of ${k} votes`,
        }),
        el("span", { class: "num", text: `${count} / ${k}` }),
      );
    });
    const voteSection = el(
      "section",
      {},
      el("h3", { text: `Votes of the ${k} nearest examples${request.sent.length ? " of the last user message" : ""}` }),
      voteRows.length ? el("div", { class: "bars", id: "votes" }, voteRows) : el("p", { class: "muted", text: "No example voted." }),
      el(
        "p",
        { class: "legend" },
        el("span", { class: "key-mark" }),
        `what the winner must exceed: the runner-up plus the margin (${routes.margin}) of the votes cast` +
          (routes.threshold_mode === "neighbour" ? "; only examples over their route's threshold vote" : "; all k vote") +
          (routes.vote === "similarity" ? "; votes weighted by similarity (bars show counts)" : ""),
      ),
    );

    const rows = neighbours.map((n, i) => {
      const threshold = thresholdFor(n.route);
      return el(
        "tr",
        { "data-route": n.route },
        el("td", { class: "n", text: i + 1 }),
        el(
          "td",
          {},
          el(
            "span",
            { class: "sim-cell" },
            el("span", { class: "num", text: fixed(n.similarity) }),
            bar(n.similarity, {
              cls: n.similarity >= threshold ? "" : "off",
              mark: threshold,
              label: `similarity ${fixed(n.similarity)}, threshold ${threshold}`,
            }),
          ),
        ),
        el("td", { text: n.route }),
        el("td", { text: n.text }),
      );
    });
    const neighbourSection = el(
      "section",
      {},
      el("h3", { text: request.sent.length ? "Nearest examples of the last user message" : "Nearest examples" }),
      el(
        "div",
        { class: "table-wrap" },
        el(
          "table",
          { id: "neighbours" },
          el("caption", { class: "hint", text: "Dashed line: the route's threshold; grey bars did not clear it." }),
          el(
            "thead",
            {},
            el("tr", {}, el("th", { class: "n", text: "#" }), el("th", { text: "similarity" }), el("th", { text: "route" }), el("th", { text: "example" })),
          ),
          el("tbody", {}, rows),
        ),
      ),
    );

    clearTurnMarks();
    let turnSection = null;
    if (d.turns && d.turns.length) {
      const items = d.turns.map((t) => {
        const item = request.sent[t.index];
        if (item) {
          item.classList.add("decided");
          const share = item.querySelector(".share");
          share.hidden = false;
          share.textContent = `decided the route: ${pct(t.share)} of the evidence`;
        }
        const role = request.body.messages ? request.body.messages[t.index].role : "user";
        return el("li", { "data-index": t.index }, `message ${t.index + 1} (${role}): ${pct(t.share)} of the evidence`);
      });
      turnSection = el("section", {}, el("h3", { text: "Messages that decided" }), el("ul", { id: "decision-turns" }, items));
    }

    const shownAt = performance.now();
    const footer = el(
      "p",
      { class: "hint" },
      `index version ${d.index_version} · shown ${Math.round(shownAt - startedAt)} ms after the last keystroke`,
    );
    box.replaceChildren(...present(verdict, el("div", { class: "facts" }, score, voteSection), turnSection, neighbourSection, footer));
    box.dataset.state = "shown";
    box.dataset.query = request.label;
    box.dataset.shownAt = String(shownAt);
  }

  // -- routes --------------------------------------------------------------------------------
  function agentText(agent) {
    return agent.kind === "llm" ? `${agent.name} (LLM ${agent.model})` : `${agent.name} (${agent.kind})`;
  }

  function renderRoutes() {
    const r = state.routes;
    $("routes-summary").replaceChildren(
      el(
        "p",
        {},
        `${r.routes.length} routes in index version ${r.index_version}; k ${r.k}, threshold ${r.threshold}, ` +
          `margin ${r.margin}, threshold mode ${r.threshold_mode}, vote ${r.vote}. Queries that no route takes go to ` +
          `${r.default_route} (${agentText(r.default_agent)}). Open a route to search its examples.`,
      ),
    );
    const cards = r.routes.map((route, i) => {
      const search = el("input", { type: "search", id: `route-search-${i}`, placeholder: "filter examples" });
      const onlyNearer = el("input", { type: "checkbox", id: `route-nearer-${i}` });
      const count = el("p", { class: "hint", role: "status" });
      const list = el("ul", { class: "examples" });
      const body = el(
        "div",
        { class: "body" },
        el(
          "div",
          { class: "tools" },
          el("label", { for: search.id, text: `Search ${route.name} examples` }),
          search,
          el("label", {}, onlyNearer, " only examples nearer another route"),
        ),
        count,
        list,
      );
      const card = el(
        "details",
        { class: "route-card", "data-route": route.name },
        el(
          "summary",
          {},
          el("span", { class: "name", text: route.name }),
          el("span", { class: "meta", text: route.description }),
          el(
            "span",
            { class: "meta" },
            `${agentText(route.agent)} · `,
            el("span", { class: "example-count", text: route.examples }),
            ` examples · threshold ${route.threshold !== null ? route.threshold : `${r.threshold} (global)`}`,
          ),
        ),
        body,
      );
      const filter = () => {
        const needle = search.value.trim().toLowerCase();
        let shown = 0;
        for (const item of list.children) {
          const visible =
            (!needle || item.dataset.text.toLowerCase().includes(needle)) && (!onlyNearer.checked || item.dataset.nearer === "1");
          item.hidden = !visible;
          shown += visible ? 1 : 0;
        }
        const flagged = list.querySelectorAll("[data-nearer='1']").length;
        count.textContent = `${shown} of ${list.children.length} examples shown; ${flagged} nearer to another route than to their own.`;
      };
      search.addEventListener("input", filter);
      onlyNearer.addEventListener("change", filter);
      card.addEventListener("toggle", async () => {
        if (!card.open || card.dataset.loaded) return;
        card.dataset.loaded = "loading";
        count.textContent = "Loading examples…";
        try {
          const found = await api("GET", `/v1/routes/${encodeURIComponent(route.name)}/examples`);
          list.replaceChildren(...found.examples.map(exampleItem));
          card.dataset.loaded = "yes";
          filter();
        } catch (error) {
          delete card.dataset.loaded;
          count.textContent = errorText(error);
        }
      });
      return card;
    });
    $("routes-list").replaceChildren(...cards);
  }

  function exampleItem(example) {
    return el(
      "li",
      { "data-text": example.text, "data-nearer": example.nearer ? "1" : "0" },
      el("span", { text: example.text }),
      el("span", {
        class: "sim",
        text: example.own_similarity === null ? "only example" : `nearest own ${fixed(example.own_similarity, 3)}`,
      }),
      example.nearer
        ? el(
            "span",
            { class: "nearer" },
            `nearer to ${example.nearer.route}: “${example.nearer.text}” (${fixed(example.nearer.similarity, 3)})`,
          )
        : null,
    );
  }

  // -- index ---------------------------------------------------------------------------------
  function kv(pairs) {
    return el(
      "dl",
      { class: "kv" },
      pairs.map(([name, value, attrs]) => [el("dt", { text: name }), el("dd", attrs || {}, value)]),
    );
  }

  async function loadIndex() {
    const view = $("index-view");
    $("reindex-area").hidden = true;
    if (!state.admin) {
      view.replaceChildren(
        kv([["live version", state.routes.index_version, { id: "index-version" }]]),
        el("p", {
          class: "hint",
          text:
            ADMIN_MODE === "disabled"
              ? "Index details and re-indexing are admin endpoints, disabled on this service (no admin token is configured)."
              : "Index details and re-indexing need the admin token: enter it as the key to see them.",
        }),
      );
      return;
    }
    let s;
    try {
      s = await api("GET", "/admin/index");
    } catch (error) {
      view.replaceChildren(el("p", { class: "err", text: errorText(error) }));
      return;
    }
    const built = new Date(s.created_at);
    const table = s.route_table || {};
    view.replaceChildren(
      kv([
        ["live version", s.version, { id: "index-version" }],
        ["route set", s.route_set, { id: "index-route-set" }],
        ["built", `${s.created_at}${Number.isNaN(built.getTime()) ? "" : ` (${built.toLocaleString()})`}`, { id: "index-built" }],
        ["model", s.model, { id: "index-model" }],
        ["dimension", String(s.dimension)],
        ["examples", String(s.examples), { id: "index-examples" }],
        ["routes", String((table.routes || []).length), { id: "index-routes" }],
        ["versions kept", s.versions.join(", ")],
        ["routes directory", s.routes_dir],
        [
          "reload state",
          s.reload_error ? `failing: ${s.reload_error}` : "following the live pointer (last check ok)",
          { id: "index-reload", class: s.reload_error ? "err" : "ok" },
        ],
        [
          "last re-index",
          s.reindex_running ? "running" : s.reindex_error ? `failed: ${s.reindex_error}` : "no error",
          { id: "index-reindex-error", class: s.reindex_error ? "err" : "" },
        ],
      ]),
    );
    $("reindex-area").hidden = false;
  }

  async function reindex() {
    const button = $("reindex");
    const out = $("reindex-result");
    button.disabled = true;
    out.className = "";
    out.textContent = "Re-indexing from the routes directory…";
    try {
      const r = await api("POST", "/admin/reindex", {});
      out.textContent = r.changed
        ? `Published ${r.version}: ${r.routes} routes, ${r.examples} examples (${r.embedded} embedded, ${r.reused} reused) in ${r.seconds} s; serving ${r.serving}.`
        : `Nothing changed: still ${r.version} (${r.routes} routes, ${r.examples} examples); serving ${r.serving}.`;
      state.routes = await api("GET", "/v1/routes");
      renderLive();
      renderRoutes();
      document.dispatchEvent(new CustomEvent("playground:reindexed", { detail: r }));
    } catch (error) {
      out.className = "err";
      const problems = error.body && Array.isArray(error.body.problems) ? ` ${error.body.problems.join("; ")}` : "";
      out.textContent = `Re-index failed: ${errorText(error)}${problems}`;
    } finally {
      button.disabled = false;
      await loadIndex();
    }
  }

  // -- evaluation ----------------------------------------------------------------------------
  async function loadEvalFiles() {
    try {
      const found = await api("GET", "/v1/evals");
      const select = $("eval-file");
      for (const name of found.files) select.append(el("option", { value: name, text: name }));
    } catch (error) {
      $("eval-status").textContent = errorText(error);
    }
  }

  function setupEval() {
    $("eval-upload").addEventListener("change", async () => {
      const file = $("eval-upload").files[0];
      if (!file) return;
      $("eval-text").value = await file.text();
      $("eval-file").value = "";
      $("eval-status").textContent = `Loaded ${file.name}; press Evaluate.`;
    });
    $("eval-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!state.ready) return;
      const file = $("eval-file").value;
      const text = $("eval-text").value;
      if (!file && !text.trim()) {
        $("eval-status").textContent = "Choose a shipped file, upload one or paste labelled queries first.";
        return;
      }
      const button = $("eval-run");
      button.disabled = true;
      $("eval-status").textContent = "Evaluating…";
      try {
        const result = await api("POST", "/v1/evaluate", file ? { file } : { jsonl: text });
        renderEval(result);
        const what = result.kind === "conversations" ? `${result.report.scores.counts.all} labelled turns` : `${result.report.queries} queries`;
        $("eval-status").textContent = `Evaluated ${what} from ${result.source} in ${result.seconds} s.`;
      } catch (error) {
        $("eval-result").replaceChildren();
        $("eval-status").textContent = errorText(error);
      } finally {
        button.disabled = false;
      }
    });
  }

  function kpi(id, name, value, text) {
    return el("div", { class: "kpi" }, el("b", { id, "data-value": value, text }), name);
  }

  function renderEval(result) {
    if (result.kind === "conversations") {
      $("eval-result").replaceChildren(...window.PlaygroundTurns.render(result));
      return;
    }
    const r = result.report;
    const curve = result.curve;
    const svg = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(result.curve_svg)}`;
    const scored = r.fallback ? [...r.per_route, { ...r.fallback, route: `${r.fallback.route} (fallback)` }] : r.per_route;
    const perRoute = scored.map((s) =>
      el(
        "tr",
        {},
        el("td", { text: s.route }),
        el("td", { class: "n", text: fixed(s.precision, 3) }),
        el("td", { class: "n", text: fixed(s.recall, 3) }),
        el("td", { class: "n", text: fixed(s.f1, 3) }),
        el("td", { class: "n", text: s.support }),
        el("td", { class: "n", text: s.predicted }),
      ),
    );
    const confusions = r.confusions.map((c) =>
      el(
        "tr",
        {},
        el("td", { text: c.gold }),
        el("td", { text: c.predicted }),
        el("td", { class: "n", text: c.count }),
        el("td", { text: c.examples.join(" · ") }),
      ),
    );
    const step = Math.max(1, Math.round(curve.length / 16));
    const curveRows = curve
      .filter((_, i) => i % step === 0)
      .map((p) =>
        el(
          "tr",
          {},
          el("td", { class: "n", text: p.threshold.toFixed(2) }),
          el("td", { class: "n", text: pct(p.accuracy) }),
          el("td", { class: "n", text: pct(p.in_scope_accuracy) }),
          el("td", { class: "n", text: pct(p.fallback_recall) }),
          el("td", { class: "n", text: pct(p.fallback_precision) }),
        ),
      );
    // Column names; a leading "#" marks a numeric (right-aligned) column.
    const head = (...names) =>
      el("thead", {}, el("tr", {}, names.map((n) => el("th", { class: n.startsWith("#") ? "n" : "", text: n.replace(/^#/, "") }))));
    $("eval-result").replaceChildren(
      ...present(
      el(
        "p",
        { class: "hint" },
        `${result.source} on index version ${result.index_version} (model ${result.model}); ` +
          `${r.queries} queries: ${r.in_scope} in scope, ${r.out_of_scope} out of scope.`,
      ),
      el(
        "div",
        { class: "kpis", id: "eval-kpis" },
        kpi("eval-accuracy", "accuracy (fallback as a class)", r.accuracy, pct(r.accuracy)),
        kpi("eval-in-scope", "in-scope accuracy", r.in_scope_accuracy, pct(r.in_scope_accuracy)),
        kpi("eval-fallback-recall", "fallback recall", r.fallback_recall, pct(r.fallback_recall)),
        kpi("eval-fallback-precision", "fallback precision", r.fallback_precision, pct(r.fallback_precision)),
        kpi("eval-queries", "queries", r.queries, String(r.queries)),
      ),
      r.unknown_labels.length ? el("p", { class: "err", text: `Labels naming no route: ${r.unknown_labels.join(", ")}` }) : null,
      el(
        "figure",
        { class: "plot" },
        el("img", {
          id: "eval-curve",
          src: svg,
          width: 640,
          height: 300,
          alt: `Accuracy, in-scope accuracy, fallback recall and fallback precision against the global threshold, from ${curve[0].threshold} to ${curve[curve.length - 1].threshold}; the index's threshold is ${result.params.threshold}.`,
        }),
        el("figcaption", { class: "hint", text: "The figures if the global threshold (and every route threshold, shifted alike) were moved." }),
      ),
      el(
        "details",
        {},
        el("summary", { text: "The curve as a table" }),
        el("div", { class: "table-wrap" }, el("table", {}, head("#threshold", "#accuracy", "#in-scope", "#fallback recall", "#fallback precision"), el("tbody", {}, curveRows))),
      ),
      el(
        "div",
        { class: "two-col" },
        el(
          "section",
          {},
          el("h3", { text: "Confusion pairs (labelled → decided)" }),
          confusions.length
            ? el("div", { class: "table-wrap" }, el("table", { id: "eval-confusions" }, head("labelled", "decided", "#queries", "examples"), el("tbody", {}, confusions)))
            : el("p", { class: "ok", text: "No confusions: every query went where its label says." }),
        ),
        el(
          "section",
          {},
          el("h3", { text: "Per route, worst F1 first; the fallback last" }),
          el("div", { class: "table-wrap" }, el("table", { id: "eval-routes" }, head("route", "#precision", "#recall", "#F1", "#labelled", "#decided"), el("tbody", {}, perRoute))),
        ),
      ),
      ),
    );
  }

  // What the Review tab (review.js) shares with the rest of the page.
  window.Playground = { api, el, errorText, fixed, pct, state, selectTab: (name) => $(`tab-${name}`).click() };

  // -- go ------------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    setupTabs();
    setupKey();
    setupSets();
    setupTry();
    setupEval();
    $("reindex").addEventListener("click", reindex);
    start();
  });
})();
