/* The simulator's live trace never shows a secret: tokens in paths, provisioning secrets, issued credentials. */
import { strict as assert } from 'node:assert';
import { buildUriOptions, encode } from '../../src/coap/codec';
import { CoapType } from '../../src/coap/types';
import { encodeUtf8 } from '../../src/coap/utf8';
import { describeDatagram, redactPath } from '../../tools/sim/trace';

function message(path: string, payload: string, code = 0x02): Uint8Array {
  return encode({ type: CoapType.CON, code, messageId: 1, token: new Uint8Array([1, 2]), options: buildUriOptions(path), payload: encodeUtf8(payload) });
}

describe('sim trace redaction', () => {
  it('masks the access token in /api/v1 and /fw paths, not the provision path', () => {
    assert.equal(redactPath(['api', 'v1', 'SECRET1', 'telemetry']), '/api/v1/***/telemetry');
    assert.equal(redactPath(['fw', 'SECRET2']), '/fw/***');
    assert.equal(redactPath(['api', 'v1', 'provision']), '/api/v1/provision');
    const line = describeDatagram(message('/api/v1/SECRET3/telemetry', '{"t":1}'));
    assert.ok(!line.includes('SECRET3') && line.includes('/api/v1/***/telemetry'), line);
  });

  it('masks provisioning secrets and issued credentials in payloads', () => {
    const req = describeDatagram(message('/api/v1/provision', '{"deviceName":"d","provisionDeviceKey":"k1","provisionDeviceSecret":"s3cr3t"}'));
    assert.ok(!req.includes('s3cr3t') && req.includes('"provisionDeviceSecret":"***"') && req.includes('k1'), req);
    const res = describeDatagram(message('', '{"credentialsValue":"NEWTOKEN","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}', 0x41));
    assert.ok(!res.includes('NEWTOKEN') && res.includes('SUCCESS'), res);
    const claim = describeDatagram(message('/api/v1/***/claim', '{"secretKey":"abc\\"def","durationMs":1}'));
    assert.ok(!claim.includes('abc') && claim.includes('durationMs'), claim);
  });
});
