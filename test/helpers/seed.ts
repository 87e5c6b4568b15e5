/** A seed with two APIs (one JWT, one opaque) and one machine client, as config/development.json has. */
export const EXAMPLE_SEED = {
  seed: {
    resourceServers: [
      {
        identifier: 'https://orders.test',
        name: 'Orders',
        scopes: ['orders:read', 'orders:write'],
        token_format: 'jwt',
        introspection_client_id: 'orders-rs',
        introspection_client_secret: 'orders-rs-secret-0123456789',
      },
      {
        identifier: 'https://billing.test',
        name: 'Billing',
        scopes: ['billing:read'],
        token_format: 'opaque',
        introspection_client_id: 'billing-rs',
        introspection_client_secret: 'billing-rs-secret-0123456789',
      },
    ],
    clients: [
      {
        client_id: 'worker',
        client_secret: 'worker-secret-0123456789abcdef',
        name: 'Worker',
        grant_types: ['client_credentials'],
        token_endpoint_auth_method: 'client_secret_basic',
        scopes: ['orders:read', 'billing:read'],
        resources: ['https://orders.test', 'https://billing.test'],
      },
    ],
  },
};
