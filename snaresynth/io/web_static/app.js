// snaresynth's page: plain JavaScript, no build step. One WebSocket to the daemon; every value
// shown comes from the daemon's messages (the same ones every page gets), so pages stay in step.
"use strict";

const $ = (id) => document.getElementById(id);
const S = window.snaresynth = {
  state: null, values: {}, buffers: {}, presets: [], connected: false, received: 0,
  fails: [], seq: null, status: null,
};
let ws = null;
let outbox = new Map();       // address -> args: knob moves waiting for the next frame
let outList = [];             // other messages, in order
let dragging = null;          // the param whose control is under the pointer
let audioCtx = null;

// --- sending: knob moves coalesced to one per animation frame ------------------------------
function send(address, args = [], coalesce = false) {
  if (coalesce) { outbox.delete(address); outbox.set(address, args); }
  else outList.push({ address, args });
  requestAnimationFrame(flush);
}
function flush() {
  if (!ws || ws.readyState !== 1 || (!outbox.size && !outList.length)) return;
  const batch = outList.concat([...outbox].map(([address, args]) => ({ address, args })));
  outbox = new Map(); outList = [];
  ws.send(JSON.stringify(batch));
}

function connect() {
  const token = new URLSearchParams(location.search).get("token");
  const url = `ws://${location.host}/ws` + (token ? `?token=${encodeURIComponent(token)}` : "");
  ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => { S.connected = true; $("conn").textContent = "connected"; $("conn").className = "on"; };
  ws.onclose = () => {
    S.connected = false; $("conn").textContent = "disconnected"; $("conn").className = "off";
    setTimeout(connect, 1000);
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data !== "string") return onBuffer(ev.data);
    for (const m of JSON.parse(ev.data)) { S.received++; onMessage(m.address, m.args); }
  };
}

// --- receiving -------------------------------------------------------------------------------
function onMessage(address, args) {
  if (address === "/state") return onState(args[0]);
  if (address === "/presets") return onPresets(args);
  if (address === "/status") return onStatus(args[0]);
  if (address === "/fail") { S.fails.push(args); return toast(`${args[0]}: ${args[1]}`); }
  if (address === "/randomize.reply") { $("rand-seed").value = args[1]; return; }
  if (address === "/learn/armed") return;
  if (address === "/learn") { document.querySelectorAll(".learn.armed").forEach((b) => b.classList.remove("armed")); return; }
  if (address === "/select") return selectShown(args[0]);
  if (address === "/morph/targets") { $("morph-a").value = args[0]; $("morph-b").value = args[1]; return; }
  if (address === "/velocity") { $("curve").value = args[0]; return; }
  if (address === "/variants") { return showVariants(args[1], args[0]); }
  if (address.startsWith("/seq/")) return onSeq(address, args);
  const param = address.slice(1);
  if (param === "morph" || param in S.values) setValue(param, args[0]);
}

function setValue(param, x) {
  S.values[param] = x;
  if (dragging === param) return;   // the pointer on it wins; the daemon's echo is the same value
  document.querySelectorAll(`[data-param="${param}"]`).forEach((el) => { el.value = x; });
  const out = document.querySelector(`[data-out="${param}"]`);
  if (out) out.textContent = x.toFixed(3);
  drawXY();
}

function onState(state) {
  S.state = state;
  S.values = Object.assign({}, state.values);
  buildPads(state.kit.slot); buildSlots(state.kit.slot); buildKnobs(state.params);
  buildGrid(state.kit.slot);
  for (const [p, x] of Object.entries(state.values)) setValue(p, x);
  selectShown(state.selected);
  $("curve").value = state.kit.velocity_curve;
  $("preset").value = state.kit.name;
  if (state.kit.morph_targets) { $("morph-a").value = state.kit.morph_targets[0]; $("morph-b").value = state.kit.morph_targets[1]; }
  if (state.sequencer) { S.seq = state.sequencer; showSeq(); }
  if (!$("audition").dataset.touched) $("audition").checked = state.audio.startsWith("null");
}

function onPresets(names) {
  S.presets = names;
  for (const id of ["preset", "morph-a", "morph-b"]) {
    const sel = $(id), keep = sel.value;
    sel.replaceChildren(...names.map((n) => new Option(n, n)));
    if (names.includes(keep)) sel.value = keep;
  }
  if (S.state) $("preset").value = S.state.kit.name;
}

function onStatus(st) {
  S.status = st;
  const pages = st.web_pages, osc = st.osc_subscribers ?? 0;
  $("status").textContent = `${st.audio} · hits ${st.hits} · xruns ${st.xruns} · CPU ` +
    `${(100 * st.cpu_load).toFixed(1)}% · cache ${st.cache_hits}/${st.cache_hits + st.cache_misses}` +
    ` (${st.cache_items}) · surfaces: ${pages} page${pages === 1 ? "" : "s"}, ${osc} OSC`;
}

// --- pads, slots, knobs, XY ------------------------------------------------------------------
function buildPads(slots) {
  $("pads").replaceChildren(...slots.map((slot, i) => {
    const pad = document.createElement("div");
    pad.className = "pad"; pad.dataset.pad = i; pad.textContent = slot.name;
    pad.addEventListener("pointerdown", (ev) => {
      ev.preventDefault();
      const r = pad.getBoundingClientRect();
      // struck near the top is loud, near the bottom soft
      const v = Math.min(1, Math.max(0.05, 1 - (ev.clientY - r.top) / r.height));
      send("/trigger", [Math.round(v * 1000) / 1000, i]);
      audition(i, v);
      pad.classList.add("hit"); setTimeout(() => pad.classList.remove("hit"), 90);
    });
    return pad;
  }));
}

function buildSlots(slots) {
  $("slots").replaceChildren(...slots.map((slot, i) => {
    const b = document.createElement("button");
    b.textContent = slot.name; b.dataset.slot = i;
    b.onclick = () => send("/select", [i]);
    return b;
  }));
}

function showVariants(slot, n) {  // the slot's round-robin count, shown for the selected slot
  const slots = S.state ? S.state.kit.slot : [];
  if (slots[slot]) slots[slot].variants = n;
  if (S.state && S.state.selected === slot) $("variants").value = n;
}

function selectShown(i) {
  if (S.state) S.state.selected = i;
  if (S.state && S.state.kit.slot[i]) $("variants").value = S.state.kit.slot[i].variants ?? 4;
  document.querySelectorAll("#slots button, .pad").forEach((b) =>
    b.classList.toggle("selected", Number(b.dataset.slot ?? b.dataset.pad) === i));
  drawBuffer();
}

function knobInput(param, cls = "knob") {
  const k = document.createElement("input");
  Object.assign(k, { type: "range", min: 0, max: 1, step: 0.001, className: cls });
  k.dataset.param = param;
  return k;
}

function buildKnobs(params) {
  const rows = params.map((p) => {
    const row = document.createElement("div"); row.className = "knobrow";
    const label = document.createElement("label"); label.textContent = p;
    const out = document.createElement("span"); out.dataset.out = p;
    const learn = document.createElement("button"); learn.className = "learn";
    learn.textContent = "L"; learn.title = "MIDI learn"; learn.dataset.learn = p;
    row.append(label, knobInput(p), out, learn);
    return row;
  });
  $("knobs").replaceChildren(...rows);
  for (const id of ["xy-x", "xy-y"]) {
    const sel = $(id), keep = sel.value;
    sel.replaceChildren(...params.map((p) => new Option(p, p)));
    sel.value = params.includes(keep) ? keep : params[id === "xy-x" ? 0 : Math.min(1, params.length - 1)];
  }
  drawXY();
}

document.addEventListener("input", (ev) => {
  const p = ev.target.dataset && ev.target.dataset.param;
  if (!p) return;
  const x = Number(ev.target.value);
  S.values[p] = x;
  const out = document.querySelector(`[data-out="${p}"]`);
  if (out) out.textContent = x.toFixed(3);
  send("/" + p, [x], true);
  drawXY();
});
document.addEventListener("pointerdown", (ev) => { if (ev.target.dataset && ev.target.dataset.param) dragging = ev.target.dataset.param; });
document.addEventListener("pointerup", () => { dragging = null; });
document.addEventListener("click", (ev) => {
  const p = ev.target.dataset && ev.target.dataset.learn;
  if (!p) return;
  ev.target.classList.add("armed");
  send("/learn", [p]);
});

function xyMove(ev) {
  const r = $("xy").getBoundingClientRect();
  const x = Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width));
  const y = Math.min(1, Math.max(0, 1 - (ev.clientY - r.top) / r.height));
  const px = $("xy-x").value, py = $("xy-y").value;
  S.values[px] = x; S.values[py] = y;
  send("/" + px, [x], true); send("/" + py, [y], true);
  for (const [p, v] of [[px, x], [py, y]]) document.querySelectorAll(`[data-param="${p}"]`).forEach((el) => { el.value = v; });
  drawXY();
}
$("xy").addEventListener("pointerdown", (ev) => { $("xy").setPointerCapture(ev.pointerId); dragging = "xy"; xyMove(ev); });
$("xy").addEventListener("pointermove", (ev) => { if (dragging === "xy") xyMove(ev); });
$("xy").addEventListener("pointerup", () => { dragging = null; });
function drawXY() {
  const x = S.values[$("xy-x").value] ?? 0.5, y = S.values[$("xy-y").value] ?? 0.5;
  $("xy-dot").style.left = `${100 * x}%`; $("xy-dot").style.top = `${100 * (1 - y)}%`;
}
$("xy-x").onchange = $("xy-y").onchange = drawXY;

// --- the kit ---------------------------------------------------------------------------------
$("undo").onclick = () => send("/undo");
$("redo").onclick = () => send("/redo");
$("randomize").onclick = () => {
  const seed = $("rand-seed").value;
  send("/randomize", seed === "" ? [Number($("rand-amount").value)] : [Number($("rand-amount").value), Number(seed)]);
};
$("rand-seed").addEventListener("keydown", (ev) => { if (ev.key === "Enter") $("randomize").click(); });
$("preset").onchange = () => send("/preset/load", [$("preset").value]);
$("save").onclick = () => { const n = $("save-name").value.trim(); if (n) send("/preset/save", [n]); };
$("morph-a").onchange = $("morph-b").onchange = () => {
  if ($("morph-a").value && $("morph-b").value) send("/morph/targets", [$("morph-a").value, $("morph-b").value]);
};
$("curve").onchange = () => send("/velocity/curve", [$("curve").value]);
$("variants").onchange = () => send("/variants", [Number($("variants").value), S.state ? S.state.selected : 0]);
$("audition").onchange = () => { $("audition").dataset.touched = "1"; };

// --- the pattern (played by the daemon's clock, not by this page's timers) -------------------
function buildGrid(slots) {
  $("grid").replaceChildren(...slots.map((slot, s) => {
    const row = document.createElement("div"); row.className = "gridrow";
    const name = document.createElement("span"); name.textContent = slot.name;
    row.append(name);
    for (let i = 0; i < 16; i++) {
      const cell = document.createElement("div"); cell.className = "step";
      cell.dataset.step = `${s}:${i}`;
      cell.onclick = () => send("/seq/step", [s, i, cell.classList.contains("on") ? 0 : 0.9]);
      row.append(cell);
    }
    return row;
  }));
  showSeq();
}
function showSeq() {
  if (!S.seq) return;
  document.querySelectorAll(".step").forEach((c) => {
    const [s, i] = c.dataset.step.split(":").map(Number);
    c.classList.toggle("on", (S.seq.steps[s] || [])[i] > 0);
  });
  $("seq-play").classList.toggle("active", S.seq.playing);
  $("seq-play").textContent = S.seq.playing ? "stop" : "play";
  if (document.activeElement !== $("seq-tempo")) $("seq-tempo").value = S.seq.tempo;
  if (dragging !== "swing") $("seq-swing").value = S.seq.swing;
}
function onSeq(address, args) {
  if (!S.seq) return;
  if (address === "/seq/step") S.seq.steps[args[0]][args[1]] = args[2];
  else if (address === "/seq/tempo") S.seq.tempo = args[0];
  else if (address === "/seq/swing") S.seq.swing = args[0];
  else if (address === "/seq/play") S.seq.playing = !!args[0];
  else if (address === "/seq/clear") S.seq.steps = S.seq.steps.map((r) => r.map(() => 0));
  showSeq();
}
$("seq-play").onclick = () => send("/seq/play", [S.seq && S.seq.playing ? 0 : 1]);
$("seq-tempo").onchange = () => send("/seq/tempo", [Number($("seq-tempo").value)]);
$("seq-swing").addEventListener("pointerdown", () => { dragging = "swing"; });
$("seq-swing").oninput = () => send("/seq/swing", [Number($("seq-swing").value)], true);
$("seq-clear").onclick = () => send("/seq/clear");

// --- buffers: waveform, spectrogram, audition ------------------------------------------------
function onBuffer(data) {
  const head = new Uint32Array(data, 0, 4);
  if (head[0] !== 0x534E5242) return;
  S.buffers[head[1]] = { rate: head[2], generation: head[3], samples: new Float32Array(data, 16) };
  if (S.state && head[1] === S.state.selected) drawBuffer();
}

function drawBuffer() {
  const b = S.state && S.buffers[S.state.selected];
  if (!b) return;
  drawWave($("wave"), b.samples); drawSpec($("spec"), b.samples);
}

function drawWave(canvas, x) {
  const g = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  g.fillStyle = "#0e0f12"; g.fillRect(0, 0, w, h);
  g.strokeStyle = "#f0a030"; g.beginPath();
  const per = x.length / w;
  for (let i = 0; i < w; i++) {
    let lo = 0, hi = 0;
    for (let j = Math.floor(i * per); j < Math.floor((i + 1) * per); j++) { lo = Math.min(lo, x[j]); hi = Math.max(hi, x[j]); }
    g.moveTo(i + 0.5, h / 2 - hi * h / 2); g.lineTo(i + 0.5, h / 2 - lo * h / 2 + 1);
  }
  g.stroke();
}

function fftMag(re) {  // radix-2 FFT magnitudes of a power-of-two frame
  const n = re.length, im = new Float32Array(n);
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1; for (; j & bit; bit >>= 1) j ^= bit; j ^= bit;
    if (i < j) { [re[i], re[j]] = [re[j], re[i]]; }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const a = -2 * Math.PI / len;
    for (let i = 0; i < n; i += len) for (let k = 0; k < len / 2; k++) {
      const c = Math.cos(a * k), s = Math.sin(a * k), p = i + k, q = p + len / 2;
      const tr = re[q] * c - im[q] * s, ti = re[q] * s + im[q] * c;
      re[q] = re[p] - tr; im[q] = im[p] - ti; re[p] += tr; im[p] += ti;
    }
  }
  const out = new Float32Array(n / 2);
  for (let i = 0; i < n / 2; i++) out[i] = Math.hypot(re[i], im[i]);
  return out;
}

function drawSpec(canvas, x) {
  const g = canvas.getContext("2d"), w = canvas.width, h = canvas.height, n = 512;
  const img = g.createImageData(w, h), hop = Math.max(1, Math.floor((x.length - n) / w));
  for (let col = 0; col < w; col++) {
    const frame = new Float32Array(n);
    for (let i = 0; i < n; i++) frame[i] = (x[col * hop + i] || 0) * (0.5 - 0.5 * Math.cos(2 * Math.PI * i / n));
    const mag = fftMag(frame);
    for (let row = 0; row < h; row++) {
      const bin = Math.floor(Math.pow(n / 2, 1 - row / h)) - 1;  // log frequency, high at the top
      const db = 20 * Math.log10(mag[Math.max(0, bin)] + 1e-9);
      const v = Math.max(0, Math.min(1, (db + 80) / 80)), o = 4 * (row * w + col);
      img.data[o] = 255 * v; img.data[o + 1] = 170 * v * v; img.data[o + 2] = 60 * v; img.data[o + 3] = 255;
    }
  }
  g.putImageData(img, 0, 0);
}

function audition(slot, velocity) {  // Web Audio: the daemon's own buffer, when asked to
  if (!$("audition").checked || !S.buffers[slot]) return;
  audioCtx = audioCtx || new AudioContext();
  const b = S.buffers[slot], buf = audioCtx.createBuffer(1, b.samples.length, b.rate);
  buf.copyToChannel(b.samples, 0);
  const src = audioCtx.createBufferSource(), gain = audioCtx.createGain();
  const curve = S.state ? S.state.kit.velocity_curve : "linear";
  gain.gain.value = { linear: velocity ** 2, soft: velocity, hard: velocity ** 3, fixed: 1 }[curve] ?? velocity ** 2;
  src.buffer = buf; src.connect(gain).connect(audioCtx.destination); src.start();
}

// --- Web MIDI: a controller on this computer plays the daemon --------------------------------
$("webmidi").onclick = async () => {
  if (!navigator.requestMIDIAccess) return toast("this browser has no Web MIDI");
  try {
    const access = await navigator.requestMIDIAccess();
    const hook = () => access.inputs.forEach((input) => { input.onmidimessage = onMidi; });
    hook(); access.onstatechange = hook;
    $("webmidi").classList.add("active");
  } catch (e) { toast(`Web MIDI: ${e.message || e}`); }
};
function onMidi(ev) {
  const [st, a, b] = ev.data, kind = st & 0xf0, ch = (st & 0x0f) + 1;
  if (kind === 0x90 && b > 0) { send("/midi/note", [a, b, ch]); }
  else if (kind === 0xb0) send(`/midi/cc`, [a, b, ch]);
}

function toast(text) {
  $("toast").textContent = text; $("toast").classList.add("show");
  clearTimeout(toast.t); toast.t = setTimeout(() => $("toast").classList.remove("show"), 2500);
}

setInterval(() => send("/status"), 1000);
connect();
