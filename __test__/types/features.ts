// The API beyond upstream, type-checked under --strict: cancellation,
// close/`await using`, background handles, structured errors, results.
import { S3WorkspaceSync, SyncError, AbortError, createDefaultLogger } from '@moca/s3-workspace-sync'
import type { PullResult, PushResult, SyncErrorCode, SyncErrorDetail, BackgroundPull, SyncWarning, SyncWarningCode, Checkpoint, CheckpointTarget, DiffResult, RestoreResult } from '@moca/s3-workspace-sync'

export async function lambdaHandler(deadlineMs: number): Promise<number> {
  await using sync = new S3WorkspaceSync({ bucket: 'b', prefix: 'p/', workspaceDir: '/tmp/ws', logLevel: 'warn' })
  const handle: BackgroundPull = sync.startBackgroundPull({ signal: AbortSignal.timeout(deadlineMs) })
  await handle.priorityDone
  const pulled: PullResult = await handle.done
  const count: number = (pulled.downloadedFiles ?? 0) + (pulled.transferredFiles ?? 0) + (pulled.bytesTransferred ?? 0)
  sync.on('progress', (p) => console.log(p.phase, p.percentage))
  try {
    const pushed: PushResult = await sync.push({ signal: AbortSignal.timeout(deadlineMs) })
    const details: SyncErrorDetail[] = pushed.errorDetails ?? []
    for (const d of details) if (d.retryable) console.log(d.path, d.s3Code, d.statusCode)
    return count + (pushed.uploadedFiles ?? 0)
  } catch (e) {
    if (e instanceof AbortError) return -1
    if (e instanceof SyncError) {
      const code: SyncErrorCode | (string & {}) = e.code
      console.log(code, e.s3Code, e.statusCode, e.retryable)
    }
    throw e
  } finally {
    await sync.close({ abort: true })
    createDefaultLogger('silent').info('done')
  }
}

// Conflict copies, warnings and restoring local deletions.
export async function afterARestart(sync: S3WorkspaceSync): Promise<string[]> {
  const pulled = await sync.pull({ restoreDeleted: true })
  const copies: string[] = (pulled.conflictCopies ?? []).map((c) => `${c.path} -> ${c.copy}`)
  const warnings: SyncWarning[] = pulled.warnings ?? []
  for (const w of warnings) {
    const code: SyncWarningCode = w.code
    if (code === 'BASE_DAMAGED' || code === 'COPY_IGNORED') console.warn(w.path, w.message)
  }
  const inUse: SyncErrorCode = 'FILE_IN_USE'
  return [...copies, inUse]
}


// A live shared workspace: two-way watch, its events, a notification hook.
export async function liveWorkspace(sync: S3WorkspaceSync, onQueueMessage: (f: () => void) => void): Promise<PushResult> {
  const seen: string[] = []
  sync.on('remote-change', (c) => seen.push(...c.paths, ...c.deleted, ...c.conflicts))
  sync.on('error', (e) => console.warn(e.message))
  const watcher = await sync.watch({ direction: 'both', pollMs: 1000, fullCheckMs: 120_000, debounceMs: 500 })
  onQueueMessage(() => watcher.notify())
  return watcher.stop()
}

// Checkpoints and undo: an agent framework's "undo the last turn".
export async function undoLastTurn(sync: S3WorkspaceSync): Promise<string | undefined> {
  const before = await sync.push()
  const list: Checkpoint[] = await sync.listCheckpoints({ limit: 5, before: new Date() })
  const target: CheckpointTarget = before.checkpoint ? { checkpoint: before.checkpoint } : { at: list[0]?.time ?? new Date() }
  const changed: DiffResult = await sync.diff(target)
  console.log(changed.added.length + changed.modified.length + changed.deleted.length, list[0]?.files)
  const restored: RestoreResult = await sync.restore(target, { paths: ['src/'], dryRun: false, signal: AbortSignal.timeout(60_000) })
  const code: SyncErrorCode = 'VERSIONING_REQUIRED'
  console.log(restored.plan?.restore, restored.conflictCopies?.[0]?.copy, code)
  return restored.checkpoint
}
