// CPU time of the calling (JavaScript) thread. Process CPU time (process.cpuUsage) also counts
// lavapipe's worker threads, which execute the kernels on a software adapter; the host cost of
// issuing work is what the main thread alone spends. clock_gettime(CLOCK_THREAD_CPUTIME_ID) via
// FFI gives nanoseconds; without FFI (no --allow-ffi, not Linux) it falls back to the thread's
// utime + stime in /proc/self/task/<pid>/stat, which advance in 10 ms clock ticks, so callers
// average over several steps.

const CLOCK_THREAD_CPUTIME_ID = 3;

type Reader = () => number;

let reader: Reader | null | undefined;

function ffiReader(): Reader | null {
  if (Deno.build.os !== "linux") return null;
  try {
    const lib = Deno.dlopen("libc.so.6", {
      clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
    });
    const ts = new BigInt64Array(2);
    const read = () => {
      if (lib.symbols.clock_gettime(CLOCK_THREAD_CPUTIME_ID, ts) !== 0) return NaN;
      return Number(ts[0]) * 1e3 + Number(ts[1]) / 1e6;
    };
    return Number.isFinite(read()) ? read : null;
  } catch {
    return null;
  }
}

function procReader(): Reader | null {
  const path = `/proc/self/task/${Deno.pid}/stat`;
  const read = () => {
    const stat = Deno.readTextFileSync(path);
    // Fields after the ")" that closes the command name: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10; // USER_HZ is 100 on Linux
  };
  try {
    return Number.isFinite(read()) ? read : null;
  } catch {
    return null;
  }
}

/** Which clock `threadCpuMs` reads: "ffi" (ns), "proc" (10 ms ticks) or null (none). */
export function threadCpuClock(): "ffi" | "proc" | null {
  init();
  return reader === null ? null : clockKind;
}

let clockKind: "ffi" | "proc" = "ffi";

function init() {
  if (reader !== undefined) return;
  reader = ffiReader();
  if (reader === null) {
    reader = procReader();
    clockKind = "proc";
  }
}

/** CPU time the calling thread has used, ms; NaN where no clock is available. */
export function threadCpuMs(): number {
  init();
  return reader ? reader() : NaN;
}
