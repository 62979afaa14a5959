// The terminal tab: a shell from terminal-host in xterm.js. A single-use ticket from
// POST /api/arcana/terminal/tickets authenticates the WebSocket
// (/ws/shell/{uuid}?ticket=…, same origin). Binary frames carry keystrokes and output;
// text frames are JSON control messages (hello, resize, exit, detached, error). The
// session id is kept in sessionStorage, so a reload reattaches and replays the screen.

import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import { api, ok } from '../api';
import { guarded, h, replace, showError, table, when } from '../dom';
import { session } from '../session';
import { openTerminalSafely } from '../xterm-csp';
import type { View } from './view';

/** Control messages from terminal-host. */
type ServerMessage =
  | { type: 'hello'; session_id: string; reattached: boolean; cols: number; rows: number }
  | { type: 'pong' }
  | { type: 'exit'; code: number | null; reason: string }
  | { type: 'detached' }
  | { type: 'error'; code: string; message: string };

export function terminalView(root: HTMLElement): View {
  const screen = h('div', { class: 'terminal', 'data-testid': 'terminal' });
  const status = h('span', { class: 'note', role: 'status', 'data-testid': 'terminal-status' }, 'Not connected');
  const reconnect = h('button', { type: 'button', hidden: true, onclick: () => void guarded(connect) }, 'Reconnect');
  const fresh = h('button', { type: 'button', onclick: () => void guarded(restart) }, 'New session');
  const close = h('button', { type: 'button', class: 'danger', onclick: () => void guarded(end) }, 'Close session');
  const live = h('div', { class: 'live-sessions', 'data-testid': 'terminal-sessions' });
  replace(
    root,
    h('section', { class: 'card terminal-card' }, h('div', { class: 'card-head' }, h('h2', {}, 'Terminal'), status, reconnect, fresh, close), screen, live),
  );

  let term: Terminal | null = null;
  let fit: FitAddon | null = null;
  let socket: WebSocket | null = null;
  const encoder = new TextEncoder();

  return {
    show() {
      if (!term) start();
      else fitNow();
      term?.focus();
      void guarded(listSessions);
    },
  };

  /** The caller's other live shells, to attach to or close. */
  async function listSessions(): Promise<void> {
    const page = await ok(api.GET('/api/arcana/terminal/sessions', { params: { query: { limit: 50 } } }));
    const others = page.items.filter((s) => s.status === 'active' && s.id !== session.terminalId);
    replace(
      live,
      others.length ? h('h3', {}, 'Your other live sessions') : null,
      others.length
        ? table(
            'Your other live sessions',
            ['Session', 'Started', 'Size', 'Last command', ''],
            others.map((s) => [
              h('code', {}, s.id.slice(0, 8)),
              when(s.started_at),
              `${s.cols}×${s.rows}`,
              s.last_command ?? '',
              h(
                'div',
                { class: 'row-actions' },
                h('button', { type: 'button', onclick: () => void guarded(() => attach(s.id)) }, 'Attach'),
                h('button', { type: 'button', class: 'danger', onclick: () => void guarded(() => closeSession(s.id)) }, 'Close'),
              ),
            ]),
          )
        : null,
    );
  }

  async function attach(id: string): Promise<void> {
    session.terminalId = id;
    term?.reset();
    await connect();
  }

  async function closeSession(id: string): Promise<void> {
    await ok(api.POST('/api/arcana/terminal/sessions/{id}/close', { params: { path: { id } } }));
    await listSessions();
  }

  function start(): void {
    const t = new Terminal({
      cursorBlink: true,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 14,
      scrollback: 5000,
      theme: { background: '#10141c', foreground: '#e6e9ef', cursor: '#8ab4ff' },
    });
    const f = new FitAddon();
    t.loadAddon(f);
    openTerminalSafely(() => t.open(screen));
    term = t;
    fit = f;
    fitNow();
    t.onData((data) => send(encoder.encode(data)));
    t.onResize(({ cols, rows }) => send(JSON.stringify({ type: 'resize', cols, rows })));
    new ResizeObserver(() => fitNow()).observe(screen);
    void guarded(connect);
  }

  function fitNow(): void {
    if (screen.offsetParent !== null) fit?.fit();
  }

  function send(data: string | Uint8Array): void {
    if (socket?.readyState === WebSocket.OPEN) socket.send(data);
  }

  async function connect(retrying = false): Promise<void> {
    const t = term;
    if (!t) return;
    socket?.close();
    reconnect.hidden = true;
    setStatus('Connecting…');
    const id = session.terminalId ?? uuid();
    const { ticket } = await ok(api.POST('/api/arcana/terminal/tickets'));
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const query = new URLSearchParams({ ticket, cols: String(t.cols), rows: String(t.rows) });
    const ws = new WebSocket(`${scheme}//${location.host}/ws/shell/${id}?${query}`);
    ws.binaryType = 'arraybuffer';
    socket = ws;
    let greeted = false;
    let ended = false;
    ws.onmessage = (e: MessageEvent<ArrayBuffer | string>) => {
      if (typeof e.data !== 'string') return t.write(new Uint8Array(e.data));
      const msg = JSON.parse(e.data) as ServerMessage;
      switch (msg.type) {
        case 'hello':
          greeted = true;
          session.terminalId = id;
          void guarded(listSessions);
          setStatus(msg.reattached ? 'Connected (reattached)' : 'Connected');
          if (msg.cols !== t.cols || msg.rows !== t.rows) send(JSON.stringify({ type: 'resize', cols: t.cols, rows: t.rows }));
          break;
        case 'exit':
          ended = true;
          session.terminalId = null;
          setStatus(`Shell ended (${msg.reason}${msg.code !== null ? `, code ${msg.code}` : ''})`);
          t.write('\r\n[session ended]\r\n');
          break;
        case 'detached':
          ended = true;
          setStatus('Opened in another tab');
          reconnect.hidden = false;
          break;
        case 'error':
          ended = true;
          session.terminalId = null;
          setStatus('Not connected');
          showError(msg.message);
          break;
      }
    };
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = null;
      if (!greeted && !retrying && session.terminalId) {
        // The saved session is gone (ended, or the server restarted): start a new one.
        session.terminalId = null;
        void guarded(() => connect(true));
        return;
      }
      if (!greeted && !ended) {
        showError('The terminal could not be opened: too many live sessions (close one below), no terminal permission, or the terminal host is down.');
      }
      if (!ended) setStatus('Disconnected');
      reconnect.hidden = false;
      void guarded(listSessions);
    };
  }

  /** Stops the shell (the server then sends `exit` and closes the socket). */
  async function end(): Promise<void> {
    const id = session.terminalId;
    session.terminalId = null;
    if (id) await closeSession(id);
  }

  async function restart(): Promise<void> {
    await end();
    term?.reset();
    await connect();
  }

  function setStatus(text: string): void {
    status.textContent = text;
  }
}

/** A random (version 4) UUID, also outside secure contexts. */
function uuid(): string {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
