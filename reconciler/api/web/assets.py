"""The fleet page's stylesheet and script, served as files (the CSP allows no inline code).

Kept as text here rather than as package data: nothing to list in pyproject.toml, and a
`pip install .` (the image) carries them like any module. The script writes only through
`textContent` and `classList`, never `innerHTML`, and puts ids in URLs through
`encodeURIComponent`.
"""

from __future__ import annotations

STYLE = """\
:root { --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --line: #d0d7de; --muted: #57606a; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; padding: 0 1.5rem 3rem;
       max-width: 76rem; color: #1f2328; background: #fff; }
h1 { font-size: 1.4rem; margin: 1rem 0 .25rem; }
h2 { font-size: 1.1rem; margin: 0 .75rem 0 0; display: inline-block; }
code { font: 13px ui-monospace, monospace; }
.top nav a { margin-right: .75rem; }
.facts { color: var(--muted); margin: .25rem 0; }
.fact { margin-right: 1rem; white-space: nowrap; }
.fact .k { color: #1f2328; }
.tools { display: flex; flex-wrap: wrap; gap: 1rem; margin: 1rem 0; }
.tools form { border: 1px solid var(--line); border-radius: 6px; padding: .75rem;
              flex: 1 1 28rem; }
.tools h2 { display: block; margin-bottom: .5rem; }
label { margin-right: .5rem; }
input, select, button { font: inherit; padding: .2rem .4rem; }
small { display: block; color: var(--muted); margin-top: .35rem; }
.result { display: block; margin-top: .4rem; min-height: 1.4em; }
.result.ok { color: var(--ok); }
.result.bad { color: var(--bad); }
.kind { border-top: 2px solid var(--line); padding-top: .75rem; margin-top: 1.25rem; }
.kind header { display: flex; flex-wrap: wrap; align-items: baseline; gap: .5rem; }
.kind header .result { flex-basis: 100%; margin: 0; }
.alert { color: var(--bad); margin: .3rem 0; }
.note { color: var(--muted); margin: .3rem 0; }
table { border-collapse: collapse; width: 100%; margin-top: .5rem; }
th, td { text-align: left; padding: .2rem .6rem; border-bottom: 1px solid var(--line); }
th { font-weight: 600; color: var(--muted); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.empty { color: var(--muted); }
tr.found { background: #fff8c5; outline: 2px solid #d4a72c; }
.phase { font-weight: 600; }
.phase.ok { color: var(--ok); }
.phase.warn { color: var(--warn); }
.phase.bad { color: var(--bad); }
.stale { color: var(--warn); margin: .3rem 0; }
th.num { text-align: right; }
"""

SCRIPT = """\
"use strict";
(() => {
  const TOKEN_KEY = "reconciler.apiToken";
  const API = document.body.dataset.api;
  const byId = (id) => document.getElementById(id);
  const path = (...parts) => [API, ...parts.map(encodeURIComponent)].join("/");

  function say(el, text, ok) {
    el.textContent = text;
    el.classList.remove("ok", "bad");
    if (ok !== undefined) el.classList.add(ok ? "ok" : "bad");
  }

  async function errorOf(resp) {
    try {
      const body = await resp.json();
      return body.error || JSON.stringify(body);
    } catch (_) {
      return resp.statusText;
    }
  }

  // The operator's token: this tab only (sessionStorage), sent only with POST orchestrate.
  const token = byId("token");
  token.value = sessionStorage.getItem(TOKEN_KEY) || "";
  token.addEventListener("input", () => {
    const value = token.value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  });
  byId("token-forget").addEventListener("click", () => {
    token.value = "";
    sessionStorage.removeItem(TOKEN_KEY);
  });
  byId("auth").addEventListener("submit", (ev) => ev.preventDefault());

  // Where does resource X run: GET .../:resource/:id/instances -> {"runIn": "<instanceId>"}.
  byId("lookup").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const kind = byId("lookup-kind").value;
    const id = byId("lookup-id").value.trim();
    const out = byId("lookup-result");
    document.querySelectorAll("tr.found").forEach((tr) => tr.classList.remove("found"));
    if (!id) return;
    say(out, "looking up " + id + " ...");
    try {
      const resp = await fetch(path(kind, id, "instances"), {
        headers: { Accept: "application/json" },
      });
      if (!resp.ok) {
        say(out, resp.status + ": " + (await errorOf(resp)), false);
        return;
      }
      const runIn = String((await resp.json()).runIn);
      const row = byId(["inst", kind, runIn].join("-"));
      let text = kind + " " + id + " runs in instance " + runIn;
      if (row) {
        text += " (pod " + row.dataset.pod + ")";
        row.classList.add("found");
        row.scrollIntoView({ block: "nearest" });
      } else {
        text += " (not on this page yet: refresh)";
      }
      say(out, text, true);
    } catch (err) {
      say(out, "request failed: " + err, false);
    }
  });

  // Live values: every few seconds (and right after an orchestration) the page's numbers,
  // phases and heartbeat ages are set from /v1/status, the snapshot the page was rendered
  // from. Instances that come or go need the server's markup: the kind says "refresh".
  const PHASE_CLASS = { Running: "ok", Pending: "warn", Succeeded: "bad", Failed: "bad" };
  const KIND_FACTS = ["rows", "instances", "capacity", "unassigned", "maxInstances",
                      "resourcePerInstance"];

  function setText(scope, selector, text) {
    const el = scope.querySelector(selector);
    if (el && text !== undefined && text !== null) el.textContent = String(text);
  }

  function heartbeatText(age) {
    if (age === null || age === undefined) return "-";
    return (age >= 10 ? age.toFixed(0) : age.toFixed(1)) + " s";
  }

  function showInstance(row, inst) {
    setText(row, '[data-col="used"]', inst.used + " / " + inst.count);
    setText(row, '[data-col="reload"]', inst.reloadTimes);
    setText(row, '[data-col="heartbeat"]', heartbeatText(inst.heartbeatAge));
    const phase = row.querySelector('[data-col="phase"]');
    const text = String(inst.phase || "Missing");
    phase.textContent = text;
    phase.classList.remove("ok", "warn", "bad");
    phase.classList.add(text.endsWith("(terminating)") ? "warn" : PHASE_CLASS[text] || "bad");
  }

  function showKind(kind, k) {
    const section = byId("kind-" + kind);
    if (!section) return;
    for (const name of KIND_FACTS) setText(section, '[data-fact="' + name + '"]', k[name]);
    const seen = new Set();
    let changed = false;
    for (const inst of k.instanceList || []) {
      const row = byId(["inst", kind, inst.instanceId].join("-"));
      seen.add(String(inst.instanceId));
      if (row) showInstance(row, inst);
      else changed = true;
    }
    section.querySelectorAll("tr[data-instance]").forEach((tr) => {
      if (!seen.has(tr.dataset.instance)) changed = true;
    });
    section.querySelector(".stale").hidden = !changed;
  }

  async function refresh() {
    try {
      const resp = await fetch("/v1/status", { headers: { Accept: "application/json" } });
      if (!resp.ok) return;
      const status = await resp.json();
      for (const [kind, k] of Object.entries(status.kinds || {})) showKind(kind, k);
      const last = status.lastPass || {};
      setText(document, '[data-fact="last pass"]', last.trigger || "none yet");
      setText(document, '[data-fact="ops"]', last.ops);
      setText(document, '[data-fact="failed"]', (last.failed || []).length);
      setText(document, '[data-fact="updated"]',
              new Date().toISOString().slice(11, 19) + " UTC");
    } catch (_) {
      // the daemon is restarting or gone: keep what is shown, try again later
    }
  }
  setInterval(refresh, 5000);

  // Orchestrate: POST .../:resource/orchestrate with the bearer token; show the new layout.
  function showOrchestration(kind, body) {
    const ids = body.instances.reduce((n, inst) => n + inst.used, 0);
    return kind + " rebalanced: " + body.instances.length + " instances, " + ids +
      " ids, " + (body.unassigned || 0) + " unassigned";
  }

  // A POST .../:resource/<action> with the operator's token, from a button of class <action>:
  // orchestrate (show the new layout) and confirm (a plan held by the safety valve goes ahead).
  function onPost(action, busy, done) {
    document.querySelectorAll("button." + action).forEach((button) => {
      button.addEventListener("click", async () => {
        const kind = button.dataset.kind;
        const out = byId(action + "-result-" + kind);
        const headers = { Accept: "application/json" };
        const value = token.value.trim();
        if (value) headers.Authorization = "Bearer " + value;
        button.disabled = true;
        if (busy) say(out, busy(kind));
        try {
          const resp = await fetch(path(kind, action), { method: "POST", headers });
          if (resp.ok) {
            say(out, done(kind, await resp.json()), true);
            await refresh();
          } else {
            const hint = resp.status === 401 ? " (type the operator token above)" : "";
            say(out, resp.status + ": " + (await errorOf(resp)) + hint, false);
          }
        } catch (err) {
          say(out, "request failed: " + err, false);
        } finally {
          button.disabled = false;
        }
      });
    });
  }

  onPost("orchestrate", (kind) => "orchestrating " + kind + " ...", showOrchestration);
  onPost("confirm", null, (kind) => kind + ": confirmed; the held plan goes ahead");
})();
"""
