/**
 * The address rule of outbound fetches (src/outbound/address-policy.ts): which addresses Tessera
 * refuses to connect to, checked on the spelling that actually reaches the check (the WHATWG URL
 * parser rewrites hex, decimal and short IPv4 forms, and IPv6 text, before anything sees them).
 */
import { describe, expect, it } from 'vitest';

import { parseOutboundAllowList } from '../../src/config/config.js';
import { createAddressPolicy, hostOf, specialUseKind } from '../../src/outbound/address-policy.js';

describe('outbound address rule', () => {
  it('refuses loopback, private, link-local, metadata, shared, multicast, reserved and unspecified addresses', () => {
    const refused: [string, RegExp][] = [
      ['127.0.0.1', /loopback/],
      ['127.255.255.254', /loopback/],
      ['0.0.0.0', /unspecified/],
      ['0.1.2.3', /unspecified/],
      ['10.1.2.3', /private/],
      ['172.16.0.1', /private/],
      ['172.31.255.255', /private/],
      ['192.168.1.1', /private/],
      ['100.64.0.1', /carrier-grade NAT/],
      ['100.127.255.255', /carrier-grade NAT/],
      ['169.254.169.254', /link-local/],
      ['169.254.0.1', /link-local/],
      ['224.0.0.1', /multicast/],
      ['239.255.255.250', /multicast/],
      ['240.0.0.1', /reserved/],
      ['255.255.255.255', /reserved/],
      ['192.0.0.8', /reserved/],
      ['192.0.2.1', /documentation/],
      ['198.18.0.1', /benchmarking/],
      ['::1', /loopback/],
      ['::', /unspecified/],
      ['[::1]', /loopback/],
      // IPv4-mapped IPv6: judged as the IPv4 address it carries, in either spelling.
      ['::ffff:127.0.0.1', /loopback/],
      ['::ffff:7f00:1', /loopback/],
      ['0:0:0:0:0:ffff:7f00:1', /loopback/],
      ['::ffff:10.0.0.1', /private/],
      ['::ffff:169.254.169.254', /link-local/],
      ['::ffff:0.0.0.0', /unspecified/],
      // Deprecated IPv4-compatible form.
      ['::127.0.0.1', /IPv4-compatible/],
      ['::7f00:1', /IPv4-compatible/],
      // NAT64 (RFC 6052): judged by the embedded IPv4 address.
      ['64:ff9b::7f00:1', /loopback/],
      ['64:ff9b::169.254.169.254', /link-local/],
      ['64:ff9b:1::1', /NAT64/],
      ['fc00::1', /unique local/],
      ['fd12:3456:789a::1', /unique local/],
      ['fe80::1', /link-local/],
      ['fe80::1%eth0', /link-local/],
      ['febf:ffff::1', /link-local/],
      ['fec0::1', /site-local/],
      ['ff02::1', /multicast/],
      ['2001:db8::1', /documentation/],
      ['2001:0:4136:e378::1', /reserved/], // Teredo
      ['2002:7f00:1::1', /6to4/],
      ['100::1', /discard/],
      ['not-an-address', /not an IP address/],
      ['127.1', /not an IP address/], // only the URL parser turns this into 127.0.0.1 (below)
    ];
    for (const [address, kind] of refused) expect(specialUseKind(address), address).toMatch(kind);
  });

  it('accepts public unicast addresses, next to the edges of the refused ranges', () => {
    const accepted = [
      '8.8.8.8', '1.1.1.1', '11.0.0.1', '172.15.255.255', '172.32.0.1', '192.167.255.255', '192.169.0.1',
      '100.63.255.255', '100.128.0.1', '169.253.255.255', '169.255.0.1', '223.255.255.255', '198.20.0.1',
      '2606:4700:4700::1111', '2a00:1450:4001::200e', '::ffff:8.8.8.8', '::ffff:808:808', '64:ff9b::808:808', '2001:4860::8888',
    ];
    for (const address of accepted) expect(specialUseKind(address), address).toBeUndefined();
  });

  it('checks what the URL parser hands on: hex, decimal, octal, short and mapped forms all arrive as the address they mean', () => {
    const cases: [string, string, RegExp | undefined][] = [
      ['https://[::ffff:127.0.0.1]/jwks', '::ffff:7f00:1', /loopback/],
      ['https://[0:0:0:0:0:ffff:7f00:1]/jwks', '::ffff:7f00:1', /loopback/],
      ['https://0x7f000001/jwks', '127.0.0.1', /loopback/],
      ['https://2130706433/jwks', '127.0.0.1', /loopback/],
      ['https://127.1/jwks', '127.0.0.1', /loopback/],
      ['https://017700000001/jwks', '127.0.0.1', /loopback/],
      ['https://0x7f.1/jwks', '127.0.0.1', /loopback/],
      ['https://127.0.0.1./jwks', '127.0.0.1', /loopback/],
      ['https://①②⑦.0.0.1/jwks', '127.0.0.1', /loopback/],
      ['https://0/jwks', '0.0.0.0', /unspecified/],
      ['https://[::127.0.0.1]/jwks', '::7f00:1', /IPv4-compatible/],
      ['https://169.254.169.254/latest/meta-data/', '169.254.169.254', /link-local/],
      ['https://0xa9fea9fe/latest/meta-data/', '169.254.169.254', /link-local/],
      ['https://[fd00::1]:8443/jwks', 'fd00::1', /unique local/],
      ['https://keys.example.com/jwks', 'keys.example.com', /not an IP address/],
      // A name stays a name (resolved later, by the guard), whatever it looks like.
      ['https://LOCALHOST./jwks', 'localhost', /not an IP address/],
      ['https://127.0.0.1.nip.io/jwks', '127.0.0.1.nip.io', /not an IP address/],
      ['https://8.8.8.8/jwks', '8.8.8.8', undefined],
    ];
    for (const [url, host, kind] of cases) {
      expect(hostOf(new URL(url)), url).toBe(host);
      if (kind) expect(specialUseKind(host), url).toMatch(kind);
      else expect(specialUseKind(host), url).toBeUndefined();
    }
  });

  it('lets the operator allow named hosts and networks, and nothing else', () => {
    const policy = createAddressPolicy(parseOutboundAllowList('keys.internal.example, 10.1.0.0/16, fd00:1::/32, 192.168.7.7'));
    expect(policy.hostAllowed('keys.internal.example')).toBe(true);
    expect(policy.hostAllowed('other.internal.example')).toBe(false);
    expect(policy.refusal('10.1.2.3')).toBeUndefined();
    expect(policy.refusal('::ffff:10.1.2.3')).toBeUndefined();
    expect(policy.refusal('10.2.0.1')).toMatch(/private/);
    expect(policy.refusal('fd00:1::5')).toBeUndefined();
    expect(policy.refusal('fd00:2::5')).toMatch(/unique local/);
    expect(policy.refusal('192.168.7.7')).toBeUndefined();
    expect(policy.refusal('192.168.7.8')).toMatch(/private/);
    expect(policy.refusal('127.0.0.1')).toMatch(/loopback/);
    expect(policy.refusal('8.8.8.8')).toBeUndefined();
  });
});
