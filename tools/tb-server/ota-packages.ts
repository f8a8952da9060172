// Firmware packages as ThingsBoard keeps them: uploaded once (title, version, checksum algorithm;
// the checksum computed as ThingsBoard prints it, or given by the uploader), assigned to devices
// (which sets the fw_* shared attributes and notifies observers), and each device's fw_state history
// from the telemetry it reported. Packages persist in DIR/ota-packages.json.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { createChecksum, isChecksumAlgorithm } from '../../src/ota/hash';
import type { ChecksumAlgorithm } from '../../src/ota/hash';
import type { Device, JsonObject, Store } from './store';
import { StoreError } from './store';
import type { TbCoapService } from './handler';

export interface OtaPackageInfo {
  type: 'fw' | 'sw';
  title: string;
  version: string;
  size: number;
  checksumAlgorithm: ChecksumAlgorithm;
  checksum: string;
}

interface StoredPackage extends OtaPackageInfo {
  data: string;
}

/**
 * The checksum ThingsBoard would store (Guava's HashCode.toString()): MD5/SHA-* by node:crypto,
 * CRC32 by node:zlib (int bytes little-endian); MURMUR3_* have no Node implementation and use the
 * device's src/ota/hash.ts (checked against murmurhash3js-revisited in test/ota/hash.test.ts).
 */
export function otaChecksum(algorithm: ChecksumAlgorithm, data: Uint8Array): string {
  switch (algorithm) {
    case 'MD5': return createHash('md5').update(data).digest('hex');
    case 'SHA256': return createHash('sha256').update(data).digest('hex');
    case 'SHA384': return createHash('sha384').update(data).digest('hex');
    case 'SHA512': return createHash('sha512').update(data).digest('hex');
    case 'CRC32': {
      const b = Buffer.alloc(4);
      b.writeUInt32LE((zlib as unknown as { crc32(d: Uint8Array): number }).crc32(data) >>> 0);
      return b.toString('hex');
    }
    default: {
      const h = createChecksum(algorithm);
      h.update(data);
      return h.digestHex();
    }
  }
}

export class OtaLibrary {
  readonly #file: string;
  #packages: StoredPackage[];

  constructor(dataDir: string) {
    this.#file = join(dataDir, 'ota-packages.json');
    this.#packages = existsSync(this.#file) ? (JSON.parse(readFileSync(this.#file, 'utf8')) as StoredPackage[]) : [];
  }

  /** Adds (or replaces) a package. `checksum` given by the uploader is kept as is, as ThingsBoard does. */
  upload(b: { type?: 'fw' | 'sw'; title: string; version: string; data: Buffer; checksumAlgorithm?: string; checksum?: string }): OtaPackageInfo {
    const algorithm = b.checksumAlgorithm ?? 'SHA256';
    if (!isChecksumAlgorithm(algorithm)) throw new StoreError(400, `checksumAlgorithm must be one of MD5, SHA256, SHA384, SHA512, CRC32, MURMUR3_32, MURMUR3_128`);
    if (!b.title || !b.version) throw new StoreError(400, 'title and version are required');
    if (!b.data.length) throw new StoreError(400, 'empty package');
    const pkg: StoredPackage = {
      type: b.type ?? 'fw', title: b.title, version: b.version, size: b.data.length, checksumAlgorithm: algorithm,
      checksum: (b.checksum ?? otaChecksum(algorithm, b.data)).toLowerCase(), data: b.data.toString('base64'),
    };
    this.#packages = this.#packages.filter((x) => !(x.type === pkg.type && x.title === pkg.title && x.version === pkg.version));
    this.#packages.push(pkg);
    writeFileSync(`${this.#file}.tmp`, JSON.stringify(this.#packages));
    renameSync(`${this.#file}.tmp`, this.#file);
    return info(pkg);
  }

  list(): OtaPackageInfo[] {
    return this.#packages.map(info);
  }

  get(type: 'fw' | 'sw', title: string, version: string): StoredPackage | undefined {
    return this.#packages.find((x) => x.type === type && x.title === title && x.version === version);
  }

  /** Assigns a package to a device: served on /fw (/sw), fw_* shared attributes set, observers notified. */
  assign(store: Store, service: TbCoapService, d: Device, pkg: StoredPackage): JsonObject {
    const t = pkg.type;
    store.setOta(d.id, { type: t, title: pkg.title, version: pkg.version, data: pkg.data, checksumAlgorithm: pkg.checksumAlgorithm, checksum: pkg.checksum });
    const attrs: JsonObject = {
      [`${t}_title`]: pkg.title, [`${t}_version`]: pkg.version, [`${t}_size`]: pkg.size,
      [`${t}_checksum_algorithm`]: pkg.checksumAlgorithm, [`${t}_checksum`]: pkg.checksum,
    };
    store.setSharedAttributes(d.id, attrs);
    service.sharedAttributesChanged(d, attrs, []);
    // What ThingsBoard writes when it queues an update (reference §1.3).
    store.saveTelemetry(d.id, [{ ts: Date.now(), values: { [`target_${t}_title`]: pkg.title, [`target_${t}_version`]: pkg.version, [`${t}_state`]: 'QUEUED' } }]);
    return attrs;
  }
}

function info(p: StoredPackage): OtaPackageInfo {
  return { type: p.type, title: p.title, version: p.version, size: p.size, checksumAlgorithm: p.checksumAlgorithm, checksum: p.checksum };
}

/** A device's fw_state reports, oldest first, with fw_error and current_fw_* where reported at the same ts. */
export function fwStateHistory(store: Store, deviceId: string): JsonObject[] {
  const t = store.telemetry(deviceId, ['fw_state', 'fw_error', 'current_fw_title', 'current_fw_version']);
  const rows = new Map<number, JsonObject>();
  for (const [key, points] of Object.entries(t)) {
    for (const p of points) {
      const row = rows.get(p.ts) ?? { ts: p.ts };
      row[key] = p.value;
      rows.set(p.ts, row);
    }
  }
  return [...rows.values()].filter((r) => r.fw_state !== undefined).sort((a, b) => (a.ts as number) - (b.ts as number));
}

/** The bytes of a package as the store keeps it (base64). */
export function otaPackageBytes(pkg: { data: string }): Buffer {
  return Buffer.from(pkg.data, 'base64');
}

/**
 * ThingsBoard's OtaPackageDataCache.get(id, chunkSize, chunk) (CaffeineOtaPackageCache): the whole
 * package for a size below 1, else bytes [size*chunk, size*(chunk+1)), zero-length past the end.
 * The start is a Java int product: one that overflows to a negative index throws in
 * System.arraycopy, and ThingsBoard sends nothing (undefined here).
 */
export function otaChunk(data: Buffer, size: number, chunk: number): Buffer | undefined {
  if (size < 1) return data;
  const start = Math.imul(size, chunk);
  if (start < 0) return undefined;
  const n = Math.min(data.length - start, size);
  return start < data.length && n > 0 ? data.subarray(start, start + n) : Buffer.alloc(0);
}
