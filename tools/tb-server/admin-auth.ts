/*
 * Who may use the admin HTTP API: a bearer token the endpoint keeps in its state folder
 * (`admin-token`, mode 0600: only the user who runs it can read it; `npm run tb-server -- <command>`
 * reads it from there), and only under a loopback or IP-literal Host with no foreign Origin: a web
 * page in the user's browser can neither rebind a DNS name to 127.0.0.1 and read the API (Host is
 * then its own name) nor send it a form or text/plain POST (its Origin is not ours, and it does not
 * know the token).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';

export const ADMIN_TOKEN_FILE = 'admin-token';
/** Files of the endpoint's state: the store, and the OTA package library (ota-packages.ts). */
const STATE_FILES = ['state.json', 'ota-packages.json'];

export function adminTokenPath(dataDir: string): string {
  return path.join(dataDir, ADMIN_TOKEN_FILE);
}

/** The admin token of `dataDir`, created (random, 0600) when missing. */
export function ensureAdminToken(dataDir: string): string {
  fs.mkdirSync(dataDir, { recursive: true });
  const file = adminTokenPath(dataDir);
  const existing = readAdminToken(dataDir);
  if (existing) {
    if ((fs.statSync(file).mode & 0o077) !== 0) fs.chmodSync(file, 0o600);
    return existing;
  }
  const token = randomBytes(24).toString('base64url');
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${token}\n`, { mode: 0o600 });
  fs.chmodSync(tmp, 0o600); // whatever the umask
  fs.renameSync(tmp, file);
  return token;
}

export function readAdminToken(dataDir: string): string | undefined {
  try {
    const t = fs.readFileSync(adminTokenPath(dataDir), 'utf8').trim();
    return t || undefined;
  } catch {
    return undefined;
  }
}

/** Hosts a browser only sends for a loopback or literal address, never for a rebound DNS name. */
function hostAllowed(host: string | undefined): boolean {
  if (!host) return false;
  const m = /^(\[[^\]]+\]|[^:]+)(?::\d+)?$/.exec(host);
  if (!m) return false;
  const name = m[1]!.replace(/^\[|\]$/g, '').toLowerCase();
  return name === 'localhost' || isIP(name) !== 0;
}

/** null when the request may go on, else [status, message]. */
export function checkAdminRequest(req: IncomingMessage, token: string): [number, string] | null {
  if (!hostAllowed(req.headers.host)) return [403, 'foreign Host header refused (use http://127.0.0.1:PORT)'];
  const origin = req.headers.origin;
  if (origin !== undefined) {
    let ok = false;
    try {
      const u = new URL(origin);
      ok = (u.protocol === 'http:' || u.protocol === 'https:') && hostAllowed(u.host) && u.host === req.headers.host;
    } catch {
      ok = false;
    }
    if (!ok) return [403, 'cross-origin request refused'];
  }
  const auth = req.headers.authorization ?? '';
  const m = /^Bearer\s+(\S+)$/i.exec(auth);
  if (!m) return [401, 'admin token required (Authorization: Bearer <token from the state folder\'s admin-token file>)'];
  const given = Buffer.from(m[1]!);
  const want = Buffer.from(token);
  if (given.length !== want.length || !timingSafeEqual(given, want)) return [401, 'wrong admin token'];
  return null;
}

/**
 * Clears the endpoint's state in `dataDir` (devices, telemetry, attributes, profiles, RPC log, OTA
 * packages): removes state.json, ota-packages.json and their temporary files. The admin token is
 * kept. Returns the files removed.
 */
export function resetState(dataDir: string): string[] {
  const removed: string[] = [];
  let names: string[] = [];
  try {
    names = fs.readdirSync(dataDir);
  } catch {
    return removed;
  }
  for (const n of names) {
    if (STATE_FILES.some((f) => n === f || (n.startsWith(`${f}.`) && n.endsWith('.tmp')))) {
      fs.rmSync(path.join(dataDir, n), { force: true });
      removed.push(n);
    }
  }
  return removed;
}
