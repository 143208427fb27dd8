// @ts-check
'use strict'

// Loads the native addon through the loader that `napi build` generates
// (binding.js): the `.node` file beside it when there is one (a source
// build), else the platform package `@moca/s3-workspace-sync-<platform>` that
// npm installed as an optional dependency. When neither loads, this throws an
// error that names the platform, the package it expected and what to do.

const { readFileSync } = require('node:fs')

const PACKAGE = '@moca/s3-workspace-sync'
const BINARY = 's3-workspace-sync'
// Keep in step with napi.targets in package.json and the README's Install section.
const SUPPORTED = ['linux-x64-gnu', 'linux-x64-musl', 'linux-arm64-gnu', 'linux-arm64-musl', 'darwin-x64', 'darwin-arm64', 'win32-x64-msvc']

/** 'glibc', 'musl' or null (unknown), on Linux. */
function linuxLibc() {
  try {
    const report = /** @type {any} */ (process.report && process.report.getReport())
    if (report && report.header && report.header.glibcVersionRuntime) return 'glibc'
    if (report && Array.isArray(report.sharedObjects) && report.sharedObjects.some((/** @type {string} */ f) => /ld-musl-|libc\.musl-/.test(f))) {
      return 'musl'
    }
  } catch {
    // fall through
  }
  try {
    return readFileSync('/usr/bin/ldd', 'utf8').includes('musl') ? 'musl' : 'glibc'
  } catch {
    return null
  }
}

/** napi-rs's name for this platform, as in the package and file names. @param {string | null} libc */
function platformTriple(libc) {
  const { platform, arch } = process
  if (platform === 'linux') return `linux-${arch}-${libc === 'musl' ? 'musl' : 'gnu'}`
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

/** @param {any} error */
function causes(error) {
  /** @type {string[]} */
  const lines = []
  for (let e = error, depth = 0; e && depth < 12; e = e.cause, depth++) {
    const message = String((e && e.message) || e).split('\n')[0]
    if (!lines.includes(message)) lines.push(message)
  }
  return lines
}

/** @param {unknown} cause */
function bindingError(cause) {
  const libc = process.platform === 'linux' ? linuxLibc() : null
  const triple = platformTriple(libc)
  const expected = `${PACKAGE}-${triple}`
  const where = `${process.platform}-${process.arch}${libc ? ` (${libc})` : ''}`
  const supported = SUPPORTED.includes(triple)
  const lines = [
    `${PACKAGE}: cannot load the native binary for ${where}, Node.js ${process.version}.`,
    supported
      ? `It comes from the optional dependency ${expected} (file ${BINARY}.${triple}.node), which is missing or could not be loaded.`
      : `There is no prebuilt binary for this platform (it would be the package ${expected}).`,
    'What to do:',
    `- Reinstall without --no-optional / --omit=optional (yarn: --ignore-optional): ${expected} is installed as an optional dependency. If a lockfile made on another platform left it out, delete node_modules and package-lock.json and run npm install again.`,
    '- Installing on one machine for another (say a Lambda or container bundle built on macOS or Windows): run npm install for the target, e.g. `npm install --os=linux --cpu=arm64 --libc=glibc`, or inside the target image.',
    `- Prebuilt binaries exist for: ${SUPPORTED.join(', ')} (see "Install" in the README).`,
    `- Otherwise build from source with a Rust toolchain (https://rustup.rs): in a clone of the repository, \`npm install && npm run build\` puts ${BINARY}.${triple}.node next to the loader.`,
    'Loader errors:',
    ...causes(cause).map((line) => `  ${line}`),
  ]
  const error = /** @type {Error & { code?: string }} */ (new Error(lines.join('\n'), { cause }))
  error.code = 'ERR_S3WS_NATIVE_BINDING'
  error.cause = cause // Node < 16.9 ignores the options form
  return error
}

try {
  /** @type {typeof import('./binding')} */
  module.exports = require('./binding.js')
} catch (cause) {
  throw bindingError(cause)
}
