import { EventEmitter } from 'node:events'
import type { ErrorCode, WarningCode } from './binding'

/** Anything with the four log methods (console, pino, winston, ...). */
export interface SyncLogger {
  debug(message: string, ...args: unknown[]): void
  info(message: string, ...args: unknown[]): void
  warn(message: string, ...args: unknown[]): void
  error(message: string, ...args: unknown[]): void
}

/** What `s3Client` needs to be: an AWS SDK v3 `S3Client` is one. */
export interface S3ClientLike {
  send(command: any, ...rest: any[]): Promise<any>
}

/** Metadata about a single file tracked by the sync engine. */
export interface FileInfo {
  path: string
  size: number
  mtime: number
  hash: string
}

/** Options of `new S3WorkspaceSync()`; the first three are required. */
export interface S3WorkspaceSyncOptions {
  /** S3 bucket name. */
  bucket: string
  /** Key prefix, e.g. `users/user123/workspace/` (a trailing `/` is added). */
  prefix: string
  /** Local workspace directory. */
  workspaceDir: string
  /** AWS region; default `process.env.AWS_REGION`, then `us-east-1`. */
  region?: string
  /**
   * Pre-configured AWS SDK v3 S3Client. A stock client lends the native
   * engine its region, endpoint, path style and credential provider. A
   * client with anything the native engine would bypass (added middleware, a
   * custom request handler or HTTP agent, retry settings, endpoint variants
   * such as `useAccelerateEndpoint`), a stubbed `send`, or any other object
   * with `send()` is driven through its own `send()`.
   */
  s3Client?: S3ClientLike
  /** Beyond upstream: force how `s3Client` is used (default `'auto'`). */
  s3ClientMode?: 'auto' | 'sdk' | 'send'
  /** Max parallel downloads (default 50). */
  downloadConcurrency?: number
  /** Max parallel uploads (default 10). */
  uploadConcurrency?: number
  /** Receives log records; default: console with a `[S3_WORKSPACE_SYNC]` prefix. */
  logger?: SyncLogger
  /** Beyond upstream: the lowest level the default logger prints (default `'info'`; ignored with `logger`). */
  logLevel?: LogLevel
  /** gitignore-style patterns applied after the built-in defaults. */
  ignorePatterns?: string[]
  /** Content-Type for an uploaded file, called with its base name. */
  contentTypeResolver?: (filename: string) => string
  /** Workspace-relative directory downloaded first during `pull()`. */
  priorityPrefix?: string
  /** Beyond upstream: endpoint URL of an S3-compatible server (`http://` or `https://` with a host; checked by the constructor). */
  endpoint?: string
  /** Beyond upstream: path-style addressing (default: on with a custom endpoint). */
  forcePathStyle?: boolean
  /** Beyond upstream: a request with nothing sent or received this long (an upload body counts while it moves), or a download body silent this long, is cut and retried (default 30000). */
  stallTimeoutMs?: number
  /**
   * Beyond upstream: what happens when a file changed both locally and on S3
   * since the last sync. `'keep-both'` (default): a pull downloads S3's
   * version and keeps the local one as a conflict copy
   * (`name.conflict-<UTC time>-<tag>.ext`, in `conflictCopies`), or, for a
   * file written after the pull was called, leaves it and saves S3's version
   * as the copy; a push leaves the newer object alone and reports the path
   * in `conflicts`.
   * `'overwrite'`: upstream's last writer wins (never touching a file
   * written after the pull was called).
   */
  conflictPolicy?: 'keep-both' | 'overwrite'
  /**
   * Beyond upstream: how conditional writes (`If-Match`, `If-None-Match`,
   * on which the conflict rules rest) are used. `'auto'` (default): sent;
   * on a server other than AWS S3, first probed once per instance: where
   * they are ignored or refused, each write is checked with a HEAD just
   * before it is sent instead (a best effort), and a
   * `STORE_CONDITION_IGNORED` warning says so once. `'required'`: a push
   * to such a server is refused (`UNSUPPORTED_STORE`). `'off'`: never sent,
   * for a server that refuses them; writes checked with a HEAD.
   */
  conditionalWrites?: 'auto' | 'required' | 'off'
  /**
   * Beyond upstream: a pull or push deletes nothing when it would delete
   * more than this percentage of the synced files (and at least 2); a push
   * also counts the deletions of earlier pushes against the files synced at
   * the last pull. The result says why; a pull restores local deletions
   * that would be such a mass deletion. Default 50; 100 turns the guard off.
   */
  maxDeletePercent?: number
  /** Beyond upstream: how long a call waits for another instance syncing the same directory (default 300000). */
  lockTimeoutMs?: number
  /**
   * Beyond upstream: where the sync base and the lock live (default
   * `<workspaceDir>/.s3ws`). Instances sharing a directory must share it.
   */
  stateDir?: string
  /**
   * Beyond upstream: multipart uploads under the prefix started longer ago
   * than this (left by a killed process) are aborted by the instance's first
   * push (default 86400000, one day; 0 never). A bucket lifecycle rule
   * (`AbortIncompleteMultipartUpload`) is recommended too.
   */
  abandonedUploadAgeMs?: number
}

/**
 * Every `code` a `SyncError` (or an entry of `errorDetails`) can have: the
 * engine's (`ErrorCode`, generated from its code enum) and the wrapper's own.
 */
export type SyncErrorCode = `${ErrorCode}` | 'PATH_VALIDATION_ERROR' | 'CLOSED' | 'ABORT_ERR'

/** One failure of a sync, as data (beyond upstream; `errors` holds the messages). */
export interface SyncErrorDetail {
  /** Workspace-relative path; `''` for the operation as a whole (or an object key that cannot be a path). */
  path: string
  /** The object key, for a failure about an object (a download). */
  key?: string
  code: SyncErrorCode
  message: string
  /** S3 failures: S3's error code (`'NoSuchBucket'`, `'AccessDenied'`) or `'NetworkError'`, `'Timeout'`, `'CredentialsError'`, … */
  s3Code?: string
  /** S3 failures: the HTTP status of S3's answer, when one came. */
  statusCode?: number
  /** S3 failures: whether trying again later may succeed. */
  retryable?: boolean
}

/**
 * The result of `pull()` or `push()`. The fields upstream had are typed as
 * upstream typed them (code that builds a `SyncResult`, in a test double or
 * a subclass, keeps compiling); the ones beyond upstream are optional in the
 * type too, though `pull()` and `push()` always set `deletedFiles`,
 * `duration`, `transferredFiles`, `unchangedFiles` and `bytesTransferred`.
 */
export interface SyncResult {
  success: boolean
  /**
   * Files this pull made current from S3: downloaded, or found identical
   * already (upstream's pulls downloaded every file, so a warm pull still
   * counts them; see `transferredFiles` for what moved).
   */
  downloadedFiles?: number
  uploadedFiles?: number
  deletedFiles?: number
  errors?: string[]
  /** Beyond upstream: `errors` as data, in the same order. */
  errorDetails?: SyncErrorDetail[]
  duration?: number
  /**
   * Beyond upstream: paths changed both here and on S3 since the last sync.
   * After a pull both versions are kept (the local one under a conflict
   * name); after a push the object was left as it is (also in `errors`).
   */
  conflicts?: string[]
  /**
   * Beyond upstream: the conflict copies this call made, each with the path
   * it is a version of. A pull moves the local version to `copy` and puts
   * S3's at `path`; for a file written after the pull was called it leaves
   * that file at `path` and saves S3's version as `copy`. Copies are
   * ordinary files: the next push uploads them.
   */
  conflictCopies?: Array<{ path: string; copy: string }>
  /**
   * Beyond upstream: what the call did that needs attention though nothing
   * failed (`success` is unaffected). See `SyncWarningCode`.
   */
  warnings?: SyncWarning[]
  /** Beyond upstream: files actually downloaded (pull) or uploaded (push). */
  transferredFiles?: number
  /** Beyond upstream: files already in sync, not transferred. */
  unchangedFiles?: number
  /** Beyond upstream: bytes of the transferred files. */
  bytesTransferred?: number
  /** Beyond upstream: a dry run's decisions (absent for a real run). */
  plan?: SyncPlan
  /**
   * Beyond upstream: local entries `push()` could not sync. `code`:
   * `'SYMLINK'` (links are never followed; not a failure), `'SPECIAL_FILE'`
   * (FIFO, socket, device), `'UNSAFE_NAME'` (a name that cannot be an S3
   * key), `'UNREADABLE'`. All but links are in `errors` too.
   */
  skipped?: Array<{ path: string; code: 'SYMLINK' | 'SPECIAL_FILE' | 'UNSAFE_NAME' | 'UNREADABLE'; reason: string }>
}

/**
 * Beyond upstream: why a completed call reports a warning.
 * - `BASE_DAMAGED`: the sync base could not be used as it was (damaged,
 *   unreadable, or describing another directory); see the README.
 * - `UNKNOWN_TO_BASE`: a path the recovering base did not know, synced by
 *   rules that lose nothing (uploaded or downloaded as new, never deleted).
 * - `COPY_IGNORED`: a conflict copy whose name the ignore rules hide: it
 *   exists on this disk only.
 * - `DELETIONS_RESTORED`: files deleted here were brought back from S3 (a
 *   mass deletion, or `restoreDeleted`).
 * - `SHAPE_CLASH`: S3 holds a path both as a file and as a directory; the
 *   newer shape was synced.
 * - `OPEN_FOR_WRITING`: a file a process holds open for writing was not
 *   replaced.
 * - `STORE_CONDITION_IGNORED`: the S3 server ignores a condition the sync
 *   relies on; another request was used instead.
 * - `STORE_CALL_REFUSED`: the S3 server does not implement a request the
 *   sync would use (`DeleteObjects`); another was used instead.
 */
export type SyncWarningCode = `${WarningCode}`

/** Beyond upstream: one entry of `SyncResult.warnings`. */
export interface SyncWarning {
  /** Workspace-relative path; `''` for the call as a whole. */
  path: string
  code: SyncWarningCode
  message: string
}

/**
 * What `pull()` resolves to: a `SyncResult` with `downloadedFiles` set.
 * (No field is required beyond `SyncResult`'s, so a subclass may override
 * `pull(): Promise<SyncResult>` as with upstream.)
 */
export interface PullResult extends SyncResult {}

/** What `push()` resolves to: a `SyncResult` with `uploadedFiles` set. */
export interface PushResult extends SyncResult {
  /**
   * Beyond upstream, on a bucket with versioning enabled: the checkpoint
   * naming the prefix's state right after this push (the current one when
   * it changed nothing); give it to `restore()` or `diff()`.
   */
  checkpoint?: string
}

/** Beyond upstream: a checkpoint, as `listCheckpoints()` lists it. */
export interface Checkpoint {
  id: string
  /** When the push (or restore) that made it finished. */
  time: Date
  /** Files in that state, and their bytes. */
  files: number
  bytes: number
  /** Paths added, modified and deleted against the checkpoint before it. */
  changed: number
}

/** Beyond upstream: a state to restore or diff: a checkpoint, or the newest one at or before a time. */
export type CheckpointTarget = { checkpoint: string } | { at: Date }

/** Beyond upstream: what `restore()` resolves to. */
export interface RestoreResult {
  success: boolean
  /** Paths whose old version was made current again on S3. */
  restoredFiles: number
  /** Paths deleted on S3 (a new delete marker each). */
  deletedFiles: number
  /** Paths S3 already held as the checkpoint has them. */
  unchangedFiles: number
  /** Paths another agent changed on S3 since this instance synced them (left as they are), and local changes set aside. */
  conflicts?: string[]
  /** Local work the restore replaced, kept under these names. */
  conflictCopies?: Array<{ path: string; copy: string }>
  errors?: string[]
  errorDetails?: SyncErrorDetail[]
  /** What the caller should know though nothing failed (a store that ignores conditions on CopyObject). */
  warnings?: SyncWarning[]
  /** The checkpoint this restore made: restore the one before it to undo it. */
  checkpoint?: string
  duration: number
  /** A dry run's plan: nothing was changed. */
  plan?: { restore: string[]; delete: string[]; conflicts: string[] }
}

/** Beyond upstream: what `diff()` resolves to: workspace-relative paths, sorted. */
export interface DiffResult {
  added: string[]
  modified: string[]
  deleted: string[]
}

/** Beyond upstream: options of one `pull()`, `push()` or `startBackgroundPull()`. */
export interface OperationOptions {
  /**
   * Aborts the operation: it rejects within a second with an `AbortError`
   * (`name === 'AbortError'`), leaving no torn file, aborting started
   * multipart uploads and keeping every finished transfer, so the next call
   * resumes where this one stopped.
   */
  signal?: AbortSignal
  /**
   * Decide exactly as the real call would (same listing, scan, sync base,
   * ignore and conflict rules) and change nothing anywhere: no S3 write, no
   * local write, no state write. The result's `plan` says what the call
   * would do.
   */
  dryRun?: boolean
  /**
   * `pull()` only: bring back every synced file deleted here and not yet
   * pushed (S3 still holds it as synced), instead of keeping those
   * deletions for the next push. (A pull does this by itself when the
   * deletions would be a mass deletion on S3.)
   */
  restoreDeleted?: boolean
}

/** What a dry run would do: workspace-relative paths, sorted. */
export interface SyncPlan {
  download: string[]
  deleteLocal: string[]
  upload: string[]
  deleteRemote: string[]
  /** Changed on both sides: a pull keeps both versions (also in `download`), a push leaves the object alone. */
  conflicts: string[]
}

/** Beyond upstream: options of `watch()`. */
export interface WatchOptions {
  /** Push this long after the last change (default 2000), or five times that after the first while changes keep coming. */
  debounceMs?: number
  /**
   * `'both'` (default): push local changes and pull other writers' changes as they happen;
   * `'push'`: only push (the watch of earlier versions); `'pull'`: only pull (a read-only follower).
   */
  direction?: 'both' | 'push' | 'pull'
  /** How often the prefix's change journal is checked for other instances' pushes: one HEAD request (default 1250). */
  pollMs?: number
  /**
   * The time between full pulls, the safety net for writers that are not this package. By default
   * 60000, or 6 s per 1,000 files when that is longer, so an idle watcher stays under one request a second.
   */
  fullCheckMs?: number
  /** Aborting stops watching, after a final push (also during the first pull: `watch()` then resolves to a watcher already stopped). */
  signal?: AbortSignal
  /** Called with each push's result as it ends (the final one too); a throw is reported once and ignored. */
  onPush?: (result: PushResult) => void
}

/** Beyond upstream: what `watch()` resolves to. */
export interface Watcher {
  /** Stops watching; resolves after a final push with what it, and the pushes running or queued when `stop()` was called, sent, as one result: counts and bytes summed (a file sent twice counts twice), the conflicts and warnings of each once, and the final push's `success` and `errors` (it tried again what the others failed to send); a file the final push finds changed on S3 is pulled, both versions kept (this side's as a conflict copy, in `conflictCopies`), and pushed again, at most twice; idempotent; a `direction: 'pull'` watch pushes nothing. */
  stop(): Promise<PushResult>
  /** Pushes started so far. */
  readonly pushes: number
  /** Checks for remote changes now (for an app that hears of them first, e.g. S3 Event Notifications through SQS). */
  notify(): void
}

/** Beyond upstream: a `'remote-change'` event, after `watch()` applied other writers' changes. */
export interface RemoteChange {
  /** Workspace paths downloaded. */
  paths: string[]
  /** Workspace paths deleted here. */
  deleted: string[]
  /** Paths changed both here and there: S3's version is at the path, this one kept under a conflict name. */
  conflicts: string[]
}

/** Beyond upstream: what `startBackgroundPull()` returns. */
export interface BackgroundPull {
  /** The pull's result; `success: false` with its errors when it failed. Never rejects. */
  done: Promise<PullResult>
  /** Settles when the `priorityPrefix` files have arrived (at once without one). */
  priorityDone: Promise<void>
  /** Stops the pull, as an aborted signal would. */
  cancel(): void
}

/** Beyond upstream: what `ensure()` resolves to. */
export interface EnsureResult {
  /** The paths as named (a directory as `dir/`). */
  paths: string[]
  /** Files downloaded for them while the call waited (0: already current). */
  downloadedFiles: number
  /** Named paths S3 does not have (a directory: no object under it). */
  missing: string[]
}

/** The lowest level the default logger prints (`'silent'`: nothing). */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent'

/** A `'progress'` event. */
export interface SyncProgress {
  phase: 'download' | 'upload' | 'cleanup' | 'restore'
  /** Files finished (successfully or not) of `total`. */
  current: number
  /**
   * Files the phase handles, as known so far: a pull starts downloading
   * before its listing ends, so `total` may grow while it runs (and
   * `current` may reach it early). `percentage` never goes down, and is
   * 100 only once the total is final.
   */
  total: number
  /** 0–100, by files (as upstream); monotonic. */
  percentage: number
  /** The file that just finished; absent on the 0% event and on in-flight byte updates. */
  currentFile?: string
  /** Beyond upstream: bytes moved in this phase so far (0 for cleanup). Always set on events this package emits. */
  bytes?: number
  /** Beyond upstream: bytes the phase moves in all; the 100% event has `bytes === totalBytes`. Always set on events this package emits. */
  totalBytes?: number
}

/** The events an `S3WorkspaceSync` emits. */
export interface S3WorkspaceSyncEvents {
  /**
   * A 0% event when a phase starts, then about 20 by files finished, the
   * last at 100%; while a large file moves, one every 8 MiB or 250 ms,
   * whichever comes first.
   */
  progress: [progress: SyncProgress]
  /** Beyond upstream: `watch()` applied a batch of other writers' changes. */
  'remote-change': [change: RemoteChange]
  /** Beyond upstream: `watch()` lost the server (emitted only when someone listens; once an outage). */
  error: [error: Error]
}

/**
 * Syncs an S3 prefix with a local workspace directory: `pull()` restores it,
 * `push()` persists what changed. Emits `'progress'`.
 */
export declare class S3WorkspaceSync extends EventEmitter {
  constructor(options: S3WorkspaceSyncOptions)
  /**
   * Download from S3 to local; S3 is the source of truth. Rejects with an
   * `S3OperationError` when nothing could be synced (a failed listing);
   * single files that fail are in `errors`.
   */
  pull(options?: OperationOptions): Promise<PullResult>
  /**
   * Upload local changes to S3. Resolves `{ success: false, errors }` when it
   * fails (as upstream); rejects only when aborted (`AbortError`) or closed
   * (`CLOSED`).
   */
  push(options?: OperationOptions): Promise<PushResult>
  /** Start a pull in the background; never throws. Returns a handle (upstream returned nothing). */
  startBackgroundPull(options?: OperationOptions): BackgroundPull
  /**
   * Resolves when the background pull has finished (at once when none ran).
   * Typed as upstream's; it resolves to the pull's result all the same
   * (`startBackgroundPull().done` gives it typed).
   */
  waitForPull(): Promise<void>
  /** Resolves when the `priorityPrefix` files have arrived; never hangs. */
  waitForPriorityPull(): Promise<void>
  /**
   * Beyond upstream: resolves when each path (a workspace-relative file, or
   * a directory as `dir/`) is current on disk by the pull rules (a local
   * change is kept, as a pull keeps it). While a pull or background pull
   * runs, the paths jump its queue, listed on their own if its listing has
   * not reached them, and no file is downloaded twice; with none running,
   * this is a pull of just those paths (one round trip of listings, a GET per
   * changed file). Rejects with the first failure when a file under them
   * failed to download; aborting `signal` stops the wait, not the pull.
   */
  ensure(paths: string | string[], options?: { signal?: AbortSignal }): Promise<EnsureResult>
  /**
   * Beyond upstream, on a bucket with versioning enabled (else rejects with
   * `VERSIONING_REQUIRED`): the prefix's checkpoints, newest first (`limit`
   * 20 by default; `before`: an id, or a time, to page back).
   */
  listCheckpoints(options?: { limit?: number; before?: string | Date }): Promise<Checkpoint[]>
  /**
   * Beyond upstream: makes S3 and the workspace hold a checkpoint's state
   * again (all paths, or only `paths`: files and directories). Old versions
   * are copied server-side to be current (history kept: the restore is a
   * checkpoint too, and restoring the one before undoes it); a path another
   * agent changed since this instance synced it is a conflict, left alone;
   * local work not pushed is kept under conflict names. Deleting more than
   * `maxDeletePercent` of the files rejects with `MASS_DELETE`.
   */
  restore(target: CheckpointTarget, options?: { paths?: string[]; dryRun?: boolean; signal?: AbortSignal }): Promise<RestoreResult>
  /** Beyond upstream: what changed from `from` to `to` (the local workspace when omitted). */
  diff(from: CheckpointTarget, to?: CheckpointTarget): Promise<DiffResult>
  isPullComplete(): boolean
  getWorkspacePath(): string
  /**
   * Beyond upstream: pulls, pushes what was pending at once, then pushes
   * each change `debounceMs` after it happens (five times that after the
   * first while changes keep coming; file-system notifications, with a
   * periodic rescan), never two pushes at once; `stop()` resolves after a
   * final push. An agent that crashes loses at most the debounce window of
   * work (five windows if it never paused for one).
   */
  watch(options?: WatchOptions): Promise<Watcher>
  /**
   * Beyond upstream: releases the instance. Waits for running operations,
   * or cancels them with `abort: true` (they reject with code `'CLOSED'`); then lets go of the engine, its S3
   * client and callbacks. Later calls reject with code `'CLOSED'`.
   */
  close(options?: { abort?: boolean }): Promise<void>
  /** `await using sync = new S3WorkspaceSync(…)` closes it (waiting for running work). */
  [Symbol.asyncDispose](): Promise<void>
  // The events this package emits are typed (a listener's parameters are
  // inferred); as upstream's class is an `EventEmitter`, any other event
  // name is accepted too.
  on<K extends keyof S3WorkspaceSyncEvents>(event: K, listener: (...args: S3WorkspaceSyncEvents[K]) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
  once<K extends keyof S3WorkspaceSyncEvents>(event: K, listener: (...args: S3WorkspaceSyncEvents[K]) => void): this
  once(event: string | symbol, listener: (...args: any[]) => void): this
  off<K extends keyof S3WorkspaceSyncEvents>(event: K, listener: (...args: S3WorkspaceSyncEvents[K]) => void): this
  off(event: string | symbol, listener: (...args: any[]) => void): this
  addListener<K extends keyof S3WorkspaceSyncEvents>(event: K, listener: (...args: S3WorkspaceSyncEvents[K]) => void): this
  addListener(event: string | symbol, listener: (...args: any[]) => void): this
  removeListener<K extends keyof S3WorkspaceSyncEvents>(event: K, listener: (...args: S3WorkspaceSyncEvents[K]) => void): this
  removeListener(event: string | symbol, listener: (...args: any[]) => void): this
  prependListener<K extends keyof S3WorkspaceSyncEvents>(event: K, listener: (...args: S3WorkspaceSyncEvents[K]) => void): this
  prependListener(event: string | symbol, listener: (...args: any[]) => void): this
  emit<K extends keyof S3WorkspaceSyncEvents>(event: K, ...args: S3WorkspaceSyncEvents[K]): boolean
  emit(event: string | symbol, ...args: any[]): boolean
}

/** The base class of every error this package throws. */
export declare class SyncError extends Error {
  readonly code: SyncErrorCode | (string & {})
  readonly cause?: unknown
  /** S3 failures: S3's error code (`'NoSuchBucket'`) or `'NetworkError'`, `'Timeout'`, `'CredentialsError'`, … */
  s3Code?: string
  /** S3 failures: the HTTP status of S3's answer, when one came. */
  statusCode?: number
  /** S3 failures: whether trying again later may succeed. */
  retryable?: boolean
  constructor(message: string, code: string, cause?: unknown)
}

/** What an aborted `pull()`/`push()` rejects with (`name === 'AbortError'`, `code === 'ABORT_ERR'`, `cause`: the signal's reason). */
export declare class AbortError extends SyncError {
  constructor(reason?: unknown)
}

/** Thrown by `validateStoragePath` (`code === 'PATH_VALIDATION_ERROR'`). */
export declare class PathValidationError extends SyncError {
  constructor(message: string, cause?: unknown)
}

/**
 * An S3 request failed for the operation as a whole (`code ===
 * 'S3_OPERATION_ERROR'`); `s3Code`, `statusCode`, `retryable` say how, and
 * `cause` has the AWS SDK exception's shape (`name`, `$metadata.httpStatusCode`).
 */
export declare class S3OperationError extends SyncError {
  constructor(message: string, cause?: unknown)
}

/** gitignore-style rules, as a sync applies them: built-in defaults, extra patterns, then `.syncignore`. */
export declare class SyncIgnoreFilter {
  /** Built-in rules plus `additionalPatterns`; patterns the matcher cannot take are skipped with a warning. */
  constructor(logger: SyncLogger, additionalPatterns?: string[])
  /** Adds the rules of `<workspaceDir>/.syncignore`, if there is one (a regular file up to 1 MiB). */
  loadFromWorkspace(workspaceDir: string): void
  /** Whether a workspace-relative path is ignored; a path ending in `/` is a directory. */
  isIgnored(relativePath: string): boolean
  /** `paths` without the ignored ones. */
  filter(paths: string[]): string[]
  getInfo(): { defaultPatternsCount: number; customPatternsLoaded: boolean }
}

/** Console logger with upstream's format; prints records at `level` and above (default `'info'`). */
export declare function createDefaultLogger(level?: LogLevel): SyncLogger
/** The Content-Type an upload of `filename` gets: upstream's table, then a reviewed list, else `application/octet-stream`. */
export declare function guessContentType(filename: string): string
/** Throws `PathValidationError` unless `path` is a safe storage path (upstream's rules). */
export declare function validateStoragePath(path: string): void
/** Lowercase hex SHA-256 of a file (as upstream); rejects as `fs` does for a missing path. */
export declare function calculateFileHash(filePath: string): Promise<string>
/**
 * Beyond upstream: the content hash the engine knows a file by (its MD5
 * below 8 MiB, else the S3 multipart form over 8 MiB parts: the ETag of the
 * object this package uploads), computed off the JS thread.
 */
export declare function calculateContentHash(filePath: string): Promise<string>
