/** ovpn-cli's usage and per-command help, written from the command table (src/cli/commands.ts). */
import { paramSyntax } from './args.js';
import { COMMANDS, type CommandDef, type Syntax } from './commands.js';

/** One syntax line: `<iface> new_peer <lport> ...` (seed) or `new_peer <iface> ...` (upstream). */
export function syntaxLine(command: CommandDef, form: 'seed' | 'upstream'): string {
  const syntax = command[form]!;
  const params = syntax.params.map(paramSyntax);
  if (form === 'seed') return ['<iface>', command.name, ...params].join(' ');
  const iface = syntax.iface === undefined ? ['<iface>'] : syntax.iface === 'optional' ? ['[iface]'] : [];
  return [command.name, ...iface, ...params].join(' ');
}

function forms(command: CommandDef): ('seed' | 'upstream')[] {
  return (['seed', 'upstream'] as const).filter((form) => command[form] !== undefined);
}

/** Usage of one command: every syntax it has, with the notes on its parameters. */
export function commandHelp(command: CommandDef): string {
  const lines = [`ovpn-cli ${command.name}: ${command.summary}`, ''];
  for (const form of forms(command)) lines.push(`  ovpn-cli [--json] ${syntaxLine(command, form)}`);
  const notes = forms(command).flatMap((form) => {
    const note = (command[form] as Syntax).note;
    return note === undefined ? [] : [{ form, note }];
  });
  // A note both forms share is said once; notes that differ say which form they are about.
  if (new Set(notes.map((n) => n.note)).size === 1) lines.push('', `  ${notes[0]!.note}`);
  else if (notes.length > 1) lines.push('', ...notes.map(({ form, note }) => `  ${form} syntax: ${note}`));
  const creates = command.seed?.creates;
  if (creates !== undefined)
    lines.push('', `  In the first form the interface is created (${creates} mode) when it does not exist yet.`);
  return lines.join('\n');
}

/** Only the syntax lines, for the line after an error. */
export function usageOf(command: CommandDef, form: 'seed' | 'upstream'): string {
  return `Usage: ovpn-cli ${syntaxLine(command, form)}   (ovpn-cli help ${command.name} for more)`;
}

export function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'Usage: ovpn-cli [--json] <iface> <cmd> [args...]    (the seed syntax)',
    '       ovpn-cli [--json] <cmd> <iface> [args...]    (the upstream selftests syntax)',
    '       ovpn-cli help [cmd] | <cmd> --help | --version',
    '',
    'Commands (a "-" may stand for "_": iface-get, route-add):',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    '--json prints every result, and every error, as one line of JSON.',
    'See ovpn-cli help <cmd> for the arguments of each, and man ovpn-cli.',
  ].join('\n');
}
