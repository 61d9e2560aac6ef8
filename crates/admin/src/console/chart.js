// Small hand-written SVG charts: a line chart (five-minute statistics) and stacked bars (the live view).
'use strict';

const SVG_NS = 'http://www.w3.org/2000/svg';

// Drawn at the box's own width (redrawn on every poll), so text keeps its size on a phone and a wide screen.
const boxWidth = (box) => Math.max(300, Math.round(box.clientWidth || 800));

function svgRoot(W, H) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('width', W);
  svg.setAttribute('height', H);
  const mk = (tag, attrs, parent) => {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    (parent || svg).append(e);
    return e;
  };
  return [svg, mk];
}

const shortTime = (ms, seconds) => new Date(ms).toLocaleTimeString([], seconds
  ? { hour: '2-digit', minute: '2-digit', second: '2-digit' } : { hour: '2-digit', minute: '2-digit' });

// A round upper bound for the y axis: 1, 2, 5 times a power of ten.
function niceMax(v) {
  if (v <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v);
}

function axes(mk, W, H, P, max, unit) {
  for (const f of [0, 0.5, 1]) {
    const y = H - P - f * (H - 2 * P);
    mk('line', { x1: P, y1: y, x2: W - 8, y2: y, stroke: f ? '#e3e7ee' : '#888' });
    mk('text', { x: P - 6, y: y + 4, 'font-size': 11, fill: '#555', 'text-anchor': 'end' }).textContent =
      (max * f).toLocaleString();
  }
  if (unit) mk('text', { x: 4, y: 12, 'font-size': 11, fill: '#555' }).textContent = unit;
}

// points: [{t, key: value...}], series: [[key, colour]]; x from `from` to `to` (ms).
function lineChart(box, points, series, from, to) {
  const W = boxWidth(box), H = 200, P = 44;
  const [svg, mk] = svgRoot(W, H);
  const max = niceMax(Math.max(0, ...points.flatMap((p) => series.map(([k]) => p[k]))));
  const x = (t) => P + ((t - from) / Math.max(1, to - from)) * (W - P - 8);
  const y = (v) => H - P - (v / max) * (H - 2 * P);
  axes(mk, W, H, P, max, '');
  mk('text', { x: P, y: H - 12, 'font-size': 11, fill: '#555' }).textContent = shortTime(from);
  mk('text', { x: W - 8, y: H - 12, 'font-size': 11, fill: '#555', 'text-anchor': 'end' }).textContent = shortTime(to);
  for (const [key, colour] of series) {
    if (!points.length) break;
    const d = points.map((p, i) => (i ? 'L' : 'M') + x(p.t).toFixed(1) + ' ' + y(p[key]).toFixed(1)).join(' ');
    mk('path', { d, fill: 'none', stroke: colour, 'stroke-width': 2 });
    // Dots too, so a lone point still shows.
    for (const p of points) mk('circle', { cx: x(p.t).toFixed(1), cy: y(p[key]).toFixed(1), r: 2.5, fill: colour });
  }
  if (!points.length) {
    mk('text', { x: W / 2, y: H / 2, fill: '#555', 'text-anchor': 'middle' }).textContent = 'No traffic recorded yet';
  }
  box.replaceChildren(svg);
}

// Stacked bars of per-second rates: points [{start_ms, key: count...}], each `stepS` seconds long.
function stackedBars(box, points, series, stepS) {
  const W = boxWidth(box), H = 240, P = 44;
  const [svg, mk] = svgRoot(W, H);
  const rate = (p, k) => p[k] / stepS;
  const max = niceMax(Math.max(0, ...points.map((p) => series.reduce((a, [k]) => a + rate(p, k), 0))));
  axes(mk, W, H, P, max, 'req/s');
  const bw = (W - P - 8) / Math.max(1, points.length);
  points.forEach((p, i) => {
    let top = H - P;
    const g = mk('g', {});
    const parts = [];
    for (const [key, colour] of series) {
      const v = rate(p, key);
      if (!v) continue;
      const h = (v / max) * (H - 2 * P);
      top -= h;
      mk('rect', { x: (P + i * bw).toFixed(2), y: top.toFixed(2), width: Math.max(0.5, bw - 0.4).toFixed(2),
        height: h.toFixed(2), fill: colour }, g);
      parts.push(key + ' ' + v.toFixed(1));
    }
    if (parts.length) mk('title', {}, g).textContent = shortTime(p.start_ms, true) + ': ' + parts.join(', ') + ' req/s';
  });
  if (points.length) {
    mk('text', { x: P, y: H - 12, 'font-size': 11, fill: '#555' }).textContent = shortTime(points[0].start_ms, true);
    mk('text', { x: W - 8, y: H - 12, 'font-size': 11, fill: '#555', 'text-anchor': 'end' }).textContent =
      shortTime(points[points.length - 1].start_ms, true);
  }
  box.replaceChildren(svg);
}
