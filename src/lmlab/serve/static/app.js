// lmlab playground: plain JavaScript against the server's own OpenAI-compatible API.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { models: [], chat: [], abort: null };

// ---- API ---------------------------------------------------------------------------------
function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

async function errorText(resp) {
  try {
    const body = await resp.json();
    if (body.error) return body.error.message;
  } catch (e) { /* not JSON */ }
  return resp.status + " " + resp.statusText;
}

function setStatus(text, isError) {
  const s = $("status");
  s.textContent = text || "";
  s.classList.toggle("error", !!isError);
}

// POST `body` to `path` with stream: true; call onChunk(parsed JSON) per server-sent event.
async function streamPost(path, body, onChunk, signal) {
  const resp = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body), signal });
  if (!resp.ok) {
    if (resp.status === 401) $("key-box").classList.remove("hidden");
    throw new Error(await errorText(resp));
  }
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const event = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        const msg = JSON.parse(data);
        if (msg.error) throw new Error(msg.error.message);
        onChunk(msg);
      }
    }
  }
}

async function loadModels() {
  const resp = await fetch("/v1/models", { headers: headers() });
  if (resp.status === 401) {
    $("key-box").classList.remove("hidden");
    setStatus("this server needs an API key", true);
    return;
  }
  if (!resp.ok) { setStatus(await errorText(resp), true); return; }
  state.models = (await resp.json()).data;
  const sel = $("model");
  const previous = sel.value;
  sel.innerHTML = "";
  for (const m of state.models) {
    const opt = document.createElement("option");
    opt.value = m.id;
    opt.textContent = m.id + (KIND_LABELS[m.kind] ? ` (${KIND_LABELS[m.kind]})` : "");
    sel.appendChild(opt);
  }
  if (state.models.some((m) => m.id === previous)) sel.value = previous;
  setStatus("");
  onModelChange();
}

const KIND_LABELS = { embeddings: "word vectors", classify: "classifier", qa: "question answering",
                      translate: "translation", summarize: "summarisation" };
// the tabs each kind of model can use; the first is where a model change lands
const KIND_TABS = { lm: ["complete", "chat"], embeddings: ["explore"], classify: ["classify"], qa: ["qa"],
                    translate: ["translate"], summarize: ["summarize"] };

function currentModel() {
  return state.models.find((m) => m.id === $("model").value);
}

function onModelChange() {
  const m = currentModel();
  if (!m) return;
  const params = m.params != null ? `${m.params.toLocaleString()} parameters` : "";
  let info;
  if (m.kind === "embeddings") info = `word vectors, ${m.vocab_size.toLocaleString()} words`;
  else if (m.kind === "classify") info = `${m.family} classifier, ${params}; labels: ${m.labels.join(", ")}`;
  else if (m.kind === "qa") info = `question answering (${m.family}), ${params}`;
  else if (m.kind === "translate") info = `translation ${m.direction} (${m.family}), ${params}, sources up to ${m.context_length} tokens`;
  else if (m.kind === "summarize") info = `summarisation, ${m.language} (${m.family}), ${params}, texts up to ${m.context_length} tokens`;
  else info = `${m.family}, ${params}, context ${m.context_length ?? "unbounded"}, at most ${m.max_tokens} new tokens`;
  $("model-info").textContent = info;
  if (m.kind === "lm" && m.max_tokens) {  // the server refuses more than its cap: stay within it
    $("max_tokens").max = m.max_tokens;
    if (num("max_tokens") > m.max_tokens) $("max_tokens").value = m.max_tokens;
  }
  const allowed = KIND_TABS[m.kind] || ["complete"];
  for (const t of document.querySelectorAll(".tab")) t.disabled = !allowed.includes(t.dataset.tab);
  const active = document.querySelector(".tab.active").dataset.tab;
  showTab(allowed.includes(active) ? active : allowed[0]);  // also clears a stale error
}

// ---- sampling controls ---------------------------------------------------------------------
function num(id) {
  const v = $(id).value.trim();
  return v === "" ? null : Number(v);
}

function samplingBody() {
  const body = { model: $("model").value, max_tokens: num("max_tokens") || 16,
                 temperature: num("temperature") ?? 1 };
  const topP = num("top_p"), topK = num("top_k"), minP = num("min_p");
  const rep = num("repetition_penalty"), seed = num("seed");
  if (topP !== null && topP < 1) body.top_p = topP;
  if (topK) body.top_k = topK;
  if (minP) body.min_p = minP;
  if (rep !== null && rep !== 1) body.repetition_penalty = rep;
  if (seed !== null) body.seed = seed;
  const stop = $("stop").value.split(",").map((s) => s.replace(/\\n/g, "\n").replace(/\\t/g, "\t"))
    .filter((s) => s.length > 0);
  if (stop.length) body.stop = stop;
  if ($("ignore_eos").checked) body.ignore_eos = true;
  return body;
}

// ---- tokens with probabilities ---
// A token's colour says how probable the model found it: red (unlikely) through yellow to
// green (near certain). The "colour tokens by probability" box turns the colours off.
function probColour(p) {
  const hue = Math.round(120 * Math.max(0, Math.min(1, p)));
  return `hsl(${hue}, 70%, 84%)`;
}

function setColouring(on) {
  document.body.classList.toggle("plain-tokens", !on);
  localStorage.setItem("lmlab-colour-tokens", on ? "1" : "0");
}

// --------------------------------------------------------------
// A TokenView renders streamed text as spans, one per chunk, each carrying the probability
// of its token(s) and the alternatives; tokens whose text is held back (a possible stop
// string, half a character) join the next span.
class TokenView {
  constructor(container) { this.container = container; this.pending = []; this.count = 0; }
  add(text, infos) {
    this.pending.push(...infos);
    this.count += infos.length;
    if (!text) return;
    const span = document.createElement("span");
    span.className = "tok";
    span.textContent = text;
    if (this.pending.length) {
      span._infos = this.pending;
      const p = Math.exp(this.pending[this.pending.length - 1].logprob);
      span.dataset.p = p.toFixed(4);
      span.style.background = probColour(p);
    }
    this.pending = [];
    this.container.appendChild(span);
  }
}

function showTooltip(span, x, y) {
  const tip = $("tooltip");
  tip.innerHTML = "";
  for (const info of span._infos) {
    const head = document.createElement("div");
    head.className = "chosen";
    head.textContent = `${JSON.stringify(info.token)}  p = ${Math.exp(info.logprob).toFixed(4)}`;
    tip.appendChild(head);
    if (info.top.length) {
      const table = document.createElement("table");
      for (const alt of info.top) {
        const tr = table.insertRow();
        const p = Math.exp(alt.logprob);
        tr.insertCell().textContent = JSON.stringify(alt.token);
        tr.insertCell().textContent = p.toFixed(4);
        const bar = document.createElement("span");
        bar.className = "bar";
        bar.style.width = Math.max(1, Math.round(p * 80)) + "px";
        tr.insertCell().appendChild(bar);
        if (alt.token === info.token) tr.className = "chosen";
      }
      tip.appendChild(table);
    }
  }
  tip.classList.remove("hidden");
  const w = tip.offsetWidth, h = tip.offsetHeight;
  tip.style.left = Math.min(x + 12, window.innerWidth - w - 8) + "px";
  tip.style.top = (y + 16 + h > window.innerHeight ? y - h - 8 : y + 16) + "px";
}

document.addEventListener("mouseover", (e) => {
  const span = e.target.closest && e.target.closest(".tok");
  if (span && span._infos) showTooltip(span, e.clientX, e.clientY);
  else $("tooltip").classList.add("hidden");
});

// completions' legacy logprobs -> [{token, logprob, top: [{token, logprob}]}]
function completionInfos(lp) {
  if (!lp) return [];
  return lp.tokens.map((t, i) => ({
    token: t, logprob: lp.token_logprobs[i],
    top: Object.entries(lp.top_logprobs[i] || {}).map(([token, logprob]) => ({ token, logprob })),
  }));
}

function chatInfos(lp) {
  if (!lp || !lp.content) return [];
  return lp.content.map((c) => ({ token: c.token, logprob: c.logprob,
    top: (c.top_logprobs || []).map((a) => ({ token: a.token, logprob: a.logprob })) }));
}

function stats(el, count, t0, tFirst) {
  const secs = (performance.now() - t0) / 1000;
  const first = tFirst ? `, first token after ${((tFirst - t0) / 1000).toFixed(2)} s` : "";
  el.textContent = `${count} tokens in ${secs.toFixed(2)} s (${(count / Math.max(secs, 1e-3)).toFixed(1)} tokens/s${first})`;
}

// ---- completion tab -------------------------------------------------------------------------
async function generate() {
  const out = $("output");
  out.innerHTML = "";
  const promptSpan = document.createElement("span");
  promptSpan.className = "prompt-text";
  promptSpan.textContent = $("prompt").value;
  out.appendChild(promptSpan);
  const view = new TokenView(out);
  const body = { ...samplingBody(), prompt: $("prompt").value, stream: true,
                 logprobs: num("top_logprobs") ?? 0 };
  const t0 = performance.now();
  let tFirst = null;
  await run("complete", async (signal) => {
    await streamPost("/v1/completions", body, (chunk) => {
      for (const c of chunk.choices) {
        if (tFirst === null) tFirst = performance.now();
        view.add(c.text, completionInfos(c.logprobs));
        stats($("complete-stats"), view.count, t0, tFirst);
      }
    }, signal);
  });
}

// ---- chat tab ---------------------------------------------------------------------------------
function addMessage(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = role === "user" ? "you" : "model";
  div.appendChild(who);
  const body = document.createElement("span");
  body.className = "body";
  body.textContent = text;
  div.appendChild(body);
  $("chat-log").appendChild(div);
  $("chat-log").scrollTop = $("chat-log").scrollHeight;
  return body;
}

async function sendChat() {
  const text = $("chat-input").value.trim();
  if (!text || state.abort) return;
  $("chat-input").value = "";
  state.chat.push({ role: "user", content: text });
  addMessage("user", text);
  const target = addMessage("assistant", "");
  const view = new TokenView(target);
  const messages = [];
  const system = $("system").value.trim();
  if (system) messages.push({ role: "system", content: system });
  messages.push(...state.chat);
  const top = num("top_logprobs") ?? 0;
  const body = { ...samplingBody(), messages, stream: true, logprobs: true, top_logprobs: top };
  let reply = "";
  const t0 = performance.now();
  let tFirst = null;
  const ok = await run("chat", async (signal) => {
    await streamPost("/v1/chat/completions", body, (chunk) => {
      for (const c of chunk.choices) {
        const piece = (c.delta && c.delta.content) || "";
        const infos = chatInfos(c.logprobs);
        if (!piece && !infos.length) continue;
        if (tFirst === null) tFirst = performance.now();
        reply += piece;
        view.add(piece, infos);
        stats($("chat-stats"), view.count, t0, tFirst);
      }
      $("chat-log").scrollTop = $("chat-log").scrollHeight;
    }, signal);
  });
  state.chat.push({ role: "assistant", content: reply });
  if (!ok && !reply) target.parentElement.classList.add("error");
}

// ---- embeddings explorer ---------------------------------------------------------------------
async function explore(wordOverride) {
  if (wordOverride) { $("nn-word").value = wordOverride; $("nn-minus").value = ""; }
  const words = (s) => s.split(/[\s,]+/).filter((w) => w);
  const m = currentModel();
  const tbody = $("nn-results").tBodies[0];
  tbody.innerHTML = "";
  if (!m || m.kind !== "embeddings") { setStatus("choose a word-vectors model first", true); return; }
  const body = { model: m.id, positive: words($("nn-word").value),
                 negative: words($("nn-minus").value), n: num("nn-n") || 10 };
  if (!body.positive.length) return;
  const resp = await fetch("/v1/neighbors", { method: "POST", headers: headers(), body: JSON.stringify(body) });
  if (!resp.ok) { setStatus(await errorText(resp), true); return; }
  setStatus("");
  for (const nb of (await resp.json()).neighbors) {
    const tr = tbody.insertRow();
    const a = document.createElement("a");
    a.textContent = nb.word;
    a.title = "explore " + nb.word;
    a.addEventListener("click", () => explore(nb.word));
    tr.insertCell().appendChild(a);
    tr.insertCell().textContent = nb.similarity.toFixed(4);
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = Math.max(1, Math.round(Math.max(0, nb.similarity) * 200)) + "px";
    tr.insertCell().appendChild(bar);
  }
}

// ---- classification and question answering ------------------------------------------------------
async function postJSON(path, body) {
  const resp = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body) });
  if (!resp.ok) {
    if (resp.status === 401) $("key-box").classList.remove("hidden");
    throw new Error(await errorText(resp));
  }
  return resp.json();
}

function barRow(tbody, name, p, best) {
  const tr = tbody.insertRow();
  if (best) tr.className = "best";
  tr.insertCell().textContent = name;
  const bar = document.createElement("span");
  bar.className = "bar";
  bar.style.width = Math.max(1, Math.round(p * 240)) + "px";
  tr.insertCell().appendChild(bar);
  const pct = tr.insertCell();
  pct.className = "pct";
  pct.textContent = (100 * p).toFixed(1) + "%";
  return tr;
}

async function classifyText() {
  const m = currentModel();
  const text = $("cls-input").value;
  const tbody = $("cls-results").tBodies[0];
  tbody.innerHTML = "";
  $("cls-explanation").classList.add("hidden");
  if (!m || m.kind !== "classify") { setStatus("choose a classification run first", true); return; }
  const body = { model: m.id, input: text };
  if ($("cls-explain").value) body.explain = $("cls-explain").value;
  const t0 = performance.now();
  await busy($("cls-go"), async () => {
    const item = (await postJSON("/v1/classify", body)).data[0];
    const rows = Object.entries(item.probabilities).sort((a, b) => b[1] - a[1]);
    for (const [name, p] of rows) barRow(tbody, name, p, name === item.label);
    $("cls-stats").textContent = `${item.num_tokens} tokens${item.truncated ? ` (the first ${m.max_len} read)` : ""}, ` +
      `${((performance.now() - t0) / 1000).toFixed(2)} s`;
    if (item.explanation) showExplanation(item.explanation);
  });
}

// tokens shaded by their score: green pushed towards the label, red away from it
function showExplanation(ex) {
  const box = $("cls-explanation");
  box.innerHTML = "";
  const note = document.createElement("div");
  note.className = "muted small";
  note.textContent = `${ex.method === "grad" ? "gradient × input" : "occlusion"} for "${ex.label}": green pushed towards it, red away`;
  box.appendChild(note);
  const top = Math.max(1e-9, ...ex.tokens.map(([, s]) => Math.abs(s)));
  ex.tokens.forEach(([tok, score], i) => {
    if (i) box.appendChild(document.createTextNode(" "));
    const span = document.createElement("span");
    span.className = "expl";
    span.textContent = tok;
    span.title = score.toFixed(4);
    const a = (0.55 * Math.abs(score) / top).toFixed(3);
    span.style.background = score >= 0 ? `rgba(46, 160, 67, ${a})` : `rgba(207, 34, 46, ${a})`;
    box.appendChild(span);
  });
  box.classList.remove("hidden");
}

async function answerQuestion() {
  const m = currentModel();
  const tbody = $("qa-answers").tBodies[0];
  tbody.innerHTML = "";
  $("qa-view").classList.add("hidden");
  if (!m || m.kind !== "qa") { setStatus("choose a question-answering run first", true); return; }
  const context = $("qa-context").value;
  const body = { model: m.id, question: $("qa-question").value, context, top: num("qa-top") || 1 };
  const t0 = performance.now();
  await busy($("qa-go"), async () => {
    const answers = (await postJSON("/v1/qa", body)).answers;
    answers.forEach((a, i) => {
      const tr = barRow(tbody, a.text, Math.max(0, Math.min(1, a.score)), i === 0);
      tr.cells[2].textContent = a.score.toFixed(3);
      tr.classList.add("clickable");
      tr.title = `characters ${a.start}–${a.end}; click to show it in the passage`;
      tr.addEventListener("click", () => showAnswer(context, a, tr));
    });
    $("qa-stats").textContent = `${answers.length} answer${answers.length === 1 ? "" : "s"}, ${((performance.now() - t0) / 1000).toFixed(2)} s`;
    if (answers.length) showAnswer(context, answers[0], tbody.rows[0]);
  });
}

// each text's translations or summaries, best first, with the model's length-normalised
// log-probability: lines of the Translate tab, blank-line-separated texts of the Summarize tab
const SEQ2SEQ = {
  translate: { prefix: "tr", route: "/v1/translate", what: "a translation run", split: (t) => t.split("\n") },
  summarize: { prefix: "sum", route: "/v1/summarize", what: "a summarisation run", split: (t) => t.split(/\n\s*\n/) },
};

async function seq2seq(kind) {
  const { prefix, route, what, split } = SEQ2SEQ[kind];
  const m = currentModel();
  const tbody = $(`${prefix}-results`).tBodies[0];
  tbody.innerHTML = "";
  if (!m || m.kind !== kind) { setStatus(`choose ${what} first`, true); return; }
  const texts = split($(`${prefix}-input`).value).map((t) => t.trim()).filter((t) => t);
  if (!texts.length) { setStatus("type a text first", true); return; }
  const body = { model: m.id, input: texts, beam: num(`${prefix}-beam`) || 1, n_best: num(`${prefix}-nbest`) || 1 };
  const t0 = performance.now();
  await busy($(`${prefix}-go`), async () => {
    const out = await postJSON(route, body);
    out.data.forEach((item) => {
      item.alternatives.forEach((a, k) => {
        const tr = tbody.insertRow();
        if (k === 0) tr.className = "best";
        tr.insertCell().textContent = k === 0 ? texts[item.index] + (item.truncated ? " (cut to fit)" : "") : "";
        tr.insertCell().textContent = a.text;
        const sc = tr.insertCell();
        sc.className = "pct";
        sc.textContent = a.score.toFixed(3);
      });
    });
    const n = out.data.length, unit = kind === "translate" ? "line" : "text";
    $(`${prefix}-stats`).textContent = `${n} ${unit}${n === 1 ? "" : "s"}, ` +
      `${out.usage.completion_tokens} tokens out, ${((performance.now() - t0) / 1000).toFixed(2)} s`;
  });
}

// the passage with the answer's characters [start, end) highlighted
function showAnswer(context, a, row) {
  for (const r of $("qa-answers").tBodies[0].rows) r.classList.toggle("selected", r === row);
  const view = $("qa-view");
  view.innerHTML = "";
  view.appendChild(document.createTextNode(context.slice(0, a.start)));
  const mark = document.createElement("mark");
  mark.className = "answer";
  mark.textContent = context.slice(a.start, a.end);
  view.appendChild(mark);
  view.appendChild(document.createTextNode(context.slice(a.end)));
  view.classList.remove("hidden");
  mark.scrollIntoView({ block: "nearest" });
}

async function busy(button, fn) {
  button.disabled = true;
  setStatus("working…");
  try {
    await fn();
    setStatus("");
  } catch (e) {
    setStatus(e.message, true);
  } finally {
    button.disabled = false;
  }
}

// ---- plumbing -----------------------------------------------------------------------------------
async function run(which, fn) {
  const go = which === "chat" ? $("chat-send") : $("generate");
  const stop = which === "chat" ? $("chat-stop") : $("stop-btn");
  state.abort = new AbortController();
  go.disabled = true; stop.disabled = false;
  setStatus("generating…");
  let ok = true;
  try {
    await fn(state.abort.signal);
    setStatus("");
  } catch (e) {
    ok = false;
    setStatus(e.name === "AbortError" ? "stopped" : e.message, e.name !== "AbortError");
  } finally {
    state.abort = null;
    go.disabled = false; stop.disabled = true;
  }
  return ok;
}

function showTab(name) {
  for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t.dataset.tab === name);
  for (const p of document.querySelectorAll(".panel")) p.classList.toggle("hidden", p.id !== "panel-" + name);
  $("controls").classList.toggle("hidden", name !== "complete" && name !== "chat");
  if ($("status").classList.contains("error")) setStatus("");  // an error belongs to where it happened
}

function init() {
  $("api-key").value = localStorage.getItem("lmlab-api-key") || "";
  $("api-key").addEventListener("change", () => {
    localStorage.setItem("lmlab-api-key", $("api-key").value.trim());
    loadModels();
  });
  for (const t of document.querySelectorAll(".tab")) t.addEventListener("click", () => showTab(t.dataset.tab));
  $("model").addEventListener("change", onModelChange);
  $("generate").addEventListener("click", generate);
  $("stop-btn").addEventListener("click", () => state.abort && state.abort.abort());
  $("chat-stop").addEventListener("click", () => state.abort && state.abort.abort());
  $("chat-send").addEventListener("click", sendChat);
  $("chat-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); sendChat(); }
  });
  $("chat-reset").addEventListener("click", () => { state.chat = []; $("chat-log").innerHTML = ""; });
  $("nn-go").addEventListener("click", () => explore());
  $("cls-go").addEventListener("click", classifyText);
  $("cls-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) classifyText();
  });
  $("qa-go").addEventListener("click", answerQuestion);
  for (const kind of Object.keys(SEQ2SEQ)) {
    const p = SEQ2SEQ[kind].prefix;
    $(`${p}-go`).addEventListener("click", () => seq2seq(kind));
    $(`${p}-input`).addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) seq2seq(kind);
    });
  }
  $("qa-question").addEventListener("keydown", (e) => { if (e.key === "Enter") answerQuestion(); });
  const colour = localStorage.getItem("lmlab-colour-tokens") !== "0";
  $("colour_tokens").checked = colour;
  setColouring(colour);
  $("colour_tokens").addEventListener("change", () => setColouring($("colour_tokens").checked));
  $("nn-word").addEventListener("keydown", (e) => { if (e.key === "Enter") explore(); });
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) generate();
  });
  loadModels();
}

init();
