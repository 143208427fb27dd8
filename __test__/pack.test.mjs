// Packaging, end to end: `npm pack` the main package and this platform's
// package (npm/<platform>/ from `napi create-npm-dirs`, plus the .node that
// `npm test` built), install both tarballs into an empty project outside the
// repository with the registry unreachable, and use the package from there,
// through `require` and through `import`, against the test server. Also: what
// the tarballs hold, and the error when no binary fits the platform.

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { endpoint, newBucket, seed, listKeys, getObject, headObject, randomBuffer, md5 } from './helpers.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const PKG = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
const BINARY = PKG.napi.binaryName

/** napi-rs's platform name for this machine (`linux-x64-gnu`, `darwin-arm64`, ...). */
function hostPlatform() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const glibc = Boolean(process.report?.getReport()?.header?.glibcVersionRuntime)
    return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

const PLATFORM = hostPlatform()
const PLATFORM_DIR = path.join(ROOT, 'npm', PLATFORM)
const NODE_FILE = `${BINARY}.${PLATFORM}.node`
const PLATFORM_PKG = `${PKG.name}-${PLATFORM}`
const skip = existsSync(path.join(PLATFORM_DIR, 'package.json')) ? false : `no npm/${PLATFORM} package: not a napi target`

/** The environment without npm's own variables (npm test sets many) and loader overrides. */
function cleanEnv(extra = {}) {
  const env = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_/i.test(k) || k === 'NAPI_RS_NATIVE_LIBRARY_PATH' || k === 'NODE_OPTIONS') continue
    env[k] = v
  }
  return { ...env, ...extra }
}

// Nothing may come from a registry: the tarballs have to be enough.
const OFFLINE = {
  npm_config_registry: 'http://127.0.0.1:9/',
  npm_config_fetch_retries: '0',
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
}

function run(cmd, args, cwd, env = cleanEnv()) {
  const windows = process.platform === 'win32'
  const r = spawnSync(windows && cmd === 'npm' ? 'npm.cmd' : cmd, args, {
    cwd,
    env,
    encoding: 'utf8',
    shell: windows && cmd === 'npm', // .cmd files need a shell
    maxBuffer: 64 << 20,
  })
  return { status: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') }
}

/** npm, offline, with a cache of its own (removed with the temp dir, so runs do not pile up tarballs). */
function npm(args, cwd) {
  const r = run('npm', args, cwd, cleanEnv({ ...OFFLINE, npm_config_cache: path.join(work, 'npm-cache') }))
  assert.equal(r.status, 0, `npm ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`)
  return r.stdout
}

/** `npm pack --json` of `dir` into `dest`: { filename, files: [paths], unpackedSize, path }. */
function pack(dir, dest) {
  const out = npm(['pack', '--json', '--ignore-scripts', '--pack-destination', dest], dir)
  const [info] = JSON.parse(out.slice(out.indexOf('[')))
  return { ...info, files: info.files.map((f) => f.path).sort(), path: path.join(dest, path.basename(info.filename)) }
}

let work, app, main, platform

before(async () => {
  if (skip) return
  assert.ok(existsSync(path.join(ROOT, NODE_FILE)), `${NODE_FILE} is missing at the root: run npm test (or npm run build:debug)`)
  work = mkdtempSync(path.join(os.tmpdir(), 's3ws-pack-'))
  const tarballs = path.join(work, 'tarballs')
  mkdirSync(tarballs)
  main = pack(ROOT, tarballs)
  // The release job gets here with `napi artifacts`; a copy keeps npm/ clean.
  const stage = path.join(work, 'stage', PLATFORM)
  mkdirSync(stage, { recursive: true })
  for (const f of readdirSync(PLATFORM_DIR)) copyFileSync(path.join(PLATFORM_DIR, f), path.join(stage, f))
  copyFileSync(path.join(ROOT, NODE_FILE), path.join(stage, NODE_FILE))
  platform = pack(stage, tarballs)

  app = path.join(work, 'app')
  mkdirSync(app)
  writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'pack-smoke', version: '1.0.0', private: true }, null, 2))
  npm(['install', '--no-audit', '--no-fund', main.path, platform.path], app)
  writeFileSync(path.join(app, 'smoke.cjs'), smokeScript('require'))
  writeFileSync(path.join(app, 'smoke.mjs'), smokeScript('import'))
})

after(() => {
  if (work) rmSync(work, { recursive: true, force: true })
})

const FORBIDDEN = /(^|\/)(__test__|crates|src|target|bench|scripts|npm|node_modules|\.ci|\.github|\.cache)\/|\.(node|map|rs|tgz|log)$|(^|\/)Cargo\.(toml|lock)$|(^|\/)\.(git|npm)ignore$/

test('main tarball: the declared files and nothing else', { skip }, () => {
  // An entry ending in `/` declares a directory: every file under it.
  const isDeclared = (f) => f === 'package.json' || PKG.files.some((d) => (d.endsWith('/') ? f.startsWith(d) : f === d))
  for (const d of PKG.files) assert.ok(main.files.some((f) => (d.endsWith('/') ? f.startsWith(d) : f === d)), `${d} is declared in files but not packed`)
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
  assert.deepEqual(readdirSync(mainDir).filter((f) => f.endsWith('.node')), [])
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
  for (const [name, total] of [['download', 3], ['upload', 2]]) {
    const events = phase(name)
    assert.ok(events.length > 0, `no ${name} progress`)
    assert.equal(events[0].total, total)
    assert.equal(events.at(-1).current, total)
    assert.equal(events.at(-1).percentage, 100)
  }

  assert.deepEqual(await listKeys(bucket, prefix), [`${prefix}data/blob.bin`, `${prefix}new.txt`, `${prefix}notes/todo.md`])
  assert.equal((await getObject(bucket, `${prefix}notes/todo.md`)).toString(), '# todo\n- [ ] ship\n- [x] packaged\n')
  assert.equal((await getObject(bucket, `${prefix}new.txt`)).toString(), `written via ${mode}\n`)
}

test('require(): pull → edit → push with progress, from the installed tarballs', { skip }, () => smoke('require'))

test('import: pull → edit → push with progress, from the installed tarballs', { skip }, () => smoke('import'))

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

test('the installed CLI draws a live progress line on a terminal (under script(1))', { skip: skip || (process.platform !== 'linux' && 'script(1) flags are util-linux') }, async () => {
  const bucket = await newBucket()
  const files = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`f${i}.bin`, randomBuffer(64 * 1024)]))
  await seed(bucket, 'tty/', files)
  const bin = path.join(app, 'node_modules', '.bin', 's3-workspace-sync')
  const command = [bin, 'pull', '--bucket', bucket, '--prefix', 'tty/', '--dir', path.join(work, 'ws-tty'), '--endpoint', endpoint].map((a) => `'${a}'`).join(' ')
  const r = run('script', ['-qec', command, '/dev/null'], app, cleanEnv())
  assert.equal(r.status, 0, r.stdout + r.stderr)
  // Redrawn in place (carriage return / cursor moves), with percent (by bytes), bytes, files, rate and time.
  assert.match(r.stdout, /\r|\x1b\[/)
  assert.match(r.stdout, /download +100% +1\.9\/1\.9 MiB +30\/30 files +[\d.]+ MiB\/s +\d+s elapsed/)
  assert.match(r.stdout, /Pull: 30 downloaded/)
})

test('the installed CLI: watch pushes changes as they happen and a final push on SIGINT', { skip: skip || (process.platform === 'win32' && 'signals') }, async () => {
  const { spawn } = await import('node:child_process')
  const bucket = await newBucket()
  await seed(bucket, 'w/', { 'a.txt': 'a' })
  const dir = path.join(work, 'ws-watch')
  const bin = path.join(app, 'node_modules', '.bin', 's3-workspace-sync')
  const child = spawn(bin, ['watch', '--bucket', bucket, '--prefix', 'w/', '--dir', dir, '--endpoint', endpoint, '--debounce', '200', '--json'], { cwd: app, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
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
  assert.deepEqual(await listKeys(bucket, 'w/'), ['w/a.txt', 'w/at-exit.txt', 'w/live.txt'])
})
