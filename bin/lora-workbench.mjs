#!/usr/bin/env node
// Entry of `npx lora-workbench`: loads the CLI from its TypeScript source through tsx's loader, so
// the command works from any folder without a build step. Imports resolve from this file's real
// location (npm's bin link is followed), not from the caller's working directory.
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('../src-main/cli.ts');
process.exitCode = await runCli(process.argv.slice(2));
