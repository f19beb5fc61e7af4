'use client';
// Calls this app's API (app/api/me) with latch's access token, through the axios instance in
// lib/api-client.ts (token in memory, one refresh on a 401, one retry).
import type { AxiosResponse } from 'axios';
import { useState } from 'react';
import { api, refreshCount } from '@/lib/api-client';

interface Outcome {
  round: number;
  ok: number;
  failed: number;
  refreshes: number;
  answer?: unknown;
}

export default function ApiPanel() {
  const [outcome, setOutcome] = useState<Outcome>({ round: 0, ok: 0, failed: 0, refreshes: 0 });

  async function call(times: number) {
    const results = await Promise.allSettled(
      Array.from({ length: times }, () => api.get('/api/me')),
    );
    const ok = results.filter(
      (r): r is PromiseFulfilledResult<AxiosResponse> => r.status === 'fulfilled',
    );
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    setOutcome((prev) => ({
      round: prev.round + 1,
      ok: ok.length,
      failed: failed.length,
      refreshes: refreshCount(),
      answer: ok[0]?.value.data ?? String(failed[0]?.reason),
    }));
  }

  return (
    <section>
      <h2>Your API</h2>
      <p>
        <code>GET /api/me</code> verifies latch&apos;s access token with jose. The token is in
        this page&apos;s memory only; when it expires, the next calls refresh it once.
      </p>
      <button id="call" type="button" onClick={() => void call(1)}>
        Call the API
      </button>
      <button id="call5" type="button" onClick={() => void call(5)}>
        Five calls at once
      </button>
      <p
        id="result"
        data-round={outcome.round}
        data-ok={outcome.ok}
        data-failed={outcome.failed}
        data-refreshes={outcome.refreshes}
      >
        {outcome.round === 0
          ? 'No call yet.'
          : `Round ${outcome.round}: ${outcome.ok} answered, ${outcome.failed} failed; ${outcome.refreshes} refresh(es) so far.`}
      </p>
      {outcome.answer !== undefined && <pre id="answer">{JSON.stringify(outcome.answer, null, 2)}</pre>}
    </section>
  );
}
