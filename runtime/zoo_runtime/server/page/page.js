/* The page to try a served model: pick one (GET /v1/models), type inputs, POST them to
 * /v1/models/NAME/predict and draw the answer as a person reads it: tags under the words, a
 * translation, a forecast plotted beside its history, generated text, step outputs.
 * Plain JavaScript, no build step, nothing fetched from elsewhere. */
"use strict";

const SVG = "http://www.w3.org/2000/svg";
// Metrics shown first when a model has them (the rest follow, up to MAX_METRICS).
const HEADLINE = ["accuracy", "xpos_accuracy", "feats_accuracy", "alltags_accuracy", "mse",
  "mae", "mse_raw", "mae_raw", "bpc", "bleu", "sequence_accuracy", "token_accuracy"];
const MAX_METRICS = 6;
// What each kind of model (the runtime's kind, or zoo's task) reads, for the input hint.
const HINTS = {
  tagger: "a sentence, words separated by spaces",
  seq2seq: "a sequence to translate",
  forecaster: "recent values: numbers separated by spaces (commas between a step's features)",
  "step-regression": "numbers separated by spaces, one per time step",
  "step-classification": "a string of symbols, e.g. hello",
  "char-lm": "a prompt to continue, e.g. To be",
};
const EXAMPLES = {
  tagger: "The dog ate the apple .",
  seq2seq: "",
  forecaster: "",
  "step-regression": "0 0.5 1 0.5 0 -0.5 -1",
  "step-classification": "hello",
  "char-lm": "To be",
};

const page = { models: new Map(), current: null };

/** The page's kind of a model: zoo's task names and the runtime's kinds mapped to one set. */
function kindOf(model) {
  const kind = model.kind || model.task || "";
  const same = { tagging: "tagger", "window-regression": "forecaster" };
  return same[kind] || kind;
}

/** An element with attributes and children (strings become text), so that no text from a
 * model or a user is ever parsed as HTML. */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

/** An SVG element with attributes. */
function svg(tag, attributes = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

/** GET or POST JSON; the server's `{"detail": ...}` becomes an Error of one line. */
async function call(url, body) {
  const init = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    throw new Error(`could not reach the server (${error.message})`);
  }
  const text = await response.text();
  let doc = null;
  try { doc = JSON.parse(text); } catch (_) { /* not JSON: said below */ }
  if (!response.ok) {
    const detail = doc && typeof doc.detail === "string" ? doc.detail : text.slice(0, 200);
    throw new Error(`${response.status}: ${detail.split("\n")[0]}`);
  }
  if (doc === null) throw new Error(`${response.status}: the answer is not JSON`);
  return doc;
}

function showError(message) {
  const line = document.getElementById("error");
  line.textContent = message ? `Error: ${message}` : "";
  line.hidden = !message;
}

function setStatus(message) {
  document.getElementById("status").textContent = message;
}

/** Fill the model list from GET /v1/models; the first model (or the one in the URL's hash)
 * is chosen. */
async function loadModels() {
  const select = document.getElementById("model");
  let doc;
  try {
    doc = await call("/v1/models");
  } catch (error) {
    select.replaceChildren(el("option", {}, "no models"));
    showError(error.message);
    return;
  }
  select.replaceChildren();
  for (const model of doc.models || []) {
    page.models.set(model.name, model);
    select.append(el("option", { value: model.name }, `${model.name} (${model.architecture})`));
  }
  if (!page.models.size) {
    select.append(el("option", {}, "no models served"));
    return;
  }
  const wanted = decodeURIComponent(location.hash.slice(1));
  if (page.models.has(wanted)) select.value = wanted;
  select.disabled = false;
  document.getElementById("submit").disabled = false;
  chooseModel(select.value);
}

/** Show what the chosen model is and what it reads; clear the last answer. */
function chooseModel(name) {
  const model = page.models.get(name);
  page.current = model;
  const kind = kindOf(model);
  const about = document.getElementById("about");
  about.replaceChildren();
  const rows = [
    ["architecture", model.architecture], ["task", model.task],
    ["dataset", model.dataset || "unknown"], ["served by", model.backend || ""],
  ];
  const metrics = headlineMetrics(model.metrics || {});
  if (metrics.length) rows.push(["metrics", metrics.join(", ")]);
  if (model.max_input_length) {
    rows.push(["longest input", `${model.max_input_length.toLocaleString()} ${model.input_unit || ""}`]);
  }
  for (const [term, value] of rows) if (value) about.append(el("dt", {}, term), el("dd", {}, value));
  if (model.card) {
    const card = el("details", { class: "card" }, el("summary", {}, "model card"),
      el("pre", {}, model.card));
    about.append(el("dt", {}, "card"), el("dd", {}, card));
  }
  drawOptions(model.options || {});
  document.getElementById("hint").textContent = `(${HINTS[kind] || "one input a line"})`;
  const inputs = document.getElementById("inputs");
  if (!inputs.value.trim() || inputs.dataset.example === "yes") {
    inputs.value = EXAMPLES[kind] || "";
    inputs.dataset.example = "yes";
  }
  history.replaceState(null, "", `#${encodeURIComponent(name)}`);
  document.getElementById("answer").replaceChildren();
  showError("");
}

/** A labelled field per predict option of the model (beam_size, temperature, ...), its
 * default as the placeholder; the limits are the server's and not shown. */
function drawOptions(options) {
  const fields = document.getElementById("option-fields");
  fields.replaceChildren();
  const names = Object.keys(options).filter((name) => !name.startsWith("max_input"));
  for (const name of names) {
    const id = `option-${name}`;
    const input = el("input", { id, name, type: "text", placeholder: String(options[name]),
      "data-option": name, autocomplete: "off" });
    fields.append(el("label", { for: id }, name), input);
  }
  document.getElementById("options").hidden = names.length === 0;
}

/** The options typed in: numbers and true/false as JSON values, other text as strings. */
function readOptions() {
  const options = {};
  for (const input of document.querySelectorAll("#option-fields input")) {
    const text = input.value.trim();
    if (!text) continue;
    const number = Number(text);
    if (text === "true" || text === "false") options[input.dataset.option] = text === "true";
    else options[input.dataset.option] = Number.isFinite(number) ? number : text;
  }
  return options;
}

/** Up to MAX_METRICS "name value" strings: the test split's (else the valid's, else the top
 * level's) numbers, the headline ones first. */
function headlineMetrics(metrics) {
  const split = metrics.test || metrics.valid || metrics;
  // per-class and baseline scores (f1/NOUN, repeat_last/mse) are left to the card
  const numbers = Object.entries(split)
    .filter(([key, v]) => typeof v === "number" && !key.includes("/"));
  const rank = ([key]) => (HEADLINE.includes(key) ? HEADLINE.indexOf(key) : HEADLINE.length);
  numbers.sort((a, b) => rank(a) - rank(b));
  const which = split === metrics.test ? "test " : split === metrics.valid ? "valid " : "";
  return numbers.slice(0, MAX_METRICS).map(([key, value]) => `${which}${key} ${formatNumber(value)}`);
}

function formatNumber(value) {
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value)) return value.toLocaleString();
  return Math.abs(value) >= 1000 ? value.toFixed(1) : value.toPrecision(4);
}

/** The lines of the text box, blank ones left out: one input each. */
function readInputs() {
  return document.getElementById("inputs").value.split(/\r?\n/).map((line) => line.trim())
    .filter((line) => line.length > 0);
}

/** Send the inputs to the chosen model and draw its answer (or the server's one line). */
async function submit(event) {
  if (event) event.preventDefault();
  const model = page.current;
  const inputs = readInputs();
  showError("");
  if (!model) return;
  if (!inputs.length) {
    showError("type an input first");
    return;
  }
  const button = document.getElementById("submit");
  button.disabled = true;
  setStatus("predicting…");
  const started = performance.now();
  try {
    const doc = await call(`/v1/models/${encodeURIComponent(model.name)}/predict`, { inputs, options: readOptions() });
    drawAnswer(model, doc.predictions || []);
    const ms = Math.round(performance.now() - started);
    setStatus(`${doc.predictions.length} answer(s) in ${ms} ms`);
  } catch (error) {
    document.getElementById("answer").replaceChildren();
    showError(error.message);
    setStatus("");
  } finally {
    button.disabled = false;
  }
}

/** Draw every prediction the way its kind of model is read. */
function drawAnswer(model, predictions) {
  const draw = {
    tagger: drawTags,
    seq2seq: drawTranslation,
    forecaster: drawForecast,
    "step-regression": drawSteps,
    "step-classification": drawSymbols,
    "char-lm": drawGenerated,
  }[kindOf(model)] || drawText;
  const answer = document.getElementById("answer");
  answer.replaceChildren(...predictions.map((p, i) => {
    const block = el("article", { class: "prediction", "data-index": String(i) });
    block.append(draw(p));
    return block;
  }));
}

/** A tagger's answer: each word with its tags beneath (UPOS, then XPOS and FEATS when the
 * model predicts them). */
function drawTags(prediction) {
  const pairs = prediction.output || [];
  const columns = prediction.columns || { upos: pairs.map((pair) => pair[1]) };
  const names = Object.keys(columns);
  const sentence = el("div", { class: "tagged", role: "list" });
  pairs.forEach(([word], i) => {
    const token = el("div", { class: "token", role: "listitem" }, el("span", { class: "word" }, word));
    for (const name of names) {
      const value = columns[name][i];
      const tag = el("span", { class: `tag ${name}`, "data-column": name, title: name.toUpperCase() },
        name === "feats" ? value.split("|").join("\n") : value);
      token.append(tag);
    }
    sentence.append(token);
  });
  const legend = el("p", { class: "legend" }, `under each word: ${names.map((n) => n.toUpperCase()).join(", ")}`);
  return el("div", {}, sentence, legend);
}

/** A translation: the source and what the model made of it. */
function drawTranslation(prediction) {
  return el("dl", { class: "pair" },
    el("dt", {}, "source"), el("dd", { class: "source" }, String(prediction.input)),
    el("dt", {}, "translation"), el("dd", { class: "output" }, String(prediction.output)));
}

/** Generated text: the prompt, then the model's continuation marked apart. */
function drawGenerated(prediction) {
  return el("p", { class: "generated" }, el("span", { class: "prompt" }, String(prediction.input)),
    el("mark", { class: "output" }, String(prediction.output)));
}

/** A symbol out per symbol in: the two strings aligned. */
function drawSymbols(prediction) {
  const input = Array.from(String(prediction.input));
  const output = symbols(String(prediction.output), input.length);
  const table = el("table", { class: "steps" });
  table.append(el("tr", {}, el("th", { scope: "row" }, "in"), ...input.map((c) => el("td", {}, c))));
  table.append(el("tr", {}, el("th", { scope: "row" }, "out"),
    ...output.map((c) => el("td", { class: "output" }, c))));
  return table;
}

/** An output string's symbols: its characters, but a special symbol such as <unk> is one
 * (when that makes the output as long as the input). */
function symbols(text, length) {
  const plain = Array.from(text);
  const marked = text.match(/<[^<>\s]+>|[^]/gu) || [];
  return plain.length !== length && marked.length === length ? marked : plain;
}

/** The first value of a step: a step of several features is plotted by its first. */
function firstValue(step) {
  return Array.isArray(step) ? Number(step[0]) : Number(step);
}

/** A forecast beside its history: one chart, history in one colour, forecast in another. */
function drawForecast(prediction) {
  const history = (prediction.input || []).map(firstValue);
  const forecast = (prediction.output || []).map(firstValue);
  const chart = lineChart([
    { name: "history", values: history, start: 0 },
    { name: "forecast", values: forecast, start: history.length },
  ], "time step", "value");
  const text = el("p", { class: "numbers" }, `forecast: ${prediction.text || forecast.join(" ")}`);
  return el("div", {}, chart, text);
}

/** A step model's outputs: input and output at each step, plotted and listed. */
function drawSteps(prediction) {
  const input = (prediction.input || []).map(firstValue);
  const output = (prediction.output || []).map(firstValue);
  const chart = lineChart([
    { name: "input", values: input, start: 0 },
    { name: "output", values: output, start: 0 },
  ], "time step", "value");
  return el("div", {}, chart, el("p", { class: "numbers" }, `outputs: ${prediction.text || ""}`));
}

/** Anything else: the prediction's text. */
function drawText(prediction) {
  return el("pre", { class: "text" }, String(prediction.text ?? JSON.stringify(prediction.output)));
}

/** An inline SVG line chart of several series on one x axis (steps), with axes, tick labels,
 * axis titles and a legend; each point is a circle carrying its value (data-value). */
function lineChart(series, xTitle, yTitle) {
  const width = 640, height = 260, left = 56, right = 16, top = 16, bottom = 44;
  const all = series.flatMap((s) => s.values).filter(Number.isFinite);
  const steps = Math.max(1, ...series.map((s) => s.start + s.values.length)) - 1;
  let low = Math.min(...all), high = Math.max(...all);
  if (!all.length) { low = 0; high = 1; }
  if (low === high) { low -= 1; high += 1; }
  const x = (i) => left + (steps ? (i / steps) : 0.5) * (width - left - right);
  const y = (v) => top + (1 - (v - low) / (high - low)) * (height - top - bottom);
  const chart = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `${series.map((s) => s.name).join(" and ")} against ${xTitle}` });
  drawAxes(chart, { width, height, left, right, top, bottom, low, high, steps, x, y, xTitle, yTitle });
  series.forEach((s, k) => drawSeries(chart, s, k, x, y));
  drawLegend(chart, series, left);
  return chart;
}

function drawAxes(chart, g) {
  chart.append(svg("line", { class: "axis", x1: g.left, y1: g.height - g.bottom, x2: g.width - g.right, y2: g.height - g.bottom }));
  chart.append(svg("line", { class: "axis", x1: g.left, y1: g.top, x2: g.left, y2: g.height - g.bottom }));
  for (let t = 0; t <= 4; t++) {
    const value = g.low + ((g.high - g.low) * t) / 4;
    const label = svg("text", { class: "tick", x: g.left - 6, y: g.y(value) + 4, "text-anchor": "end" });
    label.textContent = String(Number(value.toPrecision(3)));
    chart.append(label, svg("line", { class: "grid", x1: g.left, x2: g.width - g.right, y1: g.y(value), y2: g.y(value) }));
  }
  for (let t = 0; t <= 4; t++) {
    const step = Math.round((g.steps * t) / 4);
    const label = svg("text", { class: "tick", x: g.x(step), y: g.height - g.bottom + 16, "text-anchor": "middle" });
    label.textContent = String(step);
    chart.append(label);
  }
  const xTitle = svg("text", { class: "title", x: (g.left + g.width - g.right) / 2, y: g.height - 6, "text-anchor": "middle" });
  xTitle.textContent = g.xTitle;
  const yTitle = svg("text", { class: "title", x: 14, y: (g.top + g.height - g.bottom) / 2, "text-anchor": "middle",
    transform: `rotate(-90 14 ${(g.top + g.height - g.bottom) / 2})` });
  yTitle.textContent = g.yTitle;
  chart.append(xTitle, yTitle);
}

/** One series: a polyline through its points and a small circle at each. */
function drawSeries(chart, series, k, x, y) {
  const points = series.values.map((v, i) => [x(series.start + i), y(v), v])
    .filter(([, , v]) => Number.isFinite(v));
  const radius = points.length > 60 ? 1.2 : 2.5; // dense series: small dots
  const group = svg("g", { class: `series series-${k} ${series.name}`, "data-series": series.name });
  group.append(svg("polyline", { points: points.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" ") }));
  for (const [px, py, v] of points) {
    const dot = svg("circle", { class: "point", cx: px.toFixed(1), cy: py.toFixed(1), r: radius, "data-value": v });
    const title = svg("title");
    title.textContent = `${series.name}: ${v}`;
    dot.append(title);
    group.append(dot);
  }
  chart.append(group);
}

function drawLegend(chart, series, left) {
  series.forEach((s, k) => {
    const x = left + 12 + k * 110;
    chart.append(svg("rect", { class: `swatch series-${k}`, x, y: 4, width: 12, height: 4 }));
    const name = svg("text", { class: "legend", x: x + 16, y: 10 });
    name.textContent = s.name;
    chart.append(name);
  });
}

/** Ctrl+Enter (or Cmd+Enter) in the text box submits, as the hint says. */
function submitOnCtrlEnter(event) {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    document.getElementById("try").requestSubmit();
  }
}

function start() {
  document.getElementById("model").addEventListener("change", (e) => chooseModel(e.target.value));
  document.getElementById("try").addEventListener("submit", submit);
  const inputs = document.getElementById("inputs");
  inputs.addEventListener("keydown", submitOnCtrlEnter);
  inputs.addEventListener("input", () => { inputs.dataset.example = "no"; });
  loadModels();
}

document.addEventListener("DOMContentLoaded", start);
