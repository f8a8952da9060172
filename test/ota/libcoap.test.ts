/*
 * libcoap's coap-client (the client the ThingsBoard docs use; Debian libcoap3-bin) downloads the
 * same package from the local endpoint as the firmware does: whole (Block2) and chunk by chunk
 * (?size=&chunk=, as the firmware asks), byte for byte the package, and what the device booted.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useEndpoint } from '../helpers/e2e';
import { waitFor } from '../helpers/wait';
import { coapClient } from '../tb-server/helpers';
import { assign, FACTORY, image, otaRig, upload } from './helpers';

describe('ota: coap-client-notls gets the bytes the firmware got', function () {
  this.timeout(60_000);
  const e2e = useEndpoint();
  let dir = '';
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'ota-libcoap-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('chunks of 512 and 1024 and the whole image (Block2) from /fw/$TOKEN equal the package and the booted image', async () => {
    const rig = await otaRig(e2e, 'ota-libcoap');
    try {
      const pkg = image(5 * 1024 + 300);
      await upload(e2e, FACTORY.title, '1.4.0', pkg, 'SHA512');
      await assign(e2e, 'ota-libcoap', FACTORY.title, '1.4.0');
      const token = e2e.server.store.findDevice('ota-libcoap')!.token;
      const base = `coap://127.0.0.1:${e2e.server.coapPort}/fw/${token}?title=${FACTORY.title}&version=1.4.0`;
      const chunks = async (url: string, size: number): Promise<Buffer> => {
        const parts: Buffer[] = [];
        for (let i = 0; i < Math.ceil(pkg.length / size); i++) {
          const f = join(dir, `chunk-${size}-${i}.bin`);
          await coapClient(['-m', 'get', '-o', f, `${url}&size=${size}&chunk=${i}`]);
          parts.push(readFileSync(f));
        }
        return Buffer.concat(parts);
      };
      // ThingsBoard timing (empty ACK, then a separate response): chunks below 1024 B, which the
      // endpoint's node-coap sends without Block2 (libcoap 4.3.1 drops Block2 in a separate response)
      const parts = await chunks(base, 512);
      assert.deepEqual(parts, pkg, 'chunk by chunk (512)');
      await waitFor('device updated', () => rig.slots.running().version === '1.4.0' && !rig.slots.running().trial, 40_000);
      assert.deepEqual(Buffer.from(rig.slots.runningImage()), parts, 'the firmware booted what coap-client downloaded');
      // The whole image through Block2: libcoap 4.3.1 drops Block2 in a separate response
      // (docs/tb-server.md), so the endpoint answers piggybacked for this one.
      rig.sim.stop();
      await e2e.server.close();
      await e2e.start({ conResponses: 'piggyback' });
      const whole = join(dir, 'whole.bin');
      const piggy = `coap://127.0.0.1:${e2e.server.coapPort}/fw/${token}?title=${FACTORY.title}&version=1.4.0`;
      await coapClient(['-m', 'get', '-o', whole, piggy], 20_000);
      assert.deepEqual(readFileSync(whole), pkg, 'whole image via Block2');
      assert.deepEqual(await chunks(piggy, 1024), pkg, 'chunk by chunk (1024, the firmware\'s size)');
    } finally {
      rig.sim.stop();
    }
  });
});
