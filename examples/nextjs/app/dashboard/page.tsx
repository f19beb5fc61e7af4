// A server component: the user comes from latch's GET /session, asked on the server with the
// browser's cookies. The middleware already let this request in (latch's /verify).
import { headers } from 'next/headers';
import { redirect } from 'next/navigation';
import { latchSession } from '@/lib/latch';
import SignOutButton from '../sign-out-button';
import ApiPanel from './api-panel';

export const dynamic = 'force-dynamic';

export default async function Dashboard() {
  const session = await latchSession((await headers()).get('cookie'));
  // The session can end between the middleware's check and this one.
  if (!session) redirect('/api/auth/signin?callbackUrl=%2Fdashboard');
  const { user } = session;
  return (
    <main>
      <h1>Dashboard</h1>
      <dl id="user">
        <dt>Name</dt>
        <dd id="user-name">{user.name}</dd>
        <dt>Email</dt>
        <dd id="user-email">{user.email}</dd>
        <dt>latch user id</dt>
        <dd id="user-id">{user.id}</dd>
        <dt>Session ends</dt>
        <dd>{session.expires}</dd>
      </dl>
      <ApiPanel />
      <p>
        <SignOutButton />
      </p>
    </main>
  );
}
