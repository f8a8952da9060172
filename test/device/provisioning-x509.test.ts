/*
 * X.509 network provisioning (src/device/provisioning.ts) against ThingsBoard's rules (the local
 * endpoint's provisionDevice, in process), with a power cut injected at every program/erase step of
 * the credential writes it makes ('pending' before asking, 'done' after the answer): after the
 * reboot the record is the old or the new one (never neither), and the device ends provisioned with
 * exactly one device at the server holding its certificate.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemFlash, PowerCut } from '../../tools/sim/flash';
import { makeTestPki } from '../../tools/provision/certs';
import { Store, certSha3FromPem, provisionDevice } from '../../tools/tb-server/store';
import { openDeviceStorage } from '../../src/storage/index';
import type { StoredCredentials } from '../../src/storage/credentials';
import { ProvisionBackoff, confirmProvisioned, needsProvisioning, provision } from '../../src/device/provisioning';
import type { ProvisionOutcome } from '../../src/device/provisioning';
import type { ProvisionRequest, ProvisionResult } from '../../src/thingsboard/payload';
import { TbError } from '../../src/thingsboard/errors';
import { memoryLog } from '../helpers/wait';

const BS = 4096;
const LAYOUT = { kvBlocks: 4, sectorBlocks: 2, writeSize: 4 };
const BLOCKS = 8;
const random = { fill: (b: Uint8Array) => void b.fill(7), next: () => 0.5 };

describe('device: X.509 provisioning (ThingsBoard rules, power cuts)', function () {
  this.timeout(120000);
  const pki = makeTestPki();
  const cert = pki.read('device.pem').toString();
  const record: StoredCredentials = {
    server: 'mqtts://localhost:8883',
    ca: pki.read('ca.pem').toString(),
    cert,
    key: pki.read('device.key').toString(),
    provisionKey: 'pk-x509',
    provisionSecret: 'ps-x509',
  };
  let dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    dirs = [];
  });

  /** A ThingsBoard stand-in: the endpoint's provisioning rules on a fresh store, answering as the MQTT client reports them. */
  function server(strategy: 'ALLOW_CREATE_NEW_DEVICES' | 'CHECK_PRE_PROVISIONED_DEVICES' = 'ALLOW_CREATE_NEW_DEVICES') {
    const dir = mkdtempSync(join(tmpdir(), 'prov-x509-'));
    dirs.push(dir);
    const store = new Store(dir);
    store.addProfile({ key: 'pk-x509', secret: 'ps-x509', strategy });
    const requests: ProvisionRequest[] = [];
    const tb = {
      async provision(req: ProvisionRequest): Promise<ProvisionResult> {
        requests.push(req);
        const r = provisionDevice(store, { ...req }, () => 'generated-name');
        if (r.status === 'SUCCESS') return { credentialsType: r.credentialsType, credentialsValue: r.credentialsValue };
        throw new TbError('bad-request', `provision: ${r.status}: ${r.errorMsg}`);
      },
    };
    return { store, tb, requests };
  }

  function flashWith(c: StoredCredentials): MemFlash {
    const f = new MemFlash(BLOCKS * BS, BS);
    openDeviceStorage(f, LAYOUT).credentials.save(c);
    return f;
  }

  /** Boots until provisioned: provision(), and for 'unverified' the server's acceptance of the certificate (as DeviceApp does on its first accepted request). */
  async function bootUntilProvisioned(f: MemFlash, srv: ReturnType<typeof server>): Promise<ProvisionOutcome[]> {
    const cfg = { store: openDeviceStorage(f, LAYOUT).credentials, deviceName: 'x509-dev' };
    const outcomes: ProvisionOutcome[] = [];
    for (let i = 0; i < 3 && needsProvisioning(cfg.store.load()); i++) {
      const o = await provision(srv.tb, cfg, random, memoryLog());
      outcomes.push(o);
      if (o.kind === 'unverified' && srv.store.byCertSha3(certSha3FromPem(cert))) confirmProvisioned(cfg, memoryLog());
    }
    return outcomes;
  }

  it('sends credentialsType X509_CERTIFICATE with the certificate as hash, saves pending first, done on success', async () => {
    const srv = server();
    const f = flashWith(record);
    const log = memoryLog();
    const store = openDeviceStorage(f, LAYOUT).credentials;
    let stateWhenAsked: string | undefined;
    const tb = { provision: (r: ProvisionRequest) => ((stateWhenAsked = store.load().provisionState), srv.tb.provision(r)) };
    const o = await provision(tb, { store, deviceName: 'x509-dev' }, random, log);
    assert.deepEqual(o, { kind: 'done', credentials: { kind: 'x509' }, token: '' });
    assert.equal(stateWhenAsked, 'pending', 'pending saved before asking');
    const req = srv.requests[0]!;
    assert.equal(req.credentialsType, 'X509_CERTIFICATE');
    assert.equal(req.token, undefined);
    assert.equal(req.hash, cert.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, ''));
    assert.equal(store.load().provisionState, 'done');
    assert.equal(store.load().token, undefined, 'no token for an X.509 device');
    assert.equal(srv.store.findDevice('x509-dev')!.certSha3, certSha3FromPem(cert));
    assert.match(log.lines.join('\n'), /provisioned as x509-dev: X\.509 certificate registered, state saved in flash/);
    assert.ok(!log.lines.join('\n').includes('ps-x509'));
    assert.equal(needsProvisioning(store.load()), false);
  });

  it('NOT_FOUND is a refusal with a clear reason, FAILURE tries the certificate; the back-off doubles to its cap', async () => {
    const srv = server();
    const wrong = flashWith({ ...record, provisionSecret: 'wrong' });
    const o = await provision(srv.tb, { store: openDeviceStorage(wrong, LAYOUT).credentials, deviceName: 'x509-dev' }, random, memoryLog());
    assert.deepEqual(o, { kind: 'refused', reason: 'provisioning refused: the server does not know this provisioning key/secret (NOT_FOUND)' });
    // the certificate already belongs to another device: FAILURE (first attempt, so not 'unverified')
    srv.store.createDevice('someone-else', { certSha3: certSha3FromPem(cert) });
    const o2 = await provision(srv.tb, { store: openDeviceStorage(flashWith(record), LAYOUT).credentials, deviceName: 'x509-dev' }, random, memoryLog());
    // X.509: a FAILURE may mean the certificate is registered already: the device tries it (the app
    // backs off when the server does not know it, test/e2e/provisioning-x509)
    assert.deepEqual(o2, { kind: 'unverified', credentials: { kind: 'x509' }, token: '' });
    const b = new ProvisionBackoff({ first: 100, max: 350 });
    assert.deepEqual([b.refused(0), b.refused(0), b.refused(0), b.refused(0)], [100, 200, 350, 350]);
    assert.equal(b.waiting(349), true);
    assert.equal(b.waiting(350), false);
  });

  it('a power cut at every program/erase step of the provisioning writes: old or new record, never neither, and the device ends provisioned once', async () => {
    let cuts = 0;
    let totalOps = 0;
    let erases = 0;
    const seen = new Set<string>();
    // From a fresh partition, and from ones where earlier writes of the record fill the key/value
    // region so that provisioning's writes compact it (erase + copy).
    for (let prefill = 0; prefill <= 3; prefill++) {
      const probe = flashWith(record);
      for (let i = 0; i < prefill; i++) openDeviceStorage(probe, LAYOUT).credentials.save(record);
      const base = probe.snapshot();
      // Dry run, recording the length of each program/erase provisioning makes.
      const lengths: number[] = [];
      const write = probe.write.bind(probe);
      const erase = probe.erase.bind(probe);
      probe.write = (o, d) => (lengths.push(d.length), write(o, d));
      probe.erase = (b) => (lengths.push(BS), erases++, erase(b));
      await bootUntilProvisioned(probe, server());
      totalOps += lengths.length;
      for (let op = 1; op <= lengths.length; op++) {
        const L = lengths[op - 1]!;
        // 0..3 bytes, every 4th up to 64, every 64th, and the whole operation (the power goes right after it)
        for (let bytes = 0; bytes <= L; bytes = bytes === L ? L + 1 : Math.min(L, bytes + (bytes < 4 ? 1 : bytes < 64 ? 4 : 64))) {
          const srv = server();
          const f = new MemFlash(BLOCKS * BS, BS, base);
          f.cutAt = { op, bytes };
          let cut = false;
          try {
            await bootUntilProvisioned(f, srv);
          } catch (e) {
            if (!(e instanceof PowerCut)) throw e;
            cut = true;
          }
          assert.ok(cut, `op ${op} was reached (${JSON.stringify(lengths)}, ran ${f.stats.ops} ops)`);
          cuts++;
          // Reboot from what reached the flash.
          const g = new MemFlash(BLOCKS * BS, BS, f.snapshot());
          const c = openDeviceStorage(g, LAYOUT).credentials.load(); // throws if neither record survived
          assert.equal(c.cert, cert);
          seen.add(c.provisionState ?? 'none');
          const outcomes = await bootUntilProvisioned(g, srv);
          const after = openDeviceStorage(g, LAYOUT).credentials.load();
          assert.equal(after.provisionState, 'done', `prefill ${prefill}, cut at op ${op} + ${bytes} B: ${JSON.stringify(outcomes)}`);
          const holders = srv.store.listDevices().filter((d) => d.certSha3 === certSha3FromPem(cert));
          assert.equal(holders.length, 1, 'one device holds the certificate');
          assert.equal(holders[0]!.name, 'x509-dev');
        }
      }
    }
    console.log(`      X.509 provisioning: ${cuts} power-cut points over ${totalOps} flash operations (${erases} erases), states after reboot: ${[...seen].join(', ')}; none lost the record`);
    assert.ok(erases > 0, 'some runs compacted');
    assert.ok(seen.has('pending') && seen.has('none'), 'cuts before and after the pending write');
  });
});
