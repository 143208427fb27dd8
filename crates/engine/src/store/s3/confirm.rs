//! Large writes confirmed where the server checks a condition before it
//! stores rather than as it stores. moto and SeaweedFS do so: two writers
//! completing uploads of one key at the same moment can both pass
//! `If-None-Match` (or one `If-Match`), both are told their bytes are
//! stored, and the first one's are gone. Assembling a large object takes
//! the server long enough for that to happen often (moto 5.2.5: one of two
//! new 20 MiB files lost in 9 races of 10, before this). AWS applies
//! conditions atomically: nothing to do there.

use std::time::Duration;

use super::S3Store;
use crate::error::{Error, Result};
use crate::model::Condition;
use crate::store::{PutRequest, Written};

/// How long a write waits for other uploads of its key to end before it
/// looks at what S3 holds. Only one completing meanwhile matters, and a
/// completion takes the server milliseconds; an upload still sending
/// parts will meet this write's object when it completes (its condition
/// then fails), and one left by a killed process never ends (a push's
/// clean-up aborts it a day later). Neither can be told from a completion
/// by its listing (moto gives every upload the same start time), so each
/// costs a write of its key this wait.
const OTHERS_WAIT: Duration = Duration::from_secs(2);

impl S3Store {
    /// `written`, once S3 is seen to hold this write's bytes (`hash`).
    /// Another writer's uploads of the key still in flight are waited for
    /// (up to `OTHERS_WAIT`) first: one of them may be completing over
    /// this write, its check passed before this write was stored. Then a
    /// HEAD (beside the first listing): someone else's bytes there, or
    /// none, are a conflict, as a refused condition is (the local file
    /// stays as it is, and the next pull keeps it beside S3's version).
    ///
    /// What this cannot see: a writer sending one PUT (not listed while in
    /// flight: another tool, or this package where the server ignores
    /// `If-Match` on completions), and a completion that ends its upload
    /// before it stores (moto) at the moment of the last look. A new file
    /// lost so is kept by the loser's next pull (`answers::NEW_META`).
    pub(super) async fn confirm(
        &self,
        req: &PutRequest<'_>,
        written: Written,
        hash: &str,
    ) -> Result<Written> {
        if *req.condition == Condition::None || self.applies_atomically() {
            return Ok(written);
        }
        // The listing and the look side by side: with no other upload
        // in flight, the look is the answer (one round trip, not two).
        let head = || crate::store::Store::head(self, req.key);
        let (mut others, mut now) = tokio::join!(self.others_uploading(req.key), head());
        if others {
            let deadline = tokio::time::Instant::now() + OTHERS_WAIT;
            let mut pause = Duration::from_millis(50);
            while others && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
                others = self.others_uploading(req.key).await;
            }
            // moto ends an upload, then stores its object: one more pause
            // so that store lands before the look.
            tokio::time::sleep(pause).await;
            now = head().await;
        }
        let now = now?;
        let ours = now.as_ref().is_some_and(|o| {
            o.hash.as_deref() == Some(hash) || (o.etag.is_some() && o.etag == written.etag)
        });
        if ours {
            return Ok(written);
        }
        Err(Error::Conflict(format!(
            "s3://{}/{}: another writer's version replaced this one as it was stored (the \
             server checks conditions before it stores, not as it stores); this version is \
             not on S3",
            self.bucket, req.key
        )))
    }

    /// Whether uploads of exactly `key` are in flight. A listing that
    /// fails (the permission is optional) says no: the HEAD still looks.
    async fn others_uploading(&self, key: &str) -> bool {
        let Ok(page) = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(key)
            .send()
            .await
        else {
            return false;
        };
        page.uploads().iter().any(|u| u.key() == Some(key))
    }
}
