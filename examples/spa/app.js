// latch SPA example: an access token kept in memory only, and one small fetch wrapper that
// refreshes it when the API says 401. No framework, no build step. Loaded as a module, so
// nothing here is a global other scripts could reach by name.

// latch's routes on this page's own origin (its base_path behind the same reverse proxy).
// latch sends no CORS headers, so /token and /refresh must be same-origin requests.
const LATCH = document.querySelector('meta[name="latch"]').content.replace(/\/$/, '');

// The access token lives in this variable and nowhere else: not localStorage, not
// sessionStorage, not a cookie. Script injected into the page (XSS) can still use it while the
// page is open, but cannot carry away anything that outlives the tab; a reload simply asks
// latch for a new one.
let accessToken = null;

// The one refresh in flight, shared by every request that got a 401 meanwhile (single flight).
// Without it, three parallel 401s would send three POST /refresh with the same refresh cookie:
// latch rotates the token on the first one, and only its grace window keeps the other two from
// counting as reuse of a stolen token (which revokes the whole session).
let refreshing = null;

// Sends the user to latch's sign-in page; latch brings them back here afterwards.
function signIn() {
  location.assign(`${LATCH}/signin?callbackUrl=${encodeURIComponent(location.href)}`);
  return new Promise(() => {}); // the page is going away: never settle
}

// POST /token or /refresh; both answer {"access_token","token_type","expires_in"}.
// credentials: 'include' sends latch's cookies (the session cookie to /token, the refresh
// cookie to /refresh). The refresh cookie is HttpOnly, so this script can never read it; it is
// SameSite=Strict, so no other site can make the browser send it; and it is scoped to
// Path=<base_path>/refresh, so it goes to latch's refresh route and nowhere else, not even
// to this API.
// Resolves true with a new token, false when latch says 401 (no session / refresh refused);
// anything else (latch down, 5xx) throws instead of bouncing the user to the sign-in page.
async function fetchToken(route) {
  const response = await fetch(LATCH + route, { method: 'POST', credentials: 'include' });
  if (response.status === 401) return false;
  if (!response.ok) throw new Error(`POST ${route}: latch answered ${response.status}`);
  accessToken = (await response.json()).access_token;
  return true;
}

function refreshOnce() {
  refreshing ??= fetchToken('/refresh').finally(() => {
    refreshing = null;
  });
  return refreshing;
}

// fetch() for the API: adds the bearer token; on a 401 refreshes once and retries once.
// A second 401 is returned to the caller as is (no loops). If the refresh fails (session
// ended, signed out elsewhere, refresh token revoked), the user signs in again.
async function apiFetch(input, init = {}) {
  const send = (token) => {
    const headers = new Headers(init.headers);
    if (token) headers.set('Authorization', `Bearer ${token}`);
    return fetch(input, { ...init, headers });
  };
  const used = accessToken;
  const response = await send(used);
  if (response.status !== 401) return response;
  // Refresh only if nobody else did while our request was out: if the token already changed,
  // a parallel request refreshed it and we just retry with the new one.
  if (accessToken === used && !(await refreshOnce())) return signIn();
  return send(accessToken);
}

// ---- the page -------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

// Shows who is signed in, from the API's verified answer (the page never trusts the token's
// contents on its own; it only carries it).
async function callApi() {
  const response = await apiFetch('/api/me');
  const body = await response.json().catch(() => null);
  $('answer').textContent = `${response.status} ${JSON.stringify(body, null, 2)}`;
  if (response.ok) {
    $('who-name').textContent = body.name ?? body.sub;
    $('who-email').textContent = body.email ?? '';
    $('who').hidden = false;
    $('status').textContent = 'Access token in memory.';
  }
}

async function start() {
  $('signout').href = `${LATCH}/signout?callbackUrl=${encodeURIComponent(location.href)}`;
  $('call').addEventListener('click', () => callApi());
  $('call3').addEventListener('click', () => Promise.all([callApi(), callApi(), callApi()]));
  $('spoil').addEventListener('click', () => {
    accessToken = 'spoiled.access.token';
    $('status').textContent = 'Access token spoiled; the next call refreshes it.';
  });
  // A fresh page has no token: trade latch's session cookie for one. No session: sign in.
  if (!(await fetchToken('/token'))) return signIn();
  await callApi();
}

start().catch((err) => {
  $('status').textContent = `Error: ${err.message}`;
});
