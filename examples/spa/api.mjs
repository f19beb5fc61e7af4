// A tiny API for the latch SPA example: verifies latch's access tokens with `jose` and serves
// the page (index.html, app.js) from the same origin, so the page needs no CORS.
//
//   LATCH_ISSUER=http://localhost:8080/auth LATCH_PROXY=http://127.0.0.1:3000 node api.mjs
//
// Environment:
//   LATCH_ISSUER    required; latch's public_url + base_path (the `iss` claim)
//   LATCH_AUDIENCE  the `aud` this API accepts (latch's tokens.audience); default "api"
//   LATCH_JWKS_URL  where latch's keys are; default LATCH_ISSUER + "/.well-known/jwks.json"
//   PORT            default 8080; 0 picks a free port. Prints "LISTENING <port>" on stdout.
//   LATCH_PROXY     optional, for local development: latch's own address. Requests under the
//                   issuer's path (latch's base_path, e.g. /auth) are passed to it, so page,
//                   API and latch share one origin without nginx. In production let your
//                   reverse proxy do this instead.
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { createRemoteJWKSet, jwtVerify } from 'jose';

const issuer = process.env.LATCH_ISSUER;
if (!issuer) {
  console.error('LATCH_ISSUER is required (latch public_url + base_path, e.g. http://localhost:8080/auth)');
  process.exit(2);
}
const audience = process.env.LATCH_AUDIENCE || 'api';
const jwksUrl = new URL(process.env.LATCH_JWKS_URL || `${issuer.replace(/\/$/, '')}/.well-known/jwks.json`);
const proxyTo = process.env.LATCH_PROXY ? new URL(process.env.LATCH_PROXY) : null;
const latchPath = new URL(issuer).pathname.replace(/\/$/, ''); // latch's base_path
if (proxyTo && !latchPath) {
  console.error('LATCH_PROXY needs latch under a path of this origin (base_path, e.g. "/auth")');
  process.exit(2);
}

// Fetches latch's JWKS on first use, caches it, and refetches when a token names an unknown
// `kid` (latch publishes the next signing key ahead of use, so rotation needs no restart).
const jwks = createRemoteJWKSet(jwksUrl);

// jose's codes for a token that is bad (expired, forged, wrong iss/aud, malformed, unknown key).
// Anything else (latch unreachable, JWKS timeout) is our problem, not the client's: 503.
const TOKEN_ERRORS = new Set([
  'ERR_JWT_EXPIRED',
  'ERR_JWT_CLAIM_VALIDATION_FAILED',
  'ERR_JWT_INVALID',
  'ERR_JWS_INVALID',
  'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
  'ERR_JWKS_NO_MATCHING_KEY',
  'ERR_JWKS_MULTIPLE_MATCHING_KEYS',
  'ERR_JOSE_ALG_NOT_ALLOWED',
  'ERR_JOSE_NOT_SUPPORTED',
]);

const SECURITY_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
};

function json(res, status, body, headers = {}) {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'Content-Type': 'application/json',
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(JSON.stringify(body));
}

// 401 as RFC 6750 §3 has it: no error code when there was no token at all, `invalid_token`
// when there was one and it failed. Either way the page's apiFetch() refreshes once.
function unauthorized(res, description) {
  const challenge = description
    ? `Bearer realm="api", error="invalid_token", error_description="${description.replace(/["\\]/g, '')}"`
    : 'Bearer realm="api"';
  json(res, 401, { error: description ? 'invalid_token' : 'unauthorized' }, { 'WWW-Authenticate': challenge });
}

async function me(req, res) {
  const match = /^Bearer +([A-Za-z0-9_.-]+)$/i.exec(req.headers.authorization ?? '');
  if (!match) return unauthorized(res, null);
  try {
    const { payload } = await jwtVerify(match[1], jwks, {
      issuer,
      audience,
      algorithms: ['ES256'], // latch signs ES256; never accept what the token itself asks for
      clockTolerance: 60,
    });
    json(res, 200, { sub: payload.sub, email: payload.email, name: payload.name });
  } catch (err) {
    if (TOKEN_ERRORS.has(err.code)) return unauthorized(res, err.message);
    console.error('cannot verify tokens:', err);
    json(res, 503, { error: 'temporarily_unavailable' }, { 'Retry-After': '5' });
  }
}

const STATIC = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
};

async function serveStatic(res, [file, type]) {
  const body = await readFile(new URL(file, import.meta.url));
  res.writeHead(200, {
    ...SECURITY_HEADERS,
    'Content-Type': type,
    'Cache-Control': 'no-cache',
    // The page runs only its own script and talks only to this origin (API and latch).
    'Content-Security-Policy':
      "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  });
  res.end(body);
}

// Development stand-in for the reverse proxy: latch's routes pass through untouched.
function proxy(req, res) {
  const upstream = http.request(
    new URL(req.url, proxyTo),
    { method: req.method, headers: req.headers },
    (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on('error', (err) => {
    console.error('latch unreachable:', err.message);
    if (!res.headersSent) json(res, 502, { error: 'latch unreachable' });
    else res.destroy();
  });
  req.pipe(upstream);
}

const server = http.createServer((req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  if (proxyTo && (path === latchPath || path.startsWith(`${latchPath}/`))) return proxy(req, res);
  if (path === '/api/me' && req.method === 'GET') return void me(req, res);
  if (STATIC[path] && req.method === 'GET') {
    return void serveStatic(res, STATIC[path]).catch(() => json(res, 500, { error: 'server_error' }));
  }
  json(res, 404, { error: 'not_found' });
});

server.listen(Number(process.env.PORT || 8080), process.env.HOST || '127.0.0.1', () => {
  console.log(`LISTENING ${server.address().port}`);
});
