// SPDX-License-Identifier: Apache-2.0
// How numbers, sizes and times are shown.

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function bytes(n) {
  if (n === null || n === undefined) return '—';
  let v = Number(n);
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[u]}`;
}

// Thousands grouped with commas. By hand: the first toLocaleString of a
// page sets up Intl, which cost tens of milliseconds of the first render.
export function num(n) {
  if (n === null || n === undefined) return '—';
  const v = Number(n);
  if (!Number.isInteger(v)) return String(v);
  const digits = String(Math.abs(v));
  let out = '';
  for (let i = 0; i < digits.length; i++) {
    if (i > 0 && (digits.length - i) % 3 === 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? `-${out}` : out;
}

// A time in seconds since the epoch, or an RFC 3339 text.
function seconds(t) {
  if (t === null || t === undefined || t === 0) return null;
  if (typeof t === 'number') return t;
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? null : ms / 1000;
}

export function when(t) {
  const s = seconds(t);
  if (s === null) return '—';
  return new Date(s * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z').replace(/Z$/, ' UTC');
}

export function ago(t) {
  const s = seconds(t);
  if (s === null) return 'never';
  const d = Date.now() / 1000 - s;
  if (d < 60) return 'just now';
  if (d < 3600) return `${Math.floor(d / 60)} min ago`;
  if (d < 86400) return `${Math.floor(d / 3600)} h ago`;
  if (d < 86400 * 60) return `${Math.floor(d / 86400)} days ago`;
  return when(s).slice(0, 10);
}

export function duration(s) {
  if (s === null || s === undefined) return '—';
  s = Math.floor(Number(s));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min ${s % 60} s`;
  return `${s} s`;
}

export function shortDigest(d) {
  if (!d) return '—';
  const i = d.indexOf(':');
  return i < 0 ? d.slice(0, 12) : `${d.slice(0, i + 1)}${d.slice(i + 1, i + 13)}`;
}
