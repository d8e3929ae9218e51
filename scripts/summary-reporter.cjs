// Mocha's spec reporter plus one closing line: "N passed, N failed[, N skipped]".
// A test counts once: one that passed and was then failed by an afterEach check (a root hook
// giving its error to the test, as protocol-http's leak check does) counts as failed only.
// Printed synchronously from the run-end event (after the spec epilogue, which was registered
// first), so an early process exit cannot cut it off.
const Mocha = require("mocha");
const { EVENT_RUN_END, EVENT_TEST_PASS, EVENT_TEST_FAIL } = Mocha.Runner.constants;
class SummaryReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    const passed = new Set();
    runner.on(EVENT_TEST_PASS, (test) => passed.add(test));
    runner.on(EVENT_TEST_FAIL, (test) => passed.delete(test));
    runner.once(EVENT_RUN_END, () => {
      const s = runner.stats ?? {};
      const skipped = s.pending ? `, ${s.pending} skipped` : "";
      process.stdout.write(`\n${passed.size} passed, ${s.failures ?? 0} failed${skipped}\n`);
    });
  }
}
module.exports = SummaryReporter;
