import { availableParallelism } from 'node:os';

import { describe, expect, it } from 'vitest';

import { ConfigError, loadConfig } from '../../src/config/config.js';

const KEK = Buffer.alloc(32, 7).toString('base64');
const COOKIES = 'c'.repeat(32);

const fails = (env: Record<string, string>) => {
  try {
    loadConfig({ NODE_ENV: 'test', ...env });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected a ConfigError');
};

describe('configuration', () => {
  it('starts on the embedded default with no variables at all', () => {
    const config = loadConfig({ NODE_ENV: 'development' });
    expect(config.databaseUrl).toBeUndefined();
    expect(config.redisUrl).toBeUndefined();
    expect(config.issuer).toBe('http://localhost:3000');
    expect(config.seed?.resourceServers.length).toBeGreaterThan(0);
  });

  it('names the variable and the problem in one line', () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ PORT: 'eighty' }, /^PORT must be an integer/],
      [{ PORT: '70000' }, /^PORT must be an integer/],
      [{ TESSERA_ISSUER: 'ftp://x' }, /^TESSERA_ISSUER must be an http\(s\) URL/],
      [{ TESSERA_ISSUER: 'https://x/?a=b' }, /^TESSERA_ISSUER/],
      [{ DATABASE_URL: 'mysql://x' }, /^DATABASE_URL must be a postgres/],
      [{ DATABASE_URL: 'postgres://x/db' }, /^TESSERA_KEK is required when DATABASE_URL is set/],
      [{ DATABASE_URL: 'postgres://x/db', TESSERA_KEK: KEK }, /^TESSERA_COOKIE_KEYS is required/],
      [{ TESSERA_KEK: 'c2hvcnQ=' }, /^TESSERA_KEK must be 32 bytes/],
      [{ TESSERA_COOKIE_KEYS: `${COOKIES},short` }, /^TESSERA_COOKIE_KEYS: key #2 is shorter than 32/],
      [{ REDIS_URL: 'http://x' }, /^REDIS_URL must be a redis/],
      [{ TESSERA_REDIS_MODE: 'ring' }, /^TESSERA_REDIS_MODE must be/],
      [{ TESSERA_REDIS_MODE: 'sentinel', REDIS_URL: 'redis://a:26379' }, /^TESSERA_REDIS_SENTINEL_NAME is required/],
      [{ LOG_LEVEL: 'loud' }, /^LOG_LEVEL must be one of/],
      [{ TESSERA_METRICS_TOKEN: 'too-short' }, /^TESSERA_METRICS_TOKEN must be at least 32 characters/],
      [{ TESSERA_OUTBOUND_ALLOWED_HOSTS: '*.corp.example' }, /^TESSERA_OUTBOUND_ALLOWED_HOSTS: "\*\.corp\.example" is neither a host name/],
      [{ TESSERA_OUTBOUND_ALLOWED_HOSTS: 'keys.corp, 10.0.0.0/33' }, /^TESSERA_OUTBOUND_ALLOWED_HOSTS: "10\.0\.0\.0\/33" has a prefix length outside 0-32/],
      [{ TESSERA_OUTBOUND_ALLOWED_HOSTS: 'http://keys.corp' }, /^TESSERA_OUTBOUND_ALLOWED_HOSTS: "http:\/\/keys\.corp" is neither/],
      [{ TESSERA_OUTBOUND_ALLOWED_HOSTS: '127.1' }, /^TESSERA_OUTBOUND_ALLOWED_HOSTS: "127\.1" is not an IP address in dotted-decimal form/],
    ];
    for (const [env, pattern] of cases) {
      const message = fails(env);
      expect(message).toMatch(pattern);
      expect(message).not.toContain('\n');
    }
  });

  it('accepts base64url keys and a list of cookie keys, first one signing', () => {
    const config = loadConfig({
      NODE_ENV: 'test',
      DATABASE_URL: 'postgres://u@h/db',
      TESSERA_KEK: Buffer.alloc(32, 250).toString('base64url'),
      TESSERA_COOKIE_KEYS: `${'a'.repeat(32)}, ${'b'.repeat(40)}`,
      TESSERA_ISSUER: 'https://id.example.com/',
    });
    expect(config.kek).toHaveLength(32);
    expect(config.cookieKeys).toEqual(['a'.repeat(32), 'b'.repeat(40)]);
    expect(config.issuer).toBe('https://id.example.com');
  });

  it('reads the outbound allow-list: host names, addresses and CIDR ranges; empty by default', () => {
    expect(loadConfig({ NODE_ENV: 'test' }).outboundAllowList).toEqual({ hosts: [], networks: [] });
    const config = loadConfig({ NODE_ENV: 'test', TESSERA_OUTBOUND_ALLOWED_HOSTS: ' Keys.Corp.Example. , 10.20.0.0/16,[fd00::1], 192.168.1.5 ,' });
    expect(config.outboundAllowList).toEqual({
      hosts: ['keys.corp.example'],
      networks: [
        { network: '10.20.0.0', prefix: 16, family: 'ipv4' },
        { network: 'fd00::1', prefix: 128, family: 'ipv6' },
        { network: '192.168.1.5', prefix: 32, family: 'ipv4' },
      ],
    });
  });

  it('switches on proxy trust by a named option, never by the environment\'s name alone', () => {
    expect(loadConfig({ NODE_ENV: 'development' }).trustProxy).toBe(false);
    expect(loadConfig({ NODE_ENV: 'production', TESSERA_ISSUER: 'https://id.example.com', TESSERA_KEK: KEK, TESSERA_COOKIE_KEYS: COOKIES }).trustProxy).toBe(true);
    expect(loadConfig({ NODE_ENV: 'development', TESSERA_TRUST_PROXY: 'true' }).trustProxy).toBe(true);
    expect(loadConfig({ NODE_ENV: 'production', TESSERA_ISSUER: 'https://id.example.com', TESSERA_KEK: KEK, TESSERA_COOKIE_KEYS: COOKIES, TESSERA_TRUST_PROXY: 'false' }).trustProxy).toBe(false);
    expect(fails({ TESSERA_TRUST_PROXY: 'yes' })).toMatch(/^TESSERA_TRUST_PROXY must be true or false/);
  });

  it('runs one worker per core only where storage can be shared, and says why not otherwise', () => {
    const shared = { DATABASE_URL: 'postgres://db/tessera', REDIS_URL: 'redis://cache:6379', TESSERA_KEK: KEK, TESSERA_COOKIE_KEYS: COOKIES };
    expect(loadConfig({ NODE_ENV: 'production', TESSERA_ISSUER: 'https://id.example.com', ...shared }).workers).toBe(availableParallelism());
    expect(loadConfig({ NODE_ENV: 'production', TESSERA_ISSUER: 'https://id.example.com', ...shared, TESSERA_WORKERS: '3' }).workers).toBe(3);
    expect(loadConfig({ NODE_ENV: 'development' }).workers).toBe(1);
    expect(loadConfig({ NODE_ENV: 'production', TESSERA_ISSUER: 'https://id.example.com', TESSERA_KEK: KEK, TESSERA_COOKIE_KEYS: COOKIES }).workers).toBe(1);
    expect(fails({ TESSERA_WORKERS: '2' })).toMatch(/^TESSERA_WORKERS=2 needs DATABASE_URL and REDIS_URL/);
    expect(fails({ TESSERA_WORKERS: 'many' })).toMatch(/^TESSERA_WORKERS must be auto or a number/);
  });

  it('reads the mTLS certificate header: off by default, from the file or TESSERA_MTLS_CLIENT_CERTIFICATE_HEADER, never a header that means something else', () => {
    expect(loadConfig({ NODE_ENV: 'test' }).mtls).toEqual({ clientCertificateHeader: null });
    expect(loadConfig({ NODE_ENV: 'test', TESSERA_MTLS_CLIENT_CERTIFICATE_HEADER: ' X-SSL-Client-Cert ' }).mtls).toEqual({ clientCertificateHeader: 'x-ssl-client-cert' });
    expect(loadConfig({ NODE_ENV: 'test' }, { overrides: { mtls: { clientCertificateHeader: 'X-Client-Cert' } } }).mtls.clientCertificateHeader).toBe('x-client-cert');
    expect(loadConfig({ NODE_ENV: 'test', TESSERA_MTLS_CLIENT_CERTIFICATE_HEADER: 'off' }, { overrides: { mtls: { clientCertificateHeader: 'x-client-cert' } } }).mtls.clientCertificateHeader).toBeNull();
    expect(fails({ TESSERA_MTLS_CLIENT_CERTIFICATE_HEADER: 'x client cert' })).toMatch(/^TESSERA_MTLS_CLIENT_CERTIFICATE_HEADER must be an HTTP header name/);
    expect(fails({ TESSERA_MTLS_CLIENT_CERTIFICATE_HEADER: 'Authorization' })).toMatch(/must not be authorization/);
  });

  it('requires https issuers in production', () => {
    expect(fails({ NODE_ENV: 'production', TESSERA_ISSUER: 'http://id.example.com' })).toMatch(/must use https/);
  });
});
