#!/usr/bin/env node
import { Command } from 'commander';

import { registerAnalyze } from './commands/analyze.js';
import { registerEmbed } from './commands/embed.js';
import { registerHead } from './commands/head.js';
import { registerModel } from './commands/model.js';
import { registerPhantom } from './commands/phantom.js';
import { registerPreprocess } from './commands/preprocess.js';
import { registerSegment } from './commands/segment.js';
import { registerRegister } from './commands/register.js';
import { registerUp } from './commands/up.js';

const program = new Command()
  .name('curia')
  .description('Curia serving platform: local cluster and offline engines')
  .showHelpAfterError()
  // A subcommand's options are its own (`curia segment fit --target …` is fit's --target).
  .enablePositionalOptions();

registerUp(program);
registerPreprocess(program);
registerModel(program);
registerEmbed(program);
registerHead(program);
registerAnalyze(program);
registerSegment(program);
registerRegister(program);
registerPhantom(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`curia: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
