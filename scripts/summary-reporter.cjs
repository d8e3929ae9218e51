// Mocha's spec reporter plus one closing line: "N passed, N failed[, N skipped]".
const Mocha = require("mocha");
const { EVENT_RUN_END } = Mocha.Runner.constants;
class SummaryReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once(EVENT_RUN_END, () => {
      const s = runner.stats ?? {};
      const skipped = s.pending ? `, ${s.pending} skipped` : "";
      // printed after the spec epilogue
      setImmediate(() => console.log(`${s.passes ?? 0} passed, ${s.failures ?? 0} failed${skipped}`));
    });
  }
}
module.exports = SummaryReporter;
