/**
 * A webhook receiver for tests: an HTTP server on 127.0.0.1 that checks every message with the
 * Standard Webhooks library (the same one Tessera signs with) and keeps what it got. `answer`
 * says what it replies, so a test can play an endpoint that is down and comes back.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';

import { Webhook } from 'standardwebhooks';

export interface ReceivedMessage {
  id: string;
  timestamp: number;
  /** Whether the signature verified with the endpoint's secret. */
  verified: boolean;
  type: string;
  data: any;
}

export interface WebhookReceiver {
  url: string;
  /** Every request, in arrival order (repeats included). */
  received: ReceivedMessage[];
  /** The status the receiver answers with. */
  answer: number;
  /** The endpoint's secret, for verification (set once the endpoint is created). */
  secret: string | undefined;
  close(): Promise<void>;
}

export async function startWebhookReceiver(path = '/hooks'): Promise<WebhookReceiver> {
  const state: WebhookReceiver = { url: '', received: [], answer: 204, secret: undefined, close: async () => {} };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = { 'webhook-id': String(req.headers['webhook-id']), 'webhook-timestamp': String(req.headers['webhook-timestamp']), 'webhook-signature': String(req.headers['webhook-signature']) };
      let verified = false;
      try {
        if (state.secret) {
          new Webhook(state.secret).verify(body, headers);
          verified = true;
        }
      } catch {
        verified = false;
      }
      const parsed = JSON.parse(body) as { type: string; data: unknown };
      state.received.push({ id: headers['webhook-id'], timestamp: Number(headers['webhook-timestamp']), verified, type: parsed.type, data: parsed.data });
      res.statusCode = state.answer;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as { port: number }).port}${path}`;
  state.close = () => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
  return state;
}
