#!/usr/bin/env node
// The `medstream` command and composition root: parses the configuration, builds every object
// (statistics, storage, caches, server) and wires them together. Commands: `serve` (default),
// `check`, `sign`, `index`, `segment` and `eval`. Exit codes: 0 ok, 1 runtime failure, 2 bad
// configuration or usage.

import { ConfigError, MedStreamError } from '../errors.js';
import { VERSION } from '../version.js';
import { helpText, parseConfig } from './config.js';
import { runCheck } from './check.js';
import { runServe } from './serve.js';
import { runSign, SIGN_FLAGS } from './sign.js';
import { INDEX_FLAGS, runIndex } from './index-command.js';
import { parsePrepare } from '../dicomweb/derived-prepare.js';
import { EVAL_FLAGS, runEval } from './eval.js';
import { runSegment, SEGMENT_FLAGS } from './segment.js';

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '--version' || first === '-v' || first === 'version') {
    process.stdout.write(`medstream ${VERSION}\n`);
    return 0;
  }
  const command =
    first === 'serve' || first === 'check' || first === 'sign' || first === 'index' ? first : 'serve';
  const args = command === first ? rest : argv;

  if (first === 'segment' || first === 'eval') {
    const parsed = parseConfig(rest, process.env, first === 'segment' ? SEGMENT_FLAGS : EVAL_FLAGS);
    if (parsed.help) return printHelp();
    const commandArgs = { values: parsed.commandValues, positionals: parsed.positionals };
    return first === 'segment' ? runSegment(parsed.config, commandArgs) : runEval(parsed.config, commandArgs);
  }

  if (command === 'sign') {
    const parsed = parseConfig(args, process.env, SIGN_FLAGS);
    if (parsed.help) return printHelp();
    return runSign(parsed.config, { values: parsed.commandValues, positionals: parsed.positionals });
  }

  if (command === 'index') {
    const parsed = parseConfig(args, process.env, INDEX_FLAGS);
    if (parsed.help) return printHelp();
    if (parsed.config.storage === undefined) {
      throw new ConfigError(
        'index: name the storage to index (a directory, s3://bucket/prefix or http(s)://...)',
      );
    }
    return runIndex(parsed.config, {
      prefix: parsed.commandValues.prefix as string | undefined,
      report: parsed.commandValues.report === true,
      json: parsed.commandValues.json === true,
      prepare:
        parsed.commandValues.prepare === undefined
          ? undefined
          : parsePrepare(parsed.commandValues.prepare as string),
    });
  }

  if (command === 'check') {
    const parsed = parseConfig(args, process.env, {
      'list-slides': { type: 'boolean' },
      'test-slide': { type: 'string' },
    });
    if (parsed.help) return printHelp();
    return runCheck(parsed.config, {
      listSlides: parsed.commandValues['list-slides'] === true,
      testSlide: parsed.commandValues['test-slide'] as string | undefined,
    });
  }
  const parsed = parseConfig(args, process.env);
  if (parsed.help) return printHelp();
  await runServe(parsed.config);
  return 0;
}

function printHelp(): number {
  process.stdout.write(helpText() + '\n');
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`medstream: ${err.message}\n`);
      process.exitCode = 2;
    } else if (err instanceof MedStreamError) {
      process.stderr.write(`medstream: ${err.code}: ${err.message}\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(
        `medstream: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exitCode = 1;
    }
  },
);
