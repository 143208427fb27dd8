import cjs from './index.js'

export const {
  S3WorkspaceSync,
  SyncIgnoreFilter,
  SyncError,
  PathValidationError,
  S3OperationError,
  AbortError,
  createDefaultLogger,
  validateStoragePath,
  guessContentType,
  calculateFileHash,
  calculateContentHash,
} = cjs
export default cjs
