/**
 * The benchmark's chart as a standalone SVG, drawn by hand (no dependencies): one panel per
 * metric, a horizontal bar per tunnel grouped by cipher, min–max whiskers over the samples, and
 * each bar labelled with its median and its ratio to OpenVPN with the same cipher (green when
 * better than OpenVPN, red when worse).
 */
import { type Figures, METRICS, type Metric, type Ratios, type TunnelInfo } from './report.js';
import { MTU } from './tunnels.js';

export interface ChartInput {
  title: string;
  subtitle: string;
  footnotes: string[];
  tunnels: readonly (TunnelInfo & { impl: string; cipher: string })[];
  figures: Figures;
  ratios: Ratios;
}

const W = 1200;
const MARGIN = 28;
const GAP = 28;
const COLS = 2;
const COL_W = (W - 2 * MARGIN - (COLS - 1) * GAP) / COLS;
const HEADER = 84;
/** Room under the bars of a panel for the axis values. */
const AXIS_H = 16;
const PANEL_HEAD = 46;
const BAR_H = 20;
const PITCH = 27;
const GROUP_GAP = 12;
const LABEL_W = 140;
const VALUE_W = 190;
const FONT = "font-family='DejaVu Sans, Verdana, Arial, sans-serif'";

const COLOURS: Record<string, string> = {
  'ours-aes': '#1f5fa8',
  'ours-chacha': '#6b9fd8',
  'ovpn-dco-aes': '#7a4fb0',
  'openvpn-aes': '#d9731a',
  'openvpn-chacha': '#f0ad6b',
  'wireguard-go': '#3c9a4a',
};

const GROUPS: { name: string; ids: string[] }[] = [
  { name: 'AES-256-GCM', ids: ['ours-aes', 'ovpn-dco-aes', 'openvpn-aes'] },
  { name: 'CHACHA20-POLY1305', ids: ['ours-chacha', 'openvpn-chacha'] },
  { name: 'WireGuard', ids: ['wireguard-go'] },
];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x='${x.toFixed(1)}' y='${y.toFixed(1)}' ${attrs}>${esc(s)}</text>`;
}

/** The bar's label; the cipher is the group's. */
function shortLabel(t: { impl: string }): string {
  const labels: Record<string, string> = { ours: 'ours', 'ovpn-dco': 'ovpn-dco --config', openvpn: 'OpenVPN 2.6' };
  return labels[t.impl] ?? 'wireguard-go';
}

/** Axis from 0 to a round number at or above `top`, with 3 to 5 ticks on a 1-2-2.5-5 step. */
function axis(top: number): { axisMax: number; ticks: number[] } {
  if (!(top > 0)) return { axisMax: 1, ticks: [0, 1] };
  const rough = top / 4;
  const p = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= rough)!;
  const axisMax = Math.ceil(top / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let v = 0; v <= axisMax + step / 2; v += step) ticks.push(+v.toPrecision(12));
  return { axisMax, ticks };
}

function fmtValue(x: number, m: Metric): string {
  if (!Number.isFinite(x)) return 'no data';
  return x >= 100 && m.digits > 0 ? x.toFixed(0) : x.toFixed(m.digits);
}

function panel(m: Metric, input: ChartInput, x0: number, y0: number): string {
  const out: string[] = [];
  const byId = new Map(input.tunnels.map((t) => [t.id, t]));
  const groups = GROUPS.map((g) => ({ ...g, ids: g.ids.filter((id) => byId.has(id)) })).filter((g) => g.ids.length > 0);
  const rows = groups.reduce((n, g) => n + g.ids.length, 0);
  const height = PANEL_HEAD + rows * PITCH + (groups.length - 1) * GROUP_GAP + 10 + AXIS_H;
  out.push(`<rect x='${x0}' y='${y0}' width='${COL_W}' height='${height}' rx='6' fill='#fafafa' stroke='#dddddd'/>`);
  out.push(text(x0 + 12, y0 + 21, m.title, `${FONT} font-size='15' font-weight='bold' fill='#222'`));
  out.push(text(x0 + 12, y0 + 38, `${m.unit} · ${m.better} is better`, `${FONT} font-size='11.5' fill='#666'`));

  const barX = x0 + LABEL_W;
  const barMax = COL_W - LABEL_W - VALUE_W;
  let top = 0;
  for (const id of byId.keys()) {
    const s = input.figures[id]?.[m.key];
    if (s) top = Math.max(top, Number.isFinite(s.max) ? s.max : 0, Number.isFinite(s.median) ? s.median : 0);
  }
  const { axisMax, ticks } = axis(top);
  const scale = barMax / axisMax;
  // Light gridlines at the ticks, their values under the bars.
  const gridTop = y0 + PANEL_HEAD - 4;
  const gridBottom = y0 + height - AXIS_H - 2;
  for (const tick of ticks) {
    const gx = barX + tick * scale;
    out.push(
      `<line x1='${gx.toFixed(1)}' y1='${gridTop}' x2='${gx.toFixed(1)}' y2='${gridBottom}' stroke='${tick === 0 ? '#999' : '#e3e3e3'}' stroke-width='1'/>`,
    );
    out.push(text(gx, gridBottom + 13, fmtAxis(tick), `${FONT} font-size='9.5' fill='#888' text-anchor='middle'`));
  }

  let y = y0 + PANEL_HEAD;
  for (const [gi, g] of groups.entries()) {
    if (gi > 0) y += GROUP_GAP;
    const groupTop = y;
    for (const id of g.ids) {
      const t = byId.get(id)!;
      const s = input.figures[id]![m.key];
      const ratio = input.ratios[id]![m.key];
      const w = Number.isFinite(s.median) ? Math.max(1, s.median * scale) : 0;
      out.push(
        text(barX - 8, y + BAR_H / 2 + 4, shortLabel(t), `${FONT} font-size='12' fill='#222' text-anchor='end'`),
      );
      out.push(
        `<rect x='${barX}' y='${y}' width='${w.toFixed(1)}' height='${BAR_H}' fill='${COLOURS[id] ?? '#888'}'><title>${esc(`${t.label}: ${fmtValue(s.median, m)} ${m.unit}, min ${fmtValue(s.min, m)}, max ${fmtValue(s.max, m)}, n=${s.n}`)}</title></rect>`,
      );
      if (s.n > 1 && Number.isFinite(s.min)) {
        const a = barX + s.min * scale;
        const b = barX + s.max * scale;
        const cy = y + BAR_H / 2;
        out.push(
          `<path d='M${a.toFixed(1)} ${cy}H${b.toFixed(1)}M${a.toFixed(1)} ${cy - 5}V${cy + 5}M${b.toFixed(1)} ${cy - 5}V${cy + 5}' stroke='#333' stroke-width='1.2' fill='none'/>`,
        );
      }
      const labelX = barX + Math.max(w, Number.isFinite(s.max) && s.n > 1 ? s.max * scale : 0) + 7;
      let label = `${fmtValue(s.median, m)}`;
      out.push(text(labelX, y + BAR_H / 2 + 4, label, `${FONT} font-size='12' fill='#222'`));
      if (t.baseline !== id && Number.isFinite(ratio)) {
        const good = m.better === 'higher' ? ratio >= 1 : ratio <= 1;
        label = `${ratio.toFixed(2)}× OpenVPN`;
        out.push(
          text(
            labelX + 8 + fmtValue(s.median, m).length * 7.2,
            y + BAR_H / 2 + 4,
            label,
            `${FONT} font-size='12' font-weight='bold' fill='${good ? '#1e7b34' : '#b3261e'}'`,
          ),
        );
      }
      y += PITCH;
    }
    // The group's name, rotated, in the left margin of the panel.
    const mid = (groupTop + y - (PITCH - BAR_H)) / 2;
    out.push(
      `<line x1='${x0 + 22}' y1='${groupTop + 1}' x2='${x0 + 22}' y2='${y - (PITCH - BAR_H) - 1}' stroke='#bbb' stroke-width='2'/>`,
    );
    out.push(
      text(
        x0 + 16,
        mid,
        g.name === 'CHACHA20-POLY1305' ? 'ChaCha20' : g.name === 'AES-256-GCM' ? 'AES-GCM' : 'WG',
        `${FONT} font-size='9.5' fill='#888' text-anchor='middle' transform='rotate(-90 ${x0 + 16} ${mid.toFixed(1)})'`,
      ),
    );
  }
  return out.join('\n');
}

/** Splits text into lines of at most `width` characters at spaces. */
function wrap(s: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of s.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines;
}

function fmtAxis(x: number): string {
  if (x >= 1000) return `${+(x / 1000).toFixed(2)}k`;
  return `${+x.toPrecision(3)}`;
}

function panelHeight(input: ChartInput): number {
  const ids = new Set(input.tunnels.map((t) => t.id));
  const groups = GROUPS.map((g) => g.ids.filter((id) => ids.has(id)).length).filter((n) => n > 0);
  return PANEL_HEAD + groups.reduce((a, b) => a + b, 0) * PITCH + (groups.length - 1) * GROUP_GAP + 10 + AXIS_H;
}

export function renderChart(input: ChartInput): string {
  const ph = panelHeight(input);
  const rows = Math.ceil(METRICS.length / COLS);
  const legendY = HEADER + rows * (ph + GAP);
  const notes = input.footnotes.flatMap((f) => wrap(f, 165));
  const height = legendY + 30 + notes.length * 17 + MARGIN;
  const parts: string[] = [];
  parts.push(`<svg xmlns='http://www.w3.org/2000/svg' width='${W}' height='${height}' viewBox='0 0 ${W} ${height}'>`);
  parts.push(`<rect width='${W}' height='${height}' fill='white'/>`);
  parts.push(text(MARGIN, 34, input.title, `${FONT} font-size='21' font-weight='bold' fill='#111'`));
  parts.push(text(MARGIN, 58, input.subtitle, `${FONT} font-size='12.5' fill='#555'`));
  METRICS.forEach((m, i) => {
    const col = i % COLS;
    const row = Math.floor(i / COLS);
    parts.push(panel(m, input, MARGIN + col * (COL_W + GAP), HEADER + row * (ph + GAP)));
  });
  // Legend.
  let lx = MARGIN;
  for (const t of input.tunnels) {
    parts.push(`<rect x='${lx}' y='${legendY}' width='14' height='14' fill='${COLOURS[t.id] ?? '#888'}'/>`);
    parts.push(text(lx + 20, legendY + 12, t.label, `${FONT} font-size='12' fill='#222'`));
    lx += 34 + t.label.length * 7.4;
  }
  for (const [i, f] of notes.entries())
    parts.push(text(MARGIN, legendY + 38 + i * 17, f, `${FONT} font-size='11.5' fill='#555'`));
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** The parts of tunnel.json the chart reads. */
export interface ResultForChart {
  date: string;
  config: { rounds: number; secondsPerRun: number; innerMtu?: number; tcpCongestionControl?: string };
  machine: object;
  versions: { ours: { node: string } };
  tunnels: ChartInput['tunnels'];
  spread: Figures;
  ratiosToOpenVpn: Ratios;
  noise: { note: string };
}

export function chartOf(r: ResultForChart): string {
  const m = r.machine as { cpu: string; cores: number; kernel: string };
  const { rounds, secondsPerRun: seconds } = r.config;
  return renderChart({
    title: 'Tunnel benchmark: ours vs OpenVPN 2.6 (userspace) vs wireguard-go',
    subtitle:
      `${r.date.slice(0, 16).replace('T', ' ')} UTC · ${m.cpu}, ${m.cores} cores · Linux ${m.kernel} · node ${r.versions.ours.node} · ` +
      `${rounds} round${rounds > 1 ? 's' : ''} × ${seconds} s · bars = medians, whiskers = min–max`,
    footnotes: [
      `Two network namespaces joined by a veth, inner MTU ${r.config.innerMtu ?? MTU}, traffic a → b${r.config.tcpCongestionControl ? `, TCP congestion control ${r.config.tcpCongestionControl}` : ''}. Ratios: to OpenVPN with the same cipher; wireguard-go (ChaCha20-Poly1305) to OpenVPN AES-256-GCM.`,
      'UDP: iperf3 at unlimited rate, packets/s that arrived. RTT: ping every 10 ms. CPU/GB: CPU time of the tunnel processes at both ends over the TCP run.',
      `Noise: ${r.noise.note}`,
    ],
    tunnels: r.tunnels,
    figures: r.spread,
    ratios: r.ratiosToOpenVpn,
  });
}
