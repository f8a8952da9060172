/*
 * A fleet of battery devices against one local endpoint, in virtual time, over the in-memory
 * network: each device the full stack (firmware, wake cycle, AT driver, simulated modem), started at
 * a random offset inside the reporting interval. Counts the datagrams the endpoint handled and the
 * readings that did not arrive.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTbServer } from '../../tb-server/server';
import { ManualClock } from '../clock';
import { SeededRandom } from '../random';
import { MemoryNetwork } from './memory-net';
import type { PowerSim } from './power-sim';
import { createPowerSim } from './power-sim';

export interface FleetResult {
  devices: number;
  simulatedMs: number;
  wallMs: number;
  /** Datagrams through the network, both ways. */
  datagrams: number;
  datagramsPerSecond: number;
  readingsTaken: number;
  readingsStored: number;
  /** Readings taken more than one interval before the end and not stored. */
  lost: number;
}

export async function runFleet(devices: number, simulatedMs: number, intervalMs = 15 * 60_000): Promise<FleetResult> {
  const wall0 = performance.now();
  const clock = new ManualClock(0, Date.UTC(2026, 0, 1));
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'tb-fleet-'));
  const tb = await startTbServer({ coapPort: 0, httpPort: 0, dataDir: dir, clock });
  const memory = new MemoryNetwork();
  const detach = tb.attachCoapSocket(memory.socket, () => ({ kind: 'token' }));
  const rnd = new SeededRandom(99);
  const sims: PowerSim[] = [];
  const ids: string[] = [];
  try {
    for (let i = 0; i < devices; i++) {
      const dev = tb.store.createDevice(`fleet-${i}`);
      tb.store.updateDevice(dev, { power: { powerMode: 'PSM', psmActivityTimer: 10000, pagingTransmissionWindow: 10000 } });
      ids.push(dev.id);
      const ps = createPowerSim({ clock, server: { port: 5683 }, token: dev.token, profile: { powerMode: 'PSM', psmActivityTimer: 10000 }, reportingIntervalMs: intervalMs, memory, seed: i + 1 });
      sims.push(ps);
      clock.setTimer(() => ps.start(), Math.floor(rnd.next() * intervalMs));
    }
    await sims[0]!.runUntil(simulatedMs);
    let taken = 0;
    let stored = 0;
    let lost = 0;
    for (let i = 0; i < devices; i++) {
      const ps = sims[i]!;
      const points = new Set((tb.store.telemetry(ids[i]!, ['temperature']).temperature ?? []).map((p) => p.ts));
      stored += points.size;
      const reports = ps.events.filter((e) => e.type === 'report').length;
      taken += ps.cycle.cycles;
      // Readings of cycles that ended before the last interval must be there.
      const expected = Math.max(0, ps.cycle.cycles - 1);
      if (points.size < expected) lost += expected - points.size;
      void reports;
    }
    const wallMs = performance.now() - wall0;
    return { devices, simulatedMs, wallMs, datagrams: memory.activity, datagramsPerSecond: memory.activity / (wallMs / 1000), readingsTaken: taken, readingsStored: stored, lost };
  } finally {
    for (const s of sims) s.stop();
    await detach();
    await tb.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
