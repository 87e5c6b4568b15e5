import { BlockList, isIP } from 'node:net';

import type { OutboundAllowList } from '../config/config.js';

/**
 * Which addresses Tessera may connect to when it fetches a URL a client gave it (jwks_uri,
 * sector_identifier_uri): public unicast addresses only. Anyone holding an initial access token
 * or `clients:write` chooses those URLs, so without this rule they could make Tessera reach its
 * own loopback, the private network behind it, or a cloud metadata service (169.254.169.254).
 *
 * Pure: no DNS, no sockets. src/outbound/outbound-guard.ts applies it to names (after resolving
 * them) and to the address a socket is about to connect to.
 */

/** Special-purpose ranges (RFC 6890 registries), each with the word a refusal uses for it. */
const RANGES: readonly { network: string; prefix: number; family: 'ipv4' | 'ipv6'; kind: string }[] = [
  { network: '0.0.0.0', prefix: 8, family: 'ipv4', kind: 'unspecified ("this network", RFC 791)' },
  { network: '10.0.0.0', prefix: 8, family: 'ipv4', kind: 'private (RFC 1918)' },
  { network: '100.64.0.0', prefix: 10, family: 'ipv4', kind: 'shared carrier-grade NAT (RFC 6598)' },
  { network: '127.0.0.0', prefix: 8, family: 'ipv4', kind: 'loopback' },
  // Also where cloud providers answer instance metadata and credentials (169.254.169.254).
  { network: '169.254.0.0', prefix: 16, family: 'ipv4', kind: 'link-local (RFC 3927)' },
  { network: '172.16.0.0', prefix: 12, family: 'ipv4', kind: 'private (RFC 1918)' },
  { network: '192.0.0.0', prefix: 24, family: 'ipv4', kind: 'reserved (RFC 6890)' },
  { network: '192.0.2.0', prefix: 24, family: 'ipv4', kind: 'documentation (RFC 5737)' },
  { network: '192.88.99.0', prefix: 24, family: 'ipv4', kind: 'reserved (RFC 7526)' },
  { network: '192.168.0.0', prefix: 16, family: 'ipv4', kind: 'private (RFC 1918)' },
  { network: '198.18.0.0', prefix: 15, family: 'ipv4', kind: 'reserved for benchmarking (RFC 2544)' },
  { network: '198.51.100.0', prefix: 24, family: 'ipv4', kind: 'documentation (RFC 5737)' },
  { network: '203.0.113.0', prefix: 24, family: 'ipv4', kind: 'documentation (RFC 5737)' },
  { network: '224.0.0.0', prefix: 4, family: 'ipv4', kind: 'multicast' },
  // 240/4 (reserved) and 255.255.255.255 (broadcast).
  { network: '240.0.0.0', prefix: 4, family: 'ipv4', kind: 'reserved (RFC 1112)' },
  { network: '::', prefix: 128, family: 'ipv6', kind: 'unspecified' },
  { network: '::1', prefix: 128, family: 'ipv6', kind: 'loopback' },
  // The deprecated IPv4-compatible form ::a.b.c.d (RFC 4291 §2.5.5.1), which no host should use
  // any more. IPv4-mapped addresses (::ffff:a.b.c.d) are not in it: node:net's BlockList checks
  // them against the IPv4 ranges above.
  { network: '::', prefix: 96, family: 'ipv6', kind: 'IPv4-compatible (deprecated)' },
  { network: '64:ff9b:1::', prefix: 48, family: 'ipv6', kind: 'local-use NAT64 (RFC 8215)' },
  { network: '100::', prefix: 64, family: 'ipv6', kind: 'discard-only (RFC 6666)' },
  // IETF protocol assignments, Teredo included (it embeds an IPv4 address).
  { network: '2001::', prefix: 23, family: 'ipv6', kind: 'reserved (RFC 2928)' },
  { network: '2001:db8::', prefix: 32, family: 'ipv6', kind: 'documentation (RFC 3849)' },
  // 6to4 embeds an IPv4 address and is deprecated (RFC 7526): refused whole.
  { network: '2002::', prefix: 16, family: 'ipv6', kind: '6to4 (RFC 7526)' },
  { network: '3fff::', prefix: 20, family: 'ipv6', kind: 'documentation (RFC 9637)' },
  { network: '5f00::', prefix: 16, family: 'ipv6', kind: 'segment routing (RFC 9602)' },
  { network: 'fc00::', prefix: 7, family: 'ipv6', kind: 'private (unique local, RFC 4193)' },
  { network: 'fe80::', prefix: 10, family: 'ipv6', kind: 'link-local' },
  { network: 'fec0::', prefix: 10, family: 'ipv6', kind: 'site-local (deprecated, RFC 3879)' },
  { network: 'ff00::', prefix: 8, family: 'ipv6', kind: 'multicast' },
];

const CLASSIFIED = RANGES.map((range) => {
  const list = new BlockList();
  list.addSubnet(range.network, range.prefix, range.family);
  return { list, kind: range.kind };
});

const familyOf = (address: string): 'ipv4' | 'ipv6' => (isIP(address) === 6 ? 'ipv6' : 'ipv4');

/** An address without brackets or an IPv6 zone (`fe80::1%eth0`), which BlockList does not understand. */
function bare(address: string): string {
  const unbracketed = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const zone = unbracketed.indexOf('%');
  return zone === -1 ? unbracketed : unbracketed.slice(0, zone);
}

/** The eight 16-bit groups of an IPv6 address (`::` expanded, a trailing dotted quad read). */
function ipv6Groups(address: string): number[] {
  let text = address;
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') as [string, string] : [text, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.map((g) => parseInt(g, 16));
}

/**
 * The IPv4 address inside a NAT64 address (64:ff9b::/96, RFC 6052 §2.1). An IPv6-only network
 * reaches public IPv4 hosts through these, so they are judged by the IPv4 address they carry.
 */
function nat64Embedded(address: string): string | undefined {
  const groups = ipv6Groups(address);
  if (groups.length !== 8 || groups[0] !== 0x64 || groups[1] !== 0xff9b || groups.slice(2, 6).some((g) => g !== 0)) return undefined;
  return [groups[6]! >> 8, groups[6]! & 0xff, groups[7]! >> 8, groups[7]! & 0xff].join('.');
}

/**
 * What kind of special-use address this is (`loopback`, `private (RFC 1918)`, …), or undefined
 * for a public unicast address. Anything that is not an IP address is refused as unparseable.
 */
export function specialUseKind(address: string): string | undefined {
  const ip = bare(address);
  if (!isIP(ip)) return 'not an IP address';
  const family = familyOf(ip);
  if (family === 'ipv6') {
    const embedded = nat64Embedded(ip);
    if (embedded !== undefined) return specialUseKind(embedded);
  }
  return CLASSIFIED.find(({ list }) => list.check(ip, family))?.kind;
}

/** The host of a URL as it reaches DNS or a socket: no brackets, no trailing dot, lower case. */
export function hostOf(url: URL): string {
  return bare(url.hostname).replace(/\.$/, '').toLowerCase();
}

export type AddressPolicy = ReturnType<typeof createAddressPolicy>;

/**
 * The rule above with the operator's exceptions (config TESSERA_OUTBOUND_ALLOWED_HOSTS): host
 * names whose addresses are all accepted, and networks whose addresses are.
 */
export function createAddressPolicy(allow: OutboundAllowList) {
  const hosts = new Set(allow.hosts);
  const networks = new BlockList();
  for (const n of allow.networks) networks.addSubnet(n.network, n.prefix, n.family);

  return {
    /** Whether the operator named this host (as `hostOf` spells it): its addresses are not checked. */
    hostAllowed(host: string): boolean {
      return hosts.has(host);
    },
    /** Why Tessera will not connect to this address, or undefined when it may. */
    refusal(address: string): string | undefined {
      const ip = bare(address);
      if (isIP(ip) && networks.check(ip, familyOf(ip))) return undefined;
      return specialUseKind(ip);
    },
  };
}
