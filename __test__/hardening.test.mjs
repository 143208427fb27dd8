// Hardened file-system access: races and planted links never reach outside
// the workspace, special files never hang a sync, configuration has limits,
// and everything push could not sync is reported.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, execFileSync } from 'node:child_process'
import http from 'node:http'
import https from 'node:https'
import { existsSync, readFileSync, renameSync, symlinkSync, writeFileSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { S3WorkspaceSync, SyncIgnoreFilter } from '../index.js'
import { DeleteObjectCommand } from '@aws-sdk/client-s3'
import { admin, endpoint, newBucket, seed, tmpDir, recordingLogger, isList, listingXml, md5, fingerprint, listKeys, settle, STATE_DIR, quiet, withProxy } from './helpers.mjs'

// The package root (import.meta.dirname needs Node 20.11).
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

const isGet = (r) => r.method === 'GET' && !isList(r)
const mkfifo = (p) => execFileSync('mkfifo', [p])

/** A promise and the function that settles it. */
function gate() {
  let open
  const promise = new Promise((r) => (open = r))
  return { promise, open }
}

/** A directory outside every workspace with a file in it, and its fingerprint. */
function outsideDir() {
  const dir = tmpDir('outside')
  writeFileSync(path.join(dir, 'precious.txt'), 'must not change')
  writeFileSync(path.join(dir, 'old.txt'), 'a file named like a synced one')
  return { dir, before: fingerprint(dir) }
}

test('a directory swapped for a symlink mid-pull: nothing is written or deleted outside', async () => {
  const bucket = await newBucket()
  const files = { 'd/old.txt': 'old', 'd/first.txt': 'first' }
  for (let i = 0; i < 10; i++) files[`d/f${i}.txt`] = `file ${i}`
  await seed(bucket, 'p/', files)
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  await sync.pull()
  // On S3: d/old.txt deleted, every other file changed.
  await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'p/d/old.txt' }))
  const changed = Object.fromEntries(
    Object.keys(files)
      .filter((k) => k !== 'd/old.txt')
      .map((k) => [k, `${files[k]} v2`]),
  )
  await seed(bucket, 'p/', changed)
  const outside = outsideDir()
  const swapped = gate()
  const released = gate()
  // The first GET's answer is held until `d` has been swapped for a link.
  let held = false
  const hold = (r) => {
    if (!isGet(r) || held) return 0
    held = true
    swapped.open()
    return released.promise
  }
  await withProxy({ hold }, async (proxy) => {
    const racing = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, downloadConcurrency: 1, logger: quiet() })
    const running = racing.pull()
    await swapped.promise
    renameSync(path.join(dir, 'd'), path.join(dir, 'd-moved'))
    symlinkSync(outside.dir, path.join(dir, 'd'))
    released.open()
    const result = await running
    assert.equal(result.success, false)
    assert.match(result.errors.join('\n'), /symbolic link; not followed/)
  })
  assert.deepEqual(fingerprint(outside.dir), outside.before)
})

test('links planted where the engine keeps its state are never followed', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a' })
  // `.s3ws` itself a link to a directory outside.
  {
    const dir = tmpDir()
    const outside = outsideDir()
    symlinkSync(outside.dir, path.join(dir, STATE_DIR))
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
    await assert.rejects(sync.pull(), (e) => e.code === 'WORKSPACE_ERROR' && /symbolic link/.test(e.message))
    const pushed = await sync.push()
    assert.equal(pushed.success, false)
    assert.deepEqual(fingerprint(outside.dir), outside.before)
    assert.deepEqual(readdirSync(outside.dir).sort(), ['old.txt', 'precious.txt'])
  }
  // A dangling `lock` link, and the base file itself a link to a file outside.
  {
    const dir = tmpDir()
    const outside = outsideDir()
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
    await sync.pull()
    const base = readdirSync(path.join(dir, STATE_DIR)).find((n) => n.startsWith('base-'))
    renameSync(path.join(dir, STATE_DIR, base), path.join(outside.dir, 'moved-base'))
    symlinkSync(path.join(outside.dir, 'precious.txt'), path.join(dir, STATE_DIR, base))
    const before = fingerprint(outside.dir)
    const again = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() }).pull()
    assert.equal(again.success, true, JSON.stringify(again.errors))
    assert.deepEqual(fingerprint(outside.dir), before)
    const lockTarget = path.join(outside.dir, 'created-by-lock')
    execFileSync('rm', [path.join(dir, STATE_DIR, 'lock')])
    symlinkSync(lockTarget, path.join(dir, STATE_DIR, 'lock'))
    await assert.rejects(new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() }).pull())
    assert.equal(existsSync(lockTarget), false)
    assert.deepEqual(fingerprint(outside.dir), before)
  }
})

test('.syncignore as a link, a FIFO, /dev/zero or 10,000 lines: a clear error at once, never a hang', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a' })
  const outside = outsideDir()
  const cases = {
    'a link to a file outside': (f) => symlinkSync(path.join(outside.dir, 'precious.txt'), f),
    'a link to /dev/zero': (f) => symlinkSync('/dev/zero', f),
    'a FIFO': (f) => mkfifo(f),
    'over 1 MiB': (f) => writeFileSync(f, `# ${'x'.repeat(1024 * 1024)}\n`),
    '10,000 patterns': (f) => writeFileSync(f, Array.from({ length: 10000 }, (_, i) => `pattern-${i}/*.x`).join('\n')),
  }
  for (const [what, make] of Object.entries(cases)) {
    const dir = tmpDir()
    make(path.join(dir, '.syncignore'))
    const started = Date.now()
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
    await assert.rejects(sync.pull(), (e) => e.code === 'INVALID_SYNCIGNORE', what)
    const pushed = await sync.push()
    assert.equal(pushed.success, false, what)
    assert.match(pushed.errors[0], /INVALID_SYNCIGNORE/, what)
    const { logger, calls } = recordingLogger()
    new SyncIgnoreFilter(logger).loadFromWorkspace(dir)
    assert.ok(
      calls.some((c) => c.level === 'warn' && /syncignore/.test(c.message)),
      what,
    )
    assert.ok(Date.now() - started < 5000, `${what}: took ${Date.now() - started} ms`)
  }
  assert.deepEqual(fingerprint(outside.dir), outside.before)
})

test("user files named like temp files are kept and synced; only the engine's exact temp names are cleaned", async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a' })
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  await sync.pull()
  writeFileSync(path.join(dir, '.s3ws-notes.partial'), 'user data')
  writeFileSync(path.join(dir, '.s3ws-0123456789abcdef.partial'), 'a leftover of a killed pull')
  await settle()
  const { logger, calls } = recordingLogger()
  const pulled = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger }).pull()
  assert.equal(pulled.success, true)
  assert.equal(readFileSync(path.join(dir, '.s3ws-notes.partial'), 'utf8'), 'user data')
  assert.equal(existsSync(path.join(dir, '.s3ws-0123456789abcdef.partial')), false)
  assert.ok(calls.some((c) => c.level === 'info' && /Removing 1 temp files/.test(c.message)))
  const pushed = await sync.push()
  assert.equal(pushed.uploadedFiles, 1)
  assert.ok((await listKeys(bucket, 'p/')).includes('p/.s3ws-notes.partial'))
})

/** Runs `body` (an async function's source) in a fresh Node process with `flags`; resolves to what it prints as JSON. */
function runScript(body, flags = []) {
  const script = `
    const { S3WorkspaceSync } = require(${JSON.stringify(ROOT)})
    const quiet = { debug() {}, info() {}, warn() {}, error() {} }
    ;(async () => { ${body} })().then((r) => process.stdout.write(JSON.stringify(r)), (e) => { console.error(e); process.exit(1) })
  `
  const out = execFileSync(process.execPath, [...flags, '-e', script], { env: process.env, encoding: 'utf8', timeout: 120000 })
  return JSON.parse(out)
}

test('instances that synced are garbage-collected with their native resources once dropped', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a', 'b/c.txt': 'c' })
  const root = tmpDir('gc')
  const result = runScript(
    `
    const fs = require('node:fs')
    const fds = () => fs.readdirSync('/proc/self/fd').length
    let collected = 0
    const registry = new FinalizationRegistry(() => collected++)
    const settle = async () => {
      for (let k = 0; k < 20; k++) {
        global.gc()
        await new Promise((r) => setTimeout(r, 20))
      }
    }
    await settle()
    const before = fds()
    const N = 60
    for (let i = 0; i < N; i++) {
      const sync = new S3WorkspaceSync({ bucket: ${JSON.stringify(bucket)}, prefix: 'p/', workspaceDir: ${JSON.stringify(root)} + '/' + i, endpoint: ${JSON.stringify(endpoint)}, logger: quiet })
      sync.on('progress', () => {})
      const r = await sync.pull()
      if (!r.success) throw new Error(JSON.stringify(r))
      await sync.push()
      registry.register(sync, i)
    }
    const during = fds()
    await settle()
    return { N, collected, before, during, after: fds() }
  `,
    ['--expose-gc'],
  )
  assert.ok(result.collected >= result.N * 0.9, `only ${result.collected} of ${result.N} instances were collected`)
  // Each instance held a connection pool; dropped instances release theirs.
  assert.ok(result.after - result.before < 10, `fds: ${result.before} before, ${result.during} with ${result.N} instances, ${result.after} after GC`)
})

test('a worker terminated mid-pull stops writing and releases the workspace lock', async () => {
  const bucket = await newBucket()
  const files = {}
  for (let i = 0; i < 200; i++) files[`f${i}.txt`] = `file ${i}`
  await seed(bucket, 'p/', files)
  const dir = tmpDir()
  await withProxy({ delay: (r) => (isGet(r) ? 40 : 0) }, async (proxy) => {
    const { Worker } = await import('node:worker_threads')
    const worker = new Worker(
      `
      const { parentPort, workerData } = require('node:worker_threads')
      const { S3WorkspaceSync } = require(workerData.root)
      const quiet = { debug() {}, info() {}, warn() {}, error() {} }
      new S3WorkspaceSync({ ...workerData.options, logger: quiet }).pull()
      parentPort.postMessage('started')
    `,
      { eval: true, workerData: { root: ROOT, options: { bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, downloadConcurrency: 2 } } },
    )
    const started = new Promise((r) => worker.once('message', r))
    // The main thread uses the package too.
    const mainThread = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: tmpDir(), endpoint, logger: quiet() })
    await mainThread.pull()
    await started
    await new Promise((r) => setTimeout(r, 400))
    await worker.terminate()
    const count = () => readdirSync(dir).filter((n) => n.endsWith('.txt')).length
    const atTermination = count()
    await new Promise((r) => setTimeout(r, 600))
    assert.ok(count() - atTermination <= 2, `${count() - atTermination} files written after terminate()`)
    assert.ok(count() < 200, 'the pull finished before the worker was terminated: nothing tested')
    // The lock is free: another instance gets it at once.
    const next = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, lockTimeoutMs: 2000, logger: quiet() }).pull()
    assert.equal(next.success, true, JSON.stringify(next.errors))
    assert.equal(count(), 200)
  })
})

test('a first pull deletes no never-synced local file; with overwrite (mirror), more than 50 trip the guard', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a' })
  // A project directory synced with a new, empty prefix (the CLI's watch on a new prefix).
  const project = tmpDir()
  for (let i = 0; i < 5; i++) writeFileSync(path.join(project, `src-${i}.ts`), `code ${i}`)
  await settle()
  const empty = await new S3WorkspaceSync({ bucket, prefix: 'new-prefix/', workspaceDir: project, endpoint, logger: quiet() }).pull()
  assert.deepEqual([empty.success, empty.deletedFiles], [true, 0])
  assert.equal(readdirSync(project).filter((n) => n.startsWith('src-')).length, 5)

  const dir = tmpDir()
  for (let i = 0; i < 60; i++) writeFileSync(path.join(dir, `mine-${i}.txt`), 'not from S3')
  await settle()
  const result = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, conflictPolicy: 'overwrite', logger: quiet() }).pull()
  assert.equal(result.success, false)
  assert.equal(result.deletedFiles, 0)
  assert.match(result.errors.join('\n'), /would delete 60 of 60 local files.*maxDeletePercent/)
  assert.equal(readdirSync(dir).filter((n) => n.startsWith('mine-')).length, 60)
  assert.equal(readFileSync(path.join(dir, 'a.txt'), 'utf8'), 'a')
})

test('push reports every entry it could not sync: special files, unsafe names, links', async () => {
  const bucket = await newBucket()
  const dir = tmpDir()
  writeFileSync(path.join(dir, 'ok.txt'), 'ok')
  mkfifo(path.join(dir, 'pipe'))
  execFileSync('sh', ['-c', `printf x > '${dir}/bad-'$(printf '\\377')'.bin'`])
  writeFileSync(path.join(dir, 'tab\there.txt'), 'control character')
  symlinkSync(path.join(dir, 'ok.txt'), path.join(dir, 'link.txt'))
  const { logger, calls } = recordingLogger()
  const started = Date.now()
  const pushed = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger }).push()
  assert.ok(Date.now() - started < 10000, 'a FIFO must not stall the push')
  assert.equal(pushed.success, false)
  const byCode = {}
  for (const s of pushed.skipped) (byCode[s.code] ??= []).push(s)
  assert.deepEqual(
    byCode.SPECIAL_FILE.map((s) => s.path),
    ['pipe'],
  )
  assert.deepEqual(
    byCode.SYMLINK.map((s) => s.path),
    ['link.txt'],
  )
  assert.ok(
    byCode.UNSAFE_NAME.some((s) => s.path.startsWith('bad-') && s.path.endsWith('.bin') && /UTF-8/.test(s.reason)),
    JSON.stringify(byCode.UNSAFE_NAME),
  )
  assert.ok(byCode.UNSAFE_NAME.some((s) => s.path === 'tab\there.txt'))
  // Failures are errors (the link is a documented non-sync, not one), and logged.
  const errors = pushed.errors.join('\n')
  assert.match(errors, /Not uploaded pipe/)
  assert.doesNotMatch(errors, /link\.txt/)
  for (const s of pushed.skipped)
    assert.ok(
      calls.some((c) => c.level === 'warn' && c.message.includes(s.path)),
      s.path,
    )
  assert.ok((await listKeys(bucket, 'p/')).includes('p/ok.txt'))
})

test('a folder marker that carries content is skipped with a warning, not silently', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'dir/a.txt': 'a' })
  // The server here stores `dir/` as a directory; the listing says what S3 would.
  const objects = [
    { key: 'p/dir/', size: 19 },
    { key: 'p/dir/a.txt', size: 1, etag: md5(Buffer.from('a')) },
  ]
  const fault = (r) => (isList(r) ? { status: 200, body: listingXml({ bucket, prefix: 'p/', objects }) } : undefined)
  const { logger, calls } = recordingLogger()
  const dir = tmpDir()
  const pulled = await withProxy({ fault }, (proxy) => new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger }).pull())
  assert.equal(pulled.success, true, JSON.stringify(pulled.errors))
  assert.equal(readFileSync(path.join(dir, 'dir/a.txt'), 'utf8'), 'a')
  assert.ok(calls.some((c) => c.level === 'warn' && c.message.includes('p/dir/') && /folder marker/.test(c.message)))
})

test('an https:// endpoint is verified against the CA certificates SSL_CERT_FILE names: trusted, it syncs; not trusted, nothing lands', async (t) => {
  const dir = tmpDir()
  const sh = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' })
  try {
    sh('version')
  } catch {
    return t.skip('openssl is not installed')
  }
  // Two CAs, and the server's certificate for localhost signed by the first.
  const ca = (name) => sh('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${name}`, '-keyout', `${name}-key.pem`, '-out', `${name}.pem`)
  ca('test-ca')
  ca('other-ca')
  writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n')
  sh('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', 'key.pem', '-out', 'csr.pem')
  sh('x509', '-req', '-in', 'csr.pem', '-CA', 'test-ca.pem', '-CAkey', 'test-ca-key.pem', '-CAcreateserial', '-days', '1', '-extfile', 'ext.cnf', '-out', 'cert.pem')
  const key = path.join(dir, 'key.pem')
  const cert = path.join(dir, 'cert.pem')
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'over TLS' })
  // A TLS front for the test server (the Host header is kept: it is signed).
  const upstream = new URL(endpoint)
  const front = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
    const fwd = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode, up.headers)
      up.pipe(res)
    })
    fwd.on('error', () => res.destroy())
    req.pipe(fwd)
  })
  await new Promise((r) => front.listen(0, '127.0.0.1', r))
  t.after(() => front.close())
  const tls = `https://localhost:${front.address().port}`
  const pull = (caFile, into) => {
    const script = `
      const { S3WorkspaceSync } = require(${JSON.stringify(ROOT)})
      const quiet = { debug() {}, info() {}, warn() {}, error() {} }
      new S3WorkspaceSync({ bucket: ${JSON.stringify(bucket)}, prefix: 'p/', workspaceDir: ${JSON.stringify(into)}, endpoint: ${JSON.stringify(tls)}, stallTimeoutMs: 5000, logger: quiet })
        .pull().then((r) => process.stdout.write(JSON.stringify(r)), (e) => process.stdout.write(JSON.stringify({ thrown: e.code, s3Code: e.s3Code, message: e.message })))
    `
    const env = { ...process.env, SSL_CERT_FILE: caFile, SSL_CERT_DIR: '/nonexistent' }
    return new Promise((resolve, reject) => {
      execFile(process.execPath, ['-e', script], { env, encoding: 'utf8' }, (err, out) => (err ? reject(err) : resolve(JSON.parse(out))))
    })
  }
  const trusted = tmpDir()
  const ok = await pull(path.join(dir, 'test-ca.pem'), trusted)
  assert.equal(ok.success, true, JSON.stringify(ok))
  assert.equal(readFileSync(path.join(trusted, 'a.txt'), 'utf8'), 'over TLS')
  // Another CA: the server's certificate is refused, and nothing lands.
  const untrusted = tmpDir()
  const refused = await pull(path.join(dir, 'other-ca.pem'), untrusted)
  assert.equal(refused.s3Code, 'NetworkError', JSON.stringify(refused))
  assert.match(refused.message, /certificate/)
  assert.equal(existsSync(path.join(untrusted, 'a.txt')), false)
})

test('without any CA certificates an http:// endpoint still works, and nothing panics', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a' })
  const dir = tmpDir()
  const env = { ...process.env, SSL_CERT_FILE: '/nonexistent/ca.pem', SSL_CERT_DIR: '/nonexistent' }
  const script = `
    const { S3WorkspaceSync } = require(${JSON.stringify(ROOT)})
    const quiet = { debug() {}, info() {}, warn() {}, error() {} }
    new S3WorkspaceSync({ bucket: ${JSON.stringify(bucket)}, prefix: 'p/', workspaceDir: ${JSON.stringify(dir)}, endpoint: ${JSON.stringify(endpoint)}, logger: quiet })
      .pull().then((r) => process.stdout.write(JSON.stringify(r)))
  `
  const out = execFileSync(process.execPath, ['-e', script], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  assert.equal(JSON.parse(out).success, true)
  assert.equal(readFileSync(path.join(dir, 'a.txt'), 'utf8'), 'a')
})
