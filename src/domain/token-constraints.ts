import { BlockList, isIP } from 'node:net';

/**
 * Constraints a PAT/SAT can carry beyond its scopes and audiences (docs/tokens.md): not usable
 * before `not_before`, and only from client addresses inside `allowed_ips` (CIDR ranges). One
 * rule for every place a token is used: the reference-token resolver (time), introspection when
 * the resource server passes the client's address, and the Management API (the caller's address).
 */
export interface TokenConstraints {
  /** Epoch ms, or null. */
  notBefore?: number | null;
  /** CIDR ranges, or null for any address. */
  allowedIps?: readonly string[] | null;
}

/** A CIDR range (`203.0.113.0/24`, `2001:db8::/32`) or a single address, parsed; undefined when it is neither. */
export function parseCidr(text: string): { network: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [address = '', prefixText, ...rest] = text.trim().split('/');
  const version = isIP(address);
  if (version === 0 || rest.length > 0) return undefined;
  const max = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return undefined;
  return { network: address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

const lists = new WeakMap<readonly string[], BlockList>();
function listOf(ranges: readonly string[]): BlockList {
  let list = lists.get(ranges);
  if (!list) {
    list = new BlockList();
    for (const range of ranges) {
      const cidr = parseCidr(range);
      if (cidr) list.addSubnet(cidr.network, cidr.prefix, cidr.family);
    }
    lists.set(ranges, list);
  }
  return list;
}

/** Whether `address` lies in one of `ranges` (an IPv4-mapped IPv6 address counts as its IPv4 address). */
export function addressAllowed(ranges: readonly string[], address: string): boolean {
  const bare = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  const version = isIP(bare);
  return version !== 0 && listOf(ranges).check(bare, version === 4 ? 'ipv4' : 'ipv6');
}

/** Whether the token's time constraint refuses it now (epoch ms). */
export const notYetValid = (token: TokenConstraints, now: number): boolean => token.notBefore != null && now < token.notBefore;

/** Whether the token's address constraint refuses a use from `clientIp` (checked only where the address is known). */
export const addressRefused = (token: TokenConstraints, clientIp: string): boolean => !!token.allowedIps && !addressAllowed(token.allowedIps, clientIp);
