/*
 * The C core on its own: test/dtls/core_check.c (two dtls_core endpoints in memory, the server side
 * run the way DtlsServer runs it) compiled with -Wall -Werror against the system Mbed TLS and run.
 * The same program is what docs/dtls.md builds against Mbed TLS 3.6 and 4.0.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { testPki } from './helpers';

describe('dtls: the C core alone (core_check.c against the system mbedTLS)', function () {
  this.timeout(60000);

  it('full handshake via a stateless HelloVerifyRequest, hostile datagrams, flood, cookie-less resumption, close_notify', () => {
    const root = path.resolve(__dirname, '../..');
    const cc = process.env.CC ?? 'cc';
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'dtls-core-'));
    try {
      const exe = path.join(tmp, 'core_check');
      const build = spawnSync(
        cc,
        ['-std=gnu11', '-Wall', '-Werror', `-I${path.join(root, 'hardware/dtls')}`, path.join(root, 'test/dtls/core_check.c'),
          path.join(root, 'hardware/dtls/dtls_core.c'), '-lmbedtls', '-lmbedx509', '-lmbedcrypto', '-o', exe],
        { encoding: 'utf8', timeout: 60000 },
      );
      assert.equal(build.status, 0, `${cc} failed (needs a C compiler and libmbedtls-dev):\n${build.stderr}${build.stdout}`);
      const run = spawnSync(exe, [testPki().dir], { encoding: 'utf8', timeout: 30000 });
      assert.equal(run.signal, null, `core_check died of ${run.signal}:\n${run.stdout}${run.stderr}`);
      assert.equal(run.status, 0, run.stdout + run.stderr);
      assert.match(run.stdout, /all passed/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
