"use strict";
// Draw on the canvas; after each stroke (and while drawing, at most every 150 ms) send it to /api/predict
// once per served model, and show every model's answer side by side, with what its layers saw.
const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const seenCtx = document.getElementById("seen").getContext("2d");
const statusEl = document.getElementById("status");
const explainBox = document.getElementById("explain");
const FOOL_EPSILONS = [0.02, 0.05, 0.1, 0.15, 0.2, 0.3];  // the grid "Fool it" tries, smallest first
const BG = [15, 23, 42], POSITIVE = [224, 242, 254], NEGATIVE = [244, 114, 182];  // map colours: 0, +max, -max
let models = [];  // per model: {info, answer, inside} (its description and its two panels)
let drawing = false, last = null, inked = false, pending = false, again = false, lastSent = 0, drawingId = 0;

function clearPad() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  inked = false;
  drawingId++;  // answers still on their way are for the old drawing
  statusEl.textContent = "";
  seenCtx.clearRect(0, 0, 28, 28);
  for (const model of models) {
    model.answer.querySelector(".label").textContent = "–";
    model.answer.querySelector(".verdict").textContent = "";
    model.answer.querySelector(".prediction").className = "prediction";
    model.answer.querySelector(".attribution").hidden = true;
    model.answer.querySelector(".fooled").hidden = true;
    model.seen = null;
    for (const li of model.answer.querySelectorAll(".bars li")) {
      li.classList.remove("top"); li.querySelector(".bar").style.width = "0"; li.querySelector(".pct").textContent = "";
    }
    if (!model.inside) continue;
    for (const u of model.inside.querySelectorAll(".unit")) u.style.background = "";
    for (const c of model.inside.querySelectorAll(".map")) c.getContext("2d").clearRect(0, 0, c.width, c.height);
  }
}

function point(event) {
  const r = pad.getBoundingClientRect();
  return { x: (event.clientX - r.left) * pad.width / r.width, y: (event.clientY - r.top) * pad.height / r.height };
}

function stroke(to) {
  ctx.strokeStyle = "#000"; ctx.lineWidth = 20; ctx.lineCap = "round"; ctx.lineJoin = "round";
  ctx.beginPath(); ctx.moveTo(last.x, last.y); ctx.lineTo(to.x, to.y); ctx.stroke();
  last = to; inked = true;
}

pad.addEventListener("pointerdown", (e) => { drawing = true; pad.setPointerCapture(e.pointerId); last = point(e); stroke(point(e)); });
pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  stroke(point(e));
  if (Date.now() - lastSent > 150) predict();
});
for (const type of ["pointerup", "pointercancel"]) pad.addEventListener(type, () => { if (drawing) { drawing = false; predict(); } });
document.getElementById("clear").addEventListener("click", clearPad);
document.getElementById("fool").addEventListener("click", fool);
explainBox.addEventListener("change", predict);

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  return { ok: response.ok, result: await response.json() };
}

function ask(name, image) {
  return post("/api/predict", explainBox.checked ? { image, model: name, explain: "integrated" } : { image, model: name });
}

async function predict() {
  if (!inked) return;
  if (pending) { again = true; return; }  // the last stroke is sent once the answers in flight are in
  pending = true; again = false; lastSent = Date.now();
  const id = drawingId, image = pad.toDataURL("image/png");
  try {
    const answers = await Promise.all(models.map((model) => ask(model.info.name, image)));
    if (id !== drawingId) return;
    const failed = answers.find((a) => !a.ok);
    statusEl.textContent = failed ? failed.result.detail : "";
    if (failed) return;
    answers.forEach((a, i) => show(models[i], a.result));
    showSeen(answers[0].result.pixels);
  } catch (err) {
    statusEl.textContent = "the server did not answer: " + err;
  } finally {
    pending = false;
    if (again) predict();
  }
}

function showSeen(pixels) {
  const image = seenCtx.createImageData(28, 28);
  pixels.forEach((v, i) => {
    const g = Math.round(255 * v);
    image.data.set([g, g, g, 255], 4 * i);
  });
  seenCtx.putImageData(image, 0, 0);
}

function show(model, result) {
  model.answer.querySelector(".label").textContent = result.label;
  model.seen = result.pixels;  // what "Fool it" attacks
  model.answer.querySelector(".fooled").hidden = true;
  const attribution = model.answer.querySelector(".attribution");
  attribution.hidden = !result.attribution;
  if (result.attribution) drawAttribution(attribution.querySelector("canvas"), result.attribution, result.pixels);
  // "digit", "not sure" (no class more likely than not) or "not a digit" (below the model's threshold)
  const prediction = model.answer.querySelector(".prediction");
  prediction.className = "prediction " + result.verdict.replaceAll(" ", "-");
  model.answer.querySelector(".verdict").textContent =
    result.verdict === "digit" ? "" : result.verdict === "not sure" ? `not sure: perhaps ${result.label}` : "not a digit";
  const bars = model.answer.querySelectorAll(".bars li");
  result.probabilities.forEach((p, k) => {
    bars[k].classList.toggle("top", k === result.label);
    bars[k].querySelector(".bar").style.width = (100 * p).toFixed(1) + "%";
    bars[k].querySelector(".pct").textContent = (100 * p).toFixed(1) + "%";
  });
  if (!model.inside) return;
  result.feature_maps.forEach((maps, i) => drawMaps(model.inside.querySelectorAll(".maps")[i], maps));
  result.activations.forEach((values, i) => {
    const cells = model.inside.querySelectorAll(".units")[i].children;
    const scale = Math.max(...values.map(Math.abs)) || 1;
    values.forEach((v, j) => {
      const t = v / scale;  // -1..1
      cells[j].style.background = t >= 0 ? `rgba(56, 189, 248, ${0.1 + 0.9 * t})` : `rgba(244, 114, 182, ${0.1 + 0.9 * -t})`;
      cells[j].title = `unit ${j + 1}: ${v.toFixed(3)}`;
    });
  });
}

// One layer's maps: values are C·H·W integers in -255..255 (channel, row, column), scaled to the layer's largest |value|.
function drawMaps(container, maps) {
  const [C, H, W] = maps.shape;
  const canvases = container.children;
  for (let c = 0; c < C; c++) {
    const g = canvases[c].getContext("2d");
    const image = g.createImageData(W, H);
    for (let i = 0; i < H * W; i++) {
      const t = maps.values[c * H * W + i] / 255, to = t >= 0 ? POSITIVE : NEGATIVE, a = Math.abs(t);
      for (let k = 0; k < 3; k++) image.data[4 * i + k] = BG[k] + a * (to[k] - BG[k]);  // a blend from BG to `to`
      image.data[4 * i + 3] = 255;
    }
    g.putImageData(image, 0, 0);
  }
}

// Red where a pixel raises the explained logit, blue where it lowers it, over the faint digit; scaled per drawing.
function drawAttribution(canvas, values, pixels) {
  const g = canvas.getContext("2d"), image = g.createImageData(28, 28);
  const scale = Math.max(...values.map(Math.abs)) || 1;
  values.forEach((v, i) => {
    const t = v / scale, ink = 60 * pixels[i];
    const colour = t >= 0 ? [255 * t, 40 * t, 40 * t] : [40 * -t, 90 * -t, 255 * -t];
    image.data.set([Math.min(255, ink + colour[0]), Math.min(255, ink + colour[1]), Math.min(255, ink + colour[2]), 255], 4 * i);
  });
  g.putImageData(image, 0, 0);
}

function drawPixels(canvas, pixels) {
  const g = canvas.getContext("2d"), image = g.createImageData(28, 28);
  pixels.forEach((v, i) => { const c = Math.round(255 * v); image.data.set([c, c, c, 255], 4 * i); });
  g.putImageData(image, 0, 0);
}

// For each model, the smallest ε of the grid at which PGD changes its answer for the drawing it last read.
async function fool() {
  for (const model of models) {
    if (!model.seen) continue;
    const figure = model.answer.querySelector(".fooled"), caption = figure.querySelector("figcaption");
    figure.hidden = false;
    caption.textContent = "attacking…";
    let fooled = null;
    for (const epsilon of FOOL_EPSILONS) {
      const { ok, result } = await post("/api/attack", { pixels: model.seen, model: model.info.name, epsilon, method: "pgd", steps: 20 });
      if (!ok) { caption.textContent = result.detail; return; }
      if (result.label !== result.was) { fooled = result; break; }
    }
    if (fooled) {
      drawPixels(figure.querySelector("canvas"), fooled.pixels);
      caption.textContent = `fooled at ε = ${fooled.epsilon}: read as ${fooled.label} (${(100 * fooled.probabilities[fooled.label]).toFixed(1)}%)`;
    } else {
      caption.textContent = `not fooled up to ε = ${FOOL_EPSILONS[FOOL_EPSILONS.length - 1]}`;
    }
  }
}

function layerBlock(title) {
  const div = document.createElement("div");
  div.className = "layer";
  div.innerHTML = `<div class="name"></div>`;
  div.firstChild.textContent = title;
  return div;
}

function build(info) {
  const answer = document.getElementById("answer-template").content.firstElementChild.cloneNode(true);
  answer.dataset.model = info.name;
  answer.querySelector(".name").textContent = info.name;
  const accuracy = info.test_accuracy == null ? "test accuracy not recorded" : `test accuracy ${(100 * info.test_accuracy).toFixed(2)}%`;
  answer.querySelector(".spec").textContent = `${info.spec} · ${info.parameters.toLocaleString("en")} parameters · ${accuracy}`;
  for (let k = 0; k < 10; k++) {
    const li = document.createElement("li");
    li.innerHTML = `<span>${k}</span><div class="track"><div class="bar"></div></div><span class="pct"></span>`;
    answer.querySelector(".bars").appendChild(li);
  }
  document.getElementById("answers").appendChild(answer);

  const hidden = info.layers.slice(0, -1);
  if (!hidden.length && !info.feature_maps.length) return { info, answer, inside: null };
  const inside = document.getElementById("inside-template").content.firstElementChild.cloneNode(true);
  inside.dataset.model = info.name;
  inside.querySelector(".name").textContent = info.name;
  const shown = [
    info.feature_maps.length ? "every feature map of each convolution and pooling layer as a small image" : "",
    hidden.length ? "every hidden unit's output as a cell" : "",
  ].filter(Boolean).join(", and ");
  inside.querySelector(".caption").textContent =
    `For your drawing: ${shown}; brighter means larger (scaled per layer), pink means negative.`;
  const layers = inside.querySelector(".layers");
  for (const maps of info.feature_maps) {
    const [C, H, W] = maps.shape;
    const div = layerBlock([maps.layer, ...maps.after].join(" → ") + ` · ${C}×${H}×${W}`);
    const grid = document.createElement("div");
    grid.className = "maps";
    const size = Math.max(24, Math.min(52, 2 * W));  // CSS pixels per map
    for (let c = 0; c < C; c++) {
      const canvas = document.createElement("canvas");
      canvas.className = "map"; canvas.width = W; canvas.height = H;
      canvas.style.width = `${size}px`; canvas.style.height = `${Math.round(size * H / W)}px`;
      canvas.title = `${maps.layer}: map ${c + 1} of ${C}`;
      grid.appendChild(canvas);
    }
    div.appendChild(grid);
    layers.appendChild(div);
  }
  hidden.forEach((layer, i) => {
    const div = layerBlock(`hidden layer ${i + 1}: ${layer.units} ${layer.activation} units`);
    const units = document.createElement("div");
    units.className = "units";
    for (let j = 0; j < layer.units; j++) { const u = document.createElement("div"); u.className = "unit"; units.appendChild(u); }
    div.appendChild(units);
    layers.appendChild(div);
  });
  document.getElementById("insides").appendChild(inside);
  return { info, answer, inside };
}

async function start() {
  const catalogue = await (await fetch("/api/models")).json();
  models = catalogue.models.map(build);
  const names = catalogue.models.map((m) => m.name);
  document.getElementById("model-info").textContent = names.length === 1
    ? `${names[0]} reads your drawing`
    : `${names.length} models read your drawing side by side: ${names.join(", ")}`;
  clearPad();
}
start();
