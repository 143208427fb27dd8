// Must NOT compile: wrong option types, unknown options, bad operation options.
import { S3WorkspaceSync, guessContentType } from '@moca/s3-workspace-sync'

guessContentType(42)
const sync = new S3WorkspaceSync({ bucket: 'b', prefix: 'p', workspaceDir: '/tmp', notAnOption: true })
sync.pull({ dryRun: 'yes' })
new S3WorkspaceSync({ bucket: 'b', prefix: 'p', workspaceDir: '/tmp', logLevel: 'verbose' })
sync.watch({ direction: 'sideways' })
