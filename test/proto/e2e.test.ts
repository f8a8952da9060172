/*
 * Protobuf device profiles end to end: the unchanged firmware app with protoCodec(profile) over
 * real loopback UDP, plain CoAP and CoAPs (one-way with the token, mutual X.509), against the local
 * endpoint decoding with protobufjs (tools/tb-server/proto-profile.ts). Telemetry, attributes,
 * shared-attribute updates, server RPC, the params pitfall, JSON and Protobuf devices side by side.
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { profile as deviceProfile } from '../../src/proto/gen/device';
import { profile as tbDefault } from '../../src/proto/gen/thingsboard-default';
import { protoCodec } from '../../src/thingsboard/proto-codec';
import { RamQueue } from '../../src/storage/queue';
import { makeTestPki } from '../../tools/provision/certs';
import type { ProtoSchemas } from '../../tools/tb-server/proto-profile';
import type { SimDeviceOptions } from '../../tools/sim/device';
import { admin, useEndpoint } from '../helpers/e2e';
import { memoryLog, waitFor } from '../helpers/wait';

const PROFILES = join(__dirname, '../../tools/proto/profiles');
const schemasOf = (dir: string): ProtoSchemas => ({
  telemetry: readFileSync(join(PROFILES, dir, 'telemetry.proto'), 'utf8'),
  attributes: readFileSync(join(PROFILES, dir, 'attributes.proto'), 'utf8'),
  rpcRequest: readFileSync(join(PROFILES, dir, 'rpc-request.proto'), 'utf8'),
  rpcResponse: readFileSync(join(PROFILES, dir, 'rpc-response.proto'), 'utf8'),
});

describe('e2e: Protobuf device profile over CoAP and CoAPs', function () {
  this.timeout(30000);
  const pki = makeTestPki();
  const e2e = useEndpoint(() => ({ dtls: { port: 0, cert: pki.read('server.pem'), key: pki.read('server.key'), ca: pki.read('ca.pem') } }));
  const codec = protoCodec(deviceProfile);

  const transports: [string, (token: string) => Partial<SimDeviceOptions> & Pick<SimDeviceOptions, 'credentials'>][] = [
    ['CoAP', (token) => ({ credentials: { kind: 'token', token } })],
    ['CoAPs (token)', (token) => ({ credentials: { kind: 'token', token }, dtls: { ca: pki.read('ca.pem'), hostname: 'localhost' } })],
  ];

  for (const [name, options] of transports) {
    it(`${name}: telemetry with the device's timestamps, attributes, shared updates, RPC`, async () => {
      const dev = e2e.server.store.createDevice(`proto-${name}`);
      // through the admin API, as `npm run tb-server -- payload NAME protobuf --schemas DIR` does
      const set = await admin(e2e.server, 'PUT', `/api/devices/${encodeURIComponent(dev.name)}/payload`, { transportPayloadType: 'PROTOBUF', ...schemasOf('device') });
      assert.equal(set.status, 200, JSON.stringify(set.json));
      assert.equal(set.json.transportPayloadType, 'PROTOBUF');
      e2e.server.store.setSharedAttributes(dev.id, { reportingInterval: 30 });
      const d = e2e.device({ ...options(dev.token), codec, firmware: { title: 'tb-coap', version: '0.1.0' } });
      await d.app.start();
      const latest = await waitFor('telemetry', () => {
        const t = e2e.server.store.latestTelemetry(dev.id);
        return t.temperature && t.pressure ? t : undefined;
      });
      for (const key of ['temperature', 'humidity', 'pressure', 'batteryVoltage']) assert.equal(typeof latest[key]?.value, 'number', `${key} stored as a number`);
      assert.ok(Math.abs(latest.temperature!.ts - Date.now()) < 5000, 'the device timestamp (ts field) was used');
      assert.equal(String(latest.temperature!.value).length <= 6, true, `float printed as Float.toString does (${latest.temperature!.value})`);
      // client attributes from the attributes schema (JSON names, as ThingsBoard prints them)
      await waitFor('client attributes', () => e2e.server.store.attributes(dev.id).client.currentFwVersion === '0.1.0');
      // the first notification (AttributeUpdateNotificationMsg) carried the shared snapshot
      await waitFor('snapshot applied', () => d.app.intervalMs === 30000);
      // a shared update pushed through Observe
      await admin(e2e.server, 'POST', `/api/devices/${encodeURIComponent(dev.name)}/attributes/shared`, { reportingInterval: 5 });
      await waitFor('interval change', () => d.app.intervalMs === 5000);
      // server RPC: params as a message in the profile's request schema; the reply as JSON text in payload
      const state = await admin(e2e.server, 'POST', `/api/devices/${encodeURIComponent(dev.name)}/rpc`, { method: 'getState', params: {}, timeoutMs: 5000 });
      assert.equal(state.status, 200, JSON.stringify(state.json));
      assert.equal(typeof state.json.response.payload, 'string');
      assert.equal(JSON.parse(state.json.response.payload).reportingInterval, 5);
      const setI = await admin(e2e.server, 'POST', `/api/devices/${encodeURIComponent(dev.name)}/rpc`, { method: 'setInterval', params: { interval: 15 }, timeoutMs: 5000 });
      assert.equal(setI.status, 200, JSON.stringify(setI.json));
      assert.deepEqual(JSON.parse(setI.json.response.payload), { interval: 15 });
      assert.equal(d.app.intervalMs, 15000);
      await waitFor('reported back', () => e2e.server.store.attributes(dev.id).client.reportingInterval === 15);
      // the attribute request answers GetAttributeResponseMsg
      const snap = await d.app.tb.requestAttributes({ clientKeys: ['reportingInterval'], sharedKeys: ['reportingInterval'] });
      assert.deepEqual(snap, { client: { reportingInterval: 15 }, shared: { reportingInterval: 5 } });
    });
  }

  it('CoAPs mutual X.509: telemetry and RPC in Protobuf', async () => {
    const r = await admin(e2e.server, 'POST', '/api/devices', { name: 'proto-x509', certPem: pki.read('device.pem').toString() });
    assert.equal(r.status, 201);
    const dev = e2e.server.store.findDevice('proto-x509')!;
    e2e.server.store.updateDevice(dev, { protobuf: schemasOf('device') });
    const d = e2e.device({
      credentials: { kind: 'x509' },
      dtls: { ca: pki.read('ca.pem'), hostname: 'localhost', cert: pki.read('device.pem'), key: pki.read('device.key') },
      codec,
    });
    await d.app.start();
    await waitFor('telemetry', () => e2e.server.store.latestTelemetry(dev.id).batteryVoltage);
    const res = await admin(e2e.server, 'POST', '/api/devices/proto-x509/rpc', { method: 'setInterval', params: { interval: 20 }, timeoutMs: 5000 });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.equal(d.app.intervalMs, 20000);
  });

  it('the RPC params pitfall with the default schemas: logged by the server, the RPC subscription cancelled', async () => {
    const lines: string[] = [];
    await e2e.server.close();
    await e2e.start({ log: (l) => lines.push(l), dtls: undefined });
    const dev = e2e.server.store.createDevice('proto-default');
    e2e.server.store.updateDevice(dev, { protobuf: schemasOf('thingsboard-default') });
    const log = memoryLog();
    // The default telemetry schema has no pressure/batteryVoltage fields: this device reports only what fits.
    const d = e2e.device({ credentials: { kind: 'token', token: dev.token }, codec: protoCodec(tbDefault), log, sources: () => [{ name: 'sht', read: () => ({ temperature: 21.5, humidity: 40 }) }] });
    await d.app.start();
    await waitFor('telemetry', () => e2e.server.store.latestTelemetry(dev.id).humidity);
    // primitive params go into the string field and come back as JSON
    const ok = await admin(e2e.server, 'POST', '/api/devices/proto-default/rpc', { method: 'setInterval', params: 25, timeoutMs: 5000 });
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.equal(d.app.intervalMs, 25000);
    // object params cannot: ThingsBoard's "Failed to convert device RPC command to CoAP msg", then no RPC reaches the device
    const bad = await admin(e2e.server, 'POST', '/api/devices/proto-default/rpc', { method: 'setInterval', params: { interval: 30 }, timeoutMs: 1500 });
    assert.equal(bad.status, 504);
    assert.ok(lines.some((l) => /Failed to convert device RPC command to CoAP msg/.test(l) && /RPC observe subscription cancelled/.test(l)), lines.join('\n'));
    assert.equal(d.app.intervalMs, 25000);
    assert.equal(e2e.server.service.stateCounts().observations, 1, 'only the attribute observation is left');
  });

  it('JSON and Protobuf devices side by side on one endpoint', async () => {
    const jd = e2e.server.store.createDevice('side-json');
    const pd = e2e.server.store.createDevice('side-proto');
    e2e.server.store.updateDevice(pd, { protobuf: schemasOf('device') });
    const payloads = new Map<string, number[]>();
    e2e.server.events.on('telemetry', (ev: { device: string }) => payloads.set(ev.device, [...(payloads.get(ev.device) ?? []), 1]));
    const j = e2e.device({ credentials: { kind: 'token', token: jd.token } });
    const p = e2e.device({ credentials: { kind: 'token', token: pd.token }, codec });
    let jsonBytes = 0;
    let protoBytes = 0;
    j.udp.tap = (dir, data) => {
      if (dir === 'out' && Buffer.from(data).includes('"temperature"')) jsonBytes = data.length;
    };
    p.udp.tap = (dir, data) => {
      if (dir === 'out' && data.length > 40 && Buffer.from(data).includes('telemetry')) protoBytes = data.length;
    };
    await Promise.all([j.app.start(), p.app.start()]);
    await waitFor('both stored', () => e2e.server.store.latestTelemetry(jd.id).pressure && e2e.server.store.latestTelemetry(pd.id).pressure);
    const jt = e2e.server.store.latestTelemetry(jd.id);
    const pt = e2e.server.store.latestTelemetry(pd.id);
    assert.deepEqual(Object.keys(pt).sort(), Object.keys(jt).sort(), 'same keys from both payload types');
    for (const k of Object.keys(jt)) assert.ok(Math.abs((jt[k]!.value as number) - (pt[k]!.value as number)) < 1, `${k} similar`);
    assert.ok(jsonBytes > 0 && protoBytes > 0, `datagrams seen (json ${jsonBytes}, proto ${protoBytes})`);
    assert.ok(protoBytes < jsonBytes - 60, `Protobuf report smaller (${protoBytes} B vs ${jsonBytes} B JSON)`);
    // shared updates reach each in its own format
    await admin(e2e.server, 'POST', '/api/devices/side-json/attributes/shared', { reportingInterval: 7 });
    await admin(e2e.server, 'POST', '/api/devices/side-proto/attributes/shared', { reportingInterval: 8 });
    await waitFor('both updated', () => j.app.intervalMs === 7000 && p.app.intervalMs === 8000);
  });

  it('replays queued readings one record per POST, each with its own timestamp', async () => {
    const dev = e2e.server.store.createDevice('proto-replay');
    e2e.server.store.updateDevice(dev, { protobuf: schemasOf('device') });
    const queue = new RamQueue(16);
    const t0 = Date.now() - 3600_000;
    for (let i = 0; i < 3; i++) queue.push({ ts: t0 + i * 60_000, values: { temperature: 20 + i, humidity: 40, pressure: 1000, batteryVoltage: 3.7 } });
    const posts: string[] = [];
    e2e.server.events.on('request', (ev: { method: string; path: string; code: string }) => {
      if (ev.method === 'POST' && ev.path.endsWith('/telemetry')) posts.push(ev.code);
    });
    const d = e2e.device({ credentials: { kind: 'token', token: dev.token }, codec, storage: { queue }, replayPaceMs: 10 });
    await d.app.start();
    await waitFor('all stored', () => (e2e.server.store.telemetry(dev.id, ['temperature']).temperature?.length ?? 0) >= 4);
    const points = e2e.server.store.telemetry(dev.id, ['temperature']).temperature!;
    for (let i = 0; i < 3; i++) assert.ok(points.some((p) => p.ts === t0 + i * 60_000 && p.value === 20 + i), `queued reading ${i} stored with its ts`);
    assert.equal(posts.length, 4, 'one POST per record (a Protobuf message carries one)');
    assert.ok(posts.every((c) => c === '2.01'), posts.join(','));
    assert.equal(queue.length, 0);
  });

  it('client RPC, claim and provisioning in ThingsBoard\'s fixed messages', async () => {
    const dev = e2e.server.store.createDevice('proto-fixed');
    e2e.server.store.updateDevice(dev, { protobuf: schemasOf('device') });
    const d = e2e.device({ credentials: { kind: 'token', token: dev.token }, codec });
    // client-side RPC: TransportApiProtos.RpcRequest up, ToServerRpcResponseMsg down (the endpoint's rule: getTime)
    const r = (await d.app.tb.callRpc('getTime', {})) as { time: number };
    assert.ok(Math.abs(r.time - Date.now()) < 5000, JSON.stringify(r));
    // claim: TransportApiProtos.ClaimDevice
    await d.app.tb.claim('s3cret', 60000);
    const claim = e2e.server.store.findDevice('proto-fixed')!.claim!;
    assert.equal(claim.secretKey, 's3cret');
    assert.ok(claim.expiresAt > Date.now() + 50000);
    // provisioning: ProvisionDeviceRequestMsg (ThingsBoard falls back to it when the body is not JSON)
    e2e.server.store.addProfile({ key: 'pk', secret: 'ps', strategy: 'ALLOW_CREATE_NEW_DEVICES' });
    const res = await d.app.tb.provision({ provisionDeviceKey: 'pk', provisionDeviceSecret: 'ps', deviceName: 'proto-new', token: 'proto-new-token' });
    assert.deepEqual(res, { credentialsType: 'ACCESS_TOKEN', credentialsValue: 'proto-new-token' });
    assert.equal(e2e.server.store.findDevice('proto-new')!.token, 'proto-new-token');
    await assert.rejects(d.app.tb.provision({ provisionDeviceKey: 'pk', provisionDeviceSecret: 'wrong' }), /4\.00.*NOT_FOUND/);
  });

  it('a payload that is not a message of the profile schema is 4.00; a JSON body to a Protobuf device too', async () => {
    const dev = e2e.server.store.createDevice('proto-bad');
    e2e.server.store.updateDevice(dev, { protobuf: schemasOf('device') });
    const codes: string[] = [];
    e2e.server.events.on('request', (ev: { code: string; method: string; path: string }) => {
      if (ev.method === 'POST' && ev.path.endsWith('/telemetry')) codes.push(ev.code);
    });
    const d = e2e.device({ credentials: { kind: 'token', token: dev.token } }); // JSON codec on a Protobuf profile
    await assert.rejects(d.app.tb.sendTelemetry({ ts: Date.now(), values: { temperature: 21.5 } }), /4\.00/);
    await assert.rejects(d.app.tb.sendTelemetry({ temperature: 21.5 }), /4\.00/);
    assert.deepEqual(codes, ['4.00', '4.00']);
    assert.deepEqual(e2e.server.store.latestTelemetry(dev.id), {});
  });

  it('admin rejects a schema that does not parse, and can switch a device back to JSON', async () => {
    e2e.server.store.createDevice('proto-admin');
    const bad = await admin(e2e.server, 'PUT', '/api/devices/proto-admin/payload', { transportPayloadType: 'PROTOBUF', telemetry: 'syntax = "proto3"; message {' });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error ?? JSON.stringify(bad.json), /telemetry schema/);
    const def = await admin(e2e.server, 'PUT', '/api/devices/proto-admin/payload', { transportPayloadType: 'PROTOBUF' });
    assert.equal(def.status, 200);
    const got = await admin(e2e.server, 'GET', '/api/devices/proto-admin/payload');
    assert.match(got.json.schemas.telemetry, /SensorDataReading/, 'ThingsBoard defaults when none given');
    const back = await admin(e2e.server, 'PUT', '/api/devices/proto-admin/payload', { transportPayloadType: 'JSON' });
    assert.equal(back.json.transportPayloadType, 'JSON');
    assert.equal(e2e.server.store.findDevice('proto-admin')!.protobuf, undefined);
  });
});
