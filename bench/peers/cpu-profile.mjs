// Preloaded into a MedStream server process by the tile-profile benchmark
// (NODE_OPTIONS=--import=<this file>, since Node refuses --cpu-prof in NODE_OPTIONS): the V8
// CPU profiler that --cpu-prof uses (same 1 ms sampling, same .cpuprofile format) on the main
// thread. SIGUSR2 starts it; the next SIGUSR2 stops it and writes $BENCH_CPU_PROFILE.<n>
// (n = 1, 2, ...: one profile per start/stop pair).
import { renameSync, writeFileSync } from 'node:fs';
import inspector from 'node:inspector';
import process from 'node:process';
import { isMainThread } from 'node:worker_threads';

const file = process.env.BENCH_CPU_PROFILE;
if (isMainThread && file) {
  const session = new inspector.Session();
  session.connect();
  session.post('Profiler.enable', () => session.post('Profiler.setSamplingInterval', { interval: 1000 }));
  let running = false;
  let written = 0;
  process.on('SIGUSR2', () => {
    if (!running) {
      running = true;
      session.post('Profiler.start');
      return;
    }
    running = false;
    session.post('Profiler.stop', (error, result) => {
      const out = `${file}.${++written}`;
      const text = error ? JSON.stringify({ error: String(error) }) : JSON.stringify(result.profile);
      writeFileSync(`${out}.partial`, text);
      renameSync(`${out}.partial`, out);
    });
  });
}
