// Prints the axe results the tests wrote to artifacts/axe-results.jsonl:
// one line per page (ids and tokens folded), the worst count seen for each
// impact, and the rules that fired.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = path.dirname(fileURLToPath(import.meta.url));
const file = path.join(dir, 'artifacts', 'axe-results.jsonl');
if (!fs.existsSync(file)) {
  console.log('no axe results (no page was audited)');
  process.exit(0);
}
const IMPACTS = ['critical', 'serious', 'moderate', 'minor'];
const pages = new Map();
const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
for (const line of lines) {
  const r = JSON.parse(line);
  const key = r.path
    .replace(/^\/posts\/\d+/, '/posts/{id}')
    .replace(/^\/(reset-password|verify-email)\/.+$/, '/$1/{token}')
    .replace(/^\/admin\/users\/\d+\/(.+)$/, '/admin/users/{id}/$1');
  const p = pages.get(key) || { audits: 0, worst: Object.fromEntries(IMPACTS.map((i) => [i, 0])), rules: new Set() };
  p.audits += 1;
  for (const i of IMPACTS) p.worst[i] = Math.max(p.worst[i], r.byImpact[i] || 0);
  for (const v of r.violations) p.rules.add(`${v.impact} ${v.id}`);
  pages.set(key, p);
}
const width = Math.max(...[...pages.keys()].map((k) => k.length));
for (const [key, p] of [...pages.entries()].sort()) {
  const counts = IMPACTS.map((i) => `${i} ${p.worst[i]}`).join(', ');
  const rules = p.rules.size ? ` — ${[...p.rules].join('; ')}` : '';
  console.log(`axe ${key.padEnd(width)}  ${String(p.audits).padStart(3)} audits: ${counts}${rules}`);
}
const shots = fs.readdirSync(path.join(dir, 'artifacts', 'screenshots')).length;
console.log(`axe: ${lines.length} audits (each at 1280×800 and 390×844) of ${pages.size} pages; ${shots} screenshots`);
