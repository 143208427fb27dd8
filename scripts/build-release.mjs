// The release build of one napi target, exactly as the release workflow
// makes it: `npm run build:release -- [--target <triple>] [--output-dir <dir>]`
// (default: this machine's target, into the package root). The workflow
// calls this script, so the two cannot drift.
//
// Linux targets go through cargo-zigbuild (zig and cargo-zigbuild from
// PyPI, installed into a private venv on first use); the glibc ones link
// against glibc 2.17, so they load on Amazon Linux 2 (glibc 2.26: Lambda's
// older runtimes) and every newer distribution. `checkBinary` is what the
// workflow and `__test__/release.test.mjs` check of the result.

import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { ROOT, ensurePyPI, run } from './setup.mjs'

/** How each target of `package.json` → `napi.targets` is built. */
export const RELEASE_TARGETS = {
  'x86_64-unknown-linux-gnu': { zig: '.2.17' },
  'aarch64-unknown-linux-gnu': { zig: '.2.17' },
  'x86_64-unknown-linux-musl': { zig: '' },
  'aarch64-unknown-linux-musl': { zig: '' },
  'x86_64-apple-darwin': {},
  'aarch64-apple-darwin': {},
  'x86_64-pc-windows-msvc': {},
}

/** The newest glibc a linux-gnu binary may need (Amazon Linux 2). */
export const MAX_GLIBC = '2.26'

const ZIG = { ziglang: '0.17.1', 'cargo-zigbuild': '0.24.1' }

/** This machine's target triple, as rustc names it. */
export function hostTarget() {
  const out = spawnSync('rustc', ['-vV'], { encoding: 'utf8' })
  const host = out.stdout?.match(/^host: (\S+)$/m)?.[1]
  if (!host) throw new Error(`rustc -vV did not name the host target: ${out.stderr || out.error}`)
  return host
}

/** PATH with zig and cargo-zigbuild (from PyPI, in a private venv) in front. */
function zigPath() {
  const specs = Object.entries(ZIG).map(([name, version]) => `${name}==${version}`)
  const bin = path.dirname(ensurePyPI(`zig-${ZIG.ziglang}`, specs, 'cargo-zigbuild'))
  // The ziglang wheel ships the zig binary inside the package; `python-zig`
  // (its launcher) is not named `zig`, which is what napi and cargo-zigbuild run.
  const python = path.join(bin, process.platform === 'win32' ? 'python.exe' : 'python')
  const found = spawnSync(python, ['-c', 'import ziglang, os; print(os.path.dirname(ziglang.__file__))'], { encoding: 'utf8' })
  if (found.status !== 0) throw new Error(`the ziglang package is not importable: ${found.stderr}`)
  return [found.stdout.trim(), bin, process.env.PATH].join(path.delimiter)
}

/** Builds the release binary of `target` into `outputDir`; returns its path. */
export function buildRelease({ target = hostTarget(), outputDir = ROOT } = {}) {
  const how = RELEASE_TARGETS[target]
  if (!how) throw new Error(`no release build is defined for ${target}: one of ${Object.keys(RELEASE_TARGETS).join(', ')}`)
  const args = ['napi', 'build', '--platform', '--release', '--js', 'binding.js', '--dts', 'binding.d.ts', '--output-dir', outputDir]
  const env = { ...process.env }
  if (how.zig !== undefined) {
    args.push('--target', target + how.zig, '--cross-compile')
    env.PATH = zigPath()
    // A target directory of its own: zig as C compiler and linker would
    // otherwise rebuild, and be rebuilt by, the plain builds of the target.
    env.CARGO_TARGET_DIR = path.join(process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target'), 'zig')
  } else {
    args.push('--target', target)
  }
  console.log(`Release build of ${target}${how.zig !== undefined ? ` with cargo-zigbuild${how.zig ? ` (glibc ${how.zig.slice(1)})` : ''}` : ''} ...`)
  run('npx', args, { env, shell: process.platform === 'win32' })
  return path.join(outputDir, `s3-workspace-sync.${napiPlatform(target)}.node`)
}

/** The platform suffix napi gives a target's binary (`linux-x64-gnu`). */
function napiPlatform(target) {
  const [arch, , os, abi] = target.split('-')
  const cpu = { x86_64: 'x64', aarch64: 'arm64' }[arch] ?? arch
  if (os === 'darwin') return `darwin-${cpu}`
  if (os === 'windows') return `win32-${cpu}-${abi}`
  return `${os}-${cpu}-${abi}`
}

/** The newest `GLIBC_x.y` version `file` needs (readelf), or null when it needs none. */
export function newestGlibc(file) {
  const out = spawnSync('readelf', ['-V', '--wide', file], { encoding: 'utf8', maxBuffer: 1 << 28 })
  if (out.status !== 0) throw new Error(`readelf -V ${file} failed (binutils installed?): ${out.stderr || out.error}`)
  const versions = [...out.stdout.matchAll(/GLIBC_(\d+(?:\.\d+)+)/g)].map((m) => m[1])
  return versions.sort(compareVersions).at(-1) ?? null
}

export function compareVersions(a, b) {
  const [x, y] = [a, b].map((v) => v.split('.').map(Number))
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0)
    if (d) return d
  }
  return 0
}

/** Throws unless `file` (a linux-gnu binary) needs no glibc newer than MAX_GLIBC. */
export function checkGlibc(file) {
  const newest = newestGlibc(file)
  console.log(`${path.basename(file)}: newest glibc symbol version ${newest ?? '(none)'} (at most ${MAX_GLIBC})`)
  if (newest && compareVersions(newest, MAX_GLIBC) > 0) {
    throw new Error(`${file} needs GLIBC_${newest}, newer than ${MAX_GLIBC} (Amazon Linux 2)`)
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2)
  const value = (flag) => {
    const i = args.indexOf(flag)
    return i === -1 ? undefined : args[i + 1]
  }
  const target = value('--target') ?? hostTarget()
  const file = buildRelease({ target, outputDir: path.resolve(value('--output-dir') ?? ROOT) })
  if (target.endsWith('-linux-gnu')) checkGlibc(file)
}
