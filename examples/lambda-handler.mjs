// An agent on AWS Lambda: restore the workspace, work, persist what changed,
// all within the invocation's deadline.
import { S3WorkspaceSync } from '@moca/s3-workspace-sync'

export async function handler(event, context) {
  // Leave 5 s before the deadline for the push to finish or stop cleanly.
  const deadline = () => AbortSignal.timeout(Math.max(1000, context.getRemainingTimeInMillis() - 5000))
  const sync = new S3WorkspaceSync({
    bucket: process.env.WORKSPACE_BUCKET,
    prefix: `users/${event.userId}/workspace/`,
    workspaceDir: '/tmp/workspace',
    priorityPrefix: '.agents/skills/',
  })
  try {
    const pull = sync.startBackgroundPull({ signal: deadline() })
    await pull.priorityDone // skills first; the rest keeps arriving
    const answer = await runAgent(event, '/tmp/workspace')
    const pulled = await pull.done
    if (!pulled.success) console.warn('pull:', pulled.errors)
    const pushed = await sync.push({ signal: deadline() })
    if (!pushed.success) console.warn('push:', pushed.errorDetails)
    return answer
  } finally {
    // (TypeScript 5.2+: `await using sync = new S3WorkspaceSync(…)` does this.)
    await sync.close()
  }
}

async function runAgent(event, dir) {
  return { ok: true, dir, input: event.input }
}
