// Packaging, what the tarballs hold and how they install: `npm pack` the main
// package and this platform's package, install both tarballs into an empty
// project outside the repository with the registry unreachable (see
// pack-helpers.mjs), and check the files, the dependencies, the types, the
// published manifest and the error when no binary fits the platform. No S3
// server needed (the addon must be built): `node --test __test__/pack.test.mjs`.
// Using the installed package against the server: pack-installed.test.mjs.

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { ROOT, PKG, PLATFORM, NODE_FILE, PLATFORM_PKG, skip, run, installTarballs } from './pack-helpers.mjs'

let work, app, main, platform, npm, pack

before(() => {
  if (skip) return
  ;({ work, app, main, platform, npm, pack } = installTarballs())
})

after(() => {
  if (work) rmSync(work, { recursive: true, force: true })
})

const FORBIDDEN =
  /(^|\/)(__test__|crates|src|target|bench|scripts|npm|node_modules|\.ci|\.github|\.cache)\/|\.(node|map|rs|tgz|log)$|(^|\/)Cargo\.(toml|lock)$|(^|\/)\.(git|npm)ignore$/

test('main tarball: the declared files and nothing else', { skip }, () => {
  // An entry ending in `/` declares a directory: every file under it.
  const isDeclared = (f) => f === 'package.json' || PKG.files.some((d) => (d.endsWith('/') ? f.startsWith(d) : f === d))
  for (const d of PKG.files)
    assert.ok(
      main.files.some((f) => (d.endsWith('/') ? f.startsWith(d) : f === d)),
      `${d} is declared in files but not packed`,
    )
  assert.ok(main.files.includes('README.md'))
  assert.ok(main.files.includes('LICENSE'))
  for (const f of main.files) {
    assert.doesNotMatch(f, FORBIDDEN)
    assert.ok(isDeclared(f) || /^(README|LICEN[CS]E)(\.md|\.txt)?$/i.test(f), `unexpected file in the tarball: ${f}`)
  }
  assert.ok(main.unpackedSize < 1024 * 1024, `${main.unpackedSize} bytes unpacked`)
})

test('platform tarball: package.json, README and the binary only', { skip }, () => {
  assert.deepEqual(platform.files, ['README.md', NODE_FILE, 'package.json'].sort())
  assert.equal(platform.name, PLATFORM_PKG)
  assert.equal(platform.version, PKG.version)
})

test('installed from the tarballs alone: no dependencies, no registry', { skip }, () => {
  const installed = JSON.parse(readFileSync(path.join(app, 'node_modules', ...PKG.name.split('/'), 'package.json'), 'utf8'))
  assert.deepEqual(installed.dependencies ?? {}, {})
  assert.equal(installed.bundleDependencies ?? installed.bundledDependencies, undefined)
  for (const dep of Object.keys(installed.optionalDependencies ?? {})) assert.ok(dep.startsWith(`${PKG.name}-`), dep)
  assert.equal(installed.peerDependenciesMeta?.['@aws-sdk/client-s3']?.optional, true)
  for (const field of ['license', 'repository', 'keywords', 'engines', 'types', 'exports']) assert.ok(installed[field], field)
  // Exactly the two packages, and the optional peer was not pulled in.
  const lock = JSON.parse(readFileSync(path.join(app, 'package-lock.json'), 'utf8'))
  const names = Object.keys(lock.packages).filter(Boolean).sort()
  assert.deepEqual(names, [`node_modules/${PKG.name}`, `node_modules/${PLATFORM_PKG}`].sort())
  // No .node in the main package: the binary comes from the platform package.
  const mainDir = path.join(app, 'node_modules', ...PKG.name.split('/'))
  assert.deepEqual(
    readdirSync(mainDir).filter((f) => f.endsWith('.node')),
    [],
  )
  assert.ok(existsSync(path.join(app, 'node_modules', ...PLATFORM_PKG.split('/'), NODE_FILE)))
})

test('no source maps or local paths in the packed JavaScript', { skip }, () => {
  const mainDir = path.join(app, 'node_modules', ...PKG.name.split('/'))
  const local = [ROOT, os.homedir()].filter((p) => p.length > 3)
  for (const f of readdirSync(mainDir).filter((f) => /\.(c|m)?(js|ts)$/.test(f))) {
    const text = readFileSync(path.join(mainDir, f), 'utf8')
    assert.doesNotMatch(text, /sourceMappingURL/, f)
    for (const p of local) assert.ok(!text.includes(p), `${f} mentions ${p}`)
  }
})

test('the installed types resolve for require and import (tsc --strict)', { skip }, () => {
  const types = path.join(app, 'types')
  mkdirSync(types)
  const body = (kind) =>
    `import { S3WorkspaceSync, type SyncResult, type SyncProgress } from '@moca/s3-workspace-sync'\n` +
    `const sync = new S3WorkspaceSync({ bucket: 'b', prefix: 'p/', workspaceDir: '/tmp/ws' })\n` +
    `sync.on('progress', (p: SyncProgress) => console.log(p.phase, p.percentage))\n` +
    `export const ${kind}: Promise<SyncResult> = sync.pull()\n`
  writeFileSync(path.join(types, 'check.cts'), body('viaRequire'))
  writeFileSync(path.join(types, 'check.mts'), body('viaImport'))
  writeFileSync(
    path.join(types, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        types: ['node'],
        typeRoots: [path.join(ROOT, 'node_modules', '@types')],
      },
      files: ['check.cts', 'check.mts'],
    }),
  )
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  const r = run(process.execPath, [tsc, '-p', path.join(types, 'tsconfig.json')], types)
  assert.equal(r.status, 0, r.stdout + r.stderr)
})

test('as published: with the optionalDependencies of napi prepublish, the other platforms are skipped', { skip }, () => {
  // `napi prepublish` adds one optional dependency per target before `npm publish`.
  const stage = path.join(work, 'published')
  mkdirSync(stage)
  for (const f of main.files) {
    mkdirSync(path.dirname(path.join(stage, f)), { recursive: true })
    copyFileSync(path.join(ROOT, f), path.join(stage, f))
  }
  const manifest = JSON.parse(readFileSync(path.join(stage, 'package.json'), 'utf8'))
  const platforms = readdirSync(path.join(ROOT, 'npm')).sort()
  assert.equal(platforms.length, PKG.napi.targets.length)
  manifest.optionalDependencies = Object.fromEntries(platforms.map((p) => [`${PKG.name}-${p}`, PKG.version]))
  writeFileSync(path.join(stage, 'package.json'), JSON.stringify(manifest, null, 2))
  const dest = path.join(work, 'published-tarball')
  mkdirSync(dest)
  const published = pack(stage, dest)
  const app2 = path.join(work, 'app2')
  mkdirSync(app2)
  writeFileSync(path.join(app2, 'package.json'), '{"name":"published-smoke","version":"1.0.0","private":true}')
  npm(['install', '--no-audit', '--no-fund', published.path, platform.path], app2)
  const lock = JSON.parse(readFileSync(path.join(app2, 'package-lock.json'), 'utf8'))
  assert.deepEqual(Object.keys(lock.packages).filter(Boolean).sort(), [`node_modules/${PKG.name}`, `node_modules/${PLATFORM_PKG}`].sort())
  const r = run(process.execPath, ['-e', "console.log(require('@moca/s3-workspace-sync').guessContentType('a.json'))"], app2)
  assert.equal(r.status, 0, r.stderr)
  assert.match(r.stdout, /^application\/json/)
})

test('no binary for the platform: the error names it and says what to do', { skip }, () => {
  // The main package alone, as after `npm install --omit=optional`.
  const orphan = path.join(work, 'orphan')
  const dir = path.join(orphan, 'node_modules', ...PKG.name.split('/'))
  mkdirSync(path.dirname(dir), { recursive: true })
  cpSync(path.join(app, 'node_modules', ...PKG.name.split('/')), dir, { recursive: true })
  writeFileSync(path.join(orphan, 'package.json'), '{"name":"orphan","private":true}')
  for (const [flag, code] of [
    ['-e', "require('@moca/s3-workspace-sync')"],
    ['--input-type=module', "await import('@moca/s3-workspace-sync')"],
  ]) {
    const args = flag === '-e' ? ['-e', code] : [flag, '-e', code]
    const r = run(process.execPath, args, orphan)
    assert.notEqual(r.status, 0)
    const err = r.stderr
    assert.match(err, /ERR_S3WS_NATIVE_BINDING/)
    assert.ok(err.includes(`cannot load the native binary for ${process.platform}-${process.arch}`), err)
    assert.ok(err.includes(PLATFORM_PKG), err)
    assert.ok(err.includes('--omit=optional'), err)
    assert.ok(err.includes('Prebuilt binaries exist for: linux-x64-gnu'), err)
    assert.match(err, /Rust toolchain/)
    if (process.platform === 'linux') assert.match(err, PLATFORM.endsWith('musl') ? /\(musl\)/ : /\(glibc\)/)
  }
})
