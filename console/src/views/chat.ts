// The chat tab: the conversation list with search (keyword, semantic or hybrid), a
// conversation's messages, the composer with the model picker, and streamed replies with
// a stop button and the memories their prompt used. A reply being generated is followed
// again after a reload: its ids are in sessionStorage, and any reply still `streaming`
// in a conversation's history is followed when it opens.

import { api, ApiError, ok, type Schemas } from '../api';
import { field, guarded, h, replace, showError, when } from '../dom';
import { cancelReply, followReply, sendMessage, type ReplyEnd, type ReplyHandlers } from '../replies';
import { session } from '../session';
import type { View } from './view';

type ChatMessage = Schemas['ChatMessage'];
type SearchMode = Schemas['SearchMode'];

const SEARCH_MODES: SearchMode[] = ['keyword', 'semantic', 'hybrid'];

/** One message on screen. */
interface Bubble {
  el: HTMLLIElement;
  body: HTMLDivElement;
  meta: HTMLDivElement;
  /** "memory used: …" under a reply produced here. */
  memory: HTMLDivElement;
}

/** The reply this tab is streaming or following. */
interface Live {
  controller: AbortController;
  bubble: Bubble;
  replyId: string | null;
  stopRequested: boolean;
}

export function chatView(root: HTMLElement): View {
  let current: string | null = session.conversationId;
  let live: Live | null = null;
  let searchTimer = 0;
  /** Counts conversation opens, so that only the latest one renders. */
  let opens = 0;
  /** Counts searches, so that only the latest one renders. */
  let searches = 0;
  /** Titles of the conversations listed, by id. */
  const titles = new Map<string, string>();

  const search = h('input', {
    type: 'search',
    placeholder: 'Search conversations',
    'aria-label': 'Search conversations',
    'data-testid': 'conversation-search',
    oninput: () => {
      clearTimeout(searchTimer);
      searchTimer = window.setTimeout(() => void guarded(loadConversations), 250);
    },
  });
  const searchMode = h(
    'select',
    {
      'aria-label': 'Search mode',
      'data-testid': 'search-mode',
      onchange: () => {
        clearTimeout(searchTimer);
        void guarded(loadConversations);
      },
    },
    ...SEARCH_MODES.map((m) => h('option', { value: m }, m)),
  );
  const list = h('ul', { class: 'conversation-list', 'data-testid': 'conversation-list' });
  const hits = h('div', { class: 'hits', 'data-testid': 'search-hits' });
  const picker = h('select', {
    'data-testid': 'model-picker',
    onchange: () => (session.model = picker.value),
  });
  const useMemory = h('input', { type: 'checkbox', checked: true, 'data-testid': 'use-memory' });
  const messages = h('ol', { class: 'messages', 'data-testid': 'messages', 'aria-live': 'polite' });
  const title = h('h2', { class: 'thread-title', 'data-testid': 'conversation-title' }, 'New conversation');
  const input = h('textarea', {
    rows: 3,
    placeholder: 'Write a message… (Enter sends, Shift+Enter for a new line)',
    'aria-label': 'Message',
    'data-testid': 'composer',
    onkeydown: (e: KeyboardEvent) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        composer.requestSubmit();
      }
    },
  });
  const sendButton = h('button', { type: 'submit', 'data-testid': 'send' }, 'Send');
  const stopButton = h('button', { type: 'button', class: 'danger', disabled: true, 'data-testid': 'stop', onclick: stop }, 'Stop');
  const composer = h(
    'form',
    { class: 'composer', onsubmit: (e: Event) => (e.preventDefault(), void send()) },
    input,
    h('div', { class: 'composer-actions' }, sendButton, stopButton),
  );

  replace(
    root,
    h(
      'div',
      { class: 'chat' },
      h(
        'aside',
        { class: 'sidebar', 'aria-label': 'Conversations' },
        h('button', { type: 'button', class: 'primary', 'data-testid': 'new-chat', onclick: () => newChat() }, 'New chat'),
        h('div', { class: 'search-row' }, search, searchMode),
        list,
        hits,
      ),
      h(
        'section',
        { class: 'thread', 'aria-label': 'Conversation' },
        h(
          'div',
          { class: 'toolbar' },
          title,
          field('Model', picker),
          h('label', { class: 'check' }, useMemory, ' Use memory'),
        ),
        messages,
        composer,
      ),
    ),
  );

  // Reopen what this tab had open; a reply still streaming there is followed again.
  const resume = session.streaming;
  if (resume) current = resume.conversationId;
  if (current) {
    openConversation(current).catch((e: unknown) => {
      // Deleted meanwhile (here or in another tab): start afresh, quietly.
      if (e instanceof ApiError && e.status === 404) newChat();
      else showError(e instanceof Error ? e.message : String(e));
    });
  }

  return {
    show() {
      void guarded(loadConversations);
      void guarded(loadModels);
    },
  };

  async function loadModels(): Promise<void> {
    const models = await ok(api.GET('/api/arcana/llm/models'));
    const chosen = session.model;
    replace(
      picker,
      h('option', { value: '' }, 'Automatic (routing)'),
      ...models
        .filter((m) => m.enabled)
        .map((m) => h('option', { value: m.id, selected: m.id === chosen }, `${m.display_name} · ${m.provider_name}`)),
    );
    if (picker.value !== chosen) session.model = picker.value;
  }

  async function loadConversations(): Promise<void> {
    const q = search.value.trim();
    const mode = searchMode.value as SearchMode;
    const mine = ++searches;
    const page = await ok(api.GET('/api/chat/conversations', { params: { query: { q: q || undefined, limit: 100 } } }));
    if (mine !== searches) return;
    for (const c of page.items) titles.set(c.id, c.title);
    if (current && titles.has(current)) title.textContent = titles.get(current) as string;
    replace(
      list,
      ...page.items.map((c) =>
        h(
          'li',
          { 'data-id': c.id, 'aria-current': c.id === current ? 'true' : undefined },
          h(
            'button',
            { type: 'button', class: 'conversation', 'data-testid': 'conversation', onclick: () => void guarded(() => openConversation(c.id)) },
            h('span', { class: 'conversation-name' }, c.title),
            h('time', { datetime: c.updated_at }, when(c.updated_at)),
          ),
          h('button', { type: 'button', class: 'icon', 'aria-label': `Delete conversation ${c.title}`, onclick: () => void guarded(() => remove(c)) }, '×'),
        ),
      ),
    );
    if (!page.items.length) list.append(h('li', { class: 'empty' }, q ? 'No conversation title matches.' : 'No conversations yet.'));
    if (!q) return replace(hits);
    let found: Schemas['SearchResults'];
    try {
      found = await ok(api.GET('/api/chat/search', { params: { query: { q, mode, limit: 10 } } }));
    } catch (e) {
      // No embedding model in this deployment: say so where the hits would be.
      if (!(e instanceof ApiError && e.code === 'embeddings_unavailable')) throw e;
      if (mine === searches) replace(hits, h('p', { class: 'note', 'data-testid': 'search-unavailable' }, e.message));
      return;
    }
    if (mine !== searches) return;
    replace(
      hits,
      h('h3', {}, found.hits.length ? 'Matching messages' : 'No message matches.'),
      found.ranked_by ? h('p', { class: 'ranked-by', 'data-testid': 'search-ranked-by' }, `ranked by ${found.ranked_by}`) : null,
      ...found.hits.map((hit) =>
        h(
          'button',
          { type: 'button', class: 'hit', 'data-testid': 'search-hit', onclick: () => void guarded(() => openConversation(hit.conversation_id)) },
          h(
            'span',
            { class: 'hit-head' },
            h('strong', {}, hit.conversation_title),
            hit.score != null && found.mode !== 'keyword' ? h('span', { class: 'score', 'data-testid': 'search-score', title: 'score' }, hit.score.toFixed(2)) : null,
          ),
          // Semantic snippets are the message's plain text; the others mark matched terms.
          h('span', { class: 'hit-text' }, ...(found.mode === 'semantic' ? [hit.snippet] : snippet(hit.snippet))),
        ),
      ),
    );
  }

  async function remove(c: Schemas['Conversation']): Promise<void> {
    if (!confirm(`Delete “${c.title}” and its messages?`)) return;
    await ok(api.DELETE('/api/chat/conversations/{conversation_id}', { params: { path: { conversation_id: c.id } } }));
    if (c.id === current) newChat();
    await loadConversations();
  }

  function newChat(): void {
    opens++;
    stopFollowing();
    current = null;
    session.conversationId = null;
    title.textContent = 'New conversation';
    replace(messages);
    highlight();
    input.focus();
  }

  async function openConversation(id: string): Promise<void> {
    const mine = ++opens;
    stopFollowing();
    current = id;
    session.conversationId = id;
    highlight();
    const items: ChatMessage[] = [];
    let cursor: string | undefined;
    do {
      const page = await ok(
        api.GET('/api/chat/history/{conversation_id}', { params: { path: { conversation_id: id }, query: { limit: 200, cursor } } }),
      );
      items.push(...page.items);
      cursor = page.next_cursor ?? undefined;
    } while (cursor && items.length < 2000);
    if (mine !== opens) return;
    title.textContent = titles.get(id) ?? 'Conversation';
    const bubbles = new Map<string, Bubble>();
    replace(messages);
    for (const m of items) {
      const b = bubble(m.sender, m.message_content, m.status);
      describe(b, m);
      bubbles.set(m.id, b);
      messages.append(b.el);
    }
    scrollDown(true);
    // The reply to follow: the one this tab was streaming, else any still generating.
    const saved = session.streaming;
    const streaming = items.filter((m) => m.sender === 'llm' && m.status === 'streaming').pop();
    const replyId = saved && saved.conversationId === id && bubbles.has(saved.replyId) ? saved.replyId : streaming?.id;
    const target = replyId ? items.find((m) => m.id === replyId) : undefined;
    if (target && target.status === 'streaming') {
      follow(target.id, bubbles.get(target.id) as Bubble);
    } else {
      session.streaming = null;
    }
  }

  /** Follows a reply being generated, from its first event. */
  function follow(replyId: string, b: Bubble): void {
    const l = begin(b);
    l.replyId = replyId;
    session.streaming = { conversationId: current as string, replyId };
    b.body.textContent = '';
    void run(l, (handlers, signal) => followReply(replyId, handlers, signal));
  }

  async function send(): Promise<void> {
    const text = input.value.trim();
    if (!text || live) return;
    input.value = '';
    const mine = bubble('user', text, 'complete');
    const reply = bubble('llm', '', 'streaming');
    messages.append(mine.el, reply.el);
    scrollDown(true);
    const l = begin(reply);
    const body: Schemas['ChatRequest'] = {
      message: text,
      conversation_id: current ?? undefined,
      model: session.model || undefined,
      use_memory: useMemory.checked,
    };
    const sent = await run(l, (handlers, signal) => sendMessage(body, handlers, signal));
    if (!sent && !l.replyId) {
      // Refused before anything started: nothing was stored; give the text back.
      mine.el.remove();
      reply.el.remove();
      input.value = text;
    }
    void guarded(loadConversations);
  }

  function begin(b: Bubble): Live {
    const l: Live = { controller: new AbortController(), bubble: b, replyId: null, stopRequested: false };
    live = l;
    sendButton.disabled = true;
    stopButton.disabled = false;
    return l;
  }

  /** Runs a send or a follow to its end; false when it failed. */
  async function run(l: Live, go: (handlers: ReplyHandlers, signal: AbortSignal) => Promise<void>): Promise<boolean> {
    const handlers: ReplyHandlers = {
      onStart(ids) {
        l.replyId = ids.reply_message_id;
        if (current !== ids.conversation_id) {
          current = ids.conversation_id;
          session.conversationId = current;
          void guarded(loadConversations);
        }
        session.streaming = { conversationId: ids.conversation_id, replyId: ids.reply_message_id };
        if (ids.memory_used) memoryUsed(l.bubble, ids.memory_used);
        if (l.stopRequested) void guarded(() => cancelReply(ids.reply_message_id));
      },
      onDelta(text) {
        const near = nearBottom();
        l.bubble.body.append(text);
        if (near) scrollDown();
      },
      onEnd(end) {
        finish(l.bubble, end);
      },
    };
    try {
      await go(handlers, l.controller.signal);
      return true;
    } catch (e) {
      if (l.controller.signal.aborted) return true;
      setStatus(l.bubble, 'error');
      showError(e instanceof Error ? e.message : String(e));
      return false;
    } finally {
      if (live === l) {
        live = null;
        session.streaming = null;
        sendButton.disabled = false;
        stopButton.disabled = true;
      }
    }
  }

  function stop(): void {
    if (!live) return;
    live.stopRequested = true;
    stopButton.disabled = true;
    const id = live.replyId;
    if (id) void guarded(() => cancelReply(id));
  }

  /** Stops watching the current reply here (it goes on being generated). */
  function stopFollowing(): void {
    if (!live) return;
    const l = live;
    live = null;
    session.streaming = null;
    l.controller.abort();
    sendButton.disabled = false;
    stopButton.disabled = true;
  }

  function finish(b: Bubble, end: ReplyEnd): void {
    switch (end.kind) {
      case 'done': {
        const r = end.response;
        b.body.textContent = r.content;
        setStatus(b, 'complete');
        const fallback = r.fallback_from ? ` · instead of ${r.fallback_from.model_name} (${r.fallback_from.code})` : '';
        b.meta.textContent = `${r.model_name} · ${r.usage.prompt_tokens}+${r.usage.completion_tokens} tokens · ${Math.round(r.latency_ms)} ms${fallback}`;
        if (r.memory_used) memoryUsed(b, r.memory_used);
        break;
      }
      case 'cancelled':
        if (end.content !== null) b.body.textContent = end.content;
        setStatus(b, 'cancelled');
        b.meta.textContent = 'Stopped';
        break;
      case 'error':
        setStatus(b, 'error');
        b.meta.textContent = `Failed: ${end.message}`;
        showError(end.message);
        break;
    }
  }

  function highlight(): void {
    for (const li of list.querySelectorAll('li')) {
      if (li.dataset.id === current) li.setAttribute('aria-current', 'true');
      else li.removeAttribute('aria-current');
    }
  }

  function nearBottom(): boolean {
    return messages.scrollHeight - messages.scrollTop - messages.clientHeight < 80;
  }

  function scrollDown(always = false): void {
    if (always || nearBottom()) messages.scrollTop = messages.scrollHeight;
  }
}

function bubble(sender: string, text: string, status: string): Bubble {
  const body = h('div', { class: 'body', 'data-testid': 'message-body' }, text);
  const meta = h('div', { class: 'meta' });
  const memory = h('div', { class: 'memory-used', 'data-testid': 'memory-used', hidden: true });
  const el = h(
    'li',
    { class: `message ${sender}`, 'data-testid': 'message', 'data-sender': sender, 'data-status': status },
    h('div', { class: 'who' }, sender === 'user' ? 'You' : 'Assistant'),
    body,
    meta,
    memory,
  );
  return { el, body, meta, memory };
}

/** "memory used: key (0.41), key2 (pinned)" under a reply; nothing when none was used. */
function memoryUsed(b: Bubble, used: Schemas['MemoryUse'][]): void {
  const items = used.map((u) => {
    const why = [u.pinned ? 'pinned' : null, !u.pinned && u.score != null ? u.score.toFixed(2) : null].filter(Boolean);
    return why.length ? `${u.key} (${why.join(', ')})` : u.key;
  });
  b.memory.textContent = items.length ? `memory used: ${items.join(', ')}` : '';
  b.memory.hidden = !items.length;
}

function describe(b: Bubble, m: ChatMessage): void {
  const parts = [when(m.timestamp)];
  if (m.sender === 'llm' && m.model_name) parts.unshift(m.model_name);
  if (m.status === 'partial') parts.push('cut off');
  if (m.status === 'cancelled') parts.push('stopped');
  if (m.status === 'streaming') parts.push('generating…');
  b.meta.textContent = parts.join(' · ');
}

function setStatus(b: Bubble, status: string): void {
  b.el.dataset.status = status;
}

/** A search snippet's text with its `<mark>` spans, built without parsing HTML. */
function snippet(text: string): Node[] {
  return text.split(/(<mark>.*?<\/mark>)/s).map((part) => {
    const m = /^<mark>(.*)<\/mark>$/s.exec(part);
    return m ? h('mark', {}, m[1]) : document.createTextNode(part);
  });
}
