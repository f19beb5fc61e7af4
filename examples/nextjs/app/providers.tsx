'use client';
// next-auth/react's SessionProvider, unchanged: it reads /api/auth/session, which the rewrite
// sends to latch.
import { SessionProvider } from 'next-auth/react';
import type { ReactNode } from 'react';

export default function Providers({ children }: { children: ReactNode }) {
  return <SessionProvider>{children}</SessionProvider>;
}
