/** Where the hostile suite's results go by default. */
import { fileURLToPath } from 'node:url';

export const RESULTS = fileURLToPath(new URL('../../../bench/results', import.meta.url));
