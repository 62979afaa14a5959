// The console's entry point: sign-in (or first-account registration), then the tabs as
// hash routes (#/chat, #/memory, …), each view built on first visit. Signing out, or a
// token the API stops accepting (401), reloads the page back to the sign-in form.

import { api, ApiError, ok, onUnauthorized, type Schemas } from './api';
import { byId, clearError, guarded, h, replace, showError } from './dom';
import { session } from './session';
import { adminView } from './views/admin';
import { chatView } from './views/chat';
import { memoryView } from './views/memory';
import { settingsView } from './views/settings';
import { statusView } from './views/status';
import { terminalView } from './views/terminal';
import type { View } from './views/view';

type Me = Schemas['MeResponse'];

interface Tab {
  id: string;
  title: string;
  allowed(me: Me): boolean;
  make(root: HTMLElement, me: Me): View;
}

const TABS: Tab[] = [
  { id: 'chat', title: 'Chat', allowed: () => true, make: chatView },
  { id: 'memory', title: 'Memory', allowed: () => true, make: memoryView },
  { id: 'settings', title: 'Settings', allowed: () => true, make: settingsView },
  { id: 'status', title: 'Status', allowed: () => true, make: statusView },
  {
    id: 'admin',
    title: 'Admin',
    allowed: (me) => me.effective_permissions.some((p) => p === 'llm:admin' || p === 'users:admin'),
    make: adminView,
  },
  { id: 'terminal', title: 'Terminal', allowed: (me) => me.effective_permissions.includes('terminal'), make: terminalView },
];

const ENDED = 'Your session has ended; sign in again.';

function signOut(notice: string | null): void {
  session.clear();
  session.notice = notice;
  location.reload();
}

async function boot(): Promise<void> {
  if (session.token) {
    try {
      return await enter(await ok(api.GET('/api/auth/me')));
    } catch (e) {
      session.clear();
      showError(e instanceof ApiError && e.status === 401 ? ENDED : e instanceof Error ? e.message : String(e));
    }
  }
  showSignIn();
}

function showSignIn(): void {
  const notice = session.notice;
  session.notice = null;
  if (notice) showError(notice);
  const form = byId<HTMLFormElement>('signin-form');
  byId('signin').hidden = false;
  const credentials = (): Schemas['LoginRequest'] => {
    const data = new FormData(form);
    return { username: String(data.get('username') ?? '').trim(), password: String(data.get('password') ?? '') };
  };
  const signIn = async (): Promise<void> => {
    const token = await ok(api.POST('/api/auth/login', { body: credentials() }));
    session.token = token.access_token;
    clearError();
    byId('signin').hidden = true;
    await enter(await ok(api.GET('/api/auth/me')));
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void guarded(signIn);
  });
  byId('register').addEventListener('click', () => {
    if (!form.reportValidity()) return;
    void guarded(async () => {
      await ok(api.POST('/api/auth/register', { body: credentials() }));
      await signIn();
    });
  });
  form.querySelector('input')?.focus();
}

async function enter(me: Me): Promise<void> {
  onUnauthorized(() => signOut(ENDED));
  const tabs = TABS.filter((t) => t.allowed(me));
  const views = new Map<string, View>();
  const container = byId('views');
  let shown: string | null = null;

  replace(
    byId('nav'),
    ...tabs.map((t) => h('a', { href: `#/${t.id}`, 'data-tab': t.id }, t.title)),
    h('a', { href: '/api/docs', target: '_blank', rel: 'noopener' }, 'API docs'),
  );
  byId('nav').hidden = false;
  byId('whoami').textContent = `${me.username} (${me.role})`;
  byId('account').hidden = false;
  byId('signout').addEventListener('click', () => signOut(null));

  const route = (): void => {
    const wanted = location.hash.replace(/^#\/?/, '');
    const tab = tabs.find((t) => t.id === wanted) ?? tabs[0];
    if (shown === tab.id) return;
    if (shown) {
      views.get(shown)?.hide?.();
      byId(`view-${shown}`).hidden = true;
    }
    let view = views.get(tab.id);
    if (!view) {
      const root = h('section', { id: `view-${tab.id}`, class: 'view', 'aria-label': tab.title });
      container.append(root);
      view = tab.make(root, me);
      views.set(tab.id, view);
    }
    byId(`view-${tab.id}`).hidden = false;
    shown = tab.id;
    for (const a of byId('nav').querySelectorAll<HTMLAnchorElement>('a[data-tab]')) {
      if (a.dataset.tab === tab.id) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    document.title = `${tab.title} · Arcana`;
    view.show();
  };
  window.addEventListener('hashchange', route);
  route();
}

void boot();
