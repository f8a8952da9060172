/*
 * Energy model: integration of per-state current over the virtual timeline, and the orderings the
 * comparisons rest on (PSM < eDRX < DRX per report; NON sends fewer datagrams than CON; release
 * assistance saves charge), from short scenarios in the in-memory network mode.
 */
import { strict as assert } from 'node:assert';
import { ManualClock } from '../../tools/sim/clock';
import { ESP32_MCU, EnergyMeter, NRF9160_NB } from '../../tools/sim/modem/energy';
import { DTLS_VARIANTS, batteryYears, dtlsExtraUAh, runScenario } from '../../tools/sim/modem/scenario';
import { chargePerDaySvg, wakeCycleSvg } from '../../tools/sim/modem/svg';

describe('power: energy meter', () => {
  it('integrates state currents over clock time (µAh)', () => {
    const clock = new ManualClock();
    const e = new EnergyMeter(clock);
    e.mcu('sleep');
    e.modem('psm');
    clock.advance(3_600_000); // 1 h: PSM floor + MCU deep sleep
    assert.ok(Math.abs(e.chargeUAh - (NRF9160_NB.ua.psm + ESP32_MCU.ua.sleep)) < 1e-9, `${e.chargeUAh}`);
    e.modem('active');
    clock.advance(1000); // 1 s at 45 mA = 12.5 µAh
    const b = e.breakdown();
    assert.ok(Math.abs(b['modem active']! - NRF9160_NB.ua.active / 3600) < 1e-9);
    e.modem('idle', 81.92);
    assert.ok(Math.abs(e.currentUa - ESP32_MCU.ua.sleep - 37) < 0.1, 'eDRX 81.92 s: the datasheet 37 µA');
    e.modem('idle', 655.36);
    assert.ok(Math.abs(e.currentUa - ESP32_MCU.ua.sleep - 9) < 0.1, 'eDRX 655.36 s: the datasheet 9 µA');
    e.event(1000, 'x');
    assert.ok(e.breakdown()['modem TAU events']! > 0.27);
  });

  it('battery life and the DTLS model are monotonic in what they cost', () => {
    assert.equal(Math.round(batteryYears(2600, 100) * 100) / 100, 2.97);
    const [full, resumed, saved] = DTLS_VARIANTS.map((v) => dtlsExtraUAh(v, 7));
    assert.ok(full! > resumed! && resumed! > saved! && saved! > 0);
  });

  it('pictures are SVG with the data in them', () => {
    const svg = wakeCycleSvg([{ t0: 0, t1: 1000, modem: 'active', mcu: 'light', ua: 45800 }], [{ t: 500, label: '-> 49 B' }, { t: 600, label: '[report]' }], 'T', 0, 2000);
    assert.match(svg, /^<svg[\s\S]*<path d="M[\s\S]*\[report\][\s\S]*<\/svg>$/);
    assert.match(chargePerDaySvg([3900, 4000], 'D'), /<rect[^>]+fill="#2e86ab"/);
  });
});

describe('power: energy scenarios (in-memory network, virtual clock)', function () {
  this.timeout(300_000);
  it('PSM beats eDRX beats DRX per report; NON saves datagrams; RAI saves charge; every report stored', async () => {
    const base = { days: 1, intervalMs: 60 * 60_000 } as const;
    const psm = await runScenario({ ...base, mode: 'PSM', record: true });
    const non = await runScenario({ ...base, mode: 'PSM', uplink: 'non' });
    const noRai = await runScenario({ ...base, mode: 'PSM', rai: false });
    const edrx = await runScenario({ ...base, mode: 'E_DRX' });
    const drx = await runScenario({ ...base, mode: 'DRX' });
    for (const r of [psm, non, noRai, edrx, drx]) {
      assert.equal(r.stored, 24, `${r.options.mode}/${r.options.uplink}: every hourly report stored`);
      assert.equal(r.cycles, 24);
    }
    assert.ok(psm.perReportUAh < edrx.perReportUAh && edrx.perReportUAh < drx.perReportUAh, `${psm.perReportUAh} < ${edrx.perReportUAh} < ${drx.perReportUAh}`);
    assert.ok(non.traffic.sent + non.traffic.received < psm.traffic.sent + psm.traffic.received, 'NON: no ACK of the separate 2.01');
    assert.ok(psm.perReportUAh < noRai.perReportUAh, 'release assistance cuts the RRC inactivity tail');
    assert.ok(psm.breakdown['modem psm']! > 0 && psm.modem.rebinds >= 23, 'asleep in PSM, a new port after each');
    assert.equal(edrx.modem.rebinds, 0, 'eDRX never leaves the registration: same port');
    assert.ok(psm.timeline && psm.timeline.segments.some((s) => s.modem === 'psm') && psm.timeline.marks.some((m) => m.label.startsWith('->')));
    // The floor: a day of PSM costs at least (2.7 + 10) µA x 24 h.
    assert.ok(psm.chargeUAh > (NRF9160_NB.ua.psm + ESP32_MCU.ua.sleep) * 24);
  });
});
