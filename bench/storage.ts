/*
 * Flash wear of the offline queue (src/storage/queue.ts): programs and erases per reported
 * reading, and the projected life of the queue region at 100k erase cycles per block for one
 * reading a minute (target: 10 years for 64 KB).
 *
 * Drives FlashQueue the way DeviceApp does: every reading is appended before it is sent
 * (write-ahead); online, each report confirms one reading (one mark record); after an outage the
 * backlog goes in batches of 10, one mark per batch. Realistic values from the simulated board.
 */
import { MemFlash } from '../tools/sim/flash';
import { FlashQueue } from '../src/storage/queue';

const MINUTES_PER_YEAR = 365.25 * 24 * 60;
const CYCLES = 100_000;
const QUEUE_BYTES = 64 * 1024;

interface Result {
  name: string;
  readings: number;
  programsPerReading: number;
  erasesPerReading: number;
  bytesPerReading: number;
  years: number;
}

function simulate(name: string, readings: number, offlineEvery: number, offlineLength: number): Result {
  const flash = new MemFlash(QUEUE_BYTES, 4096);
  const q = new FlashQueue(flash, { writeSize: 4 });
  const values = (i: number) => ({ temperature: 22.41 + (i % 7) / 100, humidity: 45.3 + (i % 5) / 10, pressure: 1013.25, batteryVoltage: 3.71 });
  const t0 = 1_767_225_600_000;
  for (let i = 0; i < readings; i++) {
    q.push({ ts: t0 + i * 60_000, values: values(i) });
    const offline = offlineEvery > 0 && i % offlineEvery < offlineLength;
    if (offline) continue;
    // Online again: the backlog in batches of 10, then this reading alone (as DeviceApp flushes).
    for (let guard = 0; q.length > 0 && guard < 100_000; guard++) {
      const batch = q.peek(10);
      if (!batch.length) break;
      q.confirm(batch[batch.length - 1]!.seq);
    }
  }
  const maxErases = Math.max(...flash.stats.eraseCounts);
  const erasesPerBlockPerReading = maxErases / readings;
  return {
    name,
    readings,
    programsPerReading: flash.stats.writes / readings,
    erasesPerReading: flash.stats.erases / readings,
    bytesPerReading: flash.stats.bytesWritten / readings - (flash.stats.erases * 4096) / readings,
    years: CYCLES / (erasesPerBlockPerReading * MINUTES_PER_YEAR),
  };
}

export async function run(): Promise<void> {
  const week = 7 * 24 * 60;
  const results = [
    simulate('always online (each reading confirmed alone)', week * 4, 0, 0),
    simulate('offline 6 h a day (backlog in batches of 10)', week * 4, 24 * 60, 6 * 60),
    simulate('always offline (ring wraps, oldest dropped)', week, 1, 1),
  ];
  console.log(`  queue region ${QUEUE_BYTES / 1024} KB (16 blocks of 4 KB, 4 B write unit), one reading a minute, ${CYCLES / 1000}k erase cycles`);
  console.log('  scenario                                          programs/reading  erases/reading  bytes/reading  projected life');
  for (const r of results)
    console.log(`  ${r.name.padEnd(50)}${r.programsPerReading.toFixed(3).padStart(16)}${r.erasesPerReading.toFixed(4).padStart(16)}${r.bytesPerReading.toFixed(0).padStart(15)}${`${r.years.toFixed(0)} years`.padStart(16)}`);
  const worst = Math.min(...results.slice(0, 2).map((r) => r.years));
  console.log(`  projected life of the 64 KB queue at a reading a minute: ${worst.toFixed(0)} years (target 10) -> ${(worst / 10).toFixed(1)}x the target`);
}

if (require.main === module) void run();
