// Mocha's spec reporter plus a closing line "N passed, N failed[, N skipped]" that CI reads.
// Under scripts/test.sh (DNSPROXY_TEST_SUMMARY set) the counts go to that file instead: the script
// adds its lint and coverage checks and prints the closing line itself, last.
const Mocha = require('mocha');
const { writeFileSync } = require('node:fs');

class Summary extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      const s = runner.stats;
      const file = process.env.DNSPROXY_TEST_SUMMARY;
      if (file) writeFileSync(file, `${s.passes} ${s.failures} ${s.pending}\n`);
      else process.stdout.write(`${s.passes} passed, ${s.failures} failed${s.pending ? `, ${s.pending} skipped` : ''}\n`);
    });
  }
}
module.exports = Summary;
