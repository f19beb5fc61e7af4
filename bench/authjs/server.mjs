// Auth.js beside latch, for bench/compare.sh: @auth/express with one OpenID Connect provider
// (the bench's oidc-provider), database sessions (`session.strategy = "database"`) through
// @auth/unstorage-adapter on unstorage's Redis driver (ioredis), on the same redis-server as
// latch under its own key prefix. Routes under /auth: GET /auth/csrf, POST /auth/signin/oidc,
// GET /auth/callback/oidc, GET /auth/session.
//
// Environment (all required unless a default is given):
//   PORT           port to listen on (127.0.0.1; 0 lets the OS pick one)
//   ISSUER         the OpenID provider's issuer URL
//   CLIENT_ID      the client's id at the provider
//   CLIENT_SECRET  its secret (client_secret_basic, Auth.js's default)
//   REDIS_URL      redis://127.0.0.1:<port>
//   KEY_PREFIX     prefix of every key the adapter writes (default "authjs:")
//   AUTH_SECRET    Auth.js's secret (cookie encryption and CSRF token hashing)
//
// stdout carries one line, `LISTENING <port>`, once the server accepts requests; errors go to
// stderr. No secrets, tokens or cookies are logged. Stops on SIGTERM/SIGINT.
import http from 'node:http';
import express from 'express';
import { ExpressAuth } from '@auth/express';
import { UnstorageAdapter } from '@auth/unstorage-adapter';
import { createStorage } from 'unstorage';
import redisDriver from 'unstorage/drivers/redis';

function fail(message) {
  process.stderr.write(`authjs bench server: ${message}\n`);
  process.exit(2);
}

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) fail(`environment variable ${name} is required`);
  return value;
}

const port = Number.parseInt(process.env.PORT || '0', 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail('PORT must be a port number or 0');
const issuer = requiredEnv('ISSUER');
const clientId = requiredEnv('CLIENT_ID');
const clientSecret = requiredEnv('CLIENT_SECRET');
const redisUrl = requiredEnv('REDIS_URL');
const keyPrefix = process.env.KEY_PREFIX || 'authjs:';
requiredEnv('AUTH_SECRET'); // read by Auth.js itself (setEnvDefaults)
// Behind no proxy, on plain HTTP: the Host header is the origin (as latch's public_url is).
process.env.AUTH_TRUST_HOST = 'true';

const storage = createStorage({ driver: redisDriver({ url: redisUrl }) });

const app = express();
app.disable('x-powered-by');
app.use(
  '/auth',
  ExpressAuth({
    providers: [
      {
        id: 'oidc',
        name: 'oidc-provider',
        type: 'oidc',
        issuer,
        clientId,
        clientSecret,
      },
    ],
    adapter: UnstorageAdapter(storage, { baseKeyPrefix: keyPrefix }),
    // latch's session settings: 30 days, the record's expiry pushed forward once a day.
    session: { strategy: 'database', maxAge: 30 * 24 * 60 * 60, updateAge: 24 * 60 * 60 },
    logger: {
      error(error) {
        process.stderr.write(`authjs error: ${error.name}: ${error.message}\n`);
      },
      warn(code) {
        process.stderr.write(`authjs warning: ${code}\n`);
      },
      debug() {},
    },
  }),
);

const server = http.createServer(app);

function shutdown() {
  server.close();
  storage.dispose().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});
