/**
 * Redraws the chart of a finished run from its JSON, without measuring anything:
 *
 *   node dist/bench/tunnel/render.js [bench/results/tunnel.json]   → tunnel.svg beside it
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chartOf, type ResultForChart } from './chart.js';
import { REPO_ROOT } from './tunnels.js';

const file = process.argv[2] ?? join(REPO_ROOT, 'bench/results/tunnel.json');
const result = JSON.parse(readFileSync(file, 'utf8')) as ResultForChart;
const svg = `${file.replace(/\.json$/, '')}.svg`;
writeFileSync(svg, chartOf(result));
process.stdout.write(`wrote ${svg}\n`);
