// src/mqtt on the real XS engine (xsnap-worker, see docs/xs.md): the same scenario on XS and on
// Node must give the same bytes, verdicts and client behaviour. Fails (never skips) without xsnap.
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { assertWorker, bundle, runOnXs } from '../../tools/xs/run';
import type { Outcome } from '../xs/fixtures/harness';
import * as fixture from './fixtures/xs-mqtt';

describe('src/mqtt on XS', function () {
  this.timeout(90000);
  it('codec and client behave on XS exactly as on Node', async () => {
    assertWorker();
    const { code } = await bundle(path.join(__dirname, 'fixtures', 'xs-mqtt.ts'));
    const run = await runOnXs<Outcome<ReturnType<typeof fixture.scenario>>>(code, { timeoutMs: 30000 });
    const out = run.value;
    if (!out.ok) assert.fail(`threw on XS: ${out.error?.name}: ${out.error?.message}\n${out.error?.stack ?? ''}\n${run.output}`);
    const node = JSON.parse(JSON.stringify(fixture.scenario()));
    assert.deepEqual(out.value, node);
    // and the behaviour itself
    assert.deepEqual(node.errors, ['closed:', 'malformed:', 'refused:5']);
    assert.equal(node.state, 'stopped');
    assert.equal(node.connections, 3);
    assert.deepEqual(node.got, ['v1/devices/me/attributes=7b227265706f7274696e67496e74657276616c223a357d']);
    assert.ok(node.codec.malformed.every((v: string) => v === 'MqttError:malformed'), node.codec.malformed.join());
    const second: string[] = node.sent[1];
    assert.ok(second.some((h) => h.startsWith('3a')), 'QoS 1 PUBLISH re-sent with DUP (0x3a) on the second connection');
    assert.ok(second.some((h) => h.startsWith('82')), 'SUBSCRIBE again after the second CONNACK');
  });
});
