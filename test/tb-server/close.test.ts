/*
 * close() with responses still pending: a handler that answers after close(), and node-coap's
 * piggyback timer (the empty ACK for a slow response), must not reach the closed socket. Before the
 * fix node-coap threw "Cannot read properties of null (reading 'send')" from a timer, which ended
 * the process (seen in the OTA e2e tests, where an endpoint closes while a chunk is in flight).
 */
import { strict as assert } from 'node:assert';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTbServer } from '../../tools/tb-server/server';

describe('tb-server: close() with responses pending', () => {
  it('neither the piggyback timer nor a late answer touches the closed socket', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tb-close-'));
    const errors: unknown[] = [];
    const onUncaught = (e: unknown) => errors.push(e);
    process.on('uncaughtException', onUncaught);
    const tb = await startTbServer({ coapPort: 0, httpPort: 0, dataDir: dir, piggybackTimeoutMs: 50, responseDelayMs: 150, log: () => {} });
    const sock = dgram.createSocket('udp4');
    try {
      const dev = tb.store.createDevice('slow');
      // CON requests of every kind, each left in a different state at close(): a telemetry POST
      // answered after responseDelayMs, Observe registrations, a firmware chunk past the end (no
      // response: node-coap's piggyback timer still owes the empty ACK), a request for an unknown path.
      let mid = 0x1200;
      const con = (code: number, path: string[], query: string[] = [], payload?: string, observe = false): Buffer => {
        const opts: number[] = [];
        let prev = 0;
        const opt = (num: number, v: Buffer) => {
          const delta = num - prev;
          prev = num;
          const d = delta < 13 ? [delta, []] : [13, [delta - 13]];
          const l = v.length < 13 ? [v.length, []] : [13, [v.length - 13]];
          opts.push(((d[0] as number) << 4) | (l[0] as number), ...(d[1] as number[]), ...(l[1] as number[]), ...v);
        };
        if (observe) opt(6, Buffer.alloc(0));
        for (const seg of path) opt(11, Buffer.from(seg));
        if (payload) opt(12, Buffer.from([50]));
        for (const q of query) opt(15, Buffer.from(q));
        mid++;
        return Buffer.from([0x40, code, mid >> 8, mid & 0xff, ...opts, ...(payload ? [0xff, ...Buffer.from(payload)] : [])]);
      };
      const t = dev.token;
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
      for (const m of [
        con(2, ['api', 'v1', t, 'telemetry'], [], '{"t":1}'),
        con(1, ['api', 'v1', t, 'attributes'], [], undefined, true),
        con(1, ['api', 'v1', t, 'rpc'], [], undefined, true),
        con(1, ['fw', t], ['size=100', 'chunk=9']),
        con(1, ['api', 'v1', t, 'nothing']),
      ])
        sock.send(m, tb.coapPort, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 20));
      const closing = tb.close(); // the answer is still 130 ms away, the piggyback timer 30 ms
      // and datagrams keep arriving while it closes (a device retransmitting)
      for (let i = 0; i < 20; i++) sock.send(con(2, ['api', 'v1', t, 'telemetry'], [], `{"t":${i}}`), tb.coapPort, '127.0.0.1');
      await closing;
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(errors.map(String), []);
    } finally {
      process.off('uncaughtException', onUncaught);
      sock.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
