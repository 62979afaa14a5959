// xterm.js's DOM renderer puts its theme and cell sizes in <style> elements it creates,
// and colours 24-bit cells with style="" attributes; the page's Content-Security-Policy
// (style-src 'self', no 'unsafe-inline') refuses both. Rather than relax the policy,
// the terminal is opened here so that each <style> element xterm asks for is an inert
// <template> instead (xterm only sets its textContent, appends and removes it), whose
// text is mirrored into a constructed style sheet (document.adoptedStyleSheets); and a
// style attribute that script sets on a <span> goes through the CSSOM (element.style).
// CSP governs neither; styles injected as markup stay blocked.

/** Runs `open` (Terminal.open) with xterm's style elements made CSP-safe. */
export function openTerminalSafely(open: () => void): void {
  patchSpanStyles();
  const made: HTMLElement[] = [];
  const original = Document.prototype.createElement;
  const patched = function (this: Document, tag: string, options?: ElementCreationOptions): HTMLElement {
    if (tag.toLowerCase() !== 'style') return original.call(this, tag, options);
    const stand = original.call(this, 'template');
    stand.dataset.xtermStyle = '';
    made.push(stand);
    return stand;
  };
  Object.defineProperty(document, 'createElement', { value: patched, configurable: true, writable: true });
  try {
    open();
  } finally {
    delete (document as { createElement?: unknown }).createElement;
  }
  for (const el of made) mirror(el);
}

/** Keeps a constructed sheet equal to the stand-in element's text. */
function mirror(el: HTMLElement): void {
  const sheet = new CSSStyleSheet();
  document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
  const sync = () => sheet.replaceSync(el.isConnected ? (el.textContent ?? '') : '');
  sync();
  new MutationObserver(sync).observe(el, { childList: true, characterData: true, subtree: true });
}

let spansPatched = false;

/** `span.setAttribute('style', css)` becomes `span.style.cssText = css`. */
function patchSpanStyles(): void {
  if (spansPatched) return;
  spansPatched = true;
  const setAttribute = Element.prototype.setAttribute;
  HTMLSpanElement.prototype.setAttribute = function (this: HTMLSpanElement, name: string, value: string): void {
    if (name.toLowerCase() === 'style') this.style.cssText = value;
    else setAttribute.call(this, name, value);
  };
}
