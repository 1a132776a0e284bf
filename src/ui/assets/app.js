// The single-page app: a path router over /ui/... (deep links from Slack and email land here), the range
// selector, and view lifecycle (each view gets an AbortSignal; charts are destroyed on navigation).

import { destroyCharts } from './charts.js';
import { clearSeriesCache, rangeKey } from './data.js';
import { h, replace } from './util.js';
import { alertDetail, alertsView, silencesView } from './views/alerts.js';
import { modelPage } from './views/model.js';
import { overview } from './views/overview.js';

const routes = [
  { re: /^\/(?:ui\/?)?$/, nav: 'overview', view: (root, signal) => overview(root, signal) },
  {
    re: /^\/ui\/models\/([^/]+)\/?$/,
    nav: 'overview',
    view: (root, signal, m) => modelPage(root, signal, decodeURIComponent(m[1])),
  },
  { re: /^\/ui\/alerts\/?$/, nav: 'alerts', view: (root, signal) => alertsView(root, signal) },
  {
    re: /^\/ui\/alerts\/([^/]+)\/?$/,
    nav: 'alerts',
    view: (root, signal, m) => alertDetail(root, signal, decodeURIComponent(m[1])),
  },
  { re: /^\/ui\/silences\/?$/, nav: 'silences', view: (root, signal) => silencesView(root, signal) },
];

let current = null;

function render() {
  current?.abort();
  current = new AbortController();
  const signal = current.signal;
  destroyCharts();
  clearSeriesCache();
  const root = document.getElementById('view');
  const path = location.pathname;
  const route = routes.find((r) => r.re.test(path));
  for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', route?.nav === a.dataset.nav);
  document.getElementById('range').value = rangeKey();
  if (!route) {
    document.body.dataset.loading = 'false';
    replace(
      root,
      h('h1', {}, 'Not found'),
      h('p', {}, `No page at ${path}. `, h('a', { href: '/ui/', 'data-link': true }, 'Go to the fleet overview')),
    );
    return;
  }
  document.body.dataset.view = route.nav;
  document.body.dataset.loading = 'true';
  Promise.resolve(route.view(root, signal, path.match(route.re)))
    .catch((err) => {
      if (signal.aborted || err?.name === 'AbortError') return;
      root.append(h('p', { class: 'error' }, err?.message ?? String(err)));
    })
    .finally(() => {
      if (!signal.aborted) document.body.dataset.loading = 'false';
    });
}

/** Navigates inside the app (keeps the range). */
export function navigate(href) {
  const url = new URL(href, location.origin);
  const range = new URLSearchParams(location.search).get('range');
  if (range && !url.searchParams.has('range')) url.searchParams.set('range', range);
  history.pushState(null, '', url);
  render();
}

document.addEventListener('click', (e) => {
  const a = e.target.closest?.('a[data-link]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(a.getAttribute('href'));
});

document.getElementById('range').addEventListener('change', (e) => {
  const url = new URL(location.href);
  url.searchParams.set('range', e.target.value);
  history.replaceState(null, '', url);
  render();
});

window.addEventListener('popstate', render);
render();
