// Model page panel: multivariate and embedding drift — the latest result of each method per feature group
// ('' = the numeric features together, else an embedding), with its statistic, limit and verdict, and the
// classifier's most important features. Reads GET /api/v1/models/{name}/multivariate/history.

import { call, has, modelPath } from '../api.js';
import { firstArray, fmtNum, fmtTime, h, notAvailable, pointTime, replace, sortableTable } from '../util.js';

const STATISTIC = {
  reconstruction: 'reconstruction error',
  classifier: 'ROC AUC',
  mmd: 'MMD²',
  mean_distance: 'mean distance',
  component_share: 'drifted components',
};

function limitOf(p) {
  if (p.method === 'reconstruction') return `band ${fmtNum(p.lower)} … ${fmtNum(p.upper)}`;
  if (p.method === 'mmd') return `p ${fmtNum(p.p_value)} < ${fmtNum(p.threshold)}`;
  return `> ${fmtNum(p.threshold)}`;
}

/** Renders the panel into `body` for model `name` over `range` ({ from, to } ISO strings). */
export async function multivariatePanel(body, name, range, signal) {
  if (!(await has('GET', '/api/v1/models/{name}/multivariate/history')))
    return notAvailable(body, 'multivariate drift');
  const points = firstArray(await call(modelPath(name, '/multivariate/history'), { query: range, signal }), 'points');
  if (points.length === 0) return replace(body, h('p', { class: 'muted' }, 'No multivariate result in this range.'));
  // Oldest first: the last point of each (group, method) is the latest.
  const latest = new Map();
  for (const p of points) latest.set(`${p.feature_group}\u0000${p.method}`, p);
  const rows = [...latest.values()];
  const drifted = rows.filter((p) => p.drift).length;
  replace(
    body,
    h(
      'p',
      {},
      h('span', { class: `badge ${drifted > 0 ? 'bad' : 'ok'}` }, drifted > 0 ? `${drifted} drifting` : 'no drift'),
      ' ',
      h('span', { class: 'muted' }, `latest run ${fmtTime(pointTime(rows[rows.length - 1]))}`),
    ),
    sortableTable(
      [
        {
          key: 'group',
          label: 'Group',
          value: (p) => p.feature_group,
          cell: (p) => (p.feature_group === '' ? 'numeric features' : p.feature_group),
        },
        { key: 'method', label: 'Method', value: (p) => p.method, cell: (p) => String(p.method) },
        {
          key: 'statistic',
          label: 'Statistic',
          value: (p) => p.statistic,
          cell: (p) => `${STATISTIC[p.method] ?? 'statistic'} ${fmtNum(p.statistic)}`,
        },
        { key: 'limit', label: 'Drift when', value: (p) => p.threshold, cell: (p) => limitOf(p) },
        {
          key: 'drift',
          label: 'Verdict',
          defaultDir: -1,
          value: (p) => (p.drift ? 1 : 0),
          cell: (p) => h('span', { class: `badge ${p.drift ? 'bad' : 'ok'}` }, p.drift ? 'drift' : 'ok'),
        },
        {
          key: 'top',
          label: 'Top features',
          value: () => 0,
          cell: (p) =>
            (p.details?.importance ?? [])
              .slice(0, 3)
              .map((f) => f.feature)
              .join(', '),
        },
      ],
      rows,
      { key: 'drift', dir: -1 },
    ),
  );
}
