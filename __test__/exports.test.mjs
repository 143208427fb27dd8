// The exports that work without S3: the class as an EventEmitter, the
// default logger, the hash and content-type functions. No S3 server needed:
// `node --test __test__/exports.test.mjs` runs it alone.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { S3WorkspaceSync, createDefaultLogger, calculateFileHash, calculateContentHash } from '../index.js'
import { tmpDir, md5, contentHash, randomBuffer, quiet } from './local-helpers.mjs'

test('the class is an EventEmitter', () => {
  const sync = new S3WorkspaceSync({ bucket: 'b', prefix: 'p', workspaceDir: tmpDir(), logger: quiet() })
  let n = 0
  const f = () => n++
  sync.on('x', f)
  sync.once('y', f)
  sync.emit('x')
  sync.emit('y')
  sync.emit('y')
  sync.off('x', f)
  sync.emit('x')
  assert.equal(n, 2)
})

test('the default logger prefixes and routes to console', () => {
  const seen = []
  const saved = { log: console.log, debug: console.debug, warn: console.warn, error: console.error }
  for (const k of Object.keys(saved)) console[k] = (...args) => seen.push([k, ...args])
  try {
    const logger = createDefaultLogger('debug')
    logger.info('hello', 1)
    logger.debug('dbg')
    logger.warn('careful')
    logger.error('bad')
    logger.info('with object', { a: 1 })
    logger.error('failed:', Object.assign(new Error('no such bucket'), { code: 'S3_OPERATION_ERROR' }))
    // The default level is 'info': debug records are left out.
    createDefaultLogger().debug('hidden')
    createDefaultLogger('silent').error('hidden too')
  } finally {
    Object.assign(console, saved)
  }
  assert.deepEqual(
    seen.map((s) => s[0]),
    ['log', 'debug', 'warn', 'error', 'log', 'error'],
  )
  assert.deepEqual(seen[4].slice(3), ['with object', '{"a":1}'])
  // An Error prints its name, code and message (JSON would print `{}`).
  assert.deepEqual(seen[5].slice(3), ['failed:', 'Error [S3_OPERATION_ERROR]: no such bucket'])
  assert.throws(() => createDefaultLogger('verbose'), TypeError)
  assert.equal(seen[0][1], '[S3_WORKSPACE_SYNC]')
  assert.match(seen[0][2], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  assert.deepEqual(seen[0].slice(3), ['hello', 1])
})

test("calculateFileHash: upstream's SHA-256, errors as fs gives them; calculateContentHash: the engine's content hash", async () => {
  const dir = tmpDir()
  const missing = path.join(dir, 'nope.txt')
  await assert.rejects(calculateFileHash(missing), (e) => e.code === 'ENOENT' && e.syscall === 'open' && e.path === missing && typeof e.errno === 'number')
  await assert.rejects(calculateContentHash(missing), (e) => e.code === 'ENOENT')
  writeFileSync(path.join(dir, 'a.txt'), 'hello')
  // Upstream's utils/hash.ts: sha256 of the file, lowercase hex.
  assert.equal(await calculateFileHash(path.join(dir, 'a.txt')), createHash('sha256').update('hello').digest('hex'))
  assert.equal(await calculateContentHash(path.join(dir, 'a.txt')), md5(Buffer.from('hello')))
  const big = randomBuffer(9 * 1024 * 1024)
  writeFileSync(path.join(dir, 'big.bin'), big)
  assert.equal(await calculateContentHash(path.join(dir, 'big.bin')), contentHash(big))
  assert.equal(await calculateFileHash(path.join(dir, 'big.bin')), createHash('sha256').update(big).digest('hex'))
  execFileSync('mkfifo', [path.join(dir, 'fifo')])
  await assert.rejects(calculateFileHash(path.join(dir, 'fifo')), /not a regular file/)
  await assert.rejects(calculateContentHash(path.join(dir, 'fifo')), /not a regular file/)
})

test("guessContentType: upstream's answers, TypeScript module extensions, and octet-stream rather than exotic database types", async () => {
  const { guessContentType } = await import('../index.js')
  assert.equal(guessContentType('file.xyz'), 'application/octet-stream')
  assert.equal(guessContentType('a.mts'), 'application/typescript; charset=utf-8')
  assert.equal(guessContentType('a.cts'), 'application/typescript; charset=utf-8')
  assert.equal(guessContentType('photo.avif'), 'image/avif')
})
