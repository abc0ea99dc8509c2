// views/submit.js — the form that submits one job (POST /jobs) or a grid (POST /grids), with
// presets, and shows the API's validation errors (problem+json field/detail) next to fields.
// Nothing is queued on the first click: the form says how many jobs it would queue, and a
// second button queues them.
import { get, post } from '../api.js';
import { h, fill, toast } from '../dom.js';

// Number options: [key, label, step]. Empty inputs are left out (the preset or the daemon's
// defaults apply).
const NUMBERS = [
  ['epochs', 'epochs', 1], ['batch_size', 'batch size', 1], ['image_size', 'image size', 1],
  ['lr', 'learning rate', 'any'], ['depth', 'depth (plain/mlp)', 1], ['width', 'width (plain/mlp)', 1],
  ['stats_every', 'statistics every N epochs', 1], ['priority', 'priority', 1],
];

// The form element. datasets/models/initializers as the API lists them; onCreated(result)
// after a successful submission.
export function submitForm({ datasets, models, initializers, onCreated }) {
  const fields = {}; // key -> {box, err}
  const field = (key, label, input, wide) => {
    const err = h('div', { class: 'field-error', dataset: { errorFor: key } });
    const box = h('label', { class: 'field' + (wide ? ' wide' : ''), dataset: { field: key } }, h('span', { class: 'name' }, label), input, err);
    fields[key] = { box, err };
    return box;
  };
  const named = (name) => form.elements.namedItem(name);

  const kindBox = h('div', { class: 'checks' },
    ['grid', 'job'].map((k) => h('label', null, h('input', { type: 'radio', name: 'kind', value: k, checked: k === 'grid', onchange: () => setKind(k) }), k === 'grid' ? 'grid (every combination)' : 'single job')));
  const dsSelect = h('select', { name: 'dataset' },
    datasets.length ? null : h('option', { value: '' }, 'no dataset registered'),
    datasets.map((d) => h('option', { value: d.name, disabled: d.status !== 'ready' }, d.status === 'ready' ? d.name : `${d.name} (${d.status})`)));
  const firstReady = datasets.find((d) => d.status === 'ready');
  if (firstReady) dsSelect.value = firstReady.name;
  const presetSelect = h('select', { name: 'preset', onchange: () => applyPreset() }, h('option', { value: '' }, 'none'));
  const checks = (name, items, on) => h('div', { class: 'checks' }, items.map((it, i) => h('label', { title: it.description || it.scale || '' },
    h('input', { type: 'checkbox', name, value: it.name, checked: on(it, i) }), it.name)));
  const modelChecks = checks('models', models, (it, i) => i === 0);
  const initChecks = checks('initializers', initializers, (it) => /^(glorot|he)_uniform$/.test(it.name));
  const seeds = h('input', { name: 'seeds', value: '0', placeholder: '0, 1, 2' });
  const extra = h('textarea', { name: 'extra', placeholder: '{"schedule": "step", "milestones": [30, 60], "weight_decay": 0.0001}' });
  const formError = h('div', { class: 'form-error', dataset: { formError: '' } });
  const submit = h('button', { class: 'primary', type: 'submit' }, 'Review grid');
  const confirmBox = h('div', { class: 'confirm', hidden: true, dataset: { confirm: '' } });
  let pending = null; // the request the confirm button sends

  const form = h('form', { class: 'grid-form', novalidate: true, dataset: { form: 'submit' }, onsubmit: (e) => { e.preventDefault(); send(); } },
    field('kind', 'submit as', kindBox),
    field('dataset', 'dataset', dsSelect),
    field('preset', 'preset', presetSelect),
    field('seeds', 'seeds', seeds),
    field('models', 'models', modelChecks, true),
    field('initializers', 'initializers', initChecks, true),
    NUMBERS.map(([key, label, step]) => field(key, label, h('input', { type: 'number', name: key, step, placeholder: 'default' }))),
    field('extra', 'other options (JSON object of job configuration keys)', extra, true),
    h('div', { class: 'form-actions' }, submit, formError), confirmBox);
  form.addEventListener('input', () => hideConfirm());
  form.addEventListener('change', () => hideConfirm());

  let presets = {};
  get('/presets').then((p) => {
    presets = p.presets || {};
    fill(presetSelect, h('option', { value: '' }, 'none'), Object.keys(presets).map((k) => h('option', { value: k }, k)));
  }).catch((e) => { formError.textContent = 'presets: ' + e.message; });

  function setKind(kind) {
    for (const box of [modelChecks, initChecks])
      for (const input of box.querySelectorAll('input')) input.type = kind === 'grid' ? 'checkbox' : 'radio';
    fields.seeds.box.querySelector('.name').textContent = kind === 'grid' ? 'seeds' : 'seed';
    submit.textContent = kind === 'grid' ? 'Review grid' : 'Review job';
  }

  // Fills the number inputs with the preset's values (they stay editable).
  function applyPreset() {
    const cfg = presets[presetSelect.value];
    if (!cfg) return;
    for (const [key] of NUMBERS)
      if (cfg[key] !== undefined && cfg[key] !== null) named(key).value = cfg[key];
  }

  function clearErrors() {
    formError.textContent = '';
    for (const f of Object.values(fields)) {
      f.err.textContent = '';
      f.box.classList.remove('invalid');
    }
  }

  // The form field an API error's field belongs to ("models[1]" -> models, "init" -> ...).
  function fieldFor(apiField, body) {
    const key = String(apiField).replace(/[[.].*$/, '');
    const alias = { model: 'models', init: 'initializers', initializer: 'initializers', seed: 'seeds' };
    if (fields[alias[key] || key]) return alias[key] || key;
    return key in body ? 'extra' : null;
  }

  function body() {
    const kind = named('kind').value;
    let b = {};
    const text = extra.value.trim();
    if (text) {
      try {
        b = JSON.parse(text);
      } catch (e) {
        throw Object.assign(new Error('not valid JSON: ' + e.message), { field: 'extra' });
      }
      if (typeof b !== 'object' || Array.isArray(b) || b === null)
        throw Object.assign(new Error('must be a JSON object'), { field: 'extra' });
    }
    b.dataset = dsSelect.value;
    if (presetSelect.value) b.preset = presetSelect.value;
    for (const [key] of NUMBERS) {
      const v = named(key).value.trim();
      if (v !== '') b[key] = Number(v);
    }
    const picked = (box) => [...box.querySelectorAll('input:checked')].map((i) => i.value);
    const seedList = seeds.value.split(/[\s,]+/).filter(Boolean).map(Number);
    if (kind === 'grid') {
      b.models = picked(modelChecks);
      b.initializers = picked(initChecks);
      b.seeds = seedList;
    } else {
      b.model = picked(modelChecks)[0];
      b.init = picked(initChecks)[0];
      if (seedList.length) b.seed = seedList[0];
    }
    return { kind, b };
  }

  function hideConfirm() {
    pending = null;
    confirmBox.hidden = true;
  }

  // First step: what would be queued, and a button that queues it.
  function send() {
    clearErrors();
    let req;
    try {
      req = body();
    } catch (e) {
      return showError(e.field, e.message, {});
    }
    const b = req.b;
    const n = req.kind === 'grid' ? (b.models || []).length * (b.initializers || []).length * Math.max(1, (b.seeds || []).length) : 1;
    const what = req.kind === 'grid'
      ? `${(b.models || []).join(', ') || 'no model'} × ${(b.initializers || []).join(', ') || 'no initializer'} × seeds ${(b.seeds || []).join(', ') || '0'}`
      : `${b.model} ${b.init} seed ${b.seed ?? 0}`;
    pending = req;
    fill(confirmBox, h('span', null, `This queues ${n} job${n === 1 ? '' : 's'} on ${b.dataset || 'no dataset'}: ${what}${b.preset ? ' (preset ' + b.preset + ')' : ''}. `),
      h('button', { class: 'primary', type: 'button', dataset: { action: 'confirm-submit' }, onclick: () => pending && queue(pending) }, `Queue ${n} job${n === 1 ? '' : 's'}`),
      h('button', { type: 'button', onclick: hideConfirm }, 'Back'));
    confirmBox.hidden = false;
  }

  async function queue(req) {
    hideConfirm();
    submit.disabled = true;
    try {
      const res = await post(req.kind === 'grid' ? '/grids' : '/jobs', req.b);
      const what = req.kind === 'grid' ? `grid ${res.grid_id}: ${res.jobs.length} jobs queued` : `job ${res.id} queued`;
      formError.textContent = '';
      toast(what);
      if (onCreated) onCreated(res);
    } catch (e) {
      showError(e.field ? fieldFor(e.field, req.b) : null, e.message, req.b, e.field);
    } finally {
      submit.disabled = false;
    }
  }

  function showError(key, message, b, apiField) {
    const f = key && fields[key];
    if (!f) {
      formError.textContent = (apiField ? apiField + ': ' : '') + message;
      return;
    }
    f.err.textContent = key === 'extra' && apiField ? `${apiField}: ${message}` : message;
    f.box.classList.add('invalid');
    f.box.scrollIntoView({ block: 'nearest' });
  }

  return form;
}
