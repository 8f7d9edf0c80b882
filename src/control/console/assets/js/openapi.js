// Renders an OpenAPI 3 document as readable reference docs: operations grouped by tag, with
// parameters, request bodies and responses, and schemas resolved from components. Text only:
// descriptions are shown as plain text, never as HTML.

import { h } from './ui.js';

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

export function renderOpenApi(doc) {
  if (!doc || typeof doc !== 'object') return h('p', { class: 'muted' }, 'No OpenAPI document.');
  const info = doc.info || {};
  const groups = new Map();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    if (!item || typeof item !== 'object') continue;
    for (const m of METHODS) {
      const op = item[m];
      if (!op || typeof op !== 'object') continue;
      const tag = (Array.isArray(op.tags) && op.tags[0]) || 'Operations';
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push({ path, method: m, op, shared: item.parameters || [] });
    }
  }
  return h('div', { class: 'openapi' },
    h('h2', {}, `${info.title || 'API'} `, info.version ? h('span', { class: 'badge' }, info.version) : null),
    info.description ? h('p', {}, String(info.description)) : null,
    Array.isArray(doc.servers) && doc.servers.length ? h('p', { class: 'muted' }, 'Servers: ', doc.servers.map(s => s.url).join(', ')) : null,
    groups.size ? [...groups].map(([tag, ops]) => h('section', {},
      h('h3', {}, tag),
      ops.map(o => operation(doc, o)))) : h('p', { class: 'muted' }, 'The document lists no operations.'));
}

function operation(doc, { path, method, op, shared }) {
  const params = [...shared, ...(op.parameters || [])].map(p => resolve(doc, p)).filter(Boolean);
  const body = resolve(doc, op.requestBody);
  return h('details', { class: 'op', 'data-operation': `${method.toUpperCase()} ${path}` },
    h('summary', {}, h('span', { class: 'method ' + method }, method.toUpperCase()), h('code', {}, path),
      op.summary ? h('span', { class: 'muted' }, String(op.summary)) : null,
      op.deprecated ? h('span', { class: 'badge deprecated' }, 'deprecated') : null),
    h('div', { class: 'body' },
      op.description ? h('p', {}, String(op.description)) : null,
      params.length ? [h('h4', {}, 'Parameters'), h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Name', 'In', 'Type', 'Required', 'Description'].map(t => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, params.map(p => h('tr', {},
          h('td', {}, h('code', {}, String(p.name))), h('td', {}, String(p.in || '')),
          h('td', {}, typeName(doc, p.schema)), h('td', {}, p.required ? 'yes' : 'no'),
          h('td', {}, String(p.description || '')))))))] : null,
      body ? [h('h4', {}, 'Request body' + (body.required ? ' (required)' : '')), content(doc, body.content)] : null,
      op.responses ? [h('h4', {}, 'Responses'), Object.entries(op.responses).map(([code, r]) => {
        r = resolve(doc, r) || {};
        return h('div', { class: 'response' }, h('p', {}, h('strong', {}, code), ' ', String(r.description || '')), content(doc, r.content));
      })] : null));
}

function content(doc, c) {
  if (!c || typeof c !== 'object') return null;
  return Object.entries(c).map(([type, media]) => h('div', {},
    h('p', { class: 'muted' }, type),
    media && media.schema ? schema(doc, media.schema, 0) : null,
    media && media.example !== undefined ? h('pre', {}, JSON.stringify(media.example, null, 2)) : null));
}

function resolve(doc, x, depth = 0) {
  if (!x || typeof x !== 'object') return x;
  if (typeof x.$ref === 'string' && depth < 10) {
    const parts = x.$ref.replace(/^#\//, '').split('/').map(p => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    let v = doc;
    for (const p of parts) v = v && typeof v === 'object' ? v[p] : undefined;
    return resolve(doc, v, depth + 1);
  }
  return x;
}

function typeName(doc, s) {
  const r = resolve(doc, s);
  if (!r || typeof r !== 'object') return '';
  const name = s && s.$ref ? s.$ref.split('/').pop() : null;
  if (r.type === 'array') return `array of ${typeName(doc, r.items) || 'any'}`;
  if (Array.isArray(r.enum)) return `${r.type || 'enum'} (${r.enum.map(String).join(' | ')})`;
  return name || [r.type, r.format].filter(Boolean).join(', ') || 'object';
}

function schema(doc, s, depth) {
  const r = resolve(doc, s);
  if (!r || typeof r !== 'object' || depth > 6) return h('code', {}, typeName(doc, s) || 'any');
  if (r.type === 'array') return h('div', {}, 'array of ', schema(doc, r.items, depth + 1));
  const props = r.properties && typeof r.properties === 'object' ? Object.entries(r.properties) : [];
  if (!props.length) return h('code', {}, typeName(doc, s));
  const req = new Set(Array.isArray(r.required) ? r.required : []);
  return h('ul', { class: 'schema' }, props.map(([name, p]) => {
    const pr = resolve(doc, p) || {};
    const nested = (pr.type === 'object' && pr.properties) || (pr.type === 'array' && resolve(doc, pr.items)?.properties);
    return h('li', {}, h('code', {}, name), ' ', h('span', { class: 'muted' }, typeName(doc, p)),
      req.has(name) ? h('strong', {}, ' required') : null,
      pr.description ? ` — ${String(pr.description)}` : null,
      nested ? schema(doc, p, depth + 1) : null);
  }));
}
