// esbuild plugin for the radiology viewer's Cornerstone3D bundle. esbuild leaves
// `new URL('<specifier>', import.meta.url)` alone, so the DICOM image loader's decode worker and
// its codecs' WASM files would be fetched from URLs that do not exist. This plugin rewrites each
// such URL to a file beside the bundle (workers: an entry point built by build-viewer.ts; WASM:
// copied to codecs/), and answers the Node built-ins the Emscripten codecs `require` only when
// they run under Node with an empty module.

import type { Plugin } from 'esbuild';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

/** Worker scripts referenced by Cornerstone, by file name, and the bundle each is built into. */
export const CORNERSTONE_WORKERS: Record<string, string> = {
  'decodeImageFrameWorker.js': 'radiology-decode-worker',
  'computeWorker.js': 'radiology-compute-worker',
};

const NODE_BUILTINS = /^(node:)?(fs|path|crypto|module|url|os|worker_threads|perf_hooks|child_process)$/;
const URL_OF = /new URL\(\s*(['"])([^'"]+)\1\s*,\s*import\.meta\.url\s*\)/g;

/** The plugin; WASM files go to `<outDir>/codecs/`. */
export function cornerstoneAssets(outDir: string): Plugin {
  return {
    name: 'cornerstone-assets',
    setup(build) {
      build.onResolve({ filter: NODE_BUILTINS }, (args) => ({ path: args.path, namespace: 'node-stub' }));
      build.onLoad({ filter: /.*/, namespace: 'node-stub' }, () => ({
        contents: 'export default {};',
        loader: 'js',
      }));
      build.onLoad({ filter: /[\\/]@cornerstonejs[\\/].*\.js$/ }, async (args) => {
        const source = await readFile(args.path, 'utf8');
        if (!source.includes('import.meta.url')) return undefined;
        const require = createRequire(args.path);
        const copies: Promise<void>[] = [];
        const contents = source.replace(URL_OF, (_all, _q: string, spec: string) => {
          const worker = CORNERSTONE_WORKERS[path.basename(spec)];
          if (worker) return `new URL('./${worker}.js', import.meta.url)`;
          // Emscripten's own ES module output names its WASM relative to itself, without './'.
          const file = spec.startsWith('@')
            ? require.resolve(spec)
            : path.resolve(path.dirname(args.path), spec);
          if (!file.endsWith('.wasm')) throw new Error(`${args.path}: unexpected asset URL ${spec}`);
          const name = path.basename(file);
          copies.push(
            mkdir(path.join(outDir, 'codecs'), { recursive: true }).then(() =>
              copyFile(file, path.join(outDir, 'codecs', name)),
            ),
          );
          return `new URL('./codecs/${name}', import.meta.url)`;
        });
        await Promise.all(copies);
        return { contents, loader: 'js' };
      });
    },
  };
}
