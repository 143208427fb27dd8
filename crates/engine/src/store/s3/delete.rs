//! Deletes: batches of conditional keys, or single conditional requests.

use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use futures::StreamExt;

use crate::error::{Error, Result, S3Error};
use crate::store::answers::{missing_is_conflict, quote_etag};

use super::errors::not_implemented;
use super::probes::Probe;
use super::S3Store;

/// Keys per `DeleteObjects` request (S3's limit), and requests at once.
const DELETE_BATCH: usize = 1000;
const DELETE_BATCHES_IN_FLIGHT: usize = 4;
/// Single deletes at once, where batches cannot be trusted.
const DELETES_IN_FLIGHT: usize = 16;

impl S3Store {
    /// `DeleteObjects` of up to 1,000 keys per request, a few requests at
    /// once, each key conditional on its ETag (`ObjectIdentifier.ETag`);
    /// where the server ignores that condition (probed once, when it
    /// matters), one `DeleteObject` with `If-Match` per key, a few at once.
    pub(super) async fn delete_objects(
        &self,
        objects: &[(String, Option<String>)],
    ) -> Vec<(String, Result<()>)> {
        let conditional = objects.iter().any(|(_, etag)| etag.is_some());
        let batched = objects.len() > 1
            && !self.batch_refused()
            && (!conditional || (self.trusted().await && self.honours(Probe::BatchDelete).await));
        if !batched {
            return self.delete_singles(objects).await;
        }
        let batches: Vec<Vec<(String, Option<String>)>> =
            objects.chunks(DELETE_BATCH).map(<[_]>::to_vec).collect();
        futures::stream::iter(batches)
            .map(|batch| self.delete_batch(batch))
            .buffered(DELETE_BATCHES_IN_FLIGHT)
            .flat_map(futures::stream::iter)
            .collect()
            .await
    }

    /// One `DeleteObjects` request; a failure of the whole request fails
    /// its first key and leaves the others not attempted.
    pub(super) async fn delete_batch(
        &self,
        batch: Vec<(String, Option<String>)>,
    ) -> Vec<(String, Result<()>)> {
        let identifiers: Vec<ObjectIdentifier> = batch
            .iter()
            .filter_map(|(key, if_match)| {
                ObjectIdentifier::builder()
                    .key(key)
                    .set_e_tag(if_match.as_deref().map(quote_etag))
                    .build()
                    .ok()
            })
            .collect();
        let answer = match Delete::builder()
            .set_objects(Some(identifiers))
            .quiet(true)
            .build()
        {
            Ok(delete) => self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| self.error("DeleteObjects", &batch[0].0, e)),
            Err(e) => Err(Error::task("building the DeleteObjects request", e)),
        };
        match answer {
            // Quiet: only the keys that failed are named.
            Ok(out) => {
                let failed: std::collections::HashMap<&str, &aws_sdk_s3::types::Error> = out
                    .errors()
                    .iter()
                    .filter_map(|e| Some((e.key()?, e)))
                    .collect();
                batch
                    .iter()
                    .map(|(key, if_match)| {
                        let result = match failed.get(key.as_str()) {
                            None => Ok(()),
                            Some(e) => missing_is_conflict(
                                Err(self.delete_error(key, e)),
                                if_match.is_some(),
                            ),
                        };
                        (key.clone(), result)
                    })
                    .collect()
            }
            // A server without DeleteObjects (GCS's XML API, some
            // gateways): one DeleteObject per key, from now on.
            Err(e) if not_implemented(&e) => {
                self.refuse_batches(&e);
                self.delete_singles(&batch).await
            }
            Err(e) => vec![(batch[0].0.clone(), Err(e))],
        }
    }

    /// One `DeleteObject` per key (conditional on its ETag), a few at once.
    async fn delete_singles(
        &self,
        objects: &[(String, Option<String>)],
    ) -> Vec<(String, Result<()>)> {
        let singles = objects.iter().cloned().map(|(key, etag)| async move {
            let result = crate::store::Store::delete(self, &key, etag.as_deref()).await;
            (key, result)
        });
        futures::stream::iter(singles)
            .buffered(DELETES_IN_FLIGHT)
            .collect()
            .await
    }

    /// One key's failure in a `DeleteObjects` answer.
    fn delete_error(&self, key: &str, e: &aws_sdk_s3::types::Error) -> Error {
        let code = e.code().unwrap_or("Unknown");
        let message = format!(
            "DeleteObjects s3://{}/{key} at {} failed: {code}: {}",
            self.bucket,
            self.endpoint,
            e.message().unwrap_or("")
        );
        match code {
            "PreconditionFailed" => Error::Conflict(message),
            _ => S3Error::new("DeleteObjects", key, code, message).into(),
        }
    }
}
