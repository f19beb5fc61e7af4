// A real third-party OpenID provider for latch's integration tests and the local demo.
//
// This is panva's `oidc-provider` (the certified OpenID Connect implementation), configured
// with one confidential client and a minimal custom interaction flow that a test driver can
// follow with plain HTTP requests. See README.md for the exact request sequence.
//
// Environment:
//   PORT           port to listen on; 0 (default) lets the OS pick a free one
//   HOST           bind address (default 127.0.0.1)
//   ISSUER         issuer URL (default http://127.0.0.1:<port>, known only after listen)
//   CLIENT_ID      the client's id (required)
//   CLIENT_SECRET  the client's secret (required; client_secret_basic)
//   REDIRECT_URI   the client's redirect URI; several may be given, comma-separated (required)
//   POST_LOGOUT_REDIRECT_URI  where RP-initiated logout may send the browser back (optional;
//                  comma-separated for several)
//   BACKCHANNEL_LOGOUT_URI    the client's back-channel logout URI (optional): with it, ID
//                  tokens carry `sid` and a logout at this provider POSTs a Logout Token there
//   EXIT_ON_STDIN_EOF  "1" (default): exit when stdin closes; "0" to keep running (containers)
//
// stdout carries exactly one line, `LISTENING <port>`, once the server accepts requests.
// Everything else (library notices, errors) goes to stderr. No secrets, codes or tokens are logged.

import http from 'node:http';
import crypto from 'node:crypto';

// oidc-provider prints its notices with console.info (stdout). Keep stdout for the one
// LISTENING line: send every other console output to stderr before the library loads.
console.log = console.error;
console.info = console.error;
console.debug = console.error;

const { default: Provider, errors } = await import('oidc-provider');

function fail(message) {
  process.stderr.write(`oidc-provider test server: ${message}\n`);
  process.exit(2);
}

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) fail(`environment variable ${name} is required`);
  return value;
}

const clientId = requiredEnv('CLIENT_ID');
const clientSecret = requiredEnv('CLIENT_SECRET');
const list = (value) => (value || '').split(',').map((s) => s.trim()).filter(Boolean);
const redirectUris = list(requiredEnv('REDIRECT_URI'));
const postLogoutRedirectUris = list(process.env.POST_LOGOUT_REDIRECT_URI);
const backchannelLogoutUri = process.env.BACKCHANNEL_LOGOUT_URI || undefined;
const host = process.env.HOST || '127.0.0.1';
const port = Number.parseInt(process.env.PORT || '0', 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail('PORT must be a port number or 0');

// Exit promptly when the harness goes away: stdin closing (the parent dropped its pipe)
// or a termination signal.
function shutdown() {
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (process.env.EXIT_ON_STDIN_EOF !== '0') {
  process.stdin.on('end', shutdown);
  process.stdin.on('close', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume(); // read (and discard) stdin so that EOF is noticed
}

// ---------------------------------------------------------------------------------------
// Accounts: any login name is a valid account. Per-login overrides (e.g. an unverified
// email) are remembered so that the token and userinfo endpoints report the same claims.

const SCOPES = ['openid', 'email', 'profile'];
const profiles = new Map();

function profileFor(login, overrides = {}) {
  const name = login.charAt(0).toUpperCase() + login.slice(1);
  return {
    sub: login,
    email: overrides.email || `${login}@example.test`,
    email_verified: overrides.emailVerified ?? true,
    name: overrides.name || name,
  };
}

async function findAccount(ctx, id) {
  const profile = profiles.get(id) || profileFor(id);
  return {
    accountId: id,
    async claims() {
      return { ...profile };
    },
  };
}

// A fresh RS256 signing key per process; the JWKS is published at /jwks.
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = {
  ...privateKey.export({ format: 'jwk' }),
  kid: crypto.randomBytes(8).toString('hex'),
  alg: 'RS256',
  use: 'sig',
};

const configuration = {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      client_name: 'latch (test client)',
      redirect_uris: redirectUris,
      post_logout_redirect_uris: postLogoutRedirectUris,
      ...(backchannelLogoutUri
        ? { backchannel_logout_uri: backchannelLogoutUri, backchannel_logout_session_required: true }
        : {}),
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  findAccount,
  scopes: SCOPES,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  // Put the scope-granted claims into the ID token too (latch also reads userinfo).
  conformIdTokenClaims: false,
  jwks: { keys: [signingJwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  features: {
    devInteractions: { enabled: false }, // our own flow below
    userinfo: { enabled: true },
    revocation: { enabled: true },
    backchannelLogout: { enabled: true },
  },
  pkce: { methods: ['S256'], required: () => true },
  // The interaction URL is the library default, `/interaction/<uid>`.
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 600,
    Session: 86400,
    Grant: 86400,
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><title>oidc-provider error</title><h1>${escapeHtml(out.error)}</h1><p>${escapeHtml(out.error_description || '')}</p>`;
  },
};

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  }[c]));
}

// ---------------------------------------------------------------------------------------
// The custom interaction flow.
//
//   GET  /interaction/<uid>         login form (HTML) — or, when only consent is missing
//                                   (already signed in here), grants it and 303s onward
//   POST /interaction/<uid>/login   form: login=<name> [, email_verified=false] [, email=...]
//                                   [, name=...]; signs in and consents in one step,
//                                   303 to /auth/<uid>
//   POST /interaction/<uid>/abort   the user refuses; 303 to /auth/<uid>, which then
//                                   redirects to the client with error=access_denied

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function grantConsent(provider, details, accountId) {
  const { prompt: { details: missing }, params } = details;
  let grant;
  if (details.grantId) {
    grant = await provider.Grant.find(details.grantId);
  }
  if (!grant) {
    grant = new provider.Grant({ accountId, clientId: params.client_id });
  }
  const requested = String(params.scope || '').split(' ').filter((s) => SCOPES.includes(s));
  grant.addOIDCScope([...new Set([...requested, ...(missing.missingOIDCScope || [])])].join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  if (missing.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  return grant.save();
}

function send(res, status, type, body, headers = {}) {
  res.writeHead(status, {
    'Content-Type': type,
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(body);
}

function loginPage(uid, details, clientName) {
  const scopes = escapeHtml(details.params.scope || '');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Test OpenID provider: sign in</title></head>
<body><main>
<h1>Test OpenID provider</h1>
<p><strong>${escapeHtml(clientName)}</strong> asks for: ${scopes}. Any login name is accepted.</p>
<form method="post" action="/interaction/${encodeURIComponent(uid)}/login">
<p><label for="login">Login name</label> <input id="login" name="login" required autofocus value="alice"></p>
<p><label><input type="checkbox" name="email_verified" value="false"> Email not verified</label></p>
<p><button type="submit">Sign in</button></p>
</form>
<form method="post" action="/interaction/${encodeURIComponent(uid)}/abort"><button type="submit">Cancel</button></form>
</main></body></html>`;
}

async function handleInteraction(provider, req, res, uid, action) {
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    if (err instanceof errors.SessionNotFound) {
      send(res, 400, 'text/plain; charset=utf-8', 'interaction not found or expired (is the _interaction cookie missing?)\n');
      return;
    }
    throw err;
  }
  if (details.uid !== uid) {
    send(res, 400, 'text/plain; charset=utf-8', 'interaction id does not match the cookie\n');
    return;
  }
  const finish = (result) => provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });

  if (action === undefined && req.method === 'GET') {
    if (details.prompt.name === 'consent' && details.session?.accountId) {
      const grantId = await grantConsent(provider, details, details.session.accountId);
      await finish({ consent: { grantId } });
      return;
    }
    const client = await provider.Client.find(details.params.client_id);
    send(res, 200, 'text/html; charset=utf-8', loginPage(uid, details, client?.clientName || details.params.client_id));
    return;
  }

  if (action === '/login' && req.method === 'POST') {
    const form = await readForm(req);
    const login = (form.get('login') || '').trim();
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(login)) {
      send(res, 400, 'text/plain; charset=utf-8', 'login must be 1-64 characters of A-Z a-z 0-9 . _ -\n');
      return;
    }
    profiles.set(login, profileFor(login, {
      email: form.get('email') || undefined,
      name: form.get('name') || undefined,
      emailVerified: form.get('email_verified') === 'false' ? false : true,
    }));
    const grantId = await grantConsent(provider, details, login);
    await finish({ login: { accountId: login }, consent: { grantId } });
    return;
  }

  if (action === '/abort' && req.method === 'POST') {
    await finish({ error: 'access_denied', error_description: 'End-User aborted interaction' });
    return;
  }

  send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
}

// ---------------------------------------------------------------------------------------
// Listen first (the port may be OS-chosen), then build the provider with the final issuer.

let provider;
let providerCallback;
const INTERACTION = /^\/interaction\/([A-Za-z0-9_-]+)(\/login|\/abort)?$/;

const server = http.createServer((req, res) => {
  if (!providerCallback) {
    send(res, 503, 'text/plain; charset=utf-8', 'starting\n');
    return;
  }
  const path = new URL(req.url, 'http://localhost').pathname;
  const m = INTERACTION.exec(path);
  if (m) {
    handleInteraction(provider, req, res, m[1], m[2]).catch((err) => {
      process.stderr.write(`interaction error: ${err.name}: ${err.message}\n`);
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.end();
    });
    return;
  }
  providerCallback(req, res);
});

server.listen(port, host, () => {
  const actualPort = server.address().port;
  const issuer = process.env.ISSUER || `http://127.0.0.1:${actualPort}`;
  provider = new Provider(issuer, configuration);
  provider.on('server_error', (ctx, err) => {
    process.stderr.write(`server_error: ${err.name}: ${err.message}\n`);
  });
  providerCallback = provider.callback();
  process.stdout.write(`LISTENING ${actualPort}\n`);
});
