import { get, qs } from '../api.js';
import { h, clear, pageHead, field, input, pagedTable, searchBar, time } from '../ui.js';

export async function render(box) {
  const filters = { object_id: '' };
  const tbl = pagedTable([
    { title: 'When', render: e => time(e.at) },
    { title: 'Who', render: e => h('code', {}, e.actor) },
    { title: 'Action', render: e => e.action },
    { title: 'Object', render: e => [e.object_kind, ' ', h('code', {}, e.object_id)] },
    { title: 'Change', render: e => (e.before || e.after) ? h('details', {}, h('summary', {}, 'before / after'),
      h('pre', {}, JSON.stringify({ before: e.before, after: e.after }, null, 2))) : '' },
  ], cursor => get('/audit' + qs({ ...filters, order: 'desc', cursor, limit: 50 })), 'No changes recorded.');
  clear(box, ...pageHead('Audit log', 'Every change made through the admin API, newest first, with who made it.'),
    searchBar([field('Object id', input('object_id', { type: 'search' }))], v => { filters.object_id = v.object_id; tbl.reload(); }),
    tbl);
}
