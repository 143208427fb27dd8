// The benchmark's own release builds, kept apart from the development build.
//
// `npm run build:debug` (and the tests) overwrite the addon at the repo root
// with a debug build. The benchmark therefore builds the release addon
// straight into bench/.native/ (`napi build --release --output-dir`, which
// leaves the root .node, binding.js and binding.d.ts alone) and makes the
// children load it with NAPI_RS_NATIVE_LIBRARY_PATH, which binding.js
// honours. The floor probe binary is copied beside it. Both are built only
// when missing or when `--build` is passed: a release build with LTO takes
// 10–15 minutes on 2 cores. The results record the build's age and warn when
// sources are newer than the build.

import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, chmodSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { ROOT } from '../scripts/setup.mjs'

export const NATIVE_DIR = path.join(ROOT, 'bench', '.native')
export const FLOOR_PROBE = path.join(NATIVE_DIR, 'floor_probe')
const BUILD_INFO = path.join(NATIVE_DIR, 'build.json')
const PROBE_SRC = path.join(ROOT, 'crates', 'engine', 'examples', 'floor_probe.rs')

function run(cmd, args, opts = {}) {
  console.log(`$ ${cmd} ${args.join(' ')}`)
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'], env: buildEnv, ...opts })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`)
  return r
}

export function addonPath() {
  if (!existsSync(NATIVE_DIR)) return null
  const node = readdirSync(NATIVE_DIR).find((f) => f.endsWith('.node'))
  return node ? path.join(NATIVE_DIR, node) : null
}

function git(args) {
  const r = spawnSync('git', args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] })
  return r.status === 0 ? r.stdout.toString().trim() : ''
}

/** The sources at HEAD, exported into a temp directory (the working tree is not touched). */
function exportHead() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 's3ws-bench-src-'))
  const r = spawnSync('sh', ['-c', `git archive --format=tar HEAD | tar -x -m -C '${dir}'`], { cwd: ROOT, stdio: 'inherit' })
  if (r.status !== 0) throw new Error('git archive HEAD failed')
  // The probe is the benchmark's, whether or not it is committed yet.
  mkdirSync(path.join(dir, 'crates', 'engine', 'examples'), { recursive: true })
  copyFileSync(PROBE_SRC, path.join(dir, 'crates', 'engine', 'examples', 'floor_probe.rs'))
  return dir
}

// Builds from HEAD use a target directory of their own: cargo decides that a
// path crate is fresh by comparing mtimes, so sharing one directory between
// an exported tree and the working tree could reuse the other's build.
let buildEnv = process.env
function useTargetDir(fromHead) {
  const base = process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target')
  buildEnv = fromHead ? { ...process.env, CARGO_TARGET_DIR: path.join(base, 'bench-head') } : process.env
}

function buildAddon(src) {
  mkdirSync(NATIVE_DIR, { recursive: true })
  run('npx', ['napi', 'build', '--cwd', src, '--platform', '--release', '--output-dir', NATIVE_DIR, '--no-js', '--dts', 'binding.d.ts'])
}

function buildFloorProbe(src) {
  mkdirSync(NATIVE_DIR, { recursive: true })
  // Same --target as `napi build --platform` uses, so the two builds share
  // their compiled dependencies.
  const host = /^host: (.+)$/m.exec(spawnSync('rustc', ['-vV']).stdout?.toString() ?? '')?.[1]
  const args = ['build', '--release', '-p', 's3ws-engine', '--example', 'floor_probe', '--message-format=json-render-diagnostics']
  if (host) args.push('--target', host)
  console.log(`$ cargo ${args.join(' ')}`)
  const r = spawnSync('cargo', args, { cwd: src, env: buildEnv, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 256 << 20 })
  if (r.status !== 0) throw new Error(`cargo build of floor_probe failed (exit ${r.status ?? r.signal})`)
  let exe = null
  for (const line of r.stdout.toString().split('\n')) {
    if (!line.startsWith('{')) continue
    const msg = JSON.parse(line)
    if (msg.reason === 'compiler-artifact' && msg.target?.name === 'floor_probe' && msg.executable) exe = msg.executable
  }
  if (!exe) throw new Error('cargo did not report the floor_probe executable')
  copyFileSync(exe, FLOOR_PROBE)
  chmodSync(FLOOR_PROBE, 0o755)
}

/** Newest mtime (ms) of the Rust sources and manifests the builds depend on. */
function newestSource() {
  let newest = 0
  const walk = (p) => {
    const st = statSync(p)
    if (st.isDirectory()) for (const f of readdirSync(p)) walk(path.join(p, f))
    else if (/\.(rs|toml)$/.test(p)) newest = Math.max(newest, st.mtimeMs)
  }
  for (const p of ['src', 'crates/engine/src', 'crates/engine/examples', 'Cargo.toml', 'crates/engine/Cargo.toml', 'Cargo.lock']) {
    const full = path.join(ROOT, p)
    if (existsSync(full)) walk(full)
  }
  return newest
}

/**
 * The package as it was at git revision `rev`, with its own release addon:
 * exported once to bench/.native-baseline/<commit>/ and built there (the
 * shared cargo cache serves the dependencies; the path crates differ by
 * path, so the two builds never mix). Returns the directory to require()
 * and the .node to load, for the `baseline` implementation.
 */
export function ensureBaseline(rev) {
  const commit = git(['rev-parse', '--short', `${rev}^{commit}`])
  if (!commit) throw new Error(`--baseline: ${rev} is not a commit`)
  const dir = path.join(ROOT, 'bench', '.native-baseline', commit)
  const nodeFile = () => (existsSync(dir) ? readdirSync(dir).find((f) => f.endsWith('.node')) : undefined)
  if (!nodeFile()) {
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
    const r = spawnSync('sh', ['-c', `git archive --format=tar ${commit} | tar -x -m -C '${dir}'`], { cwd: ROOT, stdio: 'inherit' })
    if (r.status !== 0) throw new Error(`git archive ${commit} failed`)
    useTargetDir(false)
    run('npx', ['napi', 'build', '--cwd', dir, '--platform', '--release', '--output-dir', dir, '--no-js'])
  }
  return { dir, addon: path.join(dir, nodeFile()), commit }
}

/**
 * Makes sure both release builds exist; returns their paths and where they
 * came from. `rebuild`: false (build only what is missing), 'worktree' (the
 * working tree as it is) or 'head' (the last commit, via git archive).
 */
export function ensureNative({ rebuild = false } = {}) {
  const buildAddonToo = Boolean(rebuild) || !addonPath()
  // The probe is the benchmark's own file: rebuilt also when it changed.
  const buildProbe = buildAddonToo || !existsSync(FLOOR_PROBE) || statSync(PROBE_SRC).mtimeMs > statSync(FLOOR_PROBE).mtimeMs
  if (buildAddonToo || buildProbe) {
    // A probe rebuilt on its own comes from HEAD too: it needs only the
    // engine's HTTP client, and HEAD compiles even while the working tree is
    // mid-edit.
    const fromHead = rebuild === 'head' || (!buildAddonToo && rebuild !== 'worktree')
    const src = fromHead ? exportHead() : ROOT
    useTargetDir(fromHead)
    try {
      const commit = git(['rev-parse', '--short', 'HEAD'])
      const dirty = !fromHead && git(['status', '--porcelain', '--untracked-files=no']) !== ''
      if (buildAddonToo) {
        buildAddon(src)
        writeFileSync(BUILD_INFO, JSON.stringify({ source: fromHead ? `HEAD ${commit}` : `working tree at ${commit}${dirty ? ' + uncommitted changes' : ''}` }))
      }
      buildFloorProbe(src)
    } finally {
      if (fromHead) rmSync(src, { recursive: true, force: true })
    }
  }
  const addon = addonPath()
  if (!addon) throw new Error(`no .node file in ${NATIVE_DIR} after the build`)
  const builtAt = statSync(addon).mtimeMs
  let source = 'unknown'
  try {
    source = JSON.parse(readFileSync(BUILD_INFO, 'utf8')).source
  } catch {
    // built before build.json existed
  }
  return {
    addon,
    floorProbe: FLOOR_PROBE,
    builtAt: new Date(builtAt).toISOString(),
    source,
    stale: newestSource() > builtAt,
  }
}
