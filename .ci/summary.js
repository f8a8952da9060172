// Prints each test's result from mocha's JSON report, then "N passed, N failed".
// Exits 1 when the report is missing, empty, or has failures.
const fs = require('fs');
const file = process.argv[2];
let report;
try {
  report = JSON.parse(fs.readFileSync(file, 'utf8'));
} catch (e) {
  console.log(`no mocha report at ${file}: ${e.message}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}
for (const t of report.passes) console.log(`  ok    ${t.fullTitle} (${t.duration ?? 0} ms)`);
for (const t of report.pending) console.log(`  skip  ${t.fullTitle}`);
for (const t of report.failures) {
  console.log(`  FAIL  ${t.fullTitle}`);
  console.log(`        ${(t.err && (t.err.stack || t.err.message) || '').split('\n').slice(0, 6).join('\n        ')}`);
}
const passed = report.passes.length, failed = report.failures.length, skipped = report.pending.length;
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
