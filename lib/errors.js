// @ts-check
'use strict'

// The error classes (upstream's names) and the one place native errors
// become them.

class SyncError extends Error {
  /**
   * @param {string} message
   * @param {string} code
   * @param {unknown} [cause]
   */
  constructor(message, code, cause) {
    super(message, cause === undefined ? undefined : { cause })
    this.name = 'SyncError'
    this.code = code
    if (cause !== undefined) this.cause = cause
    /** @type {string | undefined} S3's error code (`NoSuchBucket`) or `NetworkError`, `Timeout`, `CredentialsError`, … */
    this.s3Code = undefined
    /** @type {number | undefined} HTTP status of S3's answer, when one came. */
    this.statusCode = undefined
    /** @type {boolean | undefined} Whether trying again later may succeed. */
    this.retryable = undefined
  }
}

class PathValidationError extends SyncError {
  /** @param {string} message @param {unknown} [cause] */
  constructor(message, cause) {
    super(message, 'PATH_VALIDATION_ERROR', cause)
    this.name = 'PathValidationError'
  }
}

class S3OperationError extends SyncError {
  /** @param {string} message @param {unknown} [cause] */
  constructor(message, cause) {
    super(message, 'S3_OPERATION_ERROR', cause)
    this.name = 'S3OperationError'
  }
}

/** What `pull()`/`push()` reject with when their `signal` aborts (as Node's own APIs do). */
class AbortError extends SyncError {
  /** @param {unknown} [reason] the signal's reason */
  constructor(reason) {
    super('The operation was aborted', 'ABORT_ERR', reason)
    this.name = 'AbortError'
  }
}

/**
 * @typedef {import('../binding').NativeError} NativeError
 */

/**
 * The AWS SDK exception shape upstream users read from `cause`
 * (`cause.name === 'NoSuchBucket'`, `cause.$metadata.httpStatusCode`).
 * @param {NativeError} e
 */
function sdkLikeCause(e) {
  const cause = new Error(e.message)
  cause.name = e.s3Code ?? 'Unknown'
  Object.assign(cause, {
    $fault: e.statusCode !== undefined && e.statusCode !== null && e.statusCode < 500 ? 'client' : 'server',
    $metadata: { httpStatusCode: e.statusCode ?? undefined },
    $retryable: e.retryable ? {} : undefined,
  })
  return cause
}

/**
 * A native error (an operation's or one file's) as a SyncError with its fields.
 * @param {NativeError} e
 * @param {string} [context] prepended to the message (`Pull failed`)
 */
function fromNative(e, context) {
  const message = context ? `${context}: ${e.message}` : e.message
  const isS3 = e.s3Code !== undefined && e.s3Code !== null
  const error = e.code === 'S3_OPERATION_ERROR' ? new S3OperationError(message, isS3 ? sdkLikeCause(e) : undefined) : new SyncError(message, e.code)
  if (isS3) {
    error.s3Code = e.s3Code ?? undefined
    error.statusCode = e.statusCode ?? undefined
    error.retryable = e.retryable ?? false
  }
  return error
}

/** @type {Set<string> | undefined} */
let engineCodes
/**
 * Whether `code` is one of the engine's (the binding's generated `ErrorCode`
 * enum), as opposed to a napi status such as `GenericFailure`.
 * @param {string} code
 */
function isEngineCode(code) {
  // A const enum in the types, an object at run time.
  const binding = /** @type {{ ErrorCode: Record<string, string> }} */ (/** @type {unknown} */ (require('../load-binding.js')))
  engineCodes ??= new Set(Object.values(binding.ErrorCode))
  return engineCodes.has(code)
}

/**
 * Runs a native call; its thrown errors carry the engine's code as `code`.
 * @template T
 * @param {() => T} fn
 * @returns {T}
 */
function nativeCall(fn) {
  try {
    return fn()
  } catch (e) {
    const err = /** @type {{ code?: unknown, message?: string }} */ (e)
    if (typeof err?.code === 'string' && isEngineCode(err.code)) throw new SyncError(err.message ?? String(e), err.code, e)
    throw e
  }
}

module.exports = { SyncError, PathValidationError, S3OperationError, AbortError, fromNative, nativeCall }
