/*
 * 3GPP TS 24.008 timer encodings used by AT+CPSMS, +CEREG and AT+CEDRXS (27.007 passes them as
 * strings of 8 or 4 bits, e.g. "00100001"):
 *
 * - GPRS Timer 3 (§10.5.7.4a, T3412 extended, the periodic TAU): bits 8-6 unit, bits 5-1 value.
 *     000 10 min, 001 1 h, 010 10 h, 011 2 s, 100 30 s, 101 1 min, 110 320 h, 111 deactivated.
 * - GPRS Timer 2 (§10.5.7.4, T3324, the PSM active time): bits 8-6 unit, bits 5-1 value.
 *     000 2 s, 001 1 min, 010 decihours (6 min), 111 deactivated; other units read as 1 min.
 * - Extended DRX parameters (§10.5.5.32): eDRX value (4 bits) and paging time window (4 bits),
 *   both depending on the access technology (WB-S1 = LTE-M, NB-S1 = NB-IoT).
 *
 * Encoding a request picks the smallest encodable value not below it (the network may grant less,
 * never more than it is asked: asking 1 s below a step would lose the window). `null` is the
 * deactivated code. Device code: no Node APIs.
 */

export class TimerRangeError extends RangeError {
  override readonly name: string = 'TimerRangeError';
}

/** [unit bits, seconds per step] of GPRS Timer 3, in the order of the table. */
const TIMER3_UNITS: readonly (readonly [number, number])[] = Object.freeze([
  Object.freeze([0b000, 600] as const),
  Object.freeze([0b001, 3600] as const),
  Object.freeze([0b010, 36000] as const),
  Object.freeze([0b011, 2] as const),
  Object.freeze([0b100, 30] as const),
  Object.freeze([0b101, 60] as const),
  Object.freeze([0b110, 1_152_000] as const),
]);

/** [unit bits, seconds per step] of GPRS Timer 2. */
const TIMER2_UNITS: readonly (readonly [number, number])[] = Object.freeze([
  Object.freeze([0b000, 2] as const),
  Object.freeze([0b001, 60] as const),
  Object.freeze([0b010, 360] as const),
]);

const DEACTIVATED = 0b111;

export const TIMER3_MAX_S = 31 * 1_152_000;
export const TIMER2_MAX_S = 31 * 360;

function bits(value: number, width: number): string {
  return value.toString(2).padStart(width, '0');
}

function parseBits(s: string, width: number): number {
  if (s.length !== width || !/^[01]+$/.test(s)) throw new TimerRangeError(`expected ${width} bits, got "${s}"`);
  return parseInt(s, 2);
}

function encode(seconds: number | null, units: readonly (readonly [number, number])[], max: number, what: string): number {
  if (seconds === null) return DEACTIVATED << 5;
  if (!Number.isFinite(seconds) || seconds < 0) throw new TimerRangeError(`${what}: ${seconds} s is not a duration`);
  if (seconds > max) throw new TimerRangeError(`${what}: ${seconds} s is above the largest encodable value (${max} s)`);
  let best = -1;
  let bestValue = Infinity;
  let bestStep = Infinity;
  for (const [unit, step] of units) {
    const n = Math.ceil(seconds / step);
    if (n > 31) continue;
    const v = n * step;
    // Smallest value not below the request; on a tie the finer unit (same value, more headroom).
    if (v < bestValue || (v === bestValue && step < bestStep)) {
      best = (unit << 5) | n;
      bestValue = v;
      bestStep = step;
    }
  }
  return best;
}

/** T3412 extended (periodic TAU) as GPRS Timer 3 octet bits; null = deactivated. */
export function encodeTimer3(seconds: number | null): string {
  return bits(encode(seconds, TIMER3_UNITS, TIMER3_MAX_S, 'T3412 extended'), 8);
}

/** T3324 (active time) as GPRS Timer 2 octet bits; null = deactivated (no PSM). */
export function encodeTimer2(seconds: number | null): string {
  return bits(encode(seconds, TIMER2_UNITS, TIMER2_MAX_S, 'T3324'), 8);
}

/** Seconds of a GPRS Timer 3 octet ("01000011" or 0x43), null when deactivated. */
export function decodeTimer3(octet: string | number): number | null {
  const v = typeof octet === 'number' ? octet & 0xff : parseBits(octet, 8);
  const unit = v >> 5;
  if (unit === DEACTIVATED) return null;
  const entry = TIMER3_UNITS.find((u) => u[0] === unit)!;
  return (v & 0x1f) * entry[1];
}

/** Seconds of a GPRS Timer 2 octet, null when deactivated. Units 011-110 read as 1 min (§10.5.7.4). */
export function decodeTimer2(octet: string | number): number | null {
  const v = typeof octet === 'number' ? octet & 0xff : parseBits(octet, 8);
  const unit = v >> 5;
  if (unit === DEACTIVATED) return null;
  const step = unit === 0 ? 2 : unit === 2 ? 360 : 60;
  return (v & 0x1f) * step;
}

/** Access technology of the eDRX tables: LTE-M (WB-S1, AT+CEDRXS AcT 4) or NB-IoT (NB-S1, AcT 5). */
export type EdrxAct = 'lte-m' | 'nb-iot';

/** eDRX cycle in seconds by 4-bit value, WB-S1 (§10.5.5.32, Table 10.5.5.32). */
const EDRX_WB: readonly number[] = Object.freeze([5.12, 10.24, 20.48, 40.96, 61.44, 81.92, 102.4, 122.88, 143.36, 163.84, 327.68, 655.36, 1310.72, 2621.44, 5242.88, 10485.76]);
/** NB-S1: only these codes are defined; the others are read as 0010 (20.48 s). */
const EDRX_NB_CODES: readonly number[] = Object.freeze([0b0010, 0b0011, 0b0101, 0b1001, 0b1010, 0b1011, 0b1100, 0b1101, 0b1110, 0b1111]);

/** eDRX cycle (seconds) of a 4-bit code. */
export function decodeEdrx(code: string | number, act: EdrxAct): number {
  const v = typeof code === 'number' ? code & 0xf : parseBits(code, 4);
  if (act === 'nb-iot' && !EDRX_NB_CODES.includes(v)) return EDRX_WB[0b0010]!;
  return EDRX_WB[v]!;
}

/** The 4-bit eDRX code of the shortest cycle not below `seconds`. */
export function encodeEdrx(seconds: number, act: EdrxAct): string {
  if (!Number.isFinite(seconds) || seconds < 0) throw new TimerRangeError(`eDRX: ${seconds} s is not a duration`);
  for (let v = 0; v < 16; v++) {
    if (act === 'nb-iot' && !EDRX_NB_CODES.includes(v)) continue;
    if (EDRX_WB[v]! + 1e-9 >= seconds) return bits(v, 4);
  }
  throw new TimerRangeError(`eDRX: ${seconds} s is above the longest cycle (10485.76 s)`);
}

/** Paging time window step: 1.28 s on WB-S1, 2.56 s on NB-S1 (window = (code + 1) x step). */
function ptwStep(act: EdrxAct): number {
  return act === 'nb-iot' ? 2.56 : 1.28;
}

export function decodePtw(code: string | number, act: EdrxAct): number {
  const v = typeof code === 'number' ? code & 0xf : parseBits(code, 4);
  return Math.round((v + 1) * ptwStep(act) * 100) / 100;
}

/** The 4-bit paging time window code of the shortest window not below `seconds`. */
export function encodePtw(seconds: number, act: EdrxAct): string {
  const step = ptwStep(act);
  if (!Number.isFinite(seconds) || seconds < 0) throw new TimerRangeError(`PTW: ${seconds} s is not a duration`);
  const n = Math.max(0, Math.ceil(seconds / step - 1e-9) - 1);
  if (n > 15) throw new TimerRangeError(`PTW: ${seconds} s is above the longest window (${16 * step} s)`);
  return bits(n, 4);
}
