// Tiny DOM helpers shared by every view: building elements without innerHTML (so no
// markup from the API is ever parsed), and the one visible error area.

/** Attribute values; a function under an `on…` name becomes an event listener. */
type Attrs = Record<string, unknown>;
type Child = Node | string | number | null | undefined | false;

/** An element with attributes (`on*` functions become listeners) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value as EventListener);
    } else if (value === true) {
      el.setAttribute(name, '');
    } else if (value !== false && value !== undefined && value !== null) {
      el.setAttribute(name, String(value));
    }
  }
  append(el, ...children);
  return el;
}

/** Appends children, skipping empty ones. */
export function append(parent: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    parent.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
}

/** Replaces every child of `parent`. */
export function replace(parent: Node, ...children: Child[]): void {
  while (parent.firstChild) parent.removeChild(parent.firstChild);
  append(parent, ...children);
}

/** The element with `id`, which the page must have. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
}

/** A labelled form field: `<label>text <input></label>`. */
export function field(label: string, control: HTMLElement): HTMLLabelElement {
  return h('label', { class: 'field' }, h('span', {}, label), control);
}

/** A table from a header row and rows of cells. */
export function table(caption: string, head: string[], rows: Child[][], testid?: string): HTMLTableElement {
  return h(
    'table',
    { 'data-testid': testid },
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, ...head.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, ...rows.map((r) => h('tr', {}, ...r.map((c) => h('td', {}, c))))),
  );
}

/** Shows a message in the page's error area (`role="alert"`). */
export function showError(message: string): void {
  const area = byId('error');
  replace(area, h('span', {}, message), h('button', { type: 'button', class: 'link', onclick: clearError }, 'Dismiss'));
  area.hidden = false;
}

export function clearError(): void {
  const area = byId('error');
  replace(area);
  area.hidden = true;
}

/** Runs `task`, showing any failure in the error area; resolves to its result or undefined. */
export async function guarded<T>(task: () => Promise<T>): Promise<T | undefined> {
  try {
    return await task();
  } catch (e) {
    showError(e instanceof Error ? e.message : String(e));
    return undefined;
  }
}

/** A form's submit handler: no page load, `task` run with its error shown. */
export function submitting(task: () => Promise<void>): (e: Event) => void {
  return (e: Event) => {
    e.preventDefault();
    void guarded(task);
  };
}

/** A short, readable date-time. */
export function when(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}
