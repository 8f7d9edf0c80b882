import { get, post, qs } from '../api.js';
import { h, clear, pageHead, field, select, pagedTable, searchBar, link, time, confirm, toast, badge } from '../ui.js';
import { can, isOperator, myTenant } from '../app.js';

export async function inbox(box) {
  const govern = can('govern');
  const filters = { state: 'pending', side: govern ? 'provider' : '' };
  const tbl = pagedTable([
    { title: 'App', render: s => [s.app_name || s.app_id, ' ', h('span', { class: 'muted' }, `of ${s.app_tenant_name || s.app_tenant_id || '?'}`)] },
    { title: 'Service', render: s => link('#/services/' + encodeURIComponent(s.service_id), s.service_name || s.service_id) },
    { title: 'State', render: s => badge(s.state) },
    { title: 'Reason', render: s => s.reason || '' },
    { title: 'Requested', render: s => time(s.created_at) },
    { title: '', render: s => actions(s) },
  ], cursor => get('/subscriptions' + qs({ ...filters, cursor, limit: 50 })), 'Nothing here.');

  function actions(s) {
    // The service's tenant decides; the API refuses anyone else.
    const owns = isOperator() || s.service_tenant_id === myTenant();
    if (!govern || !owns) return null;
    const act = async (what, opts) => {
      const answer = await confirm(opts);
      if (!answer) return;
      try {
        const body = {};
        if (answer.reason) body.reason = answer.reason;
        if (what === 'approve' && Object.keys(answer.numbers).length) body.quota = answer.numbers;
        await post(`/subscriptions/${encodeURIComponent(s.id)}/${what}`, body);
        toast(`Subscription ${what === 'approve' ? 'approved' : what + 'ed'}`);
        tbl.reload();
      } catch (e) { toast(e.message, 'error'); }
    };
    if (s.state === 'pending') {
      return h('div', { class: 'actions' },
        h('button', { type: 'button', 'data-action': 'approve', onclick: () => act('approve', { title: `Approve ${s.app_name || s.app_id}?`, body: `It may call ${s.service_name || s.service_id} with its keys from now on.`, confirmLabel: 'Approve',
          numbers: [['per_second', 'Quota per second'], ['per_minute', 'per minute'], ['per_day', 'per day']], hint: 'A quota of its own for this app (optional); empty: the service\'s quota applies.' }) }, 'Approve'),
        h('button', { type: 'button', class: 'danger', 'data-action': 'reject', onclick: () => act('reject', { title: `Reject ${s.app_name || s.app_id}?`, body: 'The requester sees your reason.', confirmLabel: 'Reject', danger: true, reason: 'Reason (shown to the requester)' }) }, 'Reject'));
    }
    if (s.state === 'approved') {
      return h('button', { type: 'button', class: 'danger', 'data-action': 'revoke', onclick: () => act('revoke', { title: `Revoke access of ${s.app_name || s.app_id}?`, body: 'Its calls are refused from now on.', confirmLabel: 'Revoke', danger: true, reason: 'Reason (shown to the app\'s tenant)' }) }, 'Revoke');
    }
    return null;
  }

  clear(box, ...pageHead('Subscriptions', govern ? 'Access requests to your services wait here for approval; your apps\' subscriptions are listed too.' : 'Subscriptions of your apps and to your services.'),
    searchBar([
      field('State', select('state', [['pending', 'pending'], ['approved', 'approved'], ['rejected', 'rejected'], ['revoked', 'revoked'], ['cancelled', 'cancelled'], ['', 'any']], 'pending', { id: 'subscription-state' })),
      field('Which', select('side', [['provider', 'requests to our services'], ['consumer', 'our apps\' requests'], ['', 'both']], filters.side, { id: 'subscription-side' })),
    ], v => { Object.assign(filters, v); tbl.reload(); }),
    tbl);
}
