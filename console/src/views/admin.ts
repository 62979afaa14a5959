// The admin tab: LLM providers, models, routing rules with the router's explanation of
// a request, the embedding model, users, and usage. Sections appear by permission
// (`llm:admin`, `users:admin`); the API enforces them either way.

import { api, ok, type Schemas } from '../api';
import { field, guarded, h, replace, submitting, table, when } from '../dom';
import type { View } from './view';

/** The document types the list as PublicProvider[]; admins get every Provider field. */
type Provider = Schemas['PublicProvider'] & Partial<Schemas['Provider']>;
type Model = Schemas['Model'];
type Rule = Schemas['Rule'];
type User = Schemas['User'];

const PROVIDER_KINDS: Schemas['ProviderKind'][] = ['openai', 'anthropic'];
const ROLES: Schemas['UserRole'][] = ['user', 'admin'];
const PERMISSIONS: Schemas['Permission'][] = ['terminal', 'llm:admin', 'users:admin'];
/** The embedding model used when no provider model is chosen. */
const LOCAL_EMBEDDING = 'local (all-minilm-l6-v2)';

export function adminView(root: HTMLElement, me: Schemas['MeResponse']): View {
  const llmAdmin = me.effective_permissions.includes('llm:admin');
  const usersAdmin = me.effective_permissions.includes('users:admin');
  let providers: Provider[] = [];
  let models: Model[] = [];
  let users: User[] = [];
  let embedding: Schemas['EmbeddingModel'] | null = null;

  const providerList = h('div', { 'data-testid': 'provider-list' });
  const modelList = h('div', { 'data-testid': 'model-list' });
  const ruleList = h('div', { 'data-testid': 'rule-list' });
  const userList = h('div', { 'data-testid': 'user-list' });
  const usageList = h('div', { 'data-testid': 'usage-list' });
  const explained = h('div', { class: 'explain-result', 'data-testid': 'explain-result', 'aria-live': 'polite' });

  // Selects filled from the loaded providers and models.
  const modelProvider = h('select', { required: true, 'data-testid': 'model-provider' });
  const ruleTarget = h('select', { required: true });
  const ruleFallbacks = h('select', { multiple: true, size: 3 });
  const explainModel = h('select', {});
  const embeddingModel = h('select', { 'data-testid': 'embedding-model', 'aria-label': 'Embedding model' });
  const embeddingCurrent = h('p', { 'data-testid': 'embedding-current' });

  const sections: HTMLElement[] = [];
  if (llmAdmin) sections.push(providerSection(), modelSection(), ruleSection(), explainSection(), embeddingSection(), usageSection());
  if (usersAdmin) sections.push(userSection());
  const nav = h(
    'nav',
    { class: 'subnav', 'aria-label': 'Admin sections' },
    ...sections.map((s) => h('a', { href: `#${s.id}`, onclick: (e: Event) => (e.preventDefault(), s.scrollIntoView()) }, s.dataset.title ?? '')),
  );
  replace(root, h('div', { class: 'stack' }, nav, ...sections));

  return {
    show() {
      void guarded(async () => {
        // Users and models first: the rule and usage tables show their names.
        if (usersAdmin) await loadUsers();
        if (!llmAdmin) return;
        await Promise.all([loadProviders(), loadModels()]);
        await Promise.all([loadRules(), loadUsage(), loadEmbedding()]);
      });
    },
  };

  function section(id: string, title: string, ...children: (Node | null)[]): HTMLElement {
    return h('section', { class: 'card', id, 'data-title': title, 'aria-labelledby': `${id}-title` }, h('h2', { id: `${id}-title` }, title), ...children);
  }

  // Providers.

  function providerSection(): HTMLElement {
    const name = h('input', { required: true, 'data-testid': 'provider-name' });
    const kind = h('select', {}, ...PROVIDER_KINDS.map((k) => h('option', { value: k }, k)));
    const base = h('input', { type: 'url', required: true, placeholder: 'https://api.openai.com/v1', 'data-testid': 'provider-base-url' });
    const key = h('input', { type: 'password', autocomplete: 'off', placeholder: 'optional' });
    const form = h(
      'form',
      {
        class: 'inline-form',
        onsubmit: submitting(async () => {
          const body: Schemas['ProviderInput'] = { name: name.value.trim(), kind: kind.value as Schemas['ProviderKind'], base_url: base.value.trim() };
          if (key.value) body.api_key = key.value;
          await ok(api.POST('/api/arcana/llm/providers', { body }));
          form.reset();
          await loadProviders();
        }),
      },
      field('Name', name),
      field('Kind', kind),
      field('Base URL', base),
      field('API key', key),
      h('button', { type: 'submit', class: 'primary' }, 'Add provider'),
    );
    return section('admin-providers', 'Providers', providerList, form);
  }

  async function loadProviders(): Promise<void> {
    providers = await ok(api.GET('/api/arcana/llm/providers'));
    const options = providers.map((p) => h('option', { value: p.id }, p.name));
    const chosen = modelProvider.value;
    replace(modelProvider, ...options);
    if (chosen) modelProvider.value = chosen;
    replace(
      providerList,
      table(
        'Providers',
        ['Name', 'Kind', 'Base URL', 'Enabled', 'API key', ''],
        providers.map((p) => [
          p.name,
          p.kind,
          h('code', {}, p.base_url ?? ''),
          p.enabled === false ? 'no' : 'yes',
          p.has_api_key ? (p.api_key_hint ?? 'set') : 'none',
          h(
            'div',
            { class: 'row-actions' },
            p.base_url === undefined
              ? null
              : h('button', { type: 'button', 'aria-label': `${p.enabled ? 'Disable' : 'Enable'} provider ${p.name}`, onclick: () => void guarded(() => toggleProvider(p)) }, p.enabled ? 'Disable' : 'Enable'),
            h('button', { type: 'button', class: 'danger', 'aria-label': `Delete provider ${p.name}`, onclick: () => void guarded(() => removeProvider(p)) }, 'Delete'),
          ),
        ]),
        'provider-table',
      ),
    );
  }

  async function toggleProvider(p: Provider): Promise<void> {
    const body: Schemas['ProviderInput'] = {
      name: p.name, kind: p.kind, base_url: p.base_url ?? '', enabled: !p.enabled, timeout_secs: p.timeout_secs, max_retries: p.max_retries,
    };
    await ok(api.PUT('/api/arcana/llm/providers/{id}', { params: { path: { id: p.id } }, body }));
    await loadProviders();
  }

  async function removeProvider(p: Provider): Promise<void> {
    if (!confirm(`Delete provider “${p.name}”?`)) return;
    await ok(api.DELETE('/api/arcana/llm/providers/{id}', { params: { path: { id: p.id } } }));
    await loadProviders();
  }

  // Models.

  function modelSection(): HTMLElement {
    const name = h('input', { required: true, placeholder: 'gpt-4o-mini', 'data-testid': 'model-name' });
    const display = h('input', { placeholder: 'optional' });
    const maxTokens = h('input', { type: 'number', min: 1, required: true, value: 1024 });
    const context = h('input', { type: 'number', min: 1, required: true, value: 8192 });
    const tags = h('input', { placeholder: 'code, cheap' });
    const isDefault = h('input', { type: 'checkbox' });
    const form = h(
      'form',
      {
        class: 'inline-form',
        onsubmit: submitting(async () => {
          const body: Schemas['ModelInput'] = {
            provider_id: modelProvider.value,
            model_name: name.value.trim(),
            display_name: display.value.trim() || null,
            max_tokens: Number(maxTokens.value),
            context_window: Number(context.value),
            tags: list(tags.value),
            is_default: isDefault.checked,
          };
          await ok(api.POST('/api/arcana/llm/models', { body }));
          name.value = '';
          display.value = '';
          tags.value = '';
          isDefault.checked = false;
          await loadModels();
        }),
      },
      field('Provider', modelProvider),
      field('Model name', name),
      field('Display name', display),
      field('Max tokens', maxTokens),
      field('Context window', context),
      field('Tags', tags),
      h('label', { class: 'check' }, isDefault, ' System default'),
      h('button', { type: 'submit', class: 'primary', 'data-testid': 'model-add' }, 'Add model'),
    );
    return section('admin-models', 'Models', modelList, form);
  }

  async function loadModels(): Promise<void> {
    models = await ok(api.GET('/api/arcana/llm/models', { params: { query: { all: true } } }));
    for (const select of [ruleTarget, ruleFallbacks, explainModel]) {
      const chosen = Array.from(select.selectedOptions, (o) => o.value);
      replace(
        select,
        select === explainModel ? h('option', { value: '' }, 'Let routing choose') : null,
        ...models.map((m) => h('option', { value: m.id, selected: chosen.includes(m.id) }, `${m.display_name} · ${m.provider_name}`)),
      );
    }
    replace(
      modelList,
      table(
        'Models',
        ['Model', 'Display name', 'Provider', 'Context', 'Tags', 'Enabled', 'Default', ''],
        models.map((m) => [
          h('code', { 'data-model-id': m.id }, m.model_name),
          m.display_name,
          m.provider_name,
          m.context_window.toLocaleString(),
          m.tags.join(', '),
          m.enabled ? 'yes' : 'no',
          m.is_default ? 'yes' : '',
          h(
            'div',
            { class: 'row-actions' },
            m.is_default ? null : h('button', { type: 'button', 'aria-label': `Make ${m.model_name} the default`, onclick: () => void guarded(() => updateModel(m, { is_default: true })) }, 'Make default'),
            h('button', { type: 'button', 'aria-label': `${m.enabled ? 'Disable' : 'Enable'} model ${m.model_name}`, onclick: () => void guarded(() => updateModel(m, { enabled: !m.enabled })) }, m.enabled ? 'Disable' : 'Enable'),
            h('button', { type: 'button', class: 'danger', 'aria-label': `Delete model ${m.model_name}`, onclick: () => void guarded(() => removeModel(m)) }, 'Delete'),
          ),
        ]),
        'model-table',
      ),
    );
    if (embedding) showEmbedding(embedding);
  }

  async function updateModel(m: Model, change: Partial<Schemas['ModelInput']>): Promise<void> {
    const body: Schemas['ModelInput'] = {
      provider_id: m.provider_id, model_name: m.model_name, display_name: m.display_name, max_tokens: m.max_tokens,
      context_window: m.context_window, input_cost_per_token: m.input_cost_per_token, output_cost_per_token: m.output_cost_per_token,
      enabled: m.enabled, is_default: m.is_default, tags: m.tags, ...change,
    };
    await ok(api.PUT('/api/arcana/llm/models/{id}', { params: { path: { id: m.id } }, body }));
    await loadModels();
  }

  async function removeModel(m: Model): Promise<void> {
    if (!confirm(`Delete model “${m.model_name}”?`)) return;
    await ok(api.DELETE('/api/arcana/llm/models/{id}', { params: { path: { id: m.id } } }));
    await loadModels();
  }

  // Routing rules.

  function ruleSection(): HTMLElement {
    const name = h('input', { required: true });
    const priority = h('input', { type: 'number', required: true, value: 100 });
    const tags = h('input', { placeholder: 'code' });
    const pattern = h('input', { placeholder: '(?i)\\bsql\\b' });
    const form = h(
      'form',
      {
        class: 'inline-form',
        onsubmit: submitting(async () => {
          const body: Schemas['RuleInput'] = {
            name: name.value.trim(),
            priority: Number(priority.value),
            target_model_id: ruleTarget.value,
            fallback_model_ids: Array.from(ruleFallbacks.selectedOptions, (o) => o.value),
            conditions: { tags: list(tags.value), pattern: pattern.value.trim() || null },
            enabled: true,
          };
          await ok(api.POST('/api/arcana/llm/routing-rules', { body }));
          form.reset();
          await loadRules();
        }),
      },
      field('Name', name),
      field('Priority (lower first)', priority),
      field('Target model', ruleTarget),
      field('Fallback models', ruleFallbacks),
      field('Tags', tags),
      field('Pattern (regex)', pattern),
      h('button', { type: 'submit', class: 'primary' }, 'Add rule'),
    );
    return section('admin-rules', 'Routing rules', ruleList, form);
  }

  async function loadRules(): Promise<void> {
    const rules = await ok(api.GET('/api/arcana/llm/routing-rules'));
    const name = (id: string) => models.find((m) => m.id === id)?.model_name ?? id;
    replace(
      ruleList,
      rules.length
        ? table(
            'Routing rules, in evaluation order',
            ['Priority', 'Name', 'Conditions', 'Target', 'Fallbacks', 'Enabled', ''],
            rules.map((r: Rule) => [
              r.priority,
              r.name,
              conditions(r.conditions),
              name(r.target_model_id),
              r.fallback_model_ids.map(name).join(', '),
              r.enabled ? 'yes' : 'no',
              h('button', { type: 'button', class: 'danger', 'aria-label': `Delete rule ${r.name}`, onclick: () => void guarded(() => removeRule(r)) }, 'Delete'),
            ]),
            'rule-table',
          )
        : h('p', { class: 'empty' }, 'No rules: requests go to the user’s or the system default model.'),
    );
  }

  async function removeRule(r: Rule): Promise<void> {
    if (!confirm(`Delete rule “${r.name}”?`)) return;
    await ok(api.DELETE('/api/arcana/llm/routing-rules/{id}', { params: { path: { id: r.id } } }));
    await loadRules();
  }

  function explainSection(): HTMLElement {
    const message = h('textarea', { rows: 2, required: true, 'data-testid': 'explain-message' });
    const tags = h('input', { placeholder: 'code' });
    const form = h(
      'form',
      {
        class: 'inline-form',
        onsubmit: submitting(async () => {
          const body: Schemas['ExplainRequest'] = { message: message.value, tags: list(tags.value), model: explainModel.value || null };
          showDecision(await ok(api.POST('/api/arcana/llm/route/explain', { body })));
        }),
      },
      field('Message', message),
      field('Tags', tags),
      field('Ask for model', explainModel),
      h('button', { type: 'submit', class: 'primary', 'data-testid': 'explain' }, 'Explain'),
    );
    return section('admin-explain', 'Explain routing', h('p', { class: 'note' }, 'Which model a request would use, and why. No provider is called.'), form, explained);
  }

  function showDecision(d: Schemas['Decision']): void {
    replace(
      explained,
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'Model'),
        h('dd', {}, `${d.model.model_name} · ${d.model.provider_name}`),
        h('dt', {}, 'Because'),
        h('dd', {}, d.source === 'rule' ? `rule “${d.rule_name ?? d.rule_id}”` : d.source.replace('_', ' ')),
        h('dt', {}, 'Prompt tokens (estimate)'),
        h('dd', {}, d.prompt_tokens),
        h('dt', {}, 'Fallbacks'),
        h('dd', {}, d.fallbacks.map((m) => m.model_name).join(' → ') || 'none'),
        h('dt', {}, 'Defaults as fallback'),
        h('dd', {}, d.fallback_to_default ? 'yes' : 'no'),
        d.context ? h('dt', {}, 'Context') : null,
        d.context
          ? h('dd', {}, `${d.context.required_tokens} tokens needed of ${d.context.context_window}${d.context.moved_from ? `, moved from ${d.context.moved_from}` : ''}`)
          : null,
      ),
      d.rules.length
        ? table('Rules considered', ['Rule', 'Matched', 'Why not'], d.rules.map((v) => [v.rule_name, v.matched ? 'yes' : 'no', v.reason ?? '']))
        : null,
    );
  }

  // Embedding model.

  function embeddingSection(): HTMLElement {
    const form = h(
      'form',
      {
        class: 'inline-form',
        onsubmit: submitting(async () => {
          const body: Schemas['EmbeddingModelChoice'] = { model_id: embeddingModel.value || null };
          showEmbedding(await ok(api.PUT('/api/arcana/llm/embedding-model', { body })));
        }),
      },
      field('Embed with', embeddingModel),
      h('button', { type: 'submit', class: 'primary', 'data-testid': 'embedding-save' }, 'Use for embeddings'),
    );
    return section(
      'admin-embedding',
      'Embedding model',
      h('p', { class: 'note' }, 'Embeds memories and messages for relevance and semantic search; after a change, stored vectors are replaced a few per request.'),
      embeddingCurrent,
      form,
    );
  }

  async function loadEmbedding(): Promise<void> {
    showEmbedding(await ok(api.GET('/api/arcana/llm/embedding-model')));
  }

  function showEmbedding(choice: Schemas['EmbeddingModel']): void {
    embedding = choice;
    // Only models on OpenAI-kind providers can embed.
    const kind = (m: Model) => providers.find((p) => p.id === m.provider_id)?.kind;
    const usable = models.filter((m) => kind(m) !== 'anthropic' || m.id === choice.model_id);
    replace(
      embeddingModel,
      h('option', { value: '' }, LOCAL_EMBEDDING),
      ...usable.map((m) => h('option', { value: m.id }, `${m.display_name} · ${m.provider_name}`)),
    );
    embeddingModel.value = choice.model_id ?? '';
    const name = choice.model_id ? (choice.model_name ?? choice.model_id) : LOCAL_EMBEDDING;
    replace(embeddingCurrent, 'Current: ', h('strong', {}, name), h('span', { class: 'note' }, ` · vectors stored as ${choice.vectors}`));
  }

  // Users.

  function userSection(): HTMLElement {
    const username = h('input', { required: true, autocomplete: 'off' });
    const password = h('input', { type: 'password', required: true, autocomplete: 'new-password' });
    const role = h('select', {}, ...ROLES.map((r) => h('option', { value: r }, r)));
    const perms = PERMISSIONS.map((p) => h('input', { type: 'checkbox', value: p }));
    const form = h(
      'form',
      {
        class: 'inline-form',
        onsubmit: submitting(async () => {
          const body: Schemas['CreateUserRequest'] = {
            username: username.value.trim(),
            password: password.value,
            role: role.value as Schemas['UserRole'],
            permissions: perms.filter((c) => c.checked).map((c) => c.value as Schemas['Permission']),
          };
          await ok(api.POST('/api/admin/users', { body }));
          form.reset();
          await loadUsers();
        }),
      },
      field('User name', username),
      field('Password', password),
      field('Role', role),
      h('fieldset', { class: 'checks' }, h('legend', {}, 'Permissions'), ...perms.map((c) => h('label', { class: 'check' }, c, ` ${c.value}`))),
      h('button', { type: 'submit', class: 'primary' }, 'Add user'),
    );
    return section('admin-users', 'Users', userList, form);
  }

  async function loadUsers(): Promise<void> {
    users = (await ok(api.GET('/api/admin/users', { params: { query: { limit: 200 } } }))).items;
    replace(
      userList,
      table(
        'Users',
        ['User', 'Role', 'Permissions', 'Disabled', 'Created', ''],
        users.map((u) => [
          u.username,
          u.role,
          u.permissions.join(', '),
          u.disabled ? 'yes' : 'no',
          when(u.created_at),
          u.id === me.id
            ? h('span', { class: 'note' }, 'you')
            : h(
                'div',
                { class: 'row-actions' },
                h('button', { type: 'button', 'aria-label': `${u.disabled ? 'Enable' : 'Disable'} user ${u.username}`, onclick: () => void guarded(() => setDisabled(u, !u.disabled)) }, u.disabled ? 'Enable' : 'Disable'),
                h('button', { type: 'button', class: 'danger', 'aria-label': `Delete user ${u.username}`, onclick: () => void guarded(() => removeUser(u)) }, 'Delete'),
              ),
        ]),
        'user-table',
      ),
    );
  }

  async function setDisabled(u: User, disabled: boolean): Promise<void> {
    await ok(api.PUT('/api/admin/users/{id}', { params: { path: { id: u.id } }, body: { disabled } }));
    await loadUsers();
  }

  async function removeUser(u: User): Promise<void> {
    if (!confirm(`Delete user “${u.username}”?`)) return;
    await ok(api.DELETE('/api/admin/users/{id}', { params: { path: { id: u.id } } }));
    await loadUsers();
  }

  // Usage.

  function usageSection(): HTMLElement {
    return section('admin-usage', 'Usage, last 30 days', usageList);
  }

  async function loadUsage(): Promise<void> {
    const report = await ok(api.GET('/api/arcana/llm/usage', { params: { query: { days: 30, all: true } } }));
    const userName = (id: string | null | undefined) => (id ? (users.find((u) => u.id === id)?.username ?? id.slice(0, 8)) : '');
    replace(
      usageList,
      h('p', {}, `Total cost: $${report.total_cost.toFixed(4)}`, report.monthly_budget_usd != null ? ` · your monthly budget $${report.monthly_budget_usd}` : ''),
      report.rows.length
        ? table(
            'Usage by day and model',
            ['Day', 'User', 'Model', 'Calls', 'Errors', 'Prompt tokens', 'Completion tokens', 'Cost'],
            report.rows.map((r) => [r.day, userName(r.user_id), r.model_name, r.calls, r.errors, r.prompt_tokens, r.completion_tokens, `$${r.cost.toFixed(4)}`]),
            'usage-table',
          )
        : h('p', { class: 'empty' }, 'No usage yet.'),
    );
  }
}

function list(text: string): string[] {
  return text.split(',').map((t) => t.trim()).filter(Boolean);
}

function conditions(c: Schemas['Conditions']): string {
  const parts: string[] = [];
  if (c.tags?.length) parts.push(`tags ${c.tags.join(', ')}`);
  if (c.roles?.length) parts.push(`roles ${c.roles.join(', ')}`);
  if (c.pattern) parts.push(`matches /${c.pattern}/`);
  if (c.min_prompt_tokens != null) parts.push(`≥ ${c.min_prompt_tokens} tokens`);
  if (c.max_prompt_tokens != null) parts.push(`≤ ${c.max_prompt_tokens} tokens`);
  return parts.join('; ') || 'always';
}
