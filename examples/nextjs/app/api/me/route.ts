// An API route handler that accepts latch access tokens: `Authorization: Bearer <token>`,
// verified with jose against latch's JWKS (signature, ES256 only, `iss`, `aud`, `exp`).
// It never asks latch per request: the keys are fetched once, cached, and fetched again when
// a token names a key id not seen yet (latch publishes its next key before signing with it).
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { LATCH_BASE, LATCH_ISSUER } from '@/lib/latch';

export const dynamic = 'force-dynamic';

const AUDIENCE = process.env.LATCH_AUDIENCE || 'api'; // one of latch's tokens.audience
// Seconds of clock difference tolerated between latch's host and this one.
const CLOCK_TOLERANCE = Number(process.env.LATCH_CLOCK_TOLERANCE ?? '30');

const jwks = createRemoteJWKSet(new URL(`${LATCH_BASE}/.well-known/jwks.json`));

// jose's codes for a token that is bad (expired, forged, wrong iss/aud, malformed, unknown
// key). Anything else (latch unreachable, a JWKS timeout) is this server's problem: 503.
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

const NO_STORE = { 'cache-control': 'no-store' };

// 401 as RFC 6750 §3 has it: no error code without a token, `invalid_token` for a bad one.
// Either way the browser's interceptor refreshes once and retries.
function unauthorized(description?: string) {
  const challenge = description
    ? `Bearer realm="api", error="invalid_token", error_description="${description.replace(/["\\]/g, '')}"`
    : 'Bearer realm="api"';
  return Response.json(
    { error: description ? 'invalid_token' : 'unauthorized' },
    { status: 401, headers: { ...NO_STORE, 'www-authenticate': challenge } },
  );
}

export async function GET(request: Request) {
  const match = /^Bearer +([A-Za-z0-9_.-]+)$/i.exec(request.headers.get('authorization') ?? '');
  if (!match) return unauthorized();
  try {
    const { payload } = await jwtVerify(match[1], jwks, {
      issuer: LATCH_ISSUER,
      audience: AUDIENCE,
      algorithms: ['ES256'], // latch signs ES256; never what the token itself asks for
      clockTolerance: CLOCK_TOLERANCE,
    });
    return Response.json(
      { sub: payload.sub, email: payload.email, name: payload.name, exp: payload.exp },
      { headers: NO_STORE },
    );
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code && TOKEN_ERRORS.has(code)) return unauthorized((err as Error).message);
    console.error('cannot verify tokens:', err);
    return Response.json(
      { error: 'temporarily_unavailable' },
      { status: 503, headers: { ...NO_STORE, 'retry-after': '5' } },
    );
  }
}
