import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { decodeKek } from '../config/config.js';
import { OWNER_ONLY_DIRECTORY } from '../storage/data-directory.js';

/**
 * Embedded mode only: when TESSERA_KEK or TESSERA_COOKIE_KEYS is not set, generate them once
 * into `<data dir>/secrets.json` (mode 0600) so a restart keeps signing keys readable and
 * sessions valid. A multi-node deployment must set both variables (config validation enforces it).
 */
export function loadOrCreateEmbeddedSecrets(dataDir: string): { kek: Buffer; cookieKeys: string[]; created: boolean; path: string } {
  const path = join(dataDir, 'secrets.json');
  if (existsSync(path)) {
    const stored = JSON.parse(readFileSync(path, 'utf8')) as { kek: string; cookie_keys: string[] };
    const kek = decodeKek(stored.kek);
    if (!kek) throw new Error(`${path}: kek is not a 32-byte base64 value`);
    return { kek, cookieKeys: stored.cookie_keys, created: false, path };
  }
  mkdirSync(dataDir, { recursive: true, mode: OWNER_ONLY_DIRECTORY });
  const kek = randomBytes(32);
  const cookieKeys = [randomBytes(32).toString('base64url')];
  writeFileSync(path, JSON.stringify({ kek: kek.toString('base64'), cookie_keys: cookieKeys }, null, 2), { mode: 0o600, flag: 'wx' });
  return { kek, cookieKeys, created: true, path };
}
