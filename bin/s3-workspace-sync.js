#!/usr/bin/env node
// @ts-check
'use strict'

// The command line (see lib/cli.js and `s3-workspace-sync --help`).

require('../lib/cli.js')
  .main(process.argv.slice(2))
  .then(
    (code) => {
      process.exitCode = code
    },
    (e) => {
      process.stderr.write(`error: ${e?.message ?? e}\n`)
      process.exitCode = 2
    },
  )
