// The page: opens the engine (wasm), loads MNIST from this server, trains with a live chart,
// classifies drawings and runs the kernels check. Every call into the engine goes through
// `serial`, one at a time, so a drawing is classified between two slices of training.
import init, { App } from './pkg/web.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const FILES = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
               't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'];
const STEPS_PER_SLICE = 25;

// What the browser test reads.
const results = { state: 'starting', adapter: null, data: null, training: [], checks: null,
                  prediction: null, classifying: false, errors: [] };
window.wgslnn = results;

let queue = Promise.resolve();
function serial(task) {
  const run = queue.then(task);
  queue = run.catch(() => {});
  return run;
}

function setState(state, text) {
  results.state = state;
  const status = $('status');
  status.dataset.state = state;
  if (text) status.textContent = text;
}

function fail(where, error) {
  const message = `${where}: ${error && error.message ? error.message : error}`;
  results.errors.push(message);
  setState('error', message);
}

const nextTick = () => new Promise((resolve) => setTimeout(resolve, 0));

// ---- the chart: running loss (left axis) and test accuracy (right axis) ----
const chart = { loss: [], accuracy: [] };
function drawChart() {
  const canvas = $('chart');
  const g = canvas.getContext('2d');
  const w = canvas.width, h = canvas.height, pad = 36;
  g.clearRect(0, 0, w, h);
  g.strokeStyle = '#ccc';
  g.strokeRect(pad, 10, w - 2 * pad, h - 40);
  g.fillStyle = '#444';
  g.font = '12px sans-serif';
  const xs = chart.loss.length ? chart.loss[chart.loss.length - 1].x : 1;
  const maxLoss = Math.max(0.5, ...chart.loss.map((p) => p.y));
  const px = (x) => pad + (w - 2 * pad) * (x / Math.max(xs, 1e-9));
  const plot = (points, ymin, ymax, colour) => {
    g.strokeStyle = colour; g.fillStyle = colour; g.beginPath();
    points.forEach((p, i) => {
      const y = 10 + (h - 40) * (1 - (p.y - ymin) / (ymax - ymin));
      if (i === 0) g.moveTo(px(p.x), y); else g.lineTo(px(p.x), y);
      g.fillRect(px(p.x) - 2, y - 2, 4, 4);
    });
    g.stroke();
  };
  plot(chart.loss, 0, maxLoss, '#4a7fd6');
  plot(chart.accuracy, 0, 1, '#d6784a');
  g.fillStyle = '#4a7fd6'; g.fillText(`loss (0–${maxLoss.toFixed(2)})`, pad, h - 12);
  g.fillStyle = '#d6784a'; g.fillText('test accuracy (0–1)', pad + 160, h - 12);
  g.fillStyle = '#444'; g.fillText('epochs →', w - pad - 60, h - 12);
}

// ---- start-up ----
let app;
async function main() {
  try {
    await init();
    app = await App.create();
  } catch (error) {
    fail('opening WebGPU', error);
    return;
  }
  results.adapter = JSON.parse(app.adapter());
  const table = $('adapter');
  for (const [key, value] of Object.entries(results.adapter)) {
    const row = table.insertRow();
    row.insertCell().textContent = key;
    row.insertCell().textContent = value === null || value === '' ? '— (not exposed)' : String(value);
  }
  $('check').disabled = false;
  setState('loading', 'Loading MNIST…');
  try {
    const buffers = await Promise.all(FILES.map(async (name) => {
      const response = await fetch(`data/${name}.gz`);
      if (!response.ok) throw new Error(`data/${name}.gz: HTTP ${response.status}`);
      return new Uint8Array(await response.arrayBuffer());
    }));
    results.data = JSON.parse(app.load_mnist(...buffers));
  } catch (error) {
    fail('loading MNIST', error);
    return;
  }
  setState('ready', `MNIST validated: ${results.data.train} training and ${results.data.test} test images.`);
  $('train').disabled = false;
  if (params.has('model')) $('model').value = params.get('model');
  if (params.has('recipe')) $('recipe').value = params.get('recipe');
  if (params.has('train')) $('train-limit').value = params.get('train');
  if (params.has('epochs')) $('epochs').value = params.get('epochs');
  if (params.get('check') === '1') await checkKernels();
  if (params.get('autotrain') === '1') await train();
}

// ---- training ----
async function train() {
  const model = $('model').value;
  const recipe = $('recipe').value;
  const limit = Number($('train-limit').value);
  const epochs = Number($('epochs').value);
  $('train').disabled = true;
  chart.loss.length = 0; chart.accuracy.length = 0;
  results.training = [];
  setState('training', `Training (${model}, ${recipe}, ${limit} images, ${epochs} epochs)…`);
  try {
    await serial(() => app.start(model, recipe, limit, epochs));
    let epochStart = performance.now(), epochImages = 0;
    for (;;) {
      const t0 = performance.now();
      const r = JSON.parse(await serial(() => app.train(STEPS_PER_SLICE)));
      if (r.done && r.images === undefined) break;
      epochImages += r.images;
      const rate = r.images / ((performance.now() - t0) / 1000);
      chart.loss.push({ x: r.epoch - 1 + r.step / r.steps, y: r.loss });
      $('progress').textContent = `epoch ${r.epoch}/${r.epochs}, step ${r.step}/${r.steps}, ` +
        `loss ${r.loss.toFixed(4)}, ${rate.toFixed(0)} images/s, ${r.dispatches_per_step} dispatches per step`;
      if (r.epoch_ended) {
        const seconds = (performance.now() - epochStart) / 1000;
        chart.accuracy.push({ x: r.epoch, y: r.test_accuracy });
        results.training.push({ epoch: r.epoch, loss: r.loss, test_accuracy: r.test_accuracy,
                                seconds, images_per_second: epochImages / seconds });
        $('progress').textContent = `epoch ${r.epoch}/${r.epochs}: loss ${r.loss.toFixed(4)}, ` +
          `test accuracy ${(100 * r.test_accuracy).toFixed(2)} %, ${seconds.toFixed(1)} s ` +
          `(${(epochImages / seconds).toFixed(0)} images/s)`;
        epochStart = performance.now(); epochImages = 0;
      }
      drawChart();
      if (r.done) break;
      await nextTick();
    }
  } catch (error) {
    fail('training', error);
    $('train').disabled = false;
    return;
  }
  $('train').disabled = false;
  $('prediction').textContent = 'Draw a digit.';
  setState('trained', `Trained: test accuracy ${(100 * results.training.at(-1).test_accuracy).toFixed(2)} %.`);
}

// ---- drawing ----
const pad = $('pad');
const pen = pad.getContext('2d');
function clearPad() {
  pen.fillStyle = '#000';
  pen.fillRect(0, 0, pad.width, pad.height);
  $('seen').getContext('2d').clearRect(0, 0, 56, 56);
  results.prediction = null;
}
clearPad();
let drawing = false, last = null, pending = false;
pad.addEventListener('pointerdown', (e) => { drawing = true; last = [e.offsetX, e.offsetY]; stroke(e); });
pad.addEventListener('pointermove', (e) => { if (drawing) stroke(e); });
window.addEventListener('pointerup', () => { if (drawing) { drawing = false; classify(); } });
$('clear').addEventListener('click', clearPad);

function stroke(e) {
  pen.strokeStyle = '#fff'; pen.lineWidth = 20; pen.lineCap = 'round'; pen.lineJoin = 'round';
  pen.beginPath(); pen.moveTo(...last); pen.lineTo(e.offsetX, e.offsetY); pen.stroke();
  last = [e.offsetX, e.offsetY];
  classify();
}

// Classifies what is on the pad: one request in flight; a drawing that changes meanwhile is
// classified again when it returns, so the last result is always of the last drawing.
let again = false;
async function classify() {
  if (!app || results.training.length === 0) return;
  if (pending) { again = true; return; }
  pending = true;
  results.classifying = true;
  try {
    do {
      again = false;
      await nextTick();
      const pixels = pen.getImageData(0, 0, pad.width, pad.height).data;
      const ink = new Float32Array(pad.width * pad.height);
      for (let i = 0; i < ink.length; i++) ink[i] = pixels[4 * i] / 255;
      const r = JSON.parse(await serial(() => app.classify(ink, pad.width, pad.height)));
      showPrediction(r);
    } while (again);
  } catch (error) {
    fail('classifying', error);
  } finally {
    pending = false;
    results.classifying = false;
  }
}

function showPrediction({ probabilities, image }) {
  const best = probabilities.indexOf(Math.max(...probabilities));
  results.prediction = { digit: best, probabilities };
  const bars = $('bars');
  bars.replaceChildren();
  probabilities.forEach((p, digit) => {
    const label = document.createElement('span'); label.textContent = digit;
    const track = document.createElement('div');
    const bar = document.createElement('div');
    bar.className = digit === best ? 'bar best' : 'bar';
    bar.style.width = `${(100 * p).toFixed(1)}%`;
    track.append(bar);
    const value = document.createElement('span'); value.textContent = `${(100 * p).toFixed(1)} %`;
    bars.append(label, track, value);
  });
  $('prediction').textContent = `It is a ${best} (${(100 * probabilities[best]).toFixed(1)} %).`;
  const seen = $('seen').getContext('2d');
  const picture = seen.createImageData(28, 28);
  image.forEach((v, i) => { picture.data.set([255 * v, 255 * v, 255 * v, 255], 4 * i); });
  createImageBitmap(picture).then((bitmap) => {
    seen.imageSmoothingEnabled = false;
    seen.drawImage(bitmap, 0, 0, 56, 56);
  });
}

// ---- the kernels check ----
async function checkKernels() {
  $('check').disabled = true;
  const body = $('checks').tBodies[0];
  body.replaceChildren();
  $('check-summary').textContent = 'Running…';
  try {
    const summary = JSON.parse(await serial(() => app.check_kernels((json) => {
      const row = JSON.parse(json);
      const tr = body.insertRow();
      tr.className = row.status;
      for (const cell of [row.family, row.case, row.status, row.detail]) tr.insertCell().textContent = cell;
    })));
    results.checks = summary;
    $('check-summary').textContent = `${summary.rows} cases: ${summary.failed} failed, ` +
      `${summary.skipped} skipped (not on this adapter); worst error ${summary.worst_error.toExponential(2)}.`;
  } catch (error) {
    fail('kernels check', error);
  }
  $('check').disabled = false;
}

$('train').addEventListener('click', train);
$('check').addEventListener('click', checkKernels);
main();
