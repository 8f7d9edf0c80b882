// Small DOM helpers. Text goes in as text nodes only: nothing the API returns is parsed as HTML.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uid = 0;
export const nextId = (p = 'f') => `${p}-${++uid}`;

// A labelled input: `name` is the API field it maps to (for error messages).
export function field(label, input, hint) {
  const id = input.id || nextId();
  input.id = id;
  const hintEl = hint ? h('div', { class: 'hint', id: id + '-hint' }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', id + '-hint');
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hintEl);
}

export const input = (name, attrs = {}) => h('input', { name, type: 'text', ...attrs });
export const textarea = (name, attrs = {}) => h('textarea', { name, ...attrs });
export function select(name, options, value, attrs = {}) {
  const el = h('select', { name, ...attrs },
    options.map(o => {
      const [v, t] = Array.isArray(o) ? o : [o, o];
      return h('option', { value: v }, t);
    }));
  if (value !== undefined) el.value = value;
  return el;
}

// Shows an API error on a form: each named field under its input, the rest at the top.
export function showErrors(form, err) {
  form.querySelectorAll('.err, .alert.error').forEach(e => e.remove());
  form.querySelectorAll('[aria-invalid]').forEach(e => e.removeAttribute('aria-invalid'));
  if (!err) return;
  let placed = false;
  for (const [name, reason] of Object.entries(err.fields || {})) {
    const top = name.split(/[.[]/)[0];
    const el = form.querySelector(`[name="${CSS.escape(name)}"]`) || form.querySelector(`[name="${CSS.escape(top)}"]`);
    if (el) {
      el.setAttribute('aria-invalid', 'true');
      const id = nextId('err');
      el.setAttribute('aria-errormessage', id);
      el.closest('.field')?.append(h('div', { class: 'err', id }, `${name}: ${reason}`));
      placed = true;
    }
  }
  const msg = h('div', { class: 'alert error', role: 'alert' }, err.message);
  form.prepend(msg);
  if (!placed) msg.focus?.();
}

// A form whose submit runs `action(values)`; errors shown in place; the button disabled while busy.
export function form(children, submitLabel, action, attrs = {}) {
  const f = h('form', { novalidate: true, ...attrs }, children,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, submitLabel)));
  f.addEventListener('submit', async ev => {
    ev.preventDefault();
    const btn = f.querySelector('button[type="submit"]');
    btn.disabled = true;
    showErrors(f, null);
    try {
      await action(values(f), f);
    } catch (e) {
      showErrors(f, e);
    } finally {
      btn.disabled = false;
    }
  });
  return f;
}

export function values(f) {
  const out = {};
  for (const el of f.elements) {
    if (!el.name) continue;
    out[el.name] = el.type === 'checkbox' ? el.checked : el.value;
  }
  return out;
}

export function toast(message, kind = 'ok') {
  const box = document.getElementById('toast');
  const item = h('div', { class: kind }, message);
  box.append(item);
  setTimeout(() => item.remove(), 4000);
}

// A modal confirmation. `reason`: ask for a text (its label); `numbers`: optional number fields
// ([name, label] pairs). Resolves to null when cancelled, else { reason, numbers: {name: n} }.
export function confirm({ title, body, confirmLabel = 'Confirm', danger = false, reason, numbers = [], hint }) {
  const dlg = document.getElementById('dialog');
  return new Promise(resolve => {
    const reasonInput = reason ? input('reason', { maxlength: 500 }) : null;
    const numberInputs = numbers.map(([name, label]) => [name, label, input(name, { type: 'number', min: 1, inputmode: 'numeric' })]);
    const done = v => { dlg.close(); resolve(v); };
    const collect = () => {
      const out = {};
      for (const [name, , el] of numberInputs) if (el.value) out[name] = Number(el.value);
      return { reason: reasonInput ? reasonInput.value : undefined, numbers: out };
    };
    clear(dlg,
      h('h2', { id: 'dialog-title' }, title),
      body ? h('p', {}, body) : null,
      reasonInput ? field(reason, reasonInput) : null,
      numberInputs.length ? h('div', { class: 'row' }, numberInputs.map(([, label, el]) => field(label, el))) : null,
      hint ? h('p', { class: 'muted' }, hint) : null,
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: danger ? 'danger' : '', id: 'dialog-confirm',
          onclick: () => done(collect()) }, confirmLabel),
        h('button', { type: 'button', class: 'secondary', onclick: () => done(null) }, 'Cancel')));
    dlg.onclose = () => resolve(null);
    dlg.showModal();
    (reasonInput || dlg.querySelector('#dialog-confirm')).focus();
  });
}

// A secret shown this once, with a copy button.
export function secretBox(label, secret) {
  const id = nextId('secret');
  const inp = h('input', { id, readonly: true, value: secret, 'data-secret': 'shown-once' });
  return h('div', { class: 'alert warn', role: 'alert' },
    h('label', { for: id }, label),
    h('div', { class: 'secret' }, inp,
      h('button', { type: 'button', class: 'secondary', onclick: async () => {
        try { await navigator.clipboard.writeText(secret); toast('Copied'); } catch { inp.select(); }
      } }, 'Copy')),
    h('p', {}, 'This is the only time it is shown. Store it now: the gateway keeps only a hash.'));
}

export function badge(state) {
  return h('span', { class: 'badge ' + String(state || '').replace(/[^a-z_]/g, '') }, state || '—');
}

export function time(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return h('time', { datetime: iso, title: iso }, d.toLocaleString());
}

export function table(columns, rows, empty = 'Nothing here yet.') {
  if (!rows.length) return h('p', { class: 'muted' }, empty);
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, columns.map(c => h('th', { scope: 'col', class: c.num ? 'num' : '' }, c.title)))),
    h('tbody', {}, rows.map(r => h('tr', {}, columns.map(c => h('td', { class: c.num ? 'num' : '' }, c.render(r))))))));
}

// A server-side paged list: `load(cursor)` returns a page; previous pages by a cursor stack.
export function pagedTable(columns, load, empty) {
  const box = h('div', { class: 'paged' });
  const stack = [];
  let cursor;
  async function show() {
    clear(box, h('p', { class: 'muted' }, 'Loading…'));
    try {
      const page = await load(cursor);
      const prev = h('button', { type: 'button', class: 'secondary', disabled: !stack.length,
        onclick: () => { cursor = stack.pop(); show(); } }, 'Previous page');
      const next = h('button', { type: 'button', class: 'secondary', disabled: !page.next_cursor,
        onclick: () => { stack.push(cursor); cursor = page.next_cursor; show(); } }, 'Next page');
      clear(box, table(columns, page.items, empty),
        (stack.length || page.next_cursor) ? h('div', { class: 'pager' }, prev, next,
          h('span', { class: 'muted' }, `page ${stack.length + 1}`)) : null);
    } catch (e) {
      clear(box, h('div', { class: 'alert error', role: 'alert' }, e.message));
    }
  }
  box.reload = () => { stack.length = 0; cursor = undefined; return show(); };
  show();
  return box;
}

export function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(p => p).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '—')]));
}

export function errorBox(e) {
  return h('div', { class: 'alert error', role: 'alert' }, e.message || String(e));
}

export function link(href, text) { return h('a', { href }, text); }

export function pageHead(title, lead, ...extra) {
  document.title = `${title} · Ringway`;
  return [h('h1', {}, title), lead ? h('p', { class: 'lead' }, lead) : null, ...extra];
}

// Search box + filters that call `onChange(values)` (debounced while typing).
export function searchBar(fields, onChange) {
  const f = h('form', { class: 'toolbar', role: 'search' }, fields);
  let t;
  const fire = () => onChange(values(f));
  f.addEventListener('input', () => { clearTimeout(t); t = setTimeout(fire, 250); });
  f.addEventListener('change', fire);
  f.addEventListener('submit', ev => { ev.preventDefault(); fire(); });
  return f;
}

export function fmtNum(n) {
  if (n === undefined || n === null) return '—';
  return Number(n).toLocaleString();
}

export function fmtMs(us) {
  if (!us) return '0 ms';
  return (us / 1000).toFixed(us < 10000 ? 2 : 0) + ' ms';
}
