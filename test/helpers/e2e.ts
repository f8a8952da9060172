/*
 * Shared set-up of the end-to-end suites: a fresh local endpoint per test (temp data dir), sim
 * devices aimed at it, everything closed after each test, and the admin HTTP API.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TbServer, TbServerOptions } from '../../tools/tb-server/server';
import { startTbServer } from '../../tools/tb-server/server';
import { ScaledClock } from '../../tools/sim/clock';
import { createSimDevice } from '../../tools/sim/device';
import type { SimDevice, SimDeviceOptions } from '../../tools/sim/device';
import { memoryLog } from './wait';

export interface Endpoint {
  /** The running endpoint; a test may close it and assign a restarted one. */
  server: TbServer;
  /** Its data directory (reuse it to restart with the same store). */
  dir: string;
  /** Starts (again) on ephemeral ports unless `options` say otherwise, with this test's data dir. */
  start(options?: Partial<TbServerOptions>): Promise<TbServer>;
  /**
   * A sim device aimed at the endpoint (the CoAPs port when `dtls` is set), on a real-time clock with
   * a memory log; stopped after the test. `defaults` come before the test's own options.
   */
  device(options: Partial<SimDeviceOptions> & Pick<SimDeviceOptions, 'credentials'>): SimDevice;
}

/** Registers beforeEach/afterEach hooks in the calling describe() and returns the shared context. */
export function useEndpoint(serverOptions: () => Partial<TbServerOptions> = () => ({}), defaults: Partial<SimDeviceOptions> = {}): Endpoint {
  let devices: SimDevice[] = [];
  const ctx: Endpoint = {
    server: undefined as unknown as TbServer,
    dir: '',
    async start(options = {}) {
      ctx.server = await startTbServer({ coapPort: 0, httpPort: 0, dataDir: ctx.dir, ...serverOptions(), ...options });
      return ctx.server;
    },
    device(options) {
      const port = options.dtls ? ctx.server.coapsPort! : ctx.server.coapPort;
      const d = createSimDevice({
        server: { host: '127.0.0.1', port },
        reportingIntervalMs: 60000,
        clock: new ScaledClock(1),
        log: memoryLog(),
        ...defaults,
        ...options,
      });
      devices.push(d);
      return d;
    },
  };
  beforeEach(async () => {
    ctx.dir = mkdtempSync(join(tmpdir(), 'tb-e2e-'));
    await ctx.start();
  });
  afterEach(async () => {
    for (const d of devices) d.app.stop();
    devices = [];
    await ctx.server.close();
    rmSync(ctx.dir, { recursive: true, force: true });
  });
  return ctx;
}

/** Calls the endpoint's admin HTTP API. */
export async function admin(server: TbServer, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`http://127.0.0.1:${server.httpPort}${path}`, {
    method,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${server.adminToken}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}
