// @ts-check
'use strict'

// The public API: an EventEmitter wrapper around the Rust engine, with the
// upstream package's names, options, results and error classes. The parts
// live in lib/: errors, logger, options, ignore rules, s3Client handling,
// the send() store, result shaping and watch().

const { EventEmitter } = require('node:events')
const { createHash } = require('node:crypto')
const { constants: fsConstants } = require('node:fs')
const { open } = require('node:fs/promises')
const native = require('./load-binding.js') // binding.js, with an actionable error when no binary fits
const { SyncError, PathValidationError, S3OperationError, AbortError, fromNative, nativeCall } = require('./lib/errors.js')
const { createDefaultLogger } = require('./lib/logger.js')
const { validateStoragePath, checkOptions, checkOperationOptions } = require('./lib/options.js')
const { SyncIgnoreFilter, warnSkippedPatterns } = require('./lib/ignore.js')
const { clientMode, sdkClientSettings, sdkCredentials } = require('./lib/client.js')
const { sendStore } = require('./lib/send-store.js')
const { errorDetail, detailOf, failedResult, toResult, toRestoreResult } = require('./lib/result.js')
const { watchWorkspace } = require('./lib/watch.js')

/** @typedef {import('./index').SyncResult} SyncResult */
/** @typedef {import('./index').PullResult} PullResult */
/** @typedef {import('./index').PushResult} PushResult */
/** @typedef {import('./index').SyncLogger} SyncLogger */
/** @typedef {import('./index').OperationOptions} OperationOptions */
/** @typedef {import('./binding').NativeReport} NativeReport */
/** @typedef {import('./binding').NativeError} NativeError */
/** @typedef {import('./binding').NativeEvent} NativeEvent */
/** @typedef {import('./binding').NativeOutcome} NativeOutcome */
/** @typedef {import('./binding').NativeEnsureOutcome} NativeEnsureOutcome */
/** @typedef {import('./binding').NativeRemoteOutcome} NativeRemoteOutcome */

// ---- callbacks handed to the native object ----------------------------------
//
// The native object keeps its callbacks alive (thread-safe functions are GC
// roots) and the instance keeps the native object: a callback that held the
// instance would make both uncollectable. So they are made here, at module
// level, where no closure can capture `this` (V8 shares one context among
// the closures of a scope), and reach the instance only through a WeakRef;
// while an operation runs, its promise keeps the instance alive.

/** @param {S3WorkspaceSync} instance */
function eventSink(instance) {
  const ref = new WeakRef(instance)
  return (/** @type {NativeEvent} */ event) => ref.deref()?._onEvent(event)
}

/**
 * `contentTypeResolver`, called with the file's base name as upstream did;
 * a throw or a non-string falls back to the guess.
 * @param {(name: string) => string} resolver
 * @param {SyncLogger} logger
 */
function contentTypeHook(resolver, logger) {
  return (/** @type {string} */ relativePath) => {
    const name = relativePath.slice(relativePath.lastIndexOf('/') + 1)
    try {
      const type = resolver(name)
      if (typeof type === 'string' && type) return type
      logger.warn(`contentTypeResolver returned no string for ${name}; using the built-in guess`)
    } catch (e) {
      logger.warn(`contentTypeResolver threw for ${name} (${/** @type {Error} */ (e)?.message ?? e}); using the built-in guess`)
    }
    return native.guessContentType(name)
  }
}

/**
 * Runs `start(run)` with a native run (dry or not) whose cancellation is
 * wired to `options.signal`.
 * @template T
 * @param {OperationOptions | undefined} options
 * @param {(run: import('./binding').NativeRun) => Promise<T>} start
 * @returns {Promise<{ value: T, aborted: boolean }>}
 */
async function withSignal(options, start) {
  const { signal, dryRun, restoreDeleted } = checkOperationOptions(options)
  if (signal?.aborted) throw new AbortError(signal.reason)
  const cancel = new native.NativeRun(dryRun, restoreDeleted)
  const onAbort = () => cancel.cancel()
  signal?.addEventListener('abort', onAbort, { once: true })
  try {
    const value = await start(cancel)
    return { value, aborted: Boolean(signal?.aborted) }
  } finally {
    signal?.removeEventListener('abort', onAbort)
  }
}

/**
 * A checkpoint target as the engine takes it.
 * @param {unknown} target
 * @param {string} name
 * @returns {import('./binding').NativeTarget}
 */
function toTarget(target, name) {
  const t = /** @type {{ checkpoint?: unknown, at?: unknown }} */ (target)
  if (t && typeof t === 'object' && typeof t.checkpoint === 'string' && t.checkpoint && t.at === undefined) return { checkpoint: t.checkpoint }
  if (t && typeof t === 'object' && t.at instanceof Date && !Number.isNaN(t.at.getTime()) && t.checkpoint === undefined) return { atMs: t.at.getTime() }
  throw new SyncError(`${name} must be { checkpoint: id } or { at: Date }`, 'INVALID_OPTION')
}

// ---- the main class ---------------------------------------------------------

class S3WorkspaceSync extends EventEmitter {
  /** @param {import('./index').S3WorkspaceSyncOptions} options */
  constructor(options) {
    super()
    // Every option's rule and wording: lib/options.js.
    const { values: opts, native: nativeOpts, unknown } = checkOptions(options)
    /** @type {SyncLogger} */
    const logger = opts.logger
    const resolver = opts.contentTypeResolver
    nativeCall(() => native.checkWorkspaceDir(opts.workspaceDir))
    if (unknown.length > 0) {
      logger.warn(`Unknown options ignored: ${unknown.join(', ')} (see S3WorkspaceSyncOptions; downloadConcurrency and uploadConcurrency set parallelism)`)
    }
    // Patterns the matcher cannot take are skipped (the npm `ignore` package
    // that upstream used tolerated them), with a warning here.
    warnSkippedPatterns(
      nativeCall(() => new native.NativeIgnoreRules(nativeOpts.ignorePatterns ?? [])),
      logger,
    )

    /** @type {SyncLogger} */
    this._logger = logger
    this._workspaceDir = opts.workspaceDir
    /** @type {Promise<PullResult> | null} */
    this._backgroundPull = null
    this._pullComplete = false
    /** @type {Promise<void> | null} */
    this._priorityWait = null
    /** @type {(() => void) | null} */
    this._priorityDone = null
    this._nativeOptions = nativeOpts
    this._contentType = resolver && contentTypeHook(resolver, logger)
    this._client = opts.s3Client
    /** @type {'auto' | 'sdk' | 'send'} */
    this._forcedMode = opts.s3ClientMode
    /** @type {Promise<import('./binding').NativeWorkspace> | null} */
    this._engine = null
    /** Running operations, so `close()` can wait for or cancel them. @type {Set<{ done: Promise<unknown>, cancel: import('./binding').NativeRun }>} */
    this._running = new Set()
    this._closed = false
    this._callbackErrorReported = false
    logger.debug(`Initialized: bucket=${opts.bucket}, prefix=${opts.prefix}, dir=${opts.workspaceDir}`)
  }

  /** The native engine, created on first use (a real S3Client's settings are async). */
  _native() {
    if (!this._engine) {
      this._engine = (async () => {
        const options = { ...this._nativeOptions }
        /** @type {import('./binding').NativeHooks} */
        const hooks = { contentType: this._contentType }
        const client = this._client
        if (client) {
          const { mode, why } = await clientMode(client, this._forcedMode)
          if (mode === 'send') {
            if (why) this._logger.info(`s3Client: requests go through its send() because ${why}`)
            hooks.store = sendStore(client, options.bucket)
          } else {
            const settings = await sdkClientSettings(client)
            options.region = options.region ?? settings.region
            options.endpoint = options.endpoint ?? settings.endpoint
            options.forcePathStyle = options.forcePathStyle ?? settings.forcePathStyle
            hooks.credentials = sdkCredentials(client)
          }
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

  /**
   * Runs one native operation: refused once closed, cancellable by `signal`
   * and by `close({ abort: true })`.
   * @template {NativeOutcome | NativeEnsureOutcome | NativeRemoteOutcome | import('./binding').NativeCheckpointsOutcome | import('./binding').NativeDiffOutcome} T
   * @param {OperationOptions | undefined} options
   * @param {(engine: import('./binding').NativeWorkspace, run: import('./binding').NativeRun) => Promise<T>} run
   * @returns {Promise<T>}
   */
  async _operation(options, run) {
    if (this._closed) throw new SyncError('This S3WorkspaceSync was closed', 'CLOSED')
    const engine = await this._native()
    const { value, aborted } = await withSignal(options, (cancel) => {
      const done = run(engine, cancel)
      const entry = { done, cancel }
      this._running.add(entry)
      return done.finally(() => this._running.delete(entry))
    })
    if (value.kind === 'failed' && value.error.code === 'CANCELLED') {
      if (aborted) throw new AbortError(options?.signal?.reason)
      if (this._closed) throw new SyncError('This S3WorkspaceSync was closed while the operation ran', 'CLOSED')
    }
    return value
  }

  /** @param {NativeEvent} event */
  _onEvent(event) {
    try {
      if (event.kind === 'progress') {
        /** @type {import('./index').SyncProgress} */
        const progress = {
          phase: event.phase,
          current: event.current,
          total: event.total,
          percentage: event.percentage,
          bytes: event.bytes,
          totalBytes: event.totalBytes,
        }
        if (event.currentFile !== undefined && event.currentFile !== null) progress.currentFile = event.currentFile
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
   * @param {unknown} e
   * @param {string} who
   */
  _callbackThrew(e, who) {
    if (this._callbackErrorReported) return
    this._callbackErrorReported = true
    const message = `${who} threw (${/** @type {Error} */ (e)?.message ?? e}); the sync goes on. Reported once per instance.`
    try {
      if (who === 'The logger') throw e
      this._logger.warn(message)
    } catch {
      console.error('[S3_WORKSPACE_SYNC]', message)
    }
  }

  /**
   * Downloads the prefix into the workspace; S3 is the source of truth.
   * @param {OperationOptions} [options]
   * @returns {Promise<PullResult>}
   */
  async pull(options) {
    const calledAt = Date.now()
    let settlePriority = () => {}
    if (this._nativeOptions.priorityPrefix) {
      this._priorityWait = new Promise((resolve) => {
        settlePriority = resolve
      })
      this._priorityDone = settlePriority
    }
    try {
      const outcome = await this._operation(options, (engine, cancel) => engine.pull(calledAt, cancel))
      if (outcome.kind === 'failed') throw fromNative(outcome.error, 'Pull failed')
      return toResult(outcome.report, 'pull')
    } catch (e) {
      if (e instanceof SyncError) throw e
      throw new S3OperationError(`Pull failed: ${/** @type {Error} */ (e)?.message ?? e}`, e)
    } finally {
      settlePriority()
    }
  }

  /**
   * Uploads new and changed files; deletes on S3 what was deleted locally.
   * Resolves `{ success: false, errors }` when it fails (as upstream); rejects
   * only when aborted or closed.
   * @param {OperationOptions} [options]
   * @returns {Promise<PushResult>}
   */
  async push(options) {
    if (this._backgroundPull) await this._backgroundPull
    const started = Date.now()
    /** @param {string} message @param {NativeError} [detail] @returns {PushResult} */
    const failed = (message, detail) =>
      /** @type {PushResult} */ (failedResult('push', message, detail ? errorDetail(detail) : { path: '', code: 'S3_OPERATION_ERROR', message }, Date.now() - started))
    let outcome
    try {
      outcome = await this._operation(options, (engine, cancel) => engine.push(cancel))
    } catch (e) {
      if (e instanceof AbortError || (e instanceof SyncError && (e.code === 'CLOSED' || e.code === 'INVALID_OPTION'))) throw e
      return failed(`Push failed: ${/** @type {Error} */ (e)?.message ?? e}`)
    }
    if (outcome.kind === 'failed') return failed(`${outcome.error.code}: Push failed: ${outcome.error.message}`, outcome.error)
    return toResult(outcome.report, 'push')
  }

  /**
   * Resolves when each path (a file, or a directory as `dir/`) is current
   * on disk by the pull rules. While a pull runs, the paths jump its queue
   * (listed on their own if its listing has not reached them) and no file
   * is downloaded twice; otherwise this is a pull of just those paths.
   * Rejects with the first failure when a file under them fails to
   * download. Aborting `signal` stops the wait, not a running pull.
   * @param {string | string[]} paths
   * @param {{ signal?: AbortSignal }} [options]
   * @returns {Promise<import('./index').EnsureResult>}
   */
  async ensure(paths, options) {
    const list = typeof paths === 'string' ? [paths] : paths
    if (!Array.isArray(list) || list.length === 0 || !list.every((p) => typeof p === 'string' && p.length > 0)) {
      throw new SyncError('ensure(paths): paths must be a workspace-relative path or a non-empty array of them (a directory ends in "/")', 'INVALID_OPTION')
    }
    const outcome = await this._operation({ signal: options?.signal }, (engine, cancel) => engine.ensure(list, cancel))
    if (outcome.kind === 'failed') throw fromNative(outcome.error, 'Ensure failed')
    const { ensured } = outcome
    if (ensured.errors.length > 0) throw fromNative(ensured.errors[0], `Ensure failed for ${ensured.errors.length} file(s)`)
    return { paths: ensured.paths, downloadedFiles: ensured.downloaded, missing: ensured.missing }
  }

  /**
   * Checkpoints of the prefix (a bucket with versioning), newest first.
   * @param {{ limit?: number, before?: string | Date }} [options]
   * @returns {Promise<import('./index').Checkpoint[]>}
   */
  async listCheckpoints(options = {}) {
    if (options === null || typeof options !== 'object') throw new SyncError('listCheckpoints(options): options must be an object', 'INVALID_OPTION')
    const { limit = 20, before } = options
    if (!Number.isInteger(limit) || limit < 1) throw new SyncError('listCheckpoints: limit must be a positive integer', 'INVALID_OPTION')
    const start = before === undefined ? null : toTarget(typeof before === 'string' ? { checkpoint: before } : { at: before }, 'before')
    const outcome = await this._operation(undefined, (engine) => engine.listCheckpoints(limit, start))
    if (outcome.kind === 'failed') throw fromNative(outcome.error, 'Listing checkpoints failed')
    return outcome.checkpoints.map((c) => ({ id: c.id, time: new Date(c.timeMs), files: c.files, bytes: c.bytes, changed: c.changed }))
  }

  /**
   * Makes S3 and the workspace hold a checkpoint's state again (all of it,
   * or only `paths`): old versions copied to be current on S3, local work
   * not pushed kept under conflict names. Itself a checkpoint.
   * @param {{ checkpoint: string } | { at: Date }} target
   * @param {{ paths?: string[], dryRun?: boolean, signal?: AbortSignal }} [options]
   * @returns {Promise<import('./index').RestoreResult>}
   */
  async restore(target, options = {}) {
    const to = toTarget(target, 'target')
    const paths = options?.paths ?? []
    if (!Array.isArray(paths) || !paths.every((p) => typeof p === 'string' && p.length > 0)) {
      throw new SyncError('restore: paths must be an array of workspace-relative paths', 'INVALID_OPTION')
    }
    const run = { signal: options?.signal, dryRun: options?.dryRun }
    const outcome = await this._operation(run, (engine, cancel) => engine.restore(to, paths, cancel))
    if (outcome.kind === 'failed') throw fromNative(outcome.error, 'Restore failed')
    return toRestoreResult(outcome.report)
  }

  /**
   * What changed from one state to another: `{ checkpoint }` or `{ at }`
   * each; without `to`, the local workspace.
   * @param {{ checkpoint: string } | { at: Date }} from
   * @param {{ checkpoint: string } | { at: Date }} [to]
   * @returns {Promise<import('./index').DiffResult>}
   */
  async diff(from, to) {
    const a = toTarget(from, 'from')
    const b = to === undefined ? null : toTarget(to, 'to')
    const outcome = await this._operation(undefined, (engine) => engine.diff(a, b))
    if (outcome.kind === 'failed') throw fromNative(outcome.error, 'Diff failed')
    const { added, modified, deleted } = outcome.diff
    return { added, modified, deleted }
  }

  /**
   * Starts a pull without waiting for it; never throws. Returns a handle
   * (upstream returned nothing): `done` resolves to the result (`success:
   * false` with its errors when the pull failed), `cancel()` stops it.
   * @param {OperationOptions} [options]
   * @returns {import('./index').BackgroundPull}
   */
  startBackgroundPull(options) {
    this._logger.debug('Starting background pull...')
    this._pullComplete = false // a second background pull is not complete yet
    const controller = new AbortController()
    const outer = options?.signal
    const forward = () => controller.abort(outer?.reason)
    if (outer?.aborted) forward()
    else outer?.addEventListener('abort', forward, { once: true })
    const pulling = this.pull({ signal: controller.signal })
    const priorityDone = this.waitForPriorityPull()
    const done = pulling.then(
      (result) => result,
      (e) => {
        try {
          this._logger.error('Background pull failed:', e)
        } catch (thrown) {
          this._callbackThrew(thrown, 'The logger')
        }
        const err = /** @type {SyncError} */ (e)
        return /** @type {PullResult} */ (failedResult('pull', err?.message ?? String(e), detailOf(err, e), 0))
      },
    )
    this._backgroundPull = done.finally(() => {
      this._pullComplete = true // also after a failure, so waiters unblock
      outer?.removeEventListener('abort', forward)
    })
    return { done: this._backgroundPull, priorityDone, cancel: () => controller.abort() }
  }

  /**
   * Pulls, then keeps the workspace pushed: a push `debounceMs` after the
   * last change (file-system notifications, with a rescan every
   * 30 s as a safety net), never two at once. `stop()` (or aborting
   * `signal`) stops watching and resolves after a final push.
   * @param {import('./index').WatchOptions} [options]
   * @returns {Promise<import('./index').Watcher>}
   */
  async watch(options) {
    return watchWorkspace(
      {
        pull: (o) => this.pull(o),
        push: () => this.push(),
        follow: async (make) => {
          const outcome = await this._operation(undefined, (engine) => engine.follow(make))
          if (outcome.kind === 'failed') throw fromNative(outcome.error, 'Following the change journal failed')
        },
        pullRemoteChanges: async ({ whole = false, paths, signal }) => {
          const outcome = await this._operation({ signal }, (engine, cancel) => engine.pullRemoteChanges(whole, paths, cancel))
          if (outcome.kind === 'failed') throw fromNative(outcome.error, 'Pulling remote changes failed')
          const { pulled } = outcome
          if (!pulled) return null
          const { report, written, removed } = pulled
          if (report.errors.length > 0) this._logger.warn(`watch: ${report.errors.length} file(s) of a remote change failed: ${report.errors[0].message}`)
          return {
            written,
            removed,
            conflicts: report.conflicts,
            copies: report.conflictCopies.map(({ path, copy }) => ({ path, copy })),
            files: report.transferred + report.unchanged,
          }
        },
        remoteChanged: (change) => {
          try {
            this.emit('remote-change', change)
          } catch (e) {
            this._callbackThrew(e, "A 'remote-change' listener")
          }
        },
        remoteFailed: (error, first) => {
          if (!first) return this._logger.debug(`watch: remote check failed again: ${error.message}`)
          try {
            this._logger.warn(`watch: checking S3 for remote changes failed (${error.message}); local work is kept, retrying with backoff`)
            // Only to a listener: an unheard 'error' event would crash the process.
            if (this.listenerCount('error') > 0) this.emit('error', error)
          } catch (e) {
            this._callbackThrew(e, "An 'error' listener")
          }
        },
        info: (message) => this._logger.info(message),
        callbackThrew: (e, who) => this._callbackThrew(e, who),
        workspaceDir: this._workspaceDir,
        stateDir: this._nativeOptions.stateDir,
      },
      options,
    )
  }

  /**
   * Resolves when the background pull (if any) has finished, to its result
   * (`undefined` when no background pull ran).
   * @returns {Promise<PullResult | undefined>}
   */
  async waitForPull() {
    if (this._backgroundPull) return this._backgroundPull
    return undefined
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

  /**
   * Releases the instance: waits for running operations (or, with `abort:
   * true`, cancels them), then lets go of the engine, its S3 client and
   * callbacks. Later calls reject with code `CLOSED`. Idempotent.
   * @param {{ abort?: boolean }} [options]
   */
  async close(options) {
    this._closed = true
    const running = [...this._running]
    if (options?.abort) for (const op of running) op.cancel.cancel()
    await Promise.allSettled(running.map((op) => op.done))
    const engine = this._engine
    this._engine = null
    if (engine)
      await engine.then(
        (e) => e.close(),
        () => {},
      )
  }

  /** `await using sync = new S3WorkspaceSync(…)`: closes, waiting for running work. */
  async [Symbol.asyncDispose]() {
    await this.close()
  }
}

/** @param {string} filename */
function guessContentType(filename) {
  return native.guessContentType(String(filename))
}

/**
 * Opens `filePath` as `fs` does (upstream's errors: `code: 'ENOENT'`,
 * `errno`, `syscall`, `path`) without ever blocking on a FIFO or device,
 * and refuses anything but a regular file.
 * @param {string} filePath
 */
async function openRegular(filePath) {
  const handle = await open(filePath, fsConstants.O_RDONLY | (fsConstants.O_NONBLOCK ?? 0))
  const stat = await handle.stat()
  if (!stat.isFile()) {
    await handle.close()
    throw Object.assign(new Error(`EISDIR: not a regular file, read '${filePath}'`), { code: stat.isDirectory() ? 'EISDIR' : 'EINVAL', syscall: 'read', path: filePath })
  }
  return handle
}

/**
 * Lowercase hex SHA-256 of a file, as upstream's `calculateFileHash`.
 * @param {string} filePath
 */
async function calculateFileHash(filePath) {
  const path = String(filePath)
  const handle = await openRegular(path)
  try {
    const hash = createHash('sha256')
    for await (const chunk of handle.createReadStream({ autoClose: false })) hash.update(chunk)
    return hash.digest('hex')
  } finally {
    await handle.close()
  }
}

/**
 * The content hash the engine knows a file by (its MD5 below 8 MiB, else
 * the S3 multipart form over 8 MiB parts), computed off the JS thread.
 * @param {string} filePath
 */
async function calculateContentHash(filePath) {
  const path = String(filePath)
  await (await openRegular(path)).close()
  return native.calculateContentHash(path)
}

module.exports = {
  S3WorkspaceSync,
  SyncIgnoreFilter,
  SyncError,
  PathValidationError,
  S3OperationError,
  AbortError,
  createDefaultLogger,
  validateStoragePath,
  guessContentType,
  calculateFileHash,
  calculateContentHash,
}
