/*
 * Runs every benchmark in turn: `npm run bench` (npx tsx bench/run.ts).
 * Add a bench by importing its run() and appending it to the list.
 */
import { run as coapCodec } from './coap-codec';
import { run as dtlsBytes } from './dtls-bytes';
import { run as storage } from './storage';
import { run as mqttCodec } from './mqtt-codec';
import { run as mqttBytes } from './mqtt-bytes';
import { run as proto } from './proto';
import { run as ota } from './ota';
import { run as power } from './power';

const benches: [name: string, run: () => Promise<void>][] = [
  ['coap-codec', coapCodec],
  ['dtls-bytes', dtlsBytes],
  ['storage', storage],
  ['mqtt-codec', async () => void (await mqttCodec())],
  ['mqtt-bytes', async () => void (await mqttBytes())],
  ['proto', proto],
  ['ota', ota],
  ['power', power],
];

async function main(): Promise<void> {
  for (const [name, run] of benches) {
    console.log(`\n== ${name} ==`);
    await run();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
