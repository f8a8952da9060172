/*
 * SVG pictures of the energy model: one wake cycle (current on a log scale, radio state bands,
 * datagrams and wake-cycle phases over time) and charge per day. Plain strings, no dependencies.
 */
import type { Mark, ModemPowerState, Segment } from './energy';

const COLORS: Record<ModemPowerState, string> = {
  off: '#bbbbbb',
  psm: '#4c9f70',
  idle: '#8fb8de',
  connected: '#f2c14e',
  active: '#e4572e',
  searching: '#a05195',
};

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** One wake cycle: segments and marks recorded by the EnergyMeter between t0 and t1 (clock ms). */
export function wakeCycleSvg(segments: Segment[], marks: Mark[], title: string, t0: number, t1: number): string {
  const W = 1000;
  const H = 420;
  const left = 70;
  const right = 20;
  const top = 60;
  const plotH = 260;
  const span = Math.max(1, t1 - t0);
  const x = (t: number) => left + ((Math.min(t1, Math.max(t0, t)) - t0) / span) * (W - left - right);
  const lo = Math.log10(1); // 1 µA
  const hi = Math.log10(100_000); // 100 mA
  const y = (ua: number) => top + plotH - ((Math.log10(Math.max(1, ua)) - lo) / (hi - lo)) * plotH;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${left}" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`);
  // State bands under the plot.
  for (const s of segments) {
    if (s.t1 <= t0 || s.t0 >= t1) continue;
    out.push(`<rect x="${x(s.t0).toFixed(1)}" y="${top + plotH + 8}" width="${Math.max(0.5, x(s.t1) - x(s.t0)).toFixed(1)}" height="14" fill="${COLORS[s.modem]}"/>`);
  }
  // Grid.
  for (const ua of [1, 10, 100, 1000, 10000, 100000]) {
    const label = ua >= 1000 ? `${ua / 1000} mA` : `${ua} µA`;
    out.push(`<line x1="${left}" x2="${W - right}" y1="${y(ua)}" y2="${y(ua)}" stroke="#eee"/><text x="${left - 6}" y="${y(ua) + 4}" text-anchor="end">${label}</text>`);
  }
  // Current (step line).
  let path = '';
  for (const s of segments) {
    if (s.t1 <= t0 || s.t0 >= t1) continue;
    path += `${path ? 'L' : 'M'}${x(s.t0).toFixed(1)},${y(s.ua).toFixed(1)}L${x(s.t1).toFixed(1)},${y(s.ua).toFixed(1)}`;
  }
  out.push(`<path d="${path}" fill="none" stroke="#222" stroke-width="1.2"/>`);
  // Datagrams and phases.
  let phaseRow = 0;
  for (const m of marks) {
    if (m.t < t0 || m.t > t1) continue;
    const px = x(m.t).toFixed(1);
    if (m.label.startsWith('->') || m.label.startsWith('<-')) {
      const up = m.label.startsWith('->');
      out.push(`<line x1="${px}" x2="${px}" y1="${top - 8}" y2="${top + plotH}" stroke="${up ? '#e4572e' : '#2e86ab'}" stroke-opacity="0.35"/>`);
      out.push(`<text x="${px}" y="${top - 10}" text-anchor="middle" fill="${up ? '#e4572e' : '#2e86ab'}">${up ? '↑' : '↓'}</text>`);
    } else if (m.label.startsWith('[')) {
      phaseRow = (phaseRow + 1) % 3;
      out.push(`<text x="${px}" y="${top + plotH + 38 + phaseRow * 12}" fill="#555">${esc(m.label)}</text>`);
    }
  }
  // Time axis.
  const step = niceStep(span / 1000);
  for (let s = 0; s <= span / 1000 + 1e-9; s += step) out.push(`<text x="${x(t0 + s * 1000)}" y="${H - 8}" text-anchor="middle">${+s.toFixed(1)} s</text>`);
  // Legend.
  let lx = left + 380;
  for (const [k, c] of Object.entries(COLORS)) {
    out.push(`<rect x="${lx}" y="30" width="10" height="10" fill="${c}"/><text x="${lx + 14}" y="39">${k}</text>`);
    lx += 80;
  }
  out.push(`<text x="${left}" y="45" fill="#555">↑ uplink datagram  ↓ downlink datagram; current: modem + MCU, log scale</text>`);
  out.push('</svg>');
  return out.join('\n');
}

/** Charge per day (µAh), one bar per simulated day. */
export function chargePerDaySvg(perDayUAh: number[], title: string): string {
  const W = 1000;
  const H = 320;
  const left = 70;
  const top = 40;
  const plotH = 220;
  const max = Math.max(1, ...perDayUAh) * 1.1;
  const bw = (W - left - 20) / Math.max(1, perDayUAh.length);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${left}" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`);
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    const yy = top + plotH - (v / max) * plotH;
    out.push(`<line x1="${left}" x2="${W - 20}" y1="${yy}" y2="${yy}" stroke="#eee"/><text x="${left - 6}" y="${yy + 4}" text-anchor="end">${(v / 1000).toFixed(2)} mAh</text>`);
  }
  perDayUAh.forEach((v, i) => {
    const h = (v / max) * plotH;
    out.push(`<rect x="${(left + i * bw + 1).toFixed(1)}" y="${(top + plotH - h).toFixed(1)}" width="${Math.max(1, bw - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="#2e86ab"/>`);
    if (perDayUAh.length <= 31 || i % 5 === 0) out.push(`<text x="${(left + i * bw + bw / 2).toFixed(1)}" y="${top + plotH + 14}" text-anchor="middle">${i + 1}</text>`);
  });
  out.push(`<text x="${W / 2}" y="${H - 10}" text-anchor="middle">day</text>`);
  out.push('</svg>');
  return out.join('\n');
}

function niceStep(spanS: number): number {
  for (const s of [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600]) if (spanS / s <= 12) return s;
  return 3600;
}
