// Hand-drawn SVG charts for the status tab: horizontal bars, one or more series per
// row, with the numbers written out (the chart is also readable as text). No inline
// styles: colours come from classes in style.css.

const SVG = 'http://www.w3.org/2000/svg';

export interface Row {
  label: string;
  values: number[];
}

export interface ChartOptions {
  /** Names of the series, one per value of a row (shown as a legend when several). */
  series: string[];
  /** How a value is written. */
  format?: (v: number) => string;
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A figure with a caption and a horizontal bar chart of `rows`. */
export function barChart(caption: string, rows: Row[], options: ChartOptions): HTMLElement {
  const format = options.format ?? ((v: number) => v.toLocaleString());
  const figure = document.createElement('figure');
  figure.className = 'chart';
  const title = document.createElement('figcaption');
  title.textContent = caption;
  figure.append(title);
  if (!rows.length) {
    const p = document.createElement('p');
    p.className = 'empty';
    p.textContent = 'Nothing yet.';
    figure.append(p);
    return figure;
  }
  const n = options.series.length;
  const labelWidth = 130;
  const valueWidth = 70;
  const width = 460;
  const bar = 14;
  const gap = 3;
  const rowHeight = n * (bar + gap) + 8;
  const legend = n > 1 ? 22 : 0;
  const height = legend + rows.length * rowHeight;
  const max = Math.max(1, ...rows.flatMap((r) => r.values));
  const plot = width - labelWidth - valueWidth;
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': caption, class: 'bars' });
  if (n > 1) {
    let x = labelWidth;
    options.series.forEach((name, i) => {
      chart.append(svg('rect', { x, y: 4, width: 10, height: 10, class: `series-${i}` }));
      chart.append(svg('text', { x: x + 14, y: 13, class: 'legend' }, name));
      x += 24 + name.length * 7;
    });
  }
  rows.forEach((row, r) => {
    const top = legend + r * rowHeight;
    chart.append(svg('text', { x: labelWidth - 8, y: top + (n * (bar + gap)) / 2 + 4, class: 'label', 'text-anchor': 'end' }, clip(row.label, 18)));
    row.values.forEach((v, i) => {
      const y = top + i * (bar + gap);
      const w = Math.max(v > 0 ? 2 : 0, (v / max) * plot);
      const rect = svg('rect', { x: labelWidth, y, width: w, height: bar, rx: 2, class: `series-${i}` });
      rect.append(svg('title', {}, `${row.label} · ${options.series[i]}: ${format(v)}`));
      chart.append(rect);
      chart.append(svg('text', { x: labelWidth + w + 6, y: y + bar - 3, class: 'value' }, format(v)));
    });
  });
  figure.append(chart);
  return figure;
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
