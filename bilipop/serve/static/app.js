// bilipop serve: the comparison page. Plain JavaScript, no library, nothing fetched from elsewhere.
// Every piece of user text (titles, file names, server messages) is put on the page with textContent, never as HTML.
"use strict";

const MAX = 4;

const TEXT = {
  en: {
    heading: "bilipop: compare covers and titles",
    model: "Model:",
    drop: "Drop 1-4 cover images here, or",
    pick: "choose files",
    titlePlaceholder: (i) => (i === 1 ? "Title 1" : `Title ${i} (optional)`),
    compare: "Compare",
    heatmap: "Show what mattered (heatmap)",
    note: "Ranked by expected class (0 = very low … 4 = very high). Differences smaller than the model's interval " +
      "are noise; the floors are what a model that ignores the cover and title scores.",
    remove: "remove",
    tooMany: `At most ${MAX} covers; the rest were left out.`,
    needInput: "Add at least one cover and one title.",
    predicting: "Predicting…",
    explaining: (done, total) => `Heatmaps ${done}/${total}…`,
    explained: "Heatmaps ready.",
    accuracy: (split) => `${split} ordinal accuracy`,
    interval: "95% interval",
    floors: "Floors:",
    bestConstant: "best constant",
    majority: "majority class",
    uniform: "uniform random",
    study: "the study",
    notEvaluated: "Not evaluated yet: run bilipop evaluate RUN to see how far to trust it.",
    stale: "These figures are older than the model's weights: evaluate it again.",
    belowFloor: "This model does not beat the best constant guess on its test split: treat its rankings as noise.",
    winner: "Winner",
    expected: "expected class",
    cls: "class",
    beats: (rank) => `beats #${rank}`,
    closeCall: "A close call: the top two are hard to tell apart.",
    feed: "as in the feed",
    full: "full size",
    mattered: "title tokens that mattered:",
    none: "none",
    labels: ["very low", "low", "medium", "high", "very high"],
    error: "Error:",
  },
  zh: {
    heading: "bilipop：比较封面和标题",
    model: "模型：",
    drop: "把 1-4 张封面图片拖到这里，或",
    pick: "选择文件",
    titlePlaceholder: (i) => (i === 1 ? "标题 1" : `标题 ${i}（可选）`),
    compare: "比较",
    heatmap: "显示关键区域（热力图）",
    note: "按期望等级排序（0 = 很低 … 4 = 很高）。小于模型置信区间的差异只是噪声；基线是忽略封面和标题的模型能得到的分数。",
    remove: "移除",
    tooMany: `最多 ${MAX} 张封面，其余的未加入。`,
    needInput: "请至少添加一张封面和一个标题。",
    predicting: "预测中…",
    explaining: (done, total) => `热力图 ${done}/${total}…`,
    explained: "热力图已生成。",
    accuracy: (split) => `${split === "test" ? "测试集" : split}有序准确率`,
    interval: "95% 置信区间",
    floors: "基线：",
    bestConstant: "最佳常数",
    majority: "多数类",
    uniform: "均匀随机",
    study: "论文",
    notEvaluated: "尚未评估：运行 bilipop evaluate RUN 以了解其可信程度。",
    stale: "这些数字早于模型权重：请重新评估。",
    belowFloor: "该模型在测试集上没有超过最佳常数猜测：它的排序只是噪声。",
    winner: "胜出",
    expected: "期望等级",
    cls: "等级",
    beats: (rank) => `胜过第 ${rank} 名`,
    closeCall: "难分高下：前两名差别很小。",
    feed: "信息流中",
    full: "原尺寸",
    mattered: "起作用的标题词：",
    none: "无",
    labels: ["很低", "低", "中", "高", "很高"],
    error: "错误：",
  },
};

function pickLanguage() {
  const wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"];
  for (const lang of wanted) {
    const code = String(lang).toLowerCase();
    if (code.startsWith("zh")) return "zh";
    if (code.startsWith("en")) return "en";
  }
  return "en";
}

const LANG = pickLanguage();
const T = TEXT[LANG];
const state = { covers: [], candidates: [], explanations: new Map(), model: null, generation: 0 };

const $ = (selector) => document.querySelector(selector);

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "className") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

const pct = (p) => `${(100 * p).toFixed(1)}%`;
// A token's drop in the predicted class's probability, in percentage points: tiny models move it by hundredths.
const points = (d) => `−${(100 * d).toPrecision(2)} pt`;
const fixed = (x, digits = 3) => (typeof x === "number" ? x.toFixed(digits) : "–");
const labelName = (label, fallback) => (Number.isInteger(label) && T.labels[label]) || fallback || String(label);

function showError(message) {
  const box = $("#error");
  box.hidden = !message;
  box.textContent = message ? `${T.error} ${message}` : "";
}

function setStatus(text, stateName = "") {
  const status = $("#status");
  status.textContent = text;
  status.dataset.state = stateName;
}

// ----------------------------------------------------------------------------------------------------------------
// The model panel: name, accuracy with its interval, floors, and a warning when the figures do not support trust.
async function loadModel() {
  try {
    const response = await fetch("/api/model");
    state.model = await response.json();
  } catch (err) {
    showError(String(err));
    return;
  }
  const info = state.model;
  const config = info.config || {};
  $("#model-name").textContent = info.name || "?";
  const parts = [config.vision, config.text].filter(Boolean).join(" + ");
  const weight = typeof config.vit_weight === "number" ? `, w = ${config.vit_weight}` : "";
  $("#model-setting").textContent = parts ? `(${parts}${weight})` : "";
  const metrics = info.metrics;
  const warning = $("#model-warning");
  if (!metrics || typeof metrics.ordinal_accuracy !== "number") {
    $("#model-accuracy").textContent = T.notEvaluated;
    return;
  }
  const ci = metrics.ci && Array.isArray(metrics.ci.ordinal_accuracy) ? metrics.ci.ordinal_accuracy : null;
  let line = `${T.accuracy(metrics.split || "test")}: ${fixed(metrics.ordinal_accuracy)}`;
  if (ci) line += ` (${T.interval} ${fixed(ci[0])}–${fixed(ci[1])})`;
  if (typeof metrics.n === "number") line += `, n = ${metrics.n}`;
  $("#model-accuracy").textContent = line;
  const floors = [];
  const baselines = metrics.baselines || {};
  for (const [key, name] of [["best_constant", T.bestConstant], ["majority_class", T.majority],
    ["uniform_random", T.uniform], ["study", T.study]]) {
    const floor = baselines[key];
    if (!floor || typeof floor.ordinal_accuracy !== "number") continue;
    let text = `${name} ${fixed(floor.ordinal_accuracy)}`;
    const fci = floor.ci && Array.isArray(floor.ci.ordinal_accuracy) ? floor.ci.ordinal_accuracy : null;
    if (fci) text += ` (${fixed(fci[0])}–${fixed(fci[1])})`;
    floors.push(text);
  }
  $("#model-floors").textContent = floors.length ? `${T.floors} ${floors.join(" · ")}` : "";
  const best = baselines.best_constant && baselines.best_constant.ordinal_accuracy;
  const messages = [];
  if (metrics.stale) messages.push(T.stale);
  if (typeof best === "number" && (ci ? ci[0] <= best : metrics.ordinal_accuracy <= best)) messages.push(T.belowFloor);
  warning.hidden = messages.length === 0;
  warning.textContent = messages.join(" ");
}

// ----------------------------------------------------------------------------------------------------------------
// Inputs: up to four covers (dropped or picked), up to four titles.
function uniqueName(name) {
  const taken = new Set(state.covers.map((c) => c.name));
  if (!taken.has(name)) return name;
  for (let i = 2; ; i += 1) if (!taken.has(`${name} (${i})`)) return `${name} (${i})`;
}

function addFiles(files) {
  showError("");
  let skipped = false;
  for (const file of files) {
    if (state.covers.length >= MAX) { skipped = true; continue; }
    state.covers.push({ file, name: uniqueName(file.name || "cover"), url: URL.createObjectURL(file) });
  }
  if (skipped) showError(T.tooMany);
  renderCoverList();
}

function renderCoverList() {
  const list = $("#cover-list");
  list.replaceChildren();
  state.covers.forEach((cover, index) => {
    const remove = el("button", { type: "button", className: "remove", "aria-label": T.remove, text: "✕" });
    remove.addEventListener("click", () => {
      URL.revokeObjectURL(cover.url);
      state.covers.splice(index, 1);
      renderCoverList();
    });
    list.append(el("li", {}, [el("img", { src: cover.url, alt: "" }), el("span", { text: cover.name }), remove]));
  });
}

function titles() {
  return [...document.querySelectorAll(".title-input")].map((input) => input.value).filter((t) => t.trim());
}

// ----------------------------------------------------------------------------------------------------------------
// Ranking: one request to /api/rank, then a card per combination, best first.
// Every post carries X-Bilipop: the server refuses API posts without it, which a page of another site cannot send.
async function postForm(url, form) {
  const response = await fetch(url, { method: "POST", body: form, headers: { "X-Bilipop": "1" } });
  let data;
  try { data = await response.json(); } catch { data = { error: `HTTP ${response.status}` }; }
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

// Covers are uploaded under their position ("1" to "4"), never under the file's own name: a browser rewrites
// some characters of a file name (" becomes %22), so only the position reliably ties an answer to its upload.
// The server's messages name a cover by that number; the page adds the file's name.
function uploadName(index) { return String(index + 1); }

function coverAt(covers, uploaded) {
  const index = Number(uploaded) - 1;
  return Number.isInteger(index) && index >= 0 && index < covers.length ? covers[index] : null;
}

function withNames(message, covers) {
  return message.replace(/\bcover ([1-4])\b/g, (all, n) => {
    const cover = coverAt(covers, n);
    return cover ? `${all} (${cover.name})` : all;
  });
}

async function compare() {
  showError("");
  const covers = state.covers.slice();
  const texts = titles();
  if (!covers.length || !texts.length) { showError(T.needInput); return; }
  const form = new FormData();
  covers.forEach((cover, index) => form.append("cover", cover.file, uploadName(index)));
  for (const title of texts) form.append("title", title);
  const generation = ++state.generation;
  setStatus(T.predicting, "busy");
  $("#compare").disabled = true;
  try {
    const result = await postForm("/api/rank", form);
    if (generation !== state.generation) return;
    const ranked = Array.isArray(result) ? result : result.candidates;
    state.candidates = ranked.map((c) => {
      const source = coverAt(covers, c.cover);
      return { ...c, source, cover: source ? source.name : c.cover, position: covers.indexOf(source) };
    });
    state.explanations = new Map();
    renderResults();
    setStatus("", "done");
    if ($("#heatmap").checked) await explainAll();
  } catch (err) {
    setStatus("", "error");
    showError(withNames(err.message, covers));
  } finally {
    $("#compare").disabled = false;
  }
}

function barFill(p) {
  const fill = el("span", { className: "bar-fill" });
  fill.style.width = `${(100 * p).toFixed(1)}%`; // through the CSSOM: the page's CSP allows no inline style=""
  return fill;
}

function probabilityBars(probabilities, label) {
  const rows = probabilities.map((p, k) => el("div", { className: k === label ? "bar top" : "bar" }, [
    el("span", { className: "bar-name", text: `${k} ${labelName(k)}` }),
    el("span", { className: "bar-track" }, [barFill(p)]),
    el("span", { className: "bar-value", text: pct(p) }),
  ]));
  return el("div", { className: "bars" }, rows);
}

function titleNode(title, explanation) {
  // With an explanation, the tokens that mattered are marked; each piece is still plain text.
  const node = el("span", { className: "title-text" });
  const tokens = explanation && Array.isArray(explanation.tokens) ? explanation.tokens : [];
  const marks = tokens.filter((t) => t.drop > 0 && Number.isInteger(t.position))
    .sort((a, b) => a.position - b.position);
  const peak = Math.max(1e-9, ...marks.map((t) => t.drop));
  let at = 0;
  for (const token of marks) {
    if (token.position < at) continue;
    node.append(document.createTextNode(title.slice(at, token.position)));
    const mark = el("mark", { text: token.token, title: points(token.drop) });
    mark.style.backgroundColor = `rgba(230, 20, 20, ${(0.15 + 0.6 * token.drop / peak).toFixed(2)})`;
    node.append(mark);
    at = token.position + token.token.length;
  }
  node.append(document.createTextNode(title.slice(at)));
  return node;
}

function card(candidate, index) {
  const rank = Number.isInteger(candidate.rank) ? candidate.rank : index + 1;
  const key = explanationKey(candidate);
  const explanation = $("#heatmap").checked ? state.explanations.get(key) : null;
  const src = explanation && explanation.heatmap ? explanation.heatmap : candidate.source ? candidate.source.url : "";
  const feed = el("figure", { className: "feed-card" }, [
    el("div", { className: "feed-cover" }, [el("img", { src, alt: candidate.cover })]),
    el("figcaption", { className: "feed-title" }, [titleNode(candidate.title, explanation)]),
    el("div", { className: "caption", text: T.feed }),
  ]);
  const full = el("figure", { className: "full" }, [
    el("img", { src, alt: candidate.cover }),
    el("div", { className: "caption", text: `${T.full}: ${candidate.cover}` }),
  ]);
  const facts = [
    el("div", { className: "cls", text: `${T.cls} ${candidate.label}: ${labelName(candidate.label, candidate.label_name)}` }),
    el("div", { className: "expected", text: `${T.expected} ${fixed(candidate.expected_class, 2)}` }),
  ];
  if (typeof candidate.p_beats_next === "number") {
    facts.push(el("div", { className: "beats", text: `${T.beats(rank + 1)}: ${pct(candidate.p_beats_next)}` }));
  }
  facts.push(probabilityBars(candidate.probabilities, candidate.label));
  if (explanation) {
    const words = (explanation.tokens || []).filter((t) => t.drop > 0).map((t) => `${t.token} ${points(t.drop)}`);
    facts.push(el("div", { className: "tokens", text: `${T.mattered} ${words.length ? words.join(", ") : T.none}` }));
  }
  return el("li", { className: "card", dataset: { rank: String(rank), cover: candidate.cover, title: candidate.title } }, [
    el("div", { className: "rank", text: `#${rank}` }), feed, full, el("div", { className: "facts" }, facts),
  ]);
}

function renderResults() {
  const list = $("#results");
  list.replaceChildren(...state.candidates.map(card));
  const winner = $("#winner");
  const best = state.candidates[0];
  winner.hidden = !best;
  if (!best) return;
  const lines = [el("strong", { text: `${T.winner}: ` }), el("span", { className: "winner-name", text: `${best.cover} + “${best.title}”` }),
    el("span", { text: ` — ${T.expected} ${fixed(best.expected_class, 2)}, ${T.cls} ${best.label} ${labelName(best.label, best.label_name)}` })];
  if (typeof best.p_beats_next === "number") {
    lines.push(el("span", { text: ` · ${T.beats(2)}: ${pct(best.p_beats_next)}` }));
    if (best.p_beats_next < 0.6) lines.push(el("div", { className: "warning", text: T.closeCall }));
  }
  winner.replaceChildren(...lines);
}

// ----------------------------------------------------------------------------------------------------------------
// Heatmaps: one /api/predict?explain per combination, computed when the toggle is first switched on.
function explanationKey(candidate) { return `${candidate.position}\u0000${candidate.title}`; }

async function explainAll() {
  const generation = state.generation;
  const todo = state.candidates.filter((c) => !state.explanations.has(explanationKey(c)) && c.source);
  let done = 0;
  setStatus(T.explaining(done, todo.length), "busy");
  for (const candidate of todo) {
    const form = new FormData();
    form.append("cover", candidate.source.file, uploadName(candidate.position));
    form.append("title", candidate.title);
    form.append("explain", "1");
    try {
      const result = await postForm("/api/predict", form);
      if (generation !== state.generation) return;
      state.explanations.set(explanationKey(candidate), result.explanation || { heatmap: null, tokens: [] });
    } catch (err) {
      showError(err.message.replace(/\bcover [1-4]\b/, (all) => `${all} (${candidate.cover})`));
      setStatus("", "error");
      return;
    }
    done += 1;
    setStatus(T.explaining(done, todo.length), "busy");
    renderResults();
  }
  renderResults();
  setStatus(T.explained, "explained");
}

function onHeatmapToggle() {
  renderResults();
  if ($("#heatmap").checked && state.candidates.length) explainAll();
  else setStatus("", "done");
}

// ----------------------------------------------------------------------------------------------------------------
function translate() {
  document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
  document.title = T.heading;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = T[node.dataset.i18n];
  document.querySelectorAll(".title-input").forEach((input, i) => { input.placeholder = T.titlePlaceholder(i + 1); });
}

function wire() {
  const drop = $("#drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    addFiles([...event.dataTransfer.files].filter((f) => f.type.startsWith("image/") || !f.type));
  });
  $("#cover-input").addEventListener("change", (event) => { addFiles([...event.target.files]); event.target.value = ""; });
  $("#compare").addEventListener("click", compare);
  $("#heatmap").addEventListener("change", onHeatmapToggle);
}

translate();
wire();
loadModel();
