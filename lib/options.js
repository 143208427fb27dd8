// @ts-check
'use strict'

// Every option is declared once, in the tables below: its kind (how a value
// is checked and normalised, and the words of the error when it is wrong),
// its default, and whether the engine takes it (the NativeOptions field of
// the same name, converted once more in Rust, `src/options.rs`, which
// checks nothing of its own). KNOWN_OPTIONS, the constructor's checks and
// the engine's options are derived from OPTIONS; the types users see are
// index.d.ts (S3WorkspaceSyncOptions, OperationOptions, WatchOptions).

const { SyncError, PathValidationError } = require('./errors.js')
const { createDefaultLogger, LOG_LEVELS } = require('./logger.js')

/** @typedef {import('../index').S3WorkspaceSyncOptions} S3WorkspaceSyncOptions */
/** @typedef {import('../index').SyncLogger} SyncLogger */
/** @typedef {import('../binding').NativeOptions} NativeOptions */
/** @typedef {Record<string, any>} Options */

const MAX_PATH_BYTES = 1024
const MAX_PATH_DEPTH = 50

/**
 * Throws PathValidationError unless `path` is a safe storage path (upstream rules).
 * @param {unknown} path
 */
function validateStoragePath(path) {
  /** @param {string} why @returns {never} */
  const fail = (why) => {
    throw new PathValidationError(`Invalid storage path: ${why}`)
  }
  if (typeof path !== 'string') return fail('must be a string')
  const bytes = Buffer.byteLength(path, 'utf8')
  if (bytes > MAX_PATH_BYTES) fail(`exceeds maximum length of ${MAX_PATH_BYTES} bytes (got ${bytes})`)
  if (path.includes('..')) fail("path traversal sequences ('..') are not allowed")
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(path)) fail('control characters (including null bytes) are not allowed')
  if (path.includes('\\')) fail('backslashes are not allowed')
  if (path.startsWith('//')) fail('protocol-relative paths are not allowed')
  if (path.split('/').filter(Boolean).length > MAX_PATH_DEPTH) {
    fail(`path depth exceeds maximum allowed (${MAX_PATH_DEPTH})`)
  }
}

/** @param {string} message @returns {never} */
function invalid(message) {
  throw new SyncError(message, 'INVALID_OPTION')
}

/** Most transfers in flight for a concurrency of `Infinity` (upstream accepted it: "no limit"). */
const UNLIMITED_CONCURRENCY = 256
/** setTimeout's limit: a longer delay would fire at once. */
const MAX_TIMER_MS = 2_147_483_647

/** Not given: `undefined` or `null`. @param {unknown} value */
const absent = (value) => value === undefined || value === null

/**
 * One option's declaration.
 * @typedef {object} OptionSpec
 * @property {keyof typeof KINDS} kind how a value is checked, and what the error says
 * @property {unknown} [default] the value when the option is not given (kinds `oneOf`, `boolean`, `timerMs`)
 * @property {readonly unknown[]} [values] kind `oneOf`: the values allowed
 * @property {number} [min] kind `int`: the smallest value
 * @property {number} [max] kind `int`: the largest value
 * @property {boolean} [native] handed to the engine, as the NativeOptions field of the same name
 */

/**
 * The kinds of option: how a value is checked and normalised, with the
 * words of the error when it is wrong (`options.<name> …`, upstream's).
 * Each returns the value to use, given the option's `value`, its `name`,
 * its `spec` and the values of the options checked before it.
 * @type {Record<string, (value: any, name: string, spec: OptionSpec, before: Options) => any>}
 */
const KINDS = {
  /** A non-empty string (upstream's "is required" for anything falsy). */
  required(value, name) {
    if (!value) invalid(`options.${name} is required`)
    if (typeof value !== 'string') invalid(`options.${name} must be a string`)
    return value
  },
  string(value, name) {
    if (absent(value)) return undefined
    if (typeof value !== 'string') invalid(`options.${name} must be a string`)
    return value
  },
  /** Only `undefined` is "not given" (`null` is refused). */
  boolean(value, name, spec) {
    if (value !== undefined && typeof value !== 'boolean') invalid(`options.${name} must be a boolean`)
    return value ?? spec.default
  },
  /** Only `undefined` is "not given" (`null` is refused). */
  function(value, name) {
    if (value !== undefined && typeof value !== 'function') invalid(`options.${name} must be a function`)
    return value
  },
  oneOf(value, name, spec) {
    const allowed = spec.values ?? []
    const chosen = value ?? spec.default
    if (!allowed.includes(chosen)) invalid(`options.${name} must be one of ${allowed.join(', ')}`)
    return chosen
  },
  positiveInt(value, name) {
    if (absent(value)) return undefined
    if (!Number.isInteger(value) || value < 1 || value > 0xffffffff) invalid(`options.${name} must be a positive integer`)
    return value
  },
  /** A positive integer, or `Infinity` (upstream's "no limit"), capped. */
  concurrency(value, name, spec, before) {
    if (value === Infinity) return UNLIMITED_CONCURRENCY
    return KINDS.positiveInt(value, name, spec, before)
  },
  int(value, name, { min = 0, max = 0xffffffff }) {
    if (absent(value)) return undefined
    if (!Number.isInteger(value) || value < min || value > max) invalid(`options.${name} must be an integer from ${min} to ${max}`)
    return value
  },
  /** A duration: any finite number of milliseconds, 0 or more. */
  milliseconds(value, name) {
    if (absent(value)) return undefined
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) invalid(`options.${name} must be a number of milliseconds (0 or more)`)
    return value
  },
  /** A delay for setTimeout: a whole number of milliseconds it can wait. */
  timerMs(value, name, spec) {
    const ms = value ?? spec.default
    if (!Number.isInteger(ms) || ms < 0 || ms > MAX_TIMER_MS) invalid(`options.${name} must be a whole number of milliseconds up to ${MAX_TIMER_MS}`)
    return ms
  },
  /** Gitignore-style patterns; none when not given. */
  patterns(value, name) {
    return checkPatterns(value, name)
  },
  /** An http(s) URL with a host, checked now rather than failing later as a network error. */
  endpoint(value, name, spec, before) {
    const endpoint = KINDS.string(value, name, spec, before)
    if (endpoint === undefined) return undefined
    let url
    try {
      url = new URL(endpoint)
    } catch {
      return invalid(`options.${name} must be a URL such as https://s3.example.com or http://127.0.0.1:9000 (got ${JSON.stringify(endpoint)})`)
    }
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) {
      invalid(`options.${name} must be an http:// or https:// URL with a host (got ${JSON.stringify(endpoint)})`)
    }
    if (url.username || url.password) invalid(`options.${name} must not hold credentials; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or s3Client`)
    return endpoint
  },
  /** A workspace-relative directory; `..` segments (leaving the workspace) are refused. */
  workspaceSubdir(value, name, spec, before) {
    const dir = KINDS.string(value, name, spec, before)
    if (dir !== undefined && dir.split(/[\\/]/).includes('..')) {
      invalid(`options.${name} must be a directory inside the workspace (got ${JSON.stringify(dir)})`)
    }
    return dir
  },
  /** An object with the four level methods; when not given, the default logger at `logLevel`. */
  logger(value, name, spec, before) {
    const logger = value ?? createDefaultLogger(before.logLevel)
    for (const level of ['debug', 'info', 'warn', 'error']) {
      if (typeof logger[level] !== 'function') invalid(`options.${name}.${level} must be a function`)
    }
    return logger
  },
  /** Anything with a send() method (an S3Client, or a stand-in). */
  s3Client(value, name) {
    if (value !== undefined && (value === null || typeof value.send !== 'function')) invalid(`options.${name} must have a send() method`)
    return value
  },
  /** Only `undefined` is "not given". */
  abortSignal(value, name) {
    if (value !== undefined && !(value instanceof AbortSignal)) invalid(`options.${name} must be an AbortSignal`)
    return value
  },
}

/**
 * @param {unknown} patterns
 * @param {string} name
 * @returns {string[]}
 */
function checkPatterns(patterns, name) {
  if (absent(patterns)) return []
  if (!Array.isArray(patterns) || !patterns.every((p) => typeof p === 'string')) invalid(`options.${name} must be an array of strings`)
  return patterns
}

const CONFLICT_POLICIES = /** @type {const} */ (['keep-both', 'overwrite'])
const CONDITIONAL_WRITES = /** @type {const} */ (['auto', 'required', 'off'])
const CLIENT_MODES = /** @type {const} */ (['auto', 'sdk', 'send'])

/**
 * The constructor's options (S3WorkspaceSyncOptions), in the order they are
 * checked: the first wrong one is the error.
 * @type {Record<string, OptionSpec>}
 */
const OPTIONS = {
  logLevel: { kind: 'oneOf', values: LOG_LEVELS, default: 'info' },
  logger: { kind: 'logger' },
  contentTypeResolver: { kind: 'function' },
  s3Client: { kind: 's3Client' },
  s3ClientMode: { kind: 'oneOf', values: CLIENT_MODES, default: 'auto' },
  bucket: { kind: 'required', native: true },
  prefix: { kind: 'required', native: true },
  workspaceDir: { kind: 'required', native: true },
  forcePathStyle: { kind: 'boolean', native: true },
  region: { kind: 'string', native: true },
  endpoint: { kind: 'endpoint', native: true },
  downloadConcurrency: { kind: 'concurrency', native: true },
  uploadConcurrency: { kind: 'concurrency', native: true },
  ignorePatterns: { kind: 'patterns', native: true },
  priorityPrefix: { kind: 'workspaceSubdir', native: true },
  stallTimeoutMs: { kind: 'positiveInt', native: true },
  conflictPolicy: { kind: 'oneOf', values: CONFLICT_POLICIES, default: 'keep-both', native: true },
  conditionalWrites: { kind: 'oneOf', values: CONDITIONAL_WRITES, default: 'auto', native: true },
  maxDeletePercent: { kind: 'int', min: 0, max: 100, native: true },
  lockTimeoutMs: { kind: 'int', min: 0, max: 0xffffffff, native: true },
  stateDir: { kind: 'string', native: true },
  abandonedUploadAgeMs: { kind: 'milliseconds', native: true },
}

/** The options of `pull()` and `push()` (OperationOptions). @type {Record<string, OptionSpec>} */
const OPERATION_OPTIONS = {
  signal: { kind: 'abortSignal' },
  dryRun: { kind: 'boolean', default: false },
  restoreDeleted: { kind: 'boolean', default: false },
}

/** The options of `watch()` itself (WatchOptions; its `signal` is the first pull's). @type {Record<string, OptionSpec>} */
const WATCH_OPTIONS = {
  debounceMs: { kind: 'timerMs', default: 2000 },
  onPush: { kind: 'function' },
  direction: { kind: 'oneOf', values: ['both', 'push', 'pull'], default: 'both' },
  pollMs: { kind: 'timerMs', default: 1250 },
  fullCheckMs: { kind: 'timerMs', default: 60_000 },
}

const KNOWN_OPTIONS = new Set(Object.keys(OPTIONS))
const NATIVE_OPTIONS = Object.keys(OPTIONS).filter((name) => OPTIONS[name].native)

/**
 * Checks `options` against `table`, in the table's order, and returns the
 * value to use for each option of the table.
 * @param {Record<string, OptionSpec>} table
 * @param {Options | undefined} options
 * @returns {Options}
 */
function check(table, options) {
  /** @type {Options} */
  const values = {}
  for (const [name, spec] of Object.entries(table)) values[name] = KINDS[spec.kind](options?.[name], name, spec, values)
  return values
}

/**
 * Checks the constructor's options (upstream's rules and messages, plus the
 * options beyond upstream): the value to use for each known option,
 * `native`, what the engine takes, and `unknown`, the names given that no
 * option has.
 * @param {unknown} options
 * @returns {{ values: Options, native: NativeOptions, unknown: string[] }}
 */
function checkOptions(options) {
  if (!options || typeof options !== 'object') invalid('options.bucket is required')
  const given = /** @type {Options} */ (options)
  const values = check(OPTIONS, given)
  return { values, native: nativeOptions(values), unknown: Object.keys(given).filter((name) => !KNOWN_OPTIONS.has(name)) }
}

/**
 * The engine's options, from the checked values of the constructor's.
 * @param {Options} values
 * @returns {NativeOptions}
 */
function nativeOptions(values) {
  return /** @type {NativeOptions} */ (Object.fromEntries(NATIVE_OPTIONS.map((name) => [name, values[name]])))
}

/**
 * Checks the options of `pull()`/`push()`; returns the values to use.
 * @param {import('../index').OperationOptions | undefined} options
 * @returns {{ signal: AbortSignal | undefined, dryRun: boolean, restoreDeleted: boolean }}
 */
function checkOperationOptions(options) {
  return /** @type {any} */ (check(OPERATION_OPTIONS, options))
}

/**
 * Checks the options of `watch()`; returns the values to use.
 * @param {import('../index').WatchOptions | undefined} options
 * @returns {{ debounceMs: number, onPush: ((result: import('../index').PushResult) => void) | undefined, direction: 'both' | 'push' | 'pull', pollMs: number, fullCheckMs: number }}
 */
function checkWatchOptions(options) {
  return /** @type {any} */ (check(WATCH_OPTIONS, options))
}

module.exports = {
  validateStoragePath,
  checkOptions,
  checkOperationOptions,
  checkWatchOptions,
  checkPatterns,
  invalid,
  KNOWN_OPTIONS,
}
