// Packaging helpers shared by pack.test.mjs (what the tarballs hold and how
// they install; no S3 server) and pack-installed.test.mjs (the installed
// package used against the test server). They need the addon built (npm
// test, or npm run build:debug), not a server.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const PKG = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
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

export const PLATFORM = hostPlatform()
export const PLATFORM_DIR = path.join(ROOT, 'npm', PLATFORM)
export const NODE_FILE = `${BINARY}.${PLATFORM}.node`
export const PLATFORM_PKG = `${PKG.name}-${PLATFORM}`
/** Why the packaging tests cannot run on this machine, or false. */
export const skip = existsSync(path.join(PLATFORM_DIR, 'package.json')) ? false : `no npm/${PLATFORM} package: not a napi target`

/** The environment without npm's own variables (npm test sets many) and loader overrides. */
export function cleanEnv(extra = {}) {
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

export function run(cmd, args, cwd, env = cleanEnv()) {
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

/**
 * `npm pack` the main package and this platform's package (npm/<platform>/
 * from `napi create-npm-dirs`, plus the .node at the root), and install both
 * tarballs into an empty project under a new temp directory `work`, with the
 * registry unreachable. Also returns `npm` (offline, with a cache of its own
 * under `work`, so runs do not pile up tarballs) and `pack` (`npm pack
 * --json` of a directory into another: { filename, files: [paths],
 * unpackedSize, path }) for further packing and installing.
 */
export function installTarballs() {
  assert.ok(existsSync(path.join(ROOT, NODE_FILE)), `${NODE_FILE} is missing at the root: run npm test (or npm run build:debug)`)
  const work = mkdtempSync(path.join(os.tmpdir(), 's3ws-pack-'))
  /** @param {string[]} args @param {string} cwd */
  const npm = (args, cwd) => {
    const r = run('npm', args, cwd, cleanEnv({ ...OFFLINE, npm_config_cache: path.join(work, 'npm-cache') }))
    assert.equal(r.status, 0, `npm ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`)
    return r.stdout
  }
  const pack = (dir, dest) => {
    const out = npm(['pack', '--json', '--ignore-scripts', '--pack-destination', dest], dir)
    const [info] = JSON.parse(out.slice(out.indexOf('[')))
    return { ...info, files: info.files.map((f) => f.path).sort(), path: path.join(dest, path.basename(info.filename)) }
  }
  const tarballs = path.join(work, 'tarballs')
  mkdirSync(tarballs)
  const main = pack(ROOT, tarballs)
  // The release job gets here with `napi artifacts`; a copy keeps npm/ clean.
  const stage = path.join(work, 'stage', PLATFORM)
  mkdirSync(stage, { recursive: true })
  for (const f of readdirSync(PLATFORM_DIR)) copyFileSync(path.join(PLATFORM_DIR, f), path.join(stage, f))
  copyFileSync(path.join(ROOT, NODE_FILE), path.join(stage, NODE_FILE))
  const platform = pack(stage, tarballs)

  const app = path.join(work, 'app')
  mkdirSync(app)
  writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'pack-smoke', version: '1.0.0', private: true }, null, 2))
  npm(['install', '--no-audit', '--no-fund', main.path, platform.path], app)
  return { work, app, main, platform, npm, pack }
}
