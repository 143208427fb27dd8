// Per-user scoped credentials: each user's agent may only touch its own
// prefix. The credential provider is called whenever the engine needs fresh
// credentials (long pulls keep working as they rotate). Pair it with the IAM
// policy in examples/iam-policy.json (or the README's IAM section).
//
// Needs, besides this package: npm install @aws-sdk/client-s3 @aws-sdk/credential-providers
import { S3Client } from '@aws-sdk/client-s3'
import { fromCognitoIdentityPool } from '@aws-sdk/credential-providers'
import { S3WorkspaceSync } from '@moca/s3-workspace-sync'

export function workspaceFor(userId, idToken) {
  const client = new S3Client({
    region: process.env.AWS_REGION,
    credentials: fromCognitoIdentityPool({
      identityPoolId: process.env.IDENTITY_POOL_ID,
      logins: { [process.env.USER_POOL_PROVIDER]: idToken },
    }),
  })
  return new S3WorkspaceSync({
    bucket: process.env.WORKSPACE_BUCKET,
    prefix: `users/${userId}/workspace/`,
    workspaceDir: `/tmp/ws-${userId}`,
    s3Client: client, // a stock client: the native engine uses its region and credentials
  })
}
