import type { AuditRepository } from '../storage/audit-repository.js';
import type { ChainBreak } from './hash-chain.js';
import { verifyRows } from './hash-chain.js';

export interface ChainReport {
  organizationId: string;
  rows: number;
  firstSeq: number | undefined;
  lastSeq: number | undefined;
  broken: ChainBreak | undefined;
}

/**
 * Walks each organization's chain in pages (bounded memory whatever its length), checks every
 * row, and checks that the chain ends at the recorded head, so rows removed from the end are
 * caught too. Returns the first broken row, if any.
 */
export async function verifyChain(repository: AuditRepository, organizationId: string, pageSize = 2000): Promise<ChainReport> {
  let previous: { seq: number; hash: string } | undefined;
  let rows = 0;
  let firstSeq: number | undefined;
  for (;;) {
    const page = await repository.chainPage(organizationId, previous?.seq ?? 0, pageSize);
    if (page.length === 0) break;
    firstSeq ??= Number(page[0]!.seq);
    const broken = verifyRows(page, previous);
    if (broken) return { organizationId, rows: rows + page.length, firstSeq, lastSeq: previous?.seq, broken };
    rows += page.length;
    const last = page.at(-1)!;
    previous = { seq: Number(last.seq), hash: last.hash };
  }
  const head = await repository.head(organizationId);
  if (head && Number(head.seq) > 0 && (Number(head.seq) !== previous?.seq || head.hash !== previous.hash)) {
    return { organizationId, rows, firstSeq, lastSeq: previous?.seq, broken: { organizationId, seq: Number(head.seq), reason: 'rows missing at the end of the chain (head does not match the last row)' } };
  }
  return { organizationId, rows, firstSeq, lastSeq: previous?.seq, broken: undefined };
}
