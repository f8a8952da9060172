/*
 * Power simulator speed: simulated device-days per wall second for one battery device (firmware +
 * wake cycle + AT driver + simulated modem + local endpoint, a report every 15 min in PSM), with the
 * datagrams in memory (event-driven) and over real loopback UDP, measured in the same run; plus the
 * charge per report both give (they must agree: same firmware, same modem model); and a fleet of
 * 1000 such devices against one endpoint for one simulated hour (datagrams handled per second, losses).
 */
import { runFleet } from '../tools/sim/modem/fleet';
import { runScenario } from '../tools/sim/modem/scenario';

export async function run(): Promise<void> {
  const memory = await runScenario({ days: 5, intervalMs: 15 * 60_000, mode: 'PSM', network: 'memory' });
  const loopback = await runScenario({ days: 1, intervalMs: 15 * 60_000, mode: 'PSM', network: 'loopback' });
  const hourly = await runScenario({ days: 10, intervalMs: 60 * 60_000, mode: 'PSM', network: 'memory' });
  const row = (name: string, r: typeof memory) =>
    console.log(`${name.padEnd(34)} ${r.daysPerSecond.toFixed(2).padStart(7)} device-days/s  (${r.days} days in ${(r.wallMs / 1000).toFixed(1)} s, ${r.stored} reports, ${r.perReportUAh.toFixed(1)} µAh/report)`);
  row('in memory, report every 15 min', memory);
  row('loopback UDP, report every 15 min', loopback);
  row('in memory, report every hour', hourly);
  console.log(`memory / loopback: ${(memory.daysPerSecond / loopback.daysPerSecond).toFixed(1)}x; charge per report differs by ${((100 * Math.abs(memory.perReportUAh - loopback.perReportUAh)) / loopback.perReportUAh).toFixed(2)} %`);
  console.log('target (issue 10): >= 100 device-days/s for one device');
  const fleet = await runFleet(1000, 3_600_000);
  console.log(
    `fleet: ${fleet.devices} devices x 1 simulated hour (a report every 15 min, PSM, staggered) in ${(fleet.wallMs / 1000).toFixed(1)} s: ` +
      `${fleet.datagrams} datagrams, ${fleet.datagramsPerSecond.toFixed(0)} handled per wall second, ${fleet.readingsStored} readings stored, ${fleet.lost} lost (target 0)`,
  );
}
