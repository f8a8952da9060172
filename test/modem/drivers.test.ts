/*
 * The nRF91 SLM and BG95 drivers against the simulated modem (tools/sim/modem) on a ManualClock:
 * registration with the granted timers read back, AT+CPSMS / eDRX commands, a UDP socket as a
 * Datagram (echo server on the virtual network), PSM sleep and the new source port after it,
 * a modem restart in the middle of a send.
 */
import { strict as assert } from 'node:assert';
import { AtChannel } from '../../src/modem/at';
import { Bg95, BG95_BOOT_LINES } from '../../src/modem/bg95';
import type { AtModem } from '../../src/modem/modem';
import { parseCereg } from '../../src/modem/modem';
import { Nrf91Slm, SLM_BOOT_LINES } from '../../src/modem/nrf91-slm';
import type { Clock, Datagram } from '../../src/platform/types';
import { ManualClock } from '../../tools/sim/clock';
import type { SimDialect } from '../../tools/sim/modem/sim-modem';
import { SimModem } from '../../tools/sim/modem/sim-modem';

/** A virtual network whose server echoes every datagram after 50 ms; counts sockets (source ports). */
function echoNetwork(clock: Clock) {
  const sockets: { port: number; sent: Uint8Array[] }[] = [];
  let down = false;
  const open = (): Datagram => {
    const me = { port: 40000 + sockets.length, sent: [] as Uint8Array[] };
    sockets.push(me);
    let closed = false;
    const d: Datagram = {
      send(data) {
        if (closed) return;
        me.sent.push(data);
        if (!down) clock.setTimer(() => !closed && d.onReceive?.(Uint8Array.from([...data].reverse())), 50);
      },
      close() {
        closed = true;
      },
    };
    return d;
  };
  return { open, sockets, setDown: (v: boolean) => (down = v) };
}

/** Advances the clock in small steps until `p` settles (bounded), returns its value. */
async function settle<T>(clock: ManualClock, p: Promise<T>, maxMs = 60_000): Promise<T> {
  let done = false;
  const q = p.finally(() => (done = true));
  for (let t = 0; t < maxMs && !done; t += 10) await clock.advanceAsync(10);
  return q;
}

function rig(dialect: SimDialect, bootMs = 1000) {
  const clock = new ManualClock();
  const net = echoNetwork(clock);
  const sim = new SimModem({ clock, dialect, network: net.open, registrationDelayMs: 3000, latencyMs: 200, rrcInactivityMs: 5000, wakeDelayMs: 1000, bootMs });
  const at = new AtChannel(sim.serial, { clock, bootLines: dialect === 'bg95' ? BG95_BOOT_LINES : SLM_BOOT_LINES });
  const modem: AtModem = dialect === 'bg95' ? new Bg95({ at, clock }) : new Nrf91Slm({ at, clock });
  return { clock, net, sim, at, modem };
}

describe('modem drivers: +CEREG parsing', () => {
  it('reads stat, cell and the granted timers from the URC and the read answer', () => {
    const urc = parseCereg('+CEREG: 1,"0001","01A2D001",9,,,"00100001","00000110"', false);
    assert.equal(urc.status, 'home');
    assert.equal(urc.registered, true);
    assert.equal(urc.act, 9);
    assert.equal(urc.activeTimeS, 60);
    assert.equal(urc.periodicTauS, 3600);
    const read = parseCereg('+CEREG: 5,5,"0001","01A2D001",7,0,0,"11100000","11100000"', true);
    assert.equal(read.status, 'roaming');
    assert.equal(read.activeTimeS, null, 'deactivated');
    assert.equal(parseCereg('+CEREG: 2', false).registered, false);
    assert.equal(parseCereg('+CEREG: 3', false).status, 'denied');
  });
});

for (const dialect of ['nrf91-slm', 'bg95'] as const) {
  describe(`modem driver ${dialect} over the simulated modem`, () => {
    it('registers, reads back the granted PSM timers, carries datagrams both ways', async () => {
      const { clock, modem, net, sim } = rig(dialect);
      const requested = await settle(clock, modem.setPsm({ periodicTauS: 3600, activeTimeS: 10 }));
      assert.deepEqual(requested, { periodicTau: '00000110', activeTime: '00000101' });
      const started = modem.start();
      await clock.advanceAsync(100);
      await started;
      const reg = modem.waitRegistered(60000);
      await clock.advanceAsync(3500);
      const r = await reg;
      assert.equal(r.registered, true);
      assert.equal(r.activeTimeS, 10);
      assert.equal(r.periodicTauS, 3600);
      const d = modem.openDatagram('127.0.0.1', 5683);
      const got: number[][] = [];
      d.onReceive = (b) => got.push([...b]);
      d.send(new Uint8Array([1, 2, 3, 0x0d, 0x0a, 0xff]));
      d.send(new Uint8Array([9]));
      await clock.advanceAsync(2000);
      assert.deepEqual(got, [[0xff, 0x0a, 0x0d, 3, 2, 1], [9]]);
      assert.equal(net.sockets.length, 1);
      assert.equal(sim.radio, 'connected');
      // RRC inactivity (5 s) -> idle, T3324 (10 s) -> PSM
      await clock.advanceAsync(5200);
      assert.equal(sim.radio, 'idle');
      await clock.advanceAsync(10_000);
      assert.equal(sim.radio, 'psm');
      // An uplink wakes the radio; after PSM the NAT gives the socket a new source port.
      d.send(new Uint8Array([7, 8]));
      await clock.advanceAsync(3000);
      assert.deepEqual(got[2], [8, 7]);
      assert.equal(net.sockets.length, 2, 'new source port after PSM');
      assert.equal(sim.stats.rebinds, 1);
      modem.close();
      sim.close();
    });

    it('downlink while in PSM is lost; in idle DRX it is paged and delivered', async () => {
      const { clock, modem, sim } = rig(dialect);
      await settle(clock, modem.setPsm({ periodicTauS: 3600, activeTimeS: 20 }));
      const started = modem.start();
      await clock.advanceAsync(3500);
      await started;
      const d = modem.openDatagram('127.0.0.1', 5683);
      const got: number[][] = [];
      d.onReceive = (b) => got.push([...b]);
      d.send(new Uint8Array([1]));
      await clock.advanceAsync(6000); // echo back, then idle
      assert.equal(sim.radio, 'idle');
      // The server sends while we are idle: paged within one DRX cycle.
      const n = sim.network()!;
      n.onReceive!(new Uint8Array([0x42]));
      await clock.advanceAsync(4000);
      assert.deepEqual(got.at(-1), [0x42]);
      await clock.advanceAsync(60_000);
      assert.equal(sim.radio, 'psm');
      const lostBefore = sim.stats.lostAsleep;
      sim.network()!.onReceive!(new Uint8Array([0x43]));
      await clock.advanceAsync(4000);
      assert.equal(sim.stats.lostAsleep, lostBefore + 1);
      assert.notDeepEqual(got.at(-1), [0x43]);
      modem.close();
      sim.close();
    });

    for (const bootMs of [1000, 0])
    it(`a modem restart during a send (boot ${bootMs} ms): the driver sets it up again and the next send goes out`, async () => {
      // With a 0 ms boot the command written during the restart is answered after the boot line:
      // a stray ERROR fails the first set-up, and the driver tries again.
      const { clock, modem, net, sim } = rig(dialect, bootMs);
      let reboots = 0;
      modem.onReboot = () => reboots++;
      const started = modem.start();
      await clock.advanceAsync(3500);
      await started;
      const d = modem.openDatagram('127.0.0.1', 5683);
      const errors: string[] = [];
      d.onError = (e) => errors.push(e.message);
      const got: number[][] = [];
      d.onReceive = (b) => got.push([...b]);
      d.send(new Uint8Array([1]));
      await clock.advanceAsync(1000);
      d.send(new Uint8Array([2]));
      sim.reboot(); // the command is on the line when the modem restarts
      await clock.advanceAsync(bootMs + 10);
      assert.equal(reboots, 1);
      assert.equal(modem.registration.registered, false);
      await clock.advanceAsync(8000); // set up again (a second attempt after 2 s when the first failed), registered again
      assert.equal(modem.registration.registered, true);
      d.send(new Uint8Array([3]));
      await clock.advanceAsync(3000);
      assert.deepEqual(got.at(-1), [3]);
      assert.ok(net.sockets.length >= 2, 'a new socket after the restart');
      assert.ok(errors.length <= 1, `at most the interrupted send failed: ${errors}`);
      modem.close();
      sim.close();
    });

    it('line noise: junk lines are ignored; a final result corrupted by noise times out and the next send goes out', async () => {
      const { clock, modem, sim, at } = rig(dialect);
      const started = modem.start();
      await clock.advanceAsync(3500);
      await started;
      const d = modem.openDatagram('127.0.0.1', 5683);
      const got: number[][] = [];
      const errors: string[] = [];
      d.onReceive = (b) => got.push([...b]);
      d.onError = (e) => errors.push(e.message);
      d.send(new Uint8Array([1]));
      sim.noise(new Uint8Array([0xff, 0x00, 0x13, 0x0d, 0x0a, 0x41, 0x54, 0x80, 0x0d, 0x0a]));
      await clock.advanceAsync(2000);
      assert.deepEqual(got, [[1]], 'junk lines around the exchange change nothing');
      assert.ok(at.garbage >= 2);
      // Noise without a line end glues onto the modem's next line: that answer is lost.
      d.send(new Uint8Array([2]));
      sim.noise(new Uint8Array([0xfe, 0xfd]));
      await clock.advanceAsync(40_000);
      d.send(new Uint8Array([3]));
      await clock.advanceAsync(3000);
      assert.deepEqual(got.at(-1), [3], 'the channel recovered');
      assert.ok(errors.length <= 1, `${errors}`);
      modem.close();
      sim.close();
    });

    it('eDRX request and release assistance', async () => {
      const { clock, modem, sim, at } = rig(dialect);
      const started = modem.start();
      await clock.advanceAsync(3500);
      await started;
      const e = modem.setEdrx({ act: 'nb-iot', cycleS: 80, ptwS: 5 });
      await clock.advanceAsync(100);
      await e;
      const d = modem.openDatagram('127.0.0.1', 5683);
      d.send(new Uint8Array([1]));
      await clock.advanceAsync(1500);
      assert.equal(sim.radio, 'connected');
      const rai = modem.releaseAssistance();
      await clock.advanceAsync(500);
      const had = await rai;
      if (dialect === 'nrf91-slm') {
        assert.equal(had, true);
        assert.equal(sim.radio, 'idle', 'released at once, not after the inactivity timer');
      } else assert.equal(had, false);
      assert.equal(at.garbage, 0);
      modem.close();
      sim.close();
    });
  });
}
