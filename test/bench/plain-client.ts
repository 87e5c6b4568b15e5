/** The plain provider's one client and resource indicators, shared by the provider and the bench driver. */
export const PLAIN_CLIENT = { client_id: 'bench-client', client_secret: 'bench-client-secret-0123456789abcdef' };
export const PLAIN_OPAQUE_RESOURCE = 'urn:bench:opaque';
export const PLAIN_JWT_RESOURCE = 'urn:bench:jwt';
