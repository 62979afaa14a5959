// What the console keeps in this tab's sessionStorage: the access token, the open
// conversation and the reply being streamed (so a reload can follow it again), the
// chosen model and the terminal session to reattach to. Nothing outlives the tab.

const TOKEN = 'arcana.token';
const CONVERSATION = 'arcana.conversation';
const STREAMING = 'arcana.streaming';
const MODEL = 'arcana.model';
const TERMINAL = 'arcana.terminal';
const NOTICE = 'arcana.notice';

/** A reply being generated: enough to follow it after a reload. */
export interface Streaming {
  conversationId: string;
  replyId: string;
}

function get(key: string): string | null {
  return sessionStorage.getItem(key);
}

function set(key: string, value: string | null): void {
  if (value === null) sessionStorage.removeItem(key);
  else sessionStorage.setItem(key, value);
}

export const session = {
  get token(): string | null {
    return get(TOKEN);
  },
  set token(value: string | null) {
    set(TOKEN, value);
  },

  get conversationId(): string | null {
    return get(CONVERSATION);
  },
  set conversationId(value: string | null) {
    set(CONVERSATION, value);
  },

  get streaming(): Streaming | null {
    const raw = get(STREAMING);
    if (!raw) return null;
    try {
      const s = JSON.parse(raw) as Partial<Streaming>;
      return typeof s.conversationId === 'string' && typeof s.replyId === 'string'
        ? { conversationId: s.conversationId, replyId: s.replyId }
        : null;
    } catch {
      return null;
    }
  },
  set streaming(value: Streaming | null) {
    set(STREAMING, value && JSON.stringify(value));
  },

  /** The model id chosen in the picker; empty: let routing choose. */
  get model(): string {
    return get(MODEL) ?? '';
  },
  set model(value: string) {
    set(MODEL, value || null);
  },

  get terminalId(): string | null {
    return get(TERMINAL);
  },
  set terminalId(value: string | null) {
    set(TERMINAL, value);
  },

  /** A message for the sign-in form after a reload (why the user was signed out). */
  get notice(): string | null {
    return get(NOTICE);
  },
  set notice(value: string | null) {
    set(NOTICE, value);
  },

  /** Forgets everything (sign-out). */
  clear(): void {
    for (const key of [TOKEN, CONVERSATION, STREAMING, MODEL, TERMINAL]) sessionStorage.removeItem(key);
  },
};
