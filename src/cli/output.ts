/** Where ovpn-cli's results go: text for people, or with --json one JSON value per line. */

export interface Output {
  json: boolean;
  /** Whether anything was printed yet: with --json a command that printed nothing prints {"ok":true}. */
  printed: boolean;
  /** Prints the text, or with --json the value as one line of JSON. */
  print(text: string, value: unknown): void;
}

export function stdoutOutput(json: boolean): Output {
  const out: Output = {
    json,
    printed: false,
    print: (text, value) => {
      out.printed = true;
      process.stdout.write(`${json ? JSON.stringify(value ?? {}) : text}\n`);
    },
  };
  return out;
}
