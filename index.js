'use strict'

// The public API: an EventEmitter wrapper around the Rust engine, with the
// upstream package's names, option checks, results and error classes.

const { EventEmitter } = require('node:events')
const { constants: fsConstants } = require('node:fs')
const { open, readFile } = require('node:fs/promises')
const native = require('./load-binding.js') // binding.js, with an actionable error when no binary fits

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

/** Console logger: `[S3_WORKSPACE_SYNC] <ISO time> message ...args` (objects as JSON), as upstream. */
function createDefaultLogger() {
  const format = (args) => args.map((arg) => (typeof arg === 'object' && arg !== null ? JSON.stringify(arg) : arg))
  const to = (write) => (message, ...args) => write('[S3_WORKSPACE_SYNC]', new Date().toISOString(), message, ...format(args))
  return {
    debug: to((...a) => console.debug(...a)),
    info: to((...a) => console.log(...a)),
    warn: to((...a) => console.warn(...a)),
    error: to((...a) => console.error(...a)),
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

/** Most transfers in flight for a concurrency of `Infinity` (upstream accepted it: "no limit"). */
const UNLIMITED_CONCURRENCY = 256

function concurrency(options, name) {
  if (options[name] === Infinity) return UNLIMITED_CONCURRENCY
  return positiveInt(options, name)
}

function positiveInt(options, name) {
  const value = options[name]
  if (value === undefined || value === null) return undefined
  if (!Number.isInteger(value) || value < 1 || value > 0xffffffff) {
    throw new SyncError(`options.${name} must be a positive integer`, 'INVALID_OPTION')
  }
  return value
}

function intInRange(options, name, min, max) {
  const value = options[name]
  if (value === undefined || value === null) return undefined
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new SyncError(`options.${name} must be an integer from ${min} to ${max}`, 'INVALID_OPTION')
  }
  return value
}

const CONFLICT_POLICIES = ['keep-both', 'overwrite']

/** `priorityPrefix`: a workspace-relative directory; `..` segments (leaving the workspace) are refused. */
function priorityPrefixOption(options) {
  const value = optionalString(options, 'priorityPrefix')
  if (value !== undefined && value.split(/[\\/]/).includes('..')) {
    throw new SyncError(`options.priorityPrefix must be a directory inside the workspace (got ${JSON.stringify(value)})`, 'INVALID_OPTION')
  }
  return value
}

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
  'ignorePatterns',
  'contentTypeResolver',
  'priorityPrefix',
  'endpoint',
  'forcePathStyle',
  'stallTimeoutMs',
  'conflictPolicy',
  'maxDeletePercent',
  'lockTimeoutMs',
  'stateDir',
])

function optionalString(options, name) {
  const value = options[name]
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'string') throw new SyncError(`options.${name} must be a string`, 'INVALID_OPTION')
  return value
}

function toResult(report, countKey) {
  const result = {
    success: report.errors.length === 0,
    // Upstream's meaning: a pull "downloaded" every file it made current
    // (its pulls downloaded everything), so files already identical count.
    [countKey]: countKey === 'downloadedFiles' ? report.transferred + report.unchanged : report.transferred,
    deletedFiles: report.deleted,
    duration: Math.round(report.durationMs),
    transferredFiles: report.transferred,
    unchangedFiles: report.unchanged,
    bytesTransferred: report.bytes,
  }
  if (report.errors.length > 0) result.errors = report.errors.map((e) => e.message)
  if (report.conflicts.length > 0) result.conflicts = report.conflicts
  if (report.skipped.length > 0) result.skipped = report.skipped.map((s) => ({ path: s.path, code: s.code, reason: s.message }))
  return result
}

function operationError(op, error) {
  const message = `${op} failed: ${error.message}`
  if (error.code === 'S3_OPERATION_ERROR') return new S3OperationError(message)
  return new SyncError(message, error.code)
}

class SyncIgnoreFilter {
  /** Built-in rules, then `additionalPatterns`; `loadFromWorkspace` adds `.syncignore`. */
  constructor(logger, additionalPatterns = []) {
    this._logger = logger ?? createDefaultLogger()
    const extra = checkPatterns(additionalPatterns, 'additionalPatterns')
    this._rules = nativeCall(() => new native.NativeIgnoreRules(extra))
    warnSkippedPatterns(this._rules, this._logger)
    this._logger.debug(`Loaded ${this._rules.defaultPatternsCount()} default ignore patterns`)
    if (extra.length > 0) this._logger.debug(`Loaded ${extra.length} additional ignore patterns`)
  }

  /** Adds the rules of `<workspaceDir>/.syncignore`, if present (synchronous, as upstream). */
  loadFromWorkspace(workspaceDir) {
    try {
      const added = this._rules.loadFromWorkspace(String(workspaceDir))
      if (added > 0) this._logger.info(`Loaded ${added} custom patterns from .syncignore`)
      else this._logger.debug('No .syncignore file found, using defaults only')
    } catch (e) {
      this._logger.warn(`Failed to load .syncignore: ${e?.message ?? e}`)
    }
  }

  isIgnored(relativePath) {
    return this._rules.isIgnored(String(relativePath))
  }

  filter(paths) {
    return paths.filter((p) => !this.isIgnored(p))
  }

  getInfo() {
    return {
      defaultPatternsCount: this._rules.defaultPatternsCount(),
      customPatternsLoaded: this._rules.customPatternsLoaded(),
    }
  }
}

function warnSkippedPatterns(rules, logger) {
  for (const skipped of rules.skippedPatterns()) logger.warn(`Ignore pattern skipped (not a valid gitignore pattern): ${skipped}`)
}

function checkPatterns(patterns, name) {
  if (patterns === undefined || patterns === null) return []
  if (!Array.isArray(patterns) || !patterns.every((p) => typeof p === 'string')) {
    throw new SyncError(`options.${name} must be an array of strings`, 'INVALID_OPTION')
  }
  return patterns
}

/** Runs a native call, turning its `[CODE] message` errors into SyncErrors. */
function nativeCall(fn) {
  try {
    return fn()
  } catch (e) {
    const match = /^\[([A-Z_]+)\] (.*)$/s.exec(e?.message ?? '')
    throw match ? new SyncError(match[2], match[1], e) : e
  }
}

// ---- s3Client support -------------------------------------------------------

const CLIENT_MODES = ['auto', 'sdk', 'send']

function isStub(fn) {
  return Boolean(fn && (fn.isSinonProxy || fn.mock || fn._isMockFunction))
}

/**
 * 'sdk': a real AWS SDK v3 S3Client; the engine uses its region, endpoint,
 * path style and credential provider. 'send': anything else with `send()`
 * (a stand-in, or a client whose send is stubbed); the engine drives it
 * through send() with the SDK's command classes.
 */
function clientMode(client, forced) {
  if (forced !== 'auto') return forced
  const config = client.config
  const looksReal = config && typeof config.credentials === 'function' && typeof config.region === 'function'
  return looksReal && !isStub(client.send) ? 'sdk' : 'send'
}

let commandClasses
function s3Commands() {
  if (!commandClasses) {
    try {
      const sdk = require('@aws-sdk/client-s3')
      commandClasses = {
        ListObjectsV2Command: sdk.ListObjectsV2Command,
        GetObjectCommand: sdk.GetObjectCommand,
        HeadObjectCommand: sdk.HeadObjectCommand,
        PutObjectCommand: sdk.PutObjectCommand,
        DeleteObjectCommand: sdk.DeleteObjectCommand,
      }
    } catch {
      // Without the SDK, commands of the same names and shape.
      const command = (name) =>
        ({
          [name]: class {
            constructor(input) {
              this.input = input
            }
          },
        })[name]
      commandClasses = {
        ListObjectsV2Command: command('ListObjectsV2Command'),
        GetObjectCommand: command('GetObjectCommand'),
        HeadObjectCommand: command('HeadObjectCommand'),
        PutObjectCommand: command('PutObjectCommand'),
        DeleteObjectCommand: command('DeleteObjectCommand'),
      }
    }
  }
  return commandClasses
}

async function bodyToBuffer(body) {
  if (typeof body === 'string' || body instanceof Uint8Array) return Buffer.from(body)
  if (typeof body[Symbol.asyncIterator] === 'function') {
    const chunks = []
    for await (const chunk of body) chunks.push(Buffer.from(chunk))
    return Buffer.concat(chunks)
  }
  if (typeof body.transformToByteArray === 'function') return Buffer.from(await body.transformToByteArray())
  throw new TypeError('GetObject returned a Body that is not a stream, string or buffer')
}

/** Whether a GetObject/HeadObject output says the ETag is not the MD5 (SSE-KMS, DSSE-KMS, SSE-C). */
const encryptedEtag = (out) => out.ServerSideEncryption === 'aws:kms' || out.ServerSideEncryption === 'aws:kms:dsse' || Boolean(out.SSECustomerAlgorithm)

const statusOf = (e) => e?.$metadata?.httpStatusCode
const isPreconditionFailed = (e) => statusOf(e) === 412 || e?.name === 'PreconditionFailed'
const isNotFound = (e) => statusOf(e) === 404 || e?.name === 'NotFound' || e?.name === 'NoSuchKey'

/** The engine's store requests, as SDK commands sent through `client.send`. */
function sendStore(client, bucket) {
  const cmds = s3Commands()
  const send = async (command, answers = () => undefined) => {
    try {
      return (await client.send(command)) ?? {}
    } catch (e) {
      const answer = answers(e)
      if (answer) return answer
      throw new Error(`${e?.name ?? 'Error'}: ${e?.message ?? e}`)
    }
  }
  // A failed condition is an answer (a conflict), not an error.
  const conditional = (e) => (isPreconditionFailed(e) ? { preconditionFailed: true } : undefined)
  return async (req) => {
    switch (req.op) {
      case 'list': {
        const out = await send(new cmds.ListObjectsV2Command({ Bucket: bucket, Prefix: req.key, MaxKeys: 1000, ContinuationToken: req.token ?? undefined }))
        return {
          objects: (out.Contents ?? [])
            .filter((o) => typeof o?.Key === 'string')
            .map((o) => ({
              key: o.Key,
              size: typeof o.Size === 'number' ? o.Size : undefined,
              etag: typeof o.ETag === 'string' ? o.ETag : undefined,
              lastModified: o.LastModified instanceof Date ? o.LastModified.getTime() : undefined,
            })),
          // Upstream followed NextContinuationToken alone; stand-ins may omit IsTruncated.
          truncated: Boolean(out.IsTruncated ?? out.NextContinuationToken),
          nextToken: out.NextContinuationToken ?? undefined,
        }
      }
      case 'get': {
        const out = await send(new cmds.GetObjectCommand({ Bucket: bucket, Key: req.key }))
        if (!out.Body) throw new Error(`Empty response body for ${req.key}`)
        return { body: await bodyToBuffer(out.Body), etag: typeof out.ETag === 'string' ? out.ETag : undefined, encryptedEtag: encryptedEtag(out) }
      }
      case 'head': {
        const out = await send(new cmds.HeadObjectCommand({ Bucket: bucket, Key: req.key }), (e) => (isNotFound(e) ? { missing: true } : undefined))
        if (out.missing) return out
        const md5 = out.Metadata?.['s3ws-md5']
        return { etag: typeof out.ETag === 'string' ? out.ETag : undefined, md5: typeof md5 === 'string' ? md5 : undefined, encryptedEtag: encryptedEtag(out) }
      }
      case 'put': {
        const Body = await readFile(req.path)
        const input = { Bucket: bucket, Key: req.key, Body, ContentType: req.contentType }
        if (req.ifMatch) input.IfMatch = req.ifMatch
        if (req.ifNoneMatch) input.IfNoneMatch = '*'
        const out = await send(new cmds.PutObjectCommand(input), conditional)
        if (out.preconditionFailed) return out
        return { etag: typeof out.ETag === 'string' ? out.ETag : undefined }
      }
      case 'delete': {
        const input = { Bucket: bucket, Key: req.key }
        if (req.ifMatch) input.IfMatch = req.ifMatch
        const out = await send(new cmds.DeleteObjectCommand(input), conditional)
        return out.preconditionFailed ? out : {}
      }
      default:
        throw new Error(`unknown store operation ${req.op}`)
    }
  }
}

function formatEndpoint(ep) {
  if (typeof ep === 'string') return ep
  if (ep instanceof URL) return ep.href.replace(/\/$/, '')
  const port = ep.port ? `:${ep.port}` : ''
  const path = ep.path && ep.path !== '/' ? ep.path : ''
  return `${ep.protocol}//${ep.hostname}${port}${path}`
}

/** Region, endpoint and path style of a real S3Client (see COMPATIBILITY.md). */
async function sdkClientSettings(client) {
  const config = client.config
  const region = typeof config.region === 'function' ? await config.region() : config.region
  let endpoint
  if (typeof config.endpoint === 'function') endpoint = formatEndpoint(await config.endpoint())
  else if (typeof config.serviceConfiguredEndpoint === 'function') {
    const configured = await config.serviceConfiguredEndpoint()
    if (configured) endpoint = formatEndpoint(configured)
  }
  return { region, endpoint, forcePathStyle: typeof config.forcePathStyle === 'boolean' ? config.forcePathStyle : undefined }
}

function sdkCredentials(client) {
  return async () => {
    const c = await client.config.credentials()
    return {
      accessKeyId: c.accessKeyId,
      secretAccessKey: c.secretAccessKey,
      sessionToken: c.sessionToken ?? undefined,
      expiration: c.expiration instanceof Date ? c.expiration.getTime() : undefined,
    }
  }
}

// ---- callbacks handed to the native object ----------------------------------
//
// The native object keeps its callbacks alive (thread-safe functions are GC
// roots) and the instance keeps the native object: a callback that held the
// instance would make both uncollectable. So they are made here, at module
// level, where no closure can capture `this` (V8 shares one context among
// the closures of a scope), and reach the instance only through a WeakRef;
// while an operation runs, its promise keeps the instance alive.

function eventSink(instance) {
  const ref = new WeakRef(instance)
  return (event) => ref.deref()?._onEvent(event)
}

/** `contentTypeResolver`, called with the file's base name as upstream did; a throw or a non-string falls back to the guess. */
function contentTypeHook(resolver, logger) {
  return (relativePath) => {
    const name = relativePath.slice(relativePath.lastIndexOf('/') + 1)
    try {
      const type = resolver(name)
      if (typeof type === 'string' && type) return type
      logger.warn(`contentTypeResolver returned no string for ${name}; using the built-in guess`)
    } catch (e) {
      logger.warn(`contentTypeResolver threw for ${name} (${e?.message ?? e}); using the built-in guess`)
    }
    return native.guessContentType(name)
  }
}

// ---- the main class ---------------------------------------------------------

class S3WorkspaceSync extends EventEmitter {
  constructor(options) {
    super()
    if (!options || typeof options !== 'object') throw new SyncError('options.bucket is required', 'INVALID_OPTION')
    for (const name of ['bucket', 'prefix', 'workspaceDir']) {
      if (!options[name]) throw new SyncError(`options.${name} is required`, 'INVALID_OPTION')
      if (typeof options[name] !== 'string') throw new SyncError(`options.${name} must be a string`, 'INVALID_OPTION')
    }
    const logger = options.logger ?? createDefaultLogger()
    for (const level of ['debug', 'info', 'warn', 'error']) {
      if (typeof logger[level] !== 'function') {
        throw new SyncError(`options.logger.${level} must be a function`, 'INVALID_OPTION')
      }
    }
    if (options.forcePathStyle !== undefined && typeof options.forcePathStyle !== 'boolean') {
      throw new SyncError('options.forcePathStyle must be a boolean', 'INVALID_OPTION')
    }
    const resolver = options.contentTypeResolver
    if (resolver !== undefined && typeof resolver !== 'function') {
      throw new SyncError('options.contentTypeResolver must be a function', 'INVALID_OPTION')
    }
    const client = options.s3Client
    if (client !== undefined && (client === null || typeof client.send !== 'function')) {
      throw new SyncError('options.s3Client must have a send() method', 'INVALID_OPTION')
    }
    const forcedMode = options.s3ClientMode ?? 'auto'
    if (!CLIENT_MODES.includes(forcedMode)) {
      throw new SyncError(`options.s3ClientMode must be one of ${CLIENT_MODES.join(', ')}`, 'INVALID_OPTION')
    }
    const conflictPolicy = options.conflictPolicy ?? 'keep-both'
    if (!CONFLICT_POLICIES.includes(conflictPolicy)) {
      throw new SyncError(`options.conflictPolicy must be one of ${CONFLICT_POLICIES.join(', ')}`, 'INVALID_OPTION')
    }
    nativeCall(() => native.checkWorkspaceDir(options.workspaceDir))
    const unknown = Object.keys(options).filter((k) => !KNOWN_OPTIONS.has(k))
    if (unknown.length > 0) {
      logger.warn(`Unknown options ignored: ${unknown.join(', ')} (see S3WorkspaceSyncOptions; downloadConcurrency and uploadConcurrency set parallelism)`)
    }
    const ignorePatterns = checkPatterns(options.ignorePatterns, 'ignorePatterns')
    // Patterns the matcher cannot take are skipped (the npm `ignore` package
    // that upstream used tolerated them), with a warning here.
    warnSkippedPatterns(nativeCall(() => new native.NativeIgnoreRules(ignorePatterns)), logger)

    this._logger = logger
    this._workspaceDir = options.workspaceDir
    this._backgroundPull = null
    this._pullComplete = false
    this._priorityWait = null
    this._priorityDone = null
    this._nativeOptions = {
      bucket: options.bucket,
      prefix: options.prefix,
      workspaceDir: options.workspaceDir,
      region: optionalString(options, 'region'),
      endpoint: optionalString(options, 'endpoint'),
      forcePathStyle: options.forcePathStyle,
      downloadConcurrency: concurrency(options, 'downloadConcurrency'),
      uploadConcurrency: concurrency(options, 'uploadConcurrency'),
      ignorePatterns,
      priorityPrefix: priorityPrefixOption(options),
      stallTimeoutMs: positiveInt(options, 'stallTimeoutMs'),
      conflictPolicy,
      maxDeletePercent: intInRange(options, 'maxDeletePercent', 0, 100),
      lockTimeoutMs: intInRange(options, 'lockTimeoutMs', 0, 0xffffffff),
      stateDir: optionalString(options, 'stateDir'),
    }
    this._contentType = resolver && contentTypeHook(resolver, logger)
    this._client = client
    this._clientMode = client && clientMode(client, forcedMode)
    this._engine = null
    logger.debug(`Initialized: bucket=${options.bucket}, prefix=${options.prefix}, dir=${options.workspaceDir}`)
  }

  /** The native engine, created on first use (a real S3Client's settings are async). */
  _native() {
    if (!this._engine) {
      this._engine = (async () => {
        const options = { ...this._nativeOptions }
        const hooks = { contentType: this._contentType }
        if (this._clientMode === 'send') {
          hooks.store = sendStore(this._client, options.bucket)
        } else if (this._clientMode === 'sdk') {
          const settings = await sdkClientSettings(this._client)
          options.region = options.region ?? settings.region
          options.endpoint = options.endpoint ?? settings.endpoint
          options.forcePathStyle = options.forcePathStyle ?? settings.forcePathStyle
          hooks.credentials = sdkCredentials(this._client)
        }
        return nativeCall(() => new native.NativeWorkspace(options, eventSink(this), hooks))
      })()
      // A failure here (say, a client whose region() rejects) is retried by the next call.
      this._engine.catch(() => {
        this._engine = null
      })
    }
    return this._engine
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
      } else if (event.kind === 'priority') {
        this._priorityDone?.()
      } else {
        this._logger[event.level](event.message)
      }
    } catch (e) {
      this._callbackThrew(e, event.kind === 'progress' ? 'A progress listener' : 'The logger')
    }
  }

  /**
   * A throwing progress listener or logger never fails the sync or crashes
   * the process: it is reported once per instance, through the logger (or
   * console.error when the logger is what throws), and the sync goes on.
   */
  _callbackThrew(e, who) {
    if (this._callbackErrorReported) return
    this._callbackErrorReported = true
    const message = `${who} threw (${e?.message ?? e}); the sync goes on. Reported once per instance.`
    try {
      if (who === 'The logger') throw e
      this._logger.warn(message)
    } catch {
      console.error('[S3_WORKSPACE_SYNC]', message)
    }
  }

  /** Downloads the prefix into the workspace; S3 is the source of truth. */
  async pull() {
    const calledAt = Date.now()
    let settlePriority = () => {}
    if (this._nativeOptions.priorityPrefix) {
      this._priorityWait = new Promise((resolve) => {
        settlePriority = resolve
      })
      this._priorityDone = settlePriority
    }
    try {
      const engine = await this._native()
      const outcome = await engine.pull(calledAt)
      if (outcome.error) throw operationError('Pull', outcome.error)
      return toResult(outcome.report, 'downloadedFiles')
    } catch (e) {
      if (e instanceof SyncError) throw e
      throw new S3OperationError(`Pull failed: ${e?.message ?? e}`, e)
    } finally {
      settlePriority()
    }
  }

  /** Uploads new and changed files; deletes on S3 what was deleted locally. */
  async push() {
    if (this._backgroundPull) await this._backgroundPull
    const started = Date.now()
    const failed = (message) => ({
      success: false,
      uploadedFiles: 0,
      deletedFiles: 0,
      errors: [message],
      duration: Date.now() - started,
    })
    let outcome
    try {
      outcome = await (await this._native()).push()
    } catch (e) {
      return failed(`Push failed: ${e?.message ?? e}`)
    }
    if (outcome.error) return failed(`${outcome.error.code}: Push failed: ${outcome.error.message}`)
    return toResult(outcome.report, 'uploadedFiles')
  }

  /** Starts a pull without waiting for it; never throws. */
  startBackgroundPull() {
    this._logger.debug('Starting background pull...')
    this._pullComplete = false // a second background pull is not complete yet
    this._backgroundPull = this.pull().then(
      () => {
        this._pullComplete = true
      },
      (e) => {
        this._pullComplete = true // so waiters unblock
        try {
          this._logger.error('Background pull failed:', e)
        } catch (thrown) {
          this._callbackThrew(thrown, 'The logger')
        }
      },
    )
  }

  /** Resolves when the background pull (if any) has finished. */
  async waitForPull() {
    if (this._pullComplete) return
    if (this._backgroundPull) await this._backgroundPull
  }

  /**
   * Resolves when the files under `priorityPrefix` have been downloaded (or
   * failed), before the rest of the pull; at once without a priority prefix
   * or a running pull. Never rejects, never hangs: a failed pull settles it.
   */
  async waitForPriorityPull() {
    if (this._priorityWait) await this._priorityWait
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

/** Lowercase hex MD5 of a file. Rejects as `fs` does for a missing or unreadable path (`code: 'ENOENT'`, `errno`, `syscall`, `path`). */
async function calculateFileHash(filePath) {
  const path = String(filePath)
  // Node's own open gives upstream's errors; the native side never blocks on a FIFO.
  const handle = await open(path, fsConstants.O_RDONLY | (fsConstants.O_NONBLOCK ?? 0))
  await handle.close()
  return native.calculateFileHash(path)
}

module.exports = {
  S3WorkspaceSync,
  SyncIgnoreFilter,
  SyncError,
  PathValidationError,
  S3OperationError,
  createDefaultLogger,
  validateStoragePath,
  guessContentType,
  calculateFileHash,
}
