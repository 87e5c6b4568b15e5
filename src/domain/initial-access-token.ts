import { createHash } from 'node:crypto';

/** RFC 7591 initial access tokens: a prefix secret scanners can find, and only SHA-256 stored. */
export const IAT_PREFIX = 'tsr_iat_';
export const hashInitialAccessToken = (token: string) => createHash('sha256').update(token).digest();
