// The package installed from its tarballs (see pack-helpers.mjs), used
// against the test server from a project outside the repository: pull →
// edit → push through `require` and through `import`, and the installed CLI.
// What the tarballs hold: pack.test.mjs (no server needed).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { PKG, skip, cleanEnv, run, installTarballs } from './pack-helpers.mjs'
import { endpoint, newBucket, seed, listKeys, getObject, headObject, randomBuffer, md5 } from './helpers.mjs'

let work, app

before(() => {
  if (skip) return
  ;({ work, app } = installTarballs())
  writeFileSync(path.join(app, 'smoke.cjs'), smokeScript('require'))
  writeFileSync(path.join(app, 'smoke.mjs'), smokeScript('import'))
})

after(() => {
  if (work) rmSync(work, { recursive: true, force: true })
})

/** A script for the temp project: pull, edit, push, report as JSON. */
function smokeScript(mode) {
  const load =
    mode === 'require'
      ? "const { S3WorkspaceSync } = require('@moca/s3-workspace-sync')\nconst fs = require('node:fs')\nconst path = require('node:path')\nconst resolved = require.resolve('@moca/s3-workspace-sync')"
      : "import fs from 'node:fs'\nimport path from 'node:path'\nimport { createRequire } from 'node:module'\nimport def, { S3WorkspaceSync } from '@moca/s3-workspace-sync'\nif (def.S3WorkspaceSync !== S3WorkspaceSync) throw new Error('default export differs')\nconst resolved = createRequire(import.meta.url).resolve('@moca/s3-workspace-sync')"
  return `${load}
const [bucket, prefix, workspaceDir] = process.argv.slice(2)
const logger = { debug() {}, info() {}, warn: (...a) => console.error(...a), error: (...a) => console.error(...a) }
const main = async () => {
  const sync = new S3WorkspaceSync({ bucket, prefix, workspaceDir, endpoint: process.env.S3WS_TEST_ENDPOINT, logger })
  const progress = []
  sync.on('progress', (p) => progress.push(p))
  const pull = await sync.pull()
  const pulled = fs.readFileSync(path.join(workspaceDir, 'notes', 'todo.md'), 'utf8')
  fs.appendFileSync(path.join(workspaceDir, 'notes', 'todo.md'), '- [x] packaged\\n')
  fs.writeFileSync(path.join(workspaceDir, 'new.txt'), 'written via ${mode}\\n')
  fs.rmSync(path.join(workspaceDir, 'old.txt'))
  const push = await sync.push()
  await new Promise((r) => setImmediate(r))
  console.log(JSON.stringify({ resolved, pull, push, pulled, progress }))
}
main().catch((e) => {
  console.error(e)
  process.exit(1)
})
`
}

async function smoke(mode) {
  const bucket = await newBucket()
  const prefix = `agents/${mode}/`
  const blob = randomBuffer(300 * 1024)
  await seed(bucket, prefix, { 'notes/todo.md': '# todo\n- [ ] ship\n', 'old.txt': 'old\n', 'data/blob.bin': blob })
  const workspaceDir = path.join(work, `ws-${mode}`)
  const script = mode === 'require' ? 'smoke.cjs' : 'smoke.mjs'
  const r = run(process.execPath, [script, bucket, prefix, workspaceDir], app, cleanEnv({ S3WS_TEST_ENDPOINT: endpoint }))
  assert.equal(r.status, 0, r.stdout + r.stderr)
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1))

  // Loaded from the temp project, not from the repository.
  assert.ok(out.resolved.startsWith(path.join(realpathSync.native(app), 'node_modules')), out.resolved)
  assert.equal(md5(readFileSync(path.join(workspaceDir, 'data', 'blob.bin'))), md5(blob))
  assert.equal(out.pulled, '# todo\n- [ ] ship\n')
  assert.equal(out.pull.success, true)
  assert.equal(out.pull.downloadedFiles, 3)
  assert.equal(out.push.success, true, JSON.stringify(out.push))
  assert.equal(out.push.uploadedFiles, 2)
  assert.equal(out.push.deletedFiles, 1)

  const phase = (name) => out.progress.filter((p) => p.phase === name)
  for (const [name, total] of [
    ['download', 3],
    ['upload', 2],
  ]) {
    const events = phase(name)
    assert.ok(events.length > 0, `no ${name} progress`)
    // A pull's total may grow while its listing runs; it ends at every file.
    assert.ok(events[0].total > 0 && events[0].total <= total)
    assert.equal(events.at(-1).total, total)
    assert.equal(events.at(-1).current, total)
    assert.equal(events.at(-1).percentage, 100)
  }

  assert.deepEqual(await listKeys(bucket, prefix), [`${prefix}data/blob.bin`, `${prefix}new.txt`, `${prefix}notes/todo.md`])
  assert.equal((await getObject(bucket, `${prefix}notes/todo.md`)).toString(), '# todo\n- [ ] ship\n- [x] packaged\n')
  assert.equal((await getObject(bucket, `${prefix}new.txt`)).toString(), `written via ${mode}\n`)
}

test('require(): pull → edit → push with progress, from the installed tarballs', { skip }, () => smoke('require'))

test('import: pull → edit → push with progress, from the installed tarballs', { skip }, () => smoke('import'))

/** The installed CLI (node_modules/.bin), run against the test server. */
function cli(args, extraEnv = {}) {
  const bin = path.join(app, 'node_modules', '.bin', process.platform === 'win32' ? 's3-workspace-sync.cmd' : 's3-workspace-sync')
  return run(bin, args, app, cleanEnv({ S3WS_TEST_ENDPOINT: endpoint, ...extraEnv }))
}

test('the installed CLI: pull, status after an edit, push --dry-run changes nothing, push, --json, exit codes', { skip }, async () => {
  const bucket = await newBucket()
  await seed(bucket, 'cli/', { 'a.txt': 'a', 'd/b.txt': 'b', 'gone.txt': 'g' })
  const dir = path.join(work, 'ws-cli')
  const common = ['--bucket', bucket, '--prefix', 'cli/', '--dir', dir, '--endpoint', endpoint]

  const pulled = cli(['pull', ...common, '--json'])
  assert.equal(pulled.status, 0, pulled.stderr)
  const pullResult = JSON.parse(pulled.stdout)
  assert.equal(pullResult.downloadedFiles, 3)
  assert.equal(pulled.stdout.trim().split('\n').length, 1, '--json prints one line')

  writeFileSync(path.join(dir, 'a.txt'), 'a2')
  writeFileSync(path.join(dir, 'new.txt'), 'n')
  rmSync(path.join(dir, 'gone.txt'))
  await new Promise((r) => setTimeout(r, 50))
  const status = cli(['status', ...common, '--json'])
  assert.equal(status.status, 0, status.stderr)
  assert.deepEqual(JSON.parse(status.stdout).push, { download: [], deleteLocal: [], upload: ['a.txt', 'new.txt'], deleteRemote: ['gone.txt'], conflicts: [] })
  const text = cli(['status', ...common])
  assert.match(text.stdout, /Push would:\n {2}upload +a\.txt\n {2}upload +new\.txt\n {2}delete on S3 +gone\.txt/)

  const etag = async () => (await headObject(bucket, 'cli/a.txt')).ETag
  const before = await etag()
  const dry = cli(['push', ...common, '--dry-run'])
  assert.equal(dry.status, 0, dry.stderr)
  assert.match(dry.stdout, /Push \(dry run\) would:/)
  assert.equal(await etag(), before, 'a dry run changes nothing on S3')
  assert.equal(readFileSync(path.join(dir, 'a.txt'), 'utf8'), 'a2')

  const pushed = cli(['push', ...common])
  assert.equal(pushed.status, 0, pushed.stderr)
  assert.match(pushed.stdout, /^Push: 2 uploaded, 1 deleted/m)
  assert.notEqual(await etag(), before)
  assert.deepEqual(await listKeys(bucket, 'cli/'), ['cli/a.txt', 'cli/d/b.txt', 'cli/new.txt'])

  const missing = cli(['pull', '--bucket', 'no-such-bucket-cli', '--prefix', 'p/', '--dir', path.join(work, 'ws-none'), '--endpoint', endpoint])
  assert.equal(missing.status, 2)
  assert.match(missing.stderr, /s3Code: NoSuchBucket/)
  assert.match(missing.stderr, /statusCode: 404/)
  const missingJson = cli(['pull', '--bucket', 'no-such-bucket-cli', '--prefix', 'p/', '--dir', path.join(work, 'ws-none'), '--endpoint', endpoint, '--json'])
  assert.equal(missingJson.status, 2)
  assert.equal(JSON.parse(missingJson.stdout).error.s3Code, 'NoSuchBucket', '--json prints a result even for a fatal error')
  // status on a directory that does not exist yet: the pull side plans, the push side has nothing to do.
  const fresh = cli(['status', '--bucket', bucket, '--prefix', 'cli/', '--dir', path.join(work, 'ws-not-yet'), '--endpoint', endpoint])
  assert.equal(fresh.status, 0, fresh.stderr)
  assert.match(fresh.stdout, /Pull would:\n {2}download +a\.txt/)
  assert.match(fresh.stdout, /Push would:\n {2}\(nothing: the directory does not exist yet\)/)
  assert.equal(existsSync(path.join(work, 'ws-not-yet')), false)
  assert.equal(cli(['watch', ...common, '--dry-run']).status, 2)
  assert.equal(cli(['pull', ...common, '--concurrency', '0']).status, 2)
  assert.equal(cli(['frobnicate', ...common]).status, 2)
  assert.equal(cli(['pull', '--bucket', bucket]).status, 2)
  const help = cli(['--help'])
  assert.equal(help.status, 0)
  assert.match(help.stdout, /Usage: s3-workspace-sync <command>/)
  assert.equal(cli(['--version']).stdout.trim(), PKG.version)
})

test(
  'the installed CLI draws a live progress line on a terminal (under script(1))',
  { skip: skip || (process.platform !== 'linux' && 'script(1) flags are util-linux') },
  async () => {
    const bucket = await newBucket()
    const files = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`f${i}.bin`, randomBuffer(64 * 1024)]))
    await seed(bucket, 'tty/', files)
    const bin = path.join(app, 'node_modules', '.bin', 's3-workspace-sync')
    const command = [bin, 'pull', '--bucket', bucket, '--prefix', 'tty/', '--dir', path.join(work, 'ws-tty'), '--endpoint', endpoint].map((a) => `'${a}'`).join(' ')
    const r = run('script', ['-qec', command, '/dev/null'], app, cleanEnv())
    assert.equal(r.status, 0, r.stdout + r.stderr)
    // Redrawn in place (carriage return / cursor moves), with percent (by bytes), bytes, files, rate and time.
    // eslint-disable-next-line no-control-regex -- ESC starts the terminal's cursor moves
    assert.match(r.stdout, /\r|\x1b\[/)
    assert.match(r.stdout, /download +100% +1\.9\/1\.9 MiB +30\/30 files +[\d.]+ MiB\/s +\d+s elapsed/)
    assert.match(r.stdout, /Pull: 30 downloaded/)
  },
)

test('the installed CLI: watch pushes changes as they happen and a final push on SIGINT', { skip: skip || (process.platform === 'win32' && 'signals') }, async () => {
  const { spawn } = await import('node:child_process')
  const bucket = await newBucket()
  await seed(bucket, 'w/', { 'a.txt': 'a' })
  const dir = path.join(work, 'ws-watch')
  const bin = path.join(app, 'node_modules', '.bin', 's3-workspace-sync')
  const child = spawn(bin, ['watch', '--bucket', bucket, '--prefix', 'w/', '--dir', dir, '--endpoint', endpoint, '--debounce', '200', '--json'], {
    cwd: app,
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  const until = async (check, ms) => {
    const deadline = Date.now() + ms
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`not within ${ms} ms`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  await until(() => existsSync(path.join(dir, 'a.txt')), 10_000)
  await new Promise((r) => setTimeout(r, 300)) // the watcher is set up after the pull
  writeFileSync(path.join(dir, 'live.txt'), 'pushed while watching')
  await until(async () => (await listKeys(bucket, 'w/')).includes('w/live.txt'), 2_500)
  writeFileSync(path.join(dir, 'at-exit.txt'), 'pushed on SIGINT')
  child.kill('SIGINT')
  const code = await new Promise((r) => child.once('exit', r))
  assert.equal(code, 0)
  assert.equal(JSON.parse(out.trim().split('\n').at(-1)).success, true)
  // watch is live both ways: it made the change journal other watchers read.
  assert.deepEqual(await listKeys(bucket, 'w/'), ['w/.s3ws/changes.json', 'w/a.txt', 'w/at-exit.txt', 'w/live.txt'])
})
