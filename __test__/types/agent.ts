// An agent written against the upstream README: it must compile unchanged
// under `tsc --strict` with this package's types.
import { EventEmitter } from 'node:events'
import { S3Client } from '@aws-sdk/client-s3'
import {
  S3WorkspaceSync,
  SyncIgnoreFilter,
  guessContentType,
  validateStoragePath,
  calculateFileHash,
  createDefaultLogger,
  SyncError,
  PathValidationError,
  S3OperationError,
} from '@moca/s3-workspace-sync'
import type { S3WorkspaceSyncOptions, SyncResult, SyncProgress, SyncLogger, FileInfo } from '@moca/s3-workspace-sync'

const logger: SyncLogger = createDefaultLogger()
const options: S3WorkspaceSyncOptions = {
  bucket: 'my-app-storage',
  prefix: 'users/user123/workspace/',
  workspaceDir: '/tmp/ws',
  region: 'us-east-1',
  s3Client: new S3Client({ region: 'us-east-1' }),
  downloadConcurrency: 50,
  uploadConcurrency: 10,
  logger,
  ignorePatterns: ['*.pem'],
  contentTypeResolver: (filename: string) => guessContentType(filename),
  priorityPrefix: 'context/',
}

export async function agentTurn(): Promise<number> {
  const sync = new S3WorkspaceSync(options)
  const emitter: EventEmitter = sync
  emitter.listenerCount('progress')
  sync.on('progress', (progress: SyncProgress) => {
    console.log(`${progress.phase}: ${progress.percentage}% (${progress.current}/${progress.total}) ${progress.currentFile ?? ''}`)
  })
  sync.startBackgroundPull()
  await sync.waitForPriorityPull()
  await sync.waitForPull()
  const done: boolean = sync.isPullComplete()
  const dir: string = sync.getWorkspacePath()
  const pulled: SyncResult = await sync.pull()
  const result: SyncResult = await sync.push()
  console.log(`Uploaded ${result.uploadedFiles} files in ${result.duration}ms`, done, dir, pulled.downloadedFiles, result.errors?.join())

  const filter = new SyncIgnoreFilter(logger, ['*.tmp'])
  filter.loadFromWorkspace('/tmp/ws')
  const ignored: boolean = filter.isIgnored('node_modules/x')
  const kept: string[] = filter.filter(['a', 'b'])
  const info: { defaultPatternsCount: number; customPatternsLoaded: boolean } = filter.getInfo()
  console.log(ignored, kept, info)

  const hash: string = await calculateFileHash('/tmp/ws/a.txt')
  const file: FileInfo = { path: 'a.txt', size: 1, mtime: Date.now(), hash }
  console.log(file)

  try {
    validateStoragePath('../etc/passwd')
  } catch (e) {
    if (e instanceof PathValidationError) console.log(e.code, e.message)
    if (e instanceof S3OperationError || e instanceof SyncError) console.log(e.code, e.cause)
  }
  const custom = new SyncError('boom', 'CUSTOM', new Error('cause'))
  return custom.code.length
}
