/*
 * A tiny ThingsBoard as an in-memory Datagram, parsed and generated with the `coap-packet` package
 * (not src/coap, so the two check each other), for DeviceApp tests on a ManualClock:
 *   POST .../telemetry   -> ACK 2.01, points kept once per (key, ts) like ThingsBoard's ts_kv
 *   POST .../attributes  -> ACK 2.01
 *   GET .../attributes + Observe 0 -> ACK 2.05 Observe with all shared attributes
 *   GET .../rpc + Observe 0        -> ACK 2.03
 * `online = false` drops every datagram both ways (the server unreachable). Replies go out in a
 * microtask, so a ManualClock test needs no wall time.
 */
import type { Datagram } from '../../src/platform/types';

const coapPacket = require('coap-packet') as typeof import('coap-packet');

export class FakeThingsBoard implements Datagram {
  onReceive?: (data: Uint8Array) => void;
  onError?: (error: Error) => void;
  online = true;
  /** (key, ts) -> value: one point per key and timestamp. */
  readonly points = new Map<string, unknown>();
  /** Telemetry POSTs received (including ones whose response was lost). */
  telemetryPosts = 0;
  /** Observe registrations received, by path end ('attributes' / 'rpc'). */
  readonly registrations: string[] = [];
  shared: Record<string, unknown> = {};
  #attrToken: Buffer | undefined;
  #observeSeq = 1;
  #mid = 0x4000;

  send(data: Uint8Array): void {
    if (!this.online) return;
    const p = coapPacket.parse(Buffer.from(data));
    if (p.code === '0.00' || p.ack || p.reset) return;
    const path = p.options.filter((o) => o.name === 'Uri-Path').map((o) => o.value.toString()).join('/');
    const observe = p.options.find((o) => o.name === 'Observe');
    const reply = (code: string, payload = '', options: { name: string; value: Buffer }[] = []) => {
      const out = coapPacket.generate({ messageId: p.messageId, token: p.token, code, ack: p.confirmable, confirmable: false, payload: Buffer.from(payload), options } as never);
      queueMicrotask(() => {
        if (this.online) this.onReceive?.(new Uint8Array(out));
      });
    };
    if (p.code === '0.02' && path.endsWith('/telemetry')) {
      this.telemetryPosts++;
      const body = JSON.parse(p.payload.toString()) as unknown;
      for (const r of (Array.isArray(body) ? body : [body]) as { ts: number; values: Record<string, unknown> }[])
        for (const [k, v] of Object.entries(r.values)) this.points.set(`${k}@${r.ts}`, v);
      reply('2.01');
    } else if (p.code === '0.02') reply('2.01');
    else if (p.code === '0.01' && observe && path.endsWith('/attributes')) {
      this.registrations.push('attributes');
      this.#attrToken = p.token;
      reply('2.05', JSON.stringify(this.shared), [{ name: 'Observe', value: Buffer.from([0]) }]);
    } else if (p.code === '0.01' && observe && path.endsWith('/rpc')) {
      this.registrations.push('rpc');
      reply('2.03', '', [{ name: 'Observe', value: Buffer.from([0]) }]);
    } else reply('4.04');
  }

  /** Pushes a shared-attribute change to the latest attributes observation (NON notification). */
  notifyShared(values: Record<string, unknown>): void {
    Object.assign(this.shared, values);
    if (!this.#attrToken || !this.online) return;
    const out = coapPacket.generate({
      messageId: this.#mid++,
      token: this.#attrToken,
      code: '2.05',
      confirmable: false,
      payload: Buffer.from(JSON.stringify(values)),
      options: [{ name: 'Observe', value: Buffer.from([this.#observeSeq++]) }],
    } as never);
    this.onReceive?.(new Uint8Array(out));
  }

  /** Timestamps stored for `key`, sorted. */
  stored(key: string): number[] {
    const out: number[] = [];
    for (const k of this.points.keys()) if (k.startsWith(`${key}@`)) out.push(Number(k.slice(key.length + 1)));
    return out.sort((a, b) => a - b);
  }

  close(): void {}
}
