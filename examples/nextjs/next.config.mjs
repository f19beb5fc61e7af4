// latch answers this app's /api/auth/* (SPEC §7): Next.js proxies every request there to
// latch, which runs with base_path = "/api/auth" and public_url = this app's origin. The
// browser sees one origin, so latch's session cookie is first-party and HttpOnly, and
// next-auth/react's relative /api/auth/* calls reach latch unchanged.
//
// `next build` writes the rewrites into .next/routes-manifest.json: set LATCH_URL (where the
// Next.js server reaches latch, e.g. http://127.0.0.1:3001) when building, and the same value
// when running (middleware, server components and the API use it directly).
const latchUrl = (process.env.LATCH_URL || 'http://127.0.0.1:3001').replace(/\/+$/, '');

/** @type {import('next').NextConfig} */
const nextConfig = {
  poweredByHeader: false,
  // The example ships no ESLint setup; `next build` still type-checks it.
  eslint: { ignoreDuringBuilds: true },
  async rewrites() {
    return {
      // beforeFiles: latch wins even if an old app/api/auth/[...nextauth] route is still there.
      beforeFiles: [{ source: '/api/auth/:path*', destination: `${latchUrl}/api/auth/:path*` }],
    };
  },
};

export default nextConfig;
