#!/usr/bin/env node
/**
 * ovpn-cli: drives ovpn interfaces through their control sockets. Accepts both the seed's
 * syntax, `ovpn-cli <iface> <cmd> ...` (creating the interface when a peer is added to one
 * that does not exist yet), and the upstream selftests' syntax, `ovpn-cli <cmd> <iface> ...`.
 * Every argument is checked before anything is created, and an interface created for a command
 * that then fails is removed again. The commands are in commands.ts, their help in help.ts.
 */
import { parseArgs } from 'node:util';
import { startDaemon } from '../control/client.js';
import { checkInterfaceName } from '../device/options.js';
import { Args, UsageError } from './args.js';
import { type Action, type CommandDef, commandNamed } from './commands.js';
import { commandHelp, usage, usageOf } from './help.js';
import { type Output, stdoutOutput } from './output.js';
import { deleteInterface, interfaceExists } from './requests.js';
import { packageVersion } from './version.js';

const EXIT_USAGE = 1;
const EXIT_FAILED = 2;

/** A resolved call: which command, in which syntax, on which interface, with which arguments. */
interface Call {
  command: CommandDef;
  form: 'seed' | 'upstream';
  ifname: string | undefined;
  values: string[];
}

/** Finds the command and the interface among the positionals; throws UsageError when it cannot. */
function resolve([first, ...rest]: string[]): Call {
  const upstream = commandNamed(first!);
  if (upstream?.upstream !== undefined) {
    const iface = upstream.upstream.iface;
    if (iface === 'none') return { command: upstream, form: 'upstream', ifname: undefined, values: rest };
    const [ifname, ...values] = rest;
    if (ifname === undefined && iface !== 'optional')
      throw new UsageError(`missing <iface> after ${upstream.name}`, 'iface');
    return { command: upstream, form: 'upstream', ifname, values };
  }
  const [second, ...values] = rest;
  if (second === undefined)
    throw new UsageError(
      upstream === undefined
        ? `no command after ${JSON.stringify(first)}: try ovpn-cli show ${first}, or ovpn-cli help`
        : `${upstream.name} takes the interface after the command name: ovpn-cli help ${upstream.name}`,
    );
  const command = commandNamed(second);
  if (command?.seed === undefined) {
    const hint = command === undefined ? 'ovpn-cli help lists the commands' : `ovpn-cli help ${command.name}`;
    throw new UsageError(`unknown command ${JSON.stringify(second)} after interface ${first}: ${hint}`);
  }
  return { command, form: 'seed', ifname: first, values };
}

/** With --json, an error is printed as JSON on stdout too (the message always goes to stderr). */
function printJsonError(out: Output, code: string, message: string, field?: string): void {
  if (out.json) process.stdout.write(`${JSON.stringify({ error: { code, message, ...(field ? { field } : {}) } })}\n`);
}

/** Checks everything about the call (interface name, arguments, files) and returns what to run. */
function prepare(call: Call): Action {
  if (call.ifname !== undefined) {
    try {
      checkInterfaceName(call.ifname);
    } catch (error) {
      throw new UsageError((error as Error).message, 'iface');
    }
  }
  return call.command[call.form]!.prepare(new Args(call.command[call.form]!.params, call.values));
}

/** Runs it, creating the interface first in the seed syntax when needed, and removing it again on failure. */
async function run(call: Call, action: Action, out: Output): Promise<void> {
  const creates = call.form === 'seed' ? call.command.seed?.creates : undefined;
  const ifname = call.ifname;
  const create = creates !== undefined && ifname !== undefined && !(await interfaceExists(ifname));
  if (create) await startDaemon(ifname, creates);
  try {
    await action({ ifname, out });
  } catch (error) {
    if (create) await deleteInterface(ifname).catch(() => undefined);
    throw error;
  }
}

export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(argv);
  } catch (error) {
    process.stderr.write(`Error: ${(error as Error).message}\novpn-cli help lists the commands and options\n`);
    return EXIT_USAGE;
  }
  const { values: options, positionals } = parsed;
  const out = stdoutOutput(options.json === true);
  // Asked-for help goes to stdout (to page or grep it); help for a wrong call goes to stderr.
  if (options.version) {
    process.stdout.write(`ovpn-cli ${packageVersion()}\n`);
    return 0;
  }
  if (positionals[0] === 'help') {
    const named = positionals[1] === undefined ? undefined : commandNamed(positionals[1]);
    if (positionals[1] !== undefined && named === undefined) {
      process.stderr.write(`Error: unknown command ${JSON.stringify(positionals[1])}: ovpn-cli help lists them\n`);
      return EXIT_USAGE;
    }
    process.stdout.write(`${named === undefined ? usage() : commandHelp(named)}\n`);
    return 0;
  }
  if (options.help) {
    // `CMD --help` and `<iface> CMD --help`; anything else gets the general usage.
    const [first, second] = positionals;
    const named = (first && commandNamed(first)) || (second && commandNamed(second)) || undefined;
    process.stdout.write(`${named === undefined ? usage() : commandHelp(named)}\n`);
    return 0;
  }
  if (positionals.length === 0) {
    process.stderr.write(`${usage()}\n`);
    return EXIT_USAGE;
  }
  let call: Call | undefined;
  let action: Action;
  try {
    call = resolve(positionals);
    action = prepare(call);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    printJsonError(out, 'EINVAL', error.message, error.field);
    const hint = call === undefined ? 'ovpn-cli help lists the commands' : usageOf(call.command, call.form);
    process.stderr.write(`Error: invalid arguments: ${error.message}\n${hint}\n`);
    return EXIT_USAGE;
  }
  try {
    await run(call, action, out);
    if (out.json && !out.printed) out.print('', { ok: true });
    return 0;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const errno = typeof code === 'string' ? code : 'EIO';
    printJsonError(out, errno, (error as Error).message, (error as { field?: string }).field);
    process.stderr.write(`Cannot execute command: ${(error as Error).message} (${errno})\n`);
    return EXIT_FAILED;
  }
}

function parseOptions(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'V' },
    },
    allowPositionals: true,
    strict: true,
  });
}

/** Exits once stdout has taken everything written to it: a pipe may still hold some. */
function exitAfterOutput(code: number): void {
  process.stdout.write('', () => process.exit(code));
}

main(process.argv.slice(2)).then(exitAfterOutput, (error: unknown) => {
  process.stderr.write(`ovpn-cli: ${(error as Error).stack ?? String(error)}\n`);
  exitAfterOutput(70);
});
