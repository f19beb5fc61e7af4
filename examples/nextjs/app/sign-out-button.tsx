'use client';
import { signOut } from 'next-auth/react';

// next-auth/react's signOut(), unchanged: it POSTs to /api/auth/signout (latch), which ends the
// session; back on /dashboard the middleware sends the browser to sign in.
export default function SignOutButton() {
  return (
    <button id="signout" type="button" onClick={() => void signOut({ callbackUrl: '/dashboard' })}>
      Sign out
    </button>
  );
}
