// SPDX-License-Identifier: Apache-2.0
// Small SVG charts, drawn from data with no library: bars per day, and a
// line for a level over time. Each is a figure with a caption and a text
// summary for screen readers; each bar or point has its value as a title.
import {h, s} from './dom.js';
import {num} from './format.js';

const W = 640;
const H = 160;
const PAD = {l: 56, r: 8, t: 8, b: 22};

// A point's label: its day, or with `time` its UTC hour and minute.
function labelOf(p, time) {
  if (typeof p.day !== 'string') return String(p.day);
  return time ? `${p.day.slice(11, 16)} UTC` : p.day.slice(0, 10);
}

function ticks(max, fmt) {
  const out = [];
  for (let i = 0; i <= 2; i++) {
    const v = (max * i) / 2;
    const y = PAD.t + (H - PAD.t - PAD.b) * (1 - i / 2);
    out.push(s('text', {x: PAD.l - 6, y: y + 4, class: 'axis', 'text-anchor': 'end'}, fmt(v)),
      s('line', {x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, class: 'gridline'}));
  }
  return out;
}

// The axes, caption and summary around `draw`'s marks. draw gets the plot
// area and each point's value, height (0 to 1 of the area) and title.
function frame(points, {label, fmt = num, kind, time = false}, draw) {
  const values = points.map((p) => Number(p.value) || 0);
  const labels = points.map((p) => labelOf(p, time));
  const max = Math.max(1, ...values);
  const total = values.reduce((a, b) => a + b, 0);
  const first = labels.length ? labels[0] : '';
  const last = labels.length ? labels[labels.length - 1] : '';
  const summary = points.length === 0 ? `${label}: no data yet.` :
    kind === 'level' ? `${label}, ${first} to ${last}: now ${fmt(values[values.length - 1])}, highest ${fmt(Math.max(...values))}.` :
      `${label}, ${first} to ${last}: ${fmt(total)} in all, at most ${fmt(Math.max(...values))} a day.`;
  const area = {x: PAD.l, y: PAD.t, w: W - PAD.l - PAD.r, h: H - PAD.t - PAD.b};
  const marks = values.map((v, i) => ({share: v / max, title: `${labels[i]}: ${fmt(v)}`}));
  const svg = s('svg', {viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': summary, class: 'chart'},
    ticks(max, fmt), draw(area, marks),
    points.length ? [
      s('text', {x: PAD.l, y: H - 6, class: 'axis'}, first),
      s('text', {x: W - PAD.r, y: H - 6, class: 'axis', 'text-anchor': 'end'}, last)] : null);
  return h('figure', {class: 'chart'}, svg, h('figcaption', null, summary));
}

export function bars(points, opts) {
  return frame(points, {...opts, kind: 'count'}, (a, marks) => {
    const bw = a.w / Math.max(1, marks.length);
    return marks.map((m, i) => {
      const bh = m.share * a.h;
      return s('rect', {x: a.x + i * bw + 1, y: a.y + a.h - bh, width: Math.max(1, bw - 2), height: Math.max(0, bh), class: 'bar'},
        s('title', null, m.title));
    });
  });
}

export function line(points, opts) {
  return frame(points, {...opts, kind: 'level'}, (a, marks) => {
    const step = marks.length > 1 ? a.w / (marks.length - 1) : 0;
    const xy = marks.map((m, i) => [a.x + i * step, a.y + a.h - m.share * a.h]);
    return [
      s('polyline', {points: xy.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' '), class: 'line'}),
      xy.map(([x, y], i) => s('circle', {cx: x, cy: y, r: 2.5, class: 'dot'}, s('title', null, marks[i].title))),
    ];
  });
}

// Horizontal bars for a top list: [{label, value, href}].
export function top(items, {label, fmt = num}) {
  const max = Math.max(1, ...items.map((i) => Number(i.value) || 0));
  return h('figure', {class: 'top'},
    h('figcaption', null, label),
    h('ol', null, items.map((i) => h('li', null,
      h('span', {class: 'top-label'}, i.href ? h('a', {href: i.href}, i.label) : i.label),
      h('span', {class: 'top-bar', 'aria-hidden': 'true'},
        s('svg', {viewBox: '0 0 100 10', preserveAspectRatio: 'none', class: 'meter'},
          s('rect', {x: 0, y: 0, width: Math.max(0.5, (100 * (Number(i.value) || 0)) / max), height: 10, class: 'bar'}))),
      h('span', {class: 'top-value'}, fmt(i.value))))));
}
