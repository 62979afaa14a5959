// The status tab: GET /api/arcana/status as figures and small bar charts (stored data,
// LLM calls and latency by window and by model, terminal use, and for admins each
// user). Refreshes while shown.

import { api, ok, type Schemas } from '../api';
import { barChart } from '../charts';
import { guarded, h, replace, table, when } from '../dom';
import type { View } from './view';

const REFRESH_MS = 10_000;

export function statusView(root: HTMLElement): View {
  const facts = h('dl', { class: 'facts tiles', 'data-testid': 'status-facts' });
  const charts = h('div', { class: 'charts', 'data-testid': 'status-charts' });
  const people = h('div', {});
  const stamp = h('span', { class: 'note' });
  let timer = 0;

  replace(
    root,
    h(
      'div',
      { class: 'stack' },
      h(
        'section',
        { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', {}, 'Status'), stamp, h('button', { type: 'button', onclick: () => void guarded(load) }, 'Refresh')),
        facts,
      ),
      h('section', { class: 'card' }, charts),
      people,
    ),
  );

  return {
    show() {
      void guarded(load);
      clearInterval(timer);
      timer = window.setInterval(() => void guarded(load), REFRESH_MS);
    },
    hide() {
      clearInterval(timer);
    },
  };

  async function load(): Promise<void> {
    render(await ok(api.GET('/api/arcana/status')));
  }

  function render(s: Schemas['Status']): void {
    stamp.textContent = `as of ${when(s.generated_at)} · scope ${s.scope}`;
    const tile = (label: string, value: string, bad = false) => [h('dt', {}, label), h('dd', { class: bad ? 'bad' : undefined }, value)];
    replace(
      facts,
      ...tile('Version', s.version),
      ...tile('Uptime', s.uptime_secs != null ? duration(s.uptime_secs) : 'unknown'),
      ...tile('Database', s.database.reachable ? `${s.database.rtt_ms.toFixed(1)} ms` : 'unreachable', !s.database.reachable),
      ...(s.terminal_host
        ? tile('Terminal host', s.terminal_host.up ? `up · ${s.terminal_host.restarts} restarts` : 'down', !s.terminal_host.up)
        : []),
      ...tile('LLM cost, 24 h', `$${s.llm.last_24h.cost_usd.toFixed(4)}`),
      ...tile('Live shells', String(s.terminal.sessions_active)),
    );
    const { last_hour: hour, last_24h: day } = s.llm;
    const ms = (v: number) => `${Math.round(v)} ms`;
    replace(
      charts,
      barChart(
        'Stored data',
        [
          { label: 'Conversations', values: [s.chat.conversations.total, s.chat.conversations.last_24h] },
          { label: 'Messages', values: [s.chat.messages.total, s.chat.messages.last_24h] },
          { label: 'Memories', values: [s.chat.memories.total, s.chat.memories.last_24h] },
        ],
        { series: ['stored now', 'created in 24 h'] },
      ),
      barChart(
        'LLM calls',
        [
          { label: 'Calls', values: [hour.calls, day.calls] },
          { label: 'Errors', values: [hour.errors, day.errors] },
          { label: 'Prompt tokens', values: [hour.prompt_tokens, day.prompt_tokens] },
          { label: 'Reply tokens', values: [hour.completion_tokens, day.completion_tokens] },
        ],
        { series: ['last hour', 'last 24 h'] },
      ),
      barChart(
        'LLM latency, 24 h',
        day.calls
          ? [
              { label: 'Mean', values: [day.latency.mean_ms ?? 0] },
              { label: 'Median', values: [day.latency.p50_ms ?? 0] },
              { label: '95th percentile', values: [day.latency.p95_ms ?? 0] },
            ]
          : [],
        { series: ['latency'], format: ms },
      ),
      barChart(
        'Calls by model, 24 h',
        day.by_model.map((m) => ({ label: m.provider_name ? `${m.model} · ${m.provider_name}` : m.model, values: [m.calls, m.errors] })),
        { series: ['calls', 'errors'] },
      ),
      barChart(
        'Terminal',
        [
          { label: 'Sessions', values: [s.terminal.sessions_total, s.terminal.sessions_last_24h] },
          { label: 'Commands', values: [s.terminal.commands_total, s.terminal.commands_last_24h] },
        ],
        { series: ['in all', 'in 24 h'] },
      ),
    );
    const users = s.users ?? [];
    replace(
      people,
      users.length
        ? h(
            'section',
            { class: 'card' },
            barChart('Messages by user', users.map((u) => ({ label: u.username, values: [u.messages, u.messages_last_24h] })), {
              series: ['in all', 'in 24 h'],
            }),
            table(
              'Users',
              ['User', 'Conversations', 'Messages', 'Memories', 'LLM calls 24 h', 'Errors 24 h', 'Tokens 24 h', 'Cost 24 h', 'Shells'],
              users.map((u) => [
                u.username, u.conversations, u.messages, u.memories, u.llm_calls_last_24h, u.llm_errors_last_24h,
                u.llm_tokens_last_24h, `$${u.llm_cost_usd_last_24h.toFixed(4)}`, `${u.terminal_sessions_active} live / ${u.terminal_sessions_total}`,
              ]),
            ),
          )
        : null,
    );
  }
}

function duration(secs: number): string {
  const d = Math.floor(secs / 86400);
  const hrs = Math.floor((secs % 86400) / 3600);
  const m = Math.floor((secs % 3600) / 60);
  return d ? `${d} d ${hrs} h` : hrs ? `${hrs} h ${m} min` : m ? `${m} min` : `${secs} s`;
}
