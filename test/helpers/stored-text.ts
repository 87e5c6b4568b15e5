/**
 * Everything an installation has at rest, as text, for docs/design.md, "No secret at rest, none in a log" checks ("secrets are never
 * stored in plain text"): a secret must appear in none of it.
 */

import type { Database } from '../../src/storage/database.js';
import { forEachRedisKey } from './backends.js';

export interface StoredText {
  /** One entry per row of every table in the database's current schema: `<table> <row as text>`. */
  rows: string[];
  /** One entry per Redis key under the prefix: `<key> <value as JSON>`; empty without Redis. */
  redis: string[];
}

export async function storedText(storage: { db: Database; redisUrl?: string; redisPrefix?: string }): Promise<StoredText> {
  return { rows: await databaseRows(storage.db), redis: storage.redisUrl && storage.redisPrefix ? await redisEntries(storage.redisUrl, storage.redisPrefix) : [] };
}

/** The entries of `stored` that contain any of `secrets`, with which one, for a readable failure. */
export function containing(stored: StoredText, secrets: Record<string, string>): string[] {
  const hits: string[] = [];
  for (const entry of [...stored.rows, ...stored.redis]) {
    for (const [name, secret] of Object.entries(secrets)) if (entry.includes(secret)) hits.push(`${name} in: ${entry.slice(0, 300)}`);
  }
  return hits;
}

async function databaseRows(db: Database): Promise<string[]> {
  const { rows: tables } = await db.query<{ table_name: string }>(
    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name",
  );
  const out: string[] = [];
  for (const { table_name: table } of tables) {
    const { rows } = await db.query<{ row: string }>(`SELECT t::text AS row FROM "${table}" t`);
    for (const { row } of rows) out.push(`${table} ${row}`);
  }
  return out;
}

/** Every key under the prefix with its value, for every data type Tessera uses, read in full. */
async function redisEntries(url: string, prefix: string): Promise<string[]> {
  const out: string[] = [];
  await forEachRedisKey(url, prefix, async (client, keys) => {
    for (const key of keys) {
      const type = await client.type(key);
      let value: unknown;
      if (type === 'string') value = await client.get(key);
      else if (type === 'set') value = await client.smembers(key);
      else if (type === 'hash') value = await client.hgetall(key);
      else if (type === 'list') value = await client.lrange(key, 0, -1);
      else if (type === 'zset') value = await client.zrange(key, '0', '-1', 'WITHSCORES');
      else value = `<${type}>`;
      out.push(`${key} ${JSON.stringify(value)}`);
    }
  });
  return out;
}
