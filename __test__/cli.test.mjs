// The command line as a newcomer meets it (issue "A newcomer's first day"):
// each case checks the flag or message, the exit code, and what reaches S3.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { endpoint, newBucket, seed, getObject, listKeys, tmpDir, withProxy, isList, settle, lacks } from './helpers.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const BIN = path.join(ROOT, 'bin', 's3-workspace-sync.js')
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Runs the CLI; `onStart(child, output)` may signal it. */
function cli(args, { env = {}, onStart, bin = BIN } = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    const out = { stdout: '', stderr: '' }
    child.stdout.on('data', (d) => (out.stdout += d))
    child.stderr.on('data', (d) => (out.stderr += d))
    child.on('exit', (status, signal) => resolve({ status, signal, ...out }))
    onStart?.(child, out)
  })
}
const until = async (check, ms = 15_000) => {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out')
    await sleep(50)
  }
}
const files = (n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`f${i}.txt`, `content ${i}`]))

test(
  '4, 5. watch: pending files go right after the first pull; each push prints a time-stamped line with its errors as it happens (--json: one line a push)',
  { skip: process.platform === 'win32' && 'signals' },
  async () => {
    const bucket = await newBucket()
    await seed(bucket, 'w/', files(3))
    const dir = tmpDir('watch')
    // Synced, then changed before watching starts: pending at start.
    assert.equal((await cli(['pull', '--bucket', bucket, '--prefix', 'w/', '--dir', dir, '--endpoint', endpoint, '--quiet'])).status, 0)
    await settle()
    writeFileSync(path.join(dir, 'f0.txt'), 'edited before watch started')
    const result = await cli(['watch', `s3://${bucket}/w/`, '--dir', dir, '--endpoint', endpoint, '--debounce', '300', '--json'], {
      onStart: async (child, out) => {
        // Not after a 30 s rescan: right after the pull.
        await until(async () => (await getObject(bucket, 'w/f0.txt')).toString() === 'edited before watch started', 5000)
        // A push that fails (a FIFO cannot be uploaded) says so at once.
        spawn('mkfifo', [path.join(dir, 'pipe')])
        await until(() => out.stdout.includes('"SPECIAL_FILE"'), 10_000)
        child.kill('SIGTERM')
      },
    })
    const lines = result.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    assert.ok(lines.length >= 3, result.stdout)
    for (const l of lines) assert.match(l.time, /^\d{4}-\d\d-\d\dT/)
    assert.ok(lines.some((l) => l.uploadedFiles === 1 && l.success))
    assert.ok(lines.some((l) => !l.success && l.errorDetails.some((e) => e.code === 'SPECIAL_FILE')))
    assert.equal(result.status, 1) // the final push still meets the FIFO
    // Text mode: a time-stamped line a push, the error on its own line.
    rmSync(path.join(dir, 'pipe'))
    const text = await cli(['watch', `s3://${bucket}/w/`, '--dir', dir, '--endpoint', endpoint, '--debounce', '200'], {
      onStart: async (child, out) => {
        await until(() => /push: \d+ uploaded/.test(out.stdout), 5000)
        child.kill('SIGINT')
      },
    })
    assert.equal(text.status, 0, text.stderr)
    assert.match(text.stdout, /^\d{4}-\d\d-\d\dT[\d:.]+Z push: 0 uploaded/m)
  },
)

test('6. the deletion guard and the other options as flags and variables; status shows what the guard refuses, and exits 0 when nothing is wrong', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'g/', files(4))
  const dir = tmpDir('guard')
  // Configured by environment alone, as a container is.
  const env = { S3WS_BUCKET: bucket, S3WS_PREFIX: 'g/', S3WS_DIR: dir, S3WS_ENDPOINT: endpoint }
  const pulled = await cli(['pull', '--json'], { env })
  assert.equal(pulled.status, 0, pulled.stderr)
  assert.equal(JSON.parse(pulled.stdout).downloadedFiles, 4)
  const clean = await cli(['status'], { env })
  assert.equal(clean.status, 0, clean.stdout + clean.stderr)
  for (const f of ['f0.txt', 'f1.txt', 'f2.txt']) rmSync(path.join(dir, f))
  const status = await cli(['status'], { env })
  assert.equal(status.status, 1)
  assert.match(status.stdout, /Push would:\n {2}refused +.*delete 3 of 4 synced files.*--max-delete-percent/)
  const refused = await cli(['push'], { env })
  assert.equal(refused.status, 1)
  assert.match(refused.stdout, /^Push did not complete: 0 uploaded, 0 deleted/m)
  assert.match(refused.stdout, /raise --max-delete-percent/)
  assert.equal((await listKeys(bucket, 'g/')).length, 4)
  const allowed = await cli(['push', '--max-delete-percent', '100'], { env })
  assert.equal(allowed.status, 0, allowed.stdout + allowed.stderr)
  assert.match(allowed.stdout, /^Push: 0 uploaded, 3 deleted/m)
  assert.deepEqual(await listKeys(bucket, 'g/'), ['g/f3.txt'])
  // The other options reach the engine (a bad value is refused by name).
  assert.match((await cli(['push', '--conflict-policy', 'newest'], { env })).stderr, /--conflict-policy must be keep-both, overwrite/)
  const overwrite = await cli(['push', '--conflict-policy', 'overwrite', '--stall-timeout', '5000', '--lock-timeout', '1000', '--log-level', 'debug'], { env })
  assert.equal(overwrite.status, 0, overwrite.stderr)
  assert.equal((await cli(['push'], { env: { ...env, S3WS_MAX_DELETE_PERCENT: '101' } })).status, 2)
  // A fresh container: the directory does not exist yet; nothing is wrong.
  const fresh = await cli(['status'], { env: { ...env, S3WS_DIR: path.join(tmpDir('fresh'), 'not-yet') } })
  assert.equal(fresh.status, 0, fresh.stdout + fresh.stderr)
  assert.match(fresh.stdout, /Push would:\n {2}\(nothing: the directory does not exist yet\)/)
})

test('7. --profile wins over credentials in the environment, and a missing one fails at once, by name', { skip: lacks('credentials') }, async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', files(1))
  const aws = tmpDir('aws')
  writeFileSync(path.join(aws, 'config'), '[profile wrongkeys]\nregion = us-east-1\n')
  writeFileSync(path.join(aws, 'credentials'), '[wrongkeys]\naws_access_key_id = AKIAWRONGWRONGWRONG1\naws_secret_access_key = wrong\n')
  const env = { AWS_CONFIG_FILE: path.join(aws, 'config'), AWS_SHARED_CREDENTIALS_FILE: path.join(aws, 'credentials') }
  const common = ['pull', `s3://${bucket}/p/`, '--dir', tmpDir('prof'), '--endpoint', endpoint]
  const missing = await cli([...common, '--profile', 'bad'], { env })
  assert.equal(missing.status, 2)
  assert.match(missing.stderr, /the AWS profile "bad" was not found/)
  // The environment has good keys; the profile's wrong ones are used.
  const used = await cli([...common, '--profile', 'wrongkeys'], { env })
  assert.equal(used.status, 2)
  assert.match(used.stderr, /InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied/)
  assert.equal((await cli(common, { env })).status, 0)
})

test('8. s3://BUCKET/PREFIX/ is accepted as aws-cli and rclone take it; what cannot be right is refused with one message', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'users/u1/ws/', files(2))
  for (const args of [[`s3://${bucket}/users/u1/ws/`], ['--bucket', `s3://${bucket}/users/u1/ws/`], ['--bucket', bucket, '--prefix', `s3://${bucket}/users/u1/ws`]]) {
    const dir = tmpDir('url')
    const r = await cli(['pull', ...args, '--dir', dir, '--endpoint', endpoint, '--json'])
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`)
    assert.equal(JSON.parse(r.stdout).downloadedFiles, 2, args.join(' '))
  }
  const bad = [
    [['--bucket', bucket, '--prefix', '/users/u1/ws/'], /starts with '\/': S3 keys do not/],
    [['--bucket', `https://${bucket}.s3.amazonaws.com`, '--prefix', 'p/'], /is not a bucket name .*--endpoint/],
    [['--bucket', bucket, '--prefix', 'a/../b/'], /not a usable key prefix/],
    [[`s3://${bucket}/x/`, '--bucket', 'other'], /disagree/],
    [['--bucket', bucket], /--prefix is required/],
  ]
  for (const [args, message] of bad) {
    const r = await cli(['pull', ...args, '--dir', tmpDir('bad'), '--endpoint', endpoint])
    assert.equal(r.status, 2, args.join(' '))
    assert.match(r.stderr, message)
    assert.equal(r.stderr.trim().split('\n').length, 2, `one message and a pointer to --help:\n${r.stderr}`)
  }
})

test('9. a server that never answers: said on stderr after a few seconds; --timeout gives up', async () => {
  const server = net.createServer(() => {}) // accepts, never answers
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  try {
    const started = Date.now()
    const r = await cli(['pull', 's3://b/p/', '--dir', tmpDir('hung'), '--endpoint', `http://127.0.0.1:${server.address().port}`, '--timeout', '7'])
    const seconds = (Date.now() - started) / 1000
    assert.equal(r.status, 2)
    assert.ok(seconds < 12, `${seconds} s`)
    assert.match(r.stderr, /no answer yet from http:\/\/127\.0\.0\.1:\d+ for s3:\/\/b\/p\/ after 5 s/)
    assert.match(r.stderr, /gave up after 7 s \(--timeout\)/)
  } finally {
    server.close()
  }
})

test('10. the progress line shows byte percent, time so far and errors', async () => {
  const { progressReporter } = await import('../lib/progress-line.js')
  let written = ''
  const stream = { isTTY: false, write: (s) => (written += s) }
  const p = progressReporter(stream)
  p.failed()
  p.update({ phase: 'download', current: 1, total: 2, percentage: 50, bytes: 1024 * 1024, totalBytes: 4 * 1024 * 1024 })
  p.update({ phase: 'download', current: 2, total: 2, percentage: 100, bytes: 4 * 1024 * 1024, totalBytes: 4 * 1024 * 1024 })
  assert.match(written, /download +25% +1\.0\/4\.0 MiB +1\/2 files .*\ds elapsed.*1 error/)
  assert.match(written, /download +100% +4\.0\/4\.0 MiB +2\/2 files/)
})

test('11. interrupted: a message and exit 130; typos get a suggestion; help lists the default ignores; debug logs each file; a dry run counts what it would do', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'i/', files(20))
  await withProxy({ delay: (r) => (r.method === 'GET' && !isList(r) ? 400 : 0) }, async (proxy) => {
    const r = await cli(['pull', `s3://${bucket}/i/`, '--dir', tmpDir('int'), '--endpoint', proxy.endpoint, '--concurrency', '2'], {
      onStart: async (child) => {
        await until(() => proxy.count('GET', (q) => !isList(q)) >= 2)
        await sleep(600)
        child.kill('SIGINT')
      },
    })
    assert.equal(r.status, 130)
    assert.match(r.stderr, /interrupted after \d+ of 20 files \(download\); run again to resume/)
  })
  const typo = await cli(['pull', '--buckt', bucket])
  assert.equal(typo.status, 2)
  assert.match(typo.stderr, /unknown option --buckt \(did you mean --bucket\?\)/)
  assert.ok(!typo.stderr.includes('Usage:'), 'not the whole usage')
  assert.match((await cli(['pul'])).stderr, /did you mean pull\?/)
  const help = await cli(['--help'])
  assert.equal(help.status, 0)
  assert.match(help.stdout, /Always skipped \(built-in ignore patterns\): .*build\/ dist\/ .*\*\.log/)
  const dir = tmpDir('debug')
  const debug = await cli(['pull', `s3://${bucket}/i/`, '--dir', dir, '--endpoint', endpoint, '--log-level', 'debug', '--log-format', 'json', '--quiet'])
  assert.equal(debug.status, 0, debug.stderr)
  const logs = debug.stderr
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
  for (let i = 0; i < 20; i++)
    assert.ok(
      logs.some((l) => l.level === 'debug' && l.message === `Downloaded f${i}.txt`),
      `f${i}.txt not logged`,
    )
  writeFileSync(path.join(dir, 'f0.txt'), 'edited')
  writeFileSync(path.join(dir, 'new.txt'), 'new')
  rmSync(path.join(dir, 'f1.txt'))
  await settle()
  const dry = JSON.parse((await cli(['push', `s3://${bucket}/i/`, '--dir', dir, '--endpoint', endpoint, '--dry-run', '--json'])).stdout)
  assert.deepEqual([dry.uploadedFiles, dry.transferredFiles, dry.deletedFiles], [2, 2, 1])
  assert.deepEqual(dry.plan.upload, ['f0.txt', 'new.txt'])
})

test('11. --help and --version work without the native binary; a command then says what is missing, with no stack trace', async () => {
  // The package's JavaScript without any binary beside it.
  const pkg = path.join(tmpDir('nobinary'), 'pkg')
  mkdirSync(pkg)
  for (const f of ['package.json', 'index.js', 'index.d.ts', 'binding.js', 'load-binding.js', 'lib', 'bin']) cpSync(path.join(ROOT, f), path.join(pkg, f), { recursive: true })
  assert.ok(!readdirSync(pkg).some((f) => f.endsWith('.node')))
  const bin = path.join(pkg, 'bin', 's3-workspace-sync.js')
  const env = { NAPI_RS_NATIVE_LIBRARY_PATH: '', NODE_PATH: '' }
  const help = await cli(['--help'], { bin, env })
  assert.equal(help.status, 0, help.stderr)
  assert.match(help.stdout, /Usage: s3-workspace-sync/)
  assert.match(help.stdout, /built-in ignore patterns: see the README/)
  assert.equal((await cli(['--version'], { bin, env })).stdout.trim(), JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version)
  const pull = await cli(['pull', 's3://b/p/', '--dir', tmpDir('nb')], { bin, env })
  assert.equal(pull.status, 2)
  assert.match(pull.stderr, /code: ERR_S3WS_NATIVE_BINDING/)
  assert.ok(!/\n\s+at /.test(pull.stderr), `a stack trace:\n${pull.stderr}`)
})

test('11. the lockfile has the package as package.json declares it (bin included): a fresh npm install leaves it as it is', () => {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
  const lock = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8'))
  assert.deepEqual(lock.packages[''].bin, pkg.bin)
  assert.equal(lock.packages[''].version, pkg.version)
  assert.ok(existsSync(BIN))
})

test('12. ensure --path: the named paths now, nothing else; exit 1 when one is not on S3; --path is for ensure only', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'e/', { 'AGENTS.md': 'agents', 'docs/x.md': 'x', 'big/y.bin': 'y' })
  const dir = tmpDir('ensure')
  const where = [`s3://${bucket}/e/`, '--dir', dir, '--endpoint', endpoint]
  const ok = await cli(['ensure', ...where, '--path', 'AGENTS.md', '--path', 'docs/'])
  assert.equal(ok.status, 0, ok.stderr)
  assert.match(ok.stdout, /Ensured 2 path\(s\): 2 file\(s\) downloaded/)
  assert.equal(readFileSync(path.join(dir, 'AGENTS.md'), 'utf8'), 'agents')
  assert.equal(readFileSync(path.join(dir, 'docs/x.md'), 'utf8'), 'x')
  assert.equal(existsSync(path.join(dir, 'big')), false)
  const missing = await cli(['ensure', ...where, '--path', 'nope.md', '--path', 'AGENTS.md', '--json'])
  assert.equal(missing.status, 1, missing.stderr)
  assert.deepEqual(JSON.parse(missing.stdout), { paths: ['nope.md', 'AGENTS.md'], downloadedFiles: 0, missing: ['nope.md'] })
  const none = await cli(['ensure', ...where])
  assert.equal(none.status, 2)
  assert.match(none.stderr, /ensure needs --path/)
  const elsewhere = await cli(['pull', ...where, '--path', 'AGENTS.md'])
  assert.equal(elsewhere.status, 2)
  assert.match(elsewhere.stderr, /--path is for ensure/)
})

test(
  '13. watch is two-way: another writer\'s push is a line (--json: a "remote" line); --direction push leaves it out; a bad --direction is refused',
  { skip: process.platform === 'win32' && 'signals' },
  async () => {
    const bucket = await newBucket()
    await seed(bucket, 'l/', files(2))
    const { S3WorkspaceSync } = await import('../index.js')
    const other = tmpDir('other')
    const writer = new S3WorkspaceSync({ bucket, prefix: 'l/', workspaceDir: other, endpoint, logger: { debug() {}, info() {}, warn() {}, error() {} } })
    await writer.pull()
    /** Runs `watch` with `flags`; once it watches, the other instance pushes `rel`. */
    const watching = (flags, rel) => {
      const dir = tmpDir('live')
      return cli(['watch', `s3://${bucket}/l/`, '--dir', dir, '--endpoint', endpoint, '--debounce', '100', ...flags], {
        onStart: async (child, out) => {
          // Watching: its first push (of nothing) printed a line.
          await until(() => out.stdout.includes('\n'), 10_000)
          writeFileSync(path.join(other, rel), `from the other writer: ${rel}`)
          assert.equal((await writer.push()).uploadedFiles, 1)
          await until(() => existsSync(path.join(dir, rel)), 10_000).catch(() => {})
          await sleep(300)
          child.kill('SIGINT')
        },
      }).then((result) => ({ ...result, dir }))
    }
    const json = await watching(['--json'], 'one.txt')
    assert.equal(json.status, 0, json.stderr)
    const remote = json.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((l) => l.remote)
    assert.deepEqual(
      remote.map((l) => l.remote),
      [{ paths: ['one.txt'], deleted: [], conflicts: [] }],
    )
    assert.match(remote[0].time, /^\d{4}-\d\d-\d\dT/)
    const text = await watching([], 'two.txt')
    assert.match(text.stdout, /^\d{4}-\d\d-\d\dT[\d:.]+Z Remote change: 1 file\(s\) pulled \(two\.txt\)$/m)
    const pushOnly = await watching(['--direction', 'push'], 'three.txt')
    assert.equal(pushOnly.status, 0, pushOnly.stderr)
    assert.equal(existsSync(path.join(pushOnly.dir, 'three.txt')), false)
    assert.doesNotMatch(pushOnly.stdout, /Remote change/)
    const bad = await cli(['watch', `s3://${bucket}/l/`, '--dir', tmpDir('bad'), '--direction', 'sideways'])
    assert.equal(bad.status, 2)
    assert.match(bad.stderr, /--direction must be both, push, pull/)
  },
)

test('14. log, diff and restore on a versioned bucket; restore needs one target; an unversioned bucket says how to enable versioning', async () => {
  const { PutBucketVersioningCommand } = await import('@aws-sdk/client-s3')
  const { admin } = await import('./helpers.mjs')
  const bucket = await newBucket()
  await admin.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }))
  const dir = tmpDir('turns')
  const where = [`s3://${bucket}/c/`, '--dir', dir, '--endpoint', endpoint]
  writeFileSync(path.join(dir, 'a.txt'), 'one')
  const first = await cli(['push', ...where, '--json'])
  assert.equal(first.status, 0, first.stderr)
  const id = JSON.parse(first.stdout).checkpoint
  writeFileSync(path.join(dir, 'a.txt'), 'two')
  writeFileSync(path.join(dir, 'b.txt'), 'new')
  assert.equal((await cli(['push', ...where])).status, 0)
  const log = await cli(['log', ...where, '--json'])
  assert.equal(log.status, 0, log.stderr)
  assert.deepEqual(
    JSON.parse(log.stdout).map((c) => [c.files, c.changed]),
    [
      [2, 2],
      [1, 1],
    ],
  )
  assert.match((await cli(['log', ...where])).stdout, new RegExp(`^ +${id}  \\d{4}-\\d\\d-\\d\\dT\\S+  1 files, 3 bytes, 1 changed$`, 'm'))
  const diff = await cli(['diff', ...where, '--from', id])
  assert.equal(diff.status, 0, diff.stderr)
  assert.equal(diff.stdout, 'A b.txt\nM a.txt\n')
  const dry = await cli(['restore', ...where, '--checkpoint', id, '--dry-run'])
  assert.match(dry.stdout, /would: restore 1, delete 1/)
  const restored = await cli(['restore', ...where, '--checkpoint', id])
  assert.equal(restored.status, 0, restored.stderr)
  assert.match(restored.stdout, /^Restore: 1 restored, 1 deleted, 0 unchanged in \d+ ms \(checkpoint \d+\)$/m)
  assert.equal(readFileSync(path.join(dir, 'a.txt'), 'utf8'), 'one')
  assert.equal(existsSync(path.join(dir, 'b.txt')), false)
  assert.equal((await getObject(bucket, 'c/a.txt')).toString(), 'one')
  const both = await cli(['restore', ...where, '--checkpoint', id, '--at', new Date().toISOString()])
  assert.equal(both.status, 2)
  assert.match(both.stderr, /restore needs --checkpoint ID or --at TIME/)
  const plain = await newBucket()
  const off = await cli(['log', `s3://${plain}/c/`, '--dir', tmpDir('off'), '--endpoint', endpoint])
  assert.equal(off.status, 2)
  assert.match(off.stderr, /put-bucket-versioning/)
})
