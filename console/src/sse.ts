// Server-sent events read from a fetch body. EventSource cannot send the Authorization
// header, so streamed replies are fetched and their bytes parsed here, as the HTML
// standard's event-stream rules say (comments, multi-line data, id, CRLF or LF).

export interface SseEvent {
  /** The event's `id:` (for chat replies, a byte offset into the reply). */
  id: string | null;
  /** The event's name (`message` when it has none). */
  event: string;
  /** Its data lines, joined with newlines. */
  data: string;
}

/** Yields each event of `body` as it arrives; returns when the stream ends. */
export async function* readEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let event = '';
  let data: string[] = [];
  let id: string | null = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      // A lone CR at the end may be the first half of CRLF: wait for more.
      const lines = buffer.split(/\r\n|\n|\r(?=.)/s);
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        if (line === '') {
          if (data.length) yield { id, event: event || 'message', data: data.join('\n') };
          event = '';
          data = [];
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const name = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (name === 'event') event = value;
        else if (name === 'data') data.push(value);
        else if (name === 'id' && !value.includes('\0')) id = value;
      }
    }
  } finally {
    // Stops the download when the caller stops reading early.
    await reader.cancel().catch(() => {});
  }
}
