// The memory tab: the caller's context memory (key → any JSON value), which the backend
// injects into prompts. Lists, creates or replaces (POST upserts by key), and deletes.

import { api, ok, type Schemas } from '../api';
import { field, guarded, h, replace, table, when } from '../dom';
import type { View } from './view';

type Memory = Schemas['Memory'];

export function memoryView(root: HTMLElement): View {
  const key = h('input', { required: true, maxlength: 128, pattern: '[A-Za-z0-9_.:\\-]+', 'data-testid': 'memory-key' });
  const value = h('textarea', { rows: 3, required: true, 'data-testid': 'memory-value' });
  const listing = h('div', { 'data-testid': 'memory-list' });
  const more = h('button', { type: 'button', hidden: true, onclick: () => void guarded(() => load(true)) }, 'Load more');
  let cursor: string | null = null;
  let shown: Memory[] = [];

  const form = h(
    'form',
    { class: 'card form-grid', onsubmit: (e: Event) => (e.preventDefault(), void guarded(save)) },
    h('h2', {}, 'Add or replace a memory'),
    field('Key', key),
    field('Value (JSON, or plain text)', value),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', 'data-testid': 'memory-save' }, 'Save memory')),
  );
  replace(root, h('div', { class: 'stack' }, form, h('section', { class: 'card' }, listing, more)));

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
              h('code', {}, m.key),
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
    const body: Schemas['MemoryInput'] = { key: key.value.trim(), value: parseValue(value.value) };
    await ok(api.POST('/api/arcana/context-memory', { body }));
    key.value = '';
    value.value = '';
    await load(false);
  }

  function edit(m: Memory): void {
    key.value = m.key;
    value.value = typeof m.value === 'string' ? m.value : JSON.stringify(m.value, null, 2);
    value.focus();
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

function pretty(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v, null, 2);
}
