// A replica's job worker in its own process, for the "replica killed mid-job" tests:
//   node --import tsx redis-worker-child.ts <redis-url> <queue-name> <worker-id>
// Runs the test handler (steps of `stepMs`, progress after each) and prints "running <id>" when a
// job starts, so the test knows when to SIGKILL it.
import { RedisJobQueue } from '../../src/jobs/redis-queue.js';
import { STEP_QUEUE_SETTINGS, stepHandler, type StepPayload } from './step-handler.js';

const [url, name, workerId] = process.argv.slice(2);
const queue = new RedisJobQueue<StepPayload, { name: string }>({
  url,
  name,
  workerId,
  ...STEP_QUEUE_SETTINGS,
  handler: stepHandler((id) => process.stdout.write(`running ${id}\n`)),
});
process.stdout.write('ready\n');
process.once('SIGTERM', () => void queue.close().then(() => process.exit(0)));
