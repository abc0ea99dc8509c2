// synthetic.mjs — API answers for a large made-up job (100 epochs × 60 layers), served to the
// page by request interception to check that the Job view stays responsive at that size.

export const BIG_ID = 999999;
export const EPOCHS = 100;
export const LAYERS = 60;

function job() {
  return {
    id: BIG_ID, grid_id: null, status: 'done', priority: 0, dataset: 'synthetic', model: 'resnet50',
    initializer: 'he_uniform', seed: 0, epochs: EPOCHS, created_at: 1.7e9, started_at: 1.7e9, finished_at: 1.7e9 + 3600,
    error: null, attempts: 1,
    progress: { phase: null, epoch: EPOCHS, step: 0, steps_per_epoch: 100, images_per_sec: 100, eta_seconds: null, best_val_acc: 0.9, best_epoch: 90 },
    config: { model: 'resnet50', init: 'he_uniform', epochs: EPOCHS, batch_size: 32, image_size: 224, lr: 0.01, schedule: 'step', milestones: [30, 60], gamma: 0.1 },
  };
}

function epochs() {
  const rows = [];
  for (let e = 1; e <= EPOCHS; e++) {
    const f = 1 - Math.exp(-e / 20);
    rows.push({ epoch: e, train_loss: 2 - 1.5 * f, train_acc: 0.1 + 0.85 * f, val_loss: 2.1 - 1.4 * f, val_acc: 0.1 + 0.8 * f, lr: 0.01 * 0.1 ** ((e > 30) + (e > 60)), seconds: 30, images_per_sec: 100 });
  }
  return { job_id: BIG_ID, milestones: [30, 60], epochs: rows };
}

function layer(i, quantity, mode, epoch, withHist) {
  const s = (quantity === 'weight' ? 0.05 : 1) * (1 + i / 20) * (1 + epoch / 200);
  const r = {
    layer_index: i, layer: `block${Math.floor(i / 3)}_${['conv', 'bn', 'relu'][i % 3]}`, type: ['conv2d', 'batchnorm', 'relu'][i % 3],
    mode, quantity, n: 10000, mean: 0, std: s, min: -4 * s, max: 4 * s, q1: -0.67 * s, median: 0, q3: 0.67 * s,
    whisker_lo: -2.7 * s, whisker_hi: 2.7 * s, p1: -2.3 * s, p99: 2.3 * s, zero_frac: 0, nonfinite: 0,
    predicted_var: quantity === 'weight' && i % 3 === 0 ? (0.05 * (1 + i / 20)) ** 2 : null,
    dead_units: 0, saturation: 0, flags: i === 59 ? ['saturated'] : [],
  };
  if (withHist) {
    const counts = [];
    for (let k = 0; k < 64; k++) {
      const x = -4 + (k + 0.5) / 8;
      counts.push(Math.round(1000 * Math.exp(-x * x / 2)));
    }
    r.histogram = { lo: -4 * s, hi: 4 * s, counts };
  }
  return r;
}

function stats(url, withHist) {
  const q = new URL(url).searchParams;
  const quantity = q.get('quantity') || 'weight', mode = q.get('mode') || 'inference';
  const epoch = q.has('epoch') ? Number(q.get('epoch')) : EPOCHS;
  const layers = [];
  for (let i = 0; i < LAYERS; i++) layers.push(layer(i, quantity, mode, epoch, withHist));
  return { job_id: BIG_ID, epoch, mode, quantity, epochs_available: Array.from({ length: EPOCHS + 1 }, (_, i) => i), layers };
}

function results() {
  const names = Array.from({ length: 21 }, (_, i) => `species_${i}`);
  return {
    job_id: BIG_ID, epoch: EPOCHS, accuracy: 0.9, precision_macro: 0.89, recall_macro: 0.88, f1_macro: 0.885, loss: 0.4, class_names: names,
    confusion: names.map((_, t) => names.map((__, p) => (t === p ? 90 : 1))),
    per_class: names.map((n, i) => ({ class: i, name: n, precision: 0.9, recall: 0.9, f1: 0.9, support: 110 })),
  };
}

// The answer for url, or null when url is not about the synthetic job.
// The intra-epoch curve: 20 points per epoch.
function steps() {
  const out = [];
  for (let e = 1; e <= EPOCHS; e++)
    for (let k = 1; k <= 20; k++)
      out.push({ global_step: (e - 1) * 200 + k * 10, epoch: e, step: k * 10, steps_per_epoch: 200, loss: 2 / (e + k / 20), accuracy: 1 - 1 / (e + k / 20) });
  return { job_id: BIG_ID, points_per_epoch: 20, steps: out };
}

export function answer(url) {
  const path = new URL(url).pathname;
  const base = `/api/v1/jobs/${BIG_ID}`;
  if (!path.startsWith(base)) return null;
  const rest = path.slice(base.length);
  if (rest === '') return job();
  if (rest === '/epochs') return epochs();
  if (rest === '/stats') return stats(url, false);
  if (rest === '/histograms') return stats(url, true);
  if (rest === '/results') return results();
  if (rest === '/steps') return steps();
  return null;
}
