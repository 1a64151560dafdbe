/**
 * One error type for the whole toolkit. Every error carries a stable `code`
 * (for programs) and a message that names the input, what was expected and
 * what was received (for people), after sharp's style:
 *   "Expected integer between 1 and 65536 for codebookSize but received 0 of type number"
 */

export type VtokErrorCode =
  | 'INVALID_OPTION'
  | 'INVALID_INPUT'
  | 'IMAGE_DECODE'
  | 'IMAGE_TOO_LARGE'
  | 'FILE_NOT_FOUND'
  | 'IO'
  | 'STORE_CORRUPT'
  | 'STORE_VERSION'
  | 'STORE_MISMATCH'
  | 'STORE_NOT_FOUND'
  | 'BACKEND'
  | 'BPE'
  | 'VOCAB'
  | 'NOT_IMPLEMENTED';

export class VtokError extends Error {
  readonly code: VtokErrorCode;
  /** The file, option or id the error is about, when there is one. */
  readonly subject?: string;

  constructor(code: VtokErrorCode, message: string, options: { subject?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'VtokError';
    this.code = code;
    this.subject = options.subject;
  }
}

/** Describes a received value for an error message: `0 of type number`, `"abc" of type string`. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return `${JSON.stringify(value.length > 60 ? value.slice(0, 57) + '...' : value)} of type string`;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return `${String(value)} of type ${typeof value}`;
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name} of length ${(value as unknown as ArrayLike<number>).length}`;
  return `a value of type ${typeof value}`;
}

/** The error for a bad option: "Expected <expected> for <name> but received <value>". */
export function invalidOption(name: string, expected: string, received: unknown): VtokError {
  return new VtokError('INVALID_OPTION', `Expected ${expected} for ${name} but received ${describeValue(received)}`, {
    subject: name,
  });
}

/** Checks an integer option in [min, max] and returns it. */
export function checkInt(name: string, value: unknown, min: number, max: number = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalidOption(name, `integer between ${min} and ${max}`, value);
  }
  return value;
}

/** Checks a finite number option in [min, max] and returns it. */
export function checkNumber(name: string, value: unknown, min = -Infinity, max = Infinity): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw invalidOption(name, `number between ${min} and ${max}`, value);
  }
  return value;
}

/** Checks that a value is one of a fixed set of strings and returns it. */
export function checkOneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw invalidOption(name, `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`, value);
  }
  return value as T;
}

/**
 * Resolves a typed options object: fills defaults, rejects unknown keys
 * (a misspelt option must not be silently ignored).
 */
export function resolveOptions<T extends object>(where: string, defaults: T, given: Partial<T> | undefined): T {
  const out = { ...defaults };
  if (given === undefined) return out;
  for (const [key, value] of Object.entries(given)) {
    if (!(key in defaults)) {
      throw new VtokError(
        'INVALID_OPTION',
        `Unknown option ${JSON.stringify(key)} for ${where}; known options are ${Object.keys(defaults).join(', ')}`,
        { subject: key },
      );
    }
    if (value !== undefined) (out as Record<string, unknown>)[key] = value;
  }
  return out;
}
