// An agent in a container (Fargate, ECS, Kubernetes): pull at start, push
// every few minutes, and push once more on SIGTERM within the grace period
// (Fargate's default is 30 s).
import { S3WorkspaceSync } from '@moca/s3-workspace-sync'

const sync = new S3WorkspaceSync({
  bucket: process.env.WORKSPACE_BUCKET,
  prefix: process.env.WORKSPACE_PREFIX,
  workspaceDir: '/workspace',
  logLevel: 'info',
})
sync.on('progress', (p) => {
  if (p.totalBytes > 64 * 1024 * 1024) console.log(`${p.phase} ${((100 * p.bytes) / p.totalBytes).toFixed(0)}%`)
})

await sync.pull()
const timer = setInterval(() => void sync.push(), 5 * 60 * 1000)

process.once('SIGTERM', async () => {
  clearInterval(timer)
  // Stop a running push after 20 s at the latest; what finished is kept.
  const result = await sync.push({ signal: AbortSignal.timeout(20_000) }).catch((e) => ({ success: false, errors: [e.message] }))
  console.log('final push', result.success ? 'ok' : result.errors)
  await sync.close({ abort: true })
  process.exit(result.success ? 0 : 1)
})

// ... start the agent here; it reads and writes files under /workspace ...
