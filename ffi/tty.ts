/**
 * The host's side of a pseudo-terminal: its master read with `node:tty` (neither runtime reads
 * a terminal through `node:net`, and `Bun.file(fd).stream()` tries `pread` on it), written with
 * the library's `ph_write`, and resized with `ph_pty_resize`. The same code on both runtimes;
 * they differ only in whether the master is non-blocking (see `openPty`).
 *
 * @module
 */
import tty from "node:tty";
import { Pty } from "./abi.ts";
import { lazyPipeReader, type LibraryCalls, type Native, type PipeReader, type PipeWriter } from "./native.ts";
import { socketReader } from "./deno.ts";

/** A pseudo-terminal opened for a child: the slave goes to the child, the rest stays here. */
export interface OpenedPty {
  /** Reads what the child writes to its terminal; EIO (no slave left) is the end. */
  reader: PipeReader;
  /** Writes what the child reads from its terminal. */
  writer: PipeWriter;
  /** A descriptor of the master for `ph_pty_resize`, owned and closed by the caller. */
  control: number;
  /** The slave, which the caller closes as soon as the child has it. */
  slave: number;
}

const EAGAIN = 11;
const EIO = 5;
const POLLOUT = 4;
/**
 * The most bytes one `ph_write` is given. A blocking master (Bun) that polled writable has
 * room for at least one byte and no more is known, so it is given one: a larger write that
 * finds less room waits in the kernel for the rest, and if the child then exits without
 * reading, Linux may never wake it (seen: a 256-byte write blocked for good after its
 * child's exit). A non-blocking master takes what fits.
 */
const WRITE_CHUNK_BLOCKING = 1;
const WRITE_CHUNK_NONBLOCKING = 64 * 1024;
/** After this many bytes written a byte at a time, the writer lets the event loop run. */
const WRITE_YIELD_BYTES = 4096;
/** Retries of a full terminal wait this long at first, then twice as long up to the maximum. */
const WRITE_RETRY_MIN_MS = 1;
const WRITE_RETRY_MAX_MS = 50;

/**
 * Opens a pseudo-terminal of `cols` x `rows`; a negative errno if the library could not. The
 * master is non-blocking where the runtime's `tty.ReadStream` polls it (`ptyNonblocking`).
 */
export function openPty(native: Native, cols: number, rows: number): OpenedPty | number {
  const calls = native;
  const nonblocking = native.ptyNonblocking;
  const out = new Uint8Array(Pty.size);
  const rc = calls.ptyOpen(cols, rows, nonblocking ? 1 : 0, out);
  if (rc < 0) return rc;
  const view = new DataView(out.buffer);
  const read = view.getInt32(Pty.master_read, true);
  const close = (fd: number) => void calls.close(fd);
  return {
    reader: lazyPipeReader(read, () => socketReader(new tty.ReadStream(read), undefined, isEio), close),
    writer: ttyWriter(calls, view.getInt32(Pty.master_write, true), nonblocking),
    control: view.getInt32(Pty.control, true),
    slave: view.getInt32(Pty.slave, true),
  };
}

function isEio(error: Error): boolean {
  return (error as Error & { code?: string }).code === "EIO" || (error as Error & { errno?: number }).errno === -EIO;
}

/**
 * Writes the master with `ph_write`. A full terminal (a child in raw mode that reads nothing;
 * in canonical mode the kernel drops what does not fit a line) is waited for with timers: a
 * non-blocking master says EAGAIN; a blocking one (Bun) is polled for room before each byte,
 * so no write ever waits in the kernel, and the event loop runs every `WRITE_YIELD_BYTES`.
 */
function ttyWriter(calls: LibraryCalls, fd: number, nonblocking: boolean): PipeWriter {
  let open = true;
  const chunkBytes = nonblocking ? WRITE_CHUNK_NONBLOCKING : WRITE_CHUNK_BLOCKING;
  const pollfd = new Uint8Array(8);
  const pollView = new DataView(pollfd.buffer);
  const hasRoom = () => {
    if (nonblocking) return true;
    pollView.setInt32(0, fd, true);
    pollView.setInt16(4, POLLOUT, true);
    pollView.setInt16(6, 0, true);
    return calls.poll(pollfd, 1, 0) !== 0;
  };
  const close = () => {
    if (!open) return;
    open = false;
    calls.close(fd);
  };
  return {
    async write(chunk) {
      let offset = 0;
      let delay = WRITE_RETRY_MIN_MS;
      let sinceYield = 0;
      while (offset < chunk.length) {
        if (!open) throw closedError();
        const piece = chunk.subarray(offset, offset + chunkBytes);
        const rc = hasRoom() ? calls.write(fd, piece, piece.length) : -EAGAIN;
        if (rc === -EAGAIN) {
          await new Promise((resolve) => setTimeout(resolve, delay));
          delay = Math.min(delay * 2, WRITE_RETRY_MAX_MS);
          continue;
        }
        if (rc < 0) throw writeError(-rc);
        offset += rc;
        delay = WRITE_RETRY_MIN_MS;
        sinceYield += rc;
        if (!nonblocking && sinceYield >= WRITE_YIELD_BYTES && offset < chunk.length) {
          sinceYield = 0;
          await new Promise((resolve) => setTimeout(resolve, 0));
        }
      }
    },
    // A terminal has no end of input (that is ^D, a byte the child's line discipline reads):
    // closing this descriptor only lets go of it.
    end() {
      close();
      return Promise.resolve();
    },
    close,
  };
}

function closedError(): Error {
  return Object.assign(new Error("The terminal was closed"), { code: "ERR_STREAM_DESTROYED" });
}

function writeError(errno: number): Error {
  // EIO: no process has the terminal open any more, as EPIPE is for a pipe.
  const code = errno === EIO ? "EPIPE" : `errno ${errno}`;
  return Object.assign(new Error(`Cannot write to the terminal: ${code}`), { code, errno: -errno });
}
