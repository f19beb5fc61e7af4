// Server-side only: where this app's server code (middleware, server components, route
// handlers) reaches latch directly, not through the /api/auth rewrite.
//   LATCH_URL     latch's own address, e.g. http://127.0.0.1:3001 (latch's server.listen)
//   LATCH_ISSUER  latch's public_url + base_path as browsers see it (this app's origin +
//                 /api/auth): the `iss` of its tokens and where the middleware sends the
//                 browser to sign in; default http://localhost:3000/api/auth (`next dev`)
export const LATCH_URL = (process.env.LATCH_URL || 'http://127.0.0.1:3001').replace(/\/+$/, '');
export const LATCH_BASE = `${LATCH_URL}/api/auth`;
export const LATCH_ISSUER = (process.env.LATCH_ISSUER || 'http://localhost:3000/api/auth').replace(/\/+$/, '');

/** latch's `GET /session` answer for a signed-in user. */
export interface LatchSession {
  user: {
    id: string;
    name?: string | null;
    email?: string | null;
    email_verified?: boolean;
    image?: string | null;
    groups?: string[];
  };
  expires: string;
}

/**
 * The user behind the browser's cookies, from latch's `/session` (`null` when signed out).
 * `cookie` is the incoming request's Cookie header, passed on as it is: latch reads only its
 * own session cookie from it. Throws when latch cannot answer, so a page fails loudly instead
 * of treating an outage as "signed out".
 */
export async function latchSession(cookie: string | null): Promise<LatchSession | null> {
  if (!cookie) return null;
  const response = await fetch(`${LATCH_BASE}/session`, {
    headers: { cookie },
    cache: 'no-store',
  });
  if (!response.ok) throw new Error(`latch GET /session answered ${response.status}`);
  const body = (await response.json()) as Partial<LatchSession>;
  return body.user ? (body as LatchSession) : null;
}
