/**
 * Type-level checks of `spawnHandle`'s inference, type-checked by `deno check` and by
 * `tsc -p tests/tsconfig.bun.json` (bun-types, no Deno types), and run by tests/api.test.ts.
 * Each `@ts-expect-error` line must fail to type-check, and each assignment below compiles only
 * because the type of a stream follows the options.
 */
import { type ProcessHandle, type ProcessReadableStream, spawnHandle, type SpawnOptions } from "../mod.ts";

/** Spawns with inferred stream types; resolves with what the child printed and its exit code. */
export async function typedStreams(): Promise<{ text: string; code: number | null }> {
  const child = spawnHandle("cat", [], { stdin: "piped", stdout: "pipe" });
  // Piped: the streams are not nullable.
  const stdin: WritableStream<Uint8Array> = child.stdin;
  const stdout: ProcessReadableStream = child.stdout;
  const stdoutStream: ReadableStream<Uint8Array> = child.stdout;
  // Not piped: null.
  const stderr: null = child.stderr;

  const writer = stdin.getWriter();
  await writer.write(new TextEncoder().encode("typed\n"));
  await writer.close();
  const text = await stdout.text();
  const code = (await child.wait()).code;

  // Options typed as SpawnOptions say nothing about each stream: nullable.
  const options: SpawnOptions = { stdout: "piped" };
  const loose = spawnHandle("true", [], options);
  void (() => {
    // Never called: each line only has to fail to type-check.
    // @ts-expect-error: stderr is not piped, so it is null.
    child.stderr.getReader();
    // @ts-expect-error: stdout may be null here.
    loose.stdout.getReader();
  });
  await loose.stdout?.cancel();
  // No options: nothing is piped.
  const plain = spawnHandle("true");
  const none: [null, null, null] = [plain.stdin, plain.stdout, plain.stderr];
  // A file, a descriptor or bytes for stdin are not pipes on the handle.
  const bytes = spawnHandle("true", [], { stdin: new Uint8Array(0), stdout: "null", stderr: 2 });
  const alsoNone: [null, null, null] = [bytes.stdin, bytes.stdout, bytes.stderr];
  // Every handle is a ProcessHandle.
  const handles: ProcessHandle[] = [child, loose, plain, bytes];
  await Promise.all(handles.map((handle) => handle.wait()));
  try {
    // @ts-expect-error: unknown options are still caught (and throw: it was renamed "timeout").
    spawnHandle("true", [], { stdout: "piped", timeoutMs: 1 });
  } catch { /* the TypeError the test of renamed options checks */ }

  void [stdoutStream, stderr, none, alsoNone];
  return { text, code };
}
