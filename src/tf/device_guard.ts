// Watches the webgpu backend's GPUDevice so that a lost device or an uncaptured GPU error
// becomes one clear message instead of a hang or a cryptic failure later on.
//
// Why: after `device.lost` the next tfjs op throws "Buffer with '' label is invalid" (seen on
// Deno 2.9 + tfjs-webgpu 4.22), and a pending read-back may never settle. Validation and
// out-of-memory errors are "uncaptured" by default: they only reach an event handler and the
// results of the failing dispatch are garbage. The training loop checks `deviceFailure()` (or
// calls `assertDeviceOk()`) between steps, keeps its last on-disk checkpoint, and stops.

import * as tf from "@tensorflow/tfjs-core";

export type DeviceFailureKind = "lost" | "out-of-memory" | "validation" | "internal";

/** A GPU failure that makes further work on this device meaningless. */
export class DeviceFailureError extends Error {
  override name = "DeviceFailureError";
  constructor(readonly kind: DeviceFailureKind, message: string, readonly at = new Date()) {
    super(message);
  }
}

let failure: DeviceFailureError | null = null;
let guarded: GPUDevice | null = null;
const listeners: ((err: DeviceFailureError) => void)[] = [];
let lostSignal: Promise<DeviceFailureError> | null = null;

/** The webgpu backend's device, or null when the active backend is not webgpu. */
export function currentDevice(): GPUDevice | null {
  if (tf.getBackend() !== "webgpu") return null;
  return (tf.backend() as unknown as { device?: GPUDevice }).device ?? null;
}

function record(err: DeviceFailureError) {
  if (failure) return; // the first failure explains the rest
  failure = err;
  for (const l of listeners) l(err);
}

function kindOf(error: GPUError): DeviceFailureKind {
  if (error instanceof GPUOutOfMemoryError) return "out-of-memory";
  if (error instanceof GPUValidationError) return "validation";
  return "internal";
}

const HINTS: Record<DeviceFailureKind, string> = {
  "lost": "the GPU driver reset or the device was removed; restart the process " +
    "(training: resume from the last checkpoint)",
  "out-of-memory": "lower --batch or use a smaller model",
  "validation": "a GPU program or buffer was invalid (a bug: please report it with the command)",
  "internal": "the GPU driver reported an internal error",
};

function describe(kind: DeviceFailureKind, detail: string): string {
  const what = kind === "lost" ? "GPU device lost" : `GPU ${kind} error`;
  return `${what}: ${detail.trim() || "(no details)"}; ${HINTS[kind]}`;
}

/**
 * Starts watching the current webgpu device: `device.lost` and `uncapturederror` events.
 * `onFailure` runs once, on the first failure. Idempotent per device; returns false when the
 * active backend is not webgpu (nothing to watch).
 */
export function installDeviceGuard(onFailure?: (err: DeviceFailureError) => void): boolean {
  const device = currentDevice();
  if (!device) return false;
  if (onFailure) listeners.push(onFailure);
  if (guarded === device) return true;
  guarded = device;
  lostSignal = device.lost.then((info) => {
    const reason = info.reason === "destroyed" ? "destroyed by the program" : "unknown reason";
    const err = new DeviceFailureError("lost", describe("lost", `${info.message} (${reason})`));
    record(err);
    return err;
  });
  device.addEventListener("uncapturederror", (ev) => {
    const error = (ev as GPUUncapturedErrorEvent).error;
    const kind = kindOf(error);
    record(new DeviceFailureError(kind, describe(kind, error.message)));
  });
  return true;
}

/** The first failure seen since the guard was installed, or null while the device is healthy. */
export function deviceFailure(): DeviceFailureError | null {
  return failure;
}

/**
 * Forgets a recorded failure and the failure listeners. For tests, and for a caller that has
 * deliberately provoked and handled a non-fatal error; a lost device stays lost.
 */
export function clearDeviceFailure(): void {
  failure = null;
  listeners.length = 0;
}

/** Throws the recorded failure, if any. Call between training steps. */
export function assertDeviceOk(): void {
  if (failure) throw failure;
}

/**
 * Maps an error thrown by a tfjs op to the device failure behind it, when there is one (the
 * op's own message is then a symptom). Otherwise returns `e` unchanged.
 */
export function explainDeviceError(e: unknown): unknown {
  return failure ?? e;
}

/**
 * Settles like `p`, unless the device is lost first: then rejects with the failure. Wrap
 * read-backs (`t.data()`) whose promise might otherwise never settle.
 */
export function untilDeviceFailure<T>(p: Promise<T>): Promise<T> {
  if (failure) return Promise.reject(failure);
  if (!lostSignal) return p;
  return Promise.race([p, lostSignal.then((err) => Promise.reject(err))]);
}
