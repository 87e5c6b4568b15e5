import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * Envelope encryption with the key-encryption key (TESSERA_KEK): AES-256-GCM, a fresh 96-bit
 * nonce per value (NIST SP 800-38D §8.2.2), and the value's purpose bound in as additional
 * authenticated data so a ciphertext cannot be moved to another row or column.
 * Format: `v1.<nonce b64url>.<ciphertext‖tag b64url>`.
 */
export interface Envelope {
  seal(plaintext: string, context: string): string;
  open(sealed: string, context: string): string;
}

export class EnvelopeError extends Error {
  override name = 'EnvelopeError';
}

export function createEnvelope(kek: Buffer): Envelope {
  if (kek.length !== 32) throw new EnvelopeError('the key-encryption key must be 32 bytes');
  return {
    seal(plaintext, context) {
      const nonce = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', kek, nonce);
      cipher.setAAD(Buffer.from(context));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
      return `v1.${nonce.toString('base64url')}.${body.toString('base64url')}`;
    },
    open(sealed, context) {
      const [version, nonceText, bodyText] = sealed.split('.');
      if (version !== 'v1' || !nonceText || !bodyText) throw new EnvelopeError('unknown envelope format');
      const body = Buffer.from(bodyText, 'base64url');
      try {
        const decipher = createDecipheriv('aes-256-gcm', kek, Buffer.from(nonceText, 'base64url'));
        decipher.setAAD(Buffer.from(context));
        decipher.setAuthTag(body.subarray(body.length - 16));
        return Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]).toString('utf8');
      } catch {
        // Wrong KEK or tampered row: say which, never what the bytes were.
        throw new EnvelopeError(`cannot decrypt ${context}: wrong TESSERA_KEK or tampered data`);
      }
    },
  };
}
