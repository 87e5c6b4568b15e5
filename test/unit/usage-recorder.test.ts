/**
 * The usage recorder (src/tokens/usage-recorder.ts) writes what it gathered in bounded
 * statements, and a failed statement loses nothing and counts nothing twice: the chunks
 * already written stay written, the rest go out with the next flush.
 */
import { describe, expect, it } from 'vitest';

import { createLogger } from '../../src/http/logger.js';
import { createUsageRecorder } from '../../src/tokens/usage-recorder.js';
import type { UsageCount } from '../../src/tokens/usage-recorder.js';
import { createTestClock } from '../helpers/test-clock.js';

describe('the usage recorder', () => {
  it('writes in chunks, and after a failed chunk writes the rest once, with nothing counted twice', async () => {
    const written: UsageCount[][] = [];
    let failNext = false;
    const recorder = createUsageRecorder({
      clock: createTestClock(),
      logger: createLogger({ level: 'silent' }),
      chunkSize: 4,
      flushIntervalMs: 3_600_000,
      write: async (batch) => {
        if (failNext && written.length === 1) {
          failNext = false;
          throw new Error('database away');
        }
        written.push(batch);
      },
    });
    for (let i = 0; i < 10; i += 1) recorder.record(`tok_${i}`, 'https://api.test');
    recorder.record('tok_0', 'https://api.test');

    failNext = true;
    await recorder.flush();
    expect(written.map((chunk) => chunk.length)).toEqual([4]);

    await recorder.flush();
    expect(written.map((chunk) => chunk.length)).toEqual([4, 4, 2]);
    const totals = new Map<string, number>();
    for (const { subject, count } of written.flat()) totals.set(subject, (totals.get(subject) ?? 0) + count);
    expect(Object.fromEntries(totals)).toEqual({ tok_0: 2, tok_1: 1, tok_2: 1, tok_3: 1, tok_4: 1, tok_5: 1, tok_6: 1, tok_7: 1, tok_8: 1, tok_9: 1 });
    await recorder.close();
  });
});
