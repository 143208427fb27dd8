// Must NOT compile: wrong option types and unknown options.
import { S3WorkspaceSync, guessContentType } from '@moca/s3-workspace-sync'

guessContentType(42)
new S3WorkspaceSync({ bucket: 'b', prefix: 'p', workspaceDir: '/tmp', notAnOption: true })
