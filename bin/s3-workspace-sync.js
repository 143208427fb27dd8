#!/usr/bin/env node
// @ts-check
'use strict'

// The command line (see lib/cli.js and `s3-workspace-sync --help`).

// A SIGINT/SIGTERM that comes while the engine is still loading (a
// container stopped as it starts) is held, not the default kill: the
// command takes it as soon as it can stop cleanly (watch: with a final push).
/** @type {NodeJS.Signals[]} */
const signals = []
/** @param {NodeJS.Signals} sig */
const hold = (sig) => signals.push(sig)
process.on('SIGINT', hold)
process.on('SIGTERM', hold)
const release = () => {
  process.off('SIGINT', hold)
  process.off('SIGTERM', hold)
}

require('../lib/cli.js')
  .main(process.argv.slice(2), { heldSignals: { signals, release } })
  .then(
    (code) => {
      process.exitCode = code
    },
    (e) => {
      process.stderr.write(`error: ${e?.message ?? e}\n`)
      process.exitCode = 2
    },
  )
  .finally(release)
