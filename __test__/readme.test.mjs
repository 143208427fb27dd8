// The README cannot drift from the code: its container entrypoint runs as
// written (a stand-in agent, SIGTERM, the final push found on S3), its
// TypeScript examples marked `<!-- test: run -->` run against the test
// server, and its CLI table names every flag and environment variable.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { CreateBucketCommand } from '@aws-sdk/client-s3'
import ts from 'typescript'
import { OPTIONS } from '../lib/cli.js'
import { admin, endpoint, newBucket, seed, getObject, listKeys, tmpDir } from './helpers.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8')

/** The code blocks that follow a `<!-- test: KIND -->` marker. */
function blocks(kind) {
  const re = new RegExp(`<!-- test: ${kind} -->\\n\`\`\`\\w*\\n([\\s\\S]*?)\`\`\``, 'g')
  return [...README.matchAll(re)].map((m) => m[1])
}

const run = (cmd, args, opts) =>
  new Promise((resolve) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('exit', (status, signal) => resolve({ status, signal, stdout, stderr }))
    opts?.onStart?.(child)
  })

test('the container entrypoint, as written in the README: restores, runs the agent, and on SIGTERM persists its last work', async () => {
  const [script] = blocks('entrypoint')
  assert.ok(script?.startsWith('#!/bin/sh'), 'no entrypoint block in the README')
  const bucket = await newBucket()
  await seed(bucket, 'users/u1/workspace/', { 'notes.md': 'from an earlier session\n' })
  // The app's directory: the installed program, and the agent on PATH.
  const app = tmpDir('app')
  mkdirSync(path.join(app, 'node_modules', '.bin'), { recursive: true })
  symlinkSync(path.join(ROOT, 'bin', 's3-workspace-sync.js'), path.join(app, 'node_modules', '.bin', 's3-workspace-sync'))
  const binDir = path.join(app, 'agent-bin')
  mkdirSync(binDir)
  // A stand-in agent: reads what was restored, works, and on SIGTERM writes
  // its last words and exits (as an agent finishing its turn would).
  writeFileSync(
    path.join(binDir, 'run-agent'),
    `#!/bin/sh
trap 'echo "stopped cleanly" >> "$1/out/result.md"; exit 0' TERM
mkdir -p "$1/out"
cat "$1/notes.md" > "$1/out/result.md"
while :; do sleep 0.1; done
`,
  )
  chmodSync(path.join(binDir, 'run-agent'), 0o755)
  writeFileSync(path.join(app, 'entrypoint.sh'), script)
  const workspace = path.join(tmpDir('container'), 'workspace') // does not exist yet, as in a fresh container
  const env = { ...process.env, PATH: `${binDir}:${process.env.PATH}`, BUCKET: bucket, USER_ID: 'u1', WORKSPACE: workspace, AWS_ENDPOINT_URL_S3: endpoint }
  const started = Date.now()
  const result = await run('sh', ['entrypoint.sh'], {
    cwd: app,
    env,
    onStart: async (child) => {
      // The agent is working once its output exists; then the container is stopped.
      const output = path.join(workspace, 'out', 'result.md')
      while (!existsSync(output) && Date.now() - started < 30_000) await new Promise((r) => setTimeout(r, 50))
      await new Promise((r) => setTimeout(r, 500))
      child.kill('SIGTERM')
    },
  })
  assert.equal(result.status, 0, result.stderr)
  assert.ok(Date.now() - started < 30_000)
  assert.equal((await getObject(bucket, 'users/u1/workspace/out/result.md')).toString(), 'from an earlier session\nstopped cleanly\n')
  assert.match(result.stdout, /Pull would:/)
})

test('the TypeScript examples in the README run as written', async () => {
  const snippets = blocks('run')
  assert.ok(snippets.length >= 3, `${snippets.length} runnable examples found`)
  // They use the bucket name and directory of the README; the directory is
  // swapped for a temp one (never a real /tmp/ws).
  await admin.send(new CreateBucketCommand({ Bucket: 'my-app-storage' })).catch((e) => {
    if (e.name !== 'BucketAlreadyOwnedByYou' && e.name !== 'BucketAlreadyExists') throw e
  })
  const project = tmpDir('readme')
  mkdirSync(path.join(project, 'node_modules', '@moca'), { recursive: true })
  symlinkSync(ROOT, path.join(project, 'node_modules', '@moca', 's3-workspace-sync'), 'dir')
  const workspace = path.join(tmpDir('readme-ws'), 'ws')
  for (const [i, snippet] of snippets.entries()) {
    const code = snippet.replaceAll('/tmp/ws', workspace)
    const prelude = [
      code.includes("from '@moca/s3-workspace-sync'") ? '' : "import { S3WorkspaceSync } from '@moca/s3-workspace-sync'",
      // What the examples take from around them: a Lambda context, and the
      // instance of the first example.
      'const context = { getRemainingTimeInMillis: () => 60_000 }',
      /new S3WorkspaceSync\(\{/.test(code)
        ? ''
        : `const sync = new S3WorkspaceSync({ bucket: 'my-app-storage', prefix: 'users/user123/workspace/', workspaceDir: ${JSON.stringify(workspace)} })`,
    ].join('\n')
    const { outputText } = ts.transpileModule(`${code}\n`, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } })
    // The imports of the example first, then the prelude, then the rest.
    const lines = outputText.split('\n')
    const imports = lines.filter((l) => l.startsWith('import '))
    const body = lines.filter((l) => !l.startsWith('import '))
    const file = path.join(project, `example${i}.mjs`)
    writeFileSync(file, [...imports, prelude, ...body].join('\n'))
    const r = await run(process.execPath, [file], { cwd: project, env: { ...process.env, AWS_ENDPOINT_URL_S3: endpoint } })
    assert.equal(r.status, 0, `example ${i}:\n${code}\n${r.stderr}`)
  }
  assert.ok((await listKeys('my-app-storage', 'users/user123/workspace/')).length >= 0)
})

test('the README lists every CLI flag and environment variable', () => {
  const table = README.slice(README.indexOf('## Command line'), README.indexOf('## API'))
  for (const [name, o] of Object.entries(OPTIONS)) {
    assert.ok(table.includes(`\`--${name}`), `--${name} is not in the README's CLI section`)
    if (o.env) assert.ok(table.includes(`\`${o.env}\``), `${o.env} is not in the README's CLI section`)
  }
})
