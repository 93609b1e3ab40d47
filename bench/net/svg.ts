// The results chart, written by hand (no dependency): one panel per figure, one horizontal bar
// per path (the median), a whisker for min–max, the value at the bar's end.

import { type Cell, formatValue, type MetricDef } from './metrics';
import type { PathId } from './options';

const COLORS: Record<PathId, string> = {
  fwd: '#6b7280',
  nat: '#374151',
  haproxy: '#d97706',
  'lvs-nat': '#2563eb',
  'lvs-dr': '#0891b2',
  'lvs-tun': '#7c3aed',
  nat6: '#4b5563',
  'lvs-nat6': '#1d4ed8',
};

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function renderSvg(
  title: string,
  metrics: MetricDef[],
  cells: Cell[],
  paths: PathId[],
  labels: Record<PathId, string>,
): string {
  const shown = metrics.filter((m) => !m.addedOver && cells.some((c) => c.metric === m.id));
  const cols = 2;
  const panelW = 470;
  const labelW = 150;
  const barMax = panelW - labelW - 90;
  const rowH = 22;
  const panelH = 44 + rowH * paths.length;
  const rows = Math.ceil(shown.length / cols);
  const width = cols * panelW + 20;
  const height = 50 + rows * (panelH + 16);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="10" y="24" font-size="16" font-weight="bold">${esc(title)}</text>`,
    `<text x="10" y="40" fill="#555">median of the rounds; whiskers: min–max; dashed: failed, skipped or not applicable</text>`,
  ];
  shown.forEach((m, i) => {
    const x0 = 10 + (i % cols) * panelW;
    const y0 = 50 + Math.floor(i / cols) * (panelH + 16);
    const mine = cells.filter((c) => c.metric === m.id);
    const maxV = Math.max(1e-9, ...mine.map((c) => c.value?.max ?? 0));
    out.push(`<rect x="${x0}" y="${y0}" width="${panelW - 10}" height="${panelH}" fill="#f9fafb" stroke="#e5e7eb"/>`);
    out.push(
      `<text x="${x0 + 8}" y="${y0 + 18}" font-weight="bold">${esc(m.label)} (${m.unit}, ${m.better} is better)</text>`,
    );
    paths.forEach((p, j) => {
      const y = y0 + 30 + j * rowH;
      const c = mine.find((x) => x.path === p);
      out.push(`<text x="${x0 + 8}" y="${y + 14}">${esc(labels[p])}</text>`);
      const bx = x0 + labelW;
      if (!c?.value) {
        const why = !c ? 'not run' : c.status === 'n/a' ? 'n/a' : c.status;
        out.push(
          `<rect x="${bx}" y="${y + 3}" width="40" height="14" fill="none" stroke="#9ca3af" stroke-dasharray="3,2"/>`,
          `<text x="${bx + 46}" y="${y + 14}" fill="#6b7280">${esc(why)}</text>`,
        );
        return;
      }
      const w = (v: number) => Math.max(1, (Math.max(0, v) / maxV) * barMax);
      const v = c.value;
      out.push(`<rect x="${bx}" y="${y + 3}" width="${w(v.median).toFixed(1)}" height="14" fill="${COLORS[p]}"/>`);
      if (v.n > 1) {
        const a = bx + w(v.min);
        const b = bx + w(v.max);
        out.push(
          `<line x1="${a.toFixed(1)}" y1="${y + 10}" x2="${b.toFixed(1)}" y2="${y + 10}" stroke="#111" stroke-width="1"/>`,
          `<line x1="${a.toFixed(1)}" y1="${y + 5}" x2="${a.toFixed(1)}" y2="${y + 15}" stroke="#111"/>`,
          `<line x1="${b.toFixed(1)}" y1="${y + 5}" x2="${b.toFixed(1)}" y2="${y + 15}" stroke="#111"/>`,
        );
      }
      const tx = bx + Math.max(w(v.median), v.n > 1 ? w(v.max) : 0) + 5;
      const text = `${c.lowerBound ? '≥ ' : ''}${formatValue(m.unit, v.median)}`;
      out.push(`<text x="${tx.toFixed(1)}" y="${y + 14}">${esc(text)}</text>`);
    });
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
