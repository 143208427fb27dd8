// @ts-check
'use strict'

// Options are checked here, once, and handed to the engine as NativeOptions
// (converted once more in Rust, `src/options.rs`).

const { SyncError, PathValidationError } = require('./errors.js')

/** @typedef {import('../index').S3WorkspaceSyncOptions} S3WorkspaceSyncOptions */
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

/** @param {Options} options @param {string} name */
function concurrency(options, name) {
  if (options[name] === Infinity) return UNLIMITED_CONCURRENCY
  return positiveInt(options, name)
}

/** @param {Options} options @param {string} name @returns {number | undefined} */
function positiveInt(options, name) {
  const value = options[name]
  if (value === undefined || value === null) return undefined
  if (!Number.isInteger(value) || value < 1 || value > 0xffffffff) invalid(`options.${name} must be a positive integer`)
  return value
}

/** @param {Options} options @param {string} name @returns {number | undefined} */
function nonNegative(options, name) {
  const value = options[name]
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) invalid(`options.${name} must be a number of milliseconds (0 or more)`)
  return value
}

/** @param {Options} options @param {string} name @param {number} min @param {number} max @returns {number | undefined} */
function intInRange(options, name, min, max) {
  const value = options[name]
  if (value === undefined || value === null) return undefined
  if (!Number.isInteger(value) || value < min || value > max) invalid(`options.${name} must be an integer from ${min} to ${max}`)
  return value
}

/** @param {Options} options @param {string} name @returns {string | undefined} */
function optionalString(options, name) {
  const value = options[name]
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'string') invalid(`options.${name} must be a string`)
  return value
}

/** @template T @param {Options} options @param {string} name @param {readonly T[]} allowed @param {T} fallback @returns {T} */
function oneOf(options, name, allowed, fallback) {
  const value = options[name] ?? fallback
  if (!allowed.includes(value)) invalid(`options.${name} must be one of ${allowed.join(', ')}`)
  return value
}

/** `priorityPrefix`: a workspace-relative directory; `..` segments (leaving the workspace) are refused. @param {Options} options */
function priorityPrefixOption(options) {
  const value = optionalString(options, 'priorityPrefix')
  if (value !== undefined && value.split(/[\\/]/).includes('..')) {
    invalid(`options.priorityPrefix must be a directory inside the workspace (got ${JSON.stringify(value)})`)
  }
  return value
}

/**
 * `endpoint`: an http(s) URL with a host, checked now rather than failing
 * later as a network error.
 * @param {Options} options
 */
function endpointOption(options) {
  const value = optionalString(options, 'endpoint')
  if (value === undefined) return undefined
  let url
  try {
    url = new URL(value)
  } catch {
    return invalid(`options.endpoint must be a URL such as https://s3.example.com or http://127.0.0.1:9000 (got ${JSON.stringify(value)})`)
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) {
    invalid(`options.endpoint must be an http:// or https:// URL with a host (got ${JSON.stringify(value)})`)
  }
  if (url.username || url.password) invalid('options.endpoint must not hold credentials; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or s3Client')
  return value
}

/** @param {unknown} patterns @param {string} name @returns {string[]} */
function checkPatterns(patterns, name) {
  if (patterns === undefined || patterns === null) return []
  if (!Array.isArray(patterns) || !patterns.every((p) => typeof p === 'string')) invalid(`options.${name} must be an array of strings`)
  return patterns
}

const CONFLICT_POLICIES = /** @type {const} */ (['keep-both', 'overwrite'])
const CONDITIONAL_WRITES = /** @type {const} */ (['auto', 'required', 'off'])
const CLIENT_MODES = /** @type {const} */ (['auto', 'sdk', 'send'])
const CLOSE_MODES = /** @type {const} */ (['wait', 'abort'])

const KNOWN_OPTIONS = new Set([
  'bucket',
  'prefix',
  'workspaceDir',
  'region',
  's3Client',
  's3ClientMode',
  'downloadConcurrency',
  'uploadConcurrency',
  'logger',
  'logLevel',
  'ignorePatterns',
  'contentTypeResolver',
  'priorityPrefix',
  'endpoint',
  'forcePathStyle',
  'stallTimeoutMs',
  'conflictPolicy',
  'conditionalWrites',
  'maxDeletePercent',
  'lockTimeoutMs',
  'stateDir',
  'abandonedUploadAgeMs',
])

/**
 * Checks the constructor's options (upstream's rules and messages, plus
 * the options beyond upstream) and returns what the engine takes.
 * @param {Options} options
 * @returns {NativeOptions}
 */
function nativeOptions(options) {
  for (const name of ['bucket', 'prefix', 'workspaceDir']) {
    if (!options[name]) invalid(`options.${name} is required`)
    if (typeof options[name] !== 'string') invalid(`options.${name} must be a string`)
  }
  if (options.forcePathStyle !== undefined && typeof options.forcePathStyle !== 'boolean') invalid('options.forcePathStyle must be a boolean')
  return {
    bucket: options.bucket,
    prefix: options.prefix,
    workspaceDir: options.workspaceDir,
    region: optionalString(options, 'region'),
    endpoint: endpointOption(options),
    forcePathStyle: options.forcePathStyle,
    downloadConcurrency: concurrency(options, 'downloadConcurrency'),
    uploadConcurrency: concurrency(options, 'uploadConcurrency'),
    ignorePatterns: checkPatterns(options.ignorePatterns, 'ignorePatterns'),
    priorityPrefix: priorityPrefixOption(options),
    stallTimeoutMs: positiveInt(options, 'stallTimeoutMs'),
    conflictPolicy: /** @type {any} */ (oneOf(options, 'conflictPolicy', CONFLICT_POLICIES, 'keep-both')),
    conditionalWrites: /** @type {any} */ (oneOf(options, 'conditionalWrites', CONDITIONAL_WRITES, 'auto')),
    maxDeletePercent: intInRange(options, 'maxDeletePercent', 0, 100),
    lockTimeoutMs: intInRange(options, 'lockTimeoutMs', 0, 0xffffffff),
    stateDir: optionalString(options, 'stateDir'),
    abandonedUploadAgeMs: nonNegative(options, 'abandonedUploadAgeMs'),
  }
}

module.exports = {
  validateStoragePath,
  nativeOptions,
  checkPatterns,
  oneOf,
  invalid,
  KNOWN_OPTIONS,
  CLIENT_MODES,
  CLOSE_MODES,
}
