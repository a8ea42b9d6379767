// The CLI from its sources (tsx), for tests that must not depend on a fresh dist/ build.
import { main } from '../../src/cli/index.js';

process.exitCode = await main(process.argv);
