/*
 * The modem and power code on XS (bundled and run by test/modem/xs.test.ts, and on Node for
 * comparison): 3GPP timer tables, the AT channel (URCs inside a response, a raw payload with CR LF
 * in it, +CME ERROR, a timeout, a restart), +CEREG parsing, the T3324 check. Plain ECMAScript:
 * its own clock and serial.
 */
import { AtChannel, AtError, atParams } from '../../src/modem/at';
import { parseCereg } from '../../src/modem/modem';
import { decodeTimer2, decodeTimer3, encodeEdrx, encodePtw, encodeTimer2, encodeTimer3 } from '../../src/modem/timers';
import { checkActivityTimer } from '../../src/power/cycle';
import type { Clock, Serial } from '../../src/platform/types';
import { runOnXsIfHere } from '../xs/fixtures/harness';

class TinyClock implements Clock {
  t = 0;
  timers: { id: number; due: number; fn: () => void }[] = [];
  next = 1;
  now(): number {
    return this.t;
  }
  epochMs(): number {
    return this.t;
  }
  setTimer(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.timers.push({ id, due: this.t + ms, fn });
    return id;
  }
  clearTimer(h: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== h);
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (let i = 0; i < 1000; i++) {
      this.timers.sort((a, b) => a.due - b.due || a.id - b.id);
      const x = this.timers[0];
      if (!x || x.due > end) break;
      this.timers.shift();
      this.t = x.due;
      x.fn();
    }
    this.t = end;
  }
}

class Line implements Serial {
  onReceive?: (data: Uint8Array) => void;
  written: string[] = [];
  write(data: Uint8Array): void {
    let s = '';
    for (let i = 0; i < data.length; i++) s += String.fromCharCode(data[i]!);
    this.written.push(s);
  }
  close(): void {}
  feed(s: string): void {
    const b = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
    this.onReceive?.(b);
  }
}

export async function scenario() {
  const timers = {
    t3: [0, 1, 60, 61, 63, 3600, 3601, 86400, null].map((v) => encodeTimer3(v)),
    t2: [0, 10, 11, 62, 63, 3600, null].map((v) => encodeTimer2(v)),
    back: [decodeTimer3('00100001'), decodeTimer3('11100000'), decodeTimer2('01000010'), decodeTimer2('01100001')],
    edrx: [encodeEdrx(50, 'nb-iot'), encodeEdrx(50, 'lte-m'), encodePtw(2.57, 'nb-iot')],
  };
  const clock = new TinyClock();
  const line = new Line();
  const at = new AtChannel(line, { clock, bootLines: ['Ready'] });
  const urcs: string[] = [];
  at.onUrc('+CEREG:', (l) => urcs.push(l));
  const results: unknown[] = [];
  const a = at.command('AT#XRECVFROM=0,64', { prefix: '#XRECVFROM:', binaryLength: (l) => Number(atParams(l)[0]) });
  line.feed('+CEREG: 1,"0001","01A2D001",9,,,"00000101","00100001"\r\n#XRECVFROM: 6,"127.0.0.1",5683\r\n\x40\r\nOK\r\r\nOK\r\n');
  const r = await a;
  results.push(r.lines, Array.from(r.data!));
  const b = at.command('AT+CFUN=1');
  line.feed('+CME ERROR: 30\r\n');
  try {
    await b;
  } catch (e) {
    results.push(`${(e as AtError).name} ${(e as AtError).code} ${(e as AtError).errorNumber} ${e instanceof AtError}`);
  }
  const c = at.command('AT+COPS=?', { timeoutMs: 1000 });
  clock.advance(1000);
  try {
    await c;
  } catch (e) {
    results.push((e as AtError).code);
  }
  const d = at.command('AT');
  line.feed('Ready\r\n');
  try {
    await d;
  } catch (e) {
    results.push((e as AtError).code);
  }
  const reg = parseCereg(urcs[0]!, false);
  return {
    timers,
    results,
    reg,
    garbage: at.garbage,
    written: line.written.length,
    warning: checkActivityTimer({ powerMode: 'PSM', psmActivityTimer: 10000 }, { status: 'home', registered: true, activeTimeS: 4 })?.slice(0, 40) ?? null,
  };
}

runOnXsIfHere(scenario);
