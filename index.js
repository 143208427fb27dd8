'use strict'

// The public API: an EventEmitter wrapper around the Rust engine, with the
// upstream package's names, option checks, results and error classes.

const { EventEmitter } = require('node:events')
const native = require('./binding.js')

class SyncError extends Error {
  constructor(message, code, cause) {
    super(message, cause === undefined ? undefined : { cause })
    this.name = 'SyncError'
    this.code = code
    if (cause !== undefined) this.cause = cause
  }
}

class PathValidationError extends SyncError {
  constructor(message, cause) {
    super(message, 'PATH_VALIDATION_ERROR', cause)
    this.name = 'PathValidationError'
  }
}

class S3OperationError extends SyncError {
  constructor(message, cause) {
    super(message, 'S3_OPERATION_ERROR', cause)
    this.name = 'S3OperationError'
  }
}

function createDefaultLogger() {
  const line = (message) => `[S3_WORKSPACE_SYNC] ${new Date().toISOString()} ${message}`
  return {
    debug: (message, ...args) => console.debug(line(message), ...args),
    info: (message, ...args) => console.log(line(message), ...args),
    warn: (message, ...args) => console.warn(line(message), ...args),
    error: (message, ...args) => console.error(line(message), ...args),
  }
}

const MAX_PATH_BYTES = 1024
const MAX_PATH_DEPTH = 50

/** Throws PathValidationError unless `path` is a safe storage path (upstream rules). */
function validateStoragePath(path) {
  const fail = (why) => {
    throw new PathValidationError(`Invalid storage path: ${why}`)
  }
  if (typeof path !== 'string') fail('must be a string')
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

function positiveInt(options, name) {
  const value = options[name]
  if (value === undefined || value === null) return undefined
  if (!Number.isInteger(value) || value < 1 || value > 0xffffffff) {
    throw new SyncError(`options.${name} must be a positive integer`, 'INVALID_OPTION')
  }
  return value
}

function optionalString(options, name) {
  const value = options[name]
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'string') throw new SyncError(`options.${name} must be a string`, 'INVALID_OPTION')
  return value
}

function toResult(report, countKey) {
  const result = {
    success: report.errors.length === 0,
    [countKey]: report.transferred,
    deletedFiles: report.deleted,
    duration: Math.round(report.durationMs),
  }
  if (report.errors.length > 0) result.errors = report.errors.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message))
  return result
}

function operationError(op, error) {
  const message = `${op} failed: ${error.message}`
  if (error.code === 'S3_OPERATION_ERROR') return new S3OperationError(message)
  return new SyncError(message, error.code)
}

class S3WorkspaceSync extends EventEmitter {
  constructor(options) {
    super()
    if (!options || typeof options !== 'object') throw new SyncError('options.bucket is required', 'INVALID_OPTION')
    for (const name of ['bucket', 'prefix', 'workspaceDir']) {
      if (!options[name]) throw new SyncError(`options.${name} is required`, 'INVALID_OPTION')
      if (typeof options[name] !== 'string') throw new SyncError(`options.${name} must be a string`, 'INVALID_OPTION')
    }
    if (options.ignorePatterns !== undefined && !(Array.isArray(options.ignorePatterns) && options.ignorePatterns.every((p) => typeof p === 'string'))) {
      throw new SyncError('options.ignorePatterns must be an array of strings', 'INVALID_OPTION')
    }
    const logger = options.logger ?? createDefaultLogger()
    for (const level of ['debug', 'info', 'warn', 'error']) {
      if (typeof logger[level] !== 'function') {
        throw new SyncError(`options.logger.${level} must be a function`, 'INVALID_OPTION')
      }
    }
    this._logger = logger
    this._workspaceDir = options.workspaceDir
    this._backgroundPull = null
    this._pullComplete = false
    const forcePathStyle = options.forcePathStyle
    if (forcePathStyle !== undefined && typeof forcePathStyle !== 'boolean') {
      throw new SyncError('options.forcePathStyle must be a boolean', 'INVALID_OPTION')
    }
    try {
      this._native = new native.NativeWorkspace(
        {
          bucket: options.bucket,
          prefix: options.prefix,
          workspaceDir: options.workspaceDir,
          region: optionalString(options, 'region'),
          endpoint: optionalString(options, 'endpoint'),
          forcePathStyle,
          downloadConcurrency: positiveInt(options, 'downloadConcurrency'),
          uploadConcurrency: positiveInt(options, 'uploadConcurrency'),
          ignorePatterns: options.ignorePatterns,
        },
        (event) => this._onEvent(event),
      )
    } catch (e) {
      if (e instanceof SyncError) throw e
      const match = /^\[([A-Z_]+)\] (.*)$/s.exec(e.message)
      throw match ? new SyncError(match[2], match[1], e) : e
    }
  }

  _onEvent(event) {
    try {
      if (event.kind === 'progress') {
        const progress = {
          phase: event.phase,
          current: event.current,
          total: event.total,
          percentage: event.percentage,
        }
        if (event.currentFile !== undefined) progress.currentFile = event.currentFile
        this.emit('progress', progress)
      } else {
        this._logger[event.level](event.message)
      }
    } catch (e) {
      // A throwing listener or logger must not break the sync; surface it the
      // way EventEmitter would, without crashing the process from a callback.
      process.nextTick(() => this.emit('error', e))
    }
  }

  /** Downloads the prefix into the workspace; S3 is the source of truth. */
  async pull() {
    try {
      const outcome = await this._native.pull()
      if (outcome.error) throw operationError('Pull', outcome.error)
      return toResult(outcome.report, 'downloadedFiles')
    } finally {
      this._pullComplete = true
    }
  }

  /** Uploads new and changed files; deletes on S3 what was deleted locally. */
  async push() {
    if (this._backgroundPull) await this._backgroundPull
    const started = Date.now()
    const outcome = await this._native.push()
    if (outcome.error) {
      return {
        success: false,
        uploadedFiles: 0,
        deletedFiles: 0,
        errors: [`${outcome.error.code}: Push failed: ${outcome.error.message}`],
        duration: Date.now() - started,
      }
    }
    return toResult(outcome.report, 'uploadedFiles')
  }

  /** Starts a pull without waiting for it; never throws. */
  startBackgroundPull() {
    if (this._backgroundPull && !this._pullComplete) return
    this._pullComplete = false
    this._backgroundPull = this.pull().then(
      () => undefined,
      (e) => {
        this._logger.error(`Background pull failed: ${e.message}`)
      },
    )
  }

  /** Resolves when the background pull (if any) has finished. */
  async waitForPull() {
    if (this._backgroundPull) await this._backgroundPull
  }

  isPullComplete() {
    return this._pullComplete
  }

  getWorkspacePath() {
    return this._workspaceDir
  }
}

function guessContentType(filename) {
  return native.guessContentType(String(filename))
}

function calculateFileHash(filePath) {
  return native.calculateFileHash(String(filePath))
}

module.exports = {
  S3WorkspaceSync,
  SyncError,
  PathValidationError,
  S3OperationError,
  createDefaultLogger,
  validateStoragePath,
  guessContentType,
  calculateFileHash,
}
