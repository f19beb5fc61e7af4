// The browser's HTTP client for this app's API: an axios instance that carries latch's access
// token and, when the API answers 401, refreshes it once and retries the request once.
// Imported by client components only.
//
// The access token lives in a variable of this module and nowhere else: not localStorage,
// not sessionStorage, not a cookie. A reload starts without one and trades latch's session
// cookie for a new one (POST /api/auth/token). The refresh cookie that POST /api/auth/refresh
// needs is HttpOnly, SameSite=Strict and scoped to Path=/api/auth/refresh: this code never
// sees it, and the browser sends it to latch's refresh route alone.
//
// The usual bugs of this pattern, avoided:
// - Many calls failing at once (the token expired under all of them) start ONE refresh: the
//   others wait for it. Parallel refreshes would present the same refresh token several times;
//   latch rotates it on the first, and only its short grace window keeps the rest from
//   counting as the reuse of a stolen token, which ends the whole session.
// - A call that fails after the token was already replaced (by another call's refresh) just
//   retries with the new token, no second refresh.
// - No infinite retry: each request is retried at most once. A 401 to the retry, sent with a
//   token fresh from latch, will not get better by refreshing again: sign out, and the
//   middleware sends the browser to sign in.
// - A refused refresh (session ended, signed out elsewhere, refresh token revoked) sends the
//   user to sign in. latch down or a 5xx is an error for the caller, not a sign-out.
import axios from 'axios';
import { signIn, signOut } from 'next-auth/react';

declare module 'axios' {
  interface AxiosRequestConfig {
    /** The access token this request went out with (set by the request interceptor). */
    sentWith?: string;
    /** Set on the one retry after a refresh: a 401 to it is final. */
    retried?: boolean;
  }
}

let accessToken: string | null = null;
// The one POST /token or /refresh in flight, shared by every caller meanwhile.
let inFlight: Promise<string | null> | null = null;
let refreshes = 0;
let leaving = false;

// latch's token routes, on this origin through the /api/auth rewrite (latch sends no CORS
// headers: these must be same-origin requests).
const latch = axios.create({ baseURL: '/api/auth', withCredentials: true, timeout: 10_000 });

/** A new access token from `route`, or `null` when latch says 401 (no session to use). */
function obtain(route: '/token' | '/refresh'): Promise<string | null> {
  if (!inFlight) {
    if (route === '/refresh') refreshes += 1;
    inFlight = latch
      .post<{ access_token: string }>(route)
      .then(({ data }) => (accessToken = data.access_token))
      .catch((err: unknown) => {
        if (axios.isAxiosError(err) && err.response?.status === 401) return (accessToken = null);
        throw err;
      })
      .finally(() => {
        inFlight = null;
      });
  }
  return inFlight;
}

/** Leaves the page (once, however many calls ask); never settles, so no caller shows an error. */
function leave(how: 'signin' | 'signout'): Promise<never> {
  if (!leaving) {
    leaving = true;
    const callbackUrl = window.location.href;
    void (how === 'signin' ? signIn(undefined, { callbackUrl }) : signOut({ callbackUrl }));
  }
  return new Promise<never>(() => {});
}

/** How many POST /refresh this page has sent (shown on the dashboard). */
export function refreshCount(): number {
  return refreshes;
}

export const api = axios.create({ timeout: 10_000 });

api.interceptors.request.use(async (config) => {
  const token = accessToken ?? (await obtain('/token')) ?? (await leave('signin'));
  config.sentWith = token;
  config.headers.set('Authorization', `Bearer ${token}`);
  return config;
});

api.interceptors.response.use(undefined, async (error: unknown) => {
  if (!axios.isAxiosError(error) || error.response?.status !== 401 || !error.config) throw error;
  const config = error.config;
  if (config.retried) return leave('signout');
  // Refresh only if nobody replaced the token since this request went out.
  if (accessToken === config.sentWith && !(await obtain('/refresh'))) return leave('signin');
  config.retried = true;
  return api(config);
});
