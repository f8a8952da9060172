/*
 * The Moddable manifest's own rules, the kinds of mistake that only a real mcconfig build showed
 * (issue 7): TypeScript modules preloaded by name (mcconfig's wildcard preload entries match
 * JavaScript only, so `coap/*` preloads nothing written in TypeScript), the lin link line (mcconfig
 * escapes spaces in LIBRARIES), platforms that are not built say so, and every src module the
 * firmware imports is named by the manifest (the XS host fails the run otherwise: test/xs).
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildFirmware, ROOT } from '../../tools/xs/manifest';

const json = (p: string) => JSON.parse(readFileSync(join(ROOT, p), 'utf8'));

describe('Moddable manifest (manifest.json and its sub-manifests)', () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'manifest-test-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('preloads every TypeScript module of the firmware by name, except main (lin plan, as mcconfig resolves it)', () => {
    const plan = buildFirmware({ manifest: join(ROOT, 'manifest.json'), outDir: join(dir, 'build'), overrides: { token: 'T' } });
    const ts = [...plan.modules.values()].filter((m) => m.kind === 'ts' && m.specifier !== plan.main).map((m) => m.specifier);
    assert.ok(ts.length > 20, `found ${ts.length} TypeScript modules`);
    const missing = ts.filter((s) => !plan.preloads.includes(s));
    assert.deepEqual(missing, [], `not preloaded (list them by name in manifest.json "preload": wildcards match JavaScript only)`);
  });

  it('uses no wildcard preload entry for a TypeScript module directory', () => {
    const m = json('manifest.json');
    const wild = (m.preload as string[]).filter((p) => p.includes('*'));
    assert.deepEqual(wild, []);
  });

  it('links mbedTLS on lin with one -Wl, argument (mcconfig escapes spaces in LIBRARIES)', () => {
    const d = json('hardware/dtls/manifest.json');
    const libs: string = d.platforms.lin.build.LIBRARIES;
    assert.doesNotMatch(libs, /\s/);
    for (const l of ['-lmbedtls', '-lmbedx509', '-lmbedcrypto']) assert.ok(libs.split(',').includes(l), libs);
  });

  it('builds for esp32 and lin, and stops nrf52 and the rest with a message', () => {
    const m = json('manifest.json');
    assert.ok(m.platforms.esp32 && !m.platforms.esp32.error);
    assert.ok(m.platforms.lin && !m.platforms.lin.error);
    assert.match(m.platforms.nrf52.error, /AT.modem/);
    assert.match(m.platforms['...'].error, /esp32/);
    assert.equal(m.platforms.esp32.build.PARTITIONS_FILE, './hardware/esp32/partitions.csv');
    assert.ok(m.creation.stack >= 1024, 'the JS stack peak measured on the XS host is 749 slots');
  });

  it('has a storage partition of 80 KB on ESP32 that fits the 4 MB flash after the app', () => {
    const rows = readFileSync(join(ROOT, 'hardware/esp32/partitions.csv'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#'))
      .map((l) => l.split(',').map((c) => c.trim()));
    const storage = rows.find((r) => r[0] === 'storage');
    assert.ok(storage, 'storage partition');
    assert.equal(storage[1], 'data');
    assert.equal(parseInt(storage[4]!, 16), 80 * 1024);
    let end = 0;
    for (const r of rows) {
      const off = parseInt(r[3]!, 16);
      assert.ok(off >= end, `${r[0]} overlaps the partition before it`);
      end = off + parseInt(r[4]!, 16);
    }
    assert.ok(end <= 4 * 1024 * 1024);
  });

  it('has the two-OTA layout on ESP32 (otadata, ota_0, ota_1 of one size on 64 KB boundaries), storage still at 0x3E0000', () => {
    const rows = readFileSync(join(ROOT, 'hardware/esp32/partitions.csv'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#'))
      .map((l) => l.split(',').map((c) => c.trim()));
    const get = (name: string) => rows.find((r) => r[0] === name);
    assert.deepEqual(get('otadata')?.slice(1, 3), ['data', 'ota']);
    assert.equal(parseInt(get('otadata')![4]!, 16), 0x2000);
    assert.ok(!get('factory'), 'no factory app: ESP-IDF rolls back between ota_0 and ota_1');
    const apps = ['ota_0', 'ota_1'].map((n) => get(n)!);
    for (const a of apps) {
      assert.deepEqual(a.slice(1, 3), ['app', a[0]]);
      assert.equal(parseInt(a[3]!, 16) % 0x10000, 0, `${a[0]} on a 64 KB boundary`);
    }
    assert.equal(apps[0]![4], apps[1]![4], 'both slots take the same image');
    assert.ok(parseInt(apps[0]![4]!, 16) >= 1536 * 1024, 'room for the firmware image');
    assert.equal(parseInt(get('storage')![3]!, 16), 0x3e0000, 'provisioning images are written at 0x3E0000');
  });

  it('switches on ESP-IDF app rollback through the esp32 sdkconfig fragment, and maps the OTA modules per platform', () => {
    const m = json('manifest.json');
    const dir = m.platforms.esp32.build.SDKCONFIGPATH as string;
    assert.ok(dir, 'platforms.esp32.build.SDKCONFIGPATH');
    const defaults = readFileSync(join(ROOT, dir, 'sdkconfig.defaults'), 'utf8');
    assert.match(defaults, /^CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE=y$/m);
    assert.equal(m.platforms.esp32.modules['ota/platform'], './src/platform/moddable/esp32/ota');
    assert.equal(m.platforms.lin.modules['ota/platform'], './src/platform/moddable/lin/ota');
    assert.ok((m.include as string[]).includes('./hardware/ota/manifest.json'));
    const ota = json('hardware/ota/manifest.json');
    assert.ok(ota.platforms.esp32.modules['ota/native']);
    assert.ok((ota.platforms.esp32.include as string[]).some((i) => i.endsWith('modules/crypt/digest/manifest.json')), 'native MD5/SHA on esp32');
    for (const p of ['ota/agent', 'ota/hash', 'ota/store', 'ota/platform']) assert.ok((m.preload as string[]).includes(p), p);
  });
});
