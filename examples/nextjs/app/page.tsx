'use client';
// The public home page: next-auth/react's useSession() and signIn(), unchanged, against latch.
import Link from 'next/link';
import { signIn, useSession } from 'next-auth/react';
import SignOutButton from './sign-out-button';

export default function Home() {
  const { data: session, status } = useSession();
  return (
    <main>
      <h1>latch + Next.js</h1>
      {status === 'loading' && <p id="status">Loading…</p>}
      {status === 'unauthenticated' && (
        <>
          <p id="status">You are signed out.</p>
          <button id="signin" type="button" onClick={() => void signIn('dev', { callbackUrl: '/dashboard' })}>
            Sign in
          </button>
        </>
      )}
      {status === 'authenticated' && (
        <>
          <p id="status">
            Signed in as <b id="email">{session.user?.email ?? session.user?.name}</b>.
          </p>
          <p>
            <Link href="/dashboard">Dashboard</Link>
          </p>
          <SignOutButton />
        </>
      )}
    </main>
  );
}
