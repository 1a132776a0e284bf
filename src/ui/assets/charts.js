// uPlot charts: sparklines, time series (with an optional range selection) and grouped bars for histograms.
// uPlot is loaded by index.html as a classic script (window.uPlot) from the installed package.

const uPlot = window.uPlot;

export const palette = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

const live = new Set();

/** Destroys every chart created since the last call (on view change). */
export function destroyCharts() {
  for (const u of live) u.destroy();
  live.clear();
}

function track(u) {
  live.add(u);
  return u;
}

function widthOf(el, fallback) {
  const w = el.clientWidth || el.parentElement?.clientWidth || 0;
  return Math.max(200, w > 0 ? w : fallback);
}

/** Resizes `u` with its container. */
function follow(el, u, height) {
  if (typeof ResizeObserver !== 'function') return;
  const ro = new ResizeObserver(() => {
    const w = widthOf(el, u.width);
    if (Math.abs(w - u.width) > 4) u.setSize({ width: w, height });
  });
  ro.observe(el);
  const destroy = u.destroy.bind(u);
  u.destroy = () => {
    ro.disconnect();
    destroy();
  };
}

/** A small line without axes (`xs` and `ys` same length; nulls are gaps). */
export function sparkline(el, xs, ys, opts = {}) {
  const color = opts.color ?? palette[0];
  const u = new uPlot(
    {
      width: opts.width ?? 120,
      height: opts.height ?? 28,
      class: 'spark',
      pxAlign: false,
      cursor: { show: false },
      select: { show: false },
      legend: { show: false },
      scales: { x: { time: false }, y: { range: (_u, min, max) => [Math.min(0, min ?? 0), max > 0 ? max * 1.1 : 1] } },
      axes: [{ show: false }, { show: false }],
      series: [{}, { stroke: color, width: 1.5, fill: `${color}22`, spanGaps: false, points: { show: false } }],
    },
    [xs, ys],
    el,
  );
  return track(u);
}

/**
 * A time series chart. `xs`: epoch seconds. `series`: `[{ label, values, color?, scale?, fmt? , dash?, points? }]`.
 * `opts`: `height`, `axes` (`{ y: label, y2: label }`), `onSelect(fromMs, toMs)` to enable range selection,
 * `yRange` (`[min, max]`), `markers` (epoch seconds drawn as vertical lines).
 */
export function timeChart(el, xs, series, opts = {}) {
  const height = opts.height ?? 220;
  const scales = { x: { time: true } };
  const axes = [{ stroke: '#555', grid: { stroke: '#eee' }, ticks: { stroke: '#ddd' }, space: 80 }];
  const scaleNames = [...new Set(series.map((s) => s.scale ?? 'y'))];
  scaleNames.forEach((name, i) => {
    scales[name] = opts.ranges?.[name] ? { range: opts.ranges[name] } : { auto: true };
    axes.push({
      scale: name,
      side: i === 0 ? 3 : 1,
      label: opts.axes?.[name],
      stroke: '#555',
      grid: { show: i === 0, stroke: '#eee' },
      ticks: { stroke: '#ddd' },
      size: 60,
      values: (_u, ticks) => ticks.map((v) => (opts.tickFmt?.[name] ? opts.tickFmt[name](v) : formatTick(v))),
    });
  });
  const markers = opts.markers ?? [];
  const config = {
    width: widthOf(el, 600),
    height,
    scales,
    axes,
    legend: { live: true },
    cursor: opts.onSelect
      ? { drag: { x: true, y: false, setScale: false } }
      : { drag: { x: true, y: false, setScale: true } },
    series: [
      { value: (_u, v) => (v === null ? '—' : new Date(v * 1000).toLocaleString()) },
      ...series.map((s, i) => ({
        label: s.label,
        scale: s.scale ?? 'y',
        stroke: s.color ?? palette[i % palette.length],
        width: 1.6,
        dash: s.dash,
        spanGaps: s.spanGaps ?? false,
        points: { show: s.points ?? xs.length < 40, size: 4 },
        value: (_u, v) => (v === null || v === undefined ? '—' : s.fmt ? s.fmt(v) : formatTick(v)),
      })),
    ],
    hooks: {
      setSelect: opts.onSelect
        ? [
            (u) => {
              if (u.select.width < 2) return;
              const from = u.posToVal(u.select.left, 'x');
              const to = u.posToVal(u.select.left + u.select.width, 'x');
              opts.onSelect(Math.round(from * 1000), Math.round(to * 1000));
            },
          ]
        : [],
      draw: markers.length
        ? [
            (u) => {
              const ctx = u.ctx;
              ctx.save();
              ctx.strokeStyle = '#d62728';
              ctx.setLineDash([4, 3]);
              ctx.lineWidth = 1.5;
              for (const m of markers) {
                const x = Math.round(u.valToPos(m, 'x', true));
                if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
                ctx.beginPath();
                ctx.moveTo(x, u.bbox.top);
                ctx.lineTo(x, u.bbox.top + u.bbox.height);
                ctx.stroke();
              }
              ctx.restore();
            },
          ]
        : [],
    },
  };
  const u = new uPlot(config, [xs, ...series.map((s) => s.values)], el);
  follow(el, u, height);
  return track(u);
}

/** Grouped bars of reference vs current shares per bin (`labels` along x). */
export function histogramChart(el, labels, reference, current, opts = {}) {
  const height = opts.height ?? 220;
  const xs = labels.map((_, i) => i);
  const bars = (align) => uPlot.paths.bars({ size: [0.4, 60], align, gap: 1 });
  const u = new uPlot(
    {
      width: widthOf(el, 600),
      height,
      scales: {
        x: { time: false, range: [-0.5, labels.length - 0.5] },
        y: { range: (_u, _min, max) => [0, Math.max(max * 1.1, 0.01)] },
      },
      axes: [
        {
          stroke: '#555',
          grid: { show: false },
          values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? shorten(labels[t] ?? '') : '')),
          incrs: [1],
          rotate: labels.length > 6 ? -30 : 0,
          size: labels.length > 6 ? 70 : 40,
        },
        {
          stroke: '#555',
          grid: { stroke: '#eee' },
          values: (_u, t) => t.map((v) => `${Math.round(v * 100)}%`),
          size: 50,
        },
      ],
      legend: { live: true },
      series: [
        { value: (_u, v) => (v === null ? '—' : (labels[v] ?? '')) },
        {
          label: 'reference',
          fill: '#1f77b499',
          stroke: '#1f77b4',
          paths: bars(-1),
          points: { show: false },
          value: (_u, v) => fmtShare(v),
        },
        {
          label: 'current',
          fill: '#ff7f0e99',
          stroke: '#ff7f0e',
          paths: bars(1),
          points: { show: false },
          value: (_u, v) => fmtShare(v),
        },
      ],
    },
    [xs, reference, current],
    el,
  );
  follow(el, u, height);
  return track(u);
}

function fmtShare(v) {
  return v === null || v === undefined ? '—' : `${(v * 100).toFixed(1)}%`;
}

function shorten(s) {
  return s.length > 16 ? `${s.slice(0, 15)}…` : s;
}

function formatTick(v) {
  if (v === null || v === undefined) return '';
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a >= 1e6 || a < 1e-3) return v.toExponential(1);
  if (a >= 1000) return `${Math.round(v / 100) / 10}k`;
  return String(Number(v.toPrecision(3)));
}
