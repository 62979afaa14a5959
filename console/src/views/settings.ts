// The settings tab: the caller's account as the API sees it, and their LLM preferences
// (default model, system prompt, sampling, reply length).

import { api, ok, type Schemas } from '../api';
import { field, guarded, h, replace, submitting } from '../dom';
import type { View } from './view';

export function settingsView(root: HTMLElement, me: Schemas['MeResponse']): View {
  const model = h('select', { 'data-testid': 'pref-model' });
  const system = h('textarea', { rows: 4, maxlength: 20000, 'data-testid': 'pref-system-prompt' });
  const temperature = h('input', { type: 'number', min: 0, max: 2, step: 0.1, placeholder: 'model default' });
  const topP = h('input', { type: 'number', min: 0.01, max: 1, step: 0.01, placeholder: 'model default' });
  const maxTokens = h('input', { type: 'number', min: 1, max: 1000000, step: 1, placeholder: 'model default' });
  const saved = h('span', { class: 'note', role: 'status' });

  replace(
    root,
    h(
      'div',
      { class: 'stack' },
      h(
        'section',
        { class: 'card' },
        h('h2', {}, 'Account'),
        h(
          'dl',
          { class: 'facts' },
          h('dt', {}, 'User'),
          h('dd', {}, me.username),
          h('dt', {}, 'Role'),
          h('dd', {}, me.role),
          h('dt', {}, 'Permissions'),
          h('dd', {}, me.effective_permissions.join(', ') || 'none'),
        ),
      ),
      h(
        'form',
        { class: 'card form-grid', onsubmit: submitting(save) },
        h('h2', {}, 'Preferences'),
        field('Default model', model),
        field('System prompt', system),
        field('Temperature (0–2)', temperature),
        field('Top p (0–1]', topP),
        field('Max reply tokens', maxTokens),
        h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Save preferences'), saved),
      ),
    ),
  );

  return { show: () => void guarded(load) };

  async function load(): Promise<void> {
    const [models, prefs] = await Promise.all([ok(api.GET('/api/arcana/llm/models')), ok(api.GET('/api/arcana/llm/preferences'))]);
    replace(
      model,
      h('option', { value: '' }, 'None (the system default)'),
      ...models.map((m) =>
        h('option', { value: m.id, selected: m.id === prefs.default_model_id }, `${m.display_name} · ${m.provider_name}`),
      ),
    );
    system.value = prefs.system_prompt ?? '';
    temperature.value = prefs.temperature?.toString() ?? '';
    topP.value = prefs.top_p?.toString() ?? '';
    maxTokens.value = prefs.max_tokens?.toString() ?? '';
    saved.textContent = '';
  }

  async function save(): Promise<void> {
    const body: Schemas['Preferences'] = {
      default_model_id: model.value || null,
      system_prompt: system.value.trim() || null,
      temperature: numberOrNull(temperature.value),
      top_p: numberOrNull(topP.value),
      max_tokens: numberOrNull(maxTokens.value),
    };
    await ok(api.PUT('/api/arcana/llm/preferences', { body }));
    saved.textContent = 'Saved.';
  }
}

function numberOrNull(text: string): number | null {
  return text.trim() === '' ? null : Number(text);
}
