// The upstream package's own answers, checked entry by entry. The vectors
// are kept in __test__/fixtures/spec/ exactly as the team's shared spec has
// them (a test below compares the two when S3WS_SPEC_DIR names that spec).
// No S3 server needed: `node --test __test__/conformance.test.mjs` runs it alone.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { SyncIgnoreFilter, guessContentType, validateStoragePath, PathValidationError, SyncError } from '../index.js'
import { tmpDir, recordingLogger } from './local-helpers.mjs'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const SPEC = path.join(HERE, 'fixtures', 'spec')
// Only where asked: the repository's tests need nothing outside it.
const SHARED_SPEC = process.env.S3WS_SPEC_DIR
const vectors = (name) => JSON.parse(readFileSync(path.join(SPEC, name), 'utf8'))

test('the vectors in the repository are the shared spec as it is (when S3WS_SPEC_DIR names it)', (t) => {
  const ours = readdirSync(SPEC)
    .filter((n) => n.endsWith('.json'))
    .sort()
  assert.deepEqual(ours, ['content-types.json', 'syncignore-cases.json', 'validate-storage-path.json'])
  if (!SHARED_SPEC || !existsSync(SHARED_SPEC)) {
    t.diagnostic(`no shared spec (S3WS_SPEC_DIR): the copies in ${SPEC} are used as they are`)
    return
  }
  for (const name of ours) {
    assert.equal(readFileSync(path.join(SPEC, name), 'utf8'), readFileSync(path.join(SHARED_SPEC, name), 'utf8'), `${name} differs from ${SHARED_SPEC}`)
  }
})

test('syncignore-cases.json: every isIgnored answer', async () => {
  const { cases } = vectors('syncignore-cases.json')
  assert.equal(cases.length, 40)
  let checked = 0
  for (const [i, c] of cases.entries()) {
    const dir = tmpDir('ignore')
    if (c.syncignore !== null) writeFileSync(path.join(dir, '.syncignore'), c.syncignore.join('\n') + '\n')
    const filter = new SyncIgnoreFilter(recordingLogger().logger, c.ignorePatterns)
    await filter.loadFromWorkspace(dir)
    assert.equal(filter.getInfo().customPatternsLoaded, c.syncignore !== null, `case ${i}`)
    for (const [p, expected] of Object.entries(c.results)) {
      assert.equal(filter.isIgnored(p), expected, `case ${i} ${JSON.stringify(c)}: ${p}`)
      checked++
    }
    const all = Object.keys(c.results)
    assert.deepEqual(
      filter.filter(all),
      all.filter((p) => !c.results[p]),
    )
  }
  assert.ok(checked > 600, `${checked} answers checked`)
})

test('SyncIgnoreFilter.getInfo counts the 21 built-in rules', () => {
  assert.deepEqual(new SyncIgnoreFilter(recordingLogger().logger).getInfo(), { defaultPatternsCount: 21, customPatternsLoaded: false })
})

test('content-types.json: every guessContentType answer', () => {
  const table = vectors('content-types.json')
  assert.ok(Object.keys(table).length > 50)
  for (const [name, expected] of Object.entries(table)) assert.equal(guessContentType(name), expected, name)
})

test('guessContentType improves on octet-stream for other known extensions', () => {
  assert.equal(guessContentType('pic.bmp'), 'image/bmp')
  assert.equal(guessContentType('notes.htm'), 'text/html; charset=utf-8')
})

test('validate-storage-path.json: verdict, class, code and message', () => {
  const cases = vectors('validate-storage-path.json')
  assert.equal(cases.length, 30)
  for (const c of cases) {
    const input = c.input === '__undefined__' ? undefined : c.input
    const label = JSON.stringify(c.input)
    if (c.ok) {
      assert.doesNotThrow(() => validateStoragePath(input), label)
      continue
    }
    let thrown
    try {
      validateStoragePath(input)
    } catch (e) {
      thrown = e
    }
    assert.ok(thrown, `${label} should throw`)
    assert.equal(thrown.constructor.name, c.error, label)
    assert.ok(thrown instanceof PathValidationError && thrown instanceof SyncError && thrown instanceof Error, label)
    assert.equal(thrown.name, c.error, label)
    assert.equal(thrown.code, c.code, label)
    assert.equal(thrown.message, c.message, label)
  }
})
