/**
 * A small bar chart drawn on the server as SVG, for where people would rather look than read.
 * No script and no inline style (the console's CSP forbids both): shapes carry classes that
 * the console's stylesheet colours. Accessible as an image with a title and a description
 * (the total and the busiest point), each bar with its own title for hover, and every number
 * also in a table beside it (WCAG 2.2 §1.1.1).
 */
export interface ChartPoint {
  /** The point in words, for the table and the bar's title ("3 Dec 2026"). */
  label: string;
  /** A short axis label ("3 Dec"). */
  short: string;
  value: number;
}

const WIDTH = 640;
const HEIGHT = 180;
const PAD = { top: 16, right: 8, bottom: 28, left: 44 };

const count = (n: number) => n.toLocaleString('en-US');

export function BarChart(props: { id: string; title: string; unit: string; points: ChartPoint[]; column: string }) {
  const { points } = props;
  const max = Math.max(1, ...points.map((p) => p.value));
  const total = points.reduce((sum, p) => sum + p.value, 0);
  const busiest = points.reduce((best, p) => (p.value > best.value ? p : best), points[0] ?? { label: '', short: '', value: 0 });
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const slot = plotWidth / Math.max(1, points.length);
  const bar = Math.max(1, slot * 0.7);
  const baseline = HEIGHT - PAD.bottom;
  const description = total === 0 ? `None in this period.` : `${count(total)} ${props.unit} in all; the most: ${count(busiest.value)} (${busiest.label}).`;
  const ticks = points.length > 1 ? [0, Math.floor((points.length - 1) / 2), points.length - 1] : [0];
  return (
    <figure class="chart" aria-labelledby={`${props.id}-caption`}>
      <figcaption id={`${props.id}-caption`}><strong>{props.title}</strong> <span class="muted">{description}</span></figcaption>
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-labelledby={`${props.id}-title ${props.id}-desc`} focusable="false">
        <title id={`${props.id}-title`}>{props.title}</title>
        <desc id={`${props.id}-desc`}>{description}</desc>
        <line class="chart-axis" x1={PAD.left} y1={baseline} x2={WIDTH - PAD.right} y2={baseline} />
        <line class="chart-grid" x1={PAD.left} y1={PAD.top} x2={WIDTH - PAD.right} y2={PAD.top} />
        <text class="chart-label chart-y" x={PAD.left - 6} y={PAD.top + 4}>{count(max)}</text>
        <text class="chart-label chart-y" x={PAD.left - 6} y={baseline}>0</text>
        {points.map((p, i) => {
          const height = (p.value / max) * plotHeight;
          return (
            <rect class="chart-bar" x={PAD.left + i * slot + (slot - bar) / 2} y={baseline - height} width={bar} height={Math.max(height, p.value > 0 ? 1 : 0)}>
              <title>{`${p.label}: ${count(p.value)} ${props.unit}`}</title>
            </rect>
          );
        })}
        {ticks.map((i) => (
          <text class="chart-label chart-x" x={PAD.left + i * slot + slot / 2} y={HEIGHT - 8}>{points[i]?.short ?? ''}</text>
        ))}
      </svg>
      <details>
        <summary>{`The numbers: ${props.title.toLowerCase()}`}</summary>
        <table class="numbers">
          <caption class="visually-hidden">{props.title}</caption>
          <thead><tr><th scope="col">{props.column}</th><th scope="col">{props.unit}</th></tr></thead>
          <tbody>{points.map((p) => <tr><th scope="row">{p.label}</th><td>{count(p.value)}</td></tr>)}</tbody>
        </table>
      </details>
    </figure>
  );
}
