import { get, post, put, del } from '../api.js';
import { h, clear, pageHead, field, input, select, form, table, confirm, toast, badge } from '../ui.js';
import { go } from '../app.js';

// The AI gateway (operator only): providers and their key pools, model aliases, the price table
// and the config file's AI routes (prompt APIs among them).
export async function render(box) {
  const [providers, models, prices] = await Promise.all([get('/ai/providers'), get('/ai/models'), get('/ai/prices')]);
  const reload = () => go('#/ai');
  clear(box, ...pageHead('AI gateway', 'One OpenAI-compatible API over the providers below. Providers, aliases and prompt routes come from the config file ([ai] and [[routes]] with ai = {...}); keys and prices can also be added here.'),
    h('h2', {}, 'Providers and key pools'),
    providers.items.length ? providers.items.map(p => h('section', { class: 'panel', 'data-provider': p.name },
      h('h3', {}, p.name, ' ', h('span', { class: 'badge' }, p.kind)),
      h('p', { class: 'muted' }, `${p.host}${p.base_path}`),
      table([
        { title: 'Label', render: k => k.label },
        { title: 'Key', render: k => h('code', {}, '…' + k.last4) },
        { title: 'Source', render: k => k.source },
        { title: 'State', render: k => [badge(k.state), k.retry_after_ms ? ` (${Math.ceil(k.retry_after_ms / 1000)} s)` : ''] },
        { title: '', render: k => k.source === 'store' ? h('button', { type: 'button', class: 'danger', onclick: async () => {
          if (!await confirm({ title: `Remove key ${k.label}?`, body: 'Calls stop using it at once.', confirmLabel: 'Remove', danger: true })) return;
          try { await del(`/ai/providers/${encodeURIComponent(p.name)}/keys/${encodeURIComponent(k.id)}`); toast('Key removed'); reload(); } catch (e) { toast(e.message, 'error'); }
        } }, 'Remove') : h('span', { class: 'muted' }, 'in the config') },
      ], p.keys, 'No keys: calls to this provider are refused (503) until one is added.'),
      form([h('div', { class: 'row' },
        field('Provider key', input('key', { type: 'password', autocomplete: 'off', required: true })),
        field('Label', input('label', { maxlength: 100 })))],
      'Add key', async v => {
        await post(`/ai/providers/${encodeURIComponent(p.name)}/keys`, { key: v.key, label: v.label || undefined });
        toast('Key added; it is sealed in the store and never shown again');
        reload();
      }))) : h('p', { class: 'muted' }, 'No providers: add [ai.providers.NAME] to the config file.'),
    h('h2', {}, 'Model aliases'),
    table([
      { title: 'Alias', render: a => h('code', {}, a.name) },
      { title: 'Order', render: a => a.order },
      { title: 'Targets (first is preferred)', render: a => a.targets.map(t => `${t.provider}/${t.model}${a.order === 'weighted' ? ` ×${t.weight}` : ''}`).join(' → ') },
    ], models.aliases, 'No aliases.'),
    h('h2', {}, 'AI routes and prompt APIs'),
    table([
      { title: 'Route', render: r => r.route },
      { title: 'Path', render: r => h('code', {}, r.path) },
      { title: 'Kind', render: r => r.kind },
      { title: 'Models / provider', render: r => r.provider || (r.models.length ? r.models.join(', ') : 'all aliases') },
      { title: 'Variables', render: r => r.variables ? r.variables.map(v => `${v.name}: ${v.type}${v.required ? '' : '?'}`).join(', ') : '—' },
    ], models.routes, 'No AI routes in the config file.'),
    h('h2', {}, 'Prices (USD per million tokens)'),
    table([
      { title: 'Model', render: ([m]) => h('code', {}, m) },
      { title: 'Input', num: true, render: ([, p]) => p.input },
      { title: 'Cached input', num: true, render: ([, p]) => p.cached_input },
      { title: 'Output', num: true, render: ([, p]) => p.output },
      { title: 'Source', render: ([, p]) => p.source },
      { title: '', render: ([m, p]) => p.source === 'store' ? h('button', { type: 'button', class: 'secondary', onclick: async () => {
        try { await del('/ai/prices/' + encodeURIComponent(m)); toast('Price removed'); reload(); } catch (e) { toast(e.message, 'error'); }
      } }, 'Remove') : null },
    ], Object.entries(prices.items), 'No prices: calls are counted at $0.'),
    h('div', { class: 'panel' }, h('h3', {}, 'Set a price'), form([h('div', { class: 'row' },
      field('Provider model', input('model', { required: true })),
      field('Input $/Mtok', input('input', { required: true, inputmode: 'decimal' })),
      field('Output $/Mtok', input('output', { required: true, inputmode: 'decimal' })),
      field('Cached input $/Mtok', input('cached_input', { inputmode: 'decimal' })))],
    'Save price', async v => {
      await put('/ai/prices/' + encodeURIComponent(v.model), { input: v.input, output: v.output, cached_input: v.cached_input || undefined });
      toast('Price saved');
      reload();
    })));
}

export { select };
