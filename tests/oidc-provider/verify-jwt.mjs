// Verifies a JWT the way an app would, with panva's `jose` (a library latch did not write):
//   node verify-jwt.mjs <token> <jwks-url> <issuer> <audience>
// Prints one JSON line: {"ok":true,"payload":{...},"header":{...}} or {"ok":false,"error":"<code>","message":"..."}.
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [token, jwksUrl, issuer, audience] = process.argv.slice(2);
if (!token || !jwksUrl || !issuer || !audience) {
  console.error('usage: node verify-jwt.mjs <token> <jwks-url> <issuer> <audience>');
  process.exit(2);
}

try {
  const jwks = createRemoteJWKSet(new URL(jwksUrl));
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer,
    audience,
    algorithms: ['ES256'],
  });
  console.log(JSON.stringify({ ok: true, payload, header: protectedHeader }));
} catch (err) {
  console.log(JSON.stringify({ ok: false, error: err.code ?? err.name, message: err.message }));
}
