// Code written against the upstream package's types and README, unchanged:
// it must compile under `tsc --strict` with this package's types (a
// drop-in replacement). The four patterns first, then every TypeScript
// example of the upstream README.
import { S3WorkspaceSync, guessContentType, validateStoragePath, SyncIgnoreFilter, calculateFileHash } from '@moca/s3-workspace-sync'
import type { SyncResult, SyncProgress } from '@moca/s3-workspace-sync'
import pino from 'pino'

// 1. Any event name, as on an EventEmitter.
export function listen(sync: S3WorkspaceSync): void {
  sync.on('error', (err: Error) => console.error(err))
  sync.once('done', () => {})
  sync.off('error', () => {})
}

// 2. A progress event in upstream's shape (no byte counts).
export function replay(sync: S3WorkspaceSync): boolean {
  const progress: SyncProgress = { phase: 'download', current: 1, total: 2, percentage: 50 }
  return sync.emit('progress', progress) && sync.emit('progress', { phase: 'upload', current: 2, total: 2, percentage: 100, currentFile: 'a.txt' })
}

// 3. A subclass overriding pull() and push() with upstream's return type,
// and building a SyncResult itself.
export class LoggedSync extends S3WorkspaceSync {
  async pull(): Promise<SyncResult> {
    const result = await super.pull()
    console.log(`pulled ${result.downloadedFiles ?? 0} files`)
    return result
  }

  async push(): Promise<SyncResult> {
    if (this.getWorkspacePath() === '') return { success: true, uploadedFiles: 0 }
    return super.push()
  }

  // 4. waitForPull() as upstream typed it.
  async waitForPull(): Promise<void> {
    await super.waitForPull()
  }
}

export async function waits(sync: S3WorkspaceSync): Promise<void> {
  const waiting: Promise<void> = sync.waitForPull()
  await waiting
  const started: void | unknown = sync.startBackgroundPull()
  console.log(started)
}

// The upstream README: Quick Start.
export async function quickStart(): Promise<void> {
  const sync = new S3WorkspaceSync({
    bucket: 'my-app-storage',
    prefix: 'users/user123/workspace/',
    workspaceDir: '/tmp/ws',
  })

  // Download everything from S3
  await sync.pull()

  // ... your application modifies files ...

  // Upload only changed files
  const result = await sync.push()
  console.log(`Uploaded ${result.uploadedFiles} files in ${result.duration}ms`)
}

// Background Pull (Non-Blocking).
export async function background(bucket: string, prefix: string, workspaceDir: string): Promise<void> {
  const sync = new S3WorkspaceSync({ bucket, prefix, workspaceDir })

  // Start download in background — does not block
  sync.startBackgroundPull()

  // ... do other setup work ...

  // Wait only when files are actually needed
  await sync.waitForPull()
}

// Events.
export function events(sync: S3WorkspaceSync): void {
  sync.on('progress', (progress: SyncProgress) => {
    console.log(`${progress.phase}: ${progress.percentage}% (${progress.current}/${progress.total})`)
  })
}

// Utilities.
export function utilities(): void {
  guessContentType('photo.png') // "image/png"
  guessContentType('app.ts') // "application/typescript; charset=utf-8"

  validateStoragePath('valid/path') // OK
  validateStoragePath('../etc/passwd') // throws PathValidationError
  void SyncIgnoreFilter
  void calculateFileHash
}

// Custom Logger.
export function customLogger(): S3WorkspaceSync {
  const logger = pino({ level: 'info' })

  const sync = new S3WorkspaceSync({
    bucket: 'my-bucket',
    prefix: 'data/',
    workspaceDir: '/tmp/ws',
    logger,
  })
  return sync
}
