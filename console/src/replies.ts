// Streamed chat replies: sending a message with `stream: true`, following a reply that
// is being generated (after a reload, from another tab, or after a dropped connection)
// and stopping it. The server keeps the reply's progress, so a follower gets the same
// events from `GET /api/chat/messages/{id}/stream`; event ids are byte offsets, and
// `?last_event_id=` resumes exactly after the last event received.

import { api, apiError, type Schemas } from './api';
import { readEvents } from './sse';

/** Data of the `start` event. */
export interface ReplyIds {
  conversation_id: string;
  reply_message_id: string;
  /** Absent when following (only the sender learns it). */
  user_message_id?: string;
  /** The memories the prompt included (as in the `done` event's answer). */
  memory_used?: Schemas['MemoryUse'][];
}

/** How a reply stream ended. */
export type ReplyEnd =
  | { kind: 'done'; response: Schemas['ChatResponse'] }
  | { kind: 'cancelled'; content: string | null }
  | { kind: 'error'; code: string; message: string };

export interface ReplyHandlers {
  onStart(ids: ReplyIds): void;
  onDelta(text: string): void;
  onEnd(end: ReplyEnd): void;
}

/** Reconnections after a dropped stream before giving up. */
const MAX_RETRIES = 5;

/** Sends a message and streams its reply; resolves when the reply has ended. */
export async function sendMessage(
  body: Schemas['ChatRequest'],
  handlers: ReplyHandlers,
  signal: AbortSignal,
): Promise<void> {
  const { data, error, response } = await api.POST('/api/chat', {
    body: { ...body, stream: true },
    parseAs: 'stream',
    signal,
  });
  if (!response.ok || !data) throw apiError(error, response);
  let replyId: string | null = null;
  const seen = await consume(data, handlers, (ids) => (replyId = ids.reply_message_id));
  if (seen.ended || signal.aborted) return;
  // The connection dropped before the end: the reply goes on without us; follow it.
  if (!replyId) throw new Error('The reply stream ended before it started.');
  await followReply(replyId, handlers, signal, seen.lastId);
}

/**
 * Follows the reply `replyId` from after event `lastId` (from the start, `start` event
 * included, when null) to its end, reconnecting when the connection drops.
 */
export async function followReply(
  replyId: string,
  handlers: ReplyHandlers,
  signal: AbortSignal,
  lastId: string | null = null,
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const query = lastId === null ? {} : { last_event_id: Number(lastId) };
    try {
      const { data, error, response } = await api.GET('/api/chat/messages/{message_id}/stream', {
        params: { path: { message_id: replyId }, query },
        parseAs: 'stream',
        signal,
      });
      if (!response.ok || !data) throw apiError(error, response);
      const seen = await consume(data, handlers);
      lastId = seen.lastId ?? lastId;
      if (seen.ended) return;
    } catch (e) {
      // An API answer (404, 401...) is final; a network failure is retried.
      if (signal.aborted || !(e instanceof TypeError) || attempt >= MAX_RETRIES) throw e;
    }
    if (signal.aborted) return;
    if (attempt >= MAX_RETRIES) throw new Error('The reply stream keeps dropping; reload to try again.');
    await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** Math.min(attempt, 3)));
  }
}

/** Asks the server to stop generating `replyId` (every follower then gets `cancelled`). */
export async function cancelReply(replyId: string): Promise<void> {
  const { error, response } = await api.POST('/api/chat/messages/{message_id}/cancel', {
    params: { path: { message_id: replyId } },
  });
  // 409 not_generating: it finished meanwhile, which is fine.
  if (!response.ok && response.status !== 409) throw apiError(error, response);
}

/** Reads one response's events; whether a closing event came, and the last id. */
async function consume(
  body: ReadableStream<Uint8Array>,
  handlers: ReplyHandlers,
  started?: (ids: ReplyIds) => void,
): Promise<{ ended: boolean; lastId: string | null }> {
  let lastId: string | null = null;
  try {
    for await (const e of readEvents(body)) {
      if (e.id !== null) lastId = e.id;
      const data = parse(e.data);
      switch (e.event) {
        case 'start': {
          const ids = data as ReplyIds;
          started?.(ids);
          handlers.onStart(ids);
          break;
        }
        case 'delta':
          handlers.onDelta(String((data as { text?: unknown }).text ?? ''));
          break;
        case 'done':
          handlers.onEnd({ kind: 'done', response: data as Schemas['ChatResponse'] });
          return { ended: true, lastId };
        case 'cancelled': {
          const content = (data as { content?: unknown }).content;
          handlers.onEnd({ kind: 'cancelled', content: typeof content === 'string' ? content : null });
          return { ended: true, lastId };
        }
        case 'error': {
          const { code, message } = data as { code?: unknown; message?: unknown };
          handlers.onEnd({ kind: 'error', code: String(code ?? 'error'), message: String(message ?? 'The reply failed.') });
          return { ended: true, lastId };
        }
      }
    }
  } catch (e) {
    // A read that fails midway is a dropped connection: resume from `lastId`.
    if (!(e instanceof TypeError)) throw e;
  }
  return { ended: false, lastId };
}

function parse(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return {};
  }
}
