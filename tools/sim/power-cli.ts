/*
 * `npm run sim:power -- [options]`: a battery device on the simulated modem against the local
 * endpoint, in virtual time. Prints charge per report, average current and projected battery life,
 * writes SVGs of one wake cycle and of charge per day, and compares in the same run: PSM vs eDRX
 * vs DRX, CON vs NON, and DTLS full handshake vs resumption vs saved state (modelled from bytes).
 *
 *   --days N            simulated days of the main run (default 30)
 *   --interval T        reporting interval: 900, 15m, 1h (default 15m)
 *   --mode M            psm | edrx | drx (default psm)
 *   --modem M           nrf91-slm | bg95 (default nrf91-slm; the energy table is the nRF9160's)
 *   --uplink U          con | non (default con)
 *   --activity T        the profile's PSM activity timer / paging window (default 10s)
 *   --battery-mah N     battery capacity (default 2600: one Li-SOCl2 AA, ER14505)
 *   --loss P            datagram loss each way, 0..1 (default 0)
 *   --compare-days N    days of each comparison run (default 2; 0 skips them)
 *   --out DIR           where the SVGs go (default .sim/power)
 *   --no-rai            no release assistance
 *   --network N         memory (default: datagrams in memory, event-driven) | loopback (real UDP on 127.0.0.1)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { PowerMode } from '../../src/power/cycle';
import { ESP32_MCU, NRF9160_NB } from './modem/energy';
import type { ScenarioOptions, ScenarioResult } from './modem/scenario';
import { DTLS_VARIANTS, batteryYears, dtlsExtraUAh, runScenario } from './modem/scenario';
import { chargePerDaySvg, wakeCycleSvg } from './modem/svg';

function duration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(s.trim());
  if (!m) throw new Error(`not a duration: ${s}`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit]!;
}

const MODES: Record<string, PowerMode> = { psm: 'PSM', edrx: 'E_DRX', drx: 'DRX' };

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      days: { type: 'string', default: '30' },
      interval: { type: 'string', default: '15m' },
      mode: { type: 'string', default: 'psm' },
      modem: { type: 'string', default: 'nrf91-slm' },
      uplink: { type: 'string', default: 'con' },
      activity: { type: 'string', default: '10s' },
      'battery-mah': { type: 'string', default: '2600' },
      loss: { type: 'string', default: '0' },
      'compare-days': { type: 'string', default: '2' },
      out: { type: 'string', default: '.sim/power' },
      'no-rai': { type: 'boolean', default: false },
      network: { type: 'string', default: 'memory' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log('npm run sim:power -- [--days 30] [--interval 15m] [--mode psm|edrx|drx] [--modem nrf91-slm|bg95] [--uplink con|non] [--activity 10s] [--battery-mah 2600] [--loss 0.01] [--compare-days 2] [--out DIR] [--no-rai] [--network memory|loopback]');
    return;
  }
  const mode = MODES[values.mode!];
  if (!mode) throw new Error('--mode is psm, edrx or drx');
  if (values.modem !== 'nrf91-slm' && values.modem !== 'bg95') throw new Error('--modem is nrf91-slm or bg95');
  if (values.uplink !== 'con' && values.uplink !== 'non') throw new Error('--uplink is con or non');
  if (values.network !== 'memory' && values.network !== 'loopback') throw new Error('--network is memory or loopback');
  const days = Number(values.days);
  const intervalMs = duration(values.interval!);
  const activityMs = duration(values.activity!);
  const battery = Number(values['battery-mah']);
  const compareDays = Number(values['compare-days']);
  const out = resolve(values.out!);
  const base: ScenarioOptions = {
    days,
    intervalMs,
    mode,
    dialect: values.modem,
    uplink: values.uplink,
    activityMs,
    pagingMs: activityMs,
    loss: Number(values.loss),
    rai: !values['no-rai'],
    network: values.network,
  };

  console.log(`modem energy table: ${NRF9160_NB.name}; MCU: ${ESP32_MCU.name}`);
  for (const s of [...NRF9160_NB.sources, ...ESP32_MCU.sources]) console.log(`  - ${s}`);
  console.log(`\nmain run: ${days} days, a report every ${intervalMs / 1000} s, ${mode}, ${values.modem}, ${values.uplink.toUpperCase()}, activity ${activityMs / 1000} s, loss ${base.loss}, battery ${battery} mAh`);
  const main = await runScenario({ ...base, record: true });
  printResult('main', main, battery);
  for (const w of new Set(main.warnings)) console.log(`  warning: ${w}`);
  const b = main.breakdown;
  console.log('  charge by state (µAh over the run):');
  for (const [k, v] of Object.entries(b)) console.log(`    ${k.padEnd(32)} ${v.toFixed(1).padStart(10)}  (${((100 * v) / main.chargeUAh).toFixed(1)} %)`);

  mkdirSync(out, { recursive: true });
  if (main.timeline) {
    const t = main.timeline;
    const file = join(out, 'wake-cycle.svg');
    writeFileSync(file, wakeCycleSvg(t.segments, t.marks, `One wake cycle: ${mode}, ${values.modem}, ${values.uplink.toUpperCase()}, ${((t.t1 - t.t0) / 1000).toFixed(1)} s shown`, t.t0, t.t1));
    console.log(`  wrote ${file}`);
  }
  const dayFile = join(out, 'charge-per-day.svg');
  writeFileSync(dayFile, chargePerDaySvg(main.perDayUAh, `Charge per day: ${mode}, a report every ${intervalMs / 1000} s (${(main.chargeUAh / days / 1000).toFixed(2)} mAh/day on average)`));
  console.log(`  wrote ${dayFile}`);

  if (compareDays > 0) {
    console.log(`\ncomparisons (${compareDays} simulated days each, same interval and modem):`);
    const rows: [string, ScenarioResult][] = [];
    for (const [name, o] of [
      ['PSM, CON', { mode: 'PSM', uplink: 'con' }],
      ['PSM, NON', { mode: 'PSM', uplink: 'non' }],
      ['eDRX 81.92 s, CON', { mode: 'E_DRX', uplink: 'con' }],
      ['DRX 2.56 s, CON', { mode: 'DRX', uplink: 'con' }],
      ['PSM, CON, no RAI', { mode: 'PSM', uplink: 'con', rai: false }],
    ] as [string, Partial<ScenarioOptions>][]) {
      rows.push([name, await runScenario({ ...base, loss: 0, ...o, days: compareDays })]);
    }
    console.log(`  ${'scenario'.padEnd(26)} ${'µAh/report'.padStart(11)} ${'avg µA'.padStart(9)} ${'years'.padStart(7)} ${'datagrams/report'.padStart(17)}`);
    for (const [name, r] of rows) {
      const dg = (r.traffic.sent + r.traffic.received) / Math.max(1, r.stored);
      console.log(`  ${name.padEnd(26)} ${r.perReportUAh.toFixed(1).padStart(11)} ${r.avgUa.toFixed(1).padStart(9)} ${batteryYears(battery, r.avgUa).toFixed(2).padStart(7)} ${dg.toFixed(1).padStart(17)}`);
    }
    const psm = rows[0]![1];
    const wakeDatagrams = (psm.traffic.sent + psm.traffic.received) / Math.max(1, psm.stored);
    console.log('\n  CoAPs (one-way DTLS with the token, PSM, CON), simulated over loopback UDP with mbedTLS on both sides:');
    console.log(`  ${'after each sleep'.padEnd(26)} ${'µAh/report'.padStart(11)} ${'avg µA'.padStart(9)} ${'years'.padStart(7)} ${'bytes/report'.padStart(13)} ${'stored'.padStart(7)}  (+ handshake CPU, estimated)`);
    for (const [name, how, variant] of [
      ['full handshake', 'full', DTLS_VARIANTS[0]],
      ['session resumption', 'resume', DTLS_VARIANTS[1]],
      ['saved state, no CID', 'keep', DTLS_VARIANTS[2]],
    ] as const) {
      const r = await runScenario({ ...base, loss: 0, mode: 'PSM', uplink: 'con', days: compareDays, dtls: how });
      const bytes = (r.traffic.bytesSent + r.traffic.bytesReceived) / Math.max(1, r.stored);
      const cpu = (variant.cpuMs * (ESP32_MCU.ua.active - ESP32_MCU.ua.light)) / 3_600_000_000 * 1000;
      const failed = r.stored < r.cycles / 2; // charge per report means nothing then
      console.log(`  ${name.padEnd(26)} ${(failed ? 'fails' : r.perReportUAh.toFixed(1)).padStart(11)} ${r.avgUa.toFixed(1).padStart(9)} ${batteryYears(battery, r.avgUa).toFixed(2).padStart(7)} ${bytes.toFixed(0).padStart(13)} ${`${r.stored}/${r.cycles}`.padStart(7)}  (+${cpu.toFixed(1)} µAh)`);
    }
    const cid = DTLS_VARIANTS[2];
    const perReport = psm.perReportUAh + dtlsExtraUAh(cid, wakeDatagrams);
    const avg = (perReport * 3_600_000) / intervalMs;
    console.log(`  ${'saved state with CID'.padEnd(26)} ${perReport.toFixed(1).padStart(11)} ${avg.toFixed(1).padStart(9)} ${batteryYears(battery, avg).toFixed(2).padStart(7)}   (modelled: plain CoAP run + 29 B of record per datagram; no CID in Debian's mbedTLS 2.28)`);
  }
}

function printResult(name: string, r: ScenarioResult, battery: number): void {
  console.log(`  ${name}: ${r.stored} readings stored, ${r.cycles} wake cycles, ${r.traffic.sent} datagrams up / ${r.traffic.received} down`);
  console.log(`  charge per report ${r.perReportUAh.toFixed(1)} µAh (total ${(r.chargeUAh / 1000).toFixed(2)} mAh over ${r.days} days)`);
  console.log(`  average current ${r.avgUa.toFixed(1)} µA -> ${batteryYears(battery, r.avgUa).toFixed(2)} years on ${battery} mAh (no self-discharge or derating)`);
  console.log(`  simulated ${r.days} days in ${(r.wallMs / 1000).toFixed(1)} s (${r.daysPerSecond.toFixed(1)} device-days per wall second)`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
