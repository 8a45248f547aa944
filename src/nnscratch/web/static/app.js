"use strict";
// Draw on the canvas; after each stroke (and while drawing, at most every 150 ms) send it to /api/predict.
const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const seen = document.getElementById("seen");
const seenCtx = seen.getContext("2d");
const labelEl = document.getElementById("label");
const statusEl = document.getElementById("status");
const barsEl = document.getElementById("bars");
const layersEl = document.getElementById("layers");
let drawing = false, last = null, inked = false, pending = false, lastSent = 0;

function clearPad() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  inked = false;
  labelEl.textContent = "–";
  statusEl.textContent = "";
  seenCtx.clearRect(0, 0, 28, 28);
  for (const li of barsEl.children) { li.classList.remove("top"); li.querySelector(".bar").style.width = "0"; li.querySelector(".pct").textContent = ""; }
  for (const u of layersEl.querySelectorAll(".unit")) u.style.background = "";
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

async function predict() {
  if (!inked || pending) return;
  pending = true; lastSent = Date.now();
  try {
    const response = await fetch("/api/predict", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ image: pad.toDataURL("image/png") }),
    });
    const result = await response.json();
    if (!response.ok) { statusEl.textContent = result.detail; return; }
    statusEl.textContent = "";
    show(result);
  } catch (err) {
    statusEl.textContent = "the server did not answer: " + err;
  } finally {
    pending = false;
  }
}

function show(result) {
  labelEl.textContent = result.label;
  result.probabilities.forEach((p, k) => {
    const li = barsEl.children[k];
    li.classList.toggle("top", k === result.label);
    li.querySelector(".bar").style.width = (100 * p).toFixed(1) + "%";
    li.querySelector(".pct").textContent = (100 * p).toFixed(1) + "%";
  });
  const image = seenCtx.createImageData(28, 28);
  result.pixels.forEach((v, i) => {
    const g = Math.round(255 * v);
    image.data.set([g, g, g, 255], 4 * i);
  });
  seenCtx.putImageData(image, 0, 0);
  result.activations.forEach((values, i) => {
    const cells = layersEl.children[i].querySelectorAll(".unit");
    const scale = Math.max(...values.map(Math.abs)) || 1;
    values.forEach((v, j) => {
      const t = v / scale;  // -1..1
      cells[j].style.background = t >= 0 ? `rgba(56, 189, 248, ${0.1 + 0.9 * t})` : `rgba(244, 114, 182, ${0.1 + 0.9 * -t})`;
      cells[j].title = `unit ${j + 1}: ${v.toFixed(3)}`;
    });
  });
}

async function start() {
  for (let k = 0; k < 10; k++) {
    const li = document.createElement("li");
    li.innerHTML = `<span>${k}</span><div class="track"><div class="bar"></div></div><span class="pct"></span>`;
    barsEl.appendChild(li);
  }
  const info = await (await fetch("/api/model")).json();
  const accuracy = info.test_accuracy == null ? "test accuracy not recorded" : `test accuracy ${(100 * info.test_accuracy).toFixed(2)}%`;
  document.getElementById("model-info").textContent = `${info.name}: ${info.spec} (${info.parameters.toLocaleString()} parameters, ${accuracy})`;
  info.layers.slice(0, -1).forEach((layer, i) => {
    const div = document.createElement("div");
    div.className = "layer";
    div.innerHTML = `<div class="name">hidden layer ${i + 1}: ${layer.units} ${layer.activation} units</div><div class="units"></div>`;
    const units = div.querySelector(".units");
    for (let j = 0; j < layer.units; j++) { const u = document.createElement("div"); u.className = "unit"; units.appendChild(u); }
    layersEl.appendChild(div);
  });
  clearPad();
}
start();
