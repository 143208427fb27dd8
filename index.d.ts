import { EventEmitter } from 'node:events'

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
   * Pre-configured AWS SDK v3 S3Client: its region, endpoint, path style and
   * credential provider are used. Any other object with `send()` (a stand-in
   * in tests, or a client with a stubbed `send`) is driven through `send()`.
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
  /** gitignore-style patterns applied after the built-in defaults. */
  ignorePatterns?: string[]
  /** Content-Type for an uploaded file, called with its base name. */
  contentTypeResolver?: (filename: string) => string
  /** Workspace-relative directory downloaded first during `pull()`. */
  priorityPrefix?: string
  /** Beyond upstream: endpoint URL of an S3-compatible server. */
  endpoint?: string
  /** Beyond upstream: path-style addressing (default: on with a custom endpoint). */
  forcePathStyle?: boolean
  /** Beyond upstream: a response or download body silent this long is cut and retried (default 30000). */
  stallTimeoutMs?: number
  /**
   * Beyond upstream: what happens when a file changed both locally and on S3
   * since the last sync. `'keep-both'` (default): a pull downloads S3's
   * version and keeps the local one as `name.conflict-<UTC time>.ext`; a push
   * leaves the newer object alone and reports the path in `conflicts`.
   * `'overwrite'`: upstream's last writer wins (never touching a file
   * written after the pull was called).
   */
  conflictPolicy?: 'keep-both' | 'overwrite'
  /**
   * Beyond upstream: a pull or push deletes nothing when it would delete
   * more than this percentage of the files (and more than 10 of them, or all
   * of at least 2); the result says why. Default 50; 100 turns the guard off.
   */
  maxDeletePercent?: number
  /** Beyond upstream: how long a call waits for another instance syncing the same directory (default 300000). */
  lockTimeoutMs?: number
  /**
   * Beyond upstream: where the sync base and the lock live (default
   * `<workspaceDir>/.s3ws`). Instances sharing a directory must share it.
   */
  stateDir?: string
}

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
  duration?: number
  /**
   * Beyond upstream: paths changed both here and on S3 since the last sync.
   * After a pull both versions are kept (the local one under a conflict
   * name); after a push the object was left as it is (also in `errors`).
   */
  conflicts?: string[]
  /** Beyond upstream: files actually downloaded (pull) or uploaded (push). */
  transferredFiles?: number
  /** Beyond upstream: files already in sync, not transferred. */
  unchangedFiles?: number
  /** Beyond upstream: bytes of the transferred files. */
  bytesTransferred?: number
  /**
   * Beyond upstream: local entries `push()` could not sync. `code`:
   * `'SYMLINK'` (links are never followed; not a failure), `'SPECIAL_FILE'`
   * (FIFO, socket, device), `'UNSAFE_NAME'` (a name that cannot be an S3
   * key), `'UNREADABLE'`. All but links are in `errors` too.
   */
  skipped?: Array<{ path: string; code: 'SYMLINK' | 'SPECIAL_FILE' | 'UNSAFE_NAME' | 'UNREADABLE'; reason: string }>
}

export interface SyncProgress {
  phase: 'download' | 'upload' | 'cleanup'
  current: number
  total: number
  percentage: number
  currentFile?: string
}

export declare class S3WorkspaceSync extends EventEmitter {
  constructor(options: S3WorkspaceSyncOptions)
  /** Download from S3 to local; S3 is the source of truth. */
  pull(): Promise<SyncResult>
  /** Upload local changes to S3. */
  push(): Promise<SyncResult>
  /** Start a pull in the background; never throws. */
  startBackgroundPull(): void
  /** Resolves when the background pull has finished. */
  waitForPull(): Promise<void>
  /** Resolves when the `priorityPrefix` files have arrived; never hangs. */
  waitForPriorityPull(): Promise<void>
  isPullComplete(): boolean
  getWorkspacePath(): string
  on(event: 'progress', listener: (progress: SyncProgress) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
  once(event: 'progress', listener: (progress: SyncProgress) => void): this
  once(event: string | symbol, listener: (...args: any[]) => void): this
  off(event: 'progress', listener: (progress: SyncProgress) => void): this
  off(event: string | symbol, listener: (...args: any[]) => void): this
}

export declare class SyncError extends Error {
  readonly code: string
  readonly cause?: unknown
  constructor(message: string, code: string, cause?: unknown)
}

export declare class PathValidationError extends SyncError {
  constructor(message: string, cause?: unknown)
}

export declare class S3OperationError extends SyncError {
  constructor(message: string, cause?: unknown)
}

export declare class SyncIgnoreFilter {
  constructor(logger: SyncLogger, additionalPatterns?: string[])
  loadFromWorkspace(workspaceDir: string): void
  isIgnored(relativePath: string): boolean
  filter(paths: string[]): string[]
  getInfo(): { defaultPatternsCount: number; customPatternsLoaded: boolean }
}

export declare function createDefaultLogger(): SyncLogger
export declare function guessContentType(filename: string): string
export declare function validateStoragePath(path: string): void
export declare function calculateFileHash(filePath: string): Promise<string>
