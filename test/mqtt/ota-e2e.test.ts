/*
 * Firmware update over MQTT end to end: the unchanged firmware (DeviceApp + OtaAgent, A/B slots,
 * storage flash) over real TCP on loopback (and TLS on the mbedTLS core with an X.509 device, which
 * CoAP cannot update: ThingsBoard's /fw takes only the token) against the local endpoint's v2/fw
 * topics: download, verify, switch, and fw_state UPDATED from the new image; also through the
 * lossy TCP proxy (cuts inside and between packets).
 */
import { strict as assert } from 'node:assert';
import { makeTestPki } from '../../tools/provision/certs';
import { certSha3FromPem } from '../../tools/tb-server/store';
import { useEndpoint } from '../helpers/e2e';
import { LossyProxy } from '../helpers/lossy-proxy';
import { waitFor } from '../helpers/wait';
import { assign, FACTORY, fwStates, image, otaRig, upload } from '../ota/helpers';
import type { Rig } from '../ota/helpers';

const pki = makeTestPki();

describe('ota e2e over MQTT / MQTTS: download, verify, switch, UPDATED', function () {
  this.timeout(90_000);
  const e2e = useEndpoint(() => ({ log: () => undefined, mqtt: { port: 0, tls: { port: 0, cert: pki.read('server.pem'), key: pki.read('server.key') } } }));
  const rigs: Rig[] = [];
  const proxies: LossyProxy[] = [];
  afterEach(async () => {
    for (const r of rigs.splice(0)) r.sim.stop();
    for (const p of proxies.splice(0)) await p.close();
  });

  const check = async (rig: Rig, name: string, version: string, pkg: Buffer) => {
    await waitFor('update confirmed', () => rig.slots.running().version === version && !rig.slots.running().trial, 60_000);
    assert.deepEqual(Buffer.from(rig.slots.runningImage()), pkg, 'the booted image is the package byte for byte');
    const seq = (await fwStates(e2e, name)).map((h) => h.fw_state).filter((s) => s !== 'QUEUED');
    assert.deepEqual(seq, ['DOWNLOADING', 'DOWNLOADED', 'VERIFIED', 'UPDATING', 'UPDATED'], seq.join(' '));
    assert.equal(e2e.server.store.latestTelemetry(rig.deviceId).current_fw_version!.value, version);
    assert.deepEqual(rig.slots.history, [`A ${FACTORY.version}`, `B ${version} trial 1`]);
  };

  it('mqtt:// with a token: the package arrives over v2/fw, and the new image reports UPDATED', async () => {
    const chunks: number[] = [];
    e2e.server.mqtt!.events.on('ota-chunk', (e: { bytes: number }) => chunks.push(e.bytes));
    const rig = await otaRig(e2e, 'ota-mqtt', {
      transport: 'mqtt',
      server: { host: '127.0.0.1', port: e2e.server.mqtt!.port! },
      mqtt: { reconnect: { initialMs: 50, maxMs: 400 } },
      otaOptions: { chunkSize: 1024 },
    });
    rigs.push(rig);
    const pkg = image(30 * 1024 + 5);
    await upload(e2e, FACTORY.title, '1.1.0', pkg, 'SHA256');
    await assign(e2e, 'ota-mqtt', FACTORY.title, '1.1.0');
    await check(rig, 'ota-mqtt', '1.1.0', pkg);
    assert.equal(chunks.length, Math.ceil(pkg.length / 1024), 'every chunk over MQTT, none twice');
    assert.equal(rig.sim.device.udp.stats.datagramsSent, 0, 'nothing over CoAP');
  });

  it('mqtts:// with an X.509 device (no token): updated over MQTT', async () => {
    const rig = await otaRig(e2e, 'ota-mqtts-x509', {
      transport: 'mqtt',
      server: { host: 'localhost', port: e2e.server.mqtt!.tlsPort! },
      credentials: { kind: 'x509' },
      tls: { ca: pki.read('ca.pem'), hostname: 'localhost', cert: pki.read('device.pem'), key: pki.read('device.key') },
      mqtt: { reconnect: { initialMs: 50, maxMs: 400 } },
      otaOptions: { chunkSize: 1024 },
    }, false);
    e2e.server.store.updateDevice(e2e.server.store.findDevice('ota-mqtts-x509')!, { certSha3: certSha3FromPem(pki.read('device.pem').toString()) });
    await rig.sim.boot();
    rigs.push(rig);
    const pkg = image(12 * 1024 + 300);
    await upload(e2e, FACTORY.title, '1.4.0', pkg, 'MURMUR3_128');
    await assign(e2e, 'ota-mqtts-x509', FACTORY.title, '1.4.0');
    await check(rig, 'ota-mqtts-x509', '1.4.0', pkg);
  });

  it('through the lossy TCP proxy (seeded cuts inside and between packets): updated, image identical', async () => {
    const proxy = new LossyProxy({ targetPort: e2e.server.mqtt!.port!, seed: 42, maxCuts: 6, cutWithin: 30, midPacket: 0.5 });
    proxies.push(proxy);
    await proxy.start();
    const rig = await otaRig(e2e, 'ota-mqtt-lossy', {
      transport: 'mqtt',
      server: { host: '127.0.0.1', port: proxy.port },
      mqtt: { reconnect: { initialMs: 50, maxMs: 400 }, responseTimeoutMs: 5000 },
      otaOptions: { chunkSize: 1024, responseTimeoutMs: 1000 },
    });
    rigs.push(rig);
    const pkg = image(20 * 1024 + 17);
    await upload(e2e, FACTORY.title, '1.5.0', pkg, 'SHA256');
    await assign(e2e, 'ota-mqtt-lossy', FACTORY.title, '1.5.0');
    await check(rig, 'ota-mqtt-lossy', '1.5.0', pkg);
    assert.equal(proxy.stats.cuts, 6, 'every cut was used');
  });
});
