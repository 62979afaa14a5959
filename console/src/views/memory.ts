// The memory tab: the caller's context memory (key → any JSON value), which the backend
// injects into prompts (pinned ones always, the others by relevance). Lists, creates or
// replaces (POST upserts by key), pins, deletes, and searches memories by meaning.

import { api, ApiError, ok, type Schemas } from '../api';
import { field, guarded, h, replace, submitting, table, when } from '../dom';
import type { View } from './view';

type Memory = Schemas['Memory'];

export function memoryView(root: HTMLElement): View {
  const key = h('input', { required: true, maxlength: 128, pattern: '[A-Za-z0-9_.:\\-]+', 'data-testid': 'memory-key' });
  const value = h('textarea', { rows: 3, required: true, 'data-testid': 'memory-value' });
  const pinned = h('input', { type: 'checkbox', 'data-testid': 'memory-pinned' });
  const query = h('input', { type: 'search', required: true, placeholder: 'e.g. where I live', 'data-testid': 'memory-search' });
  const found = h('div', { class: 'memory-hits', 'data-testid': 'memory-hits', 'aria-live': 'polite' });
  const listing = h('div', { 'data-testid': 'memory-list' });
  const more = h('button', { type: 'button', hidden: true, onclick: () => void guarded(() => load(true)) }, 'Load more');
  let cursor: string | null = null;
  let shown: Memory[] = [];

  const form = h(
    'form',
    { class: 'card form-grid', onsubmit: submitting(save) },
    h('h2', {}, 'Add or replace a memory'),
    field('Key', key),
    field('Value (JSON, or plain text)', value),
    h('label', { class: 'check' }, pinned, ' Pinned (in every chat, whatever the message)'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', 'data-testid': 'memory-save' }, 'Save memory')),
  );
  const searchForm = h(
    'form',
    { class: 'card', onsubmit: submitting(search) },
    h('h2', {}, 'Search memories by meaning'),
    h('div', { class: 'search-row' }, query, h('button', { type: 'submit', 'data-testid': 'memory-search-go' }, 'Search')),
    found,
  );
  replace(root, h('div', { class: 'stack' }, form, searchForm, h('section', { class: 'card' }, listing, more)));

  return { show: () => void guarded(() => load(false)) };

  async function load(next: boolean): Promise<void> {
    const page = await ok(
      api.GET('/api/arcana/context-memory', { params: { query: { limit: 100, cursor: next ? (cursor ?? undefined) : undefined } } }),
    );
    shown = next ? [...shown, ...page.items] : page.items;
    cursor = page.next_cursor ?? null;
    more.hidden = !cursor;
    render();
  }

  function render(): void {
    replace(
      listing,
      shown.length
        ? table(
            'Memories',
            ['Key', 'Value', 'Updated', ''],
            shown.map((m) => [
              h(
                'span',
                {},
                h('code', {}, m.key),
                m.pinned ? h('span', { class: 'badge', title: 'Pinned: in every chat', 'data-testid': 'memory-pin' }, 'pinned') : null,
              ),
              h('pre', { class: 'value' }, pretty(m.value)),
              when(m.updated_at),
              h(
                'div',
                { class: 'row-actions' },
                h('button', { type: 'button', 'aria-label': `Edit memory ${m.key}`, onclick: () => edit(m) }, 'Edit'),
                h('button', { type: 'button', class: 'danger', 'aria-label': `Delete memory ${m.key}`, onclick: () => void guarded(() => remove(m)) }, 'Delete'),
              ),
            ]),
            'memory-table',
          )
        : h('p', { class: 'empty' }, 'No memories yet.'),
    );
  }

  async function save(): Promise<void> {
    const body: Schemas['MemoryInput'] = { key: key.value.trim(), value: parseValue(value.value), pinned: pinned.checked };
    await ok(api.POST('/api/arcana/context-memory', { body }));
    key.value = '';
    value.value = '';
    pinned.checked = false;
    await load(false);
  }

  function edit(m: Memory): void {
    key.value = m.key;
    value.value = typeof m.value === 'string' ? m.value : JSON.stringify(m.value, null, 2);
    pinned.checked = m.pinned;
    value.focus();
  }

  async function search(): Promise<void> {
    const q = query.value.trim();
    if (!q) return replace(found);
    let result: Schemas['MemorySearchResults'];
    try {
      result = await ok(api.GET('/api/arcana/context-memory/search', { params: { query: { q, limit: 10 } } }));
    } catch (e) {
      // No embedding model in this deployment: say so where the hits would be.
      if (!(e instanceof ApiError && e.code === 'embeddings_unavailable')) throw e;
      return replace(found, h('p', { class: 'note', 'data-testid': 'memory-search-unavailable' }, e.message));
    }
    replace(
      found,
      result.hits.length
        ? h(
            'ol',
            { class: 'memory-hit-list' },
            ...result.hits.map((m) =>
              h(
                'li',
                { 'data-testid': 'memory-hit', 'data-key': m.key },
                h('code', {}, m.key),
                h('span', { class: 'score', 'data-testid': 'memory-hit-score', title: 'similarity' }, m.score.toFixed(2)),
                m.pinned ? h('span', { class: 'badge' }, 'pinned') : null,
                h('span', { class: 'memory-hit-value' }, oneLine(m.value)),
              ),
            ),
          )
        : h('p', { class: 'empty' }, 'No memories to search.'),
    );
  }

  async function remove(m: Memory): Promise<void> {
    if (!confirm(`Delete memory “${m.key}”?`)) return;
    await ok(api.DELETE('/api/arcana/context-memory/{key}', { params: { path: { key: m.key } } }));
    await load(false);
  }
}

/** JSON when the text is JSON, else the text itself as a string. */
function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A value on one line, shortened. */
function oneLine(v: unknown): string {
  const text = (typeof v === 'string' ? v : JSON.stringify(v)).replace(/\s+/g, ' ');
  return text.length > 120 ? `${text.slice(0, 119)}…` : text;
}

function pretty(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v, null, 2);
}
