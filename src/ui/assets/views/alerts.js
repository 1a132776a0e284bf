// Alerts list, alert detail (the evidence that made it fire, and its HTML report), and silences: create with
// label matchers and expire. Each says "not available" when the server does not list the route.

import { call, has } from '../api.js';
import {
  firstArray,
  fmtNum,
  fmtTime,
  h,
  kvTable,
  notAvailable,
  panel,
  replace,
  showError,
  toLocalInput,
} from '../util.js';
import { alertsTable } from './model.js';

/** `/ui/alerts`: active and recent alerts, filtered by state. */
export async function alertsView(root, signal) {
  const p = panel('Alerts', { id: 'alerts-list' });
  const state = new URLSearchParams(location.search).get('state') ?? '';
  const filter = h(
    'select',
    {
      id: 'alert-state',
      onchange: (e) => {
        const u = new URL(location.href);
        if (e.target.value) u.searchParams.set('state', e.target.value);
        else u.searchParams.delete('state');
        history.replaceState(null, '', u);
        void alertsView(root, signal);
      },
    },
    ['', 'firing', 'pending', 'resolved'].map((s) =>
      h('option', { value: s, selected: s === state }, s || 'all states'),
    ),
  );
  replace(root, h('h1', {}, 'Alerts'), h('label', { class: 'filter' }, 'State ', filter), p.el);
  if (!(await has('GET', '/api/v1/alerts'))) return notAvailable(p.body, 'alerts');
  try {
    const alerts = firstArray(await call('/api/v1/alerts', { query: { state: state || undefined }, signal }), 'alerts');
    replace(p.body, alerts.length ? alertsTable(alerts) : h('p', { class: 'muted' }, 'No alert.'));
  } catch (err) {
    showError(p.body, err);
  }
}

function valueText(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'number') return fmtNum(v);
  if (typeof v === 'string') return /^\d{4}-\d\d-\d\dT/.test(v) ? fmtTime(v) : v;
  return JSON.stringify(v);
}

/** `/ui/alerts/{id}`: one alert with its labels, annotations and evidence. */
export async function alertDetail(root, signal, id) {
  const p = panel('Alert', { id: 'alert' });
  const ev = panel('Evidence', { id: 'evidence', class: 'wide' });
  replace(root, h('h1', {}, `Alert ${id}`), h('div', { class: 'panels' }, p.el, ev.el));
  if (!(await has('GET', '/api/v1/alerts/{id}'))) {
    notAvailable(p.body, 'alerts');
    return notAvailable(ev.body, 'alert evidence');
  }
  let alert;
  try {
    alert = await call(`/api/v1/alerts/${encodeURIComponent(id)}`, { signal });
  } catch (err) {
    showError(p.body, err);
    return replace(ev.body);
  }
  alert = alert.alert ?? alert;
  const model = alert.model ?? alert.labels?.model;
  const scalar = Object.entries(alert).filter(([, v]) => v === null || typeof v !== 'object');
  const silenceQuery = new URLSearchParams();
  for (const [k, v] of Object.entries(alert.labels ?? (model ? { model } : {}))) silenceQuery.append('m', `${k}=${v}`);
  replace(
    p.body,
    kvTable(scalar.map(([k, v]) => [k, valueText(v)])),
    alert.labels
      ? [h('h3', {}, 'Labels'), kvTable(Object.entries(alert.labels).map(([k, v]) => [k, String(v)]))]
      : null,
    alert.annotations
      ? [h('h3', {}, 'Annotations'), kvTable(Object.entries(alert.annotations).map(([k, v]) => [k, String(v)]))]
      : null,
    h(
      'p',
      { class: 'actions' },
      model ? h('a', { href: `/ui/models/${encodeURIComponent(model)}`, 'data-link': true }, `Model ${model}`) : null,
      ' ',
      h('a', { href: `/ui/silences?${silenceQuery}`, 'data-link': true }, 'Silence alerts like this'),
    ),
  );
  const evidence = firstArray(alert.evidence ?? alert.results ?? [], 'results', 'features');
  const cols = [...new Set(evidence.flatMap((e) => Object.keys(e)))].filter((k) =>
    evidence.some((e) => e[k] === null || typeof e[k] !== 'object'),
  );
  replace(
    ev.body,
    evidence.length
      ? h(
          'table',
          { class: 'grid' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              cols.map((c) => h('th', {}, c)),
            ),
          ),
          h(
            'tbody',
            {},
            evidence.map((e) =>
              h(
                'tr',
                {},
                cols.map((c) => h('td', {}, valueText(e[c]))),
              ),
            ),
          ),
        )
      : h('p', { class: 'muted' }, 'No evidence recorded with this alert.'),
  );
  if (await has('GET', '/api/v1/alerts/{id}/report')) {
    const frame = h('iframe', { class: 'report', sandbox: '', title: 'Evidence report' });
    const btn = h(
      'button',
      {
        onclick: async () => {
          btn.disabled = true;
          try {
            frame.srcdoc = await call(`/api/v1/alerts/${encodeURIComponent(id)}/report`, { text: true, signal });
            ev.body.append(frame);
          } catch (err) {
            ev.body.append(h('p', { class: 'error' }, err.message));
          }
        },
      },
      'Show the evidence report',
    );
    ev.body.append(btn);
  }
}

function matcherRow(name = '', value = '', isRegex = false) {
  const row = h(
    'div',
    { class: 'matcher' },
    h('input', {
      name: 'm-name',
      placeholder: 'label (e.g. model)',
      value: name,
      required: true,
      'aria-label': 'label name',
    }),
    h('span', {}, isRegex ? '=~' : '='),
    h('input', { name: 'm-value', placeholder: 'value', value, required: true, 'aria-label': 'label value' }),
    h('label', {}, h('input', { type: 'checkbox', name: 'm-regex', checked: isRegex }), ' regex'),
    h('button', { type: 'button', class: 'linklike', onclick: () => row.remove() }, 'remove'),
  );
  return row;
}

function silenceState(s, now) {
  if (s.state ?? s.status?.state) return s.state ?? s.status.state;
  const start = Date.parse(s.startsAt ?? '');
  const end = Date.parse(s.endsAt ?? '');
  if (end <= now) return 'expired';
  return start > now ? 'pending' : 'active';
}

/** `/ui/silences`: the list (expire each) and the form to create one. */
export async function silencesView(root, signal) {
  const list = panel('Silences', { id: 'silences', class: 'wide' });
  const form = panel('New silence', { id: 'silence-form' });
  replace(root, h('h1', {}, 'Silences'), h('div', { class: 'panels' }, form.el, list.el));
  if (!(await has('GET', '/api/v1/silences'))) {
    notAvailable(form.body, 'silences');
    return notAvailable(list.body, 'silences');
  }
  const refresh = async () => {
    try {
      const silences = firstArray(await call('/api/v1/silences', { signal }), 'silences');
      const now = Date.now();
      if (silences.length === 0) return replace(list.body, h('p', { class: 'muted' }, 'No silence.'));
      replace(
        list.body,
        h(
          'table',
          { class: 'grid', id: 'silence-table' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ['State', 'Matchers', 'Starts', 'Ends', 'Comment', 'By', ''].map((x) => h('th', {}, x)),
            ),
          ),
          h(
            'tbody',
            {},
            silences.map((s) => {
              const st = silenceState(s, now);
              return h(
                'tr',
                { dataset: { id: String(s.id) } },
                h('td', {}, h('span', { class: `badge ${st === 'active' ? 'warn' : 'none'}` }, st)),
                h(
                  'td',
                  { class: 'mono' },
                  (s.matchers ?? []).map((m) => `${m.name}${m.isRegex ? '=~' : '='}"${m.value}"`).join(', '),
                ),
                h('td', {}, fmtTime(s.startsAt)),
                h('td', {}, fmtTime(s.endsAt)),
                h('td', {}, String(s.comment ?? '')),
                h('td', {}, String(s.createdBy ?? '')),
                h(
                  'td',
                  {},
                  st !== 'expired'
                    ? h(
                        'button',
                        {
                          class: 'expire',
                          onclick: async (e) => {
                            e.target.disabled = true;
                            try {
                              await call(`/api/v1/silences/${encodeURIComponent(s.id)}`, { method: 'DELETE' });
                            } catch (err) {
                              list.body.prepend(h('p', { class: 'error' }, err.message));
                            }
                            await refresh();
                          },
                        },
                        'Expire',
                      )
                    : '',
                ),
              );
            }),
          ),
        ),
      );
    } catch (err) {
      showError(list.body, err);
    }
  };

  const params = new URLSearchParams(location.search);
  const initial = params.getAll('m').map((s) => s.split('='));
  const matchers = h(
    'div',
    { id: 'matchers' },
    initial.length
      ? initial.map(([k, ...v]) => matcherRow(k, v.join('=')))
      : matcherRow('model', params.get('model') ?? ''),
  );
  const ends = h('input', {
    type: 'datetime-local',
    name: 'endsAt',
    required: true,
    value: toLocalInput(Date.now() + 2 * 3_600_000),
  });
  const comment = h('input', { name: 'comment', required: true, placeholder: 'why (e.g. planned retraining)' });
  const by = h('input', { name: 'createdBy', placeholder: 'your name (optional)' });
  const status = h('p', { class: 'muted', id: 'silence-status' });
  const f = h(
    'form',
    {
      id: 'new-silence',
      onsubmit: async (e) => {
        e.preventDefault();
        const ms = [...matchers.querySelectorAll('.matcher')].map((row) => ({
          name: row.querySelector('[name=m-name]').value.trim(),
          value: row.querySelector('[name=m-value]').value,
          isRegex: row.querySelector('[name=m-regex]').checked,
        }));
        const body = { matchers: ms, endsAt: new Date(ends.value).toISOString(), comment: comment.value };
        if (by.value.trim()) body.createdBy = by.value.trim();
        status.textContent = 'Creating…';
        try {
          const res = await call('/api/v1/silences', { method: 'POST', body });
          status.textContent = `Silence ${res?.id ?? ''} created.`;
          comment.value = '';
          await refresh();
        } catch (err) {
          status.textContent = `Could not create the silence: ${err.message}`;
        }
      },
    },
    h('p', {}, 'Alerts whose labels match every matcher are not notified until the silence ends.'),
    matchers,
    h('button', { type: 'button', class: 'linklike', onclick: () => matchers.append(matcherRow()) }, '+ matcher'),
    h('label', { class: 'field' }, 'Ends at ', ends),
    h('label', { class: 'field' }, 'Comment ', comment),
    h('label', { class: 'field' }, 'Created by ', by),
    h('button', { type: 'submit', id: 'create-silence' }, 'Create silence'),
    status,
  );
  replace(form.body, f);
  await refresh();
}
