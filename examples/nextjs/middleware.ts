// Protects /dashboard: each request asks latch's forward-auth route, GET /verify, with the
// browser's own cookies. 200: the request goes on. 401: the visitor is sent to latch's sign-in
// page and comes back here afterwards. Anything else (403 from a [[policies]] rule, 503 when
// latch's store is down, latch unreachable) stops the request: fail closed, never let it in.
import { NextResponse, type NextRequest } from 'next/server';
import { LATCH_BASE, LATCH_ISSUER } from '@/lib/latch';

export async function middleware(request: NextRequest) {
  const asked = request.nextUrl.pathname + request.nextUrl.search;
  let verify: Response;
  try {
    verify = await fetch(`${LATCH_BASE}/verify`, {
      headers: {
        cookie: request.headers.get('cookie') ?? '',
        // What the request was for, so latch's [[policies]] (hosts, paths) can apply: this
        // app's configured host, never the client's Host header (which could name another
        // app's policy).
        'x-forwarded-host': new URL(LATCH_ISSUER).host,
        'x-forwarded-uri': asked,
      },
      cache: 'no-store',
      redirect: 'manual',
    });
  } catch {
    return new NextResponse('The sign-in service is unreachable.', { status: 503 });
  }
  if (verify.status === 200) return NextResponse.next();
  if (verify.status === 401) {
    // latch's sign-in page at its public URL (not request.nextUrl, whose host is the address
    // Next.js listens on, not the origin the browser used); callbackUrl is a path, which latch
    // resolves against its public_url, this app's origin.
    const signin = new URL(`${LATCH_ISSUER}/signin`);
    signin.searchParams.set('callbackUrl', asked);
    return NextResponse.redirect(signin);
  }
  if (verify.status === 403) return new NextResponse('Forbidden.', { status: 403 });
  return new NextResponse('The sign-in service is unavailable.', { status: 503 });
}

export const config = { matcher: ['/dashboard', '/dashboard/:path*'] };
